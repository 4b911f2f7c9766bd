"""`send --at/--queue`, `status` of a campaign that waits, `[[job]] queue = true`: the
campaign is handed to the workers and this process sends nothing (the simulator's log is
the truth); bad `--at` values are exit 3 with the reason, before anything is stored."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import load_settings
from campaign.jobs import run_jobs
from campaign.store import open_store
from campaign.store.campaigns import get_campaign
from campaign.timeutil import CHINA
from tests.support.simulator import running_simulator

runner = CliRunner()


@pytest.fixture
def sim():
    with running_simulator() as sim:
        yield sim


def _env(sim) -> dict[str, str]:
    return {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}


def _contacts(tmp_path: Path) -> str:
    path = tmp_path / "vip.csv"
    lines = ["name,mobile"] + [f"客户{i},1390000{i:04d}" for i in range(12)] + ["bad,12345"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _send(tmp_path, sim, url: str, *extra: str, config: str | None = None):
    args = ["send", _contacts(tmp_path), "--text", "{name}您好，春季特惠", "--db", url,
            "--gateway", sim.url, "--yes", *extra]  # fmt: skip
    if config is not None:
        args += ["--config", config]
    return runner.invoke(app, args, env=_env(sim))


def _tomorrow(hour: int, minute: int = 0) -> datetime:
    day = datetime.now(CHINA).date() + timedelta(days=1)
    return datetime.combine(day, time(hour, minute), tzinfo=CHINA)


# ---------------------------------------------------------------- send --at / --queue


def test_send_at_stores_it_scheduled_and_sends_nothing(store_url, tmp_path, sim):
    due = _tomorrow(10)
    result = _send(tmp_path, sim, store_url, "--at", f"{due:%Y-%m-%d %H:%M}", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["state"] == "scheduled" and data["due_at"] == due.isoformat()
    assert data["recipients"] == 12 and data["requests"] >= 1 and "outcomes" in data
    assert sim.received() == []

    status = runner.invoke(app, ["status", str(data["campaign_id"]), "--db", store_url, "--json"])
    shown = json.loads(status.stdout)
    assert shown["state"] == "scheduled" and shown["due_at"] == due.isoformat()
    assert shown["workers"] == []
    human = runner.invoke(app, ["status", str(data["campaign_id"]), "--db", store_url])
    assert f"due: {due:%Y-%m-%d %H:%M}+08:00" in human.stdout
    listed = runner.invoke(app, ["status", "--db", store_url])
    assert "scheduled" in listed.stdout and f"due {due:%Y-%m-%d %H:%M}+08:00" in listed.stdout


def test_send_queue_stores_it_queued_and_sends_nothing(store_url, tmp_path, sim):
    result = _send(tmp_path, sim, store_url, "--queue")
    assert result.exit_code == 0, result.output
    assert "queued: a worker sends it (`campaign worker`)" in result.stdout
    assert sim.received() == []
    engine = open_store(store_url)
    try:
        record = get_campaign(engine, 1)
    finally:
        engine.dispose()
    assert record.state == "queued" and record.queued and record.due_at is not None

    again = _send(tmp_path, sim, store_url, "--queue")  # the repeat guard of `send`
    assert again.exit_code == 3 and "already holds this list" in again.output


def test_at_wins_over_queue(tmp_path, sim):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    due = _tomorrow(9, 30)
    result = _send(tmp_path, sim, url, "--queue", "--at", f"{due:%Y-%m-%d %H:%M}")
    assert result.exit_code == 0, result.output
    assert f"scheduled for {due:%Y-%m-%d %H:%M} (China time)" in result.stdout
    assert sim.received() == []


BAD_AT = [
    ("tomorrow", "--at: expected YYYY-MM-DD HH:MM (China time), got 'tomorrow'"),
    ("2030-02-30 10:00", "--at: expected YYYY-MM-DD HH:MM (China time), got '2030-02-30 10:00'"),
    ("2030-01-01", "--at: expected YYYY-MM-DD HH:MM (China time)"),
    ("2030-01-01 25:00", "--at: expected YYYY-MM-DD HH:MM (China time)"),
    ("2020-01-01 10:00", "--at 2020-01-01 10:00 (China time) is in the past"),
]


@pytest.mark.parametrize(("at", "reason"), BAD_AT)
def test_a_bad_at_is_exit_3_with_the_reason_nothing_stored(tmp_path, sim, at, reason):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = _send(tmp_path, sim, url, "--at", at, "--json")
    assert result.exit_code == 3, result.output
    assert reason in json.loads(result.stdout)["error"]
    assert "Traceback" not in result.output
    assert not (tmp_path / "c.db").exists() and sim.received() == []


def test_an_at_outside_the_send_window_names_the_next_opening(tmp_path, sim):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    config = tmp_path / "window.toml"
    config.write_text('[compliance]\nsend_window = "08:00-21:00"\n')
    early = _tomorrow(6, 30)
    result = _send(tmp_path, sim, url, "--at", f"{early:%Y-%m-%d %H:%M}", config=str(config))
    assert result.exit_code == 3, result.output
    assert "outside the send window 08:00-21:00 (China time)" in result.output
    assert f"use --at {early:%Y-%m-%d} 08:00 or later" in result.output
    late = _tomorrow(21, 0)  # the window's end is outside it
    result = _send(tmp_path, sim, url, "--at", f"{late:%Y-%m-%d %H:%M}", config=str(config))
    assert result.exit_code == 3
    assert f"use --at {late + timedelta(days=1):%Y-%m-%d} 08:00 or later" in result.output
    assert not (tmp_path / "c.db").exists() and sim.received() == []


# ---------------------------------------------------------------- [[job]] queue = true


def _job_config(folder: Path, sim_url: str, extra: str) -> Path:
    (folder / "incoming").mkdir(parents=True, exist_ok=True)
    lines = ["姓名,手机号码"] + [f"客户{i},139{i:08d}" for i in range(20)]
    (folder / "incoming" / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "weekly.txt").write_text("{姓名}您好，本周会员日全场八折。", encoding="utf-8")
    config = folder / "nightly.toml"
    config.write_text(
        f'[gateway]\nurl = "{sim_url}"\naccount = "demo"\npassword = "demo-secret"\nrate = 0\n'
        '[compliance]\nsignature = "【示例】"\n'
        '[[job]]\nname = "weekly"\ncontacts = "incoming/*.csv"\ntemplate = "weekly.txt"\n'
        f"{extra}\n",
        encoding="utf-8",
    )
    return config


def test_a_queue_job_hands_its_campaigns_to_the_workers(tmp_path, sim):
    config = _job_config(tmp_path, sim.url, "queue = true")
    result = runner.invoke(app, ["run", str(config), "--json"])
    assert result.exit_code == 0, result.output
    [job] = json.loads(result.stdout)["jobs"]
    assert job["sent"] == [] and [q["state"] for q in job["queued"]] == ["queued"]
    assert sim.received() == []
    again = runner.invoke(app, ["run", str(config), "--json"])  # handed once
    assert json.loads(again.stdout)["jobs"][0]["queued"] == []

    url = f"sqlite:///{tmp_path / 'campaign.db'}"  # beside the config, as `run` keeps it
    worker = runner.invoke(app, ["worker", "--once", "--config", str(config), "--db", url])
    assert worker.exit_code == 0, worker.output
    taken = [m for r in sim.received() if r.sent for m in r.mobiles]
    assert sorted(taken) == [f"139{i:08d}" for i in range(20)]


def test_a_queue_job_is_due_at_its_send_at(tmp_path, sim):
    config = _job_config(tmp_path, sim.url, 'queue = true\nsend_at = "09:00"')
    settings = load_settings(config, store_beside_config=True)
    today = datetime.now(CHINA).date()
    report = run_jobs(settings, clock=lambda: datetime.combine(today, time(7), tzinfo=CHINA))
    [queued] = report.jobs[0].queued
    nine = datetime.combine(today, time(9), tzinfo=CHINA)
    assert queued["state"] == "scheduled" and queued["due_at"] == nine.isoformat()
    assert sim.received() == []


def test_the_config_check_knows_the_queue_key(tmp_path, sim):
    config = _job_config(tmp_path, sim.url, 'queue = "yes"')
    result = runner.invoke(app, ["run", str(config), "--check"])
    assert result.exit_code == 3 and "[[job]] #1.queue must be true or false" in result.output
    config = _job_config(tmp_path, sim.url, "queue = true\nmax_per_day = 10")
    result = runner.invoke(app, ["run", str(config), "--check", "--json"])
    assert result.exit_code == 0, result.output
    [warning] = json.loads(result.stdout)["warnings"]
    assert "with queue = true the workers send it; they do not count max_per_day" in warning
