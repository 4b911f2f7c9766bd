"""Reading a store without touching it: no file, table or schema upgrade is made.

What `campaign plan`, and `campaign send` before its confirmation, read from the store:
a SQLite file that does not exist, or a store without the tables asked for, reads as
nothing there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from campaign.errors import StoreError
from campaign.store.engine import first_line, safe_url
from campaign.store.sqlite_memstatus import memory_statistics_off

T = TypeVar("T")


def read_existing(
    url: str, tables: Sequence[str], read: Callable[[Connection], T], default: T
) -> T:
    """read(conn) on the store at `url`; `default` when it or one of `tables` does not exist."""
    if not store_exists(url):
        return default
    if url.startswith("sqlite"):
        memory_statistics_off()  # before a first connection: see sqlite_memstatus
    try:
        engine = create_engine(url)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"the store URL {safe_url(url)} is not usable: {exc}") from None
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            if not all(inspector.has_table(name) for name in tables):
                return default
            return read(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"the store {safe_url(url)} does not open: {first_line(exc)}") from None
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


def has_column(conn: Connection, table: str, column: str) -> bool:
    """Whether `table` has `column` (an older schema may not have it yet)."""
    return any(c["name"] == column for c in inspect(conn).get_columns(table))
