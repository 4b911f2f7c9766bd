from __future__ import annotations

import pytest
import sqlalchemy as sa

from campaign.errors import StoreError
from campaign.store import open_store
from campaign.store.engine import write
from campaign.store.schema import SCHEMA_VERSION, meta


def test_open_creates_schema_with_version(store_url):
    engine = open_store(store_url)
    with engine.connect() as conn:
        version = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version"))
        assert version.scalar() == str(SCHEMA_VERSION)
    engine.dispose()
    open_store(store_url).dispose()  # reopening an existing store works


def test_newer_store_is_refused(store_url):
    engine = open_store(store_url)
    with engine.begin() as conn:
        conn.execute(meta.update().values(value=str(SCHEMA_VERSION + 1)))
    engine.dispose()
    with pytest.raises(StoreError, match="newer version"):
        open_store(store_url)


def test_unopenable_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not open"):
        open_store(f"sqlite:///{tmp_path}/missing-folder/x.db")
    with pytest.raises(StoreError):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_sqlite_is_wal(sqlite_url):
    engine = open_store(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_open_without_create_makes_no_file(tmp_path):
    path = tmp_path / "none.db"
    with pytest.raises(StoreError, match="does not open: no campaign store"):
        open_store(f"sqlite:///{path}", create=False)
    assert not path.exists()


def _in_thread(work):
    """Run `work` in a thread; an Event that is set once it has returned."""
    import threading

    done = threading.Event()
    errors: list[BaseException] = []

    def run():
        try:
            work()
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, errors


def test_sqlite_read_does_not_wait_for_a_long_write(sqlite_url):
    from campaign.store.schema import suppression
    from campaign.timeutil import utcnow

    engine = open_store(sqlite_url)
    seen: list[int] = []

    def read():
        with engine.connect() as conn:
            seen.append(conn.execute(sa.select(sa.func.count()).select_from(suppression)).scalar())

    with engine.begin() as writer:  # holds SQLite's write lock until the block ends
        writer.execute(
            suppression.insert().values(mobile="13800000001", reason="manual", added_at=utcnow())
        )
        done, errors = _in_thread(read)
        assert done.wait(5), "a read waited for the writer"  # the busy timeout is 30 s
        assert not errors and seen == [0]  # its snapshot: the write is not committed yet
    read()
    assert seen == [0, 1]
    engine.dispose()


def test_sqlite_writes_still_take_the_lock_at_begin(sqlite_url):
    """write(engine) and write(conn) are BEGIN IMMEDIATE: the second writer waits at its
    begin for the first one to finish (the batch claim's compare-and-set relies on it)."""
    engine = open_store(sqlite_url)
    began: list[str] = []

    def write_on_engine():
        with write(engine):
            began.append("write(engine)")

    def write_on_connection():
        with engine.connect() as conn, write(conn):
            began.append("write(conn)")

    for second_writer in (write_on_engine, write_on_connection):
        with write(engine) as writer:
            writer.exec_driver_sql("SELECT 1")
            done, errors = _in_thread(second_writer)
            assert not done.wait(0.5), "a second write transaction began beside the first"
            assert began == (["write(engine)"] if second_writer is write_on_connection else [])
        assert done.wait(10) and not errors
    assert began == ["write(engine)", "write(conn)"]
    engine.dispose()


def test_sqlite_concurrent_read_then_write_transactions_serialize(sqlite_url):
    """Two writers that each read, then write what they read (a compare-and-set), both
    succeed in turn: IMMEDIATE serializes them at BEGIN, so neither fails with "database
    is locked" when its read lock would be upgraded, and no update is lost."""
    import threading

    engine = open_store(sqlite_url)
    with write(engine) as conn:
        conn.execute(meta.insert().values(key="counter", value="0"))
    counter = sa.select(meta.c.value).where(meta.c.key == "counter")
    both_read = threading.Barrier(2, timeout=0.5)
    waited: list[bool] = []

    def increment():
        with write(engine) as conn:
            value = int(conn.execute(counter).scalar_one())
            try:
                both_read.wait()  # with deferred BEGINs both would be here at once
            except threading.BrokenBarrierError:
                waited.append(True)  # the other writer is held at its BEGIN: expected
            conn.execute(meta.update().where(meta.c.key == "counter").values(value=str(value + 1)))

    runs = [_in_thread(increment) for _ in range(2)]
    for done, errors in runs:
        assert done.wait(20)
        assert errors == []
    with engine.connect() as conn:
        assert conn.execute(counter).scalar_one() == "2"
    assert waited == [True, True]
    engine.dispose()


def test_sqlite_reads_are_deferred_and_writes_immediate(sqlite_url):
    """What each transaction issues, seen from the driver: reads BEGIN, writes BEGIN IMMEDIATE,
    and a connection used for a write goes back to deferred reads afterwards."""
    engine = open_store(sqlite_url)
    issued: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(_conn, _cursor, statement, *_args):
        if statement.startswith("BEGIN"):
            issued.append(statement)

    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        conn.rollback()
        with write(conn):
            conn.exec_driver_sql("SELECT 1")
        conn.exec_driver_sql("SELECT 1")
        conn.rollback()
    with write(engine) as conn:
        conn.exec_driver_sql("SELECT 1")
    assert issued == ["BEGIN", "BEGIN IMMEDIATE", "BEGIN", "BEGIN IMMEDIATE"]
    engine.dispose()


def test_every_write_in_campaign_goes_through_write():
    """A bare engine.begin()/conn.begin() would be a deferred BEGIN on SQLite, open to
    "database is locked" on its lock upgrade: every write transaction uses store.engine.write."""
    import ast
    from pathlib import Path

    import campaign

    root = Path(campaign.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"begin", "begin_nested"}
                and not (path.name == "engine.py" and path.parent.name == "store")
            ):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == [], f"use campaign.store.engine.write, not .begin(): {offenders}"


def test_schema_1_store_is_upgraded_in_place(store_url):
    engine = open_store(store_url)
    with engine.begin() as conn:  # make it a store as schema 1 wrote it
        conn.exec_driver_sql("DROP INDEX ix_campaigns_fingerprint")
        conn.exec_driver_sql("ALTER TABLE campaigns DROP COLUMN fingerprint")
        conn.exec_driver_sql("ALTER TABLE suppression DROP COLUMN added_by")
        conn.execute(meta.update().values(value="1"))
    engine.dispose()
    engine = open_store(store_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(meta.c.value)).scalar() == str(SCHEMA_VERSION)
        columns = {c["name"] for c in sa.inspect(conn).get_columns("campaigns")}
        assert "fingerprint" in columns
        columns = {c["name"] for c in sa.inspect(conn).get_columns("suppression")}
        assert "added_by" in columns
    engine.dispose()
