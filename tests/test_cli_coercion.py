"""typer's parameter coercion, built only for values that need converting
(campaign/cli/coercion.py): what needs none passes through, the rest is typer's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import campaign.cli.coercion as coercion
from campaign.cli import app

ROOT = Path(__file__).resolve().parent.parent
CONTACTS = str(ROOT / "sample_data" / "contacts.csv")
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("isolated_cli")  # empty folder, no campaign env


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The annotations typer's own coercion was built for."""
    seen: list[object] = []
    real = coercion.build_runtime_param

    def spy(descriptor):  # type: ignore[no-untyped-def]
        seen.append(descriptor.annotation)
        return real(descriptor)

    monkeypatch.setattr(coercion, "build_runtime_param", spy)
    return seen


def test_options_not_given_and_text_build_nothing(built, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    result = runner.invoke(app, ["status", "--db", db])
    assert result.exit_code == 0, result.output
    assert "no campaigns" in result.output
    assert built == []


def test_file_arguments_and_text_build_nothing(built):
    result = runner.invoke(app, ["plan", CONTACTS, CONTACTS, "--text", "【店】您好", "--json"])
    assert result.exit_code == 0, result.output
    assert '"rows": 200' in result.output  # both files read
    assert built == []


def test_values_that_need_converting_get_typers_coercion(built, tmp_path):
    result = runner.invoke(
        app,
        ["plan", CONTACTS, "--text", "【店】您好", "--header-row", "1", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert '"recipients": 91' in result.output
    assert int in built  # --header-row "1" became 1 through typer's adapter


def test_a_bad_value_is_typers_usage_error(built):
    result = runner.invoke(app, ["plan", CONTACTS, "--text", "x", "--header-row", "abc"])
    assert result.exit_code == 2
    assert "Invalid value for '--header-row'" in result.output
    assert "valid integer" in result.output
