"""A claim round (`settle_and_claim`): the answers recorded and the next batches claimed in one
transaction; on PostgreSQL, when the round needs nothing else, in ONE statement."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, select

from campaign.outcomes import BatchState, CampaignState
from campaign.store import open_store
from campaign.store.batches import BatchResult, batch_state_counts, settle_and_claim
from campaign.store.campaigns import create_campaign, set_state
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


def test_workers_claiming_at_once_never_share_a_batch(pg_engine):
    engine = pg_engine
    cid = _sending(engine, n=401)  # 400 batches
    claimed: dict[str, list[str]] = {"w1": [], "w2": [], "w3": []}
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        answers: list[BatchResult] = []
        try:
            while True:
                round_ = settle_and_claim(engine, cid, worker, answers, 7)
                answers = [
                    BatchResult(b.batch_id, BatchState.ACCEPTED, f"m-{b.batch_id}", "0")
                    for b in round_.batches
                ]
                claimed[worker] += [b.batch_id for b in round_.batches]
                if not round_.batches:
                    return
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    every = [batch for ids in claimed.values() for batch in ids]
    assert len(every) == len(set(every)) == 400
    assert batch_state_counts(engine, cid)["accepted"] == 400
    rows = _rows(engine, cid)
    assert all(rows[b][1:] == (1, w) for w, ids in claimed.items() for b in ids)
