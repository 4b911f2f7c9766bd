"""The send loop's statements on `batches`, built once per dialect.

A claim and the answers of a group of requests are a handful of statements run hundreds
of times a second while the request threads want the interpreter too: each statement is
built once (its parameters bound by name), so a run costs a cache lookup, not a new
statement and its cache key; and each reads or writes a whole group in one driver call,
so the loop's thread does not wait for the interpreter once per row.

Parameters: `cid` (campaign id), `worker` (the claiming worker's id), `lim` (batches to
claim at most), `ids` (batch ids, a list), `now` (a UTC datetime), `answers` (a JSON list
of rows, the batch id first: the answers of `settle`, `release`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Select,
    String,
    Update,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from campaign.outcomes import BatchState, CampaignState
from campaign.store.schema import batches, campaigns

#: The columns a claim reads of each candidate, in this order.
CANDIDATE_COLUMNS = ("batch_id", "seq", "text", "segments", "size", "mobiles", "attempts")


@dataclass(frozen=True)
class ClaimStatements:
    state: Select[str]  # the campaign's state
    candidates: Select[Any]  # the next pending batches, as one JSON array
    state_and_candidates: Select[Any]  # both in one row (`state`, `found`)
    take: Update  # candidates -> sending (compare-and-set)
    taken: Select[str]  # which of `ids` this worker holds (when take fell short)
    settle: Update  # final answers (accepted, rejected, unknown)
    release: Update  # not sent: back to pending for anyone
    untouched: Update  # claimed, never sent: back to pending as before the claim
    # PostgreSQL only (else None): a whole round in one statement, `settled` (rows the final
    # `answers` wrote), `state` and `found` (the batches claimed, CANDIDATE_COLUMNS arrays
    # with their new attempts); `pop` the same without answers
    settle_and_pop: Select[Any] | None
    pop: Select[Any] | None
    # SQLite only (else None): the claim of a round in one statement, whose rows are the
    # batches claimed (CANDIDATE_COLUMNS, their attempts before the claim); none unless the
    # campaign is `sending`. With `settle` before it, a round of two autocommit statements.
    claim: Update | None


@cache
def claim_statements(dialect: str) -> ClaimStatements:
    mine = _mine(dialect)
    ids = batches.c.batch_id.in_(bindparam("ids", expanding=True))
    state = _not_an_index(batches.c.state, dialect)  # the batches are found by their ids
    answers = _answers(dialect, "new_state", "new_msgid", "new_code", "new_detail")
    released = _answers(dialect, "new_code", "new_detail")
    campaign_state = select(campaigns.c.state).where(campaigns.c.id == bindparam("cid"))
    candidates = _candidates(dialect)
    settle = (
        update(batches)
        .where(mine, batches.c.batch_id == answers.c.bid, *_by_key(dialect, answers))
        .values(
            state=answers.c.new_state,
            msgid=answers.c.new_msgid,
            submit_code=answers.c.new_code,
            detail=answers.c.new_detail,
            answered_at=bindparam("now"),
        )
    )
    return ClaimStatements(
        state=campaign_state,
        candidates=candidates,
        state_and_candidates=select(
            campaign_state.scalar_subquery().label("state"),
            candidates.scalar_subquery().label("found"),
        ),
        take=update(batches)
        .where(
            batches.c.campaign_id == bindparam("cid"),
            ids,
            state == BatchState.PENDING,  # compare-and-set: only what is pending
        )
        .values(**_claimed()),
        taken=select(batches.c.batch_id).where(
            batches.c.campaign_id == bindparam("cid"),
            ids,
            state == BatchState.SENDING,
            batches.c.claimed_by == bindparam("worker"),
        ),
        settle=settle,
        release=update(batches)
        .where(mine, batches.c.batch_id == released.c.bid, *_by_key(dialect, released))
        .values(
            state=BatchState.PENDING,
            msgid=None,
            claimed_by=None,
            answered_at=None,
            submit_code=released.c.new_code,
            detail=released.c.new_detail,
        ),
        untouched=update(batches)
        .where(mine, ids)
        .values(state=BatchState.PENDING, claimed_by=None, attempts=batches.c.attempts - 1),
        settle_and_pop=_pop(campaign_state, settle) if dialect == "postgresql" else None,
        pop=_pop(campaign_state, None) if dialect == "postgresql" else None,
        claim=_claim(campaign_state) if dialect == "sqlite" else None,
    )


def _claimed() -> dict[str, Any]:
    """What a claim sets: `sending`, by `worker`, one attempt more, submitted `now`."""
    return {
        "state": BatchState.SENDING,
        "claimed_by": bindparam("worker"),
        "attempts": batches.c.attempts + 1,
        "submitted_at": bindparam("now"),
        "answered_at": None,
    }


def _pop(campaign_state: Select[Any], settle: Update | None) -> Select[Any]:
    """PostgreSQL: record the final answers (when `settle`), then lock the next `lim`
    pending batches (others' locks skipped) and set them `sending`, in ONE statement: a
    claim round is one round trip and a commit. Data-modifying CTEs run on one snapshot;
    the answers touch this worker's `sending`/`unknown` batches, the claim `pending` ones,
    so neither sees the other's rows. Nothing is claimed unless the campaign is `sending`."""
    state = campaign_state.scalar_subquery()
    locked = _next_pending(
        batches.c.campaign_id, batches.c.batch_id, sending=state == CampaignState.SENDING
    ).cte("locked")
    returned = _as_read()  # the claimed batches as the candidates read them
    took = (
        update(batches)
        .where(
            batches.c.campaign_id == bindparam("cid"),
            batches.c.batch_id == locked.c.batch_id,
            _any_of(locked.c.batch_id),
        )
        .values(**_claimed())
        .returning(*returned)
        .cte("took")
    )
    found = _json_rows("postgresql", [took.c[name] for name in CANDIDATE_COLUMNS])
    columns = [state.label("state"), found.select_from(took).scalar_subquery().label("found")]
    if settle is not None:
        # rendered (and so run) only when the query refers to it: the count of what it wrote
        settled = settle.returning(batches.c.batch_id).cte("settled")
        columns.append(select(func.count()).select_from(settled).scalar_subquery().label("settled"))
    return select(*columns)


def _claim(campaign_state: Select[Any]) -> Update:
    """SQLite: set the next `lim` pending batches `sending` and return them, in ONE
    statement (the whole of it runs under the write lock: a compare-and-set needs no
    re-check); nothing is claimed unless the campaign is `sending`. The batches are named by
    their primary keys, found by seq through ix_batches_state (tests/test_claim_plan.py)."""
    pending = batches.alias("next")
    chosen = (
        select(pending.c.batch_id)
        .where(
            pending.c.campaign_id == bindparam("cid"),
            pending.c.state == BatchState.PENDING,
            campaign_state.scalar_subquery() == CampaignState.SENDING,
        )
        .order_by(pending.c.seq)
        .limit(bindparam("lim"))
    )
    return (
        update(batches)
        .where(batches.c.campaign_id == bindparam("cid"), batches.c.batch_id.in_(chosen))
        .values(**_claimed())
        .returning(*_as_read())
    )


def _as_read() -> list[ColumnElement[Any]]:
    """CANDIDATE_COLUMNS of the batches a claim has just set (returned by it) as the
    candidates read them before: their attempts one fewer."""
    return [
        (batches.c.attempts - 1).label(name) if name == "attempts" else batches.c[name]
        for name in CANDIDATE_COLUMNS
    ]


def _not_an_index(column: Any, dialect: str) -> ColumnElement[Any]:
    """`column` in a form no index matches, for statements that name their batches by id
    (the primary key is what they should search).

    SQLite: behind a unary "+". Without ANALYZE statistics the planner took
    ix_batches_state (campaign_id, state) for the claim, reading every pending batch of the
    campaign for each claim (slower and slower as the campaign grows) instead of the dozens
    of primary keys it names.

    PostgreSQL: `column || ''`. Without statistics the planner took ix_batches_state to
    find a worker's `sending` batches for their answers, in a bitmap scan, which reads
    every index entry of the state, dead ones included: every earlier version of every
    batch answered so far (an update that changes the state leaves one), so each round read
    more (17,664 entries and 721 pages at 18,000 batches sent, 1.2 ms of a 2 ms round)."""
    if dialect == "postgresql":
        return column.op("||")(literal("", String))
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _by_key(dialect: str, answers: CTE) -> list[ColumnElement[bool]]:
    """PostgreSQL: the answered batches searched by primary key (`_any_of`)."""
    return [_any_of(answers.c.bid)] if dialect == "postgresql" else []


def _any_of(ids: ColumnElement[Any]) -> ColumnElement[bool]:
    """PostgreSQL: `batch_id = ANY(ARRAY(SELECT ids))`, the batch ids of a CTE as an array
    the primary key is searched for beside the campaign. A join on the ids alone is planned
    by the CTE's estimated rows: with a generic plan (a prepared round: its `lim` unknown)
    or without statistics the planner hashed every batch of the campaign instead."""
    return batches.c.batch_id == any_(func.array(select(ids).scalar_subquery()))


def _mine(dialect: str) -> ColumnElement[bool]:
    """Batches this worker claimed: `sending`, or `unknown` if another run took it for an
    orphan meanwhile (the real answer is better). The statements that use it name their
    batches by id: on PostgreSQL the state is kept from the planner's index choices
    (`_not_an_index`; SQLite, which updates rows in place, finds the few `sending` ones)."""
    state: ColumnElement[Any] = batches.c.state
    if dialect == "postgresql":
        state = _not_an_index(state, dialect)
    return and_(
        batches.c.campaign_id == bindparam("cid"),
        batches.c.claimed_by == bindparam("worker"),
        or_(state == BatchState.SENDING, state == BatchState.UNKNOWN),
    )


def _candidates(dialect: str) -> Select[Any]:
    """The next `lim` pending batches (lowest seq first), locked (on PostgreSQL those
    another worker has locked are skipped), as one row: a JSON array of
    CANDIDATE_COLUMNS arrays."""
    pending = _next_pending(*(batches.c[name] for name in CANDIDATE_COLUMNS)).subquery()
    return _json_rows(dialect, [pending.c[name] for name in CANDIDATE_COLUMNS]).select_from(pending)


def _next_pending(*columns: Any, sending: ColumnElement[bool] | None = None) -> Select[Any]:
    """`columns` of the campaign's next `lim` pending batches (lowest seq first), locked, those
    another worker has locked skipped (PostgreSQL); none unless `sending` holds, if given."""
    where = [batches.c.campaign_id == bindparam("cid"), batches.c.state == BatchState.PENDING]
    return (
        select(*columns)
        .where(*where, *([] if sending is None else [sending]))
        .order_by(batches.c.seq)
        .limit(bindparam("lim"))
        .with_for_update(skip_locked=True)
    )


def _json_rows(dialect: str, row: list[Any]) -> Select[Any]:
    """One row: a JSON array with one array of `row`'s values per row it is selected from."""
    if dialect == "postgresql":
        return select(func.json_agg(func.json_build_array(*row)))
    return select(func.json_group_array(func.json_array(*row)))


def _answers(dialect: str, *names: str) -> CTE:
    """The rows of the JSON parameter `answers` as a table (`bid`, then `names`).

    MATERIALIZED: the JSON is read once into a table; without it SQLite reads the JSON
    again for each batch the update looks at."""
    param = bindparam("answers", type_=String)
    fields = ("bid", *names)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB  # only where the store is one

        rows = func.jsonb_array_elements(cast(param, JSONB)).table_valued("value").alias("e")
        columns = [rows.c.value.op("->>")(literal(i)).label(n) for i, n in enumerate(fields)]
    else:
        rows = func.json_each(param).table_valued("value").alias("e")
        columns = [
            func.json_extract(rows.c.value, f"$[{i}]").label(n) for i, n in enumerate(fields)
        ]
    return select(*columns).select_from(rows).cte("answers").prefix_with("MATERIALIZED")
