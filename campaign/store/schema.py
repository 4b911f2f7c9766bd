"""Tables of the store. Times are timezone-aware UTC unless the column says otherwise.

Schema changes: bump SCHEMA_VERSION and add an upgrade step in `engine.UPGRADES`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

SCHEMA_VERSION = 5

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    # planned | scheduled | queued | sending | paused | stopped | cancelled | finished
    # (stopped and paused = resumable; outcomes.CampaignState)
    Column("state", String(16), nullable=False),
    Column("stop_reason", Text),
    Column("template", Text, nullable=False),
    Column("settings", Text, nullable=False),  # JSON: the settings the plan was made with
    Column("columns", Text, nullable=False),  # JSON list: original column names, input order
    Column("files", Text, nullable=False),  # JSON list of {source, rows, blank_rows, ...}
    Column("content_key", String(128)),  # content hash of the contact file (campaign run)
    Column("job", Text),  # [[job]] name for `campaign run`
    # hash of the (mobile, text) pairs it sends: the repeat guard of `send` (schema 2)
    Column("fingerprint", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("exported_at", DateTime(timezone=True)),  # last export by `campaign run`
    # when a scheduled or queued campaign is due (schema 4)
    Column("due_at", DateTime(timezone=True)),
    # the campaign belongs to the `campaign worker`s (schema 4): only these are picked
    Column("queued", Boolean, nullable=False, default=False, server_default=false()),
    # names are unique (schema 3): a name finds one campaign, an export file is one campaign's
    Index("ix_campaigns_name", "name", unique=True),
    Index("ix_campaigns_job_key", "job", "content_key"),
    Index("ix_campaigns_fingerprint", "fingerprint"),
)

# One row per input row, in input order (row_no 0..n-1): every row ends in one outcome.
recipients = Table(
    "recipients",
    metadata,
    Column("campaign_id", Integer, nullable=False),
    Column("row_no", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("source_row", Integer, nullable=False),
    Column("cells", Text, nullable=False),  # JSON list aligned with campaigns.columns
    Column("mobile", String(16)),  # normalized 11-digit mobile, or NULL
    Column("carrier", String(32)),
    # plan outcome: ready | invalid | duplicate | suppressed | capped | unsent
    Column("outcome", String(16), nullable=False),
    Column("reason", Text),
    Column("message", Text),
    Column("segments", Integer),
    Column("batch_id", String(32)),
    PrimaryKeyConstraint("campaign_id", "row_no"),
    Index("ix_recipients_batch", "campaign_id", "batch_id"),
    Index("ix_recipients_mobile", "mobile"),
)

# One row per request to the gateway.
batches = Table(
    "batches",
    metadata,
    Column("campaign_id", Integer, nullable=False),
    Column("batch_id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),  # sending order
    Column("text", Text, nullable=False),
    Column("segments", Integer, nullable=False),  # billed parts of `text`, per mobile
    Column("size", Integer, nullable=False),  # number of mobiles
    Column("mobiles", Text, nullable=False),  # comma-separated, as sent
    # pending | sending | accepted | rejected | unknown | unsent | cancelled
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("msgid", String(64)),
    Column("submit_code", String(16)),
    Column("detail", Text),  # the meaning of the code, or why the result is unknown
    Column("claimed_by", String(64)),  # workers.id of the run that set state=sending
    Column("submitted_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("campaign_id", "batch_id"),
    Index("ix_batches_state", "campaign_id", "state", "seq"),
    Index("ix_batches_msgid", "msgid"),
)

# A running send/resume process; its batches in `sending` are orphaned once it is dead.
workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("campaign_id", Integer, nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

# A long-running `campaign worker` process (schema 4); what it sends now is `campaign_id`.
worker_processes = Table(
    "worker_processes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("campaign_id", Integer),
)

# The shared pace of a gateway account (schema 4): a GCRA token bucket that every process
# sending on the account takes its tokens from (store/pace.py).
send_pace = Table(
    "send_pace",
    metadata,
    Column("account", String(200), primary_key=True),  # "<gateway url>#<account>"
    Column("next_at", Float, nullable=False),  # epoch seconds: the next request not before
)

# Delivery reports, pushed or imported; matched to recipients by (msgid, mobile) when read.
reports = Table(
    "reports",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("msgid", String(64), nullable=False),
    Column("mobile", String(32), nullable=False),
    Column("status", String(64), nullable=False),
    Column("report_time", String(32), nullable=False),  # ISO 8601, China time (+08:00)
    Column("raw_time", String(32)),  # as it arrived
    Column("origin", Text, nullable=False),  # "push" or the imported file's name
    Column("received_at", DateTime(timezone=True), nullable=False),
    # also the index of lookups by (msgid, mobile): its leading columns
    UniqueConstraint("msgid", "mobile", "status", "report_time", name="uq_reports_identity"),
)

# Inbound (MO) pushes as received, one row per part.
inbound_parts = Table(
    "inbound_parts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("mobile", String(32), nullable=False),
    Column("destcode", String(32)),
    Column("mo_time", String(32)),  # ISO 8601, China time
    Column("msg", Text, nullable=False),
    Column("ems_id", String(32)),  # emshead id when isems=1
    Column("ems_total", Integer),
    Column("ems_no", Integer),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("mobile", "ems_id", "ems_no", "mo_time", "msg", name="uq_inbound_parts"),
)

# Inbound messages, whole (long ones reassembled once every part is in).
inbound = Table(
    "inbound",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("mobile", String(32), nullable=False),
    Column("destcode", String(32)),
    Column("mo_time", String(32)),
    Column("msg", Text, nullable=False),
    Column("is_optout", Boolean, nullable=False, default=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_inbound_mobile", "mobile"),
)

# Numbers never to be sent to again.
suppression = Table(
    "suppression",
    metadata,
    Column("mobile", String(16), primary_key=True),
    Column("reason", Text, nullable=False),  # optout reply | blacklist status | manual | import
    Column("detail", Text),  # the reply text, the report status, the file name
    Column("added_by", Text),  # who: a user, "receiver", "import", "report" (schema 2)
    Column("added_at", DateTime(timezone=True), nullable=False),
)

# Console users (schema 5): `campaign user ...`; role: outcomes.Role.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),  # argon2id, encoded (campaign.passwords)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_users_name", "name", unique=True),
)

# API tokens of the users (schema 5): only the SHA-256 of a token is kept.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=False),
    Column("token_hash", String(64), nullable=False),  # sha256 hex of the token
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Index("ix_api_tokens_hash", "token_hash", unique=True),
    Index("ix_api_tokens_user", "user_id"),
)

# Who did what, when (schema 5): logins, sends, pauses, opt-out changes... (outcomes.AuditAction)
audit = Table(
    "audit",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_name", Text),  # as typed for a failed login; NULL for the system
    Column("action", String(32), nullable=False),
    Column("detail", Text),  # JSON object
    Column("ip", String(64)),
    Index("ix_audit_at", "at"),
)

# The console's own secrets (schema 5), e.g. the session signing key made on first start,
# shared by every console process on the store.
web_secrets = Table(
    "web_secrets",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
