"""Start-up: `campaign --help` (and a command's help, and `--version`) loads typer and the
CLI's own small modules, none of the heavy libraries a command needs only when it runs.

Each case runs in a fresh interpreter (this test process has long imported everything) and
reads `sys.modules` there after the command. No timing is asserted; bench/bench_startup.py
measures it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from campaign.cli import app

ROOT = Path(__file__).resolve().parent.parent

#: Loaded only by the commands that use them (store, frames, files, HTTP, hashes, web).
HEAVY = (
    "sqlalchemy",
    "pandas",
    "pyarrow",
    "numpy",
    "requests",
    "urllib3",
    "httpx",
    "argon2",
    "openpyxl",
    "python_calamine",
    "xlsxwriter",
    "phonenumbers",
    "ahocorasick",
    "psycopg",
    "starlette",
    "uvicorn",
    "jinja2",
    "pydantic",  # typer's coercion of values: not needed to print help
)

# Runs the console script's entry point (`campaign.cli:main`) with ARGS, then writes the
# top-level names of the modules loaded to OUT; without ARGS it only imports the package.
# The list is written by an atexit handler: a command like `plan` ends the process from
# main() once the handlers have run (campaign/cli/quick_exit.py).
_PROBE = """
import atexit, json, sys
out, args = sys.argv[1], sys.argv[2:]

def write_modules():
    with open(out, "w", encoding="utf-8") as file:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), file)

atexit.register(write_modules)
from campaign.cli import main
if args:
    sys.argv = ["campaign", *args]
    main()
"""


def _run(tmp_path: Path, *args: str) -> tuple[str, set[str]]:
    """stdout of `campaign ARGS` in a fresh interpreter, and the modules it loaded."""
    out = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}  # COLUMNS: rows not cut
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args],
        cwd=tmp_path,  # a command that opens the default store opens it here
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, set(json.loads(out.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "args",
    [(), ("--help",), ("--version",), ("plan", "--help"), ("optout", "add", "--help")],
    ids=["import", "help", "version", "plan-help", "optout-add-help"],
)
def test_no_heavy_library_is_loaded(tmp_path, args):
    _, loaded = _run(tmp_path, *args)
    assert "typer" in loaded  # the probe did run the CLI
    assert sorted(loaded & set(HEAVY)) == []


def test_the_help_lists_every_command(tmp_path):
    shown, _ = _run(tmp_path, "--help")
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert len(commands) > 10
    missing = [name for name in commands if f" {name} " not in shown]
    assert missing == [], shown


def test_a_first_plan_in_a_folder_without_a_store_loads_no_sqlalchemy(tmp_path):
    """No store file: no suppression list or cap to read, so SQLAlchemy is not loaded (and
    no store is created); with a store, its suppression list applies (same command)."""
    contacts = tmp_path / "list.csv"
    contacts.write_text("name,mobile\nAnn,13912345678\nBo,13912345679\n", encoding="utf-8")
    args = ("plan", str(contacts), "--text", "{name} hi", "--json")
    shown, loaded = _run(tmp_path, *args)
    assert json.loads(shown)["recipients"] == 2
    assert "sqlalchemy" not in loaded and not (tmp_path / "campaign.db").exists()
    from campaign.store import open_store
    from campaign.store.suppression import add

    engine = open_store(f"sqlite:///{tmp_path / 'campaign.db'}")
    add(engine, ["13912345679"])
    engine.dispose()
    shown, loaded = _run(tmp_path, *args)
    assert json.loads(shown)["recipients"] == 1 and "sqlalchemy" in loaded


@pytest.mark.parametrize(
    ("url", "no_file"),
    [
        ("sqlite:///missing.db", True),
        ("sqlite:///{abs}/missing.db", True),
        ("sqlite:///{abs}/there.db", False),
        ("sqlite:///:memory:", False),
        ("sqlite://", False),
        ("sqlite:///missing.db?mode=ro", False),  # the long way decides
        ("sqlite:///miss%20ing.db", False),
        ("sqlite:///a\x00b.db", True),  # no file has that name (store_exists agrees)
        ("postgresql://u@h/db", False),
    ],
)
def test_no_store_file_is_decided_only_for_plain_sqlite_urls(tmp_path, monkeypatch, url, no_file):
    from campaign.workflow import _no_store_file

    (tmp_path / "there.db").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert _no_store_file(url.format(abs=tmp_path)) is no_file


def test_a_command_still_loads_what_it_needs(tmp_path):
    """The libraries load when a command runs: `plan` reads a list with pandas."""
    contacts = tmp_path / "list.csv"
    contacts.write_text("name,mobile\nAnn,13912345678\n", encoding="utf-8")
    shown, loaded = _run(tmp_path, "plan", str(contacts), "--text", "{name} hi", "--json")
    assert json.loads(shown)["recipients"] == 1
    assert {"pandas", "pyarrow"} <= loaded


def test_status_reads_the_store_without_frames(tmp_path):
    """`campaign status` (the list, and one campaign's figures) loads SQLAlchemy for the
    store and none of pandas, pyarrow or numpy: its figures are SQL counts."""
    from campaign.store import open_store
    from tests.support.plans import accepted_batch

    engine = open_store(f"sqlite:///{tmp_path / 'campaign.db'}")
    campaign_id = accepted_batch(engine, "1001", ["13900000001", "13900000002"])
    engine.dispose()
    for args in (("status",), ("status", str(campaign_id), "--json")):
        shown, loaded = _run(tmp_path, *args)
        assert "sqlalchemy" in loaded
        assert sorted(loaded & {"pandas", "pyarrow", "numpy"}) == [], args
    assert json.loads(shown)["outcomes"]["pending"] == 2
