"""`campaign pause`, `cancel`, `resume` of a campaign another process is sending: within
2 s nothing more leaves, nobody is texted twice, cancelled rows say so in the export;
against the real simulator (its log is the truth), on SQLite and PostgreSQL.

The sender is a real process (`campaign worker`, or `campaign resume`), slowed by a rate
limit and late answers so that requests are in flight when the command lands.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from campaign.cli import app
from campaign.store import open_store
from campaign.store.campaigns import create_campaign, get_campaign, set_state
from campaign.store.queue import schedule
from campaign.store.schema import batches
from tests.support.plans import small_plan
from tests.support.simulator import running_simulator

runner = CliRunner()
REQUESTS = 80
TAKES_EFFECT = timedelta(seconds=2)


@pytest.fixture
def sim():
    with running_simulator() as sim:
        yield sim


def _env(sim) -> dict[str, str]:
    return {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}


def _stored(url: str, *, queued: bool) -> int:
    """A campaign of REQUESTS one-mobile requests (plus one invalid row)."""
    engine = open_store(url)
    try:
        plan = small_plan(REQUESTS + 1, 1)
        cid = create_campaign(engine, plan, name="spring", settings_snapshot={})
        if queued:
            schedule(engine, cid, None)
        return cid
    finally:
        engine.dispose()


def _record(url: str, cid: int):
    engine = open_store(url)
    try:
        return get_campaign(engine, cid)
    finally:
        engine.dispose()


def _batch_states(url: str, cid: int) -> Counter[str]:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            query = sa.select(batches.c.state).where(batches.c.campaign_id == cid)
            return Counter(conn.execute(query).scalars())
    finally:
        engine.dispose()


def _taken(sim) -> Counter[str]:
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def _slow_config(folder: Path) -> str:
    path = folder / "slow.toml"
    path.write_text("[gateway]\nrate = 10\n")
    return str(path)


class Sender:
    """`python -m campaign ARGS` against the store and the simulator, stderr in a file."""

    def __init__(self, folder: Path, url: str, sim, *args: str) -> None:
        self.err = folder / f"sender-{args[0]}.err"
        command = [sys.executable, "-m", "campaign", *args, "--db", url, "--gateway", sim.url,
                   "--config", _slow_config(folder)]  # fmt: skip
        env = {**os.environ, **_env(sim)}
        with self.err.open("wb") as stderr:
            self.process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8")

    def wait_for_requests(self, sim, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(sim.received()) < count:
            assert self.process.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "the sender sent too little"
            time.sleep(0.02)

    def wait_for_line(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            assert time.monotonic() < deadline, self.stderr()
            time.sleep(0.05)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(30)


def _command(*args: str, url: str) -> tuple[object, datetime]:
    """Run a command in this process; the result and the moment it returned."""
    result = runner.invoke(app, [*args, "--db", url])
    return result, datetime.now(UTC)


def _late_requests(sim, after: datetime) -> list:
    return [r for r in sim.received() if r.time > after + TAKES_EFFECT]


# ---------------------------------------------------------------- pause, resume


def test_pause_while_a_worker_sends_then_resume_finishes_it_nobody_twice(store_url, sim, tmp_path):
    cid = _stored(store_url, queued=True)
    sim.inject_delay(10_000, seconds=0.3)  # answers come late: requests are in flight
    worker = Sender(tmp_path, store_url, sim, "worker")
    try:
        worker.wait_for_requests(sim, 10)
        paused, returned = _command("pause", str(cid), "--json", url=store_url)
        assert paused.exit_code == 0, paused.output
        data = json.loads(paused.stdout)
        assert data["state"] == "paused" and data["previous_state"] == "sending"
        assert data["stop_reason"].startswith("paused by ")
        time.sleep(3)  # anything that leaves now leaves too late
        assert _late_requests(sim, returned) == []
        worker.wait_for_line(f"campaign {cid} (spring): sending -> paused")
        assert _record(store_url, cid).state == "paused"
        states = _batch_states(store_url, cid)
        assert states["sending"] == 0 and states["unknown"] == 0  # in flight: recorded
        sent_before = len(sim.received())
        assert 0 < sent_before < REQUESTS

        shown = runner.invoke(app, ["status", str(cid), "--db", store_url])
        assert f"campaign {cid} 'spring': paused" in shown.stdout, shown.output
        assert "paused by " in shown.stdout

        resumed = runner.invoke(app, ["resume", str(cid), "--queue", "--db", store_url, "--json"])
        assert resumed.exit_code == 0, resumed.output
        data = json.loads(resumed.stdout)
        assert (data["previous_state"], data["state"]) == ("paused", "queued")
        assert data["requests"] == REQUESTS and "outcomes" in data
        sim.clear_faults()
        worker.wait_for_line(f"campaign {cid} (spring): sending -> finished")
    finally:
        assert worker.stop() == 0, worker.stderr()
    taken = _taken(sim)
    assert len(taken) == REQUESTS and set(taken.values()) == {1}
    assert _record(store_url, cid).state == "finished"


def test_pause_while_send_runs_in_its_own_process_then_resume_here(store_url, sim, tmp_path):
    cid = _stored(store_url, queued=False)
    sim.inject_delay(10_000, seconds=0.3)
    sender = Sender(tmp_path, store_url, sim, "resume", str(cid))
    try:
        sender.wait_for_requests(sim, 10)
        paused, returned = _command("pause", str(cid), url=store_url)
        assert paused.exit_code == 0, paused.output
        assert f"campaign {cid} (spring): sending -> paused" in paused.stdout
        assert sender.process.wait(30) == 4  # resumable
    finally:
        sender.stop()
    assert _late_requests(sim, returned) == []
    assert f"campaign {cid} was paused by " in sender.stderr()
    assert f"`campaign resume {cid}` sends the rest" in sender.stderr()
    assert _record(store_url, cid).state == "paused"

    sim.clear_faults()
    fast = tmp_path / "fast.toml"
    fast.write_text("[gateway]\nrate = 0\n")
    resumed = runner.invoke(
        app,
        ["resume", str(cid), "--db", store_url, "--gateway", sim.url, "--config", str(fast),
         "--json"],
        env=_env(sim),
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["state"] == "finished"
    taken = _taken(sim)
    assert len(taken) == REQUESTS and set(taken.values()) == {1}


# ---------------------------------------------------------------- cancel


def test_cancel_while_a_worker_sends_the_rest_is_cancelled_in_the_export(store_url, sim, tmp_path):
    cid = _stored(store_url, queued=True)
    sim.inject_delay(10_000, seconds=0.3)
    worker = Sender(tmp_path, store_url, sim, "worker")
    try:
        worker.wait_for_requests(sim, 10)
        cancelled, returned = _command("cancel", str(cid), "--json", url=store_url)
        assert cancelled.exit_code == 0, cancelled.output
        data = json.loads(cancelled.stdout)
        assert data["state"] == "cancelled" and data["cancelled_requests"] > 0
        worker.wait_for_line(f"campaign {cid} (spring): sending -> cancelled")
        time.sleep(2.5)
        assert _late_requests(sim, returned) == []
    finally:
        assert worker.stop() == 0, worker.stderr()
    taken = _taken(sim)
    assert set(taken.values()) == {1}
    states = _batch_states(store_url, cid)
    assert states["sending"] == 0 and states["pending"] == 0
    assert states["cancelled"] == data["cancelled_requests"] == REQUESTS - len(taken)
    assert _record(store_url, cid).state == "cancelled"

    out = tmp_path / "results.csv"
    exported = runner.invoke(app, ["export", str(cid), "-o", str(out), "--db", store_url])
    assert exported.exit_code == 0, exported.output
    with out.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    by_outcome = Counter(row["outcome"] for row in rows)
    assert by_outcome["cancelled"] == REQUESTS - len(taken)
    cancelled_rows = [row for row in rows if row["outcome"] == "cancelled"]
    assert {row["normalized_mobile"] for row in cancelled_rows}.isdisjoint(taken)
    assert all(row["reason"] == "not sent: the campaign was cancelled" for row in cancelled_rows)

    again = runner.invoke(app, ["resume", str(cid), "--db", store_url])
    assert again.exit_code == 3 and "cancelled" in again.output
    again = runner.invoke(app, ["resume", str(cid), "--queue", "--db", store_url])
    assert again.exit_code == 3 and "cancelled" in again.output
    assert sum(_taken(sim).values()) == len(taken)


# ---------------------------------------------------------------- what cannot be done


@pytest.mark.parametrize("command", ["pause", "cancel"])
def test_pause_or_cancel_of_a_finished_campaign_is_refused_nothing_changes(store_url, command):
    cid = _stored(store_url, queued=False)
    engine = open_store(store_url)
    try:
        set_state(engine, cid, "finished")
    finally:
        engine.dispose()
    before = _record(store_url, cid)
    result = runner.invoke(app, [command, str(cid), "--db", store_url, "--json"])
    assert result.exit_code == 3, result.output
    error = json.loads(result.stdout)["error"]
    assert f"campaign {cid} 'spring' is finished" in error
    after = _record(store_url, cid)
    assert (after.state, after.stop_reason, after.finished_at) == (
        before.state,
        before.stop_reason,
        before.finished_at,
    )
    assert _batch_states(store_url, cid) == {"pending": REQUESTS}


def test_cancel_twice_is_refused_pause_twice_is_no_change(store_url):
    cid = _stored(store_url, queued=True)
    first = runner.invoke(app, ["pause", str(cid), "--db", store_url])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["pause", str(cid), "--db", store_url])
    assert second.exit_code == 0 and "is already paused" in second.stdout
    cancelled = runner.invoke(app, ["cancel", str(cid), "--db", store_url])
    assert cancelled.exit_code == 0, cancelled.output
    assert f"{REQUESTS} request(s) ({REQUESTS} recipients) not sent are cancelled" in (
        cancelled.stdout
    )
    again = runner.invoke(app, ["cancel", str(cid), "--db", store_url])
    assert again.exit_code == 3 and "is cancelled" in again.output
    missing = runner.invoke(app, ["pause", "999", "--db", store_url])
    assert missing.exit_code == 3


def test_resume_here_of_a_paused_campaign_sends_it_or_finishes_it(store_url, sim, tmp_path):
    from campaign.store.batches import BatchResult, claim_batches, record_results

    cid = _stored(store_url, queued=True)
    done = _stored_with_name(store_url, "all sent")
    engine = open_store(store_url)
    try:
        claimed = claim_batches(engine, done, "w1", REQUESTS)
        results = [BatchResult(b.batch_id, "accepted", f"m{b.batch_id}", "0") for b in claimed]
        record_results(engine, done, "w1", results)
    finally:
        engine.dispose()
    for campaign in (cid, done):
        paused = runner.invoke(app, ["pause", str(campaign), "--db", store_url])
        assert paused.exit_code == 0, paused.output
    config = tmp_path / "fast.toml"
    config.write_text("[gateway]\nrate = 0\n")
    fast = ["--db", store_url, "--gateway", sim.url, "--config", str(config), "--json"]
    for campaign in (cid, done):
        resumed = runner.invoke(app, ["resume", str(campaign), *fast], env=_env(sim))
        assert resumed.exit_code == 0, resumed.output
        assert json.loads(resumed.stdout)["state"] == "finished"
        assert not _record(store_url, campaign).queued  # taken back from the workers
    assert len(_taken(sim)) == REQUESTS  # only the first one's


def _stored_with_name(url: str, name: str) -> int:
    engine = open_store(url)
    try:
        plan = small_plan(REQUESTS + 1, 1)
        return create_campaign(engine, plan, name=name, settings_snapshot={})
    finally:
        engine.dispose()
