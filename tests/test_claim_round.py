"""A claim round (`settle_and_claim`): the answers recorded and the next batches claimed in one
transaction; when the round needs nothing else, on a connection of `autocommit`, in ONE
statement on PostgreSQL and two self-committing ones on SQLite."""

from __future__ import annotations

import contextlib
import sqlite3
import threading

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from campaign.outcomes import BatchState, CampaignState
from campaign.store import open_store
from campaign.store.batches import BatchResult, batch_state_counts, settle_and_claim
from campaign.store.campaigns import create_campaign, set_state
from campaign.store.engine import autocommit, write
from campaign.store.schema import batches
from tests.support.plans import small_plan


@pytest.fixture
def pg_engine(pg_url):
    engine = open_store(pg_url)
    yield engine
    engine.dispose()


def _sending(engine, n: int = 13) -> int:
    """A campaign `sending` with n - 1 batches of one mobile (row 1 is invalid)."""
    cid = create_campaign(engine, small_plan(n, 1), name="round", settings_snapshot={})
    set_state(engine, cid, CampaignState.SENDING)
    return cid


def _statements(engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda c, cur, sql, *a: seen.append(sql))
    return seen


def _rows(engine, cid: int) -> dict[str, tuple]:
    columns = (batches.c.batch_id, batches.c.state, batches.c.attempts, batches.c.claimed_by)
    with engine.connect() as conn:
        found = conn.execute(select(*columns).where(batches.c.campaign_id == cid)).all()
    return {row[0]: tuple(row[1:]) for row in found}


def test_a_round_of_final_answers_and_a_claim_is_one_statement_on_postgresql(pg_engine):
    engine = pg_engine
    cid = _sending(engine)
    first = settle_and_claim(engine, cid, "w1", [], 2)
    seen = _statements(engine)
    answers = [
        BatchResult(first.batches[0].batch_id, BatchState.ACCEPTED, "m1", "0"),
        BatchResult(first.batches[1].batch_id, BatchState.REJECTED, None, "104", "no"),
    ]
    round_ = settle_and_claim(engine, cid, "w1", answers, 5)
    assert len(seen) == 1 and "UPDATE batches" in seen[0]  # answers, state, claim
    assert round_.state == "sending"
    assert [b.seq for b in round_.batches] == [3, 4, 5, 6, 7]
    assert all(b.attempts == 1 and len(b.mobiles) == 1 for b in round_.batches)
    rows = _rows(engine, cid)
    assert rows[first.batches[0].batch_id] == ("accepted", 1, "w1")
    assert rows[first.batches[1].batch_id] == ("rejected", 1, "w1")
    assert all(rows[b.batch_id] == ("sending", 1, "w1") for b in round_.batches)
    assert batch_state_counts(engine, cid)["pending"] == 5


def test_released_batches_are_claimed_again_with_their_attempts(engine):
    cid = _sending(engine, n=4)  # 3 batches
    first = settle_and_claim(engine, cid, "w1", [], 3)
    back = BatchResult(first.batches[0].batch_id, BatchState.PENDING, None, "110", "busy")
    done = [
        BatchResult(b.batch_id, BatchState.ACCEPTED, f"m{b.seq}", "0") for b in first.batches[1:]
    ]
    again = settle_and_claim(engine, cid, "w1", [back, *done], 3)
    assert [(b.batch_id, b.attempts) for b in again.batches] == [(back.batch_id, 2)]
    assert _rows(engine, cid)[back.batch_id] == ("sending", 2, "w1")
    # the answer of the second try, and nothing left to claim
    last = BatchResult(back.batch_id, BatchState.ACCEPTED, "m9", "0")
    end = settle_and_claim(engine, cid, "w1", [last], 3)
    assert (end.batches, end.state) == ([], "sending")
    assert batch_state_counts(engine, cid)["accepted"] == 3


def test_nothing_is_claimed_from_a_paused_campaign_but_the_answers_are_kept(engine):
    cid = _sending(engine)
    first = settle_and_claim(engine, cid, "w1", [], 1)
    set_state(engine, cid, CampaignState.PAUSED)
    answer = BatchResult(first.batches[0].batch_id, BatchState.ACCEPTED, "m1", "0")
    round_ = settle_and_claim(engine, cid, "w1", [answer], 5)
    assert (round_.batches, round_.state) == ([], "paused")
    counts = batch_state_counts(engine, cid)
    assert (counts["accepted"], counts["pending"], counts["sending"]) == (1, 11, 0)


def _claim_at_once(engine, cid: int, autocommitted: dict[str, bool]) -> dict[str, list[str]]:
    """Claimers (their names: whether in plain autocommit rounds) claiming and answering
    until nothing is left, each round begun at once in all of them; the batches each took."""
    claimed: dict[str, list[str]] = {worker: [] for worker in autocommitted}
    errors: list[BaseException] = []
    rounds = threading.Barrier(len(autocommitted))

    def work(worker: str) -> None:
        answers: list[BatchResult] = []
        auto = autocommit(engine) if autocommitted[worker] else None
        try:
            while True:
                with contextlib.suppress(threading.BrokenBarrierError):  # one is done
                    rounds.wait(10)
                round_ = settle_and_claim(engine, cid, worker, answers, 7, autocommit=auto)
                answers = [
                    BatchResult(b.batch_id, BatchState.ACCEPTED, f"m-{b.batch_id}", "0")
                    for b in round_.batches
                ]
                claimed[worker] += [b.batch_id for b in round_.batches]
                if not round_.batches:
                    return
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            rounds.abort()
            if auto is not None:
                auto.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    return claimed


def test_workers_claiming_at_once_never_share_a_batch(pg_engine):
    engine = pg_engine
    cid = _sending(engine, n=401)  # 400 batches
    claimed = _claim_at_once(engine, cid, {"w1": False, "w2": False, "w3": False})
    every = [batch for ids in claimed.values() for batch in ids]
    assert len(every) == len(set(every)) == 400
    assert batch_state_counts(engine, cid)["accepted"] == 400
    rows = _rows(engine, cid)
    assert all(rows[b][1:] == (1, w) for w, ids in claimed.items() for b in ids)


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    yield engine
    engine.dispose()


def test_a_plain_round_is_two_self_committing_statements_on_sqlite(sqlite_engine):
    """On a connection of `autocommit`, SQLite's round is the answers' UPDATE, then the
    claim's UPDATE ... RETURNING, with no BEGIN or COMMIT: each has committed when the round
    returns (another connection reads the claim; the driver is in no transaction)."""
    engine = sqlite_engine
    cid = _sending(engine)
    auto = autocommit(engine)
    try:
        first = settle_and_claim(engine, cid, "w1", [], 2, autocommit=auto)
        seen = _statements(engine)
        answers = [
            BatchResult(first.batches[0].batch_id, BatchState.ACCEPTED, "m1", "0"),
            BatchResult(first.batches[1].batch_id, BatchState.REJECTED, None, "104", "no"),
        ]
        round_ = settle_and_claim(engine, cid, "w1", answers, 5, autocommit=auto)
        assert [sql.split(None, 1)[0] for sql in seen] == ["WITH", "UPDATE"], seen
        assert "RETURNING" in seen[1] and not any("BEGIN" in sql for sql in seen)
        assert not auto.connection.dbapi_connection.in_transaction
        assert round_.state == "sending"
        assert [b.seq for b in round_.batches] == [3, 4, 5, 6, 7]
        assert all(b.attempts == 1 and len(b.mobiles) == 1 for b in round_.batches)
        rows = _rows(engine, cid)  # a connection of its own
        assert rows[first.batches[0].batch_id] == ("accepted", 1, "w1")
        assert rows[first.batches[1].batch_id] == ("rejected", 1, "w1")
        assert all(rows[b.batch_id] == ("sending", 1, "w1") for b in round_.batches)
        # what the candidates read would have given: text, mobiles, sizes
        with engine.connect() as conn:
            stored = conn.execute(
                select(batches.c.batch_id, batches.c.text, batches.c.mobiles, batches.c.size).where(
                    batches.c.campaign_id == cid
                )
            ).all()
        by_id = {row[0]: row[1:] for row in stored}
        for batch in round_.batches:
            text, mobiles, size = by_id[batch.batch_id]
            assert (batch.text, ",".join(batch.mobiles), batch.size) == (text, mobiles, size)
    finally:
        auto.close()


def test_a_round_with_a_released_answer_is_one_transaction_on_sqlite(sqlite_engine):
    """Not a plain round (an answer goes back to pending): the transaction of several
    statements, on the held connection, even with an autocommit one at hand."""
    engine = sqlite_engine
    cid = _sending(engine, n=4)
    auto = autocommit(engine)
    try:
        first = settle_and_claim(engine, cid, "w1", [], 3, autocommit=auto)
        seen = _statements(engine)
        back = BatchResult(first.batches[0].batch_id, BatchState.PENDING, None, "110", "busy")
        again = settle_and_claim(engine, cid, "w1", [back], 1, autocommit=auto)
        assert seen[0] == "BEGIN IMMEDIATE" and "RETURNING" not in " ".join(seen)
        assert [(b.batch_id, b.attempts) for b in again.batches] == [(back.batch_id, 2)]
    finally:
        auto.close()


def test_nothing_is_claimed_on_sqlite_from_a_paused_campaign_in_a_plain_round(sqlite_engine):
    engine = sqlite_engine
    cid = _sending(engine)
    auto = autocommit(engine)
    try:
        first = settle_and_claim(engine, cid, "w1", [], 1, autocommit=auto)
        set_state(engine, cid, CampaignState.PAUSED)
        answer = BatchResult(first.batches[0].batch_id, BatchState.ACCEPTED, "m1", "0")
        round_ = settle_and_claim(engine, cid, "w1", [answer], 5, autocommit=auto)
        assert (round_.batches, round_.state) == ([], "paused")
        counts = batch_state_counts(engine, cid)
        assert (counts["accepted"], counts["pending"], counts["sending"]) == (1, 11, 0)
    finally:
        auto.close()


def test_answers_written_before_a_failed_claim_are_written_once_again(sqlite_engine):
    """The answers and the claim of a plain SQLite round are two transactions: when the
    claim fails after the answers were written, the loop writes the same answers with its
    next round; they change nothing the second time, and the claim then goes on."""
    engine = sqlite_engine
    cid = _sending(engine, n=8)  # 7 batches
    auto = autocommit(engine)
    try:
        first = settle_and_claim(engine, cid, "w1", [], 2, autocommit=auto)
        answers = [
            BatchResult(b.batch_id, BatchState.ACCEPTED, f"m{b.seq}", "0") for b in first.batches
        ]

        def fail_the_claim(conn, cursor, statement, *args):
            if "RETURNING" in statement:
                raise sqlite3.OperationalError("disk I/O error")

        event.listen(engine, "before_cursor_execute", fail_the_claim)
        with pytest.raises(OperationalError):
            settle_and_claim(engine, cid, "w1", answers, 2, autocommit=auto)
        event.remove(engine, "before_cursor_execute", fail_the_claim)
        assert batch_state_counts(engine, cid)["accepted"] == 2  # written (and committed)
        assert batch_state_counts(engine, cid)["sending"] == 0  # nothing claimed
        round_ = settle_and_claim(engine, cid, "w1", answers, 2, autocommit=auto)
        assert [b.seq for b in round_.batches] == [3, 4]
        rows = _rows(engine, cid)
        assert all(rows[b.batch_id] == ("accepted", 1, "w1") for b in first.batches)
        counts = batch_state_counts(engine, cid)
        assert (counts["accepted"], counts["sending"], counts["pending"]) == (2, 2, 3)
    finally:
        auto.close()


def test_sqlite_claimers_at_once_never_share_a_batch(sqlite_engine):
    """Three claimers on one SQLite file, two in plain autocommit rounds and one in
    transactions (BEGIN IMMEDIATE): the claim's one statement is a compare-and-set."""
    engine = sqlite_engine
    cid = _sending(engine, n=301)  # 300 batches
    claimed = _claim_at_once(engine, cid, {"w1": True, "w2": True, "w3": False})
    every = [batch for ids in claimed.values() for batch in ids]
    assert len(every) == len(set(every)) == 300
    assert all(claimed.values())  # each of them claimed some
    assert batch_state_counts(engine, cid)["accepted"] == 300


def test_an_autocommit_connection_leaves_the_pool_as_it_was(sqlite_engine):
    """Back in the pool, the same driver connection begins its transactions again (a
    write takes the lock at once: BEGIN IMMEDIATE; a read a deferred BEGIN)."""
    engine = sqlite_engine
    cid = _sending(engine, n=3)
    auto = autocommit(engine)
    raw = auto.connection.dbapi_connection
    auto.close()
    seen = _statements(engine)
    with write(engine) as conn:
        assert conn.connection.dbapi_connection is raw
        conn.execute(batches.update().where(batches.c.campaign_id == cid).values(detail="x"))
        assert raw.in_transaction
    with engine.connect() as conn:
        conn.execute(select(batches.c.detail)).all()
        assert raw.in_transaction
    assert seen[0] == "BEGIN IMMEDIATE" and "BEGIN" in seen
    assert raw.isolation_level is None  # SQLAlchemy issues the BEGINs, not the driver


def test_rounds_on_postgresql_keep_their_generic_plan_on_a_connection_of_their_own(pg_engine):
    """The round is prepared by the driver after five runs; on the loop's autocommit
    connection it keeps its generic plan (no planning per round), a setting that never
    reaches the connections of the pool."""
    engine = pg_engine
    cid = _sending(engine, n=40)
    conn = autocommit(engine)
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    claimed: list = []
    for _ in range(8):
        answers = [BatchResult(b.batch_id, BatchState.ACCEPTED, f"m{b.seq}", "0") for b in claimed]
        claimed = settle_and_claim(conn, cid, "w1", answers, 3, autocommit=conn).batches
    plans = conn.exec_driver_sql(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE starts_with(statement, 'WITH locked AS')"
    ).all()
    assert plans and all(generic >= 2 and custom == 0 for generic, custom in plans), plans
    conn.close()
    with engine.connect() as other:
        assert other.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "auto"
        backends = other.exec_driver_sql("SELECT pid FROM pg_stat_activity").scalars().all()
    assert pid not in backends  # closed, not back in the pool
    assert batch_state_counts(engine, cid)["accepted"] == 21
