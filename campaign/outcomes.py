"""Outcomes of rows and states of campaigns and batches, as `StrEnum`s (no dependencies).

A member compares equal to its text and `str()`/`json.dumps`/SQL give the plain text, so the
values stored, shown and exported stay exactly the words of SPEC. Code refers to the
members, never to bare words; the ordered tuples say which outcomes each stage shows.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What became of one input row (the `outcome` column of SPEC)."""

    READY = "ready"  # the plan would send it (a plan's outcome only)
    DELIVERED = "delivered"
    FAILED = "failed"
    PENDING = "pending"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    SUPPRESSED = "suppressed"
    CAPPED = "capped"
    CANCELLED = "cancelled"  # the campaign was cancelled before the row's request left
    UNSENT = "unsent"


class CampaignState(StrEnum):
    """`campaigns.state`, in the order they are shown."""

    PLANNED = "planned"
    SCHEDULED = "scheduled"  # a worker sends it at its due_at
    QUEUED = "queued"  # a worker sends it as soon as one is free
    SENDING = "sending"
    PAUSED = "paused"  # no new batch is claimed until it is resumed
    STOPPED = "stopped"  # resumable
    CANCELLED = "cancelled"  # its pending batches were cancelled; nothing more is sent
    FINISHED = "finished"


class StopCause(StrEnum):
    """Why a send run stopped with requests still pending: the exit code and the nightly run
    decide by it, never by the text of the reason (which is for people)."""

    WINDOW = "window"  # the send window is closed and the run may not wait (--no-wait)
    DAILY_LIMIT = "daily_limit"  # a job's max_per_day: the rest waits for the next run
    NOT_AFTER = "not_after"  # a job's not_after passed during the run
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, a stop request
    GATEWAY = "gateway"  # the gateway refused to go on, kept refusing, or was unreachable
    BALANCE = "balance"  # too little balance for what is left
    STORE = "store"  # the store failed; answers kept, the run stops resumable
    PAUSED = "paused"  # someone paused the campaign (`campaign pause`)
    CANCELLED = "cancelled"  # someone cancelled the campaign (`campaign cancel`)
    HALTED = "halted"  # another process stopped the campaign: its state is no longer sending


class BatchState(StrEnum):
    """`batches.state` (one request to the gateway)."""

    PENDING = "pending"  # not sent yet
    SENDING = "sending"  # claimed by a run; its answer not recorded yet
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # may or may not have reached the gateway; never resent blindly
    UNSENT = "unsent"
    CANCELLED = "cancelled"  # the campaign was cancelled before it was sent; never sent


#: Every outcome a plan or a result shows, in SPEC's order.
OUTCOMES: tuple[Outcome, ...] = (
    Outcome.READY,
    Outcome.DELIVERED,
    Outcome.FAILED,
    Outcome.PENDING,
    Outcome.REJECTED,
    Outcome.UNKNOWN,
    Outcome.INVALID,
    Outcome.DUPLICATE,
    Outcome.SUPPRESSED,
    Outcome.CAPPED,
    Outcome.CANCELLED,
    Outcome.UNSENT,
)
#: Outcomes a plan gives, in the order it counts them.
PLAN_OUTCOMES: tuple[Outcome, ...] = (
    Outcome.READY,
    Outcome.INVALID,
    Outcome.DUPLICATE,
    Outcome.SUPPRESSED,
    Outcome.CAPPED,
    Outcome.UNSENT,
)
#: Outcomes of the result spreadsheet, in the order they are shown (no `ready`).
RESULT_OUTCOMES: tuple[Outcome, ...] = tuple(o for o in OUTCOMES if o != Outcome.READY)
#: Outcomes of rows the gateway accepted: the billed ones.
ACCEPTED_OUTCOMES: tuple[Outcome, ...] = (Outcome.DELIVERED, Outcome.FAILED, Outcome.PENDING)
#: Outcomes decided by the plan, whose reason is the plan's (not ready: the run decides).
PLANNED_OUTCOMES: tuple[Outcome, ...] = (
    Outcome.INVALID,
    Outcome.DUPLICATE,
    Outcome.SUPPRESSED,
    Outcome.CAPPED,
    Outcome.UNSENT,
)
#: Outcomes of rows the plan left out of every batch.
LEFT_OUT_OUTCOMES: tuple[Outcome, ...] = (Outcome.INVALID, Outcome.DUPLICATE, Outcome.SUPPRESSED)

#: Campaign states in which a campaign may still send.
UNFINISHED_STATES: tuple[CampaignState, ...] = (
    CampaignState.PLANNED,
    CampaignState.SCHEDULED,
    CampaignState.QUEUED,
    CampaignState.SENDING,
    CampaignState.PAUSED,
    CampaignState.STOPPED,
)
#: Batch states, in the order `batch_figures` counts them (the claim order, then cancelled).
BATCH_STATES: tuple[BatchState, ...] = (
    BatchState.PENDING,
    BatchState.SENDING,
    BatchState.ACCEPTED,
    BatchState.REJECTED,
    BatchState.UNKNOWN,
    BatchState.CANCELLED,
)
#: Batch states of a request that went out (or may have).
SUBMITTED_STATES: tuple[BatchState, ...] = (
    BatchState.SENDING,
    BatchState.ACCEPTED,
    BatchState.REJECTED,
    BatchState.UNKNOWN,
)
#: Batch states whose answer is known or may have been sent (the result's msgid is shown).
ANSWERED_STATES: tuple[BatchState, ...] = (
    BatchState.ACCEPTED,
    BatchState.REJECTED,
    BatchState.UNKNOWN,
)

#: Columns after the original ones in a result file, with exactly the names of SPEC.
RESULT_COLUMNS: tuple[str, ...] = (
    "source",
    "source_row",
    "normalized_mobile",
    "carrier",
    "outcome",
    "reason",
    "message",
    "segments",
    "batch_id",
    "msgid",
    "submit_code",
    "dlr_status",
    "dlr_description",
    "report_time",
)
#: The delivery report status of a delivered message.
DELIVERED_STATUS = "DELIVRD"


class Role(StrEnum):
    """A console user's role (`users.role`): each one may do what the ones before it may."""

    VIEWER = "viewer"  # sees campaigns, results, opt-outs, health
    SENDER = "sender"  # also uploads, plans, sends, pauses, cancels, manages opt-outs
    ADMIN = "admin"  # also manages users and reads the audit log

    @property
    def rank(self) -> int:
        return ROLES.index(self)

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may."""
        return self.rank >= needed.rank


#: The roles, least first.
ROLES: tuple[Role, ...] = (Role.VIEWER, Role.SENDER, Role.ADMIN)


class AuditAction(StrEnum):
    """`audit.action`: what a user did (the console's audit log)."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    USER_ADD = "user_add"
    USER_REMOVE = "user_remove"
    USER_ROLE = "user_role"  # a user's role changed (the users page)
    USER_DISABLE = "user_disable"  # a user may not sign in any more (kept, with its history)
    USER_ENABLE = "user_enable"
    PASSWORD_CHANGE = "password_change"
    TOKEN_NEW = "token_new"
    CAMPAIGN_CREATE = "campaign_create"
    UPLOAD = "upload"  # contact files received in the console (new campaign)
    PLAN = "plan"  # contact files planned, or a plan re-planned (sheet, columns, template)
    SEND = "send"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RESEND = "resend"
    OPTOUT_ADD = "optout_add"
    OPTOUT_REMOVE = "optout_remove"
    OPTOUT_IMPORT = "optout_import"
    REPORTS_IMPORT = "reports_import"
