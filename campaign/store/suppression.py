"""The suppression list: numbers never to be sent to again (opt-outs, blacklists, manual).

Numbers are stored as given (callers pass normalized 11-digit mobiles). Adding a number
that is already on the list changes nothing (INSERT ... ON CONFLICT DO NOTHING, on SQLite
and on PostgreSQL), so the first reason a number was suppressed is the one kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, delete, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from campaign.errors import StoreError
from campaign.store.engine import safe_url
from campaign.store.schema import suppression

# Rows per INSERT statement: well below SQLite's 32766 bound variables (4 per row).
CHUNK = 2000


def add(
    engine: Engine, mobiles: Iterable[str], reason: str = "manual", detail: str | None = None
) -> int:
    """Put `mobiles` on the list; return how many were not on it before."""
    with engine.begin() as conn:
        return add_in(conn, mobiles, reason, detail)


def add_in(
    conn: Connection, mobiles: Iterable[str], reason: str = "manual", detail: str | None = None
) -> int:
    """`add` inside a transaction the caller holds (e.g. with the inbound message it stems from)."""
    unique = list(dict.fromkeys(m for m in mobiles if m))
    if not unique:
        return 0
    now = datetime.now(UTC)
    insert = _insert_for(conn)
    added = 0
    for start in range(0, len(unique), CHUNK):
        rows = [
            {"mobile": m, "reason": reason, "detail": detail, "added_at": now}
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
    with engine.begin() as conn:
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
    """Full rows (mobile, reason, detail, added_at) by mobile; all when `mobiles` is None."""
    query = select(suppression).order_by(suppression.c.mobile)
    if mobiles is not None:
        query = query.where(suppression.c.mobile.in_(list(mobiles)))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(suppression)).scalar_one())


def read_suppressed(url: str) -> set[str]:
    """The suppression list of the store at `url`, touching nothing: no store file or table
    is created (a SQLite file that does not exist is an empty list), nothing is written."""
    if not store_exists(url):
        return set()
    try:
        engine = create_engine(url)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"the store URL {safe_url(url)} is not usable: {exc}") from None
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(suppression.name):
                return set()
            return set(conn.execute(select(suppression.c.mobile)).scalars())
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        detail = first[0] if first else type(exc).__name__
        raise StoreError(f"the store {safe_url(url)} does not open: {detail}") from None
    finally:
        engine.dispose()


def store_exists(url: str) -> bool:
    """False for a SQLite store whose file does not exist (or an in-memory one): there is
    nothing to read, and opening it would create it. StoreError for a URL that does not parse."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"the store URL {safe_url(url)} is not usable") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        return bool(database) and database != ":memory:" and Path(database).is_file()
    return True


def _insert_for(conn: Connection) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(suppression)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(suppression)
    raise NotImplementedError(f"suppression list on {conn.dialect.name} is not supported")
