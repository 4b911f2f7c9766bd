"""Batch queries: at-most-once claims and results.

A batch is claimed (`pending` -> `sending`, claimed_by, attempts+1, submitted_at) and that
is committed BEFORE its request leaves; its result is committed after:

    pending -> sending -> accepted | rejected | unknown
                       -> pending   (released: the gateway said "not sent", e.g. 103/104)

The claim is a compare-and-set (`... WHERE state = 'pending'`, rowcount checked). On
PostgreSQL the candidates are selected `FOR UPDATE SKIP LOCKED` so that several workers
share a campaign's batches without waiting on each other; on SQLite every write
transaction is `BEGIN IMMEDIATE` (store/engine.py), which serializes the claims.

The send loop's claim (`settle_and_claim`) also reads the campaign's state in its
transaction and claims only while it is `sending` (a pause, a cancel or another process's
stop ends the claims at once), and takes one token of the account's shared pace
(store/pace.py) per batch it claims. `cancel` (store/queue.py) turns `pending` batches
`cancelled`: those are never claimed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Select,
    func,
    select,
    update,
)

from campaign.outcomes import BATCH_STATES, BatchState, CampaignState
from campaign.store import pace as shared_pace
from campaign.store.claim_sql import claim_statements
from campaign.store.engine import write
from campaign.store.pace import Pace
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
    """What became of one claimed batch; `state` is accepted | rejected | unknown | pending.

    `untouched`: claimed but its request never left (the run ended first): back to pending
    as it was before the claim (its attempts, detail and code unchanged)."""

    batch_id: str
    state: str
    msgid: str | None = None
    submit_code: str | None = None
    detail: str | None = None
    untouched: bool = False


@dataclass(frozen=True)
class ClaimRound:
    """What one `settle_and_claim` got: the batches claimed (committed), the campaign's
    state read in the same transaction (nothing is claimed unless it is `sending`), and
    `wait` > 0 when the shared pace had no token: seconds until the next one. With a
    pace, `delays[i]`: seconds after the claim before batch i's request may leave (its
    slot of the account's pace; empty: all at once)."""

    batches: list[ClaimedBatch]
    state: str
    wait: float = 0.0
    delays: tuple[float, ...] = ()

    def delay(self, index: int) -> float:
        return self.delays[index] if index < len(self.delays) else 0.0


def claim_batches(
    engine: Engine, campaign_id: int, worker_id: str, limit: int
) -> list[ClaimedBatch]:
    """Claim up to `limit` pending batches (lowest seq first) for `worker_id`, committed.

    The plain claim, whatever the campaign's state and without a pace (tools and tests);
    the send loop claims with `settle_and_claim`, which respects both."""
    if limit <= 0:
        return []
    with write(engine) as conn:
        return _claim(conn, campaign_id, worker_id, limit, None)


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
        return _record(conn, campaign_id, worker_id, results, count=True)


def settle_and_claim(
    engine: Engine | Connection,
    campaign_id: int,
    worker_id: str,
    results: Sequence[BatchResult],
    limit: int,
    *,
    max_mobiles: int | None = None,
    pace: Pace | None = None,
    autocommit: Connection | None = None,
) -> ClaimRound:
    """Record `results` and claim up to `limit` more, in one committed transaction.

    Claims only while the campaign's state (read in the transaction) is `sending`; with a
    limited `pace`, at most as many as the account's shared bucket has tokens (one per batch
    claimed; none taken when nothing is claimed). With `max_mobiles`, the claimed batches
    (in seq order) hold at most that many mobiles in all. The claims are committed when
    this returns, before any of their requests leaves.

    `engine` may be a Connection the caller holds for its rounds (the send loop: no pool
    checkout, and on PostgreSQL no ping, per round); it has no transaction between calls.
    `autocommit`: a connection of the same store from `engine.autocommit`, for a plain
    round (`_plain_round`): on PostgreSQL one statement, its own transaction (no BEGIN and
    COMMIT round trips around it); on SQLite the answers and the claim as two statements
    that commit themselves (`_autocommit_round`). The claims are committed all the same.
    """
    if not results and limit <= 0:
        return ClaimRound([], _read_state(engine, campaign_id))
    dialect = engine.dialect.name
    plain = _plain_round(results, limit, max_mobiles, pace)
    if plain and autocommit is not None and dialect == "sqlite":
        return _autocommit_round(autocommit, campaign_id, worker_id, results, limit)
    one_statement = _one_statement_round(dialect, results) if plain else None
    if one_statement is not None and autocommit is not None:
        return _pop_round(autocommit, campaign_id, worker_id, results, limit, one_statement)
    with write(engine) as conn:
        if one_statement is not None:
            return _pop_round(conn, campaign_id, worker_id, results, limit, one_statement)
        _record(conn, campaign_id, worker_id, results)
        if limit <= 0:
            return ClaimRound([], _state(conn, campaign_id))
        sql = claim_statements(conn.dialect.name).state_and_candidates
        row = conn.execute(sql, {"cid": campaign_id, "lim": limit}).one()
        state = str(row.state or "")
        if state != CampaignState.SENDING:
            return ClaimRound([], state)
        candidates = _parsed(row.found, max_mobiles)
        return _paced_claim(conn, campaign_id, worker_id, candidates, pace, state)


def _plain_round(
    results: Sequence[BatchResult], limit: int, max_mobiles: int | None, pace: Pace | None
) -> bool:
    """True when the round needs nothing but a claim and its final answers: only final
    answers (a group of them at most), no budget limit on the mobiles, no shared pace to
    take tokens from (a round of one statement on PostgreSQL, two on SQLite)."""
    if limit <= 0 or max_mobiles is not None or (pace is not None and pace.limited):
        return False
    return len(results) <= RECORD_CHUNK and all(r.state != BatchState.PENDING for r in results)


def _one_statement_round(dialect: str, results: Sequence[BatchResult]) -> Select[Any] | None:
    """The statement that records the final answers `results` and claims in one round trip
    (PostgreSQL), for a plain round (`_plain_round`). None on SQLite."""
    sql = claim_statements(dialect)
    return sql.settle_and_pop if results else sql.pop


def _autocommit_round(
    conn: Connection,
    campaign_id: int,
    worker_id: str,
    results: Sequence[BatchResult],
    limit: int,
) -> ClaimRound:
    """SQLite, a plain round (`_plain_round`) on a connection of `engine.autocommit`: the
    final answers, then the claim, each a statement that commits itself (the claim before
    this returns: its rows are read to the end). Two driver calls and no BEGIN or COMMIT: the
    loop's thread takes the interpreter back fewer times while the request threads want it.
    The answers and the claim need not be one transaction: answers written twice change
    nothing the second time (they only touch this worker's `sending` batches), and a claim
    that fails after them leaves nothing claimed."""
    sql = claim_statements("sqlite")
    assert sql.claim is not None
    mine = {"cid": campaign_id, "worker": worker_id, "now": utcnow()}
    if results:
        conn.execute(sql.settle, {**mine, "answers": _final_answers(results)})
    rows = conn.execute(sql.claim, {**mine, "lim": limit}).all()
    if not rows:  # nothing pending, or the campaign is not `sending`: which one
        return ClaimRound([], _state(conn, campaign_id))
    candidates = sorted((_Candidate(*row) for row in rows), key=lambda c: c.seq)
    return ClaimRound(_claimed(campaign_id, candidates), CampaignState.SENDING)


def _pop_round(
    conn: Connection,
    campaign_id: int,
    worker_id: str,
    results: Sequence[BatchResult],
    limit: int,
    statement: Select[Any],
) -> ClaimRound:
    params = {"cid": campaign_id, "worker": worker_id, "lim": limit, "now": utcnow()}
    if results:
        params["answers"] = _final_answers(results)
    row = conn.execute(statement, params).one()
    return ClaimRound(_claimed(campaign_id, _parsed(row.found, None)), str(row.state or ""))


def _read_state(bind: Engine | Connection, campaign_id: int) -> str:
    """The campaign's state, read in a transaction of its own."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return _state(conn, campaign_id)
    try:
        return _state(bind, campaign_id)
    finally:
        bind.rollback()  # the read's transaction, begun by the query, ends here


def _state(conn: Connection, campaign_id: int) -> str:
    """The campaign's state as this transaction reads it ("" when there is no campaign)."""
    query = claim_statements(conn.dialect.name).state
    return str(conn.execute(query, {"cid": campaign_id}).scalar() or "")


def _paced_claim(
    conn: Connection,
    campaign_id: int,
    worker_id: str,
    candidates: list[_Candidate],
    pace: Pace | None,
    state: str,
) -> ClaimRound:
    """The candidates are locked first (nothing pending: the pace is not touched), then
    the account's pace row; as many are claimed as it has tokens."""
    if not candidates:
        return ClaimRound([], state)
    if pace is None or not pace.limited:
        return ClaimRound(_take(conn, campaign_id, worker_id, candidates), state)
    bucket = shared_pace.reserve(conn, pace)
    if bucket.tokens <= 0:
        return ClaimRound([], state, bucket.wait)
    claimed = _take(conn, campaign_id, worker_id, candidates[: bucket.tokens])
    shared_pace.spend(conn, pace, bucket, len(claimed))
    delays = tuple(bucket.delay(i, pace.rate) for i in range(len(claimed)))
    return ClaimRound(claimed, state, delays=delays)


def _claim(
    conn: Connection, campaign_id: int, worker_id: str, limit: int, max_mobiles: int | None
) -> list[ClaimedBatch]:
    candidates = _candidates(conn, campaign_id, limit, max_mobiles)
    return _take(conn, campaign_id, worker_id, candidates) if candidates else []


class _Candidate(NamedTuple):  # fields as claim_sql.CANDIDATE_COLUMNS
    batch_id: str
    seq: int
    text: str
    segments: int
    size: int
    mobiles: str
    attempts: int


def _candidates(
    conn: Connection, campaign_id: int, limit: int, max_mobiles: int | None
) -> list[_Candidate]:
    """The next pending batches (lowest seq first), locked; on PostgreSQL those another
    worker has locked are skipped."""
    query = claim_statements(conn.dialect.name).candidates
    found = conn.execute(query, {"cid": campaign_id, "lim": limit}).scalar()
    return _parsed(found, max_mobiles)


def _parsed(found: str | list[list[Any]] | None, max_mobiles: int | None) -> list[_Candidate]:
    """The candidates out of their JSON array (text on SQLite, parsed on PostgreSQL)."""
    rows = json.loads(found) if isinstance(found, str) else found or []
    candidates = sorted((_Candidate(*values) for values in rows), key=lambda c: c.seq)
    return _within(candidates, max_mobiles) if max_mobiles is not None else candidates


def _take(
    conn: Connection, campaign_id: int, worker_id: str, candidates: Sequence[_Candidate]
) -> list[ClaimedBatch]:
    """Claim the candidates that are still pending (compare-and-set): pending -> sending.

    The candidates are locked (SQLite's write lock, PostgreSQL's FOR UPDATE): all of them
    are won, which the row count confirms; should it not, the winners are read back."""
    sql = claim_statements(conn.dialect.name)
    ids = [row.batch_id for row in candidates]
    params = {"cid": campaign_id, "worker": worker_id, "ids": ids}
    won = set(ids)
    if conn.execute(sql.take, {**params, "now": utcnow()}).rowcount != len(ids):
        won = set(conn.execute(sql.taken, params).scalars())
    return _claimed(campaign_id, [row for row in candidates if row.batch_id in won])


def _claimed(campaign_id: int, rows: Sequence[_Candidate]) -> list[ClaimedBatch]:
    """The claimed batches of candidate rows (their attempts as read before the claim)."""
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
        for row in rows
    ]


def _within(candidates: Sequence[_Candidate], max_mobiles: int) -> list[_Candidate]:
    """The leading candidates whose sizes add up to at most `max_mobiles`."""
    kept, total = [], 0
    for row in candidates:
        total += int(row.size)
        if total > max_mobiles:
            break
        kept.append(row)
    return kept


#: Answers written per statement at most (their values are bound parameters).
RECORD_CHUNK = 200


def _record(
    conn: Connection,
    campaign_id: int,
    worker_id: str,
    results: Sequence[BatchResult],
    *,
    count: bool = False,
) -> int:
    """Write results with one statement per kind (final, released, untouched): a driver
    call per row would hand the loop's thread to the request threads between rows.

    With `count`, return how many rows were written (on SQLite, Python's driver reports
    no row count for a statement that starts with a CTE: it is then asked separately, a
    driver call the send loop, which does not need the count, goes without)."""
    written = 0
    for start in range(0, len(results), RECORD_CHUNK):
        written += _record_chunk(
            conn, campaign_id, worker_id, results[start : start + RECORD_CHUNK], count
        )
    return written


def _changed(conn: Connection, result: CursorResult[Any], count: bool) -> int:
    """Rows the statement of `result` changed (0 when not `count`ed and unknown)."""
    if result.rowcount >= 0:
        return result.rowcount
    if not count:
        return 0
    return int(conn.exec_driver_sql("SELECT changes()").scalar_one())


def _record_chunk(
    conn: Connection,
    campaign_id: int,
    worker_id: str,
    results: Sequence[BatchResult],
    count: bool,
) -> int:
    sql = claim_statements(conn.dialect.name)
    mine = {"cid": campaign_id, "worker": worker_id}
    final = [r for r in results if r.state != BatchState.PENDING]
    released = [
        (r.batch_id, r.submit_code, r.detail)
        for r in results
        if r.state == BatchState.PENDING and not r.untouched
    ]
    untouched = [r.batch_id for r in results if r.untouched]
    written = 0
    if final:
        params = {**mine, "answers": _final_answers(final), "now": utcnow()}
        written += _changed(conn, conn.execute(sql.settle, params), count)
    if released:  # not sent: back to pending, anyone may claim it again
        params = {**mine, "answers": json.dumps(released)}
        written += _changed(conn, conn.execute(sql.release, params), count)
    if untouched:  # claimed, never sent: as it was before the claim
        written += conn.execute(sql.untouched, {**mine, "ids": untouched}).rowcount
    return written


def _final_answers(results: Sequence[BatchResult]) -> str:
    """The `answers` parameter of the statements that record final answers."""
    return json.dumps([(r.batch_id, r.state, r.msgid, r.submit_code, r.detail) for r in results])


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
