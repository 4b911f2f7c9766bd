"""Inbound (MO) messages: every pushed part kept, long messages reassembled, opt-outs.

Parts go to `inbound_parts` (an exact repeat of a part is stored once). An ordinary
message is one part (`ems_id` "", 1 of 1) and becomes an `inbound` row at once; a long
message (isems=1, emshead id,total,n) becomes one `inbound` row when its last missing part
arrives, in any order. A whole message that is an opt-out keyword puts the number on the
suppression list.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Connection

from campaign.patterns import VALID_MOBILE
from campaign.store import suppression
from campaign.store.schema import inbound, inbound_parts
from campaign.timeutil import utcnow

_VALID_MOBILE = re.compile(VALID_MOBILE)
OPTOUT_REASON = "optout reply"
BLACKLIST_REASON = "blacklist status"
ADDED_BY = "receiver"  # suppression.added_by of the entries pushes make
# The parts of one long message arrive within this time; an emshead id seen again later
# (ids are recycled) starts a new message.
REASSEMBLY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class InboundPart:
    mobile: str
    destcode: str
    mo_time: str | None  # canonical ISO, China time
    msg: str
    ems_id: str = ""  # "" for an ordinary (single-part) message
    ems_total: int = 1
    ems_no: int = 1


@dataclass(frozen=True)
class InboundResult:
    new_part: bool  # False when this exact part was stored before
    message: str | None  # the whole message when this part completed one, else None
    is_optout: bool


def store_inbound(
    conn: Connection,
    part: InboundPart,
    is_optout: Callable[[str], bool],
    received_at: datetime | None = None,
) -> InboundResult:
    """Store one pushed part inside the caller's transaction; reassemble; handle opt-out."""
    now = received_at or utcnow()
    if conn.dialect.name == "postgresql" and part.ems_id:
        key = zlib.crc32(f"{part.mobile}|{part.ems_id}|{part.ems_total}".encode())
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    new = _insert_ignore(conn, inbound_parts, _part_row(part, now))
    if not new:
        return InboundResult(False, None, False)
    text = part.msg if not part.ems_id else _completed_text(conn, part, now)
    if text is None:
        return InboundResult(True, None, False)
    optout = is_optout(text)
    conn.execute(
        inbound.insert().values(
            mobile=part.mobile,
            destcode=part.destcode,
            mo_time=part.mo_time,
            msg=text,
            is_optout=optout,
            received_at=now,
        )
    )
    if optout and _VALID_MOBILE.match(part.mobile):  # only a mobile can be texted again
        detail = f"{text.strip()} ({part.mo_time or 'time unknown'})"
        suppression.add_in(conn, [part.mobile], OPTOUT_REASON, detail, added_by=ADDED_BY)
    return InboundResult(True, text, optout)


def _part_row(part: InboundPart, now: datetime) -> dict:
    return {
        "mobile": part.mobile,
        "destcode": part.destcode,
        "mo_time": part.mo_time or "",
        "msg": part.msg,
        "ems_id": part.ems_id,
        "ems_total": part.ems_total,
        "ems_no": part.ems_no,
        "received_at": now,
    }


def _completed_text(conn: Connection, part: InboundPart, now: datetime) -> str | None:
    """The whole text when `part` (just stored) was the last missing one, else None."""
    t = inbound_parts.c
    rows = conn.execute(
        sa.select(t.id, t.ems_no, t.msg)
        .where(
            t.mobile == part.mobile,
            t.ems_id == part.ems_id,
            t.ems_total == part.ems_total,
            t.received_at >= now - REASSEMBLY_WINDOW,
        )
        .order_by(t.id)
    ).all()
    before = {no for _id, no, _msg in rows[:-1]}  # the new part has the highest id
    if part.ems_no in before:  # another version of a part seen before: nothing new
        return None
    if len(before | {part.ems_no}) < part.ems_total:
        return None
    texts: dict[int, str] = {}
    for _id, no, msg in rows:
        texts.setdefault(no, msg)
    return "".join(texts[n] for n in range(1, part.ems_total + 1))


def _insert_ignore(conn: Connection, table: sa.Table, row: dict) -> bool:
    """Insert one row unless an equal one is there; True when it was new."""
    statement: sa.Executable
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(table).values(row).on_conflict_do_nothing().returning(table.c.id)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).values(row).on_conflict_do_nothing().returning(table.c.id)
    return conn.execute(statement).first() is not None


def inbound_messages(conn: Connection, mobile: str | None = None) -> list[dict]:
    """The whole inbound messages, oldest first (for tests and `status`)."""
    query = sa.select(inbound).order_by(inbound.c.id)
    if mobile:
        query = query.where(inbound.c.mobile == mobile)
    return [dict(row._mapping) for row in conn.execute(query)]
