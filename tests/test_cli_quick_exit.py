"""The console script ends a finished `plan` without the interpreter's teardown
(campaign/cli/quick_exit.py): output complete, atexit handlers run, exit code kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli_env import CAMPAIGN_ENV

ROOT = Path(__file__).resolve().parent.parent
CONTACTS = ROOT / "sample_data" / "contacts.csv"

# Runs `campaign ARGS` through the console script's main(), with an atexit handler and an
# object that only the interpreter's teardown frees (and so reports).
_PROBE = """
import atexit, builtins, sys
marks = sys.argv[1]

def mark(text, open=open):
    with open(marks, "a", encoding="utf-8") as file:
        file.write(text + "\\n")

class Witness:
    def __del__(self):
        mark("torn down")

builtins._campaign_witness = Witness()
atexit.register(mark, "atexit")
from campaign.cli import main
sys.argv = ["campaign", *sys.argv[2:]]
main()
"""


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    marks = tmp_path / "marks.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in CAMPAIGN_ENV:
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(marks), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    shown = marks.read_text(encoding="utf-8").splitlines() if marks.exists() else []
    return done, shown


def test_plan_ends_after_the_atexit_handlers_without_the_teardown(tmp_path):
    done, marks = _run(tmp_path, "plan", str(CONTACTS), "--text", "【店】{姓名|您}好", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["recipients"] == 91  # the whole JSON, flushed
    assert marks == ["atexit"]  # handlers ran; the witness was never freed


def test_the_human_summary_and_preview_are_complete(tmp_path):
    out = tmp_path / "preview.csv"
    done, marks = _run(tmp_path, "plan", str(CONTACTS), "--text", "【店】您好", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "91" in done.stdout and f"preview written to {out}" in done.stderr
    assert len(out.read_text(encoding="utf-8-sig").splitlines()) == 101  # header + 100 rows
    assert marks == ["atexit"]


def test_a_refused_plan_exits_with_its_code_the_usual_way(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,mobile\na,123\nb,456\n", encoding="utf-8")
    done, marks = _run(tmp_path, "plan", str(bad), "--text", "【店】您好", "--json")
    assert done.returncode == 3, done.stderr  # SPEC: bad input, nothing sent
    assert json.loads(done.stdout)["exit_code"] == 3
    assert marks == ["atexit", "torn down"]


def test_other_commands_exit_the_usual_way(tmp_path):
    done, marks = _run(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.startswith("campaign ")
    assert marks == ["atexit", "torn down"]  # the witness shows the teardown happens
