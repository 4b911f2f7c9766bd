"""What the send loop's parts share: its knobs, its progress event, the client it calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from campaign.gateway.protocol import BalanceResult, SubmitResult
from campaign.outcomes import StopCause
from campaign.store.workers import HEARTBEAT_SECONDS, STALE_AFTER_SECONDS
from campaign.timeutil import china_now

DEFAULT_CONCURRENCY = 16
INTERRUPTED = "interrupted by the user"
STORE_ATTEMPTS = 5  # store failures in a row before the run gives up (StoreError)
DAILY_LIMIT = "max_per_day reached: the rest waits for the next day's run"


@dataclass(frozen=True)
class Stop:
    """A decision to stop the run: the cause (for code) and the reason (for people)."""

    cause: StopCause
    reason: str


class SendClient(Protocol):
    def send_batch(self, mobiles: Any, text: str) -> SubmitResult: ...
    def query_balance(self) -> BalanceResult: ...


@dataclass(frozen=True)
class SendPolicy:
    """Knobs of the loop; the defaults suit the real gateway, tests make them quick.

    `clock` is China time (the send window, a job's not_after); `monotonic` measures
    intervals (pacing, back-off, progress); `sleep` waits: tests inject fakes of them."""

    concurrency: int = DEFAULT_CONCURRENCY
    # batches claimed ahead of the free slots (one transaction claims a group of them and
    # records the answers so far): a crash leaves at most concurrency + claim_group
    # batches unknown; 0 claims only for free slots, one transaction per turn
    claim_group: int = 64
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
    monotonic: Callable[[], float] = time.monotonic
    # the wait when no request is in flight (pacing, window, back-off); None: on the stop
    # event, so that a stop wakes it. Tests pass a fake clock's sleep (it advances the clock).
    sleep: Callable[[float], None] | None = None
    # take the tokens of the account's shared pace in the store (send/pacing.pace_for): the
    # rate holds for every process sending on the account. Its clock is the store's (real):
    # tests that drive `monotonic` by hand turn it off.
    shared_pace: bool = True


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
