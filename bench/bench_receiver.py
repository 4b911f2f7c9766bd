"""Receiving reports: push throughput/latency of `campaign serve`, and report-file import.

    .venv/bin/python bench/bench_receiver.py [--seconds 10] [--connections 64] [--rows 1000000]

1. Pushes: `wrk` (apt-get install wrk) with a Lua script giving every request a unique msgid,
   against the receiver in its own process on a fresh SQLite store (WAL, synchronous=FULL),
   then against the same server answering without storing (the baseline). After the run
   the stored rows are counted: every push answered 200 must be there.
2. Import: a generated report CSV of --rows rows imported into a fresh SQLite store (and
   again: all repeated), against the floor of just reading the file with pandas.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from campaign.config import Settings  # noqa: E402
from campaign.reports import import_report_files  # noqa: E402
from campaign.store import open_store  # noqa: E402
from campaign.store.schema import reports  # noqa: E402

LUA = r"""
local counter = 0
local tid = 0
setup = function(thread)
  thread:set("tid", tid)
  tid = tid + 1
end
request = function()
  counter = counter + 1
  return wrk.format("GET", "/dlr?receiver=&pswd=&msgid=" .. (tid + 1)
    .. string.format("%010d", counter) .. "&reportTime=2611251002&mobile=139"
    .. string.format("%08d", counter % 100000000) .. "&status=DELIVRD")
end
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d seconds=%f p50=%d p99=%d bad=%d status=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    bad, summary.errors.status))
end
"""
_RESULT = re.compile(
    r"RESULT requests=(\d+) seconds=([\d.]+) p50=(\d+) p99=(\d+) bad=(\d+) status=(\d+)"
)
_LISTENING = re.compile(r"receiving on (http://[\d.]+:\d+)")


def serve_child(mode: str, db: str) -> None:
    """Internal: run the receiver (this process is the server)."""
    from campaign.receiver import serve_app

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    serve_app(Settings(store_url=db), "127.0.0.1", 0, store=(mode == "store"))


def run_wrk(mode: str, db: str, seconds: int, connections: int, threads: int) -> dict:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, db],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        assert server.stderr is not None
        while url is None:
            line = server.stderr.readline()
            if not line:
                raise RuntimeError("the receiver did not start")
            if match := _LISTENING.search(line):
                url = match.group(1)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(LUA)
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script.name]
        done = subprocess.run([*command, url], capture_output=True, text=True, check=False)
        os.unlink(script.name)
        out = done.stdout + done.stderr
    finally:
        server.terminate()
        server.wait(30)
        if server.stderr:
            server.stderr.close()
    match = _RESULT.search(out)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, duration, p50, p99, bad, status = match.groups()
    ok = int(requests) - int(bad)
    return {
        "mode": mode,
        "ok": ok,
        "rate": ok / float(duration),
        "p50_ms": int(p50) / 1000,
        "p99_ms": int(p99) / 1000,
        "errors": int(bad),
        "non_200": int(status),
    }


def bench_pushes(seconds: int, connections: int, threads: int, rounds: int) -> None:
    print(
        f"pushes: wrk -t{threads} -c{connections} -d{seconds}s, SQLite WAL synchronous=FULL, "
        f"{rounds} interleaved rounds (best of each shown last)"
    )
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_no in range(rounds):
            for mode in ("store", "discard"):
                db = f"sqlite:///{folder}/{mode}{round_no}.db"
                open_store(db).dispose()
                result = run_wrk(mode, db, seconds, connections, threads)
                extra = ""
                if mode == "store":
                    stored = _count_reports(db)
                    result["lost"] = max(0, result["ok"] - stored)
                    extra = f", answered OK {result['ok']}, stored {stored}, lost {result['lost']}"
                print(f"  round {round_no + 1} {_line(result)}{extra}")
                if mode not in best or result["rate"] > best[mode]["rate"]:
                    best[mode] = result
    for result in best.values():
        print(f"  best    {_line(result)}")
    ratio = best["store"]["rate"] / best["discard"]["rate"]
    print(f"  durable / no-store throughput (best of each): {ratio:.0%}")


def _line(result: dict) -> str:
    return (
        f"{result['mode']:8s} {result['rate']:9,.0f} req/s  p50 {result['p50_ms']:6.2f} ms  "
        f"p99 {result['p99_ms']:6.2f} ms  errors {result['errors']}"
    )


def _count_reports(db: str) -> int:
    engine = open_store(db)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(reports)).scalar_one())
    finally:
        engine.dispose()


def make_report_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(7)
    mobiles = pd.Series(rng.integers(13000000000, 19999999999, rows)).astype(str)
    msgids = (2026112510000000000 + (np.arange(rows) // 50_000)).astype(str)
    seconds = rng.integers(0, 6 * 3600, rows)
    times = (pd.Timestamp("2026-11-25 08:00:00") + pd.to_timedelta(seconds, unit="s")).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    statuses = rng.choice(["DELIVRD"] * 9 + ["UNDELIV", "MBBLACK", "ID:0101"], rows)
    frame = pd.DataFrame({"msgid": msgids, "mobile": mobiles, "status": statuses,
                          "reportTime": times})  # fmt: skip
    frame.to_csv(path, index=False)


def bench_import(rows: int, pg_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reports.csv"
        make_report_csv(path, rows)
        size = path.stat().st_size / 1e6
        print(f"import: {rows:,} rows, {size:.0f} MB CSV")
        start = time.perf_counter()
        pd.read_csv(path, dtype=str, keep_default_na=False)
        floor = time.perf_counter() - start
        print(f"  baseline: pandas.read_csv(dtype=str) alone             {floor:6.2f} s")
        _import_twice("SQLite", f"sqlite:///{folder}/import.db", path, rows)
        if pg_url:
            _import_twice("PostgreSQL", pg_url, path, rows)


def _import_twice(label: str, url: str, path: Path, rows: int) -> None:
    engine = open_store(url)
    try:
        for what in ("first import", "second import (all repeated)"):
            start = time.perf_counter()
            (summary,) = import_report_files(engine, [path])
            took = time.perf_counter() - start
            print(
                f"  {label:10s} {what:30s} {took:6.2f} s  ({rows / took:,.0f} rows/s; "
                f"imported {summary.imported:,}, repeated {summary.repeated:,}, "
                f"malformed {summary.malformed})"
            )
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=2, metavar=("MODE", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved push rounds")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg", help="also import into this (empty) PostgreSQL store")
    parser.add_argument("--skip-pushes", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve_child(*args.serve)
        return
    if not args.skip_pushes:
        bench_pushes(args.seconds, args.connections, args.threads, args.rounds)
    if not args.skip_import:
        bench_import(args.rows, args.pg)


if __name__ == "__main__":
    main()
