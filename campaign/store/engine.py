"""Open a store: one `Engine` per URL, tables created on first use, schema version checked."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from campaign.errors import StoreError
from campaign.patterns import first_line
from campaign.store.schema import SCHEMA_VERSION, campaigns, meta, metadata
from campaign.store.sqlite_memstatus import memory_statistics_off

P = ParamSpec("P")
R = TypeVar("R")
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The execution option that marks a write transaction (set by `write`, read by _sqlite_begin).
WRITE_OPTION = "campaign_write"
#: A Connection with this execution option set runs each statement as its own transaction
#: on SQLite (no BEGIN: the driver is in autocommit mode; see `autocommit`).
AUTOCOMMIT_OPTION = "campaign_autocommit"


def _upgrade_1_to_2(conn: Connection) -> None:
    """Schema 2: campaigns.fingerprint (the repeat guard), suppression.added_by."""
    conn.exec_driver_sql("ALTER TABLE campaigns ADD COLUMN fingerprint VARCHAR(64)")
    conn.exec_driver_sql("CREATE INDEX ix_campaigns_fingerprint ON campaigns (fingerprint)")
    conn.exec_driver_sql("ALTER TABLE suppression ADD COLUMN added_by TEXT")


def _upgrade_2_to_3(conn: Connection) -> None:
    """Schema 3: campaign names are unique. Every campaign that shares its name with another
    is renamed "<name> (#<id>)" first (all of them: none keeps the name, so that none is
    found by it in place of the others), then ix_campaigns_name becomes a unique index."""
    rows = conn.execute(select(campaigns.c.id, campaigns.c.name).order_by(campaigns.c.id)).all()
    taken = {row.name for row in rows}
    seen: dict[str, int] = {}
    for row in rows:
        seen[row.name] = seen.get(row.name, 0) + 1
    for row in rows:
        if seen[row.name] < 2:
            continue
        new = f"{row.name} (#{row.id})"
        while new in taken:  # a campaign already had that name, improbable as it is
            new = f"{new} (#{row.id})"
        taken.add(new)
        conn.execute(update(campaigns).where(campaigns.c.id == row.id).values(name=new))
    conn.exec_driver_sql("DROP INDEX ix_campaigns_name")
    conn.exec_driver_sql("CREATE UNIQUE INDEX ix_campaigns_name ON campaigns (name)")


def _upgrade_3_to_4(conn: Connection) -> None:
    """Schema 4 (queued sending): campaigns.due_at and campaigns.queued; the new tables
    (worker_processes, send_pace) are made by `create_all` afterwards. A column already
    there is left as it is."""
    present = {c["name"] for c in inspect(conn).get_columns(campaigns.name)}
    for column in (campaigns.c.due_at, campaigns.c.queued):
        if column.name in present:
            continue
        kind = column.type.compile(dialect=conn.dialect)
        extra = " DEFAULT " + ("0" if conn.dialect.name == "sqlite" else "false") + " NOT NULL"
        tail = extra if column.name == "queued" else ""
        conn.exec_driver_sql(f"ALTER TABLE campaigns ADD COLUMN {column.name} {kind}{tail}")


def _upgrade_4_to_5(conn: Connection) -> None:
    """Schema 5 (the web console): only new tables (users, api_tokens, audit, web_secrets),
    made by `create_all` afterwards; nothing existing changes."""


# version -> the step that upgrades a store of that version to version + 1
UPGRADES: dict[int, Callable[[Connection], None]] = {
    1: _upgrade_1_to_2,
    2: _upgrade_2_to_3,
    3: _upgrade_3_to_4,
    4: _upgrade_4_to_5,
}


def open_store(url: str, *, create: bool = True, upgrade: bool = True) -> Engine:
    """Return an engine for `url`, with the schema created or upgraded to SCHEMA_VERSION.

    Raises StoreError when the store does not open or was written by a newer version.
    With `create=False` a store that does not exist yet is an error, and no file is made.
    With `upgrade=False` (`campaign worker`: older workers may still be running on it) a
    store of an older schema is a StoreError saying how to upgrade it, and nothing changes.
    """
    if not create:
        _require_sqlite_file(url)
    engine = _create_engine(url)
    try:
        with write(engine) as conn:
            version = _stored_version(conn)
            if version is None and create:
                metadata.create_all(conn)
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif version is not None:
                if not upgrade and version < SCHEMA_VERSION:
                    raise StoreError(_needs_upgrade(url, version))
                _check_and_upgrade(conn, version)
            elif not create:
                raise StoreError(f"no campaign store at {safe_url(url)}")
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"the store {safe_url(url)} does not open: {first_line(exc)}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def _needs_upgrade(url: str, version: int) -> str:
    return (
        f"the store {safe_url(url)} has schema version {version}, this version of campaign "
        f"needs {SCHEMA_VERSION}: run any other campaign command on it once to upgrade it "
        "(stop older workers first)"
    )


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable store URL>"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _require_sqlite_file(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # reported by _create_engine
    database = parsed.database
    on_disk = parsed.get_backend_name() == "sqlite" and database and database != ":memory:"
    if on_disk and not Path(str(database)).is_file():
        raise StoreError(f"the store {safe_url(url)} does not open: no campaign store there")


def _create_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            memory_statistics_off()  # before our first connection: see sqlite_memstatus
            engine = create_engine(
                url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"the store URL {safe_url(url)} is not usable: {exc}") from None


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, issue BEGIN, so that writes take the lock at once.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut, not just a crash
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def write(bind: Engine | Connection) -> Iterator[Connection]:
    """A write transaction: `with write(engine) as conn:` in place of `engine.begin()`.

    On SQLite it is a BEGIN IMMEDIATE: it takes the write lock at once, so two writers are
    serialized up front (the batch claim's compare-and-set relies on it) instead of one
    failing with "database is locked" when its read lock is upgraded. Given a Connection
    (a long-lived writer's), the transaction is begun on it. Every write in campaign/ goes
    through here (tests/test_store_engine.py checks that no other `.begin()` is left)."""
    if isinstance(bind, Engine):
        with bind.connect() as conn, write(conn) as inner:
            yield inner
        return
    bind.execution_options(**{WRITE_OPTION: True})
    try:
        with bind.begin():
            yield bind
    finally:
        bind.execution_options(**{WRITE_OPTION: False})


def autocommit(engine: Engine) -> Connection:
    """A connection of `engine` on which each statement is its own transaction, committed
    when it has run (its result read to the end): a round of the send loop that is one or
    two statements needs no BEGIN and COMMIT around them.

    PostgreSQL: the AUTOCOMMIT isolation level, on a connection of its own (detached from
    the pool: closing it ends it) whose prepared statements keep their generic plan
    (`plan_cache_mode`): the driver prepares a statement run five times, and the send
    loop's round, planned afresh each time by default (its `lim` known), spent a fifth of
    its server time planning; its generic plan searches the same keys (claim_sql). The
    setting never reaches the pool's connections, where a generic plan could be a bad one.

    SQLite: the driver is always in autocommit mode here (`_sqlite_pragmas`); the
    connection only tells `_sqlite_begin` not to begin (SQLAlchemy's own AUTOCOMMIT level
    would set pysqlite's isolation level back to a deferred BEGIN of its own when the
    connection goes back to the pool)."""
    conn = engine.connect()
    if conn.dialect.name == "sqlite":
        conn.execution_options(**{AUTOCOMMIT_OPTION: True})
        return conn
    conn.execution_options(isolation_level="AUTOCOMMIT")
    conn.detach()
    if (conn.dialect.server_version_info or (0,)) >= (12,):  # the setting came in 12
        try:
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        except StoreFailure:
            conn.close()  # detached: nobody else would close it
            raise
    return conn


def _sqlite_begin(conn: Connection) -> None:
    """A write transaction (`write`) takes the write lock at once: BEGIN IMMEDIATE. Any other
    transaction, the store's reads (`engine.connect()`, begun by SQLAlchemy on the first
    statement), is a deferred BEGIN: in WAL mode it reads its snapshot while a writer works,
    so `status` or an export never queue behind a send. Public API only: the `begin` event
    and the connection's execution options (no subclass of Connection). A connection of
    `autocommit` begins nothing: each of its statements commits itself."""
    options = conn.get_execution_options()
    if options.get(AUTOCOMMIT_OPTION, False):
        return
    if options.get(WRITE_OPTION, False):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _stored_version(conn: Connection) -> int | None:
    if not conn.dialect.has_table(conn, "meta"):
        return None
    value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    try:
        return int(value) if value is not None else None
    except ValueError:
        raise StoreError(f"the store has an unreadable schema version {value!r}") from None


def _check_and_upgrade(conn: Connection, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store was written by a newer version of campaign (schema {version}, "
            f"this version knows {SCHEMA_VERSION}); upgrade campaign to use it"
        )
    while version < SCHEMA_VERSION:
        UPGRADES[version](conn)
        version += 1
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))
    metadata.create_all(conn)  # tables added without changes to existing ones


def store_answers(engine: Engine) -> bool:
    """Whether the store answers a trivial query now (a health check; never raises)."""
    try:
        with engine.connect() as conn:
            conn.execute(select(literal(1))).scalar()
        return True
    except SQLAlchemyError:
        return False


def stored_schema_version(engine: Engine) -> int | None:
    """The schema version the store says it has (the console's health page); None when it
    cannot be read now (never raises)."""
    try:
        with engine.connect() as conn:
            return _stored_version(conn)
    except (SQLAlchemyError, StoreError):
        return None


def store_failures_raise(doing: str, hint: str = "") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function so that a store failing in it (locked, gone, a dropped
    connection: any SQLAlchemyError) is a StoreError (exit 3) naming what it was doing."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            except SQLAlchemyError as exc:
                what = f" {doing}" if doing else ""
                extra = f" ({hint})" if hint else ""
                raise StoreError(f"the store failed{what}: {first_line(exc)}{extra}") from None

        return wrapper

    return decorate


#: Any failure of the store (a lost connection, a locked database, a constraint): what a
#: caller above the store catches without importing SQLAlchemy itself.
StoreFailure = SQLAlchemyError

__all__ = [
    "SCHEMA_VERSION",
    "OperationalError",
    "StoreFailure",
    "autocommit",
    "first_line",
    "is_sqlite",
    "open_store",
    "safe_url",
    "store_answers",
    "store_failures_raise",
    "stored_schema_version",
    "write",
]
