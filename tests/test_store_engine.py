from __future__ import annotations

import pytest
import sqlalchemy as sa

from campaign.errors import StoreError
from campaign.store import open_store
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
    """engine.begin() and conn.begin() are BEGIN IMMEDIATE: the second writer waits at its
    begin for the first one to finish (the batch claim's compare-and-set relies on it)."""
    engine = open_store(sqlite_url)
    began: list[str] = []

    def explicit_engine_begin():
        with engine.begin():
            began.append("engine.begin")

    def explicit_conn_begin():
        with engine.connect() as conn, conn.begin():
            began.append("conn.begin")

    for second_writer in (explicit_engine_begin, explicit_conn_begin):
        with engine.begin() as writer:
            writer.exec_driver_sql("SELECT 1")
            done, errors = _in_thread(second_writer)
            assert not done.wait(0.5), "a second write transaction began beside the first"
        assert done.wait(10) and not errors
    assert began == ["engine.begin", "conn.begin"]
    engine.dispose()


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
