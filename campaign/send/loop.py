"""The loop that composes the parts: claims, answers, retries and at-most-once bookkeeping.

One thread (the caller's) does all store work and scheduling; a thread pool only does
HTTP. For every request: claim (committed) -> POST -> record the result (committed, in
groups). Claims run ahead of the free slots: one transaction records the answers so far
and claims a group of batches (`SendPolicy.claim_group`), which wait in the pool's queue
while the requests before them are in flight, so a commit never leaves a slot idle and
costs a group of requests, not one. A batch is never claimed beyond `concurrency +
claim_group` batches claimed and not yet recorded, so a crash leaves at most that many
`sending` (they become `unknown` at the next start). Answers are recorded when the queue
runs low, when the pool has nothing left, or after `RECORD_AFTER` seconds. While the loop
must not send (a back-off, the gateway's 110, a closed window, a stop), the queued
requests are taken back before they leave (and released, untouched, if the run ends).
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
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine

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
from campaign.send.dispatch import Job, RequestPool
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
from campaign.store.engine import StoreFailure, autocommit, first_line
from campaign.store.statistics import refresh_statistics

#: Refusals after which no queued request leaves before the loop decides.
HOLDING_ACTIONS = frozenset({Action.STOP_RUN, Action.WAIT_WINDOW})
#: Seconds an answer waits at most before it is recorded (answers are recorded in groups).
RECORD_AFTER = 0.2
#: Recipients claimed ahead of the free slots at most: batches of many recipients are
#: claimed a few at a time (their requests are slow; a crash leaves fewer unknown).
AHEAD_RECIPIENTS = 256


class NotStarted:
    """What a pool thread returns for a queued request the loop held back: not sent."""


NOT_STARTED = NotStarted()

#: A request: its claimed batch and the time.monotonic() it may leave.
Request = tuple[ClaimedBatch, float]
#: A request queued in (or done by) the loop's pool.
RequestJob = Job[Request, SubmitResult | NotStarted]


def claim_group(wanted: int, recipients: int, requests: int) -> int:
    """Batches a claim may take ahead of the free slots: `wanted`, fewer when the
    campaign's requests carry many recipients each (AHEAD_RECIPIENTS at most)."""
    per_request = recipients / requests if requests else 1.0
    return max(0, min(wanted, int(AHEAD_RECIPIENTS // max(per_request, 1.0))))


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
        # queued or running requests: their batch and when they may leave (time.monotonic)
        self.in_flight: set[RequestJob] = set()
        self.ahead: deque[Request] = deque()  # claimed, taken back
        self.answers: list[BatchResult] = []  # to record with the next transaction
        self.answered_since = 0.0  # monotonic: when the oldest of them came
        self.exhausted = False  # the last claim found fewer pending batches than it asked
        self.closed = False  # the send window is closed
        self.wake = threading.Event()  # set by the pool's threads: the loop has work
        self.hold_queue = threading.Event()  # set: queued requests do not leave
        self.wake_lock = threading.Lock()
        self.unseen = 0  # requests done since the loop last looked
        self.wake_after = 1  # ... how many wake it
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
        self.conn: Connection | None = None  # the loop's store connection (its rounds)
        # when its rounds can be plain (no shared pace to take tokens from, no budget on the
        # mobiles: store/batches.py): a second connection, in autocommit mode, for them (one
        # statement a round on PostgreSQL, two on SQLite, no BEGIN and COMMIT)
        self.plain_rounds = (
            not (self.pace is not None and self.pace.limited) and budget.remaining is None
        )
        self.autocommit: Connection | None = None
        self.started = self.now()
        # PostgreSQL: the planner learns the campaign before the rounds' statements are
        # planned (their answers find the batches by primary key, not by a scan of all of
        # the campaign's; claim_sql._by_key)
        refresh_statistics(engine, campaign_id)
        figures = batch_figures(engine, campaign_id)
        self.total = sum(f["batches"] for f in figures.values())
        self.recipients_total = sum(f["recipients"] for f in figures.values())
        self.done = sum(figures[s]["batches"] for s in ("accepted", "rejected", "unknown"))
        self.recipients_sent = figures["accepted"]["recipients"]
        group = claim_group(policy.claim_group, self.recipients_total, self.total)
        self.capacity = policy.concurrency + group  # claimed and not recorded, at most
        self.low_water = policy.concurrency + group // 2  # claim more at or below
        self.record_every = max(1, group // 2)  # answers recorded in groups of this many

    # -- the loop

    def run(self, worker_id: str) -> LoopOutcome:
        self.worker_id = worker_id
        pool: RequestPool[Request, SubmitResult | NotStarted]
        with RequestPool(self.policy.concurrency, self._send_at, self._answered) as pool:
            self.pool = pool
            try:
                while self._step():
                    pass
            finally:
                self._take_back_queued()  # an error: nothing queued leaves after it
                self._drop_connection()
        self._progress(force=True)
        return LoopOutcome(self.stop, self.sent)

    def _stop(self, cause: StopCause, reason: str) -> None:
        if self.stop is None:
            self.stop = Stop(cause, reason)

    def _halting(self) -> bool:
        return self.stop is not None or self.interruption.requested

    def _step(self) -> bool:
        """One turn: take answers; when the queue runs low (or answers wait), record them
        and claim more in one transaction; submit what was claimed.

        False when the run is over (stopping and nothing in flight, or nothing left).
        """
        self._collect()
        delay = self.policy.wait_step if self._halting() else self._delay()
        halting = self._halting()  # the window may have stopped it
        held = halting or self._held()
        if held:
            self._take_back_queued()
        self.hold_queue.clear()  # decided: what is queued may leave
        if self.ahead and not held:
            self._submit_ahead()
        queued = len(self.in_flight) + len(self.ahead)
        room = self.capacity - queued
        low = queued <= self.low_water and not (self.exhausted and self.in_flight)
        limit = min(room, self.limiter.available()) if low and not halting and delay <= 0 else 0
        limit = self._within_budget(limit)
        if halting and self.ahead:  # claimed, never sent: back to pending untouched
            for batch, _ in self.ahead:
                self._keep(BatchResult(batch.batch_id, "pending", untouched=True))
            self.ahead.clear()
        look = limit > 0 or self._record_due() or (not halting and self._state_unread())
        claimed = self._settle_and_claim(limit) if look else []
        paced = self.paced_until > self.now()
        for batch, deadline in claimed:
            self._submit(batch, deadline)
        if claimed:
            self._arm_wake()
            return True
        if self.answers and self.store_failures:  # answers not written yet: try again
            self._wait(self.policy.wait_step)
            return True
        nothing_left = halting or (look and limit > 0 and not paced)
        if not self.in_flight and not self.answers and nothing_left:
            return False  # stopping with nothing in flight, or nothing left to claim
        if paced:
            delay = self.paced_until - self.now()
        wait_for = delay if 0 < delay < self.policy.wait_step else self.policy.wait_step
        if self.answers:
            wait_for = min(wait_for, RECORD_AFTER)
        self._arm_wake()
        self._wait(wait_for)
        return True

    def _held(self) -> bool:
        """True while no request may leave: a back-off or the gateway's 110 hold, or a
        closed window (the queued requests are taken back until it ends)."""
        return self.hold_until > self.now() or self.closed

    def _record_due(self) -> bool:
        """Answers are written when many wait, when the oldest has waited RECORD_AFTER, or
        when nothing is in flight any more."""
        if not self.answers:
            return False
        return (
            len(self.answers) >= self.record_every
            or not self.in_flight
            or self.now() - self.answered_since >= RECORD_AFTER
        )

    def _submit(self, batch: ClaimedBatch, deadline: float) -> None:
        """Queue the request of a claimed batch (it leaves once a thread is free)."""
        if not self.budget.spend(batch.size):  # release it untouched
            self._keep(BatchResult(batch.batch_id, "pending", detail=DAILY_LIMIT))
            self._stop(StopCause.DAILY_LIMIT, DAILY_LIMIT)
            return
        self._note_sent()
        self.in_flight.add(self.pool.submit((batch, deadline)))

    def _submit_ahead(self) -> None:
        """Queue again the requests taken back during a hold (lowest seq first)."""
        ahead, self.ahead = self.ahead, deque()
        for batch, deadline in ahead:
            if self._halting():
                self.ahead.append((batch, deadline))
            else:
                self._submit(batch, deadline)

    def _take_back_queued(self) -> None:
        """The queued requests that have not left go back to `ahead` (still claimed)."""
        taken = [job for job in self.in_flight if self.pool.take_back(job)]
        for job in taken:
            self.in_flight.discard(job)
            self.budget.refund(job.payload[0].size)
        back = sorted((job.payload for job in taken), key=lambda entry: entry[0].seq)
        self.ahead.extendleft(reversed(back))

    # -- waking: the pool's threads tell the loop when it has work

    def _answered(self, job: RequestJob) -> None:
        """A request is done (in a pool thread): wake the loop when enough are done for
        its next turn, or at once when the answer is not an acceptance. An answer that
        ends the run or waits for a window also holds the queue: nothing queued leaves
        before the loop has decided. (A busy gateway does not hold it: what leaves before
        the loop backs off counts in the same episode, as the requests in flight do.)"""
        with self.wake_lock:
            self.unseen += 1
            outcome = job.result
            if not isinstance(outcome, Accepted):
                if isinstance(outcome, Refused) and outcome.action in HOLDING_ACTIONS:
                    self.hold_queue.set()
                self.wake.set()
            elif self.unseen >= self.wake_after:
                self.wake.set()

    def _arm_wake(self) -> None:
        """How many answers the loop waits for: until the queue is low enough to claim
        more, or a group of answers to record, or all that is in flight."""
        in_flight = len(self.in_flight)
        if in_flight == 0:
            return
        wake_after = in_flight - self.low_water if not self.exhausted else self.record_every
        with self.wake_lock:
            self.wake_after = max(1, min(in_flight, wake_after, self.record_every))
            if self.unseen >= self.wake_after:
                self.wake.set()

    def _wait(self, timeout: float) -> None:
        """Wait for the pool's signal (requests in flight) or the timeout."""
        self.interruption.wait(self.wake if self.in_flight else None, timeout)

    def _within_budget(self, limit: int) -> int:
        if limit > 0 and self.budget.exhausted:
            self._stop(StopCause.DAILY_LIMIT, DAILY_LIMIT)
            return 0
        return self.budget.limit(limit)

    def _send_at(self, request: Request) -> SubmitResult | NotStarted:
        """The request of `batch`, sent once its slot of the shared pace (a time.monotonic
        deadline, at most Pace.ahead away) has come; in a thread of the pool. Not sent
        while the loop holds the queue (`NOT_STARTED`: it stays claimed, queued again)."""
        batch, deadline = request
        wait = deadline - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if self.hold_queue.is_set():
            return NOT_STARTED
        self.sent_at[batch.batch_id] = self.now()
        return self.client.send_batch(batch.mobiles, batch.text)

    def _settle_and_claim(self, limit: int) -> list[Request]:
        """Record the answers and claim more; when the store fails, keep the answers to
        write them again, claim nothing more and stop the run once the requests in flight
        are answered (their answers are kept too). Raise StoreError when it keeps failing.
        Returns the claimed batches, each with the time.monotonic() its request may leave."""
        answers = self.answers
        ahead = sum(batch.size for batch, _ in self.ahead)
        try:
            if self.conn is None:
                self.conn = self.engine.connect()
            if self.autocommit is None and self.plain_rounds:
                self.autocommit = autocommit(self.engine)
            claim_round = settle_and_claim(
                self.conn,
                self.campaign_id,
                self.worker_id,
                answers,
                0 if self.store_failures else limit,
                # never claim what the budget cannot send
                max_mobiles=None
                if self.budget.remaining is None
                else max(0, self.budget.remaining - ahead),
                pace=self.pace,
                autocommit=self.autocommit,
            )
        except StoreFailure as exc:
            self._drop_connection()  # the next round takes a fresh (checked) one
            self.store_failures += 1
            reason = f"the store failed: {first_line(exc)}"
            if self.store_failures > STORE_ATTEMPTS:
                raise StoreError(
                    f"{reason} (the answers of {len(answers)} request(s) "
                    "could not be written; they will count as unknown)"
                ) from None
            self._stop(StopCause.STORE, reason)
            self.emit(ProgressEvent("warning", f"{reason}; trying again"))
            return []
        self.store_failures = 0
        self.answers = []
        if limit > 0 and len(claim_round.batches) < limit and claim_round.wait <= 0:
            self.exhausted = True  # nothing more pending now (a released batch resets it)
        claimed = self._claimed(claim_round, limit)
        for _ in claimed:
            self.limiter.take()
        now = time.monotonic()
        return [(batch, now + delay) for batch, delay in claimed]

    def _drop_connection(self) -> None:
        """Give the loop's store connections back (a broken one is discarded by the pool)."""
        held = (self.conn, self.autocommit)
        self.conn = self.autocommit = None
        for conn in held:
            if conn is not None:
                try:
                    conn.close()
                except StoreFailure:
                    conn.invalidate()

    def _claimed(self, claim_round: ClaimRound, limit: int) -> list[Request]:
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
        self.closed = not gate.is_open
        if gate.stop_reason is not None:
            self._stop(StopCause.WINDOW, gate.stop_reason)
            return self.policy.wait_step
        if not gate.is_open:
            if gate.announce:
                self.emit(ProgressEvent("info", f"waiting: {gate.message}"))
            return self.policy.wait_step
        return self.limiter.wait_time()

    # -- answers

    def _collect(self) -> None:
        """Take the answers of the requests done since the last turn (into `answers`);
        a request the held queue did not send goes back to `ahead`."""
        with self.wake_lock:
            self.unseen = 0
            self.wake.clear()
        finished = self.pool.finished()
        back: list[Request] = []
        for job in finished:
            self.in_flight.discard(job)
            batch = job.payload[0]
            outcome = job.result
            assert outcome is not None  # a finished job has its result
            if isinstance(outcome, NotStarted):
                self.budget.refund(batch.size)
                back.append(job.payload)
                continue
            self.sent += 1
            result = self._handle(batch, outcome)
            if result.detail:  # stored, then shown in status and exports
                result = replace(result, detail=self.redact(result.detail))
            self.sent_at.pop(batch.batch_id, None)
            if result.state == "pending":
                self.budget.refund(batch.size)  # not sent after all: back in the budget
                self.exhausted = False  # it may be claimed again
            self._keep(result)
        if back:
            self.ahead.extend(back)
            self.ahead = deque(sorted(self.ahead, key=lambda entry: entry[0].seq))
        if finished:
            self._progress()

    def _keep(self, result: BatchResult) -> None:
        """An answer to record with the next transaction."""
        if not self.answers:
            self.answered_since = self.now()
        self.answers.append(result)

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
