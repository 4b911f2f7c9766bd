"""The claim finds its batches by primary key on SQLite (claim_sql.py): without ANALYZE
statistics the planner took ix_batches_state and read every pending batch of the campaign
for each claim of a few dozen."""

from __future__ import annotations

import re

from campaign.store import open_store
from campaign.store.claim_sql import claim_statements


def _query_plan(engine, statement) -> str:
    sql = str(statement.compile(dialect=engine.dialect))
    sql = re.sub(r"__\[POSTCOMPILE_\w+\]", "?, ?, ?", sql)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        rows = raw.execute("EXPLAIN QUERY PLAN " + sql, [None] * sql.count("?")).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


def test_take_and_taken_search_the_primary_key(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        statements = claim_statements("sqlite")
        for statement in (statements.take, statements.taken):
            plan = _query_plan(engine, statement)
            assert "sqlite_autoindex_batches_1 (campaign_id=? AND batch_id=?)" in plan, plan
            assert "ix_batches_state" not in plan, plan
    finally:
        engine.dispose()


def test_the_one_statement_claim_finds_the_next_by_seq_and_sets_them_by_key(tmp_path):
    """SQLite's claim of a plain round (UPDATE ... RETURNING): the next pending batches in
    seq order straight from ix_batches_state (no sort of every pending batch), then each set
    by its primary key."""
    engine = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        claim = claim_statements("sqlite").claim
        assert claim is not None
        plan = _query_plan(engine, claim)
        assert "SEARCH batches USING COVERING INDEX sqlite_autoindex_batches_1" in plan, plan
        assert "SEARCH next USING INDEX ix_batches_state (campaign_id=? AND state=?)" in plan
        assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan
    finally:
        engine.dispose()


def test_postgresql_statements_compare_the_state_plainly():
    text = str(claim_statements("postgresql").take)
    assert "batches.state = " in text and "+" not in text.split("WHERE", 1)[1]
