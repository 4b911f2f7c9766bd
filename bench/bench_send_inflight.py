"""Sending at 1, 4, 16 and 32 requests in flight, side by side in one run (issue 16):

    .venv/bin/python bench/bench_send_inflight.py [--requests 3000] [--inflight 1,4,16,32]
        [--no-pg]

Against one `campaign simulator` process (no request log: the simulator's own cost stays
as low as it goes), one recipient per request (a personalized campaign), for each number
of requests in flight:

1. lean: the leanest Python client, stdlib `http.client`, one keep-alive connection per
   thread, the same form body `GatewayClient` sends (no store);
2. bare: the project's `GatewayClient` (its httptools transport on a plain http URL)
   from the same number of threads (no store);
3. send SQLite: `send_campaign` with `SendPolicy(concurrency=N)` on a fresh SQLite store
   (every request claimed and committed before it leaves, its answer committed after);
4. send PostgreSQL: the same on a fresh schema of CAMPAIGN_TEST_PG (unless --no-pg).

Printed: requests/s of each, the ratios the issue's targets speak of: lean / send
(target <= 1.5) and bare / send (the bookkeeping; target <= 1.25), and the bookkeeping in
absolute terms: the wall time per request send adds to the bare client (1/send - 1/bare,
µs; a faster client makes the ratio larger for the same bookkeeping). Then the CPU time
per request of bare and of each send: this process (the client and its store), the
simulator, and the local PostgreSQL server (its processes read from /proc, exited
backends included; "-" where they cannot be read): on a machine of two cores the three
share them, so the server's work per request costs requests/s as the client's does.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_send import (  # noqa: E402
    TEMPLATE,
    SimulatorProcess,
    bare_loop,
    drop_schema,
    make_csv,
    pg_schema_url,
)
from bench_workers import cpu_seconds  # noqa: E402

from campaign.config import GatewaySettings, Settings  # noqa: E402
from campaign.contacts import read_contacts  # noqa: E402
from campaign.gateway.client import SEND_PATH, GatewayClient  # noqa: E402
from campaign.plan import PlanOptions, make_plan  # noqa: E402
from campaign.sender import SendPolicy, send_campaign  # noqa: E402
from campaign.store import open_store  # noqa: E402
from campaign.store.campaigns import create_campaign  # noqa: E402


def postgres_cpu() -> float | None:
    """CPU seconds of the local PostgreSQL server's processes so far, exited backends
    included (None: none found)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().startswith("postgres"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return sum(cpu_seconds(pid, children=True) for pid in pids) if pids else None


class CpuMeter:
    """CPU seconds per request of this process, the simulator and PostgreSQL in a span."""

    def __init__(self, simulator_pid: int) -> None:
        self.simulator = simulator_pid

    def sample(self) -> tuple[float, float, float | None]:
        return time.process_time(), cpu_seconds(self.simulator), postgres_cpu()

    def per_request(self, before: tuple, after: tuple, requests: int) -> str:
        """`client / simulator / PostgreSQL` µs per request."""
        parts = [
            "-" if a is None or b is None else f"{1e6 * (a - b) / requests:.0f}"
            for b, a in zip(before, after, strict=True)
        ]
        return " / ".join(parts)


def lean_loop(gateway: GatewaySettings, jobs: list[tuple[list[str], str]], inflight: int) -> float:
    """http.client, one connection per thread; requests/s."""
    url = urlsplit(f"{gateway.url.rstrip('/')}/{SEND_PATH}")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    bodies = [
        urlencode(
            {
                "account": gateway.account,
                "pswd": gateway.password,
                "mobile": ",".join(mobiles),
                "msg": text,
                "needstatus": "true",
                "product": "",
                "extno": "",
            }
        ).encode()
        for mobiles, text in jobs
    ]
    local = threading.local()
    failed: list[bytes] = []

    def post(body: bytes) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("POST", url.path, body, headers)
        answer = conn.getresponse().read()
        if b",0" not in answer.split(b"\n", 1)[0]:
            failed.append(answer)

    with ThreadPoolExecutor(inflight) as pool:
        start = time.perf_counter()
        list(pool.map(post, bodies))
        elapsed = time.perf_counter() - start
    assert not failed, failed[:2]
    return len(bodies) / elapsed


def timed_send(
    url: str, plan: object, gateway: GatewaySettings, inflight: int, meter: CpuMeter
) -> tuple[float, str]:
    """requests/s of the send, and its CPU per request (CpuMeter.per_request) from the
    start of send_campaign to its end (the campaign's creation not included)."""
    engine = open_store(url)
    try:
        campaign_id = create_campaign(engine, plan, name="bench", settings_snapshot={})
        settings = Settings(gateway=replace(gateway, rate=0.0))
        with GatewayClient(settings.gateway) as client:
            before = meter.sample()
            report = send_campaign(
                engine, campaign_id, client, settings, policy=SendPolicy(concurrency=inflight)
            )
            cpu = meter.per_request(before, meter.sample(), report.requests_sent)
        assert report.state == "finished", report
        return report.rate, cpu
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per client and setting")
    parser.add_argument("--inflight", default="1,4,16,32")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    levels = [int(x) for x in args.inflight.split(",")]
    print(
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average "
        f"{os.getloadavg()[0]:.2f}; {args.requests} one-recipient requests per cell"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_csv(folder / "list.csv", args.requests)
        plan = make_plan(read_contacts([folder / "list.csv"]), TEMPLATE, PlanOptions())
        jobs = [(list(b.mobiles), b.text) for b in plan.batches]
        sim = SimulatorProcess(None)
        gateway = GatewaySettings(url=sim.url, account="demo", password="demo-secret")
        rows, cpu_rows = [], []
        meter = CpuMeter(sim.process.pid)
        try:
            for inflight in levels:
                lean = lean_loop(gateway, jobs, inflight)
                start = meter.sample()
                bare = bare_loop(gateway, plan, len(jobs), inflight)
                cpu = [meter.per_request(start, meter.sample(), len(jobs))]
                sqlite_url = f"sqlite:///{folder / f's{inflight}.db'}"
                sqlite, sqlite_cpu = timed_send(sqlite_url, plan, gateway, inflight, meter)
                cpu.append(sqlite_cpu)
                pg = None
                schema = None if args.no_pg else pg_schema_url()
                if schema:
                    try:
                        pg, pg_cpu = timed_send(schema[0], plan, gateway, inflight, meter)
                        cpu.append(pg_cpu)
                    finally:
                        drop_schema(schema[1])
                rows.append((inflight, lean, bare, sqlite, pg))
                cpu_rows.append((inflight, cpu))
                print(f"  in flight {inflight}: done", flush=True)
        finally:
            sim.close()
    print()
    print(
        "| in flight | lean http.client | GatewayClient (bare) | send SQLite | send PostgreSQL "
        "| lean / send SQLite | bare / send SQLite | lean / send PG | bare / send PG "
        "| bookkeeping SQLite | bookkeeping PG |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for inflight, lean, bare, sqlite, pg in rows:
        pg_text = f"{pg:,.0f}" if pg else "-"
        pg_ratios = f"{lean / pg:.2f}x | {bare / pg:.2f}x" if pg else "- | -"
        pg_cost = f"{_cost(bare, pg)} µs" if pg else "-"
        print(
            f"| {inflight} | {lean:,.0f} | {bare:,.0f} | {sqlite:,.0f} | {pg_text} "
            f"| {lean / sqlite:.2f}x | {bare / sqlite:.2f}x | {pg_ratios} "
            f"| {_cost(bare, sqlite)} µs | {pg_cost} |"
        )
    print()
    print("CPU µs per request: client / simulator / PostgreSQL server")
    print("| in flight | bare | send SQLite | send PostgreSQL |")
    print("|---:|---:|---:|---:|")
    for inflight, cpu in cpu_rows:
        print(f"| {inflight} | {' | '.join(cpu + ['-'] * (3 - len(cpu)))} |")
    print(
        f"load average at the end {os.getloadavg()[0]:.2f}; targets: lean / send <= 1.5x, "
        "bare / send <= 1.25x; bookkeeping: the wall time a request of send takes beyond one "
        "of the bare client (1/send - 1/bare)"
    )


def _cost(bare: float, send: float) -> str:
    """Microseconds of wall time per request that send adds to the bare client."""
    return f"{1e6 * (1 / send - 1 / bare):.0f}"


if __name__ == "__main__":
    main()
