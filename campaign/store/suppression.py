"""The suppression list: numbers never to be sent to again (opt-outs, blacklists, manual).

Numbers are stored as given (callers pass normalized 11-digit mobiles). Adding a number
that is already on the list changes nothing (INSERT ... ON CONFLICT DO NOTHING, on SQLite
and on PostgreSQL), so the first reason a number was suppressed is the one kept.

Every entry keeps where it came from: `reason` (REASONS), `detail` (the reply text and
its time, the file and row, the report status, a note), `added_by` (an OS user, or
"receiver" / "reports import" for the machinery) and `added_at` (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine, delete, func, inspect, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from campaign.store.engine import write
from campaign.store.readonly import read_existing
from campaign.store.schema import suppression

T = TypeVar("T")

# Rows per INSERT statement: well below SQLite's 32766 bound variables (5 per row).
CHUNK = 2000
# The reasons an entry is added for.
REASONS = ("optout reply", "blacklist status", "manual", "import")
# Every field of an entry, in the order `optout list --details` and the export show them.
ENTRY_FIELDS = ("mobile", "added_at", "reason", "detail", "added_by")


def add(
    engine: Engine,
    mobiles: Iterable[str],
    reason: str = "manual",
    detail: str | None = None,
    *,
    added_by: str | None = None,
    details: Mapping[str, str] | None = None,
) -> int:
    """Put `mobiles` on the list; return how many were not on it before.

    `detail` is stored with every number, unless `details` has one for that number."""
    with write(engine) as conn:
        return add_in(conn, mobiles, reason, detail, added_by=added_by, details=details)


def add_in(
    conn: Connection,
    mobiles: Iterable[str],
    reason: str = "manual",
    detail: str | None = None,
    *,
    added_by: str | None = None,
    details: Mapping[str, str] | None = None,
) -> int:
    """`add` inside a transaction the caller holds (e.g. with the inbound message it stems from)."""
    unique = list(dict.fromkeys(m for m in mobiles if m))
    if not unique:
        return 0
    now = datetime.now(UTC)
    insert = _insert_for(conn)
    per_mobile = details or {}
    added = 0
    for start in range(0, len(unique), CHUNK):
        rows = [
            {
                "mobile": m,
                "reason": reason,
                "detail": per_mobile.get(m, detail),
                "added_by": added_by,
                "added_at": now,
            }
            for m in unique[start : start + CHUNK]
        ]
        statement = (
            insert.values(rows)
            .on_conflict_do_nothing(index_elements=["mobile"])
            .returning(suppression.c.mobile)
        )
        added += len(conn.execute(statement).all())
    return added


def remove(engine: Engine, mobiles: Iterable[str]) -> int:
    """Take `mobiles` off the list; return how many were on it."""
    unique = list(dict.fromkeys(m for m in mobiles if m))
    removed = 0
    with write(engine) as conn:
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            result = conn.execute(delete(suppression).where(suppression.c.mobile.in_(chunk)))
            removed += result.rowcount
    return removed


def list_all(engine: Engine) -> list[str]:
    """Every suppressed number, sorted."""
    with engine.connect() as conn:
        return list(
            conn.execute(select(suppression.c.mobile).order_by(suppression.c.mobile)).scalars()
        )


def suppressed_set(engine: Engine) -> set[str]:
    """Every suppressed number, as a set for membership tests (the plan's input)."""
    with engine.connect() as conn:
        return set(conn.execute(select(suppression.c.mobile)).scalars())


def is_suppressed(engine: Engine, mobile: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            select(suppression.c.mobile).where(suppression.c.mobile == mobile)
        ).first()
        return found is not None


def entries(engine: Engine, mobiles: Sequence[str] | None = None) -> list[dict[str, object]]:
    """Full rows (mobile, reason, detail, added_by, added_at) by mobile; all when `mobiles`
    is None. `added_at` is timezone-aware UTC on every store."""
    with engine.connect() as conn:
        return _entries_in(conn, mobiles)


def _entries_in(conn: Connection, mobiles: Sequence[str] | None = None) -> list[dict[str, object]]:
    present = {c["name"] for c in inspect(conn).get_columns(suppression.name)}
    columns = [suppression.c[name] for name in ENTRY_FIELDS if name in present]
    query = select(*columns).order_by(suppression.c.mobile)
    if mobiles is not None:
        query = query.where(suppression.c.mobile.in_(list(mobiles)))
    rows = []
    for row in conn.execute(query):
        entry: dict[str, object] = dict.fromkeys(ENTRY_FIELDS)
        entry.update(row._mapping)
        entry["added_at"] = _aware(entry["added_at"])
        rows.append(entry)
    return rows


def _aware(moment: object) -> object:
    """A naive datetime (SQLite keeps no offset) is UTC, as every time in the store."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def search_entries(
    engine: Engine,
    *,
    mobile_part: str | None = None,
    text: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict[str, object]]]:
    """(how many match, one page of them, newest first): entries whose number contains
    `mobile_part`, or whose reason, detail or added_by contains `text` (either case)."""
    where = []
    if mobile_part:
        where.append(suppression.c.mobile.contains(mobile_part, autoescape=True))
    if text:
        needle = text.lower()
        columns = (suppression.c.reason, suppression.c.detail, suppression.c.added_by)
        where.append(
            or_(
                *(
                    func.lower(func.coalesce(column, "")).contains(needle, autoescape=True)
                    for column in columns
                )
            )
        )
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(suppression).where(*where)).scalar()
        query = (
            select(*(suppression.c[name] for name in ENTRY_FIELDS))
            .where(*where)
            .order_by(suppression.c.added_at.desc(), suppression.c.mobile)
            .limit(limit)
            .offset(offset)
        )
        rows = []
        for row in conn.execute(query):
            entry: dict[str, object] = dict(row._mapping)
            entry["added_at"] = _aware(entry["added_at"])
            rows.append(entry)
    return int(total or 0), rows


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(suppression)).scalar_one())


def read_suppressed(url: str) -> set[str]:
    """The suppression list of the store at `url`, touching nothing: no store file or table
    is created (a SQLite file that does not exist is an empty list), nothing is written."""
    return read_existing(
        url,
        (suppression.name,),
        lambda conn: set(conn.execute(select(suppression.c.mobile)).scalars()),
        set(),
    )


def read_entries(url: str) -> list[dict[str, object]]:
    """`entries` of the store at `url`, touching nothing (like `read_suppressed`); a store
    of schema 1 reads with `added_by` None."""
    return read_existing(url, (suppression.name,), _entries_in, [])


def _insert_for(conn: Connection) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(suppression)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(suppression)
    raise NotImplementedError(f"suppression list on {conn.dialect.name} is not supported")
