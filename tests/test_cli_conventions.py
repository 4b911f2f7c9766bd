"""What every command shares: --version, -h, help that shows examples and value names,
--json errors as one object, --gateway checked, resume's gateway, Ctrl-C exit 130."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa
import typer.main
from typer.testing import CliRunner

import campaign
from campaign.cli import app
from campaign.store.campaigns import sent_gateway_url, settings_snapshot, without_userinfo
from tests.support.simulator import running_simulator

runner = CliRunner()
PYTHON_TYPES = re.compile(r"<(list\[|bool|path|str|int|float|Path)", re.IGNORECASE)


def _command_paths(command=None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of the app, as argv prefixes: ("optout", "add"), ..."""
    command = command or typer.main.get_command(app)
    paths = []
    for name, sub in getattr(command, "commands", {}).items():
        paths.append((*prefix, name))
        paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


COMMANDS = _command_paths()


def _contacts(tmp_path: Path, n: int = 2) -> str:
    path = tmp_path / "list.csv"
    rows = [f"客户{i},139{i:08d}" for i in range(n)]
    path.write_text("name,mobile\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def _env(sim) -> dict[str, str]:
    return {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}


def _one_json_object(stdout: str) -> dict:
    assert len(stdout.strip().splitlines()) == 1, stdout
    return json.loads(stdout)


# ---------------------------------------------------------------- --version, -h, help


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"campaign {campaign.__version__}\n"
    assert re.fullmatch(r"campaign \d+\.\d+\.\d+\n", result.stdout)


def test_every_command_is_listed():
    names = {path[-1] for path in COMMANDS}
    assert {"plan", "send", "resume", "status", "export", "add", "import"} <= names


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_short_and_long_help_on_the_app(flag):
    result = runner.invoke(app, [flag])
    assert result.exit_code == 0, result.output
    assert "Usage: campaign" in result.stdout and "--version" in result.stdout


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_short_help_an_example_and_value_names(path):
    short = runner.invoke(app, [*path, "-h"])
    assert short.exit_code == 0, short.output
    long = runner.invoke(app, [*path, "--help"])
    assert long.stdout == short.stdout
    text = short.stdout
    assert f"Usage: campaign {' '.join(path)}" in text
    assert "Example" in text and f"campaign {path[0]}" in text.split("Example", 1)[1]
    assert not PYTHON_TYPES.search(text), text


def test_help_names_the_values():
    text = runner.invoke(app, ["send", "-h"]).stdout
    for shown in ("FILE", "URL", "TEXT", "N"):
        assert re.search(rf"\b{shown}\b", text), shown
    assert "--text" in text and "ID" in runner.invoke(app, ["resume", "-h"]).stdout
    assert "DIR" in runner.invoke(app, ["demo", "-h"]).stdout


# ---------------------------------------------------------------- --json failures


def test_json_bad_input_is_one_error_object(tmp_path):
    result = runner.invoke(app, ["plan", str(tmp_path / "missing.csv"), "--text", "hi", "--json"])
    assert result.exit_code == 3
    data = _one_json_object(result.stdout)
    assert data["exit_code"] == 3 and "missing.csv" in data["error"]
    assert "Error: " in result.stderr and "missing.csv" in result.stderr


@pytest.mark.parametrize(
    "command", [["status", "42"], ["resume", "42"], ["export", "42", "-o", "x.csv"]]
)
def test_json_missing_campaign_is_one_error_object(tmp_path, sqlite_url, command):
    runner.invoke(app, ["status", "--db", sqlite_url])  # an empty store
    result = runner.invoke(
        app,
        [*command, "--db", sqlite_url, "--json"],
        env={"CAMPAIGN_ACCOUNT": "a", "CAMPAIGN_PASSWORD": "b"},
    )
    assert result.exit_code == 3, result.output
    data = _one_json_object(result.stdout)
    assert data["exit_code"] == 3 and "42" in data["error"]


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--json"],  # no contact file
        ["plan", "x.csv", "--json", "--no-such-option"],
        ["export", "1", "--json"],  # no -o
        ["plan", "x.csv", "--json", "-t", "t.txt", "--text", "hi"],  # both
    ],
)
def test_json_usage_errors_are_one_error_object(argv):
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    data = _one_json_object(result.stdout)
    assert data["exit_code"] == 2 and data["error"]


def test_without_json_a_failure_prints_nothing_on_stdout(tmp_path):
    result = runner.invoke(app, ["plan", str(tmp_path / "missing.csv"), "--text", "hi"])
    assert result.exit_code == 3 and result.stdout == ""


# ---------------------------------------------------------------- --gateway


@pytest.mark.parametrize("value", ["ftp://x", "foo", "send.18sms.com/msg"])
@pytest.mark.parametrize("command", ["send", "balance"])
def test_gateway_that_is_no_http_url_nor_simulator_is_a_usage_error(tmp_path, value, command):
    argv = [command, "--gateway", value]
    if command == "send":
        argv += [
            _contacts(tmp_path),
            "--text",
            "hi",
            "--yes",
            "--db",
            f"sqlite:///{tmp_path / 'x.db'}",
        ]
    result = runner.invoke(app, argv, env={"CAMPAIGN_ACCOUNT": "a", "CAMPAIGN_PASSWORD": "b"})
    assert result.exit_code == 2, result.output
    assert value in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_resume_sends_through_the_gateway_the_campaign_was_sent_through(tmp_path, sqlite_url):
    with running_simulator() as sim:
        product = sim.settings.accounts[0].default
        sim.set_quota(product, 2)
        url = f"http://127.0.0.1:{sim.port}/msg"
        sent = runner.invoke(
            app,
            [
                "send",
                _contacts(tmp_path, 5),
                "--text",
                "{name}您好",
                "--gateway",
                url,
                "--db",
                sqlite_url,
                "--yes",
                "--force",
                "--json",
            ],
            env=_env(sim),
        )
        assert sent.exit_code == 4, sent.output  # the quota stops it: resumable
        cid = json.loads(sent.stdout)["campaign_id"]
        sim.top_up(product, 100)
        resumed = runner.invoke(
            app, ["resume", str(cid), "--db", sqlite_url, "--json"], env=_env(sim)
        )
        assert resumed.exit_code == 0, resumed.output
        taken = sorted(m for r in sim.received() if r.sent for m in r.mobiles)
    assert taken == [f"139{i:08d}" for i in range(5)]


def test_the_stored_gateway_url_carries_no_credentials(tmp_path, sqlite_url):
    with running_simulator() as sim:
        port = sim.port
        url = f"http://{sim.account}:s3cr3t-pw@127.0.0.1:{sim.port}/msg"
        sent = runner.invoke(
            app,
            [
                "send",
                _contacts(tmp_path),
                "--text",
                "hi {name}",
                "--gateway",
                url,
                "--db",
                sqlite_url,
                "--yes",
            ],
            env=_env(sim),
        )
        assert sent.exit_code == 0, sent.output
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT settings FROM campaigns")).scalar_one()
    engine.dispose()
    assert "s3cr3t" not in stored and "@" not in json.loads(stored)["gateway"]["url"]
    assert json.loads(stored)["gateway"]["url"] == f"http://127.0.0.1:{port}/msg"


def test_userinfo_is_stripped_from_gateway_urls():
    assert without_userinfo("http://u:p@h:8/msg?x=1") == "http://h:8/msg?x=1"
    assert without_userinfo("simulator") == "simulator"
    from campaign.config import GatewaySettings, Settings

    snapshot = settings_snapshot(Settings(gateway=GatewaySettings(url="https://a:b@gw/msg")))
    assert snapshot["gateway"]["url"] == "https://gw/msg"


def test_a_gateway_in_the_config_wins_over_the_stored_one(tmp_path, sqlite_url):
    class Record:
        settings: ClassVar = {"gateway": {"url": "http://stored/msg"}}

    from campaign.cli.common import resume_gateway
    from campaign.config import load_settings

    assert sent_gateway_url(Record()) == "http://stored/msg"
    plain = load_settings(None, env={})
    assert resume_gateway(plain, None, Record()).gateway.url == "http://stored/msg"
    assert resume_gateway(plain, "simulator", Record()).gateway.url == plain.gateway.url
    config = tmp_path / "c.toml"
    config.write_text('[gateway]\nurl = "http://configured/msg"\n', encoding="utf-8")
    configured = load_settings(config, env={})
    assert resume_gateway(configured, None, Record()).gateway.url == "http://configured/msg"


# ---------------------------------------------------------------- Ctrl-C, declining


def test_ctrl_c_during_send_exits_130_and_says_how_to_resume(tmp_path, sqlite_url):
    contacts = _contacts(tmp_path, 200)  # one text per row: 200 requests
    config = tmp_path / "slow.toml"
    config.write_text("[gateway]\nrate = 25\n", encoding="utf-8")
    with running_simulator() as sim:
        sim.inject_delay(10_000, seconds=0.25)
        env = {**os.environ, **_env(sim)}
        command = [
            sys.executable,
            "-m",
            "campaign",
            "send",
            contacts,
            "--text",
            "{name}您好",
            "--db",
            sqlite_url,
            "--gateway",
            sim.url,
            "--config",
            str(config),
            "--yes",
        ]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(sim.received()) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err.decode()
    message = err.decode()
    assert "interrupted" in message and "campaign resume 1" in message
    assert "Traceback" not in message


def test_a_declined_confirmation_says_nothing_was_sent(tmp_path, sqlite_url, monkeypatch):
    monkeypatch.setattr("campaign.cli.send.is_terminal", lambda: True)
    with running_simulator() as sim:
        argv = [
            "send",
            _contacts(tmp_path),
            "--text",
            "hi {name}",
            "--db",
            sqlite_url,
            "--gateway",
            sim.url,
        ]
        declined = runner.invoke(app, argv, env=_env(sim), input="n\n")
        as_json = runner.invoke(app, [*argv, "--json"], env=_env(sim), input="n\n")
        assert sim.received() == []
    assert declined.exit_code == 0, declined.output
    assert "nothing was sent" in declined.stderr
    assert as_json.exit_code == 0
    data = _one_json_object(as_json.stdout.removeprefix(" n\n"))  # CliRunner echoes the input
    assert data["declined"] is True and data["campaign_id"] is None
