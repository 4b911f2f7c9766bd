"""SQLite's memory statistics: off when the first store opens, left alone when SQLite is in
use already (campaign/store/sqlite_memstatus.py). Each case runs in a fresh interpreter,
since the setting is the process's."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    (sys.platform, platform.machine()) not in {("linux", "x86_64"), ("linux", "aarch64")},
    reason="the statistics are only switched where sqlite3_config's ABI is known",
)

_MEMORY_USED = """
import ctypes, _sqlite3
_lib = ctypes.CDLL(_sqlite3.__file__)
_lib.sqlite3_memory_used.restype = ctypes.c_int64
def memory_used():
    return _lib.sqlite3_memory_used()
"""

_FIRST_STORE = (
    _MEMORY_USED
    + """
import json, sys, threading
from sqlalchemy import text
from campaign.store import open_store
from campaign.store.sqlite_memstatus import memory_statistics_off
engine = open_store(f"sqlite:///{sys.argv[1]}")
found = {}
def read(n):
    with engine.connect() as conn:
        found[n] = conn.execute(text("select count(*) from campaigns")).scalar()
        found[f"used{n}"] = memory_used()
threads = [threading.Thread(target=read, args=(n,)) for n in range(4)]
for t in threads: t.start()
for t in threads: t.join()
found["off"] = memory_statistics_off()
print(json.dumps(found))
"""
)

_IN_USE = (
    _MEMORY_USED
    + """
import json, sqlite3, sys
held = sqlite3.connect(":memory:")
held.execute("create table t (x)")
held.executemany("insert into t values (?)", [(n,) for n in range(1000)])
from campaign.store import open_store
from sqlalchemy import text
engine = open_store(f"sqlite:///{sys.argv[1]}")
with engine.connect() as conn:
    stored = conn.execute(text("select count(*) from campaigns")).scalar()
from campaign.store.sqlite_memstatus import memory_statistics_off
print(json.dumps({
    "off": memory_statistics_off(),
    "used": memory_used(),
    "held": held.execute("select count(*), sum(x) from t").fetchone(),
    "stored": stored,
}))
"""
)


def _run(script: str, tmp_path: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store.db")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_first_store_turns_the_statistics_off_and_reads_on(tmp_path: Path) -> None:
    found = _run(_FIRST_STORE, tmp_path)
    assert found["off"] is True
    # four connections open at once count no memory: the statistics (and their mutex) are off
    assert [found[f"used{n}"] for n in range(4)] == [0, 0, 0, 0]
    assert [found[str(n)] for n in range(4)] == [0, 0, 0, 0]  # each read its store


def test_sqlite_in_use_already_is_left_as_it_is(tmp_path: Path) -> None:
    found = _run(_IN_USE, tmp_path)
    assert found["off"] is False
    assert isinstance(found["used"], int) and found["used"] > 0  # still counting
    assert found["held"] == [1000, 499500]  # the connection opened before was not disturbed
    assert found["stored"] == 0
