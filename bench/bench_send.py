"""Sending: throughput, rate accuracy and bookkeeping overhead of the send loop.

    .venv/bin/python bench/bench_send.py [--recipients 100000] [--rate 500]

A personalized campaign (one distinct text, so one request, per recipient) is planned from
a generated CSV and sent to the built-in simulator running in its own process (so that
it does not share this process's GIL), with:

1. the bare client loop (baseline): the same thread pool posting the same requests with
   no store at all;
2. `send_campaign` with no rate limit on SQLite (every request: a committed claim before
   it leaves, its result committed after) -> requests/s and the overhead ratio to 1;
3. the same on PostgreSQL (if reachable);
4. `send_campaign` at `--rate R`: the achieved rate, measured on the simulator's log
   (first to last request received), against R;
5. `create_campaign` (store the plan: rows + batches) of a `--create-rows` list (one text,
   batches of 50,000) on SQLite and PostgreSQL, against a naive baseline (one INSERT
   statement executed per row, measured on 20,000 rows).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.config import GatewaySettings, Settings
from campaign.contacts import read_contacts
from campaign.gateway.client import GatewayClient
from campaign.plan import PlanOptions, make_plan
from campaign.sender import DEFAULT_CONCURRENCY, SendPolicy, send_campaign
from campaign.store import open_store
from campaign.store.campaigns import create_campaign

PG_URL = os.environ.get("CAMPAIGN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TEMPLATE = "{name}，您好，本周会员日全场八折"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SimulatorProcess:
    """`campaign simulator` in a subprocess, logging every request as a JSON line."""

    def __init__(self, log: Path | None) -> None:
        """`log`: where the simulator logs each request (None: no log, the least work)."""
        self.port = free_port()
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}/msg"
        logging = ["--log", str(log)] if log is not None else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "campaign", "simulator", "--port", str(self.port), *logging],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the simulator did not start")

    def received_times(self) -> list[datetime]:
        assert self.log is not None, "the simulator runs without a log"
        with self.log.open(encoding="utf-8") as handle:
            return [datetime.fromisoformat(json.loads(line)["time"]) for line in handle]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def make_csv(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("name,mobile\n")
        handle.writelines(f"客户{i},139{i:08d}\n" for i in range(n))


def bare_loop(gateway: GatewaySettings, plan, n: int, inflight: int = DEFAULT_CONCURRENCY) -> float:
    """Baseline: the same pool posting the same requests, no store. Returns requests/s."""
    jobs = [(b.mobiles, b.text) for _, b in zip(range(n), plan.batches, strict=False)]
    with GatewayClient(gateway) as client, ThreadPoolExecutor(inflight) as pool:
        start = time.perf_counter()
        results = list(pool.map(lambda job: client.send_batch(*job), jobs))
        elapsed = time.perf_counter() - start
    assert all(type(r).__name__ == "Accepted" for r in results), results[:3]
    return len(jobs) / elapsed


def timed_send(url: str, plan, gateway: GatewaySettings, rate: float) -> tuple[float, int, float]:
    """Create the campaign and send it; (create seconds, requests sent, requests/s)."""
    engine = open_store(url)
    try:
        start = time.perf_counter()
        cid = create_campaign(engine, plan, name="bench", settings_snapshot={})
        created = time.perf_counter() - start
        settings = Settings(gateway=replace(gateway, rate=rate))
        with GatewayClient(settings.gateway) as client:
            report = send_campaign(engine, cid, client, settings, policy=SendPolicy())
        assert report.state == "finished", report
        return created, report.requests_sent, report.rate
    finally:
        engine.dispose()


def pg_schema_url() -> tuple[str, str] | None:
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            schema = f"bench_{os.getpid()}"
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error:
        return None
    url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{url}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def naive_rows_per_second(url: str, plan, n: int = 20_000) -> float:
    """Baseline: one INSERT executed per row (what a loop over the plan would do)."""
    from sqlalchemy import insert

    from campaign.store.schema import recipients

    frame, rows = plan.contacts.frame, plan.rows
    engine = open_store(url)
    try:
        start = time.perf_counter()
        with engine.begin() as conn:
            for i in range(n):
                conn.execute(
                    insert(recipients).values(
                        campaign_id=0,
                        row_no=i,
                        source=frame["_source"].iat[i],
                        source_row=int(frame["_source_row"].iat[i]),
                        cells=json.dumps([frame[c].iat[i] for c in plan.contacts.columns]),
                        mobile=rows["normalized_mobile"].iat[i] or None,
                        carrier=rows["carrier"].iat[i] or None,
                        outcome=rows["outcome"].iat[i],
                        message=rows["message"].iat[i],
                        segments=int(rows["segments"].iat[i]),
                        batch_id=rows["batch_id"].iat[i] or None,
                    )
                )
        return n / (time.perf_counter() - start)
    finally:
        engine.dispose()


def bench_create(folder: Path, n: int) -> None:
    make_csv(folder / "big.csv", n)
    start = time.perf_counter()
    plan = make_plan(read_contacts([folder / "big.csv"]), "您好，会员日全场八折", PlanOptions())
    print(
        f"plan: {n:,} rows, one text -> {len(plan.batches)} requests "
        f"in {time.perf_counter() - start:.1f} s"
    )
    stores = [("SQLite", f"sqlite:///{folder / 'big.db'}", None)]
    pg = pg_schema_url()
    if pg:
        stores.append(("PostgreSQL", pg[0], pg[1]))
    for label, url, schema in stores:
        try:
            engine = open_store(url)
            start = time.perf_counter()
            create_campaign(engine, plan, name="big", settings_snapshot={})
            elapsed = time.perf_counter() - start
            engine.dispose()
            naive = naive_rows_per_second(url, plan)
            print(
                f"create_campaign {label}, {n:,} rows: {elapsed:.1f} s = {n / elapsed:,.0f} "
                f"rows/s (naive per-row INSERT: {naive:,.0f} rows/s, "
                f"x{n / elapsed / naive:.1f})"
            )
        finally:
            if schema:
                drop_schema(schema)


def subset(plan, n: int):
    """The first n rows of a plan, re-planned (cheap: the plan is pure)."""
    contacts = replace(plan.contacts, frame=plan.contacts.frame.iloc[:n].reset_index(drop=True))
    return make_plan(contacts, TEMPLATE, PlanOptions())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--rate-requests", type=int, default=10_000)
    parser.add_argument("--other", type=int, default=20_000, help="requests for baseline/PG")
    parser.add_argument("--create-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.create_rows:
            bench_create(folder, args.create_rows)
        make_csv(folder / "list.csv", args.recipients)
        start = time.perf_counter()
        plan = make_plan(read_contacts([folder / "list.csv"]), TEMPLATE, PlanOptions())
        print(
            f"plan: {args.recipients} recipients -> {len(plan.batches)} requests "
            f"in {time.perf_counter() - start:.1f} s"
        )
        small = subset(plan, args.other)
        sim = SimulatorProcess(folder / "sim.jsonl")
        try:
            gateway = GatewaySettings(url=sim.url, account="demo", password="demo-secret")
            base = bare_loop(gateway, small, args.other)
            print(f"bare client loop (baseline, {args.other} requests): {base:,.0f} requests/s")
            url = f"sqlite:///{folder / 'bench.db'}"
            created, sent, rate = timed_send(url, plan, gateway, 0.0)
            print(
                f"create_campaign SQLite, {args.recipients} rows + {sent} batches: {created:.1f} s"
            )
            print(
                f"send_campaign SQLite, no rate limit, {sent} requests: {rate:,.0f} requests/s"
                f" (overhead x{base / rate:.2f} the bare loop)"
            )
            pg = pg_schema_url()
            if pg:
                try:
                    created, sent, rate = timed_send(pg[0], small, gateway, 0.0)
                    print(
                        f"send_campaign PostgreSQL, no rate limit, {sent} requests: "
                        f"{rate:,.0f} requests/s (overhead x{base / rate:.2f} the bare loop)"
                    )
                finally:
                    drop_schema(pg[1])
            before = len(sim.received_times())
            paced = subset(plan, args.rate_requests)
            timed_send(f"sqlite:///{folder / 'rate.db'}", paced, gateway, args.rate)
            times = sim.received_times()[before:]
            achieved = (len(times) - 1) / (times[-1] - times[0]).total_seconds()
            print(
                f"send_campaign SQLite at rate {args.rate:g}/s, {len(times)} requests: "
                f"achieved {achieved:,.1f}/s ({(achieved / args.rate - 1) * 100:+.1f}%)"
            )
        finally:
            sim.close()


if __name__ == "__main__":
    main()
