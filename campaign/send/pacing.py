"""Pacing: a token bucket on an injected monotonic clock (tests drive a fake one).

The limiter only decides (how many requests may leave now, how long until the next one);
it never sleeps itself: the loop waits for that long *or* an answer *or* a stop request,
whichever comes first (`interrupt.Interruption.wait`).

The limiter is this process's; `pace_for` names the account's shared pace (store/pace.py),
which every process sending on that account takes its tokens from when it claims: the
account's `gateway.rate` holds for all of them together. The limiter stays: it does this
process's adaptive back-off after a 103/104.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from campaign.config import Settings
from campaign.store.campaigns import without_userinfo
from campaign.store.pace import Pace

Monotonic = Callable[[], float]

UNLIMITED = 1 << 30  # what `available()` says with no rate limit
EPSILON = 1e-9  # float rounding: a token short by less than this is a token
PACE_KEY_MAX = 200  # send_pace.account
PACE_SHARE = 0.95  # of gateway.rate: what the account's shared bucket lets out per second
PACE_BURST = 0.05  # of gateway.rate: the tokens a claim may take at once after a pause
PACE_MAX_BURST = 64
PACE_AHEAD = 0.25  # seconds: how early a claim may take its slots of the shared pace


class RateLimiter:
    """Token bucket: `rate` tokens per second (0 = unlimited), at most `burst` saved up."""

    def __init__(self, rate: float, burst: int = 1, *, clock: Monotonic = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = 1.0  # start without a burst
        self._last = clock()

    def _refill(self, now: float) -> None:
        if self.rate > 0:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now

    def available(self) -> int:
        """Requests that may leave now."""
        if self.rate <= 0:
            return UNLIMITED
        self._refill(self._clock())
        return int(self._tokens + EPSILON)

    def wait_time(self) -> float:
        """Seconds until one token is there (0 when there is one)."""
        if self.rate <= 0:
            return 0.0
        self._refill(self._clock())
        return 0.0 if self._tokens + EPSILON >= 1 else (1 - self._tokens) / self.rate

    def take(self) -> None:
        """One request left: spend a token."""
        if self.rate > 0:
            self._tokens -= 1

    def set_rate(self, rate: float) -> None:
        self._refill(self._clock())
        self.rate = rate


def initial_burst(rate: float, concurrency: int) -> int:
    """Tokens saved up at most: a tenth of a second's worth, within the pool's size."""
    return max(1, min(concurrency, int(rate // 10) or 1))


def pace_for(settings: Settings) -> Pace | None:
    """The account's shared pace: one bucket per gateway URL (without credentials) and
    account (None: no rate limit, no shared bucket).

    The bucket lets out PACE_SHARE of `gateway.rate` with a burst of PACE_BURST of it (at
    least 1): however the requests fall into a gateway's one-second windows (the way it
    counts "too fast", code 103), no window sees more than the rate; the burst lets a claim
    take several tokens at high rates (one transaction for several requests). A claim takes
    slots up to PACE_AHEAD early, each request leaving at its slot: the account's rate
    holds while no process claims for that long (a busy machine, several workers taking
    turns), where a bucket taken only at its time lost every late-coming claimer's delay."""
    gateway = settings.gateway
    if gateway.rate <= 0:
        return None
    account = f"{without_userinfo(gateway.url)}#{gateway.account}"
    if len(account) > PACE_KEY_MAX:  # the key column's size: keep it unique, shorter
        digest = hashlib.sha256(account.encode("utf-8")).hexdigest()
        account = f"{account[: PACE_KEY_MAX - 65]}#{digest}"
    burst = max(1, min(PACE_MAX_BURST, int(gateway.rate * PACE_BURST)))
    return Pace(account, gateway.rate * PACE_SHARE, burst, PACE_AHEAD)
