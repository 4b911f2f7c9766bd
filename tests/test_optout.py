"""The suppression list: the store module on SQLite and PostgreSQL, and `campaign optout`."""

from __future__ import annotations

import pytest

from campaign.store import open_store
from campaign.store import suppression as sup


@pytest.fixture
def engine(store_url):
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def test_add_counts_only_new_numbers(engine):
    assert sup.add(engine, ["13800138000", "13900139000"], "manual") == 2
    assert sup.add(engine, ["13800138000", "13700137000", "13700137000"], "import", "x.csv") == 1
    assert sup.list_all(engine) == ["13700137000", "13800138000", "13900139000"]
    assert sup.suppressed_set(engine) == {"13700137000", "13800138000", "13900139000"}
    assert sup.count(engine) == 3


def test_first_reason_is_kept(engine):
    sup.add(engine, ["13800138000"], "optout reply", "TD")
    sup.add(engine, ["13800138000"], "manual")
    [entry] = sup.entries(engine, ["13800138000"])
    assert entry["reason"] == "optout reply"
    assert entry["detail"] == "TD"
    assert entry["added_at"] is not None


def test_remove_and_is_suppressed(engine):
    sup.add(engine, ["13800138000", "13900139000"])
    assert sup.is_suppressed(engine, "13800138000")
    assert sup.remove(engine, ["13800138000", "13600136000"]) == 1
    assert not sup.is_suppressed(engine, "13800138000")
    assert sup.list_all(engine) == ["13900139000"]
    assert sup.remove(engine, []) == 0
    assert sup.add(engine, []) == 0


def test_many_numbers_in_chunks(engine):
    mobiles = [f"138{i:08d}" for i in range(5000)]
    assert sup.add(engine, mobiles, "import") == 5000
    assert sup.add(engine, [*mobiles[:10], "13900000000"], "import") == 1
    assert len(sup.suppressed_set(engine)) == 5001
    assert sup.remove(engine, mobiles) == 5000


def test_add_in_joins_the_callers_transaction(engine):
    with engine.begin() as conn:
        assert sup.add_in(conn, ["13800138000"], "optout reply", "退订") == 1
    assert sup.is_suppressed(engine, "13800138000")
