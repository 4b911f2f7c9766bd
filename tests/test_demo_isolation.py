"""`campaign demo` keeps to its own store: a real store beside it is never touched."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.demo import DEMO_STORE, DEMO_WORKBOOK, is_demo_store

runner = CliRunner()
SIDE_FILES = ("-wal", "-shm", "-journal")
KEPT = "13800138000"


def _snapshot(folder: Path) -> dict[str, str | None]:
    """sha256 of campaign.db and of each of its SQLite side files (None: absent)."""
    snap: dict[str, str | None] = {}
    for name in ("campaign.db", *(f"campaign.db{s}" for s in SIDE_FILES)):
        path = folder / name
        snap[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    return snap


@pytest.fixture
def shop(tmp_path, monkeypatch) -> Path:
    """A folder whose campaign.db was made by a real `campaign optout add` run there."""
    folder = tmp_path / "shop"
    folder.mkdir()
    monkeypatch.chdir(folder)
    made = runner.invoke(app, ["optout", "add", KEPT, "--note", "keep me"])
    assert made.exit_code == 0, made.output
    assert (folder / "campaign.db").is_file()
    (folder / "shop.toml").write_text('[store]\nurl = "sqlite:///campaign.db"\n', "utf-8")
    return folder


def _demo(args: list[str], env: dict[str, str] | None = None):
    result = runner.invoke(app, ["demo", *args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _campaign(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own (its messages are not masked by secrets that
    earlier tests registered in this one)."""
    return subprocess.run(
        [sys.executable, "-m", "campaign", *args], capture_output=True, text=True, timeout=120
    )


def _listed(url: str) -> list[str]:
    result = runner.invoke(app, ["optout", "list", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("how", ["out-dot", "db-option", "env-db", "env-config"])
def test_demo_leaves_a_real_store_byte_for_byte(shop, how):
    before = _snapshot(shop)
    store = shop / "campaign.db"
    if how == "out-dot":
        summary = _demo(["--out", "."])
    elif how == "db-option":
        summary = _demo(["--out", str(shop), "--db", f"sqlite:///{store}"])
    elif how == "env-db":
        summary = _demo(["--out", str(shop)], env={"CAMPAIGN_DB": f"sqlite:///{store}"})
    else:
        summary = _demo(["--out", "."], env={"CAMPAIGN_CONFIG": str(shop / "shop.toml")})
    assert _snapshot(shop) == before
    assert summary["store"].endswith(DEMO_STORE)
    assert is_demo_store(shop / DEMO_STORE)
    assert (shop / DEMO_WORKBOOK).is_file()
    # the real store still holds exactly what it held; the demo's opt-out went to its own
    assert _listed(f"sqlite:///{store}") == [KEPT]
    assert KEPT not in _listed(f"sqlite:///{shop / DEMO_STORE}")
    assert len(_listed(f"sqlite:///{shop / DEMO_STORE}")) == 1


def test_demo_twice_in_one_folder_replaces_its_own_files(tmp_path):
    out = tmp_path / "demo"
    first = _demo(["--out", str(out)])
    second = _demo(["--out", str(out)])
    assert second["campaign_id"] == first["campaign_id"] == 1  # a fresh demo store again
    assert second["outcomes"] == first["outcomes"]
    workbook = openpyxl.load_workbook(out / DEMO_WORKBOOK, read_only=True)
    try:
        assert {"results", "summary"} <= set(workbook.sheetnames)
    finally:
        workbook.close()
    leftovers = {p.name for p in out.iterdir()} - {DEMO_STORE, DEMO_WORKBOOK}
    assert not leftovers  # no -wal/-shm, no temporary files


@pytest.mark.parametrize("name", [DEMO_STORE, DEMO_WORKBOOK, f"{DEMO_STORE}-wal"])
def test_a_foreign_file_at_a_demo_name_is_refused_untouched(tmp_path, name):
    out = tmp_path / "busy"
    out.mkdir()
    foreign = out / name
    foreign.write_bytes(b"somebody else's file\n")
    result = _campaign("demo", "--out", str(out))
    assert result.returncode == 3, result.stderr
    assert name in result.stderr and "not made by `campaign demo`" in result.stderr
    assert "nothing was changed" in result.stderr
    assert foreign.read_bytes() == b"somebody else's file\n"
    assert sorted(p.name for p in out.iterdir()) == [name]


def test_a_real_store_under_the_demo_name_is_refused(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    made = runner.invoke(app, ["optout", "add", KEPT, "--db", f"sqlite:///{out / DEMO_STORE}"])
    assert made.exit_code == 0, made.output
    before = hashlib.sha256((out / DEMO_STORE).read_bytes()).hexdigest()
    result = runner.invoke(app, ["demo", "--out", str(out), "--json"])
    assert result.exit_code == 3
    assert json.loads(result.stdout)["exit_code"] == 3
    assert hashlib.sha256((out / DEMO_STORE).read_bytes()).hexdigest() == before


def test_demo_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x", "utf-8")
    result = _campaign("demo", "--out", str(target))
    assert result.returncode == 3
    assert "is a file, not a folder" in result.stderr
    assert target.read_text("utf-8") == "x"
