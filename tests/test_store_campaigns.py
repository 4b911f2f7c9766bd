"""Campaign/batch/worker queries on SQLite and the real PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from campaign.config import Settings, load_settings
from campaign.errors import NotFoundError
from campaign.store import open_store
from campaign.store.batches import (
    BatchResult,
    batch_state_counts,
    claim_batches,
    record_results,
    reset_unknown,
    segments_needed,
)
from campaign.store.campaigns import (
    campaign_totals,
    create_campaign,
    default_campaign_name,
    get_campaign,
    list_campaigns,
    set_state,
    settings_snapshot,
)
from campaign.store.schema import batches, recipients, workers
from campaign.store.workers import (
    Heartbeat,
    recover_orphans,
    register_worker,
    unregister_worker,
)
from tests.support.plans import small_plan

# The old name of `small_plan` (a hand-made stand-in then), still imported by test_sender.py.
fake_plan = small_plan


def _new(engine, plan=None, name="spring") -> int:
    return create_campaign(
        engine, plan or small_plan(), name=name, settings_snapshot={"gateway": {"rate": 5}}
    )


# ---------------------------------------------------------------- campaigns


def test_create_campaign_stores_rows_and_batches(engine):
    plan = small_plan(10, 3)
    cid = _new(engine, plan)
    record = get_campaign(engine, str(cid))
    assert (record.name, record.state, record.columns) == ("spring", "planned", ["name", "mobile"])
    assert record.files[0]["source"] == "list.csv"
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(recipients).where(recipients.c.campaign_id == cid).order_by("row_no")
        ).all()
        stored = conn.execute(sa.select(batches).order_by(batches.c.seq)).all()
    assert len(rows) == 10
    assert json.loads(rows[0].cells) == ["名0", "13900000000"]
    assert (rows[1].outcome, rows[1].mobile, rows[1].batch_id) == ("invalid", None, None)
    assert rows[0].source_row == 2 and rows[0].batch_id == "b000001"
    assert [b.size for b in stored] == [3, 3, 3]
    assert stored[0].mobiles == "13900000000,13900000002,13900000003"
    assert {b.state for b in stored} == {"pending"}
    assert campaign_totals(engine, cid) == {"recipients": 9, "requests": 3, "segments": 9}


def test_names_are_unique_and_unknown_is_not_found(engine):
    first = _new(engine, name="vip")
    second = _new(engine, name="vip")  # taken: the second one is "vip (2)"
    assert get_campaign(engine, "vip").id == first
    assert get_campaign(engine, "vip (2)").id == second > first
    assert [c.id for c in list_campaigns(engine)] == [first, second]
    with pytest.raises(NotFoundError, match="no campaign '999' in the store"):
        get_campaign(engine, "999")
    with pytest.raises(NotFoundError, match="no campaign 'nope'"):
        get_campaign(engine, "nope")


def test_set_state_stamps_times(engine):
    cid = _new(engine)
    set_state(engine, cid, "sending")
    started = get_campaign(engine, str(cid)).started_at
    set_state(engine, cid, "stopped", reason="no quota left")
    record = get_campaign(engine, str(cid))
    assert (record.state, record.stop_reason, record.started_at) == (
        "stopped",
        "no quota left",
        started,
    )
    set_state(engine, cid, "finished")
    record = get_campaign(engine, str(cid))
    assert record.finished_at is not None and record.stop_reason is None


def test_snapshot_and_default_name():
    settings = load_settings(env={"CAMPAIGN_ACCOUNT": "acc", "CAMPAIGN_PASSWORD": "s3cret!"})
    snapshot = settings_snapshot(settings)
    assert "s3cret!" not in json.dumps(snapshot)
    assert "password" not in snapshot["gateway"] and snapshot["gateway"]["account"] == "acc"
    moment = datetime(2026, 1, 31, 1, 5, tzinfo=UTC)  # 09:05 in China
    assert default_campaign_name(["in/vip list.xlsx"], moment) == "vip list 2026-01-31 09:05"
    defaults = settings_snapshot(Settings())
    assert defaults["gateway"]["account"] == "" and "password" not in defaults["gateway"]


# ---------------------------------------------------------------- claims and results


def test_claim_is_compare_and_set(engine):
    cid = _new(engine)
    me = register_worker(engine, cid)
    claimed = claim_batches(engine, cid, me, 2)
    assert [b.batch_id for b in claimed] == ["b000001", "b000002"]
    assert claimed[0].mobiles == ("13900000000", "13900000002", "13900000003")
    assert claimed[0].attempts == 1
    assert [b.batch_id for b in claim_batches(engine, cid, me, 5)] == ["b000003"]
    assert claim_batches(engine, cid, me, 5) == []
    with engine.connect() as conn:
        row = conn.execute(sa.select(batches).where(batches.c.batch_id == "b000001")).one()
    assert (row.state, row.claimed_by) == ("sending", me) and row.submitted_at is not None
    record_results(
        engine,
        cid,
        me,
        [
            BatchResult("b000001", "accepted", "123", "0"),
            BatchResult("b000002", "rejected", submit_code="107", detail="invalid mobile"),
            BatchResult("b000003", "pending", submit_code="104", detail="busy"),
        ],
    )
    assert batch_state_counts(engine, cid) == {
        "pending": 1,
        "sending": 0,
        "accepted": 1,
        "rejected": 1,
        "unknown": 0,
        "cancelled": 0,
    }
    assert segments_needed(engine, cid) == 3
    again = claim_batches(engine, cid, me, 5)
    assert [(b.batch_id, b.attempts) for b in again] == [("b000003", 2)]
    # a worker that does not hold the batch cannot write its result
    assert record_results(engine, cid, "someone-else", [BatchResult("b000003", "accepted")]) == 0
    unregister_worker(engine, me)


def test_concurrent_claims_never_overlap(store_url):
    setup = open_store(store_url)
    cid = _new(setup, small_plan(121, 1))  # 120 single-mobile batches
    setup.dispose()
    got: dict[str, list[str]] = {}

    def worker(name: str) -> None:
        engine = open_store(store_url)
        try:
            me = register_worker(engine, cid)
            mine = got.setdefault(name, [])
            while True:
                claimed = claim_batches(engine, cid, me, 3)
                if not claimed:
                    return
                mine.extend(b.batch_id for b in claimed)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [b for ids in got.values() for b in ids]
    assert len(every) == 120 and len(set(every)) == 120


# ---------------------------------------------------------------- orphans


def test_dead_workers_batches_become_unknown(engine):
    cid = _new(engine)
    dead = register_worker(engine, cid)
    with engine.begin() as conn:  # pretend it ran in a process that is gone
        conn.execute(sa.update(workers).where(workers.c.id == dead).values(pid=_dead_pid()))
    claim_batches(engine, cid, dead, 1)
    alive = register_worker(engine, cid)
    claim_batches(engine, cid, alive, 1)
    assert recover_orphans(engine, cid) == 1
    counts = batch_state_counts(engine, cid)
    assert (counts["unknown"], counts["sending"], counts["pending"]) == (1, 1, 1)
    with engine.connect() as conn:
        detail = conn.execute(
            sa.select(batches.c.detail).where(batches.c.state == "unknown")
        ).scalar_one()
    assert "may or may not have been sent" in detail
    # a stale heartbeat on another host is dead too
    with engine.begin() as conn:
        conn.execute(
            sa.update(workers)
            .where(workers.c.id == alive)
            .values(host="elsewhere", heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    assert recover_orphans(engine, cid) == 1
    assert reset_unknown(engine, cid) == 2
    assert batch_state_counts(engine, cid)["pending"] == 3


def test_heartbeat_registers_and_unregisters(engine):
    cid = _new(engine)
    with Heartbeat(engine, cid, interval=0.05) as beat:
        with engine.connect() as conn:
            row = conn.execute(sa.select(workers).where(workers.c.id == beat.worker_id)).one()
        assert row.pid == os.getpid()
        threading.Event().wait(0.15)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(workers)).scalar() == 0


def _dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_million_rows_chunking_small_sample(engine):
    """Chunk boundaries: more rows than one chunk still land exactly once."""
    from campaign.store import campaigns as module

    old = module.CHUNK_ROWS
    module.CHUNK_ROWS = 4
    try:
        cid = _new(engine, small_plan(11, 2))
    finally:
        module.CHUNK_ROWS = old
    with engine.connect() as conn:
        numbers = conn.execute(
            sa.select(recipients.c.row_no).where(recipients.c.campaign_id == cid)
        ).scalars()
        assert sorted(numbers) == list(range(11))
    assert campaign_totals(engine, cid)["requests"] == 5


def test_a_run_taken_for_dead_registers_again_at_its_next_beat(engine):
    """A live run whose beats were missed (a long lock) and whose row another run removed
    beats itself back in: the batches it claims from then on are not orphans."""
    import time

    from campaign.store.workers import Heartbeat, live_workers

    cid = _new(engine)
    with Heartbeat(engine, cid, interval=0.05) as beat:
        with engine.begin() as conn:  # what recover_orphans does to a stale worker
            conn.execute(sa.delete(workers).where(workers.c.id == beat.worker_id))
        deadline = time.monotonic() + 5
        while not live_workers(engine, cid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(live_workers(engine, cid)) == 1
        claim_batches(engine, cid, beat.worker_id, 1)
        assert recover_orphans(engine, cid) == 0
    assert live_workers(engine, cid) == []


def test_a_worker_on_a_host_whose_clock_is_behind_is_not_taken_for_dead(engine, monkeypatch):
    """On PostgreSQL (several hosts) heartbeats are written and judged by the server's clock."""
    from campaign.store import workers as workers_module

    if engine.dialect.name != "postgresql":
        pytest.skip("one host on SQLite: its own clock")
    cid = _new(engine)
    behind = datetime.now(UTC) - timedelta(minutes=5)
    monkeypatch.setattr(workers_module, "utcnow", lambda: behind)
    other = register_worker(engine, cid)
    monkeypatch.undo()
    with engine.begin() as conn:  # it runs on another host
        conn.execute(sa.update(workers).where(workers.c.id == other).values(host="elsewhere"))
    claim_batches(engine, cid, other, 1)
    assert recover_orphans(engine, cid) == 0


def test_resend_unknown_leaves_the_batches_of_a_live_run(engine):
    """A batch taken for an orphan while its run was alive may still be in flight."""
    from campaign.store.workers import live_worker_ids

    cid = _new(engine)
    alive = register_worker(engine, cid)
    claim_batches(engine, cid, alive, 1)
    record_results(engine, cid, alive, [BatchResult("b000001", "unknown", detail="lost")])
    live = live_worker_ids(engine, cid)
    assert live == [alive]
    assert reset_unknown(engine, cid, live=live) == 0
    unregister_worker(engine, alive)
    assert reset_unknown(engine, cid, live=live_worker_ids(engine, cid)) == 1
