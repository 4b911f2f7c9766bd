"""The shared pace of a gateway account: one token bucket for every process sending on it.

The account's `gateway.rate` is the account's, not each process's: the processes (on one
machine or several sharing a PostgreSQL store) take their tokens from one row of
`send_pace`, in the transaction that claims the batches (store/batches.py). The bucket is
a GCRA (generic cell rate algorithm): the row holds `next_at`, the earliest time the
account's next request may leave; `burst` requests may leave at once after a pause.

    t      = max(next_at, now - (burst - 1) / rate)
    tokens = floor((now + ahead - t) * rate) + 1 when t <= now + ahead, else 0
    taking k of them: next_at = t + k / rate; with none: wait t - (now + ahead)

Token i of a claim is a slot: its request leaves at t + i / rate, not before (`Gcra.delay`).
A claim may take slots up to `ahead` seconds early (Pace.ahead): the row then runs ahead
of the clock and no time is lost while no process claims (a process slow to come back, a
busy machine); without it a bucket whose taker came back late lost the difference.

`gcra` is that arithmetic alone (time given, unit-testable); `reserve` and `spend` do it
on the row, locked: FOR UPDATE on PostgreSQL (whose clock, `clock_timestamp()`, is the one
every host goes by), inside BEGIN IMMEDIATE on SQLite (this host's clock).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy import Connection, func, literal_column, select, update

from campaign.store.schema import send_pace

_EPSILON = 1e-9  # (now - t) * rate of 2.9999999999 is 3 tokens


@dataclass(frozen=True)
class Pace:
    """The account whose pace is shared, and its rate (requests per second; <= 0:
    unlimited, no pace row used) and burst (requests that may leave at once)."""

    account: str
    rate: float
    burst: int = 1
    ahead: float = 0.0  # seconds: slots a claim may take before their time

    @property
    def limited(self) -> bool:
        return self.rate > 0


@dataclass(frozen=True)
class Gcra:
    """What the bucket holds at one moment: `tokens` requests may leave now; when none,
    the next may in `wait` seconds. `start` is the t of the formula, `now` the clock."""

    start: float
    tokens: int
    wait: float
    now: float = 0.0

    def next_at(self, taken: int, rate: float) -> float:
        """The row's next_at after `taken` of the tokens were used."""
        return self.start + taken / rate

    def delay(self, index: int, rate: float) -> float:
        """Seconds from `now` until token `index`'s request may leave (0: at once)."""
        return max(0.0, self.start + index / rate - self.now)


def gcra(next_at: float, now: float, rate: float, burst: int = 1, ahead: float = 0.0) -> Gcra:
    """The tokens available at `now` (epoch seconds) to a bucket whose row says `next_at`,
    slots up to `ahead` seconds early included."""
    burst = max(1, burst)
    horizon = now + max(0.0, ahead)
    if next_at > horizon:
        return Gcra(next_at, 0, next_at - horizon, now)
    early = math.floor(max(0.0, ahead) * rate + _EPSILON)  # slots of the time ahead
    # tokens' worth the bucket is behind, from one subtraction: `now - start` with start
    # = now - (burst - 1) / rate, in epoch seconds (a double's step near 1.7e9 is 2.4e-7 s),
    # came out a hair short of burst - 1 and cost a token of every full bucket
    behind = (now - next_at) * rate
    if behind >= burst - 1:
        return Gcra(now - (burst - 1) / rate, burst + early, 0.0, now)
    tokens = math.floor((horizon - next_at) * rate + _EPSILON) + 1
    return Gcra(next_at, tokens, 0.0, now)


def reserve(conn: Connection, pace: Pace, now: float | None = None) -> Gcra:
    """Lock the account's row (made when missing) and read its tokens, in `conn`'s write
    transaction; `now` for tests, else the store's clock read once the lock is held."""
    _ensure_row(conn, pace.account)
    next_at = conn.execute(
        select(send_pace.c.next_at).where(send_pace.c.account == pace.account).with_for_update()
    ).scalar_one()
    moment = _clock(conn) if now is None else now
    return gcra(float(next_at), moment, pace.rate, pace.burst, pace.ahead)


def spend(conn: Connection, pace: Pace, bucket: Gcra, taken: int) -> None:
    """Record that `taken` of `bucket`'s tokens were used (nothing when none was)."""
    if taken <= 0:
        return
    conn.execute(
        update(send_pace)
        .where(send_pace.c.account == pace.account)
        .values(next_at=bucket.next_at(taken, pace.rate))
    )


def _ensure_row(conn: Connection, account: str) -> None:
    # each dialect's insert is imported when used: `campaign status` (which imports this
    # module through store.batches) loads neither
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(
            pg_insert(send_pace).values(account=account, next_at=0.0).on_conflict_do_nothing()
        )
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(
            sqlite_insert(send_pace).values(account=account, next_at=0.0).on_conflict_do_nothing()
        )


def _clock(conn: Connection) -> float:
    """Epoch seconds: the database server's on PostgreSQL (every host shares it; taken
    after the row's lock, not at the start of the transaction), this host's on SQLite."""
    if conn.dialect.name == "postgresql":
        epoch = func.extract("epoch", literal_column("clock_timestamp()"))
        return float(conn.execute(select(epoch)).scalar_one())
    return time.time()
