"""Which error a command reports first: a bad argument (a number that is not a mobile, an
output file `export` cannot write) is named even when the config is broken too, as before
the workflow refactor; with a good argument the broken config is what is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.errors import ExitCode

runner = CliRunner()
BAD_TOML = "not valid TOML"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default store (campaign.db here) is never the repo's


@pytest.fixture
def broken(tmp_path: Path) -> str:
    path = tmp_path / "broken.toml"
    path.write_text("this is [not toml\n", encoding="utf-8")
    return str(path)


def _run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("command", ["add", "remove"])
def test_optout_a_bad_number_before_a_broken_config(broken, command):
    result = _run("optout", command, "13800138000", "12345", "--config", broken)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "not a mobile number: '12345'" in result.stderr
    assert "nothing changed" in result.stderr
    assert BAD_TOML not in result.stderr


@pytest.mark.parametrize("command", ["add", "remove"])
def test_optout_a_bad_number_before_a_broken_config_as_json(broken, command):
    result = _run("optout", command, "abc", "--config", broken, "--json")
    assert result.exit_code == ExitCode.BAD_INPUT
    error = json.loads(result.stdout)
    assert error["exit_code"] == ExitCode.BAD_INPUT
    assert error["error"].startswith("not a mobile number: 'abc'")


@pytest.mark.parametrize("command", ["add", "remove"])
def test_optout_good_numbers_and_a_broken_config(broken, tmp_path, command):
    result = _run("optout", command, "13800138000", "--config", broken)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert BAD_TOML in result.stderr
    assert not (tmp_path / "campaign.db").exists()


def test_export_a_bad_extension_before_a_broken_config(broken, tmp_path):
    out = tmp_path / "x.pdf"
    result = _run("export", "1", "--out", str(out), "--config", broken)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert f"{out}: unsupported extension; use .xlsx or .csv" in result.stderr
    assert BAD_TOML not in result.stderr
    assert not out.exists()


def test_export_a_bad_extension_before_a_bad_store_url(tmp_path):
    result = _run("export", "1", "--out", str(tmp_path / "x.pdf"), "--db", "://nothing")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "unsupported extension" in result.stderr


def test_export_a_good_extension_and_a_broken_config(broken, tmp_path):
    result = _run("export", "1", "--out", str(tmp_path / "x.xlsx"), "--config", broken)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert BAD_TOML in result.stderr
