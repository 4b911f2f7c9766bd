"""Sending a campaign: `send_campaign(...)` and its `SendReport`.

The loop itself is in parts, one job each, in `campaign.send` (pacing, the daily budget,
the send-window gate, the interruption path, and the loop that composes them); this module
does the checks before the loop (orphans, window, balance), runs it under a heartbeat and
records what became of the campaign.

What the gateway says decides what happens (protocol.Action, never bare codes):

    Accepted      -> accepted (msgid)
    RETRY_LATER   -> released to pending, back off with jitter, rate cut (recovers slowly)
    NotSent       -> released to pending, back off; too many in a row: stop (unreachable)
    Ambiguous     -> unknown, never resent by itself
    STOP_RUN      -> released, the run stops (in-flight requests finish), resumable
    WAIT_WINDOW   -> released, wait (or stop with no_wait)
    REFUSE_BATCH / UNKNOWN_CODE -> rejected with the code and its meaning

Someone else may end a run: a claim that finds the campaign no longer `sending` stops it
(PAUSED, CANCELLED, HALTED: see send/loop.py), and the state and reason that process wrote
stay as they are (exit 4). A `campaign worker` sends with `worker=True`: it found the
campaign `sending` already (the state is not set here), and a stop that is nobody's
decision (the worker was asked to stop, the send window closed) leaves the campaign to the
workers instead of `stopped`.

Library code: never prints; progress and log lines go to `on_progress(ProgressEvent)`.
Every text that leaves here (batch details, the stop reason, progress and log lines) goes
through a `Redactor` of the settings' secrets first: a gateway answer may echo the password.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine

from campaign.config import Settings
from campaign.errors import ExitCode
from campaign.gateway.protocol import (
    Action,
    Balances,
    Refused,
    is_no_such_interface,
)
from campaign.outcomes import CampaignState, StopCause
from campaign.redact import Redactor
from campaign.send.budget import SendBudget
from campaign.send.interrupt import Interruption
from campaign.send.loop import HALT_CAUSES, LoopOutcome, SendLoop
from campaign.send.pacing import RateLimiter
from campaign.send.policy import (
    DAILY_LIMIT,
    DEFAULT_CONCURRENCY,
    INTERRUPTED,
    STORE_ATTEMPTS,
    ProgressEvent,
    SendClient,
    SendPolicy,
    Stop,
)
from campaign.send.window import WindowGate, outside_window_message
from campaign.store.batches import batch_figures, reset_unknown, segments_needed
from campaign.store.campaigns import get_campaign, set_state
from campaign.store.engine import store_failures_raise
from campaign.store.workers import Heartbeat, live_worker_ids, recover_orphans

#: Stops decided by another process: the state it wrote is kept, never overwritten.
STOPPED_BY_OTHERS = frozenset({StopCause.PAUSED, StopCause.CANCELLED, StopCause.HALTED})
#: Stops after which a worker's campaign stays with the workers (it is not `stopped`).
WORKER_KEEPS = frozenset({StopCause.INTERRUPTED, StopCause.WINDOW})

__all__ = [
    "DAILY_LIMIT",
    "DEFAULT_CONCURRENCY",
    "INTERRUPTED",
    "STORE_ATTEMPTS",
    "ProgressEvent",
    "RateLimiter",
    "SendClient",
    "SendPolicy",
    "SendReport",
    "outside_window_message",
    "send_campaign",
]


@dataclass
class SendReport:
    campaign_id: int
    state: str
    stop_reason: str | None
    batches: dict[str, dict[str, int]]  # state -> batches / recipients / segments
    requests_sent: int = 0  # requests that left in this run
    elapsed: float = 0.0
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    stop_cause: StopCause | None = None  # why it stopped (None: it did not)

    def count(self, state: str) -> int:
        return self.batches.get(state, {}).get("batches", 0)

    @property
    def requests(self) -> int:
        return sum(f["batches"] for f in self.batches.values())

    @property
    def recipients(self) -> int:
        return sum(f["recipients"] for f in self.batches.values())

    @property
    def segments(self) -> int:
        return sum(f["segments"] for f in self.batches.values())

    @property
    def rate(self) -> float:
        return self.requests_sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.stop_cause in STOPPED_BY_OTHERS:
            return ExitCode.GATEWAY_STOP  # paused, cancelled or stopped elsewhere: resumable
        if self.state == CampaignState.STOPPED:
            return ExitCode.GATEWAY_STOP
        if self.count("unknown") or self.count("rejected"):
            return ExitCode.PARTIAL
        return ExitCode.OK

    def summary(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "state": self.state,
            "stop_reason": self.stop_reason,
            "recipients": self.recipients,
            "requests": self.requests,
            "segments": self.segments,
            "batches": {s: f["batches"] for s, f in self.batches.items()},
            "unknown": self.count("unknown"),
            "rejected": self.count("rejected"),
            "requests_sent": self.requests_sent,
        }


@store_failures_raise("during the send", "requests in flight count as unknown; resume goes on")
def send_campaign(
    engine: Engine,
    campaign_id: int,
    client: SendClient,
    settings: Settings,
    *,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    stop: threading.Event | None = None,
    no_wait: bool = False,
    resend_unknown: bool = False,
    force: bool = False,
    policy: SendPolicy | None = None,
    max_recipients: int | None = None,
    worker: bool = False,
) -> SendReport:
    """Send what is pending of a campaign; return what became of it (never raises for
    gateway behaviour: a stop is `state == "stopped"` with `stop_reason`).

    `max_recipients` caps the recipients whose requests leave in this run (the daily
    budget of `campaign run`); the rest stays pending with DAILY_LIMIT as the reason.
    `worker`: a `campaign worker` sends it (see the module docstring)."""
    policy = policy or SendPolicy()
    redact = Redactor(settings.secrets)
    emit = _redacting(_never_raising(on_progress), redact)
    interruption = Interruption(stop, sleep=policy.sleep)
    started = policy.monotonic()
    record = get_campaign(engine, str(campaign_id))
    warnings: list[str] = []

    def log(message: str, kind: str = "info") -> None:
        if kind == "warning":
            warnings.append(redact(message))
        emit(ProgressEvent(kind, message))

    _prepare(engine, record.id, policy, resend_unknown, log)
    outcome = _send_pending(
        engine,
        record.id,
        client,
        settings,
        policy,
        emit,
        interruption,
        no_wait=no_wait,
        force=force,
        max_recipients=max_recipients,
        worker=worker,
        begun=record.state,
        log=log,
    )
    ended = outcome.stop
    if ended is None and interruption.requested:
        ended = Stop(StopCause.INTERRUPTED, INTERRUPTED)
    figures = batch_figures(engine, record.id)
    if ended is None and max_recipients is not None and figures["pending"]["batches"]:
        ended = Stop(StopCause.DAILY_LIMIT, DAILY_LIMIT)  # the next batch did not fit
    # a run that set it sending (or a worker's) moves it from sending; else from where it began
    expected = CampaignState.SENDING if outcome.looped or worker else record.state
    written, lost = False, False
    if not _left_as_it_is(ended, figures, worker=worker):
        state: str = _final_state(figures, ended)
        if state == CampaignState.FINISHED:  # a stop when nothing was left changes nothing
            ended = None
        reason = redact(ended.reason) if ended else None
        if state != CampaignState.SENDING:  # never over a pause or cancel committed meanwhile
            written = set_state(engine, record.id, state, reason=reason, only_from=_from(expected))
            lost = not written
    if not written:  # left as it is, others still at it, or another process moved it
        state, reason, ended = _as_stored(engine, record.id, ended, redact, lost=lost)
    interruption.reraise()  # recorded and stopped: now a caught Ctrl-C goes on
    return SendReport(
        record.id,
        state,
        reason,
        figures,
        requests_sent=outcome.sent,
        elapsed=policy.monotonic() - started,
        interrupted=ended is not None and ended.cause is StopCause.INTERRUPTED,
        warnings=warnings,
        stop_cause=ended.cause if ended else None,
    )


def _left_as_it_is(ended: Stop | None, figures: dict[str, dict[str, int]], *, worker: bool) -> bool:
    """Whether the run leaves the campaign's state as it is: another process decided it
    (paused, cancelled, stopped elsewhere), or a worker's campaign with batches left
    stays with the workers."""
    if ended is None:
        return False
    if ended.cause in STOPPED_BY_OTHERS:
        return True
    return worker and ended.cause in WORKER_KEEPS and bool(figures["pending"]["batches"])


def _as_stored(
    engine: Engine, campaign_id: int, ended: Stop | None, redact: Redactor, *, lost: bool
) -> tuple[str, str | None, Stop | None]:
    """The campaign's state as the store has it now (this run wrote none), the reason to
    report (the one the pausing or cancelling process stored, else this run's) and the stop:
    a pause or a cancel committed after the run's last claim is theirs. `lost`: this run's
    final write was refused (compare-and-set), another process moved it first."""
    record = get_campaign(engine, str(campaign_id))
    if ended is None or ended.cause not in STOPPED_BY_OTHERS:
        cause = HALT_CAUSES.get(record.state)
        if cause is None and lost and record.state != CampaignState.FINISHED:
            cause = StopCause.HALTED  # e.g. stopped by another process: its reason stands
        if cause is not None:
            ended = Stop(cause, f"campaign {campaign_id} is {record.state}")
    by_others = ended is not None and ended.cause in STOPPED_BY_OTHERS
    reason = record.stop_reason if by_others and record.stop_reason else None
    if reason is None and ended is not None:
        reason = ended.reason
    return record.state, redact(reason) if reason else None, ended


def _never_raising(
    on_progress: Callable[[ProgressEvent], None] | None,
) -> Callable[[ProgressEvent], None]:
    """The progress callback, made harmless: it runs between a committed claim and the
    request, and between an answer and its record, so a failing display (stderr closed: a
    BrokenPipeError) must not end the run and leave those batches `sending`."""

    def emit(event: ProgressEvent) -> None:
        if on_progress is None:
            return
        with contextlib.suppress(Exception):
            on_progress(event)

    return emit


def _redacting(
    emit: Callable[[ProgressEvent], None], redact: Redactor
) -> Callable[[ProgressEvent], None]:
    """The progress callback, fed only texts without secrets."""

    def redacted(event: ProgressEvent) -> None:
        emit(replace(event, message=redact(event.message)) if event.message else event)

    return redacted


def _prepare(
    engine: Engine,
    campaign_id: int,
    policy: SendPolicy,
    resend_unknown: bool,
    log: Callable[[str, str], None],
) -> None:
    """Orphans of dead runs become unknown; with resend_unknown, unknown becomes pending."""
    orphans = recover_orphans(engine, campaign_id, stale_after=policy.stale_after)
    if orphans:
        log(
            f"{orphans} request(s) were in flight when an earlier run stopped: marked unknown "
            "(they may or may not have been sent; `resume --resend-unknown` sends them again)",
            "warning",
        )
    if resend_unknown:
        live = live_worker_ids(engine, campaign_id, stale_after=policy.stale_after)
        again = reset_unknown(engine, campaign_id, live=live)
        log(f"{again} unknown request(s) will be sent again", "info")


def _send_pending(
    engine: Engine,
    campaign_id: int,
    client: SendClient,
    settings: Settings,
    policy: SendPolicy,
    emit: Callable[[ProgressEvent], None],
    interruption: Interruption,
    *,
    no_wait: bool,
    force: bool,
    max_recipients: int | None,
    worker: bool,
    begun: str,
    log: Callable[[str, str], None],
) -> LoopOutcome:
    """The checks before the loop (something pending, window, balance), then the loop
    under a heartbeat. A worker's campaign is `sending` already (its first claim stops the
    run if it no longer is); any other is set `sending` here, from the state it was in when
    the run `begun`, or `sending` (another run of it started first): a pause or a cancel
    committed since then stops the run instead."""
    need = segments_needed(engine, campaign_id)
    if not (need or batch_figures(engine, campaign_id)["pending"]["batches"]):
        log("nothing is pending: no request to send", "info")
        return LoopOutcome(None, 0, looped=False)
    window = settings.compliance.send_window
    closed = WindowGate(window, policy.clock, no_wait=True).check().stop_reason if no_wait else None
    if closed is not None:
        return LoopOutcome(Stop(StopCause.WINDOW, closed), 0, looped=False)
    too_low = _check_balance(client, settings, need, force, log)
    if too_low is not None:
        return LoopOutcome(too_low, 0, looped=False)
    if not worker and not set_state(
        engine, campaign_id, CampaignState.SENDING, only_from=(*_from(begun), CampaignState.SENDING)
    ):
        state = get_campaign(engine, str(campaign_id)).state
        cause = HALT_CAUSES.get(state, StopCause.HALTED)
        return LoopOutcome(Stop(cause, f"campaign {campaign_id} is {state}"), 0, looped=False)
    loop = SendLoop(
        engine,
        campaign_id,
        client,
        settings,
        policy,
        emit,
        interruption,
        no_wait=no_wait,
        budget=SendBudget(max_recipients),
    )
    with Heartbeat(engine, campaign_id, interval=policy.heartbeat) as beat:
        return loop.run(beat.worker_id)


def _from(state: str) -> tuple[str, ...]:
    """The states a write of the run may move the campaign from: the one it expects, never
    `cancelled` (a cancelled campaign is never sent again)."""
    return () if state == CampaignState.CANCELLED else (state,)


def _final_state(figures: dict[str, dict[str, int]], stop: Stop | None) -> CampaignState:
    if figures["pending"]["batches"] and stop is not None:
        return CampaignState.STOPPED
    if figures["pending"]["batches"] or figures["sending"]["batches"]:
        return CampaignState.SENDING  # other workers are still at it
    return CampaignState.FINISHED


# --------------------------------------------------------------------------- checks


def _check_balance(
    client: SendClient,
    settings: Settings,
    need: int,
    force: bool,
    log: Callable[[str, str], None],
) -> Stop | None:
    """The stop when the balance is too low (unless force); warnings otherwise.

    A gateway without the balance interface (HTTP 404/405/501 there: some resellers offer
    only HttpBatchSendSM) is a warning: the first send request tells whether the URL is right.
    """
    result = client.query_balance()
    if (
        isinstance(result, Refused)
        and result.action is Action.STOP_RUN
        and not is_no_such_interface(result)
    ):
        return Stop(StopCause.GATEWAY, f"the gateway refused the balance query: {result.reason}")
    if not isinstance(result, Balances):
        reason = result.reason if hasattr(result, "reason") else str(result)
        log(f"the balance could not be read ({reason}); sending anyway", "warning")
        return None
    product = settings.gateway.product
    if not product and len(result.products) == 1:
        product = next(iter(result.products))
    if product not in result.products:
        listed = ", ".join(result.products) or "none"
        log(
            f"balance not checked: set gateway.product (products of the account: {listed})",
            "warning",
        )
        return None
    balance = result.products[product]
    if balance >= need:
        return None
    message = (
        f"the balance of product {product} is {balance} segments, but {need} billed segments "
        "are still to send"
    )
    if force:
        log(f"{message}; sending anyway (--force)", "warning")
        return None
    return Stop(StopCause.BALANCE, f"{message}; top up the account, or use --force")
