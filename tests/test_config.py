from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from campaign.config import (
    DEFAULT_OPTOUT_KEYWORDS,
    Settings,
    load_settings,
    normalize_store_url,
    parse_window,
)
from campaign.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.gateway.max_batch == 50_000
    assert settings.gateway.min_batch == 1
    assert settings.gateway.needstatus is True
    assert settings.receiver.optout_keywords == DEFAULT_OPTOUT_KEYWORDS
    assert settings.store_url == f"sqlite:///{tmp_path / 'campaign.db'}"


def test_file_then_env_then_flags(tmp_path):
    config = write(
        tmp_path / "c.toml",
        """
[gateway]
url = "http://file/msg"
account = 3547
password = "from-file"
max_batch = 100
rate = 5

[compliance]
signature = "【品牌】"
optout_text = "回T退订"
send_window = "08:00-21:00"
sensitive_words = "words.txt"

[store]
url = "sqlite:///data/c.db"
""",
    )
    env = {"CAMPAIGN_PASSWORD": "from-env", "CAMPAIGN_DB": "postgresql://u@h/db"}
    settings = load_settings(config, gateway="http://flag/msg", env=env)
    assert settings.gateway.url == "http://flag/msg"
    assert settings.gateway.account == "3547"
    assert settings.gateway.password == "from-env"
    assert settings.gateway.rate == 5.0
    assert settings.compliance.send_window == parse_window("08:00-21:00")
    assert settings.compliance.sensitive_words == tmp_path / "words.txt"
    assert settings.store_url == "postgresql+psycopg://u@h/db"
    assert "from-env" not in repr(settings)
    only_file = load_settings(config, env={})
    assert only_file.store_url == f"sqlite:///{tmp_path / 'data' / 'c.db'}"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[gateway]\nmax_batch = 'x'\n", "gateway.max_batch"),
        ("[gateway]\nnope = 1\n", "gateway.nope"),
        ("[compliance]\nsend_window = '8-21'\n", "send_window"),
        ("[bogus]\n", "bogus"),
        ("not toml = = =", "not valid TOML"),
        ("[[job]]\nname = 'x'\n", "contacts"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    config = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env={})


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "none.toml", env={})


def test_jobs_paths_relative_to_config(tmp_path):
    config = write(
        tmp_path / "run.toml",
        """
[[job]]
name = "vip"
contacts = "incoming/*.xlsx"
template = "templates/vip.txt"
inbox = "reports/inbox"
export = "exports"
send_at = "09:00"
not_after = "20:00"
max_per_day = 1000
""",
    )
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "vip.txt").write_text("hi", encoding="utf-8")
    (job,) = load_settings(config, env={}).jobs
    assert job.contacts == str(tmp_path / "incoming/*.xlsx")
    assert job.template == str(tmp_path / "templates" / "vip.txt")
    assert job.inbox == tmp_path / "reports" / "inbox"
    assert job.send_at == time(9, 0)
    assert job.max_per_day == 1000


def test_window_overnight():
    window = parse_window("21:00-08:00")
    assert window.contains(time(23, 0))
    assert window.contains(time(7, 59))
    assert not window.contains(time(12, 0))


def test_store_url_forms(tmp_path):
    assert normalize_store_url("x.db", tmp_path) == f"sqlite:///{tmp_path / 'x.db'}"
    assert normalize_store_url("postgres://a@b/c", tmp_path) == "postgresql+psycopg://a@b/c"
    assert normalize_store_url("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    assert Settings().store_url == "sqlite:///campaign.db"  # SPEC: the default store


def test_default_store_is_here_or_beside_config_for_run(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    config = write(tmp_path / "c.toml", "[gateway]\nrate = 1\n")
    assert load_settings(config, env={}).store_url == f"sqlite:///{work / 'campaign.db'}"
    beside = load_settings(config, env={}, store_beside_config=True)
    assert beside.store_url == f"sqlite:///{tmp_path / 'campaign.db'}"


def test_config_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b'[gateway]\naccount = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(path, env={})


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("inbox = 5", "inbox"),
        ("export = [1]", "export"),
        ("send_at = 9", "send_at"),
        ("not_after = 20", "not_after"),
        ("send_window = 8", "send_window"),
    ],
)
def test_job_key_of_wrong_type_is_a_config_error(tmp_path, line, key):
    path = write(
        tmp_path / "c.toml",
        f'[[job]]\nname = "a"\ncontacts = "x.csv"\ntemplate = "hi"\n{line}\n',
    )
    with pytest.raises(ConfigError, match=rf"\[\[job\]\] #1\.{key} must be a string"):
        load_settings(path, env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[receiver]\nport = 99999\n", "receiver.port must be a port number"),
        ("[gateway]\ntimeout = nan\n", "gateway.timeout must be a number"),
        ("[gateway]\nrate = inf\n", "gateway.rate must be a number"),
    ],
)
def test_out_of_range_numbers_are_config_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path / "c.toml", text), env={})


def test_job_max_per_day_true_is_not_one(tmp_path):
    path = write(
        tmp_path / "c.toml",
        '[[job]]\nname = "a"\ncontacts = "x.csv"\ntemplate = "hi"\nmax_per_day = true\n',
    )
    with pytest.raises(ConfigError, match="max_per_day must be a positive whole number"):
        load_settings(path, env={})


def test_max_batch_zero_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"gateway\.max_batch must be 1 or more"):
        load_settings(write(tmp_path / "c.toml", "[gateway]\nmax_batch = 0\n"), env={})
