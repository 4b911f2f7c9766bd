"""Store paths and URLs: a relative `--db` / CAMPAIGN_DB is relative to the current folder
(only a path inside the config file is relative to its folder); a gateway or store URL that
cannot be used is a usage error (exit 2) before anything is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import load_settings
from campaign.errors import ConfigError, UsageError

runner = CliRunner()


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("name,mobile\nA,13900000001\nB,13900000002\n", encoding="utf-8")
    template = tmp_path / "t.txt"
    template.write_text("您好{name}", encoding="utf-8")
    return contacts, template


def conf(tmp_path: Path, text: str = '[gateway]\nurl = "simulator"\n') -> Path:
    (tmp_path / "conf").mkdir(exist_ok=True)
    path = tmp_path / "conf" / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_settings_resolves_each_store_path_against_its_own_base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = conf(tmp_path, '[store]\nurl = "sqlite:///inconf.db"\n')
    here, beside = tmp_path / "mine.db", tmp_path / "conf"
    assert load_settings("conf/c.toml", db="mine.db", env={}).store_url == f"sqlite:///{here}"
    env = {"CAMPAIGN_DB": "sqlite:///mine.db"}
    assert load_settings("conf/c.toml", env=env).store_url == f"sqlite:///{here}"
    assert load_settings(config, env={}).store_url == f"sqlite:///{beside / 'inconf.db'}"
    conf(tmp_path, "")
    run = load_settings("conf/c.toml", env={}, store_beside_config=True)
    assert run.store_url == f"sqlite:///{beside / 'campaign.db'}"  # campaign run CONFIG
    assert load_settings("conf/c.toml", env={}).store_url == f"sqlite:///{tmp_path / 'campaign.db'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[gateway]\nurl = "http://[::1"\n', "gateway URL"),
        ('[gateway]\nurl = "ftp://host/msg"\n', "gateway URL"),
        ('[store]\nurl = "postgresql://[::1/db"\n', "store URL"),
        ('[store]\nurl = "mysql://u@h/db"\n', "store URL"),
    ],
)
def test_a_bad_url_in_the_config_file_is_a_config_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(conf(tmp_path, text), env={})


def test_a_bad_url_given_to_load_settings_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="gateway URL"):
        load_settings(None, gateway="http://[::1", env={})
    with pytest.raises(UsageError, match="store URL"):
        load_settings(None, env={"CAMPAIGN_DB": "postgresql://h:99999999/db"})


def _optout(args: list[str], env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, ["optout", *args], env=env or {})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("given", ["sqlite:///mine.db", "mine.db"])
def test_a_relative_db_on_the_command_line_is_relative_to_the_current_folder(
    tmp_path, monkeypatch, given
):
    monkeypatch.chdir(tmp_path)
    conf(tmp_path)
    _optout(["add", "13900000001", "--db", given, "--config", "conf/c.toml"])
    assert (tmp_path / "mine.db").exists()
    assert not (tmp_path / "conf" / "mine.db").exists()
    assert "13900000001" in _optout(["list", "--db", given])  # the next command sees it


def test_campaign_db_in_the_environment_is_relative_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conf(tmp_path)
    env = {"CAMPAIGN_DB": "sqlite:///mine.db"}
    _optout(["add", "13900000002", "--config", "conf/c.toml"], env)
    assert (tmp_path / "mine.db").exists() and not (tmp_path / "conf" / "mine.db").exists()
    assert "13900000002" in _optout(["list"], env)


def test_a_relative_store_in_the_config_file_is_beside_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conf(tmp_path, '[store]\nurl = "sqlite:///inconf.db"\n')
    _optout(["add", "13900000003", "--config", "conf/c.toml"])
    assert (tmp_path / "conf" / "inconf.db").exists() and not (tmp_path / "inconf.db").exists()


# --------------------------------------------------------------------------- bad URLs


@pytest.mark.parametrize(
    "args",
    [
        ["--gateway", "http://[::1"],
        ["--gateway", "http://127.0.0.1:99999/msg"],
        ["--db", "postgresql://[::1/db"],
        ["--db", "mysql://user@host/db"],
    ],
)
def test_a_bad_url_is_a_usage_error_with_nothing_stored(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    contacts, template = write_inputs(tmp_path)
    base = ["send", str(contacts), "-t", str(template), "--yes"]
    db = [] if "--db" in args else ["--db", "sqlite:///x.db"]
    env = {"CAMPAIGN_ACCOUNT": "acct", "CAMPAIGN_PASSWORD": "pw-1234"}
    result = runner.invoke(app, [*base, *db, *args], env=env)
    assert result.exit_code == 2, result.output
    assert "unexpected" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contacts.csv", "t.txt"]


def test_a_bad_gateway_url_in_the_environment_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    contacts, template = write_inputs(tmp_path)
    env = {"CAMPAIGN_ACCOUNT": "a", "CAMPAIGN_PASSWORD": "p", "CAMPAIGN_GATEWAY": "http://[::1"}
    result = runner.invoke(app, ["send", str(contacts), "-t", str(template), "--yes"], env=env)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "campaign.db").exists()


def test_credentials_of_a_bad_url_are_not_shown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["optout", "list", "--db", "mysql://app:S3cr3t-pw@db/x"])
    assert result.exit_code == 2, result.output
    assert "S3cr3t" not in result.output and "app:" not in result.output
