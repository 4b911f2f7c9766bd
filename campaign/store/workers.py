"""Workers: the running send/resume processes, and what happens to batches they left behind.

Two tables: `workers` holds one row per run that claims a campaign's batches (a `send`,
`resume`, or one campaign of a `campaign worker`); `worker_processes` one row per
long-running `campaign worker` process (`register_process`, `beat_process`,
`unregister_process`), whatever it sends now.

A worker registers (uuid, host, pid), beats every few seconds, and unregisters at the end.
Batches found in `sending` whose worker is dead are orphans: the request may or may not
have left, so they become `unknown` and are never resent without an explicit flag.
A worker is dead when it is gone from the table, when it ran on this host and its pid
is not alive, or when its heartbeat is older than `stale_after` seconds.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from campaign.outcomes import BatchState
from campaign.store.engine import write
from campaign.store.schema import batches, worker_processes, workers
from campaign.timeutil import utcnow

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    heartbeat_at: datetime


def this_host() -> str:
    return socket.gethostname()


def register_worker(engine: Engine, campaign_id: int, worker_id: str | None = None) -> str:
    """Add this process as a worker of `campaign_id` (a new id unless given); return its id."""
    worker_id = worker_id or uuid.uuid4().hex
    with write(engine) as conn:
        now = store_clock(conn)
        conn.execute(
            insert(workers).values(
                id=worker_id,
                campaign_id=campaign_id,
                host=this_host(),
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
            )
        )
    return worker_id


def heartbeat(engine: Engine, worker_id: str) -> bool:
    """Stamp the worker's heartbeat; False when its row is gone (taken for dead)."""
    with write(engine) as conn:
        now = store_clock(conn)
        beat = update(workers).where(workers.c.id == worker_id).values(heartbeat_at=now)
        return bool(conn.execute(beat).rowcount)


def unregister_worker(engine: Engine, worker_id: str) -> None:
    with write(engine) as conn:
        conn.execute(delete(workers).where(workers.c.id == worker_id))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def is_dead(worker: WorkerInfo | None, *, now: datetime, stale_after: float) -> bool:
    if worker is None:
        return True
    beat = worker.heartbeat_at
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    if worker.host == this_host() and not pid_alive(worker.pid):
        return True
    return now - beat > timedelta(seconds=stale_after)


def recover_orphans(
    engine: Engine, campaign_id: int, *, stale_after: float = STALE_AFTER_SECONDS
) -> int:
    """Mark `unknown` the batches left in `sending` by dead workers; return how many."""
    with write(engine) as conn:
        now = store_clock(conn)
        claimers = list(
            conn.execute(
                select(batches.c.claimed_by)
                .where(batches.c.campaign_id == campaign_id, batches.c.state == BatchState.SENDING)
                .distinct()
            ).scalars()
        )
        if not claimers:
            return 0
        rows = conn.execute(select(workers).where(workers.c.id.in_([c for c in claimers if c])))
        known = {r.id: WorkerInfo(r.id, r.host, int(r.pid), r.heartbeat_at) for r in rows}
        recovered = 0
        for claimer in claimers:
            worker = known.get(claimer) if claimer else None
            if not is_dead(worker, now=now, stale_after=stale_after):
                continue
            recovered += conn.execute(
                update(batches)
                .where(
                    batches.c.campaign_id == campaign_id,
                    batches.c.state == BatchState.SENDING,
                    _claimed_by(claimer),
                )
                .values(
                    state=BatchState.UNKNOWN,
                    detail=_orphan_detail(claimer, worker),
                    answered_at=now,
                )
            ).rowcount
            if worker is not None:
                conn.execute(delete(workers).where(workers.c.id == worker.id))
    return recovered


def live_workers(
    engine: Engine, campaign_id: int, *, stale_after: float = STALE_AFTER_SECONDS
) -> list[WorkerInfo]:
    """The registered workers of the campaign that look alive (see `is_dead`), oldest first."""
    with engine.connect() as conn:
        now = store_clock(conn)
        rows = conn.execute(
            select(workers)
            .where(workers.c.campaign_id == campaign_id)
            .order_by(workers.c.started_at, workers.c.id)
        ).all()
    infos = [WorkerInfo(r.id, r.host, int(r.pid), _aware(r.heartbeat_at)) for r in rows]
    return [w for w in infos if not is_dead(w, now=now, stale_after=stale_after)]


def all_live_workers(
    engine: Engine, *, stale_after: float = STALE_AFTER_SECONDS
) -> list[tuple[int, WorkerInfo]]:
    """(campaign id, worker) of every registered worker that looks alive, by campaign then
    age: one query (the console's health page)."""
    with engine.connect() as conn:
        now = store_clock(conn)
        rows = conn.execute(
            select(workers).order_by(workers.c.campaign_id, workers.c.started_at, workers.c.id)
        ).all()
    found = [
        (int(r.campaign_id), WorkerInfo(r.id, r.host, int(r.pid), _aware(r.heartbeat_at)))
        for r in rows
    ]
    return [(c, w) for c, w in found if not is_dead(w, now=now, stale_after=stale_after)]


def live_worker_ids(
    engine: Engine, campaign_id: int, *, stale_after: float = STALE_AFTER_SECONDS
) -> list[str]:
    """The ids of the registered workers of the campaign that look alive (see `is_dead`)."""
    return [w.id for w in live_workers(engine, campaign_id, stale_after=stale_after)]


# --------------------------------------------------------------------------- worker processes


@dataclass(frozen=True)
class ProcessInfo:
    """A `campaign worker` process: where it runs, its last beat, what it sends now."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    campaign_id: int | None


def register_process(engine: Engine, process_id: str | None = None) -> str:
    """Add this process as a `campaign worker` (a new id unless given); return its id."""
    process_id = process_id or uuid.uuid4().hex
    with write(engine) as conn:
        now = store_clock(conn)
        conn.execute(
            insert(worker_processes).values(
                id=process_id,
                host=this_host(),
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
                campaign_id=None,
            )
        )
    return process_id


def beat_process(engine: Engine, process_id: str, campaign_id: int | None = None) -> bool:
    """Stamp the process's heartbeat and what it sends now (`campaign_id`, None: nothing).
    False when its row is gone (taken for dead, or removed): register it again."""
    with write(engine) as conn:
        beat = (
            update(worker_processes)
            .where(worker_processes.c.id == process_id)
            .values(heartbeat_at=store_clock(conn), campaign_id=campaign_id)
        )
        return bool(conn.execute(beat).rowcount)


def unregister_process(engine: Engine, process_id: str) -> None:
    with write(engine) as conn:
        conn.execute(delete(worker_processes).where(worker_processes.c.id == process_id))


def live_processes(
    engine: Engine, *, stale_after: float = STALE_AFTER_SECONDS
) -> list[ProcessInfo]:
    """The `campaign worker` processes that look alive (see `is_dead`), oldest first."""
    with engine.connect() as conn:
        now = store_clock(conn)
        rows = conn.execute(
            select(worker_processes).order_by(worker_processes.c.started_at, worker_processes.c.id)
        ).all()
    infos = [
        ProcessInfo(
            r.id,
            r.host,
            int(r.pid),
            _aware(r.started_at),
            _aware(r.heartbeat_at),
            None if r.campaign_id is None else int(r.campaign_id),
        )
        for r in rows
    ]
    return [
        p
        for p in infos
        if not is_dead(
            WorkerInfo(p.id, p.host, p.pid, p.heartbeat_at), now=now, stale_after=stale_after
        )
    ]


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def store_clock(conn: Connection) -> datetime:
    """The time heartbeats are written and judged by: the database server's on PostgreSQL
    (workers on several hosts: a host whose clock is behind would look stale, and its
    batches in flight would be taken for orphans), this host's on SQLite (one host)."""
    if conn.dialect.name == "postgresql":
        return conn.execute(select(func.now())).scalar_one()
    return utcnow()


def _claimed_by(claimer: str | None) -> Any:
    if claimer is None:
        return batches.c.claimed_by.is_(None)
    return batches.c.claimed_by == claimer


def _orphan_detail(claimer: str | None, worker: WorkerInfo | None) -> str:
    run = f"run {claimer[:8]}" if claimer else "an earlier run"
    where = f" (pid {worker.pid} on {worker.host})" if worker else ""
    return f"in flight when {run}{where} stopped; may or may not have been sent"


class Heartbeat:
    """Registers a worker and beats in a daemon thread until closed (a context manager)."""

    def __init__(
        self, engine: Engine, campaign_id: int, *, interval: float = HEARTBEAT_SECONDS
    ) -> None:
        self._engine = engine
        self._campaign_id = campaign_id
        self._interval = interval
        self._done = threading.Event()
        self.worker_id = register_worker(engine, campaign_id)
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._done.wait(self._interval):
            try:
                if not heartbeat(self._engine, self.worker_id):
                    # Beats were missed long enough for another run to take this one for
                    # dead (its batches then in flight became unknown); be alive again so
                    # that the batches claimed from now on are not taken for orphans.
                    register_worker(self._engine, self._campaign_id, self.worker_id)
            except Exception:  # a missed beat is not fatal; the next one retries
                continue

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        # a row left behind is taken for dead later (by its pid, or its stale heartbeat)
        with contextlib.suppress(SQLAlchemyError):
            unregister_worker(self._engine, self.worker_id)

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
