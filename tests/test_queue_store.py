"""The store side of queued sending (schema 4) on SQLite and the real PostgreSQL: schedule and
next_due, pause and cancel, claims that respect the campaign's state and the shared pace,
the cancelled outcome, the repeat guard on cancelled campaigns, the upgrade from schema 3."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from campaign.errors import InputError, RepeatError, StoreError
from campaign.outcomes import BatchState, CampaignState
from campaign.result_rows import iter_results
from campaign.store import batches as batch_store
from campaign.store import open_store
from campaign.store.batches import (
    BatchResult,
    batch_figures,
    batch_state_counts,
    claim_batches,
    settle_and_claim,
)
from campaign.store.campaigns import create_campaign, get_campaign, set_state
from campaign.store.engine import write
from campaign.store.pace import Pace, gcra
from campaign.store.queue import (
    cancel,
    next_due,
    pause,
    pick_due,
    resume_paused,
    schedule,
    sweep,
)
from campaign.store.repeats import RepeatGuard, read_repeat
from campaign.store.schema import SCHEMA_VERSION, campaigns, meta, send_pace
from campaign.store.workers import (
    beat_process,
    live_processes,
    live_workers,
    register_process,
    register_worker,
    unregister_process,
)
from tests.support.plans import small_plan

WHO = "alice@desk"


def _new(engine, n: int = 10, per_batch: int = 3, name: str = "spring") -> int:
    """A planned campaign: n rows (row 1 invalid), `per_batch` mobiles a batch."""
    return create_campaign(engine, small_plan(n, per_batch), name=name, settings_snapshot={})


def _sending(engine, **kwargs) -> int:
    cid = _new(engine, **kwargs)
    set_state(engine, cid, CampaignState.SENDING)
    return cid


def _claim(engine, cid, limit=1, results=(), pace=None, worker="w1"):
    return settle_and_claim(engine, cid, worker, list(results), limit, pace=pace)


# ---------------------------------------------------------------- schema 4


def _as_schema_3(url: str) -> None:
    """The store as schema 3 left it: no due_at/queued columns, no pace or process table."""
    engine = open_store(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE campaigns DROP COLUMN due_at")
            conn.exec_driver_sql("ALTER TABLE campaigns DROP COLUMN queued")
            conn.exec_driver_sql("DROP TABLE send_pace")
            conn.exec_driver_sql("DROP TABLE worker_processes")
            conn.execute(meta.update().values(value="3"))
    finally:
        engine.dispose()


def _columns(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {c["name"] for c in sa.inspect(conn).get_columns("campaigns")}
    finally:
        engine.dispose()


def test_a_schema_3_store_is_upgraded_to_4_with_its_data(store_url):
    engine = open_store(store_url)
    cid = _new(engine)
    set_state(engine, cid, CampaignState.STOPPED, reason="quota exhausted")
    claim_batches(engine, cid, "w1", 1)
    engine.dispose()
    _as_schema_3(store_url)

    needs = f"schema version 3, this version of campaign needs {SCHEMA_VERSION}"
    with pytest.raises(StoreError, match=needs):
        open_store(store_url, create=False, upgrade=False)  # `campaign worker`: no upgrade
    assert "due_at" not in _columns(store_url)  # the refusal changed nothing

    engine = open_store(store_url)  # any other command upgrades it
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(meta.c.value)).scalar() == str(SCHEMA_VERSION) == "5"
            assert sa.inspect(conn).has_table("send_pace")
            assert sa.inspect(conn).has_table("worker_processes")
        record = get_campaign(engine, cid)
        assert (record.name, record.state, record.stop_reason) == (
            "spring",
            "stopped",
            "quota exhausted",
        )
        assert (record.due_at, record.queued) == (None, False)
        assert batch_state_counts(engine, cid)["sending"] == 1
        assert batch_state_counts(engine, cid)["pending"] == 2
        assert schedule(engine, cid, None).state == CampaignState.QUEUED
    finally:
        engine.dispose()
    open_store(store_url, create=False, upgrade=False).dispose()  # current: opens


# ---------------------------------------------------------------- schedule, next_due


def test_a_scheduled_campaign_is_not_due_before_its_time(engine):
    cid = _new(engine)
    due = datetime(2030, 1, 2, 2, 0, tzinfo=UTC)
    record = schedule(engine, cid, due)
    assert (record.state, record.queued, record.due_at) == ("scheduled", True, due)
    assert record.brief()["due_at"] == "2030-01-02T10:00:00+08:00"  # China time

    assert next_due(engine, now=due - timedelta(seconds=1)) is None
    assert get_campaign(engine, cid).state == CampaignState.SCHEDULED
    assert next_due(engine, now=due + timedelta(seconds=1)) == cid
    started = get_campaign(engine, cid)
    assert started.state == CampaignState.SENDING and started.started_at is not None
    # still pending: the next worker joins it
    assert next_due(engine, now=due + timedelta(seconds=2)) == cid


def test_queued_is_due_now_and_the_oldest_due_comes_first(engine):
    later = _new(engine, name="later")
    first = _new(engine, name="first")
    not_queued = _sending(engine, name="sent by a terminal")
    schedule(engine, later, datetime.now(UTC) - timedelta(minutes=1))
    schedule(engine, first, datetime.now(UTC) - timedelta(minutes=5))
    assert next_due(engine) == first
    set_state(engine, first, CampaignState.PAUSED)
    assert next_due(engine) == later
    set_state(engine, later, CampaignState.PAUSED)
    assert next_due(engine) is None  # never one the workers were not given
    assert get_campaign(engine, not_queued).queued is False
    queued = schedule(engine, later, None)
    assert queued.state == CampaignState.QUEUED and queued.due_at is not None
    assert next_due(engine) == later


def test_a_sending_campaign_with_nothing_pending_is_not_due(engine):
    cid = _new(engine, n=4, per_batch=3)  # one batch
    schedule(engine, cid, None)
    assert next_due(engine) == cid
    assert len(_claim(engine, cid).batches) == 1
    assert next_due(engine) is None


@pytest.mark.parametrize("state", ["sending", "finished", "cancelled"])
def test_only_a_campaign_nobody_sends_is_scheduled(engine, state):
    cid = _new(engine)
    with engine.begin() as conn:
        conn.execute(sa.update(campaigns).values(state=state))
    with pytest.raises(InputError, match=f"is {state}"):
        schedule(engine, cid, None)
    assert get_campaign(engine, cid).queued is False


def test_a_workers_window_stop_schedules_its_sending_campaign_straight(engine):
    cid = _new(engine)
    schedule(engine, cid, None)
    assert next_due(engine) == cid
    due = datetime.now(UTC) + timedelta(hours=2)
    sending = (CampaignState.SENDING,)
    record = schedule(engine, cid, due, from_states=sending)
    assert (record.state, record.queued, record.stop_reason) == ("scheduled", True, None)
    assert abs(record.due_at - due) < timedelta(seconds=1)
    with pytest.raises(InputError, match="is scheduled: only a sending campaign"):
        schedule(engine, cid, due, from_states=sending)  # only from sending, nothing changes
    assert get_campaign(engine, cid).due_at == record.due_at

    assert next_due(engine, now=due + timedelta(seconds=1)) == cid
    pause(engine, str(cid), WHO)  # a pause committed before the worker's reschedule wins
    with pytest.raises(InputError, match="is paused"):
        schedule(engine, cid, due, from_states=sending)
    assert get_campaign(engine, cid).state == "paused"
    with pytest.raises(ValueError, match="never scheduled from"):
        schedule(engine, cid, due, from_states=(CampaignState.FINISHED,))


def test_pick_due_tells_the_state_it_moved_the_campaign_from(engine):
    due = datetime.now(UTC) - timedelta(minutes=1)
    scheduled, queued = _new(engine, name="a"), _new(engine, name="b")
    schedule(engine, scheduled, due - timedelta(minutes=1))
    schedule(engine, queued, None)
    assert pick_due(engine) == (scheduled, "scheduled")
    assert pick_due(engine) == (scheduled, "sending")  # pending left: a worker joins it
    pause(engine, str(scheduled), WHO)
    assert pick_due(engine) == (queued, "queued")
    assert get_campaign(engine, queued).state == CampaignState.SENDING
    assert next_due(engine) == queued  # its callers: the id alone
    pause(engine, str(queued), WHO)
    assert pick_due(engine) is None


def test_two_workers_racing_for_one_due_campaign(engine):
    cid = _new(engine)
    schedule(engine, cid, None)
    start = threading.Barrier(4)
    got: list[tuple[int, str] | None] = []
    errors: list[BaseException] = []

    def pick() -> None:
        try:
            start.wait()
            got.append(pick_due(engine))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=pick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(got) <= {(cid, "queued"), (cid, "sending"), None}
    assert got.count((cid, "queued")) == 1  # one started it, the others joined
    assert get_campaign(engine, cid).state == CampaignState.SENDING


def test_set_state_only_from_never_overwrites_a_pause_committed_meanwhile(engine):
    """The race of a sender: it read `sending`, a pause commits, then it writes its final
    state: the compare-and-set refuses, the pause (and its reason) stays."""
    cid = _sending(engine)
    paused = pause(engine, str(cid), WHO)
    only = (CampaignState.SENDING,)
    for state in (CampaignState.STOPPED, CampaignState.FINISHED, CampaignState.SENDING):
        assert set_state(engine, cid, state, reason="the run's own", only_from=only) is False
    record = get_campaign(engine, cid)
    assert (record.state, record.stop_reason) == ("paused", paused.stop_reason)
    assert record.finished_at is None

    cancel(engine, str(cid), WHO)
    assert set_state(engine, cid, CampaignState.STOPPED, only_from=only) is False
    assert get_campaign(engine, cid).state == "cancelled"


def test_set_state_only_from_moves_from_the_expected_state(engine):
    cid = _new(engine)
    assert set_state(engine, cid, CampaignState.SENDING, only_from=("planned",)) is True
    assert set_state(engine, cid, "stopped", reason="quota", only_from=("sending",)) is True
    record = get_campaign(engine, cid)
    assert (record.state, record.stop_reason) == ("stopped", "quota")
    assert set_state(engine, cid, "sending", only_from=()) is False  # no state: never
    assert set_state(engine, cid, "sending") is True  # no condition: it exists
    assert set_state(engine, 999_999, "sending") is False


# ---------------------------------------------------------------- claims and the state


def test_claims_stop_when_the_campaign_is_paused_cancelled_or_stopped(engine):
    cid = _sending(engine, n=13, per_batch=1)  # 12 batches
    first = _claim(engine, cid)
    assert (len(first.batches), first.state, first.wait) == (1, "sending", 0.0)

    paused = pause(engine, str(cid), WHO)
    assert paused.state == "paused" and paused.stop_reason.startswith(f"paused by {WHO} at ")
    answer = BatchResult(first.batches[0].batch_id, BatchState.ACCEPTED, "m1", "0")
    round_ = _claim(engine, cid, limit=5, results=[answer])  # answers still recorded
    assert (round_.batches, round_.state) == ([], "paused")
    assert batch_state_counts(engine, cid)["accepted"] == 1

    assert resume_paused(engine, str(cid), queue=True).state == CampaignState.QUEUED
    assert _claim(engine, cid).state == "queued"  # not until a worker starts it
    assert next_due(engine) == cid
    assert len(_claim(engine, cid).batches) == 1

    set_state(engine, cid, CampaignState.STOPPED, reason="another process stopped it")
    stopped = _claim(engine, cid)
    assert (stopped.batches, stopped.state) == ([], "stopped")
    set_state(engine, cid, CampaignState.SENDING)
    cancel(engine, str(cid), WHO)
    cancelled = _claim(engine, cid)
    assert (cancelled.batches, cancelled.state) == ([], "cancelled")


def test_resume_here_takes_the_campaign_from_the_workers(engine):
    cid = _new(engine)
    schedule(engine, cid, None)
    pause(engine, str(cid), WHO)
    pause(engine, str(cid), "bob@other")  # paused already: unchanged, no error
    assert get_campaign(engine, cid).stop_reason.startswith(f"paused by {WHO}")
    record = resume_paused(engine, str(cid), queue=False)
    assert (record.state, record.queued) == ("paused", False)
    assert next_due(engine) is None


@pytest.mark.parametrize("ended", ["finished", "cancelled"])
def test_pause_cancel_resume_of_an_ended_campaign_change_nothing(engine, ended):
    cid = _new(engine)
    with engine.begin() as conn:
        conn.execute(sa.update(campaigns).values(state=ended, stop_reason="as it was"))
    before = get_campaign(engine, cid)
    counts = batch_state_counts(engine, cid)
    with pytest.raises(InputError, match=f"campaign {cid} 'spring' is {ended}"):
        pause(engine, str(cid), WHO)
    with pytest.raises(InputError, match=f"is {ended}"):
        cancel(engine, "spring", WHO)
    with pytest.raises(InputError, match=f"is {ended}"):
        resume_paused(engine, str(cid), queue=True)
    assert get_campaign(engine, cid) == before
    assert batch_state_counts(engine, cid) == counts


# ---------------------------------------------------------------- cancel


def test_cancel_while_another_connection_holds_claims(engine):
    """A claimer has locked the first two pending batches (its transaction still open) when
    `cancel` comes: cancel waits for it, those two are `sending` (their requests leave), the
    rest is cancelled in cancel's one transaction; their answers are recorded after."""
    cid = _sending(engine, n=7, per_batch=1)  # 6 batches of one mobile
    locked, go = threading.Event(), threading.Event()
    taken: list[str] = []

    def claimer() -> None:
        with write(engine) as conn:
            candidates = batch_store._candidates(conn, cid, 2, None)
            locked.set()
            go.wait(10)
            taken.extend(b.batch_id for b in batch_store._take(conn, cid, "w1", candidates))

    result = []
    holder = threading.Thread(target=claimer)
    holder.start()
    assert locked.wait(10)
    canceller = threading.Thread(target=lambda: result.append(cancel(engine, str(cid), WHO)))
    canceller.start()
    canceller.join(0.5)
    assert canceller.is_alive()  # waits for the claimer's transaction
    go.set()
    holder.join(10)
    canceller.join(10)

    done = result[0]
    assert len(taken) == 2
    assert (done.record.state, done.cancelled_batches, done.cancelled_recipients) == (
        "cancelled",
        4,
        4,
    )
    assert done.record.stop_reason.startswith(f"cancelled by {WHO} at ")
    counts = batch_state_counts(engine, cid)
    assert (counts["sending"], counts["cancelled"], counts["pending"]) == (2, 4, 0)
    figures = batch_figures(engine, cid)
    assert figures["cancelled"] == {"batches": 4, "recipients": 4, "segments": 4}

    answers = [BatchResult(b, BatchState.ACCEPTED, f"m{b}", "0") for b in taken]
    after = _claim(engine, cid, limit=5, results=answers)  # the in-flight answers come back
    assert (after.batches, after.state) == ([], "cancelled")
    assert batch_state_counts(engine, cid)["accepted"] == 2


def _results(engine, cid, lang="en") -> pd.DataFrame:
    return pd.concat(list(iter_results(engine, cid, lang=lang)), ignore_index=True)


def test_result_rows_of_a_cancelled_campaign(engine):
    cid = _sending(engine, n=4, per_batch=1)  # row 1 invalid, then 3 batches
    first = _claim(engine, cid).batches[0]
    _claim(engine, cid, limit=0, results=[BatchResult(first.batch_id, "accepted", "m1", "0")])
    cancel(engine, str(cid), WHO)
    en, zh = _results(engine, cid), _results(engine, cid, "zh")
    assert list(en["outcome"]) == ["pending", "invalid", "cancelled", "cancelled"]
    assert list(en["reason"][2:]) == ["not sent: the campaign was cancelled"] * 2
    assert list(en["msgid"][2:]) == ["", ""]
    assert list(zh["outcome"]) == list(en["outcome"])  # outcomes stay the words of SPEC
    assert list(zh["reason"][2:]) == ["活动已取消，此行未发送"] * 2


# ---------------------------------------------------------------- sweep


def test_sweep_finishes_queued_campaigns_with_nothing_left(engine):
    cid = _new(engine, n=4, per_batch=3)  # one batch
    schedule(engine, cid, None)
    assert next_due(engine) == cid
    dead = register_worker(engine, cid)
    claim_batches(engine, cid, dead, 1)
    with engine.begin() as conn:  # its heartbeat is long stale
        conn.execute(sa.text("UPDATE workers SET heartbeat_at = :t"), {"t": datetime(2000, 1, 1)})
    terminal = _sending(engine, n=4, per_batch=3, name="a terminal sends it")
    assert sweep(engine, stale_after=60) == [cid]
    record = get_campaign(engine, cid)
    assert record.state == "finished" and record.finished_at is not None
    assert batch_state_counts(engine, cid)["unknown"] == 1  # in flight when it died
    assert get_campaign(engine, terminal).state == "sending"  # not the workers'
    assert sweep(engine, stale_after=60) == []


# ---------------------------------------------------------------- the shared pace


def _taken_at(rate: float, burst: int, step: float, want: int, *, follow: bool) -> list[float]:
    """Run the GCRA step for 3 s from an idle bucket, every `step` seconds, or as soon as
    its `wait` says (`follow`), asking for `want` each time; one entry per token taken."""
    start = now = 1_000_000.0
    next_at, taken = 0.0, []
    while now < start + 3:
        bucket = gcra(next_at, now, rate, burst)
        k = min(want, bucket.tokens)
        assert (bucket.wait > 0) == (k == 0)
        if k:
            next_at = bucket.next_at(k, rate)
            assert next_at >= now - (burst - 1) / rate  # never ahead of the bucket
        taken += [now] * k
        now += bucket.wait if follow and bucket.wait else step
    return taken


def _worst_window(taken: list[float], seconds: float) -> int:
    return max(sum(1 for t in taken if start <= t < start + seconds) for start in taken)


@pytest.mark.parametrize("burst", [1, 2, 5])
@pytest.mark.parametrize("step", [0.001, 0.013, 0.05, 0.099, 0.25])
def test_gcra_never_exceeds_the_rate(step, burst):
    for follow in (False, True):
        taken = _taken_at(10, burst, step, want=5, follow=follow)
        assert _worst_window(taken, 1.0) <= 10 + burst  # rate x 1 s, plus the burst
        assert len(taken) <= 3 * 10 + burst
    if step * 10 <= burst:  # a claimer back when `wait` says (and no rarer) keeps the rate
        assert len(_taken_at(10, burst, step, want=5, follow=True)) >= 3 * 10


def test_gcra_with_a_burst_forgives_a_late_claimer():
    """Burst 1 loses the time a claimer comes late (polling every 0.099 s at 10/s gives 5/s);
    a burst of 2 takes it back (the send loop waits `wait`, or pace_for sets a burst)."""
    assert len(_taken_at(10, 1, 0.099, want=5, follow=False)) < 20
    assert len(_taken_at(10, 2, 0.099, want=5, follow=False)) >= 3 * 10


def test_gcra_burst_then_the_rate_and_the_wait():
    now = 5_000.0
    bucket = gcra(0.0, now, rate=10, burst=3)  # idle: the burst is there
    assert bucket.tokens == 3
    after = bucket.next_at(3, 10)
    assert gcra(after, now, 10, 3).tokens == 0
    empty = gcra(after, now, 10, 3)
    assert empty.wait == pytest.approx(0.1)
    assert gcra(after, now + empty.wait, 10, 3).tokens == 1
    assert gcra(0.0, now, 10, 1).tokens == 1  # burst 1: one at a time, however long idle


@pytest.mark.parametrize("step", [0.013, 0.099, 0.2])
def test_gcra_slots_taken_ahead_lose_nothing_to_a_late_claimer(step):
    """With `ahead`, a claim takes the slots of the next `ahead` seconds, each request leaving
    at its slot (`delay`): a claimer back every 0.2 s at 10/s still gets all of 10/s, and no
    one-second window of the slots sees more than the rate and the burst."""
    rate, burst, ahead = 10.0, 1, 0.25
    now = start = 1_000_000.0
    next_at, slots = 0.0, []
    while now < start + 3:
        bucket = gcra(next_at, now, rate, burst, ahead)
        if bucket.tokens:
            assert bucket.tokens <= burst + ahead * rate + 1
            delays = [bucket.delay(i, rate) for i in range(bucket.tokens)]
            assert delays == sorted(delays) and 0 <= delays[-1] <= ahead + 1e-9
            slots += [now + d for d in delays]
            next_at = bucket.next_at(bucket.tokens, rate)
        else:
            assert bucket.wait > 0 and next_at - bucket.wait == pytest.approx(now + ahead)
        now += step
    slots = [t for t in slots if t < start + 3]
    assert len(slots) >= 3 * rate - 1
    assert _worst_window(slots, 1.0) <= rate + burst


@pytest.mark.parametrize("rate, burst", [(98, 2), (294, 6), (490, 10), (10, 3)])
def test_gcra_a_full_bucket_holds_the_whole_burst_at_epoch_times(rate, burst):
    """Near 1.7e9 s a double's step is 2.4e-7 s: `now - (now - (burst-1)/rate)` used to come
    out short and a full bucket gave burst - 1 tokens (98/s with a burst of 2: one)."""
    for now in (1_764_770_000.0, 1_764_770_000.123, 1_764_770_000.987654):
        assert gcra(0.0, now, rate, burst).tokens == burst
        assert gcra(now - 3600, now, rate, burst).tokens == burst


def _pace_row(engine, account: str) -> float | None:
    with engine.connect() as conn:
        query = sa.select(send_pace.c.next_at).where(send_pace.c.account == account)
        return conn.execute(query).scalar()


def test_claims_share_the_pace_of_the_account(engine):
    """Two workers claim as fast as they can through one account paced at 10/s, burst 1:
    together they never exceed it; the time of each token comes from next_at."""
    pace = Pace("http://gw/msg#acct", rate=10, burst=1)
    cid = _sending(engine, n=61, per_batch=1)  # 60 batches
    claimed: list[float] = []
    waits: list[float] = []
    deadline = time.monotonic() + 0.8

    def work(worker: str) -> None:
        while time.monotonic() < deadline:
            got = _claim(engine, cid, limit=5, pace=pace, worker=worker)
            claimed.extend([time.monotonic()] * len(got.batches))
            if got.wait:
                waits.append(got.wait)
                time.sleep(min(got.wait, 0.02))

    began, began_wall = time.monotonic(), time.time()
    threads = [threading.Thread(target=work, args=(w,)) for w in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    assert 2 <= len(claimed) <= elapsed * 10 + 1
    assert waits and all(0 < w <= 0.1 + 1e-6 for w in waits)
    assert batch_state_counts(engine, cid)["sending"] == len(claimed)
    # next_at advanced 1/rate per claimed batch from the first token's time (a gap moves it
    # later, never earlier): the first token was not taken before the workers began
    first_token_at = _pace_row(engine, pace.account) - len(claimed) / pace.rate
    assert began_wall - 0.05 <= first_token_at <= time.time()


def test_the_pace_is_not_taken_when_nothing_is_claimed(engine):
    pace = Pace("http://gw/msg#acct", rate=10, burst=1)
    cid = _sending(engine, n=4, per_batch=3)  # one batch
    assert len(_claim(engine, cid, limit=5, pace=pace).batches) == 1
    after_one = _pace_row(engine, pace.account)
    nothing = _claim(engine, cid, limit=5, pace=pace)
    assert (nothing.batches, nothing.wait) == ([], 0.0)  # nothing pending: no wait either
    assert _pace_row(engine, pace.account) == after_one
    paused = _sending(engine, n=4, per_batch=3, name="paused")
    set_state(engine, paused, CampaignState.PAUSED)
    assert _claim(engine, paused, pace=pace).batches == []
    assert _pace_row(engine, pace.account) == after_one
    unlimited = _sending(engine, n=7, per_batch=3, name="unlimited")
    assert len(_claim(engine, unlimited, limit=5, pace=Pace("other", rate=0)).batches) == 2
    assert _pace_row(engine, "other") is None  # no pace row for an unlimited account


# ---------------------------------------------------------------- repeats


def test_a_cancelled_campaign_that_sent_something_is_a_repeat(engine, store_url):
    def create(name: str, guard: RepeatGuard) -> int:
        return create_campaign(engine, small_plan(), name=name, settings_snapshot={}, guard=guard)

    nothing_sent = _sending(engine)
    cancel(engine, str(nothing_sent), WHO)  # cancelled before anything left: no repeat
    half_sent = create("again", RepeatGuard())
    set_state(engine, half_sent, CampaignState.SENDING)
    claim_batches(engine, half_sent, "w1", 1)  # one of its requests left
    cancel(engine, str(half_sent), WHO)
    with pytest.raises(RepeatError, match="cancelled after part of it was sent"):
        create("third", RepeatGuard())
    with pytest.raises(RepeatError, match=f"campaign {half_sent} 'again'"):
        read_repeat(store_url, RepeatGuard(), small_plan().fingerprint)
    create("on purpose", RepeatGuard(allow_repeat=True))


# ---------------------------------------------------------------- workers


def test_worker_processes_and_live_workers(engine):
    process = register_process(engine)
    assert [(p.id, p.campaign_id) for p in live_processes(engine)] == [(process, None)]
    assert beat_process(engine, process, 7)
    assert live_processes(engine)[0].campaign_id == 7
    unregister_process(engine, process)
    assert live_processes(engine) == []
    assert beat_process(engine, process) is False  # gone: the caller registers again

    cid = _new(engine)
    worker = register_worker(engine, cid)
    [info] = live_workers(engine, cid)
    assert (info.id, info.pid) == (worker, os.getpid())
    assert info.heartbeat_at.tzinfo is not None
    assert live_workers(engine, cid + 100) == []
