"""`campaign worker`: it sends the campaigns handed to the workers, on time, each
recipient once, and stops gracefully; against the real simulator, on SQLite and PostgreSQL.

The simulator's log (`sim.received()`) is the truth of what was sent. Workers run as the
CLI in this process (`worker --once`), in a thread (`workflow_queue.run_worker` with a stop
event: the scheduled-time test), or as a real process (SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import load_settings
from campaign.sender import SendReport
from campaign.store import open_store
from campaign.store.campaigns import create_campaign, get_campaign
from campaign.store.queue import pick_due, schedule
from campaign.store.schema import SCHEMA_VERSION, batches, meta
from campaign.store.workers import register_worker
from campaign.timeutil import CHINA
from campaign.worker import Worker
from campaign.workflow_queue import run_worker
from tests.support.plans import small_plan
from tests.support.simulator import running_simulator

runner = CliRunner()


@pytest.fixture
def sim():
    with running_simulator() as sim:
        yield sim


def _env(sim) -> dict[str, str]:
    return {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}


def _handed(url: str, n: int = 31, per_batch: int = 3, due_at: datetime | None = None) -> int:
    """A stored campaign (n rows: one invalid) handed to the workers: queued, or scheduled."""
    engine = open_store(url)
    try:
        cid = create_campaign(engine, small_plan(n, per_batch), name="spring", settings_snapshot={})
        schedule(engine, cid, due_at)
        return cid
    finally:
        engine.dispose()


def _ready_mobiles(n: int) -> list[str]:
    return [f"139{i:08d}" for i in range(n) if i != 1]


def _taken(sim) -> Counter[str]:
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def _batch_states(url: str, cid: int) -> Counter[str]:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(batches.c.state).where(batches.c.campaign_id == cid)
            ).scalars()
            return Counter(rows)
    finally:
        engine.dispose()


def _record(url: str, cid: int):
    engine = open_store(url)
    try:
        return get_campaign(engine, cid)
    finally:
        engine.dispose()


def _config(tmp_path, text: str = "[gateway]\nrate = 0\n") -> str:
    path = tmp_path / "worker.toml"
    path.write_text(text)
    return str(path)


def _worker_once(store_url: str, sim, tmp_path, *extra: str):
    args = ["worker", "--once", "--db", store_url, "--gateway", sim.url]
    return runner.invoke(app, [*args, "--config", _config(tmp_path), *extra], env=_env(sim))


# ---------------------------------------------------------------- --once


def test_worker_once_sends_a_queued_campaign_every_recipient_once(store_url, sim, tmp_path):
    cid = _handed(store_url)
    result = _worker_once(store_url, sim, tmp_path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [s["campaign_id"] for s in data["campaigns"]] == [cid]
    assert data["campaigns"][0]["state"] == "finished" and data["stopped"] is False
    taken = _taken(sim)
    assert sorted(taken) == sorted(_ready_mobiles(31)) and set(taken.values()) == {1}
    assert _record(store_url, cid).state == "finished"
    assert _batch_states(store_url, cid) == {"accepted": 10}
    # one line per state change, China time
    assert f"campaign {cid} (spring): queued -> sending\n" in result.stderr  # the pick
    assert f"campaign {cid} (spring): sending -> finished" in result.stderr
    assert "+08:00" in result.stderr

    again = _worker_once(store_url, sim, tmp_path)  # nothing more is due: nothing is sent
    assert again.exit_code == 0, again.output
    assert sum(_taken(sim).values()) == 30


def test_worker_once_leaves_alone_what_is_not_handed_to_it(store_url, sim, tmp_path):
    engine = open_store(store_url)
    try:
        planned = create_campaign(engine, small_plan(7, 3), name="planned", settings_snapshot={})
    finally:
        engine.dispose()
    later = _handed(store_url, due_at=datetime.now(CHINA) + timedelta(hours=2))
    result = _worker_once(store_url, sim, tmp_path)
    assert result.exit_code == 0, result.output
    assert sim.received() == []
    assert _record(store_url, planned).state == "planned"
    assert _record(store_url, later).state == "scheduled"


# ---------------------------------------------------------------- a scheduled time


def test_a_scheduled_campaign_is_sent_on_time_not_before(store_url, sim, tmp_path):
    """Scheduled 3 s ahead: no request before its time, the first within 5 s after it."""
    due = datetime.now(UTC) + timedelta(seconds=3)
    cid = _handed(store_url, due_at=due)
    settings = load_settings(_config(tmp_path), db=store_url, gateway=sim.url, env=_env(sim))
    stop = threading.Event()
    box = {}
    lines: list[str] = []
    thread = threading.Thread(
        target=lambda: box.update(
            result=run_worker(settings, stop=stop, poll=0.2, notify=lines.append)
        )
    )
    thread.start()
    try:
        deadline = due + timedelta(seconds=8)
        while _record(store_url, cid).state != "finished" and datetime.now(UTC) < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)
    times = [r.time for r in sim.received()]
    assert times, lines
    assert min(times) >= due
    assert min(times) <= due + timedelta(seconds=5)
    assert _record(store_url, cid).state == "finished"
    assert sum(_taken(sim).values()) == 30
    assert box["result"].exit_code == 0 and box["result"].report.stopped
    assert any(x.endswith(f"campaign {cid} (spring): scheduled -> sending") for x in lines), lines


# ---------------------------------------------------------------- an older store


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


def test_a_worker_refuses_a_store_of_an_older_schema(store_url, sim, tmp_path):
    engine = open_store(store_url)
    engine.dispose()
    _as_schema_3(store_url)
    result = _worker_once(store_url, sim, tmp_path, "--json")
    assert result.exit_code == 3, result.output
    error = json.loads(result.stdout)["error"]
    assert f"schema version 3, this version of campaign needs {SCHEMA_VERSION}" in error
    assert "run any other campaign command on it once to upgrade it" in error
    assert "Traceback" not in result.output
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:  # nothing changed: still schema 3
            assert conn.execute(sa.select(meta.c.value)).scalar() == "3"
    finally:
        engine.dispose()


def test_a_worker_needs_an_existing_store_and_an_account(tmp_path, sim):
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    result = runner.invoke(app, ["worker", "--once", "--db", missing], env=_env(sim))
    assert result.exit_code == 3 and "no campaign store" in result.output
    assert not (tmp_path / "none.db").exists()
    url = f"sqlite:///{tmp_path / 'c.db'}"
    open_store(url).dispose()
    no_account = {"CAMPAIGN_ACCOUNT": "", "CAMPAIGN_PASSWORD": ""}
    result = runner.invoke(app, ["worker", "--once", "--db", url, "--gateway", sim.url],
                           env=no_account)  # fmt: skip
    assert result.exit_code == 3, result.output


# ---------------------------------------------------------------- the send window


def test_outside_the_send_window_a_campaign_is_scheduled_for_its_opening(store_url, sim, tmp_path):
    now = datetime.now(CHINA)
    opens, closes = now + timedelta(hours=2), now + timedelta(hours=3)
    window = f"{opens:%H:%M}-{closes:%H:%M}"
    cid = _handed(store_url)
    config = _config(tmp_path, f'[gateway]\nrate = 0\n[compliance]\nsend_window = "{window}"\n')
    args = ["worker", "--once", "--db", store_url, "--gateway", sim.url, "--config", config]
    result = runner.invoke(app, args, env=_env(sim))
    assert result.exit_code == 0, result.output
    assert sim.received() == []
    record = _record(store_url, cid)
    assert record.state == "scheduled"
    due = record.due_at.astimezone(CHINA)
    assert (due.hour, due.minute) == (opens.hour, opens.minute) and due > now
    assert f"campaign {cid} (spring): sending -> scheduled" in result.stderr
    assert "-> stopped" not in result.stderr  # straight to scheduled, never through stopped
    assert _batch_states(store_url, cid) == {"pending": 10}


# ---------------------------------------------------------------- SIGTERM


def test_sigterm_stops_a_worker_gracefully_and_leaves_the_campaign_to_the_workers(
    store_url, sim, tmp_path
):
    cid = _handed(store_url, n=101, per_batch=1)  # 100 requests
    sim.inject_delay(10_000, seconds=0.2)  # every answer late: requests are in flight
    config = _config(tmp_path, "[gateway]\nrate = 20\n")
    env = {**os.environ, **_env(sim)}
    command = [sys.executable, "-m", "campaign", "worker", "--db", store_url,
               "--gateway", sim.url, "--config", config]  # fmt: skip
    err = tmp_path / "worker.err"
    with err.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 60
            while len(sim.received()) < 15 and time.monotonic() < deadline:
                assert process.poll() is None, err.read_text()
                time.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, err.read_text()
    record = _record(store_url, cid)
    assert record.state == "sending"  # not `stopped`: the workers go on with it
    states = _batch_states(store_url, cid)
    assert states["sending"] == 0 and states["unknown"] == 0  # in flight: answered, recorded
    assert states["accepted"] == len(sim.received()) and states["pending"] > 0
    assert "left `sending` for the other workers" in err.read_text()

    sim.clear_faults()
    result = _worker_once(store_url, sim, tmp_path)  # the next worker finishes it
    assert result.exit_code == 0, result.output
    taken = _taken(sim)
    assert sorted(taken) == sorted(_ready_mobiles(101)) and set(taken.values()) == {1}
    assert _record(store_url, cid).state == "finished"


# ---------------------------------------------------------------- the account's pace


def test_the_shared_pace_is_per_gateway_and_account_never_above_the_rate():
    from dataclasses import replace

    from campaign.config import GatewaySettings, Settings
    from campaign.send.pacing import pace_for
    from campaign.store.pace import gcra

    gateway = GatewaySettings(url="http://user:pw@gw.example/msg", account="003547", rate=500)
    pace = pace_for(replace(Settings(), gateway=gateway))
    assert pace is not None and pace.account == "http://gw.example/msg#003547"  # no credentials
    assert pace_for(replace(Settings(), gateway=replace(gateway, rate=0))) is None
    for rate in (1, 10, 100, 500, 3000):
        pace = pace_for(replace(Settings(), gateway=replace(gateway, rate=rate)))
        assert pace is not None
        # a greedy taker that comes back every 7 ms (or 60 ms: a busy machine), each request
        # leaving at its slot: no one-second window sees more than the rate (a gateway counts
        # "too fast" that way), and it gets at least 95 % of it
        for every in (0.007, 0.06):
            next_at, taken = 0.0, []
            for step in range(int(5 / every)):
                now = 1000.0 + step * every
                bucket = gcra(next_at, now, pace.rate, pace.burst, pace.ahead)
                if bucket.tokens:
                    taken += [now + bucket.delay(i, pace.rate) for i in range(bucket.tokens)]
                    next_at = bucket.next_at(bucket.tokens, pace.rate)
            taken = [t for t in taken if t < 1005.0]  # the slots within the 5 s
            windows = Counter(int(t) for t in taken)
            assert max(windows.values()) <= rate, (rate, every, windows)
            assert len(taken) >= 0.95 * rate * 5 - 1, (rate, every, len(taken))


# ---------------------------------------------------------------- the pick's line


def test_the_pick_line_names_the_state_before_or_the_workers_joined(store_url):
    """One line per pick: "queued -> sending" (this worker started it), or "sending (joined
    N other worker(s))" when others send it already."""
    cid = _handed(store_url)
    engine = open_store(store_url)
    lines: list[str] = []
    worker = Worker(engine, send_one=_never_sends, stop=threading.Event(), notify=lines.append)
    try:
        picked = pick_due(engine)
        assert picked == (cid, "queued")
        worker._picked(*picked)
        register_worker(engine, cid)
        register_worker(engine, cid)
        joined = pick_due(engine)
        assert joined == (cid, "sending")
        worker._picked(*joined)
    finally:
        engine.dispose()
    assert lines[0].endswith(f"campaign {cid} (spring): queued -> sending"), lines
    assert lines[1].endswith(f"campaign {cid} (spring): sending (joined 2 other worker(s))")
    assert all("+08:00" in line for line in lines)


def _never_sends(campaign_id: int) -> SendReport:
    raise AssertionError(f"campaign {campaign_id} is not sent in this test")
