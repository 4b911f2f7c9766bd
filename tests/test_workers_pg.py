"""Several `campaign worker` processes on one PostgreSQL store (issue 14).

Real processes throughout: the simulator (`campaign simulator --log`, its log is the truth
of what was received), three `campaign worker`s started with CAMPAIGN_DB/CAMPAIGN_CONFIG,
and the campaign handed to them with `campaign send ... --queue`. Every list is
personalized (one text, hence one request, per recipient).

- together the workers keep the account's rate R (the simulator answers 103 above R);
- a worker SIGKILLed mid-run loses only its in-flight batches (`unknown`);
- `pause` stops every worker within 2 s, `resume --queue` finishes, `cancel` ends it.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from campaign.cli import app
from campaign.outcomes import BatchState, CampaignState, Outcome
from campaign.send.policy import DEFAULT_CONCURRENCY
from campaign.store import open_store
from campaign.store.campaigns import get_campaign
from campaign.store.schema import batches, workers
from tests.support.simulator import simulator_process
from tests.support.workers import (
    TEMPLATE,
    WorkerPool,
    campaign_env,
    read_log,
    received,
    wait_until,
    write_config,
    write_contacts,
    write_simulator_config,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# R: requests/s of the account, the simulator answers 103 above it. The issue asks for
# 30,000 recipients at a real R: 300/s is what this 2-core machine holds with room to spare
# (a request costs ~5 ms of CPU in all, BENCHMARKS.md "Workers"): ~105 s.
RATE = 300
RECIPIENTS = 30_000
SMALL = 3_000  # the kill, pause and cancel lists
LATENCY = 0.05  # seconds every answer takes: requests are in flight when things happen
PAUSE_LATE = 2.0  # nothing may reach the gateway later than this after pause/cancel
QUIET = 3.0  # seconds watched after a pause or cancel
EXPORT_SECONDS = 60  # `export` of SMALL rows right after the sending (tables not analyzed)
RUNNER = CliRunner()


@dataclass(frozen=True)
class Rig:
    """One PostgreSQL store, the simulator and the workers' config, in `folder`."""

    db: str
    config: Path
    folder: Path
    log: Path

    def cli(self, *args: str) -> str:
        """Run a `campaign` command in this process; its stdout (exit 0 asserted)."""
        result = RUNNER.invoke(app, list(args), env=campaign_env(self.db, self.config))
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    def queue(self, contacts: Path, name: str) -> int:
        """`campaign send CONTACTS --queue`: the campaign's id (state queued)."""
        out = self.cli(
            "send", str(contacts), "--text", TEMPLATE, "--name", name, "--yes", "--queue", "--json"
        )
        data = json.loads(out)
        assert data["state"] == CampaignState.QUEUED, data
        return int(data["campaign_id"])

    def state(self, cid: int) -> str:
        engine = open_store(self.db)
        try:
            return get_campaign(engine, cid).state
        finally:
            engine.dispose()

    def batch_rows(self, cid: int) -> list[sa.Row]:
        """(batch_id, state, mobiles, claimed_by) of every batch of the campaign."""
        engine = open_store(self.db)
        try:
            with engine.connect() as conn:
                query = sa.select(
                    batches.c.batch_id, batches.c.state, batches.c.mobiles, batches.c.claimed_by
                ).where(batches.c.campaign_id == cid)
                return list(conn.execute(query).all())
        finally:
            engine.dispose()

    def claimers(self, cid: int) -> dict[int, set[str]]:
        """pid -> ids of the runs (`workers` rows) claiming the campaign now."""
        engine = open_store(self.db)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(workers.c.pid, workers.c.id).where(workers.c.campaign_id == cid)
                ).all()
        finally:
            engine.dispose()
        found: dict[int, set[str]] = {}
        for pid, ident in rows:
            found.setdefault(int(pid), set()).add(ident)
        return found

    def sent(self) -> int:
        return sum(1 for r in read_log(self.log) if r.accepted)


@contextmanager
def rig(db: str, folder: Path, *, rate_limit: float, latency: float = 0.0) -> Iterator[Rig]:
    """The simulator (a process; 103 above `rate_limit`, answers after `latency`) and the
    workers' config at gateway.rate = `rate_limit`."""
    sim_config = write_simulator_config(folder / "sim.toml", rate_limit=rate_limit, latency=latency)
    log = folder / "sim.jsonl"
    with simulator_process("--config", str(sim_config), "--log", str(log), start_timeout=60) as sim:
        config = write_config(folder / "campaign.toml", sim.url, rate=rate_limit)
        yield Rig(db, config, folder, log)


def states(rows: list[sa.Row]) -> Counter[str]:
    return Counter(r.state for r in rows)


# --------------------------------------------------------------------------- the rate


@pytest.mark.timeout(300)
def test_three_workers_keep_the_account_rate_and_send_everyone_once(pg_url, tmp_path):
    with rig(pg_url, tmp_path, rate_limit=RATE) as r:
        mobiles = write_contacts(tmp_path / "list.csv", RECIPIENTS)
        cid = r.queue(tmp_path / "list.csv", "rate")
        with WorkerPool(3, db=r.db, config=r.config, folder=tmp_path) as pool:
            wait_until(
                lambda: r.state(cid) == CampaignState.FINISHED,
                timeout=RECIPIENTS / RATE * 2 + 30,
                step=0.5,
                what=f"campaign {cid} finished",
            )
            codes = pool.stop()
        assert codes == [0, 0, 0], pool.stderrs()
    log = read_log(r.log)
    counts = received(log)
    assert set(counts) == set(mobiles) and set(counts.values()) == {1}  # everyone, once
    accepted = [e.at for e in log if e.accepted]
    rate = (len(accepted) - 1) / (accepted[-1] - accepted[0])
    too_fast = sum(1 for e in log if e.code == "103")
    print(f"\n{len(accepted)} accepted at {rate:.1f}/s (R={RATE}); {too_fast} answered 103")
    assert RATE * 0.9 <= rate <= RATE * 1.05, rate
    assert too_fast < 0.01 * len(log), too_fast
    assert Counter(e.code for e in log) <= Counter({"0": RECIPIENTS, "103": too_fast})
    rows = r.batch_rows(cid)
    assert states(rows) == {BatchState.ACCEPTED: RECIPIENTS}
    assert len({row.claimed_by for row in rows}) >= 3  # every worker took its share


# --------------------------------------------------------------------------- SIGKILL


@pytest.mark.timeout(180)
def test_a_killed_worker_loses_only_its_requests_in_flight(pg_url, tmp_path):
    with rig(pg_url, tmp_path, rate_limit=RATE, latency=LATENCY) as r:
        mobiles = write_contacts(tmp_path / "list.csv", SMALL)
        cid = r.queue(tmp_path / "list.csv", "kill")
        with WorkerPool(3, db=r.db, config=r.config, folder=tmp_path) as pool:
            wait_until(
                lambda: len(r.claimers(cid)) == 3 and r.sent() >= SMALL // 4,
                timeout=60,
                what="three workers sending",
            )
            victim = pool.processes[0].pid
            runs = r.claimers(cid)[victim]
            pool.kill(0)
            wait_until(
                lambda: r.state(cid) == CampaignState.FINISHED,
                timeout=SMALL / RATE * 2 + 60,
                step=0.5,
                what=f"campaign {cid} finished by the other two",
            )
            codes = pool.stop()
    counts = received(read_log(r.log))
    rows = r.batch_rows(cid)
    unknown = [row for row in rows if row.state == BatchState.UNKNOWN]
    # The survivors end cleanly (0), except the one whose send saw the campaign finished
    # with the victim's batches already swept to `unknown` (a survivor out of work sweeps
    # them): 5, "finished, but some batches are unknown", as SPEC says.
    assert set(codes[1:]) <= {0, 5}, pool.stderrs()
    assert 5 not in codes[1:] or unknown, pool.stderrs()
    assert len(unknown) <= DEFAULT_CONCURRENCY  # at most the victim's requests in flight
    assert {row.claimed_by for row in unknown} <= runs  # only the victim's
    assert states(rows) == {BatchState.ACCEPTED: SMALL - len(unknown), **states(unknown)}
    for row in rows:
        (number,) = row.mobiles.split(",")
        if row.state == BatchState.ACCEPTED:
            assert counts[number] == 1, row  # exactly once
        else:
            assert counts[number] <= 1, row  # at most once: it may have left
    assert set(counts) <= set(mobiles)
    assert max(counts.values()) == 1


# --------------------------------------------------------------------------- pause, cancel


def stops_within(r: Rig, command: str, cid: int, sent_before: int) -> None:
    """Run `campaign COMMAND CID` once a quarter of its list is sent (the simulator had
    taken `sent_before` requests before); then watch QUIET seconds: nothing may reach the
    gateway later than PAUSE_LATE after the command returned."""
    wait_until(lambda: r.sent() >= sent_before + SMALL // 4, timeout=60, what="sending")
    r.cli(command, str(cid))
    returned = time.time()
    time.sleep(QUIET)
    last = max(e.at for e in read_log(r.log))
    assert last <= returned + PAUSE_LATE, f"a request {last - returned:.2f} s after {command}"


@pytest.mark.timeout(240)
def test_pause_resume_and_cancel_while_three_workers_send(pg_url, tmp_path):
    with rig(pg_url, tmp_path, rate_limit=RATE, latency=LATENCY) as r:
        paused_list = write_contacts(tmp_path / "paused.csv", SMALL)
        cancelled_list = write_contacts(tmp_path / "cancelled.csv", SMALL, first=SMALL)
        with WorkerPool(3, db=r.db, config=r.config, folder=tmp_path) as pool:
            # pause: nothing leaves 2 s after it; nothing in flight is lost
            cid = r.queue(tmp_path / "paused.csv", "paused")
            stops_within(r, "pause", cid, 0)
            assert r.state(cid) == CampaignState.PAUSED
            at_pause = states(r.batch_rows(cid))
            assert set(at_pause) == {BatchState.ACCEPTED, BatchState.PENDING}, at_pause
            # resume: the workers finish it, nobody twice
            r.cli("resume", str(cid), "--queue")
            wait_until(
                lambda: r.state(cid) == CampaignState.FINISHED,
                timeout=SMALL / RATE * 2 + 30,
                step=0.5,
                what=f"campaign {cid} finished after resume",
            )
            counts = received(read_log(r.log))
            assert set(counts) == set(paused_list) and set(counts.values()) == {1}
            assert states(r.batch_rows(cid)) == {BatchState.ACCEPTED: SMALL}

            # cancel: the rest is cancelled, never sent, and export shows it
            sent_before = r.sent()
            cid = r.queue(tmp_path / "cancelled.csv", "cancelled")
            stops_within(r, "cancel", cid, sent_before)
            codes = pool.stop()
        assert codes == [0, 0, 0], pool.stderrs()
    assert r.state(cid) == CampaignState.CANCELLED
    rows = r.batch_rows(cid)
    assert set(states(rows)) == {BatchState.ACCEPTED, BatchState.CANCELLED}, states(rows)
    counts = received(read_log(r.log))
    cancelled = set()
    for row in rows:
        (number,) = row.mobiles.split(",")
        if row.state == BatchState.CANCELLED:
            cancelled.add(number)
            assert counts[number] == 0, row
        else:
            assert counts[number] == 1, row
    assert max(counts.values()) == 1 and set(counts) <= set(paused_list) | set(cancelled_list)
    out = tmp_path / "cancelled-results.csv"
    # the server cancels a query running past EXPORT_SECONDS: a slow export fails here,
    # named, and leaves no query behind that would hold the schema's teardown
    assert r.db.rpartition("?")[2].rpartition("&")[2].startswith("options=")  # conftest's
    bounded = f"{r.db}%20-cstatement_timeout%3D{EXPORT_SECONDS * 1000}"
    done = subprocess.run(
        [sys.executable, "-m", "campaign", "export", str(cid), "-o", str(out)],
        env=campaign_env(bounded, r.config),
        capture_output=True,
        text=True,
        timeout=EXPORT_SECONDS + 30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8-sig", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == SMALL
    shown = {row["normalized_mobile"] for row in exported if row["outcome"] == Outcome.CANCELLED}
    assert shown == cancelled
    assert {row["reason"] for row in exported if row["outcome"] == Outcome.CANCELLED} == {
        "not sent: the campaign was cancelled"
    }
