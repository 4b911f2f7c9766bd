"""The facade of queued sending (the rest of the door is `workflow`): schedule a new
campaign for the workers, pause, cancel, hand a campaign back to the workers, and run one.

    send --at / --queue ─► due_time ─► workflow.prepare_send ─► schedule_new
    pause / cancel / resume --queue ─► pause_campaign / cancel_campaign / resume_queued
    worker ─► run_worker (campaign/worker.py; each send is `workflow.send`)

Like `workflow`: typed results with `to_json()`, no printing, lines for people through an
injected `notify`; InputError (exit 3) for what cannot be done, nothing changed then.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from campaign.config import Settings
from campaign.errors import ExitCode, InputError
from campaign.timeutil import CHINA, china_iso, china_now, china_text
from campaign.workflow import (
    PLAN_KEYS,
    STOPPING,
    Notify,
    PreparedSend,
    create_campaign,
    opened,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from campaign.sender import SendPolicy
    from campaign.store.campaigns import CampaignRecord
    from campaign.worker import WorkerReport

Clock = Callable[[], datetime]  # China time now (tests inject one)
AT_FORMAT = "YYYY-MM-DD HH:MM"
_AT = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})")


def _quiet(_line: str) -> None:
    return None


# --------------------------------------------------------------------------- when


def due_time(settings: Settings, at: str, *, now: datetime | None = None) -> datetime:
    """`--at` as a China time: InputError (exit 3) when it cannot be read, is in the past,
    or falls outside `[compliance] send_window` (naming the window's next opening)."""
    from campaign.send.window import next_opening

    match = _AT.fullmatch(at.strip())
    due = None
    if match:
        try:
            year, month, day, hour, minute = (int(part) for part in match.groups())
            due = datetime(year, month, day, hour, minute, tzinfo=CHINA)
        except ValueError:  # 2026-02-30, 25:00
            due = None
    if due is None:
        raise InputError(f"--at: expected {AT_FORMAT} (China time), got {at!r}")
    now = now or china_now()
    if due <= now:
        raise InputError(
            f"--at {due:%Y-%m-%d %H:%M} (China time) is in the past (now {now:%Y-%m-%d %H:%M}); "
            "to send now, leave --at out"
        )
    window = settings.compliance.send_window
    if window is not None and not window.contains(due.time()):
        opens = next_opening(window, due)
        raise InputError(
            f"--at {due:%Y-%m-%d %H:%M} is outside the send window {window} (China time): "
            f"a worker would only wait for it to open; use --at {opens:%Y-%m-%d %H:%M} or later"
        )
    return due


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class ScheduleResult:
    """A new campaign handed to the workers: `scheduled` for `due_at`, or `queued`."""

    record: CampaignRecord
    figures: dict[str, Any]

    @property
    def campaign_id(self) -> int:
        return self.record.id

    def to_json(self) -> dict[str, Any]:
        record = self.record
        return {
            "campaign_id": record.id,
            "name": record.name,
            "state": record.state,
            "due_at": china_iso(record.due_at),
            **{key: self.figures[key] for key in PLAN_KEYS},
            "sample": self.figures.get("sample"),
            "warnings": self.figures.get("warnings", []),
        }


def schedule_new(
    settings: Settings, prepared: PreparedSend, *, due_at: datetime | None
) -> ScheduleResult:
    """Store the prepared campaign (its repeat guard in the creating transaction) and hand
    it to the workers: `scheduled` for `due_at`, or `queued` (due now) without one. Nothing
    is sent by this process."""
    from campaign.store.queue import schedule

    with opened(settings) as engine:
        created = create_campaign(
            settings,
            engine,
            prepared.planned,
            name=prepared.name,
            paths=prepared.paths,
            guard=prepared.guard,
        )
        record = schedule(engine, created.campaign_id, due_at)
    return ScheduleResult(record, prepared.planned.figures())


# --------------------------------------------------------------------------- pause, cancel


@dataclass(frozen=True)
class ChangeResult:
    """A campaign's state before and after `pause`, `cancel` or `resume --queue`."""

    record: CampaignRecord
    before: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.before != self.record.state

    def to_json(self) -> dict[str, Any]:
        record = self.record
        return {
            "campaign_id": record.id,
            "name": record.name,
            "state": record.state,
            "previous_state": self.before,
            "due_at": china_iso(record.due_at),
            "stop_reason": record.stop_reason,
            **self.extra,
        }


def pause_campaign(
    settings: Settings, ref: str, *, who: str | None = None, engine: Engine | None = None
) -> ChangeResult:
    """No new batch of the campaign is claimed, by any process (requests in flight finish
    and are recorded); `paused` until resumed. A finished or cancelled campaign: InputError."""
    from campaign.store.campaigns import get_campaign
    from campaign.store.queue import pause, who_am_i

    with opened(settings, engine, create=False) as store:
        before = get_campaign(store, ref).state
        record = pause(store, ref, who or who_am_i())
    return ChangeResult(record, before)


def cancel_campaign(
    settings: Settings, ref: str, *, who: str | None = None, engine: Engine | None = None
) -> ChangeResult:
    """Every batch not sent yet becomes `cancelled` (its rows too); nothing more is sent.
    A finished or cancelled campaign: InputError, nothing changes."""
    from campaign.store.campaigns import get_campaign
    from campaign.store.queue import cancel, who_am_i

    with opened(settings, engine, create=False) as store:
        before = get_campaign(store, ref).state
        result = cancel(store, ref, who or who_am_i())
    extra = {
        "cancelled_requests": result.cancelled_batches,
        "cancelled_recipients": result.cancelled_recipients,
    }
    return ChangeResult(result.record, before, extra)


def resume_queued(settings: Settings, ref: str, *, engine: Engine | None = None) -> ChangeResult:
    """`resume --queue`: hand a paused or stopped campaign to the workers (`queued`, due
    now; one still `sending` keeps its state and the workers join it). With SPEC's keys of
    `resume`: outcomes, recipients, requests, segments."""
    from campaign.store.campaigns import campaign_totals, get_campaign
    from campaign.store.queue import resume_paused
    from campaign.store.results import outcome_counts

    with opened(settings, engine, create=False) as store:
        before = get_campaign(store, ref).state
        record = resume_paused(store, ref, queue=True)
        extra = {
            "outcomes": outcome_counts(store, record.id),
            **campaign_totals(store, record.id),
        }
    return ChangeResult(record, before, extra)


# --------------------------------------------------------------------------- worker


@dataclass(frozen=True)
class WorkerResult:
    report: WorkerReport
    keyboard: bool = False  # ended by Ctrl-C (exit 130)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.INTERRUPTED if self.keyboard else self.report.exit_code

    def to_json(self) -> dict[str, Any]:
        return {**self.report.to_json(), "exit_code": int(self.exit_code)}


def run_worker(
    settings: Settings,
    *,
    once: bool = False,
    stop: threading.Event | None = None,
    given_gateway: str | None = None,
    notify: Notify | None = None,
    policy: SendPolicy | None = None,
    clock: Clock | None = None,
    poll: float | None = None,
) -> WorkerResult:
    """Run a `campaign worker` until `stop` is set (SIGTERM; Ctrl-C here sets it too), or
    with `once` until nothing more is due. Each campaign goes through the gateway it was
    sent through unless `given_gateway` or the config names one (as `resume`).

    The store is not upgraded (older workers may still be running on it): a store of an
    older schema is a StoreError (exit 3) saying how to upgrade it."""
    from campaign.gateway.runtime import require_account
    from campaign.send.interrupt import in_thread
    from campaign.store import open_store

    require_account(settings.gateway)
    stop = stop or threading.Event()
    engine = open_store(settings.store_url, create=False, upgrade=False)
    say = notify or _quiet

    def work() -> WorkerReport:
        return _work(settings, engine, once, stop, given_gateway, say, policy, clock, poll)

    try:
        report, keyboard = in_thread(
            work, stop, lambda: say(f"{china_text()} {STOPPING}"), name="campaign-worker"
        )
        return WorkerResult(report, keyboard)
    finally:
        engine.dispose()


def _work(
    settings: Settings,
    engine: Engine,
    once: bool,
    stop: threading.Event,
    given_gateway: str | None,
    notify: Notify,
    policy: SendPolicy | None,
    clock: Clock | None,
    poll: float | None,
) -> WorkerReport:
    from campaign.send.policy import ProgressEvent
    from campaign.sender import SendReport
    from campaign.store.campaigns import get_campaign
    from campaign.worker import POLL_SECONDS, Worker
    from campaign.workflow import resume_gateway, send

    def send_one(campaign_id: int) -> SendReport:
        record = get_campaign(engine, campaign_id)
        chosen = resume_gateway(settings, given_gateway, record)

        def progress(event: ProgressEvent) -> None:
            if event.kind != "progress":
                notify(f"{china_text()} campaign {campaign_id}: {event.message}")

        return send(
            chosen, engine, campaign_id, stop=stop, no_wait=True, worker=True,
            on_progress=progress, policy=policy,
        ).report  # fmt: skip

    worker = Worker(
        engine,
        send_one,
        stop,
        once=once,
        notify=notify,
        window=settings.compliance.send_window,
        clock=clock,
        poll=POLL_SECONDS if poll is None else poll,
        **({"stale_after": policy.stale_after, "heartbeat": policy.heartbeat} if policy else {}),
    )
    return worker.run()


__all__ = [
    "AT_FORMAT",
    "ChangeResult",
    "ScheduleResult",
    "WorkerResult",
    "cancel_campaign",
    "due_time",
    "pause_campaign",
    "resume_queued",
    "run_worker",
    "schedule_new",
]
