"""The repeat guard of `campaign send`: a list the store already holds, a name already taken.

A campaign's `fingerprint` (schema 2) is the plan's hash of the (mobile, text) pairs it
sends (`Plan.fingerprint`). `send` refuses a plan whose fingerprint a campaign already has,
unless told to send it again on purpose (`--again`): any campaign that was not cancelled, and
a cancelled one that had sent anything (a request accepted, in flight or unknown: sending
the list again would text those people twice). It always refuses a `--name`
that a campaign already has (always: names find campaigns). `check_repeat` runs inside
the transaction that creates the campaign (serialized: BEGIN IMMEDIATE on SQLite, an
advisory lock on PostgreSQL), `read_repeat` before the confirmation, touching nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, exists, or_, select, text

from campaign.errors import RepeatError
from campaign.outcomes import BatchState, CampaignState
from campaign.store.readonly import has_column, read_existing
from campaign.store.schema import batches, campaigns

# batch states of a request that reached (or may have reached) people
_SENT_STATES = (BatchState.SENDING, BatchState.ACCEPTED, BatchState.UNKNOWN)
# pg_advisory_xact_lock key of "creating a guarded campaign" (any constant of our own)
_CREATE_LOCK = 0x43414D50  # "CAMP"


@dataclass(frozen=True)
class RepeatGuard:
    """What to refuse: the name given with --name (None: the default name), and the same
    list again unless `allow_repeat` (--again)."""

    name: str | None = None
    allow_repeat: bool = False


def lock_creation(conn: Connection) -> None:
    """Serialize the transactions that create campaigns (what they check, such as a free
    name, stays true until they commit): an advisory lock on PostgreSQL; on SQLite every
    write transaction is BEGIN IMMEDIATE already."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})


def check_repeat(conn: Connection, guard: RepeatGuard, fingerprint: str | None) -> None:
    """RepeatError when `guard` refuses what is about to be created (in its transaction)."""
    lock_creation(conn)
    _check(conn, guard, fingerprint)


def read_repeat(url: str, guard: RepeatGuard, fingerprint: str | None) -> None:
    """`check_repeat` on the store at `url` without opening it for writing (no store: fine)."""
    read_existing(url, (campaigns.name,), lambda conn: _check(conn, guard, fingerprint), None)


def _check(conn: Connection, guard: RepeatGuard, fingerprint: str | None) -> None:
    if guard.name is not None:
        named = _first(conn, campaigns.c.name == guard.name)
        if named is not None:
            raise RepeatError(_name_taken(guard.name, named), named.id, name_taken=True)
    if guard.allow_repeat or fingerprint is None:
        return
    if not has_column(conn, campaigns.name, "fingerprint"):  # a schema 1 store, read as is
        return
    sent_some = exists(
        select(1).where(batches.c.campaign_id == campaigns.c.id, batches.c.state.in_(_SENT_STATES))
    )
    same = _first(
        conn,
        campaigns.c.fingerprint == fingerprint,
        or_(campaigns.c.state != CampaignState.CANCELLED, sent_some),
    )
    if same is not None:
        raise RepeatError(_same_list(same), same.id)


def _first(conn: Connection, *where: Any) -> Any:
    """The latest campaign matching `where` (id, name, state), or None."""
    query = (
        select(campaigns.c.id, campaigns.c.name, campaigns.c.state)
        .where(*where)
        .order_by(campaigns.c.id.desc())
        .limit(1)
    )
    return conn.execute(query).first()


def _same_list(row: Any) -> str:
    if row.state == CampaignState.CANCELLED:
        return (
            f"the store already holds this list as campaign {row.id} {row.name!r} (cancelled "
            "after part of it was sent): same recipients, same texts; sending it again would "
            "text those people twice; pass --again to send the list once more on purpose"
        )
    return (
        f"the store already holds this list as campaign {row.id} {row.name!r} ({row.state}): "
        f"same recipients, same texts; `campaign resume {row.id}` finishes that one, "
        "or pass --again to send the list once more on purpose"
    )


def _name_taken(name: str, row: Any) -> str:
    return (
        f"a campaign named {name!r} already exists (campaign {row.id}, {row.state}); "
        f"`campaign resume {row.id}` finishes that one, or give another --name "
        "(--again does not reuse a name)"
    )
