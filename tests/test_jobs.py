"""`campaign run CONFIG`: idempotent nightly runs against the real simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import load_settings
from campaign.jobs import export_name, lock_path, run_jobs, run_lock
from campaign.store import open_store
from campaign.store.results import outcome_counts
from campaign.timeutil import CHINA
from tests.support.simulator import running_simulator

TEMPLATE = "{姓名|会员}您好，本周会员日全场八折。"


def write_contacts(path: Path, first: int, count: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["姓名,手机号码,城市"]
    lines += [f"客户{i},139{i:08d},上海" for i in range(first, first + count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(folder: Path, sim_url: str, *, rate: float = 0, extra: str = "") -> Path:
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    (folder / "templates" / "weekly.txt").write_text(TEMPLATE, encoding="utf-8")
    config = folder / "nightly.toml"
    config.write_text(
        f"""
[gateway]
url = "{sim_url}"
account = "demo"
password = "demo-secret"
rate = {rate}
timeout = 5

[compliance]
signature = "【示例】"
optout_text = "回T退订"

[run]
log = "logs/campaign.log"

[[job]]
name = "weekly"
contacts = "incoming/*.csv"
template = "templates/weekly.txt"
inbox = "reports/inbox"
export = "exports"
{extra}
""",
        encoding="utf-8",
    )
    return config


def sent_mobiles(sim) -> Counter[str]:
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def invoke(config: Path, *args: str):
    return CliRunner().invoke(app, ["run", str(config), "--json", *args])


def test_second_run_sends_nothing_and_next_night_only_the_new_file(tmp_path):
    with running_simulator() as sim:
        config = write_config(tmp_path, sim.url)
        write_contacts(tmp_path / "incoming" / "a.csv", 0, 12)
        first = invoke(config)
        assert first.exit_code == 0, first.output
        summary = json.loads(first.stdout)
        assert len(summary["jobs"][0]["created"]) == 1
        assert sum(sent_mobiles(sim).values()) == 12
        assert (tmp_path / "exports" / export_name("weekly a.csv")).is_file()
        assert (tmp_path / "logs" / "campaign.log").read_text(encoding="utf-8")

        again = invoke(config)
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["jobs"][0]["created"] == []
        assert sum(sent_mobiles(sim).values()) == 12

        # the same file delivered again under another name is not a new campaign
        (tmp_path / "incoming" / "a-copy.csv").write_bytes(
            (tmp_path / "incoming" / "a.csv").read_bytes()
        )
        write_contacts(tmp_path / "incoming" / "b.csv", 100, 5)
        night2 = invoke(config)
        assert night2.exit_code == 0, night2.output
        assert len(json.loads(night2.stdout)["jobs"][0]["created"]) == 1
        counts = sent_mobiles(sim)
        assert sum(counts.values()) == 17 and max(counts.values()) == 1


def test_overlapping_run_exits_at_once(tmp_path):
    with running_simulator() as sim:
        config = write_config(tmp_path, sim.url)
        write_contacts(tmp_path / "incoming" / "a.csv", 0, 3)
        settings = load_settings(config, store_beside_config=True)
        with run_lock(lock_path(settings)):
            started = time.monotonic()
            result = invoke(config)
            assert time.monotonic() - started < 5
        assert result.exit_code == 0
        assert json.loads(result.stdout)["already_running"] is True
        assert sim.received() == []
        text = CliRunner().invoke(app, ["run", str(config)])
        assert "already running" not in text.stdout  # the lock is free again: it ran
        assert sum(sent_mobiles(sim).values()) == 3


def test_inbox_reports_are_imported_and_moved(tmp_path):
    with running_simulator() as sim:
        config = write_config(tmp_path, sim.url)
        write_contacts(tmp_path / "incoming" / "a.csv", 0, 2)
        assert invoke(config).exit_code == 0
        (request,) = [r for r in sim.received() if r.sent][:1]
        inbox = tmp_path / "reports" / "inbox"
        inbox.mkdir(parents=True)
        rows = [f"{r.msgid},{r.mobiles[0]},DELIVRD,2611250930" for r in sim.received()]
        (inbox / "export-1125.csv").write_text(
            "msgid,mobile,status,reportTime\n" + "\n".join(rows) + "\n", encoding="utf-8"
        )
        result = invoke(config)
        assert result.exit_code == 0, result.output
        (job,) = json.loads(result.stdout)["jobs"]
        assert job["imported"] and job["imported"][0]["imported"] == 2
        assert (inbox / "done" / "export-1125.csv").is_file()
        assert not (inbox / "export-1125.csv").exists()
        assert job["exported"]  # new reports: exported again
        engine = open_store(load_settings(config, store_beside_config=True).store_url)
        try:
            assert outcome_counts(engine, 1)["delivered"] == 2
        finally:
            engine.dispose()
        assert request.sent


def _clock(hour: int, minute: int = 0):
    def now() -> datetime:
        today = datetime.now(CHINA).date()
        return datetime(today.year, today.month, today.day, hour, minute, tzinfo=CHINA)

    return now


def test_send_at_not_after_and_max_per_day(tmp_path):
    with running_simulator() as sim:
        config = write_config(
            tmp_path,
            sim.url,
            extra='send_at = "09:00"\nnot_after = "20:00"\nmax_per_day = 7',
        )
        write_contacts(tmp_path / "incoming" / "a.csv", 0, 10)
        settings = load_settings(config, store_beside_config=True)

        early = run_jobs(settings, clock=_clock(8, 30))
        assert early.jobs[0].created and sim.received() == []  # planned, not before 09:00

        day = run_jobs(settings, clock=_clock(10))
        assert sum(sent_mobiles(sim).values()) == 7  # max_per_day
        again = run_jobs(settings, clock=_clock(11))
        assert sum(sent_mobiles(sim).values()) == 7 and again.exit_code == 0
        assert day.exit_code == 0

        write_contacts(tmp_path / "incoming" / "late.csv", 500, 4)
        # arrives and is planned at 10:00 with today's budget used up; at 21:00 it has
        # not started: closed, its recipients unsent, never sent the next morning
        run_jobs(settings, clock=_clock(10))
        stale = run_jobs(settings, clock=_clock(21))
        assert stale.jobs[0].expired
        engine = open_store(settings.store_url)
        try:
            late_id = stale.jobs[0].expired[0]
            assert outcome_counts(engine, late_id)["unsent"] == 4
        finally:
            engine.dispose()
        assert not any(m.startswith("1390000050") for m in sent_mobiles(sim))


def test_killed_run_restarts_without_double_sends(tmp_path):
    with running_simulator() as sim:
        config = write_config(tmp_path, sim.url, rate=20)
        write_contacts(tmp_path / "incoming" / "a.csv", 0, 60)
        env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
        process = subprocess.Popen(
            [sys.executable, "-m", "campaign", "run", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while len(sim.received()) < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        before = sum(sent_mobiles(sim).values())
        assert 0 < before < 60
        rerun = invoke(config)
        assert rerun.exit_code in (0, 5), rerun.output  # which one: checked below
        counts = sent_mobiles(sim)
        assert max(counts.values()) == 1  # nobody twice
        engine = open_store(load_settings(config, store_beside_config=True).store_url)
        try:
            outcomes = outcome_counts(engine, 1)
        finally:
            engine.dispose()
        # everyone was submitted once, except batches in flight at the kill: unknown
        assert outcomes["pending"] + outcomes["unknown"] == 60
        # The kill is a race: a batch claimed but not answered when SIGKILL came is `unknown`
        # (never sent again) and the rerun finishes with 5; killed between two batches, 0.
        assert rerun.exit_code == (5 if outcomes["unknown"] else 0), rerun.output
        assert len(counts) + 0 >= 60 - outcomes["unknown"]


@pytest.mark.parametrize("name", ["weekly a.csv", "a/b:c*?.csv"])
def test_export_names_are_safe(name):
    assert "/" not in export_name(name) and export_name(name).endswith(".xlsx")


def test_unwritable_log_or_lock_is_bad_config_not_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    (tmp_path / "hi.txt").write_text("hi", encoding="utf-8")
    for section in (
        f'[run]\nlog = "{blocker}/sub/campaign.log"\n',
        f'[run]\nlock = "{blocker}/sub/campaign.lock"\n',
    ):
        config = tmp_path / "c.toml"
        config.write_text(
            section + '\n[[job]]\nname = "x"\ncontacts = "in/*.csv"\ntemplate = "hi.txt"\n',
            encoding="utf-8",
        )
        result = invoke(config)
        assert result.exit_code == 3, result.output
        assert "cannot be written" in result.stderr


def test_the_nightly_run_never_sends_a_paused_campaign(tmp_path):
    """`campaign pause` holds against `campaign run`: the paused rest waits for a resume."""
    from campaign.store.queue import pause

    with running_simulator() as sim:
        config = write_config(tmp_path, sim.url, extra="max_per_day = 4")
        write_contacts(tmp_path / "incoming" / "a.csv", 0, 10)
        settings = load_settings(config, store_beside_config=True)
        first = run_jobs(settings, clock=_clock(10))
        assert sum(sent_mobiles(sim).values()) == 4 and first.exit_code == 0
        engine = open_store(settings.store_url)
        try:
            pause(engine, "1", "tester")
        finally:
            engine.dispose()
        run_jobs(settings, clock=lambda: _clock(10)() + timedelta(days=1))
        assert sum(sent_mobiles(sim).values()) == 4  # nothing more while paused
