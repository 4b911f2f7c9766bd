"""The send loop: claims, pacing, retries and at-most-once bookkeeping.

One thread (the caller's) does all store work and scheduling; a thread pool only does
HTTP. For every request: claim (committed) -> POST -> record the result (committed, in
groups). A batch is claimed only when a pool slot and a rate token are free, so a crash
leaves at most `concurrency` batches `sending` (they become `unknown` at the next start).

What the gateway says decides what happens (protocol.Action, never bare codes):

    Accepted      -> accepted (msgid)
    RETRY_LATER   -> released to pending, back off with jitter, rate cut (recovers slowly)
    NotSent       -> released to pending, back off; too many in a row: stop (unreachable)
    Ambiguous     -> unknown, never resent by itself
    STOP_RUN      -> released, the run stops (in-flight requests finish), resumable
    WAIT_WINDOW   -> released, wait (or stop with no_wait)
    REFUSE_BATCH / UNKNOWN_CODE -> rejected with the code and its meaning

Library code: never prints; progress and log lines go to `on_progress(ProgressEvent)`.
Every text that leaves here (batch details, the stop reason, progress and log lines) goes
through a `Redactor` of the settings' secrets first: a gateway answer may echo the password.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from campaign.config import SendWindow, Settings
from campaign.errors import ExitCode, StoreError
from campaign.gateway.protocol import (
    Accepted,
    Action,
    Ambiguous,
    BalanceResult,
    Balances,
    NotSent,
    Refused,
    SubmitResult,
    is_no_such_interface,
)
from campaign.redact import Redactor
from campaign.store.batches import (
    BatchResult,
    ClaimedBatch,
    batch_figures,
    reset_unknown,
    segments_needed,
    settle_and_claim,
)
from campaign.store.campaigns import get_campaign, set_state
from campaign.store.engine import first_line, store_failures_raise
from campaign.store.workers import (
    HEARTBEAT_SECONDS,
    STALE_AFTER_SECONDS,
    Heartbeat,
    live_worker_ids,
    recover_orphans,
)
from campaign.timeutil import china_now

DEFAULT_CONCURRENCY = 16
INTERRUPTED = "interrupted by the user"
STORE_ATTEMPTS = 5  # store failures in a row before the run gives up (StoreError)
DAILY_LIMIT = "max_per_day reached: the rest waits for the next day's run"


class SendClient(Protocol):
    def send_batch(self, mobiles: Any, text: str) -> SubmitResult: ...
    def query_balance(self) -> BalanceResult: ...


@dataclass(frozen=True)
class SendPolicy:
    """Knobs of the loop; the defaults suit the real gateway, tests make them quick."""

    concurrency: int = DEFAULT_CONCURRENCY
    retry_base: float = 0.5  # first back-off after a failed connect (seconds)
    retry_cap: float = 20.0
    busy_base: float = 0.2  # first back-off after 103/104; doubles per episode ...
    busy_cap: float = 2.0  # ... up to this: one probe every ~2 s while the gateway refuses
    max_busy_seconds: float = 300.0  # refused (103/104) this long without an acceptance: stop
    max_unreachable: int = 4  # failed connects in a row: stop the run ("gateway unreachable")
    rate_cut: float = 0.7  # the rate after a RETRY_LATER, as a share of the current one
    rate_recover: float = 1.05  # and back up by this factor ...
    recover_every: int = 20  # ... every this many acceptances
    min_rate: float = 0.2
    wait_step: float = 1.0  # sleep step while waiting for a window (stop is honoured)
    window_retry: float = 60.0  # after 110 without a configured window: try again after this
    stale_after: float = STALE_AFTER_SECONDS
    heartbeat: float = HEARTBEAT_SECONDS
    progress_every: float = 0.25
    clock: Callable[[], datetime] = china_now


@dataclass(frozen=True)
class ProgressEvent:
    """A progress tick (`kind` "progress") or a line for the log ("info"/"warning")."""

    kind: str
    message: str = ""
    requests_done: int = 0
    requests_total: int = 0
    recipients_sent: int = 0
    recipients_total: int = 0
    rate: float = 0.0  # requests per second in this run
    eta: float | None = None  # seconds


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
        if self.state == "stopped":
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


class RateLimiter:
    """Token bucket: `rate` tokens per second (0 = unlimited), at most `burst` saved up."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = 1.0  # start without a burst
        self._last = time.monotonic()

    def _refill(self, now: float) -> None:
        if self.rate > 0:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now

    def available(self) -> int:
        if self.rate <= 0:
            return 1 << 30
        self._refill(time.monotonic())
        return int(self._tokens)

    def wait_time(self) -> float:
        """Seconds until one token is there (0 when there is one)."""
        if self.rate <= 0:
            return 0.0
        self._refill(time.monotonic())
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self) -> None:
        if self.rate > 0:
            self._tokens -= 1

    def set_rate(self, rate: float) -> None:
        self._refill(time.monotonic())
        self.rate = rate


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
) -> SendReport:
    """Send what is pending of a campaign; return what became of it (never raises for
    gateway behaviour: a stop is `state == "stopped"` with `stop_reason`).

    `max_recipients` caps the recipients whose requests leave in this run (the daily
    budget of `campaign run`); the rest stays pending with DAILY_LIMIT as the reason."""
    policy = policy or SendPolicy()
    redact = Redactor(settings.secrets)
    emit = _redacting(_never_raising(on_progress), redact)
    stop = stop or threading.Event()
    started = time.monotonic()
    record = get_campaign(engine, str(campaign_id))
    warnings: list[str] = []

    def log(message: str, kind: str = "info") -> None:
        if kind == "warning":
            warnings.append(redact(message))
        emit(ProgressEvent(kind, message))

    _prepare(engine, record.id, policy, resend_unknown, log)
    run = _Run(engine, record.id, client, settings, policy, emit, stop, no_wait)
    stop_reason, sent = run.send_pending(force, max_recipients, log)
    interrupted = False
    if stop_reason is None and stop.is_set():
        stop_reason, interrupted = INTERRUPTED, True
    figures = batch_figures(engine, record.id)
    if stop_reason is None and max_recipients is not None and figures["pending"]["batches"]:
        stop_reason = DAILY_LIMIT  # the next batch did not fit in the budget
    state = _final_state(figures, stop_reason)
    if state == "finished":  # a stop that came when nothing was left changes nothing
        stop_reason, interrupted = None, False
    stop_reason = redact(stop_reason) if stop_reason else stop_reason
    if state != "sending":
        set_state(engine, record.id, state, reason=stop_reason)
    if run.keyboard_interrupt:  # recorded and stopped: now the caller's Ctrl-C goes on
        raise KeyboardInterrupt
    return SendReport(
        record.id,
        state,
        stop_reason,
        figures,
        requests_sent=sent,
        elapsed=time.monotonic() - started,
        interrupted=interrupted,
        warnings=warnings,
    )


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


@dataclass
class _Run:
    """The checks before the loop (window, balance), then the loop under a heartbeat."""

    engine: Engine
    campaign_id: int
    client: SendClient
    settings: Settings
    policy: SendPolicy
    emit: Callable[[ProgressEvent], None]
    stop: threading.Event
    no_wait: bool
    keyboard_interrupt: bool = False

    def send_pending(
        self, force: bool, max_recipients: int | None, log: Callable[[str, str], None]
    ) -> tuple[str | None, int]:
        """(stop reason or None, requests sent)."""
        need = segments_needed(self.engine, self.campaign_id)
        if not (need or batch_figures(self.engine, self.campaign_id)["pending"]["batches"]):
            log("nothing is pending: no request to send", "info")
            return None, 0
        reason = _window_stop(self.settings.compliance.send_window, self.policy, self.no_wait)
        reason = reason or _check_balance(self.client, self.settings, need, force, log)
        if reason is not None:
            return reason, 0
        set_state(self.engine, self.campaign_id, "sending")
        loop = _SendLoop(
            self.engine,
            self.campaign_id,
            self.client,
            self.settings,
            self.policy,
            self.emit,
            self.stop,
            self.no_wait,
        )
        loop.budget = max_recipients
        with Heartbeat(self.engine, self.campaign_id, interval=self.policy.heartbeat) as beat:
            loop.run(beat.worker_id)
        self.keyboard_interrupt = loop.keyboard_interrupt
        return loop.stop_reason, loop.sent


def _final_state(figures: dict[str, dict[str, int]], stop_reason: str | None) -> str:
    if figures["pending"]["batches"] and stop_reason is not None:
        return "stopped"
    if figures["pending"]["batches"] or figures["sending"]["batches"]:
        return "sending"  # other workers are still at it
    return "finished"


# --------------------------------------------------------------------------- checks


def _window_stop(window: SendWindow | None, policy: SendPolicy, no_wait: bool) -> str | None:
    """With no_wait: the stop reason when now is outside the send window."""
    if window is None or not no_wait:
        return None
    now = policy.clock()
    if window.contains(now.time()):
        return None
    return outside_window_message(window, now) + "; resume then"


def outside_window_message(window: SendWindow, now: datetime) -> str:
    opens = _next_opening(window, now)
    wait_for = opens - now
    hours, rest = divmod(int(wait_for.total_seconds()) // 60, 60)
    return (
        f"outside the send window {window} (China time); it opens at {opens:%Y-%m-%d %H:%M} "
        f"(in {hours} h {rest} min)"
    )


def _next_opening(window: SendWindow, now: datetime) -> datetime:
    opening = now.replace(
        hour=window.start.hour, minute=window.start.minute, second=0, microsecond=0
    )
    return opening if opening > now else opening + timedelta(days=1)


def _check_balance(
    client: SendClient,
    settings: Settings,
    need: int,
    force: bool,
    log: Callable[[str, str], None],
) -> str | None:
    """The stop reason when the balance is too low (unless force); warnings otherwise.

    A gateway without the balance interface (HTTP 404/405/501 there: some resellers offer
    only HttpBatchSendSM) is a warning: the first send request tells whether the URL is right.
    """
    result = client.query_balance()
    if (
        isinstance(result, Refused)
        and result.action is Action.STOP_RUN
        and not is_no_such_interface(result)
    ):
        return f"the gateway refused the balance query: {result.reason}"
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
    return f"{message}; top up the account, or use --force"


# --------------------------------------------------------------------------- the loop


class _SendLoop:
    def __init__(
        self,
        engine: Engine,
        campaign_id: int,
        client: SendClient,
        settings: Settings,
        policy: SendPolicy,
        emit: Callable[[ProgressEvent], None],
        stop: threading.Event,
        no_wait: bool,
    ) -> None:
        self.engine, self.campaign_id, self.client = engine, campaign_id, client
        self.redact = Redactor(settings.secrets)
        self.policy, self.emit, self.stop, self.no_wait = policy, emit, stop, no_wait
        self.window = settings.compliance.send_window
        self.configured_rate = settings.gateway.rate
        burst = max(1, min(policy.concurrency, int(self.configured_rate // 10) or 1))
        self.limiter = RateLimiter(self.configured_rate, burst)
        self.in_flight: dict[Future[SubmitResult], ClaimedBatch] = {}
        self.stop_reason: str | None = None
        self.sent = 0
        self.busy = 0  # RETRY_LATER episodes in a row
        self.busy_since: float | None = None  # monotonic: first refusal of the streak
        self.unreachable = 0  # NotSent in a row
        self.hold_until = 0.0  # monotonic: no claims before (back-off, 110)
        self.episode = 0.0  # monotonic start of the current back-off episode
        self.sent_at: dict[str, float] = {}  # batch_id -> monotonic time it was submitted
        self.accepted_since_cut = 0
        self.recent: deque[float] = deque()
        self.waiting_window = False
        self.last_progress = 0.0
        self.store_failures = 0  # settle_and_claim failures in a row
        self.keyboard_interrupt = False  # Ctrl-C caught: raised again once the run is over
        self.budget: int | None = None  # recipients this run may still send
        self.released: list[BatchResult] = []  # claimed but over the budget
        self.started = time.monotonic()
        figures = batch_figures(engine, campaign_id)
        self.total = sum(f["batches"] for f in figures.values())
        self.recipients_total = sum(f["recipients"] for f in figures.values())
        self.done = sum(figures[s]["batches"] for s in ("accepted", "rejected", "unknown"))
        self.recipients_sent = figures["accepted"]["recipients"]

    # -- the loop

    def run(self, worker_id: str) -> None:
        self.worker_id = worker_id
        with ThreadPoolExecutor(self.policy.concurrency, thread_name_prefix="send") as pool:
            self.pool = pool
            while self._step():
                pass
        self._progress(force=True)

    def _step(self) -> bool:
        """One turn: take answers, record them and claim more in one transaction, submit.

        False when the run is over (stopping and nothing in flight, or nothing left).
        """
        results = self._collect()
        halting = self.stop_reason is not None or self.stop.is_set()
        delay = self.policy.wait_step if halting else self._delay()
        halting = self.stop_reason is not None or self.stop.is_set()  # the window may stop it
        free = self.policy.concurrency - len(self.in_flight)
        limit = min(free, self.limiter.available()) if not halting and delay <= 0 else 0
        limit = self._within_budget(limit)
        claimed = self._settle_and_claim(results, limit) if results or limit > 0 else []
        if results:
            self._progress()
        for batch in claimed:
            if not self._spend(batch):
                continue
            self.limiter.take()
            self._note_sent()
            future = self.pool.submit(self.client.send_batch, batch.mobiles, batch.text)
            self.in_flight[future] = batch
            self.sent_at[batch.batch_id] = time.monotonic()
            self.sent += 1
        if claimed:
            return True
        if self.released and self.store_failures:  # answers not written yet: try again
            self._wait_some(self.policy.wait_step)
            return True
        if not self.in_flight and (halting or limit > 0):
            return False  # stopping with nothing in flight, or nothing left to claim
        wait_for = delay if 0 < delay < self.policy.wait_step else self.policy.wait_step
        self._wait_some(wait_for)
        return True

    def _settle_and_claim(self, results: list[BatchResult], limit: int) -> list[ClaimedBatch]:
        """Record the answers and claim more; when the store fails, keep the answers to
        write them again, claim nothing more and stop the run once the requests in flight
        are answered (their answers are kept too). Raise StoreError when it keeps failing."""
        try:
            claimed = settle_and_claim(
                self.engine,
                self.campaign_id,
                self.worker_id,
                results,
                0 if self.store_failures else limit,
                max_mobiles=self.budget,  # never claim what the budget cannot send
            )
        except SQLAlchemyError as exc:
            self.store_failures += 1
            self.released = results + self.released
            reason = f"the store failed: {first_line(exc)}"
            if self.store_failures > STORE_ATTEMPTS:
                raise StoreError(
                    f"{reason} (the answers of {len(self.released)} request(s) "
                    "could not be written; they will count as unknown)"
                ) from None
            self.stop_reason = self.stop_reason or reason
            self.emit(ProgressEvent("warning", f"{reason}; trying again"))
            return []
        self.store_failures = 0
        return claimed

    def _within_budget(self, limit: int) -> int:
        if self.budget is None or limit <= 0:
            return limit
        if self.budget <= 0:
            self.stop_reason = self.stop_reason or DAILY_LIMIT
            return 0
        return min(limit, self.budget)

    def _spend(self, batch: ClaimedBatch) -> bool:
        """Take the batch's recipients from the budget, or release it untouched."""
        if self.budget is None:
            return True
        if batch.size > self.budget:
            self.released.append(BatchResult(batch.batch_id, "pending", detail=DAILY_LIMIT))
            self.stop_reason = self.stop_reason or DAILY_LIMIT
            return False
        self.budget -= batch.size
        return True

    def _wait_some(self, timeout: float) -> None:
        """Wait for an answer (or the timeout). Ctrl-C here, where a caller on the main
        thread (`campaign run`) spends its time, stops the run after the requests in
        flight, their answers recorded: lost answers would count as unknown."""
        try:
            if self.in_flight:
                wait(list(self.in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
            else:
                self.stop.wait(timeout)
        except KeyboardInterrupt:
            self.stop.set()
            self.keyboard_interrupt = True

    def _delay(self) -> float:
        """Seconds before the next claim may happen (0: now)."""
        now = time.monotonic()
        if self.hold_until > now:
            return self.hold_until - now
        if self.window is not None and not self.window.contains(self.policy.clock().time()):
            message = outside_window_message(self.window, self.policy.clock())
            if self.no_wait:
                self.stop_reason = message + "; resume then"
                return self.policy.wait_step
            if not self.waiting_window:
                self.waiting_window = True
                self.emit(ProgressEvent("info", f"waiting: {message}"))
            return self.policy.wait_step
        self.waiting_window = False
        return self.limiter.wait_time()

    # -- answers

    def _collect(self) -> list[BatchResult]:
        finished = [f for f in self.in_flight if f.done()]
        released, self.released = self.released, []
        for future in finished:
            batch = self.in_flight.pop(future)
            result = self._handle(batch, _result_of(future))
            if result.detail:  # stored, then shown in status and exports
                result = replace(result, detail=self.redact(result.detail))
            self.sent_at.pop(batch.batch_id, None)
            if result.state == "pending" and self.budget is not None:
                self.budget += batch.size  # not sent after all: back in the budget
            released.append(result)
        return released

    def _handle(self, batch: ClaimedBatch, result: SubmitResult) -> BatchResult:
        if isinstance(result, Accepted):
            self._accepted(batch)
            return BatchResult(batch.batch_id, "accepted", result.msgid, result.code)
        if isinstance(result, Ambiguous):
            self.done += 1
            return BatchResult(batch.batch_id, "unknown", detail=result.reason)
        if isinstance(result, NotSent):
            self._unreachable(result.reason, self._new_episode(batch))
            return BatchResult(batch.batch_id, "pending", detail=f"not sent: {result.reason}")
        return self._refused(batch, result)

    def _accepted(self, batch: ClaimedBatch) -> None:
        self.done += 1
        self.recipients_sent += batch.size
        self.busy = self.unreachable = 0
        self.busy_since = None
        self.accepted_since_cut += 1
        limited = self.limiter.rate > 0
        target = self.configured_rate if self.configured_rate > 0 else float("inf")
        if (
            limited
            and self.limiter.rate < target
            and (self.accepted_since_cut >= self.policy.recover_every)
        ):
            self.accepted_since_cut = 0
            self.limiter.set_rate(min(target, self.limiter.rate * self.policy.rate_recover))

    def _refused(self, batch: ClaimedBatch, result: Refused) -> BatchResult:
        action = result.action
        if action is Action.RETRY_LATER:
            self._busy(result.reason, self._new_episode(batch))
            return BatchResult(
                batch.batch_id,
                "pending",
                submit_code=result.code,
                detail=f"retried after {result.reason}",
            )
        if action is Action.STOP_RUN:
            self.stop_reason = self.stop_reason or result.reason
            return BatchResult(
                batch.batch_id, "pending", submit_code=result.code, detail=result.reason
            )
        if action is Action.WAIT_WINDOW:
            self._wait_window(result.reason)
            return BatchResult(
                batch.batch_id, "pending", submit_code=result.code, detail=result.reason
            )
        self.done += 1
        self.busy = 0
        detail = f"{result.info.en} ({result.info.zh})"
        return BatchResult(batch.batch_id, "rejected", submit_code=result.code, detail=detail)

    def _new_episode(self, batch: ClaimedBatch) -> bool:
        """True when this refusal starts a new back-off episode: the requests already in
        flight when one began (refused together by one storm) count once, not 16 times."""
        if self.sent_at.get(batch.batch_id, 0.0) < self.episode:
            return False
        self.episode = time.monotonic()
        return True

    def _busy(self, reason: str, new_episode: bool) -> None:
        if not new_episode:
            return
        self.busy += 1
        now = time.monotonic()
        self.busy_since = self.busy_since if self.busy_since is not None else now
        if now - self.busy_since > self.policy.max_busy_seconds:
            self.stop_reason = self.stop_reason or (
                f"the gateway kept refusing for {now - self.busy_since:.0f} s "
                f"({self.busy} times in a row; last: {reason})"
            )
            return
        self._back_off(self.busy, self.policy.busy_base, self.policy.busy_cap)
        if self.busy == 1:  # one cut per streak of refusals: the back-off paces the rest
            current = self.limiter.rate if self.limiter.rate > 0 else self._recent_rate()
            new_rate = max(self.policy.min_rate, current * self.policy.rate_cut)
            self.limiter.set_rate(new_rate)
            self.accepted_since_cut = 0
            self.emit(ProgressEvent("info", f"{reason}: backing off, rate now {new_rate:.1f}/s"))

    def _unreachable(self, reason: str, new_episode: bool) -> None:
        if not new_episode:
            return
        self.unreachable += 1
        if self.unreachable > self.policy.max_unreachable:
            self.stop_reason = self.stop_reason or f"gateway unreachable: {reason}"
            return
        self._back_off(self.unreachable, self.policy.retry_base, self.policy.retry_cap)
        self.emit(ProgressEvent("warning", f"{reason}; trying again"))

    def _wait_window(self, reason: str) -> None:
        if self.no_wait:
            self.stop_reason = self.stop_reason or f"{reason}; resume later"
            return
        self.hold_until = max(self.hold_until, time.monotonic() + self.policy.window_retry)
        self.emit(
            ProgressEvent(
                "info", f"{reason}: waiting {self.policy.window_retry:.0f} s before trying again"
            )
        )

    def _back_off(self, attempt: int, base: float, cap: float) -> None:
        delay = min(cap, base * 2 ** (attempt - 1))
        delay *= random.uniform(0.5, 1.5)
        self.hold_until = max(self.hold_until, time.monotonic() + delay)

    def _note_sent(self) -> None:
        now = time.monotonic()
        self.recent.append(now)
        while self.recent[0] < now - 2.0:
            self.recent.popleft()

    def _recent_rate(self) -> float:
        """Requests per second submitted over the last (up to) 2 seconds."""
        now = time.monotonic()
        while self.recent and self.recent[0] < now - 2.0:
            self.recent.popleft()
        if len(self.recent) < 2:
            return self.policy.min_rate
        span = max(now - self.recent[0], 0.05)
        return max(self.policy.min_rate, len(self.recent) / span)

    # -- progress

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_progress < self.policy.progress_every:
            return
        self.last_progress = now
        elapsed = now - self.started
        rate = self.sent / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        self.emit(
            ProgressEvent(
                "progress",
                requests_done=self.done,
                requests_total=self.total,
                recipients_sent=self.recipients_sent,
                recipients_total=self.recipients_total,
                rate=rate,
                eta=left / rate if rate > 0 else None,
            )
        )


def _result_of(future: Future[SubmitResult]) -> SubmitResult:
    """The client never raises; should it, the request may have left: unknown."""
    try:
        return future.result()
    except Exception as exc:
        return Ambiguous(
            f"the send failed unexpectedly ({type(exc).__name__}); it may have been sent"
        )
