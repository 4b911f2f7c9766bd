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
