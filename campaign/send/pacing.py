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


def pace_for(settings: Settings, concurrency: int = 1) -> Pace | None:
    """The account's shared pace: one bucket per gateway URL (without credentials) and
    account, at `gateway.rate` (None: no rate limit, no shared bucket)."""
    gateway = settings.gateway
    if gateway.rate <= 0:
        return None
    account = f"{without_userinfo(gateway.url)}#{gateway.account}"
    if len(account) > PACE_KEY_MAX:  # the key column's size: keep it unique, shorter
        digest = hashlib.sha256(account.encode("utf-8")).hexdigest()
        account = f"{account[: PACE_KEY_MAX - 65]}#{digest}"
    return Pace(account, gateway.rate, initial_burst(gateway.rate, concurrency))
