"""Batch queries: at-most-once claims and results.

A batch is claimed (`pending` -> `sending`, claimed_by, attempts+1, submitted_at) and that
is committed BEFORE its request leaves; its result is committed after:

    pending -> sending -> accepted | rejected | unknown
                       -> pending   (released: the gateway said "not sent", e.g. 103/104)

The claim is a compare-and-set (`... WHERE state = 'pending'`, rowcount checked). On
PostgreSQL the candidates are selected `FOR UPDATE SKIP LOCKED` so that several workers
share a campaign's batches without waiting on each other; on SQLite every write
transaction is `BEGIN IMMEDIATE` (store/engine.py), which serializes the claims.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from campaign.outcomes import BATCH_STATES, BatchState
from campaign.store.engine import write
from campaign.store.schema import batches
from campaign.timeutil import utcnow


@dataclass(frozen=True)
class ClaimedBatch:
    campaign_id: int
    batch_id: str
    seq: int
    text: str
    segments: int
    size: int
    mobiles: tuple[str, ...]
    attempts: int


@dataclass(frozen=True)
class BatchResult:
    """What became of one claimed batch; `state` is accepted | rejected | unknown | pending."""

    batch_id: str
    state: str
    msgid: str | None = None
    submit_code: str | None = None
    detail: str | None = None


def claim_batches(
    engine: Engine, campaign_id: int, worker_id: str, limit: int
) -> list[ClaimedBatch]:
    """Claim up to `limit` pending batches (lowest seq first) for `worker_id`, committed."""
    return settle_and_claim(engine, campaign_id, worker_id, (), limit)


def record_results(
    engine: Engine, campaign_id: int, worker_id: str, results: Sequence[BatchResult]
) -> int:
    """Commit the results of batches this worker claimed; return how many were recorded.

    A result is written only while the batch is still this worker's (`sending`, or
    `unknown` if another run took it for an orphan meanwhile: the real answer is better).
    """
    if not results:
        return 0
    with write(engine) as conn:
        return _record(conn, campaign_id, worker_id, results)


def settle_and_claim(
    engine: Engine,
    campaign_id: int,
    worker_id: str,
    results: Sequence[BatchResult],
    limit: int,
    *,
    max_mobiles: int | None = None,
) -> list[ClaimedBatch]:
    """Record `results` and claim up to `limit` more, in one committed transaction.

    With `max_mobiles`, the claimed batches (in seq order) hold at most that many mobiles
    in all. The claims are committed when this returns, before any of their requests leaves.
    """
    if not results and limit <= 0:
        return []
    with write(engine) as conn:
        _record(conn, campaign_id, worker_id, results)
        if limit <= 0:
            return []
        return _claim(conn, campaign_id, worker_id, limit, max_mobiles)


def _claim(
    conn: Connection, campaign_id: int, worker_id: str, limit: int, max_mobiles: int | None
) -> list[ClaimedBatch]:
    candidates = conn.execute(
        select(
            batches.c.batch_id,
            batches.c.seq,
            batches.c.text,
            batches.c.segments,
            batches.c.size,
            batches.c.mobiles,
            batches.c.attempts,
        )
        .where(batches.c.campaign_id == campaign_id, batches.c.state == BatchState.PENDING)
        .order_by(batches.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if max_mobiles is not None:
        candidates = _within(candidates, max_mobiles)
    if not candidates:
        return []
    won = set(
        conn.execute(
            update(batches)
            .where(
                batches.c.campaign_id == campaign_id,
                batches.c.batch_id.in_([row.batch_id for row in candidates]),
                batches.c.state
                == BatchState.PENDING,  # compare-and-set: only what is still pending
            )
            .values(
                state=BatchState.SENDING,
                claimed_by=worker_id,
                attempts=batches.c.attempts + 1,
                submitted_at=utcnow(),
                answered_at=None,
            )
            .returning(batches.c.batch_id)
        ).scalars()
    )
    return [
        ClaimedBatch(
            campaign_id,
            row.batch_id,
            int(row.seq),
            row.text,
            int(row.segments),
            int(row.size),
            tuple(row.mobiles.split(",")) if row.mobiles else (),
            int(row.attempts) + 1,
        )
        for row in candidates
        if row.batch_id in won
    ]


def _within(candidates: Sequence[Any], max_mobiles: int) -> list[Any]:
    """The leading candidates whose sizes add up to at most `max_mobiles`."""
    kept, total = [], 0
    for row in candidates:
        total += int(row.size)
        if total > max_mobiles:
            break
        kept.append(row)
    return kept


_MINE = (
    (batches.c.campaign_id == bindparam("cid"))
    & (batches.c.batch_id == bindparam("bid"))
    & (batches.c.claimed_by == bindparam("worker"))
    & ((batches.c.state == BatchState.SENDING) | (batches.c.state == BatchState.UNKNOWN))
)
_SETTLE = (
    update(batches)
    .where(_MINE)
    .values(
        state=bindparam("new_state"),
        msgid=bindparam("new_msgid"),
        submit_code=bindparam("new_code"),
        detail=bindparam("new_detail"),
        answered_at=bindparam("now"),
    )
)
_RELEASE = (  # not sent: back to pending, anyone may claim it again
    update(batches)
    .where(_MINE)
    .values(
        state=BatchState.PENDING,
        msgid=None,
        claimed_by=None,
        answered_at=None,
        submit_code=bindparam("new_code"),
        detail=bindparam("new_detail"),
    )
)


def _record(
    conn: Connection, campaign_id: int, worker_id: str, results: Sequence[BatchResult]
) -> int:
    """Write results with one executemany per kind (final, released)."""
    now = utcnow()
    params = [
        {
            "cid": campaign_id,
            "bid": r.batch_id,
            "worker": worker_id,
            "new_state": r.state,
            "new_msgid": r.msgid,
            "new_code": r.submit_code,
            "new_detail": r.detail,
            "now": now,
        }
        for r in results
    ]
    final = [p for p in params if p["new_state"] != BatchState.PENDING]
    released = [
        {k: v for k, v in p.items() if k not in ("new_state", "new_msgid", "now")}
        for p in params
        if p["new_state"] == BatchState.PENDING
    ]
    written = 0
    for statement, rows in ((_SETTLE, final), (_RELEASE, released)):
        if rows:
            written += conn.execute(statement, rows).rowcount
    return written


def reset_unknown(engine: Engine, campaign_id: int, *, live: Collection[str] = ()) -> int:
    """`resume --resend-unknown`: unknown -> pending (once, by this call); return how many.

    Batches claimed by a `live` worker stay unknown: one taken for an orphan while its run
    was alive (missed heartbeats) may still be in flight, and its answer still come."""
    keep = batches.c.claimed_by.is_(None) | batches.c.claimed_by.not_in(list(live))
    with write(engine) as conn:
        return conn.execute(
            update(batches)
            .where(
                batches.c.campaign_id == campaign_id, batches.c.state == BatchState.UNKNOWN, keep
            )
            .values(
                state=BatchState.PENDING,
                claimed_by=None,
                detail="resent after an unknown result: " + func.coalesce(batches.c.detail, ""),
            )
        ).rowcount


def batch_state_counts(engine: Engine, campaign_id: int) -> dict[str, int]:
    """Number of batches per state (every state present, zero when none)."""
    counts = dict.fromkeys(map(str, BATCH_STATES), 0)
    with engine.connect() as conn:
        for state, number in conn.execute(
            select(batches.c.state, func.count())
            .where(batches.c.campaign_id == campaign_id)
            .group_by(batches.c.state)
        ):
            counts[state] = int(number)
    return counts


def batch_figures(engine: Engine, campaign_id: int) -> dict[str, dict[str, int]]:
    """Per batch state: `batches`, `recipients` (mobiles), `segments` (billed)."""
    figures = {str(s): {"batches": 0, "recipients": 0, "segments": 0} for s in BATCH_STATES}
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                batches.c.state,
                func.count(),
                func.coalesce(func.sum(batches.c.size), 0),
                func.coalesce(func.sum(batches.c.size * batches.c.segments), 0),
            )
            .where(batches.c.campaign_id == campaign_id)
            .group_by(batches.c.state)
        )
        for state, count, size, segments in rows:
            figures[state] = {
                "batches": int(count),
                "recipients": int(size),
                "segments": int(segments),
            }
    return figures


def segments_needed(
    engine: Engine, campaign_id: int, states: Iterable[str] = (BatchState.PENDING,)
) -> int:
    """Billed segments of the batches in `states` (what sending them will cost)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(func.coalesce(func.sum(batches.c.size * batches.c.segments), 0)).where(
                batches.c.campaign_id == campaign_id, batches.c.state.in_(tuple(states))
            )
        ).scalar_one()
    return int(value)
