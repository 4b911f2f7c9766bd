"""The claim finds its batches by primary key on SQLite (claim_sql.py): without ANALYZE
statistics the planner took ix_batches_state and read every pending batch of the campaign
for each claim of a few dozen."""

from __future__ import annotations

import json
import re

from campaign.outcomes import CampaignState
from campaign.store import open_store
from campaign.store.batches import BatchResult, settle_and_claim
from campaign.store.campaigns import create_campaign, set_state
from campaign.store.claim_sql import claim_statements
from campaign.store.engine import autocommit
from campaign.store.statistics import forget_checks, refresh_statistics
from campaign.timeutil import utcnow
from tests.support.plans import small_plan


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


def test_postgresql_statements_keep_the_state_from_the_index_in_their_own_way():
    """No unary "+" on PostgreSQL (not an operator on text): `state || ''` instead."""
    for statement in (claim_statements("postgresql").take, claim_statements("postgresql").taken):
        where = str(statement).split("WHERE", 1)[1]
        assert "(batches.state || " in where and "+" not in where, where


def _pg_plan(engine, statement, params: dict) -> str:
    """EXPLAIN (not run) of `statement` with `params` on PostgreSQL."""
    compiled = statement.compile(dialect=engine.dialect)
    expanded = compiled.construct_expanded_state(params)  # a list parameter: one per item
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        rows = raw.execute("EXPLAIN " + expanded.statement, expanded.parameters)
        return "\n".join(row[0] for row in rows.fetchall())


def test_statements_naming_batches_search_the_primary_key_on_postgresql(pg_url):
    """The answers' UPDATEs (settle, release, the round) and the take name their batches:
    the primary key searched for their ids, never ix_batches_state (campaign_id, state),
    whose bitmap scans read the dead index entry each earlier answer left, so each round
    read more than the last. A campaign of 4,000 batches, as the send loop plans it: with
    statistics (a table of a few pages is read whole, rightly)."""
    engine = open_store(pg_url)
    try:
        cid = create_campaign(engine, small_plan(4000, 1), name="plan", settings_snapshot={})
        set_state(engine, cid, CampaignState.SENDING)
        forget_checks()
        assert refresh_statistics(engine, cid)  # as the send loop does before its rounds
        ac = autocommit(engine)
        claimed: list = []
        for _ in range(12):  # answered rounds leave dead index entries behind
            answers = [BatchResult(b.batch_id, "accepted", f"m{b.seq}", "0") for b in claimed]
            claimed = settle_and_claim(ac, cid, "w1", answers, 32, autocommit=ac).batches
        ac.close()
        statements = claim_statements("postgresql")
        answers = json.dumps([[b.batch_id, "accepted", "m", "0", None] for b in claimed])
        ids = [b.batch_id for b in claimed]
        params = {"cid": cid, "worker": "w1", "lim": 32, "now": utcnow(), "answers": answers}
        for statement in (statements.take, statements.taken):  # the ids as a list
            plan = _pg_plan(engine, statement, {**params, "ids": ids})
            assert "ix_batches_state" not in plan, plan
            assert re.search(r"batches_pkey.*\n\s+Index Cond: \(\(campaign_id = \d+\) AND", plan), (
                plan
            )
        for statement in (statements.settle, statements.release, statements.settle_and_pop):
            plan = _pg_plan(engine, statement, params)
            assert "Bitmap Index Scan on ix_batches_state" not in plan, plan
            by_key = (
                r"batches_pkey.*\n\s+"
                r"Index Cond: \(\(campaign_id = \d+\) AND \(\(batch_id\)::text = ANY"
            )
            assert re.search(by_key, plan), plan
    finally:
        engine.dispose()
