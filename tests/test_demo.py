"""`campaign demo` end to end, and every command documented."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import openpyxl
from typer.testing import CliRunner

from campaign.cli import app

EXPECTED_OUTCOMES = {
    "delivered",
    "failed",
    "rejected",
    "unknown",
    "invalid",
    "duplicate",
    "suppressed",
}


def test_demo_runs_the_whole_pipeline(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    workbook_path = Path(summary["workbook"])
    assert workbook_path.is_file()
    assert set(summary["outcomes"]) >= EXPECTED_OUTCOMES

    workbook = openpyxl.load_workbook(workbook_path, read_only=True)
    try:
        sheet = workbook["results"]
        rows = sheet.iter_rows(values_only=True)
        header = list(next(rows))
        body = list(rows)
        assert {"summary", "results"} <= set(workbook.sheetnames)
    finally:
        workbook.close()
    assert len(body) == summary["rows"]
    outcome = header.index("outcome")
    counts = Counter(row[outcome] for row in body)
    assert set(counts) >= EXPECTED_OUTCOMES
    assert dict(counts) == summary["outcomes"]
    # the numbers are text, never 1.39E+10
    mobile = header.index("normalized_mobile")
    assert all(isinstance(row[mobile], str | None) for row in body)

    again = CliRunner().invoke(app, ["demo", "--out", str(out)])  # a fresh store each time
    assert again.exit_code == 0, again.output
    assert "Result spreadsheet:" in again.stdout


def _command_names() -> set[str]:
    names = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    names |= {g.name for g in app.registered_groups}
    return {n for n in names if n}


def test_every_command_has_help_and_is_in_the_readme():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    expected = {
        "demo",
        "plan",
        "send",
        "resume",
        "status",
        "reports",
        "serve",
        "export",
        "balance",
        "simulator",
        "optout",
        "run",
    }
    assert expected <= _command_names()
    for name in expected:
        assert re.search(rf"`campaign {name}\b", readme), name
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output
