"""SIGKILL a sending process mid-campaign, then resume: nobody is texted twice.

The sender runs as a real subprocess (`python -m campaign resume ...`) against the
simulator in this process, slowed by a rate limit and answer delays so that requests are
in flight when the kill lands. Afterwards the simulator's log is the truth of what was
received.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from campaign.cli import app
from campaign.sender import DEFAULT_CONCURRENCY
from campaign.store import open_store
from campaign.store.schema import batches
from tests.support.plans import small_plan
from tests.support.simulator import running_simulator

REQUESTS = 100
KILL_AFTER = 25


def _fast(folder: Path) -> list[str]:
    """Options for a resume at full speed."""
    config = folder / "fast.toml"
    config.write_text("[gateway]\nrate = 0\n")
    return ["--config", str(config)]


def _stored_campaign(url: str) -> int:
    from campaign.store.campaigns import create_campaign

    engine = open_store(url)
    try:
        plan = small_plan(REQUESTS * 2 + 1, 2)  # 200 recipients, 2 a request
        return create_campaign(engine, plan, name="kill me", settings_snapshot={})
    finally:
        engine.dispose()


def _batch_states(url: str, cid: int) -> dict[str, tuple[str, tuple[str, ...]]]:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(batches.c.batch_id, batches.c.state, batches.c.mobiles).where(
                    batches.c.campaign_id == cid
                )
            ).all()
    finally:
        engine.dispose()
    return {r.batch_id: (r.state, tuple(r.mobiles.split(","))) for r in rows}


def _taken(sim) -> Counter[str]:
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def test_sigkill_mid_campaign_then_resume(store_url, tmp_path):
    cid = _stored_campaign(store_url)
    config = tmp_path / "slow.toml"
    config.write_text("[gateway]\nrate = 25\n")
    with running_simulator() as sim:
        sim.inject_delay(10_000, seconds=0.25)  # every answer comes late: requests in flight
        env = {
            **os.environ,
            "CAMPAIGN_ACCOUNT": sim.account,
            "CAMPAIGN_PASSWORD": sim.password,
        }
        command = [
            sys.executable,
            "-m",
            "campaign",
            "resume",
            str(cid),
            "--db",
            store_url,
            "--gateway",
            sim.url,
            "--config",
            str(config),
        ]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while len(sim.received()) < KILL_AFTER and time.monotonic() < deadline:
                assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(10)
            process.stderr.close()  # type: ignore[union-attr]
        assert process.returncode == -signal.SIGKILL

        at_kill = _batch_states(store_url, cid)
        taken = _taken(sim)
        state_of = {m: state for state, mobiles in at_kill.values() for m in mobiles}
        # at most once, at the moment of the kill: whatever the gateway took is recorded
        # as accepted or still `sending` in the store, never `pending`
        assert {state_of[m] for m in taken} <= {"accepted", "sending"}
        in_flight = {b for b, (state, _) in at_kill.items() if state == "sending"}
        assert 0 < len(in_flight) <= DEFAULT_CONCURRENCY
        assert any(state == "pending" for state, _ in at_kill.values())
        shown = CliRunner().invoke(app, ["status", str(cid), "--db", store_url])
        assert "sending (no run is alive" in shown.stdout, shown.output

        sim.clear_faults()
        result = CliRunner().invoke(
            app,
            [
                "resume",
                str(cid),
                "--db",
                store_url,
                "--gateway",
                sim.url,
                "--json",
                *_fast(tmp_path),
            ],
            env={"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password},
        )
        assert result.exit_code == 5, result.output  # the in-flight ones are unknown
        data = json.loads(result.stdout)
        assert data["state"] == "finished" and data["unknown"] == len(in_flight)
        assert "in flight" in result.stderr

        final = _batch_states(store_url, cid)
        taken = _taken(sim)
        assert all(n == 1 for n in taken.values())  # nobody twice
        for batch_id, (state, mobiles) in final.items():
            if batch_id in in_flight:
                assert state == "unknown"
                assert all(taken[m] <= 1 for m in mobiles)  # sent at most once
            else:
                assert state == "accepted"
                assert all(taken[m] == 1 for m in mobiles)  # sent exactly once
        assert data["outcomes"]["unknown"] == 2 * len(in_flight)


def test_ctrl_c_stops_after_the_requests_in_flight(sqlite_url, tmp_path):
    """SIGINT (Ctrl-C): in-flight requests finish and are recorded; the rest is resumable."""
    cid = _stored_campaign(sqlite_url)
    config = tmp_path / "slow.toml"
    config.write_text("[gateway]\nrate = 25\n")
    with running_simulator() as sim:
        sim.inject_delay(10_000, seconds=0.25)
        env = {**os.environ, "CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}
        command = [
            sys.executable,
            "-m",
            "campaign",
            "resume",
            str(cid),
            "--db",
            sqlite_url,
            "--gateway",
            sim.url,
            "--config",
            str(config),
        ]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(sim.received()) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 130, err.decode()  # Ctrl-C: 128 + SIGINT
        assert "interrupted" in err.decode() and f"campaign resume {cid}" in err.decode()
        assert b"stopped" in out
        states = Counter(state for state, _ in _batch_states(sqlite_url, cid).values())
        assert states["sending"] == 0 and states["unknown"] == 0  # nothing left in doubt
        assert states["accepted"] == len(sim.received()) and states["pending"] > 0
        sim.clear_faults()
        result = CliRunner().invoke(
            app,
            ["resume", str(cid), "--db", sqlite_url, "--gateway", sim.url, *_fast(tmp_path)],
            env={"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password},
        )
        assert result.exit_code == 0, result.output
        taken = _taken(sim)
        assert len(taken) == 2 * REQUESTS and set(taken.values()) == {1}


def test_sigkill_during_send_then_resume(sqlite_url, tmp_path):
    """The same through `campaign send` itself (the campaign is created by the process)."""
    contacts = tmp_path / "list.csv"
    rows = [f"客户{i},139{i:08d}" for i in range(2 * REQUESTS)]
    contacts.write_text("name,mobile\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "slow.toml"
    config.write_text("[gateway]\nrate = 25\nmax_batch = 2\n")
    with running_simulator() as sim:
        sim.inject_delay(10_000, seconds=0.25)
        env = {**os.environ, "CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}
        command = [
            sys.executable,
            "-m",
            "campaign",
            "send",
            str(contacts),
            "--text",
            "会员日八折",
            "--db",
            sqlite_url,
            "--gateway",
            sim.url,
            "--config",
            str(config),
            "--yes",
        ]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while len(sim.received()) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        in_flight = {b for b, (s, _) in _batch_states(sqlite_url, 1).items() if s == "sending"}
        sim.clear_faults()
        result = CliRunner().invoke(
            app,
            ["resume", "1", "--db", sqlite_url, "--gateway", sim.url, "--json", *_fast(tmp_path)],
            env={"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password},
        )
        assert result.exit_code == (5 if in_flight else 0), result.output
        assert json.loads(result.stdout)["unknown"] == len(in_flight)
        taken = _taken(sim)
        assert set(taken.values()) == {1}
        final = _batch_states(sqlite_url, 1)
        for batch_id, (state, mobiles) in final.items():
            expected = "unknown" if batch_id in in_flight else "accepted"
            assert state == expected
            if state == "accepted":
                assert all(taken[m] == 1 for m in mobiles)


def test_two_processes_share_one_postgres_campaign(pg_url, tmp_path):
    """Two `resume` processes at once on one campaign: all sent, nobody twice."""
    cid = _stored_campaign(pg_url)
    config = tmp_path / "pace.toml"
    config.write_text("[gateway]\nrate = 40\n")
    with running_simulator() as sim:
        env = {**os.environ, "CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}
        command = [
            sys.executable,
            "-m",
            "campaign",
            "resume",
            str(cid),
            "--db",
            pg_url,
            "--gateway",
            sim.url,
            "--config",
            str(config),
            "--json",
        ]
        processes = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=60) for p in processes]
        assert [p.returncode for p in processes] == [0, 0], [e.decode() for _, e in outputs]
        sent = [json.loads(out)["requests_sent"] for out, _ in outputs]
        assert sum(sent) == REQUESTS and min(sent) > 0  # both took a share
        taken = _taken(sim)
        assert len(taken) == 2 * REQUESTS and set(taken.values()) == {1}
        states = Counter(state for state, _ in _batch_states(pg_url, cid).values())
        assert states == {"accepted": REQUESTS}


def test_sigkill_at_full_speed_leaves_in_doubt_at_most_one_claim_group_more(sqlite_url, tmp_path):
    """At full speed claims run ahead of the free slots: after a SIGKILL, the batches left
    `sending` (unknown at the next run, never resent by themselves) are at most the
    requests in flight plus one claim group, and nobody is texted twice."""
    from campaign.sender import SendPolicy

    window = DEFAULT_CONCURRENCY + SendPolicy().claim_group
    engine = open_store(sqlite_url)
    try:
        from campaign.store.campaigns import create_campaign

        cid = create_campaign(engine, small_plan(601, 1), name="fast", settings_snapshot={})
    finally:
        engine.dispose()
    with running_simulator() as sim:
        sim.inject_delay(100_000, seconds=0.05)  # 16 in flight: ~320 requests/s
        env = {**os.environ, "CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}
        command = [sys.executable, "-m", "campaign", "resume", str(cid), "--db", sqlite_url]
        command += ["--gateway", sim.url, *_fast(tmp_path)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while len(sim.received()) < 150 and time.monotonic() < deadline:
                assert process.poll() is None
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(10)
        at_kill = _batch_states(sqlite_url, cid)
        taken = _taken(sim)
        state_of = {m: state for state, mobiles in at_kill.values() for m in mobiles}
        assert {state_of[m] for m in taken} <= {"accepted", "sending"}
        in_doubt = {b for b, (state, _) in at_kill.items() if state == "sending"}
        assert 0 < len(in_doubt) <= window, len(in_doubt)
        assert any(state == "pending" for state, _ in at_kill.values())

        sim.clear_faults()
        result = CliRunner().invoke(
            app,
            [
                "resume",
                str(cid),
                "--db",
                sqlite_url,
                "--gateway",
                sim.url,
                "--json",
                *_fast(tmp_path),
            ],
            env={"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password},
        )
        assert result.exit_code == 5, result.output
        assert json.loads(result.stdout)["unknown"] == len(in_doubt)
        taken = _taken(sim)
        assert all(n == 1 for n in taken.values())  # nobody twice
        final = _batch_states(sqlite_url, cid)
        assert {state for b, (state, _) in final.items() if b not in in_doubt} == {"accepted"}
        assert sum(len(final[b][1]) for b in in_doubt) + len(taken) >= 600
