"""The loop that composes the parts: claims, answers, retries and at-most-once bookkeeping.

One thread (the caller's) does all store work and scheduling; a thread pool only does
HTTP. For every request: claim (committed) -> POST -> record the result (committed, in
groups). A batch is claimed only when a pool slot and a rate token are free, so a crash
leaves at most `concurrency` batches `sending` (they become `unknown` at the next start).
An ambiguous answer is `unknown` and never resent by itself.

Each turn asks the parts for their decision: the interruption (stop requested?), the hold
(back-off, the gateway's 110), the window gate, the rate limiter, the budget.

Every claim also reads the campaign's state (in its transaction) and takes its tokens from
the account's shared pace (`pacing.pace_for`): a campaign no longer `sending` (paused,
cancelled, or stopped by another process) ends the run after the requests in flight, and
an empty shared bucket makes it wait for the next token. While it waits for anything else,
the state is read once every `wait_step` too: a pause takes effect within about a second.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from sqlalchemy import Engine

from campaign.config import Settings
from campaign.errors import StoreError
from campaign.gateway.protocol import (
    Accepted,
    Action,
    Ambiguous,
    NotSent,
    Refused,
    SubmitResult,
)
from campaign.outcomes import CampaignState, StopCause
from campaign.redact import Redactor
from campaign.send.budget import SendBudget
from campaign.send.interrupt import Interruption
from campaign.send.pacing import RateLimiter, initial_burst, pace_for
from campaign.send.policy import (
    DAILY_LIMIT,
    STORE_ATTEMPTS,
    ProgressEvent,
    SendClient,
    SendPolicy,
    Stop,
)
from campaign.send.window import WindowGate
from campaign.store.batches import (
    BatchResult,
    ClaimedBatch,
    ClaimRound,
    batch_figures,
    settle_and_claim,
)
from campaign.store.engine import StoreFailure, first_line

#: What the loop does when a claim finds the campaign in a state other than `sending`.
HALT_CAUSES: dict[str, StopCause] = {
    CampaignState.PAUSED: StopCause.PAUSED,
    CampaignState.CANCELLED: StopCause.CANCELLED,
}


@dataclass(frozen=True)
class LoopOutcome:
    stop: Stop | None  # None: nothing stopped it (or only a stop request)
    sent: int  # requests that left in this run
    looped: bool = True  # False: the checks before the loop ended the run


class SendLoop:
    def __init__(
        self,
        engine: Engine,
        campaign_id: int,
        client: SendClient,
        settings: Settings,
        policy: SendPolicy,
        emit: Callable[[ProgressEvent], None],
        interruption: Interruption,
        *,
        no_wait: bool,
        budget: SendBudget,
    ) -> None:
        self.engine, self.campaign_id, self.client = engine, campaign_id, client
        self.redact = Redactor(settings.secrets)
        self.policy, self.emit, self.interruption = policy, emit, interruption
        self.no_wait, self.budget = no_wait, budget
        self.now = policy.monotonic
        self.gate = WindowGate(settings.compliance.send_window, policy.clock, no_wait=no_wait)
        self.configured_rate = settings.gateway.rate
        burst = initial_burst(self.configured_rate, policy.concurrency)
        self.limiter = RateLimiter(self.configured_rate, burst, clock=self.now)
        self.pace = pace_for(settings) if policy.shared_pace else None
        self.paced_until = 0.0  # monotonic: the shared pace has no token before
        # after a claim the shared pace cut short, wait until half its bucket (and half the
        # slots it lets a claim take early) is back: each claim then takes several tokens
        # (one transaction each), and the slots still ahead cover the time between claims
        self.pace_gap = (
            max(self.pace.burst / (2 * self.pace.rate), self.pace.ahead / 2) if self.pace else 0.0
        )
        self.state_read = self.now()  # monotonic: when a claim last read the state
        self.in_flight: dict[Future[SubmitResult], ClaimedBatch] = {}
        self.stop: Stop | None = None  # the first decision to stop wins
        self.sent = 0
        self.busy = 0  # RETRY_LATER episodes in a row
        self.busy_since: float | None = None  # monotonic: first refusal of the streak
        self.unreachable = 0  # NotSent in a row
        self.hold_until = 0.0  # monotonic: no claims before (back-off, 110)
        self.episode = 0.0  # monotonic start of the current back-off episode
        self.sent_at: dict[str, float] = {}  # batch_id -> monotonic time it was submitted
        self.accepted_since_cut = 0
        self.recent: deque[float] = deque()
        self.last_progress = 0.0
        self.store_failures = 0  # settle_and_claim failures in a row
        self.released: list[BatchResult] = []  # answers to write again, batches over budget
        self.started = self.now()
        figures = batch_figures(engine, campaign_id)
        self.total = sum(f["batches"] for f in figures.values())
        self.recipients_total = sum(f["recipients"] for f in figures.values())
        self.done = sum(figures[s]["batches"] for s in ("accepted", "rejected", "unknown"))
        self.recipients_sent = figures["accepted"]["recipients"]

    # -- the loop

    def run(self, worker_id: str) -> LoopOutcome:
        self.worker_id = worker_id
        with ThreadPoolExecutor(self.policy.concurrency, thread_name_prefix="send") as pool:
            self.pool = pool
            while self._step():
                pass
        self._progress(force=True)
        return LoopOutcome(self.stop, self.sent)

    def _stop(self, cause: StopCause, reason: str) -> None:
        if self.stop is None:
            self.stop = Stop(cause, reason)

    def _halting(self) -> bool:
        return self.stop is not None or self.interruption.requested

    def _step(self) -> bool:
        """One turn: take answers, record them and claim more in one transaction, submit.

        False when the run is over (stopping and nothing in flight, or nothing left).
        """
        results = self._collect()
        delay = self.policy.wait_step if self._halting() else self._delay()
        halting = self._halting()  # the window may have stopped it
        free = self.policy.concurrency - len(self.in_flight)
        limit = min(free, self.limiter.available()) if not halting and delay <= 0 else 0
        limit = self._within_budget(limit)
        look = results or limit > 0 or (not halting and self._state_unread())
        claimed = self._settle_and_claim(results, limit) if look else []
        paced = self.paced_until > self.now()
        if results:
            self._progress()
        for batch, delay in claimed:
            if not self.budget.spend(batch.size):  # release it untouched
                self.released.append(BatchResult(batch.batch_id, "pending", detail=DAILY_LIMIT))
                self._stop(StopCause.DAILY_LIMIT, DAILY_LIMIT)
                continue
            self.limiter.take()
            self._note_sent()
            future = self.pool.submit(self._send_at, time.monotonic() + delay, batch)
            self.in_flight[future] = batch
            self.sent_at[batch.batch_id] = self.now() + delay
            self.sent += 1
        if claimed:
            return True
        if self.released and self.store_failures:  # answers not written yet: try again
            self.interruption.wait(self.in_flight, self.policy.wait_step)
            return True
        if not self.in_flight and (self._halting() or (limit > 0 and not paced)):
            return False  # stopping with nothing in flight, or nothing left to claim
        if paced:
            delay = self.paced_until - self.now()
        wait_for = delay if 0 < delay < self.policy.wait_step else self.policy.wait_step
        self.interruption.wait(self.in_flight, wait_for)
        return True

    def _within_budget(self, limit: int) -> int:
        if limit > 0 and self.budget.exhausted:
            self._stop(StopCause.DAILY_LIMIT, DAILY_LIMIT)
            return 0
        return self.budget.limit(limit)

    def _send_at(self, deadline: float, batch: ClaimedBatch) -> SubmitResult:
        """The request of `batch`, sent once its slot of the shared pace (a time.monotonic
        deadline, at most Pace.ahead away) has come; in a thread of the pool."""
        wait = deadline - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        return self.client.send_batch(batch.mobiles, batch.text)

    def _settle_and_claim(
        self, results: list[BatchResult], limit: int
    ) -> list[tuple[ClaimedBatch, float]]:
        """Record the answers and claim more; when the store fails, keep the answers to
        write them again, claim nothing more and stop the run once the requests in flight
        are answered (their answers are kept too). Raise StoreError when it keeps failing."""
        try:
            claim_round = settle_and_claim(
                self.engine,
                self.campaign_id,
                self.worker_id,
                results,
                0 if self.store_failures else limit,
                max_mobiles=self.budget.remaining,  # never claim what the budget cannot send
                pace=self.pace,
            )
        except StoreFailure as exc:
            self.store_failures += 1
            self.released = results + self.released
            reason = f"the store failed: {first_line(exc)}"
            if self.store_failures > STORE_ATTEMPTS:
                raise StoreError(
                    f"{reason} (the answers of {len(self.released)} request(s) "
                    "could not be written; they will count as unknown)"
                ) from None
            self._stop(StopCause.STORE, reason)
            self.emit(ProgressEvent("warning", f"{reason}; trying again"))
            return []
        self.store_failures = 0
        return self._claimed(claim_round, limit)

    def _claimed(self, claim_round: ClaimRound, limit: int) -> list[tuple[ClaimedBatch, float]]:
        """The batches of a claim; a state other than `sending` stops the run (whoever
        changed it wrote the state and its reason), an empty shared pace makes it wait."""
        self.state_read = self.now()
        state = claim_round.state
        if state != CampaignState.SENDING:
            cause = HALT_CAUSES.get(state, StopCause.HALTED)
            self._stop(cause, f"campaign {self.campaign_id} is {state or 'gone from the store'}")
        if claim_round.wait > 0:
            self.paced_until = max(self.paced_until, self.now() + claim_round.wait)
        elif 0 < len(claim_round.batches) < limit and self.pace_gap > 0:
            self.paced_until = max(self.paced_until, self.now() + self.pace_gap)
        return [(b, claim_round.delay(i)) for i, b in enumerate(claim_round.batches)]

    def _state_unread(self) -> bool:
        """True when no claim has read the campaign's state for a wait step."""
        return self.now() - self.state_read >= self.policy.wait_step

    def _delay(self) -> float:
        """Seconds before the next claim may happen (0: now); a closed window with
        no_wait stops the run."""
        now = self.now()
        if self.hold_until > now:
            return self.hold_until - now
        if self.paced_until > now:
            return self.paced_until - now
        gate = self.gate.check()
        if gate.stop_reason is not None:
            self._stop(StopCause.WINDOW, gate.stop_reason)
            return self.policy.wait_step
        if not gate.is_open:
            if gate.announce:
                self.emit(ProgressEvent("info", f"waiting: {gate.message}"))
            return self.policy.wait_step
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
            if result.state == "pending":
                self.budget.refund(batch.size)  # not sent after all: back in the budget
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
            self._stop(StopCause.GATEWAY, result.reason)
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
        self.episode = self.now()
        return True

    def _busy(self, reason: str, new_episode: bool) -> None:
        if not new_episode:
            return
        self.busy += 1
        now = self.now()
        self.busy_since = self.busy_since if self.busy_since is not None else now
        if now - self.busy_since > self.policy.max_busy_seconds:
            self._stop(
                StopCause.GATEWAY,
                f"the gateway kept refusing for {now - self.busy_since:.0f} s "
                f"({self.busy} times in a row; last: {reason})",
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
            self._stop(StopCause.GATEWAY, f"gateway unreachable: {reason}")
            return
        self._back_off(self.unreachable, self.policy.retry_base, self.policy.retry_cap)
        self.emit(ProgressEvent("warning", f"{reason}; trying again"))

    def _wait_window(self, reason: str) -> None:
        if self.no_wait:
            self._stop(StopCause.WINDOW, f"{reason}; resume later")
            return
        self.hold_until = max(self.hold_until, self.now() + self.policy.window_retry)
        self.emit(
            ProgressEvent(
                "info", f"{reason}: waiting {self.policy.window_retry:.0f} s before trying again"
            )
        )

    def _back_off(self, attempt: int, base: float, cap: float) -> None:
        delay = min(cap, base * 2 ** (attempt - 1))
        delay *= random.uniform(0.5, 1.5)
        self.hold_until = max(self.hold_until, self.now() + delay)

    def _note_sent(self) -> None:
        now = self.now()
        self.recent.append(now)
        while self.recent[0] < now - 2.0:
            self.recent.popleft()

    def _recent_rate(self) -> float:
        """Requests per second submitted over the last (up to) 2 seconds."""
        now = self.now()
        while self.recent and self.recent[0] < now - 2.0:
            self.recent.popleft()
        if len(self.recent) < 2:
            return self.policy.min_rate
        span = max(now - self.recent[0], 0.05)
        return max(self.policy.min_rate, len(self.recent) / span)

    # -- progress

    def _progress(self, force: bool = False) -> None:
        now = self.now()
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
