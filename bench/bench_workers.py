"""Workers: throughput of 1, 2, 3 `campaign worker` processes sharing one PostgreSQL store.

    .venv/bin/python bench/bench_workers.py [--requests 6000] [--rate 500] [--latency 0.05]

Every process is real: the simulator (`campaign simulator --log`, its own process), the
workers (`python -m campaign worker`, CAMPAIGN_DB/CAMPAIGN_CONFIG in their environment)
and the campaign handed to them with `campaign send ... --queue`. Each run gets a fresh
PostgreSQL schema (CAMPAIGN_TEST_PG) and a personalized list of `--requests` recipients
(one text, hence one request, each). Figures come from the simulator's log: accepted
requests / (last - first request time).

1. no rate limit, every answer `--latency` late (a slow gateway): requests/s of 1, 2, 3
   workers and the ratio to one worker (the scaling shape);
2. `gateway.rate = R` with the simulator answering 103 above R (fixed 1-second windows,
   per account): the achieved rate against R, and how many requests were answered 103.

Each row also gives the CPU each request costs (milliseconds, sampled between 10 % and
90 % of the run, from /proc): in the workers, in their PostgreSQL backends (found by
application_name) and in the simulator. On a shared machine the rates swing with the
load; the CPU per request says what a quiet machine could do (cores / the sum).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.store import open_store
from campaign.store.campaigns import get_campaign
from tests.support.simulator import simulator_process
from tests.support.workers import (
    TEMPLATE,
    WorkerPool,
    campaign_env,
    measured_rate,
    read_log,
    received,
    write_config,
    write_contacts,
    write_simulator_config,
)

PG_URL = os.environ.get("CAMPAIGN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


APP = "bench_workers"  # application_name of the workers' PostgreSQL connections


@dataclass(frozen=True)
class Run:
    workers: int
    requests: int
    rate: float  # accepted requests/s, from the simulator's log
    too_fast: int  # requests answered 103
    seconds: float  # from `send --queue` returning to `finished`
    twice: int  # recipients received more than once (must be 0)
    cpu: dict[str, float]  # CPU ms per request (workers, postgres, simulator), mid-run


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of a live process so far (0 when it is gone); with
    `children`, those of its children it has reaped too (a server's exited backends)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11 : 15 if children else 13]) / os.sysconf("SC_CLK_TCK")


def backends() -> list[int]:
    """Pids of the PostgreSQL backends serving the workers (by application_name)."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
        return [int(row[0]) for row in conn.execute(query, (APP,))]


class CpuMeter:
    """CPU seconds of the workers, their PostgreSQL backends and the simulator, sampled
    twice mid-run (between 10 % and 90 % of the requests: no start-up, no tail)."""

    GROUPS = ("workers", "postgres", "simulator")

    def __init__(self, workers: list[int], simulator: int) -> None:
        self.groups = {"workers": list(workers), "postgres": [], "simulator": [simulator]}
        self.samples: list[tuple[int, dict[int, float]]] = []

    def sample(self, sent: int) -> None:
        pids = {pid for group in self.groups.values() for pid in group}
        self.groups["postgres"] = sorted(set(self.groups["postgres"]) | set(backends()))
        pids |= set(self.groups["postgres"])
        self.samples.append((sent, {pid: cpu_seconds(pid) for pid in pids}))

    def maybe_sample(self, sent: int, requests: int) -> None:
        """Sample at 10 % and at 90 % of the requests."""
        marks = (0.1, 0.9)
        if len(self.samples) < len(marks) and sent >= marks[len(self.samples)] * requests:
            self.sample(sent)

    def per_request(self) -> dict[str, float]:
        """Milliseconds of CPU per request accepted between the two samples."""
        if len(self.samples) < 2 or self.samples[1][0] <= self.samples[0][0]:
            return {}
        (sent0, cpu0), (sent1, cpu1) = self.samples[:2]
        return {
            name: 1000 * sum(cpu1.get(p, 0.0) - cpu0.get(p, 0.0) for p in pids) / (sent1 - sent0)
            for name, pids in self.groups.items()
        }


@contextmanager
def pg_schema(tag: str) -> Iterator[str]:
    """A fresh schema of the test PostgreSQL; its store URL. Dropped afterwards."""
    schema = f"bench_w_{os.getpid()}_{tag}"
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def one_run(folder: Path, workers: int, requests: int, *, rate: float, latency: float) -> Run:
    """Queue one personalized campaign for `workers` fresh workers; measure it."""
    folder.mkdir()
    contacts = folder / "list.csv"
    mobiles = write_contacts(contacts, requests)
    sim_config = write_simulator_config(folder / "sim.toml", rate_limit=rate, latency=latency)
    log = folder / "sim.jsonl"
    with (
        pg_schema(folder.name) as db,
        simulator_process("--config", str(sim_config), "--log", str(log), start_timeout=60) as sim,
    ):
        config = write_config(folder / "campaign.toml", sim.url, rate=rate)
        open_store(db).dispose()  # a worker never creates a store: the first command does
        named = f"{db}&application_name={APP}"  # the workers' connections, for CpuMeter
        with WorkerPool(workers, db=named, config=config, folder=folder) as pool:
            time.sleep(1.0)  # the workers start (imports, store) before the campaign is due
            queued = subprocess.run(
                [sys.executable, "-m", "campaign", "send", str(contacts), "--text", TEMPLATE,
                 "--name", folder.name, "--yes", "--queue", "--json"],
                env=campaign_env(db, config), capture_output=True, text=True, check=False,
            )  # fmt: skip
            if queued.returncode != 0:
                raise RuntimeError(f"send --queue failed: {queued.stderr}")
            cid = int(json.loads(queued.stdout)["campaign_id"])
            start = time.perf_counter()
            meter = CpuMeter(pool.pids, sim.process.pid)
            engine = open_store(db)
            try:
                while get_campaign(engine, cid).state != "finished":
                    if not pool.alive():
                        raise RuntimeError(f"the workers died:\n{pool.stderrs()}")
                    meter.maybe_sample(sum(1 for e in read_log(log) if e.accepted), requests)
                    time.sleep(0.2)
            finally:
                engine.dispose()
            seconds = time.perf_counter() - start
    entries = read_log(log)
    counts = received(entries)
    assert set(counts) == set(mobiles), "someone was not sent"
    return Run(
        workers=workers,
        requests=requests,
        rate=measured_rate(entries),
        too_fast=sum(1 for e in entries if e.code == "103"),
        seconds=seconds,
        twice=sum(1 for n in counts.values() if n > 1),
        cpu=meter.per_request(),
    )


HEADER = (
    "| workers | req/s | {versus} | wall s | 103 | twice | CPU ms/req: workers "
    "| PostgreSQL | simulator |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def row(run: Run, versus: str) -> str:
    cpu = [f"{run.cpu[k]:.2f}" if k in run.cpu else "?" for k in CpuMeter.GROUPS]
    return (
        f"| {run.workers} | {run.rate:,.0f} | {versus} | {run.seconds:.1f} | {run.too_fast} "
        f"| {run.twice} | {' | '.join(cpu)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6_000, help="recipients per run")
    parser.add_argument("--rate", type=float, default=500.0, help="R of the rate-limited runs")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        print(f"skipped: PostgreSQL at {PG_URL} is not reachable ({reason})")
        return
    print(f"load average at start: {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"\nno rate limit, latency {args.latency:g} s, {args.requests:,} requests a run")
        print(HEADER.format(versus="x one worker"))
        first = 0.0
        for n in args.workers:
            run = one_run(folder / f"free{n}", n, args.requests, rate=0, latency=args.latency)
            first = first or run.rate
            print(row(run, f"{run.rate / first:.2f}"), flush=True)
        print(f"\ngateway.rate = simulator rate_limit = {args.rate:g}/s, no latency")
        print(HEADER.format(versus="vs R"))
        for n in args.workers:
            run = one_run(folder / f"rate{n}", n, args.requests, rate=args.rate, latency=0)
            print(row(run, f"{(run.rate / args.rate - 1) * 100:+.1f} %"), flush=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
