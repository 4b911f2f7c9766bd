"""`campaign send / resume / status` through the typer app, against the real simulator."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from campaign.cli import app
from campaign.store import open_store
from campaign.store.campaigns import create_campaign
from campaign.store.schema import SCHEMA_VERSION, campaigns, meta
from campaign.timeutil import china_now
from tests.support.plans import small_plan
from tests.support.simulator import running_simulator

runner = CliRunner()


@pytest.fixture
def sim():
    with running_simulator() as sim:
        yield sim


def _env(sim) -> dict[str, str]:
    return {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}


def _stored_campaign(url: str, n: int = 31, per_batch: int = 3) -> int:
    engine = open_store(url)
    try:
        return create_campaign(
            engine, small_plan(n, per_batch), name="spring", settings_snapshot={}
        )
    finally:
        engine.dispose()


def _contacts(tmp_path) -> str:
    path = tmp_path / "vip.csv"
    lines = ["name,mobile"] + [f"客户{i},1390000{i:04d}" for i in range(12)] + ["bad,12345"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _campaign_count(url: str) -> int:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(campaigns)).scalar_one()
    finally:
        engine.dispose()


# ---------------------------------------------------------------- send


def test_send_plans_stores_and_sends(store_url, tmp_path, sim):
    result = runner.invoke(
        app,
        [
            "send",
            _contacts(tmp_path),
            "--text",
            "{name}您好，春季特惠",
            "--db",
            store_url,
            "--gateway",
            sim.url,
            "--yes",
            "--json",
            "--name",
            "vip",
        ],
        env=_env(sim),
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["recipients"] == 12 and data["requests"] == 12 and data["segments"] == 12
    assert data["outcomes"]["invalid"] == 1 and data["outcomes"]["pending"] == 12
    assert data["state"] == "finished" and data["unknown"] == 0
    assert len(sim.received()) == 12
    status = runner.invoke(app, ["status", "vip", "--db", store_url, "--json"])
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    assert {"campaign_id", "name", "state", "outcomes", "reports", "unmatched_reports"} <= set(
        shown
    )
    assert shown["campaign_id"] == data["campaign_id"] and shown["name"] == "vip"
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.select(campaigns.c.settings)).scalar_one()
    finally:
        engine.dispose()
    assert sim.password not in stored and sim.password not in result.output  # no secrets


def test_send_with_the_builtin_simulator_needs_no_credentials(sqlite_url, tmp_path):
    result = runner.invoke(
        app,
        [
            "send",
            _contacts(tmp_path),
            "--text",
            "hello {name}",
            "--db",
            sqlite_url,
            "--gateway",
            "simulator",
            "--yes",
        ],
        env={"CAMPAIGN_ACCOUNT": "", "CAMPAIGN_PASSWORD": ""},
    )
    assert result.exit_code == 0, result.output
    assert "campaign 1: finished" in result.stdout


def test_missing_credentials_is_bad_input_and_stores_nothing(sqlite_url, tmp_path):
    result = runner.invoke(
        app,
        [
            "send",
            _contacts(tmp_path),
            "--text",
            "hi",
            "--db",
            sqlite_url,
            "--gateway",
            "http://127.0.0.1:9/msg",
            "--yes",
        ],
        env={"CAMPAIGN_ACCOUNT": "", "CAMPAIGN_PASSWORD": ""},
    )
    assert result.exit_code == 3
    assert "CAMPAIGN_PASSWORD" in result.stderr and "Traceback" not in result.output
    assert _campaign_count(sqlite_url) == 0


def test_missing_contact_file_is_bad_input(sqlite_url, tmp_path, sim):
    result = runner.invoke(
        app,
        [
            "send",
            str(tmp_path / "nope.csv"),
            "--text",
            "hi",
            "--db",
            sqlite_url,
            "--gateway",
            sim.url,
            "--yes",
        ],
        env=_env(sim),
    )
    assert result.exit_code == 3, result.output
    assert sim.received() == [] and _campaign_count(sqlite_url) == 0


# ---------------------------------------------------------------- resume


def test_quota_stop_then_resume(store_url, sim):
    cid = _stored_campaign(store_url)
    product = sim.settings.accounts[0].default
    sim.set_quota(product, 12)
    args = ["resume", str(cid), "--db", store_url, "--gateway", sim.url, "--json"]
    stopped = runner.invoke(app, [*args, "--force"], env=_env(sim))
    assert stopped.exit_code == 4, stopped.output
    data = json.loads(stopped.stdout)
    assert data["state"] == "stopped" and data["outcomes"]["unsent"] == 18
    assert "no quota left" in stopped.stderr and f"campaign resume {cid}" in stopped.stderr
    sim.top_up(product, 100)
    done = runner.invoke(app, args, env=_env(sim))
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["outcomes"]["pending"] == 30
    taken = [m for r in sim.received() if r.sent for m in r.mobiles]
    assert len(taken) == len(set(taken)) == 30


def test_dropped_request_exit_5_and_resend_unknown(sqlite_url, sim):
    cid = _stored_campaign(sqlite_url, n=5, per_batch=2)  # 2 requests
    sim.inject_drop(1)
    args = ["resume", str(cid), "--db", sqlite_url, "--gateway", sim.url]
    first = runner.invoke(app, args, env=_env(sim))
    assert first.exit_code == 5, first.output
    assert "unknown" in first.stderr
    again = runner.invoke(app, [*args, "--resend-unknown", "--json"], env=_env(sim))
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["unknown"] == 0
    assert len(sim.received()) == 3


def test_no_wait_outside_the_window_exits_4(sqlite_url, sim, tmp_path):
    cid = _stored_campaign(sqlite_url)
    start = china_now() + timedelta(hours=2)
    end = start + timedelta(hours=1)
    config = tmp_path / "c.toml"
    config.write_text(f'[compliance]\nsend_window = "{start:%H:%M}-{end:%H:%M}"\n')
    result = runner.invoke(
        app,
        [
            "resume",
            str(cid),
            "--config",
            str(config),
            "--db",
            sqlite_url,
            "--gateway",
            sim.url,
            "--no-wait",
        ],
        env=_env(sim),
    )
    assert result.exit_code == 4, result.output
    assert f"opens at {start:%Y-%m-%d %H:%M}" in result.stderr
    assert sim.received() == []


def test_unknown_campaign_is_bad_input(sqlite_url, sim):
    _stored_campaign(sqlite_url)
    for command in (["resume", "42", "--gateway", sim.url], ["status", "42"]):
        result = runner.invoke(app, [*command, "--db", sqlite_url], env=_env(sim))
        assert result.exit_code == 3, result.output
        assert "no campaign '42'" in result.stderr
    assert sim.received() == []


def test_store_that_does_not_open_or_is_newer(tmp_path, sqlite_url, sim):
    bad = f"sqlite:///{tmp_path}/missing/dir/x.db"
    result = runner.invoke(app, ["resume", "1", "--db", bad, "--gateway", sim.url], env=_env(sim))
    assert result.exit_code == 3 and "does not open" in result.stderr
    _stored_campaign(sqlite_url)
    engine = open_store(sqlite_url)
    with engine.begin() as conn:
        conn.execute(meta.update().values(value=str(SCHEMA_VERSION + 1)))
    engine.dispose()
    for command in (["resume", "1", "--gateway", sim.url], ["status"]):
        result = runner.invoke(app, [*command, "--db", sqlite_url], env=_env(sim))
        assert result.exit_code == 3 and "newer version" in result.stderr
    assert sim.received() == []


def test_status_lists_campaigns(store_url):
    first = _stored_campaign(store_url)
    second = _stored_campaign(store_url)
    result = runner.invoke(app, ["status", "--db", store_url, "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["campaigns"]
    assert [c["campaign_id"] for c in listed] == [first, second]
    assert listed[0]["batches"]["pending"] == 10
    plain = runner.invoke(app, ["status", "--db", store_url])
    assert plain.exit_code == 0 and "planned" in plain.stdout
    one = runner.invoke(app, ["status", str(first), "--db", store_url])
    assert one.exit_code == 0 and "campaign 1 'spring': planned" in one.stdout


def test_confirmation_on_a_terminal(sqlite_url, tmp_path, sim, monkeypatch):
    monkeypatch.setattr("campaign.cli.send.is_terminal", lambda: True)
    args = [
        "send",
        _contacts(tmp_path),
        "--text",
        "hi {name}",
        "--db",
        sqlite_url,
        "--gateway",
        sim.url,
    ]
    declined = runner.invoke(app, args, input="n\n", env=_env(sim))
    assert declined.exit_code == 0, declined.output
    assert "Send 12 recipients in 12 requests (12 billed segments)?" in declined.stderr
    assert _campaign_count(sqlite_url) == 0 and sim.received() == []
    declined_json = runner.invoke(app, [*args, "--json"], input="n\n", env=_env(sim))
    assert declined_json.exit_code == 0, declined_json.output
    shown = json.loads(declined_json.stdout.splitlines()[-1])  # the runner echoes the answer
    assert shown["campaign_id"] is None and shown["declined"] is True
    assert shown["recipients"] == 12 and shown["requests"] == 12
    assert _campaign_count(sqlite_url) == 0 and sim.received() == []
    accepted = runner.invoke(app, args, input="y\n", env=_env(sim))
    assert accepted.exit_code == 0, accepted.output
    assert _campaign_count(sqlite_url) == 1 and len(sim.received()) == 12


def test_status_of_a_fresh_store_is_an_empty_list(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = runner.invoke(app, ["status", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"campaigns": []}
    missing = runner.invoke(app, ["status", "3", "--db", f"sqlite:///{tmp_path / 'other.db'}"])
    assert missing.exit_code == 3 and "no campaign store" in missing.stderr


def test_wrong_password_stops_with_exit_4_and_nothing_sent(sqlite_url, sim):
    cid = _stored_campaign(sqlite_url)
    result = runner.invoke(
        app,
        ["resume", str(cid), "--db", sqlite_url, "--gateway", sim.url],
        env={"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": "Zq9-not-it"},
    )
    assert result.exit_code == 4, result.output
    assert "wrong password" in result.stderr and "Zq9-not-it" not in result.output
    assert [r for r in sim.received() if r.sent] == []
    status = runner.invoke(app, ["status", str(cid), "--db", sqlite_url, "--json"])
    assert json.loads(status.stdout)["state"] == "stopped"


def test_a_store_failing_mid_command_is_exit_3_not_unexpected(sqlite_url, monkeypatch):
    from campaign.store import workers

    cid = _stored_campaign(sqlite_url)

    def locked(*_args, **_kwargs):
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(workers, "live_workers", locked)
    result = runner.invoke(app, ["status", str(cid), "--db", sqlite_url])
    assert result.exit_code == 3, result.output
    assert "the store failed: database is locked" in result.stderr
