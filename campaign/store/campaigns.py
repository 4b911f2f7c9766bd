"""Campaign queries: create a campaign from a plan, find it by id or name, move its state.

`create_campaign` writes the campaign, every input row (`recipients`) and every request
(`batches`) in one transaction, with chunked bulk inserts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, Engine, func, insert, select, update

from campaign.errors import InputError, NotFoundError
from campaign.outcomes import BatchState, CampaignState
from campaign.redact import redact
from campaign.store.engine import write
from campaign.store.repeats import RepeatGuard, check_repeat, lock_creation
from campaign.store.schema import batches, campaigns, recipients
from campaign.timeutil import CHINA, china_iso, utcnow

if TYPE_CHECKING:
    from campaign.config import Settings
    from campaign.plan import Plan

CHUNK_ROWS = 20_000
STATES = tuple(s for s in CampaignState if s != CampaignState.CANCELLED)
_SECRET_KEYS = frozenset({"password", "pswd"})


@dataclass(frozen=True)
class CampaignRecord:
    id: int
    name: str
    state: str
    stop_reason: str | None
    template: str
    settings: dict[str, Any]
    columns: list[str]
    files: list[dict[str, Any]]
    content_key: str | None
    job: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    due_at: datetime | None = None  # when a scheduled or queued campaign is due
    queued: bool = False  # the `campaign worker`s send it

    def brief(self) -> dict[str, Any]:
        """The fields a listing shows (JSON-ready)."""
        return {
            "campaign_id": self.id,
            "name": self.name,
            "state": self.state,
            "stop_reason": self.stop_reason,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "due_at": _iso(self.due_at),
        }


def default_campaign_name(paths: Sequence[Path | str], now: datetime | None = None) -> str:
    """The first contact file's stem and the China time, e.g. "vip 2026-01-31 09:05"
    (`create_campaign` adds " (2)", " (3)", ... when a campaign already has it)."""
    moment = (now or utcnow()).astimezone(CHINA)
    stem = Path(paths[0]).stem if paths else "campaign"
    return f"{stem} {moment:%Y-%m-%d %H:%M}"


# ids of the store are INTEGER: a longer number is no id (PostgreSQL would refuse to compare)
_MAX_ID = 2**31 - 1


def looks_like_id(text: str) -> bool:
    """Whether a CAMPAIGN argument is read as an id: all digits (ids win over names)."""
    return text.isdecimal() and len(text) <= 10 and int(text) <= _MAX_ID


def usable_name(name: str) -> str:
    """A name given with `send --name`, stripped; InputError (exit 3) when it is empty or all
    digits (a CAMPAIGN argument of digits is an id: such a name could not be told apart)."""
    stripped = name.strip()
    if not stripped:
        raise InputError("--name is empty: give the campaign a name, or leave --name out")
    if stripped.isdecimal():
        raise InputError(
            f"--name {stripped!r} is all digits, which `campaign status`, `export` and "
            "`resume` read as a campaign id: give a name with a letter in it "
            f"(e.g. 'list {stripped}')"
        )
    return stripped


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    """The settings a plan was made with, JSON-ready, without any password (fields dropped,
    credentials in URLs masked: `http://***@host/msg`). The gateway URL is kept without its
    `user:password@` part at all: `resume` sends through it again (`sent_gateway_url`)."""
    snapshot = dataclasses.asdict(settings)
    gateway = snapshot.get("gateway") or {}
    if isinstance(gateway.get("url"), str):
        gateway["url"] = without_userinfo(gateway["url"])
    return _jsonable(snapshot)


def sent_gateway_url(record: CampaignRecord) -> str | None:
    """The gateway URL the campaign was planned to be sent through (its settings snapshot)."""
    url = (record.settings.get("gateway") or {}).get("url")
    return without_userinfo(url) if isinstance(url, str) and url else None


def without_userinfo(url: str) -> str:
    """`http://user:pw@host/msg` -> `http://host/msg`; other values unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k not in _SECRET_KEYS}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path | time):
        return str(value)
    if isinstance(value, str):
        return redact(value)  # URL credentials, password fields, known secrets
    if value is None or isinstance(value, int | float | bool):
        return value
    return str(value)


def create_campaign(
    engine: Engine,
    plan: Plan,
    *,
    name: str,
    settings_snapshot: dict[str, Any],
    content_key: str | None = None,
    job: str | None = None,
    guard: RepeatGuard | None = None,
    other_names: Sequence[str] = (),
) -> int:
    """Store the campaign (state "planned"), its rows and its batches; return its id.

    Names are unique in the store: the campaign is named `name`, or when a campaign has it
    already, the first free one of `other_names`, else the last of them with " (2)", " (3)",
    ... (see `free_name`). With a `guard`, a list or a guard.name that the store already holds
    is a RepeatError instead (in the same transaction: nothing stored), see `store.repeats`."""
    snapshot = _jsonable(settings_snapshot)  # drops any password that slipped in
    contacts = plan.contacts
    files = [_file_dict(f) for f in contacts.files]
    with write(engine) as conn:
        lock_creation(conn)  # one creator at a time: the free name stays free until commit
        if guard is not None:
            check_repeat(conn, guard, plan.fingerprint)
        campaign_id = conn.execute(
            insert(campaigns)
            .values(
                name=free_name(conn, [name, *other_names]),
                state=CampaignState.PLANNED,
                template=plan.template,
                settings=json.dumps(snapshot, ensure_ascii=False),
                columns=json.dumps(list(contacts.columns), ensure_ascii=False),
                files=json.dumps(files, ensure_ascii=False),
                content_key=content_key,
                job=job,
                fingerprint=plan.fingerprint,
                created_at=utcnow(),
            )
            .returning(campaigns.c.id)
        ).scalar_one()
        for chunk in _recipient_chunks(campaign_id, plan):
            bulk_insert(conn, recipients.name, RECIPIENT_COLUMNS, chunk)
        for chunk in _batch_chunks(campaign_id, plan):
            bulk_insert(conn, batches.name, BATCH_COLUMNS, chunk)
    return int(campaign_id)


def free_name(conn: Connection, candidates: Sequence[str]) -> str:
    """The first of `candidates` no campaign has; else the last one with " (2)", " (3)", ...
    Call it inside the creating transaction after `lock_creation`."""
    wanted = list(dict.fromkeys(c.strip() for c in candidates if c.strip())) or ["campaign"]
    for candidate in wanted:
        if not _name_taken(conn, candidate):
            return candidate
    n = 2
    while _name_taken(conn, f"{wanted[-1]} ({n})"):
        n += 1
    return f"{wanted[-1]} ({n})"


def _name_taken(conn: Connection, name: str) -> bool:
    query = select(campaigns.c.id).where(campaigns.c.name == name).limit(1)
    return conn.execute(query).first() is not None


def _file_dict(summary: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(summary):
        return _jsonable(dataclasses.asdict(summary))  # type: ignore[arg-type]
    return _jsonable(dict(summary))


RECIPIENT_COLUMNS = (
    "campaign_id",
    "row_no",
    "source",
    "source_row",
    "cells",
    "mobile",
    "carrier",
    "outcome",
    "reason",
    "message",
    "segments",
    "batch_id",
)
BATCH_COLUMNS = (
    "campaign_id",
    "batch_id",
    "seq",
    "text",
    "segments",
    "size",
    "mobiles",
    "state",
    "attempts",
)
_CELLS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def bulk_insert(
    conn: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Insert plain tuples fast: COPY on PostgreSQL, executemany on SQLite (same transaction)."""
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None  # a connection in use has its driver's connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(rows))


def _recipient_chunks(campaign_id: int, plan: Plan) -> Iterator[list[tuple[Any, ...]]]:
    frame, rows = plan.contacts.frame, plan.rows
    total = len(frame)
    columns = list(plan.contacts.columns)
    encode = _CELLS.encode
    for start in range(0, total, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, total)
        part = frame.iloc[start:stop]
        plan_part = rows.iloc[start:stop]
        if columns:
            cells = [
                encode(list(r)) for r in zip(*(part[c].tolist() for c in columns), strict=True)
            ]
        else:
            cells = ["[]"] * (stop - start)
        yield list(
            zip(
                [campaign_id] * (stop - start),
                range(start, stop),
                part["_source"].tolist(),
                part["_source_row"].astype("int64").tolist(),
                cells,
                _nulls(plan_part["normalized_mobile"]),
                _nulls(plan_part["carrier"]),
                plan_part["outcome"].tolist(),
                _nulls(plan_part["reason"]),
                _nulls(plan_part["message"]),
                plan_part["segments"].fillna(0).astype("int64").tolist(),
                _nulls(plan_part["batch_id"]),
                strict=True,
            )
        )


def _nulls(column: Any) -> list[Any]:
    """Text values with "" (and missing) as NULL."""
    return [value or None for value in column.tolist()]


def _batch_chunks(campaign_id: int, plan: Plan) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for batch in plan.batches:
        chunk.append(
            (
                campaign_id,
                batch.batch_id,
                batch.seq,
                batch.text,
                batch.segments,
                len(batch.mobiles),
                ",".join(batch.mobiles),
                BatchState.PENDING.value,
                0,
            )
        )
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def get_campaign(engine: Engine, ref: str | int) -> CampaignRecord:
    """A campaign by numeric id (all digits: ids win), or by its name.

    A name that several campaigns have (a store from before names were unique, read without
    the schema 3 upgrade) is an InputError listing their ids: never one of them silently."""
    text = str(ref).strip()
    with engine.connect() as conn:
        if looks_like_id(text):
            row = conn.execute(select(campaigns).where(campaigns.c.id == int(text))).first()
            if row is not None:
                return _record(row._mapping)
        rows = conn.execute(
            select(campaigns).where(campaigns.c.name == text).order_by(campaigns.c.id)
        ).all()
        if len(rows) == 1:
            return _record(rows[0]._mapping)
        if rows:
            ids = ", ".join(str(r.id) for r in rows)
            raise InputError(f"{len(rows)} campaigns are named {text!r}: {ids}; give the id")
        renamed = _renamed(conn, text)
    hint = f"; did you mean {renamed}?" if renamed else ""
    raise NotFoundError(
        f"no campaign {text!r} in the store (give the id that `campaign send` printed, "
        f"or a name; `campaign status` lists them){hint}"
    )


def _renamed(conn: Connection, name: str) -> str:
    """The names the schema 3 upgrade gave campaigns that shared `name` ("x (#4)", ...)."""
    if not name:
        return ""
    rows = conn.execute(
        select(campaigns.c.name)
        .where(campaigns.c.name.startswith(f"{name} (#", autoescape=True))
        .order_by(campaigns.c.id)
        .limit(10)
    ).scalars()
    return ", ".join(repr(n) for n in rows)


def list_campaigns(engine: Engine) -> list[CampaignRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(campaigns).order_by(campaigns.c.id)).all()
    return [_record(r._mapping) for r in rows]


def set_state(
    engine: Engine | Connection,
    campaign_id: int,
    state: str,
    *,
    reason: str | None = None,
    only_from: Sequence[str] | None = None,
) -> bool:
    """Move a campaign to `state`; "sending" stamps started_at once, "finished" finished_at.

    With `only_from`, a compare-and-set: the campaign moves only when its state is one of
    them (`UPDATE ... WHERE state IN (...)`), so a pause or a cancel that another process
    committed a moment before is never overwritten. Returns whether it moved (without
    `only_from`: whether the campaign exists)."""
    if state not in STATES:
        raise ValueError(f"unknown campaign state {state!r}")
    values: dict[str, Any] = {"state": state, "stop_reason": redact(reason) if reason else reason}
    now = utcnow()
    if state == CampaignState.SENDING:
        values["started_at"] = func.coalesce(campaigns.c.started_at, now)
    if state == CampaignState.FINISHED:
        values["finished_at"] = now
    where = [campaigns.c.id == campaign_id]
    if only_from is not None:
        where.append(campaigns.c.state.in_(tuple(only_from)))
    statement = update(campaigns).where(*where).values(**values)
    if isinstance(engine, Connection):
        return bool(engine.execute(statement).rowcount)
    with write(engine) as conn:
        return bool(conn.execute(statement).rowcount)


def campaign_totals(engine: Engine, campaign_id: int) -> dict[str, int]:
    """`recipients` (rows in a batch), `requests` (batches), `segments` (billed in all)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(batches.c.size), 0),
                func.coalesce(func.sum(batches.c.size * batches.c.segments), 0),
            ).where(batches.c.campaign_id == campaign_id)
        ).one()
    return {"recipients": int(row[1]), "requests": int(row[0]), "segments": int(row[2])}


def _record(row: Any) -> CampaignRecord:
    return CampaignRecord(
        id=int(row["id"]),
        name=row["name"],
        state=row["state"],
        stop_reason=row["stop_reason"],
        template=row["template"],
        settings=json.loads(row["settings"]),
        columns=json.loads(row["columns"]),
        files=json.loads(row["files"]),
        content_key=row["content_key"],
        job=row["job"],
        created_at=_aware(row["created_at"]),
        started_at=_aware(row["started_at"]),
        finished_at=_aware(row["finished_at"]),
        due_at=_aware(row["due_at"]),
        queued=bool(row["queued"]),
    )


def _aware(moment: Any) -> Any:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _iso(moment: datetime | None) -> str | None:
    """For JSON (status --json): ISO 8601, China time, +08:00; the store keeps UTC."""
    return china_iso(moment)
