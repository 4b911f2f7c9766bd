"""Helpers of the multi-worker tests and benchmark: lists, configs, `campaign worker`
processes and the simulator's request log.

    mobiles = write_contacts(folder / "list.csv", 30_000)          # one text per row
    config = write_config(folder / "campaign.toml", sim.url, rate=500)
    with WorkerPool(3, db=url, config=config, folder=folder) as pool:
        ...                                                       # pool.kill(0), pool.stop()
    log = read_log(folder / "sim.jsonl")                          # what the simulator got

The workers are real processes (`python -m campaign worker`) with CAMPAIGN_DB and
CAMPAIGN_CONFIG in their environment; their stderr goes to files in `folder` (read with
`pool.stderr(i)`), so that a chatty worker never blocks on a full pipe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

ACCOUNT = "demo"
PASSWORD = "demo-secret"  # the simulator's documented demo password (not a secret)
TEMPLATE = "{name}您好，您的会员编号{code}，本周会员日全场八折"  # personalized: one text a row


@dataclass(frozen=True)
class LoggedRequest:
    """One send request from the simulator's `--log` (JSON line)."""

    at: float  # epoch seconds when the simulator took it
    mobiles: tuple[str, ...]
    code: str
    fault: str

    @property
    def accepted(self) -> bool:
        return self.code == "0"


def read_log(path: Path) -> list[LoggedRequest]:
    """Every request the simulator logged so far (a half-written last line is skipped)."""
    if not path.exists():
        return []
    found = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # being written now
            entry = json.loads(line)
            found.append(
                LoggedRequest(
                    at=datetime.fromisoformat(entry["time"]).timestamp(),
                    mobiles=tuple(entry["mobiles"]),
                    code=str(entry["code"]),
                    fault=str(entry.get("fault", "")),
                )
            )
    return found


def received(log: Iterable[LoggedRequest]) -> Counter[str]:
    """How many times each mobile was taken by the gateway (accepted requests)."""
    return Counter(m for r in log if r.accepted for m in r.mobiles)


def measured_rate(log: list[LoggedRequest]) -> float:
    """Accepted requests per second, from the first to the last accepted one."""
    times = [r.at for r in log if r.accepted]
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def mobile(i: int, first: int = 0) -> str:
    return f"139{first + i:08d}"


def write_contacts(path: Path, n: int, first: int = 0) -> list[str]:
    """A CSV of `n` contacts (name, code, mobile), each with its own text; the mobiles."""
    mobiles = [mobile(i, first) for i in range(n)]
    with path.open("w", encoding="utf-8") as handle:
        handle.write("name,code,mobile\n")
        handle.writelines(f"客户{first + i},{first + i:06d},{m}\n" for i, m in enumerate(mobiles))
    return mobiles


def write_config(path: Path, url: str, *, rate: float, timeout: float = 10.0) -> Path:
    """The campaign TOML of the workers: the gateway at `url`, `rate` requests/s (0: off)."""
    path.write_text(
        f'[gateway]\nurl = "{url}"\naccount = "{ACCOUNT}"\nrate = {rate:g}\n'
        f"timeout = {timeout:g}\n",
        encoding="utf-8",
    )
    return path


def write_simulator_config(path: Path, *, rate_limit: float = 0, latency: float = 0) -> Path:
    """The simulator TOML: no report pushes, `rate_limit` per second (103 above), `latency`."""
    path.write_text(
        f"rate_limit = {rate_limit:g}\nlatency = {latency:g}\nreport_delay = 0\n",
        encoding="utf-8",
    )
    return path


def campaign_env(db: str, config: Path) -> dict[str, str]:
    """The environment of a `campaign` process on this store and config."""
    return {
        **os.environ,
        "CAMPAIGN_DB": db,
        "CAMPAIGN_CONFIG": str(config),
        "CAMPAIGN_PASSWORD": PASSWORD,
    }


class WorkerPool:
    """`n` `campaign worker` processes on one store and config; a context manager that
    stops (SIGTERM, then SIGKILL after `grace` seconds) whatever is still running."""

    def __init__(
        self,
        n: int,
        *,
        db: str,
        config: Path,
        folder: Path,
        args: tuple[str, ...] = (),
        grace: float = 20.0,
    ) -> None:
        self.n, self.db, self.config, self.folder = n, db, config, folder
        self.args, self.grace = args, grace
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(self) -> WorkerPool:
        command = [sys.executable, "-m", "campaign", "worker", *self.args]
        env = campaign_env(self.db, self.config)
        for i in range(self.n):
            log = (self.folder / f"worker-{i}.stderr").open("wb")
            self._logs.append(log)
            self.processes.append(
                subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
            )
        return self

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def alive(self) -> list[int]:
        """Indexes of the workers still running."""
        return [i for i, p in enumerate(self.processes) if p.poll() is None]

    def kill(self, i: int) -> None:
        """SIGKILL worker `i` and reap it (its pid is then dead for the others' checks)."""
        self.processes[i].send_signal(signal.SIGKILL)
        self.processes[i].wait(10)

    def stop(self) -> list[int | None]:
        """SIGTERM every running worker and wait for them; their exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for log in self._logs:
            log.close()
        self._logs.clear()
        return [p.returncode for p in self.processes]

    def stderr(self, i: int) -> str:
        path = self.folder / f"worker-{i}.stderr"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stderrs(self) -> str:
        """Every worker's stderr, labelled (for assertion messages)."""
        return "\n".join(f"--- worker {i}:\n{self.stderr(i)}" for i in range(self.n))


def wait_until(
    condition: Callable[[], bool], timeout: float, step: float = 0.1, what: str = "condition"
) -> float:
    """Poll `condition` until true; seconds waited. TimeoutError naming `what` after
    `timeout` seconds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(step)
    return time.monotonic() - start
