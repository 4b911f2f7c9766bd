"""Planner statistics on PostgreSQL (store/statistics.py): a campaign's tables go from
empty to thousands of rows before autovacuum looks at them; the results reads ANALYZE
them first, or an export right after a send ran for minutes (20,000 rows: > 300 s)."""

from __future__ import annotations

import os

import psycopg
import pytest

from campaign.store import open_store
from campaign.store.results import outcome_counts
from campaign.store.statistics import (
    CHECK_EVERY,
    TABLES,
    forget_checks,
    refresh_statistics,
    unknown_to_planner,
)
from tests.support.plans import contact_file, planned_campaign

pytestmark = pytest.mark.postgres
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _analyzed(pg_url: str) -> dict[str, bool]:
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(os.environ.get("CAMPAIGN_TEST_PG", PG_DEFAULT)) as conn:
        rows = conn.execute(
            "SELECT relname, COALESCE(last_analyze, last_autoanalyze) IS NOT NULL"
            " FROM pg_stat_user_tables WHERE schemaname = %s",
            (schema,),
        ).fetchall()
    return {name: done for name, done in rows if name in TABLES}


def test_stale_tables_are_analyzed_before_the_results_are_read(pg_url, tmp_path):
    forget_checks()
    engine = open_store(pg_url)
    try:
        rows = [[f"名{i}", f"139{i:08d}"] for i in range(3_000)]
        cid = planned_campaign(engine, [contact_file(tmp_path / "l.csv", ["name", "mobile"], rows)])
        assert _analyzed(pg_url) == dict.fromkeys(TABLES, False)
        assert outcome_counts(engine, cid)["unsent"] == 3_000  # a results read analyzes first
        assert _analyzed(pg_url) == dict.fromkeys(TABLES, True)
        # checked at most every CHECK_EVERY seconds (a backend's counts of the inserts may
        # reach pg_stat after the ANALYZE: a later check may analyze a table once more)
        assert refresh_statistics(engine) == []
    finally:
        engine.dispose()


def test_checks_are_spaced_per_store(pg_url, tmp_path):
    forget_checks()
    engine = open_store(pg_url)
    try:
        assert sorted(refresh_statistics(engine, now=1_000.0)) == sorted(TABLES)  # never analyzed
        assert refresh_statistics(engine, now=1_000.0 + CHECK_EVERY / 2) == []
    finally:
        engine.dispose()


def test_sqlite_has_nothing_to_analyze(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert refresh_statistics(engine) == []
    finally:
        engine.dispose()


def test_a_campaign_newer_than_the_statistics_is_analyzed_whatever_the_counters_say(
    pg_url, tmp_path
):
    """The change counters reach pg_stat seconds after a commit: a campaign created after
    the last ANALYZE is caught by the planner's estimate of its rows (one, for thousands)."""
    forget_checks()
    engine = open_store(pg_url)
    try:
        rows = [[f"名{i}", f"139{i:08d}"] for i in range(3_000)]
        first = planned_campaign(engine, [contact_file(tmp_path / "a.csv", ["n", "mobile"], rows)])
        assert refresh_statistics(engine, first)  # never analyzed
        other = [[f"名{i}", f"137{i:08d}"] for i in range(3_000)]
        second = planned_campaign(
            engine, [contact_file(tmp_path / "b.csv", ["n", "mobile"], other)], name="b"
        )
        with engine.connect() as conn:
            assert not unknown_to_planner(conn, first)
            assert unknown_to_planner(conn, second)
        assert sorted(refresh_statistics(engine, second)) == sorted(TABLES)
        with engine.connect() as conn:
            assert not unknown_to_planner(conn, second)
    finally:
        engine.dispose()
