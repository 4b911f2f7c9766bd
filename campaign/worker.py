"""`campaign worker`: send the campaigns handed to the workers, as they fall due.

A worker is a long-running process (or, with `once`, a cron job's pass over what is due):

    loop: sweep ─► pick_due ─► none: wait `poll` (or, once: end)
                      └─► send it (the send loop's at-most-once rules) ─► what became of it

Any number of workers, on one machine or on several sharing a PostgreSQL store, work at
once: they take due campaigns from the store (store/queue.py), share a campaign's batches
(each batch is claimed by one of them) and the account's pace (send/pacing.pace_for). After
a send, the stop decides what becomes of the campaign:

    nothing left                 finished (by this worker, or by `sweep` when others end it)
    the send window closed       scheduled again for the window's next opening
    this worker was stopped      stays `sending` for the other workers (or the next start)
    gateway, balance, store      stopped with the reason: a person decides (`resume`)
    paused, cancelled, halted    as the process that did it left it

Each state change is one line for people (China time, via `notify`); the process has a row
in `worker_processes`, beaten every few seconds, that `status` reads. `stop.set()` (SIGTERM,
Ctrl-C, a console) ends the worker after the requests in flight are answered and recorded.
This module does not send itself: the caller hands in `send_one` (workflow.run_worker wraps
`workflow.send`), so it knows nothing of gateways.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from campaign.config import SendWindow
from campaign.errors import CampaignError, ExitCode, StoreError
from campaign.outcomes import CampaignState, StopCause
from campaign.send.window import next_opening
from campaign.sender import STOPPED_BY_OTHERS, SendReport
from campaign.store import queue
from campaign.store.campaigns import get_campaign, set_state
from campaign.store.engine import store_failures_raise
from campaign.store.workers import (
    HEARTBEAT_SECONDS,
    STALE_AFTER_SECONDS,
    beat_process,
    live_workers,
    register_process,
    this_host,
    unregister_process,
)
from campaign.timeutil import china_now, china_text

Notify = Callable[[str], None]
SendOne = Callable[[int], SendReport]  # sends one campaign; honours the worker's stop event

POLL_SECONDS = 1.0  # between looks at the queue when nothing is due
STORE_RETRY_SECONDS = 5.0  # after the store failed (a long-running worker goes on)
#: A 110 from a gateway without a configured send window: look again after this.
GATEWAY_WINDOW_RETRY = timedelta(minutes=30)
#: Stops that are no failure of the worker's (`--once` exits 0 after them).
EXPECTED_STOPS = frozenset({StopCause.INTERRUPTED, StopCause.WINDOW, *STOPPED_BY_OTHERS})


def _quiet(_line: str) -> None:
    return None


@dataclass
class WorkerReport:
    """What a worker did: one entry per send, and how it ended."""

    worker_id: str
    host: str
    pid: int
    sends: list[dict[str, Any]] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.OK
    stopped: bool = False  # ended by a stop request (not `once` running out of work)

    def add(self, report: SendReport) -> None:
        self.sends.append(
            {
                "campaign_id": report.campaign_id,
                "state": report.state,
                "stop_reason": report.stop_reason,
                "requests_sent": report.requests_sent,
            }
        )
        code = report.exit_code
        if report.stop_cause in EXPECTED_STOPS or code is ExitCode.INTERRUPTED:
            return
        self.exit_code = max(self.exit_code, code, key=_rank)

    def to_json(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "host": self.host,
            "pid": self.pid,
            "campaigns": self.sends,
            "stopped": self.stopped,
            "exit_code": int(self.exit_code),
        }


@store_failures_raise("while the worker registered")
def _started_beat(engine: Engine, interval: float) -> ProcessBeat:
    return ProcessBeat(engine, interval=interval)


class ProcessBeat:
    """The worker's row in `worker_processes`, beaten in a daemon thread with what it sends
    now (`campaign_id`); removed when closed."""

    def __init__(self, engine: Engine, *, interval: float = HEARTBEAT_SECONDS) -> None:
        self._engine, self._interval = engine, interval
        self._done = threading.Event()
        self.campaign_id: int | None = None
        self.worker_id = register_process(engine)
        self._thread = threading.Thread(target=self._beat, name="worker-beat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._done.wait(self._interval):
            self.beat()

    def beat(self) -> None:
        try:
            if not beat_process(self._engine, self.worker_id, self.campaign_id):
                register_process(self._engine, self.worker_id)  # taken for dead: alive again
        except Exception:  # a missed beat is not fatal; the next one retries
            return

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        with contextlib.suppress(Exception):  # a row left behind goes stale
            unregister_process(self._engine, self.worker_id)


@dataclass
class Worker:
    """The worker's loop; `run()` returns when `stop` is set (or, with `once`, when
    nothing more is due)."""

    engine: Engine
    send_one: SendOne
    stop: threading.Event
    once: bool = False
    notify: Notify = _quiet
    window: SendWindow | None = None  # the send window the sends keep (for rescheduling)
    clock: Callable[[], datetime] | None = None  # China time; None: the store's clock
    poll: float = POLL_SECONDS
    stale_after: float = STALE_AFTER_SECONDS
    heartbeat: float = HEARTBEAT_SECONDS
    idle: dict[int, int] = field(default_factory=dict, init=False)  # sends that sent nothing

    def run(self) -> WorkerReport:
        beat = _started_beat(self.engine, self.heartbeat)
        report = WorkerReport(beat.worker_id, this_host(), os.getpid())
        self._say(f"worker {beat.worker_id[:8]} started on {report.host} (pid {report.pid})")
        try:
            while not self.stop.is_set():
                picked = self._next()
                if picked is None:
                    if self.once:
                        break
                    self.stop.wait(self.poll)
                    continue
                campaign_id, before = picked
                beat.campaign_id = campaign_id
                beat.beat()
                try:
                    self._send(campaign_id, before, report)
                except StoreError as exc:  # the store failed around the send: try again later
                    self._store_failed(exc)
                finally:
                    beat.campaign_id = None
        finally:
            beat.close()
        report.stopped = self.stop.is_set()
        why = "asked to stop" if report.stopped else "nothing more is due"
        self._say(f"worker {beat.worker_id[:8]} stopped: {why}")
        return report

    # -- the queue

    def _next(self) -> tuple[int, str] | None:
        """Tidy the queue, then the campaign to send now and its state before the pick
        (None: nothing is due, or the store failed and a long-running worker tries again
        later)."""
        try:
            return self._look()
        except StoreError as exc:
            self._store_failed(exc)
            return None

    def _store_failed(self, exc: StoreError) -> None:
        """`once`: the error ends the worker (exit 3); else it waits and tries again."""
        if self.once:
            raise exc
        self._say(f"{exc}; trying again in {STORE_RETRY_SECONDS:.0f} s")
        self.stop.wait(STORE_RETRY_SECONDS)

    @store_failures_raise("while the worker looked for due campaigns")
    def _look(self) -> tuple[int, str] | None:
        for campaign_id in queue.sweep(self.engine, stale_after=self.stale_after):
            self._changed(campaign_id, CampaignState.SENDING, CampaignState.FINISHED)
        now = self.clock() if self.clock is not None else None
        picked = queue.pick_due(self.engine, now)
        if picked is None:
            return None
        if self.idle.get(picked[0], 0) >= 2:  # it sent nothing twice: no busy loop on it
            if self.once:
                return None
            self.stop.wait(self.poll)
        return picked

    # -- one send

    @store_failures_raise("while the worker sent a campaign")
    def _send(self, campaign_id: int, before: str, report: WorkerReport) -> None:
        self._picked(campaign_id, before)
        try:
            sent = self.send_one(campaign_id)
        except StoreError:
            raise
        except CampaignError as exc:  # the gateway could not be had: a person decides
            self._stopped(campaign_id, str(exc))
            report.exit_code = max(report.exit_code, exc.exit_code, key=_rank)
            return
        report.add(sent)
        self.idle[campaign_id] = 0 if sent.requests_sent else self.idle.get(campaign_id, 0) + 1
        self._after(sent)

    def _after(self, sent: SendReport) -> None:
        """What becomes of the campaign after this worker's send of it (see the module)."""
        cid, cause, reason = sent.campaign_id, sent.stop_cause, sent.stop_reason
        if cause is StopCause.WINDOW and sent.state == CampaignState.SENDING:
            self._reschedule(cid, reason or "outside the send window")
        elif cause is StopCause.INTERRUPTED and sent.state == CampaignState.SENDING:
            self._say(
                f"campaign {self._label(cid)}: left `sending` for the other workers "
                f"({sent.requests_sent} request(s) sent by this one)"
            )
        elif sent.state != CampaignState.SENDING:
            self._changed(cid, CampaignState.SENDING, sent.state, reason)
        else:
            self._say(
                f"campaign {self._label(cid)}: nothing more to claim here "
                f"({sent.requests_sent} request(s) sent by this worker); others finish it"
            )

    def _reschedule(self, campaign_id: int, reason: str) -> None:
        now = self.clock() if self.clock is not None else china_now()
        if self.window is not None:
            due = next_opening(self.window, now)
        else:
            due = now + GATEWAY_WINDOW_RETRY
        try:  # straight from `sending` (compare-and-set): no moment of `stopped`
            queue.schedule(self.engine, campaign_id, due, from_states=(CampaignState.SENDING,))
        except CampaignError as exc:  # paused, cancelled or moved by another worker meanwhile
            self._say(f"campaign {self._label(campaign_id)}: not rescheduled: {exc}")
            return
        self._changed(
            campaign_id,
            CampaignState.SENDING,
            CampaignState.SCHEDULED,
            f"{reason}; due {due:%Y-%m-%d %H:%M} (China time)",
        )

    def _stopped(self, campaign_id: int, reason: str) -> None:
        """`stopped` with the reason, only from `sending`: a pause, a cancel or another
        worker's move committed meanwhile is theirs (compare-and-set)."""
        with contextlib.suppress(CampaignError):
            only = (CampaignState.SENDING,)
            if not set_state(
                self.engine, campaign_id, CampaignState.STOPPED, reason=reason, only_from=only
            ):
                return
        self._changed(campaign_id, CampaignState.SENDING, CampaignState.STOPPED, reason)

    # -- lines for people

    def _picked(self, campaign_id: int, before: str) -> None:
        """The line of a campaign this worker starts on: "queued -> sending" or "scheduled
        -> sending" (this worker started it), or "sending (joined N other worker(s))"."""
        if before != CampaignState.SENDING:
            self._changed(campaign_id, before, CampaignState.SENDING)
            return
        try:
            others = len(live_workers(self.engine, campaign_id, stale_after=self.stale_after))
        except Exception:  # the line matters less than the send
            others = 0
        how = f"joined {others} other worker(s)" if others else "no other worker at it"
        self._say(f"campaign {self._label(campaign_id)}: sending ({how})")

    def _changed(
        self, campaign_id: int, before: str | None, after: str, reason: str | None = None
    ) -> None:
        move = f"{before} -> {after}" if before else after
        self._say(
            f"campaign {self._label(campaign_id)}: {move}" + (f": {reason}" if reason else "")
        )

    def _label(self, campaign_id: int) -> str:
        try:
            return f"{campaign_id} ({get_campaign(self.engine, campaign_id).name})"
        except Exception:  # the line matters more than the name
            return str(campaign_id)

    def _say(self, line: str) -> None:
        with contextlib.suppress(Exception):
            self.notify(f"{china_text()} {line}")


def _rank(code: ExitCode) -> int:
    """How bad an exit code is (as `campaign run` ranks its jobs')."""
    order = [ExitCode.OK, ExitCode.PARTIAL, ExitCode.GATEWAY_STOP, ExitCode.BAD_INPUT]
    return order.index(code) if code in order else len(order)
