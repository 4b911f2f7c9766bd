"""-t FILE / --text TEXT, the sample message and the unsigned-text warning (SPEC "Templates",
"Repeats, caps and what the sender sees before sending")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.plan_sample import mask_mobile
from tests.support.simulator import running_simulator

runner = CliRunner()
HINT = "no template file marketing; to give the text itself use --text"


@pytest.fixture
def contacts(tmp_path: Path) -> str:
    path = tmp_path / "good.csv"
    path.write_text("name,mobile\n,12345\n张三,13800138000\n李四,13900139000\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def sim():
    with running_simulator() as sim:
        yield sim


def _env(sim) -> dict[str, str]:
    return {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}


def _plan(*args: str):
    return runner.invoke(app, ["plan", *args])


def _send(sim, db: str, *args: str, **kwargs):
    argv = ["send", *args, "--db", db, "--gateway", sim.url, "--yes"]
    return runner.invoke(app, argv, env=_env(sim), **kwargs)


# ---------------------------------------------------------------- -t names a file


def test_a_word_given_to_t_is_refused_not_planned(contacts, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _plan(contacts, "-t", "marketing")
    assert result.exit_code == 3, result.output
    assert HINT in result.stderr
    assert "Plan" not in result.stdout and "marketing" not in result.stdout
    as_json = _plan(contacts, "-t", "marketing", "--json")
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout) == {"error": HINT, "exit_code": 3}


def test_a_word_given_to_t_sends_nothing_and_stores_nothing(contacts, tmp_path, sim):
    db = tmp_path / "store.db"
    result = _send(sim, f"sqlite:///{db}", contacts, "-t", "marketing")
    assert result.exit_code == 3, result.output
    assert HINT in result.stderr
    assert sim.received() == []
    assert not db.exists()


def test_text_gives_the_text_itself(contacts, tmp_path, sim):
    planned = _plan(contacts, "--text", "{name}您好", "--json")
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.stdout)["recipients"] == 2
    sent = _send(sim, f"sqlite:///{tmp_path / 's.db'}", contacts, "--text", "{name}您好")
    assert sent.exit_code == 0, sent.output
    assert sorted(r.msg for r in sim.received()) == ["张三您好", "李四您好"]


def test_a_template_file_is_read(contacts, tmp_path):
    (tmp_path / "spring.txt").write_text("\ufeff【店】{name}您好\r\n", encoding="utf-8")
    result = _plan(contacts, "-t", str(tmp_path / "spring.txt"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sample"]["text"] == "【店】张三您好"


@pytest.mark.parametrize("command", ["plan", "send"])
def test_template_and_text_both_or_neither_is_a_usage_error(contacts, tmp_path, command):
    (tmp_path / "t.txt").write_text("hi", encoding="utf-8")
    extra = ["--gateway", "simulator", "--yes"] if command == "send" else []
    both = runner.invoke(app, [command, contacts, "-t", str(tmp_path / "t.txt"), "--text", "hi"])
    assert both.exit_code == 2, both.output
    assert "not both" in both.stderr
    neither = runner.invoke(app, [command, contacts, *extra])
    assert neither.exit_code == 2, neither.output
    assert "--text" in neither.stderr and "-t FILE" in neither.stderr


def test_a_folder_or_a_non_utf8_file_is_bad_input_naming_it(contacts, tmp_path):
    (tmp_path / "templates").mkdir()
    folder = _plan(contacts, "-t", str(tmp_path / "templates"))
    assert folder.exit_code == 3 and "templates" in folder.stderr and "folder" in folder.stderr
    (tmp_path / "gbk.txt").write_bytes("您好".encode("gbk"))
    gbk = _plan(contacts, "-t", str(tmp_path / "gbk.txt"))
    assert gbk.exit_code == 3 and "gbk.txt" in gbk.stderr and "UTF-8" in gbk.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_template_file_is_bad_input(contacts, tmp_path):
    path = tmp_path / "locked.txt"
    path.write_text("hi", encoding="utf-8")
    path.chmod(0)
    result = _plan(contacts, "-t", str(path))
    assert result.exit_code == 3 and "locked.txt" in result.stderr


def test_empty_text_is_bad_input(contacts):
    result = _plan(contacts, "--text", "  ")
    assert result.exit_code == 3 and "empty" in result.stderr


# ---------------------------------------------------------------- the sample message


def test_mask_keeps_the_first_3_and_last_4_digits():
    assert mask_mobile("13800138000") == "138****8000"


def test_plan_shows_the_first_ready_recipients_message_masked(contacts):
    result = _plan(contacts, "--text", "{name}您好")
    assert result.exit_code == 0, result.output
    assert "138****8000" in result.stdout and "张三您好" in result.stdout
    assert "13800138000" not in result.stdout
    data = json.loads(_plan(contacts, "--text", "{name}您好", "--json").stdout)
    assert data["sample"] == {"mobile": "138****8000", "text": "张三您好", "segments": 1}


def test_sample_is_null_when_nobody_is_ready(contacts, tmp_path):
    db = f"sqlite:///{tmp_path / 's.db'}"
    added = runner.invoke(app, ["optout", "add", "13800138000", "13900139000", "--db", db])
    assert added.exit_code == 0, added.output
    data = json.loads(_plan(contacts, "--text", "hi", "--db", db, "--json").stdout)
    assert data["recipients"] == 0 and data["sample"] is None


def test_send_shows_the_sample_before_asking(contacts, tmp_path, sim, monkeypatch):
    monkeypatch.setattr("campaign.cli.send.is_terminal", lambda: True)
    db = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["send", contacts, "--text", "{name}您好", "--db", db, "--gateway", sim.url]
    result = runner.invoke(app, argv, env=_env(sim), input="n\n")
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "138****8000" in err and "张三您好" in err
    assert err.index("138****8000") < err.index("Send 2 recipients")
    assert sim.received() == []


def test_send_with_yes_prints_the_sample_on_stderr(contacts, tmp_path, sim):
    result = _send(sim, f"sqlite:///{tmp_path / 's.db'}", contacts, "--text", "{name}您好")
    assert result.exit_code == 0, result.output
    assert "138****8000" in result.stderr and "张三您好" in result.stderr


# ---------------------------------------------------------------- unsigned texts


def test_a_plan_without_any_signature_warns(contacts):
    result = _plan(contacts, "--text", "{name}您好", "--json")
    assert result.exit_code == 0, result.output
    assert "warning: no signature" in result.stderr and "116" in result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert len(warnings) == 1 and "116" in warnings[0]


def test_a_signature_in_the_text_or_the_config_silences_the_warning(contacts, tmp_path):
    signed = _plan(contacts, "--text", "【花店】{name}您好", "--json")
    assert json.loads(signed.stdout)["warnings"] == []
    assert "signature" not in signed.stderr
    config = tmp_path / "c.toml"
    config.write_text('[compliance]\nsignature = "【花店】"\n', encoding="utf-8")
    configured = _plan(contacts, "--text", "{name}您好", "--config", str(config), "--json")
    data = json.loads(configured.stdout)
    assert data["warnings"] == [] and data["sample"]["text"] == "【花店】张三您好"
