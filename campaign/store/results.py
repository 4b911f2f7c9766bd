"""The read side of the store: every input row with its final outcome; a campaign's figures.

The outcome of a recipient is decided when it is read, in SQL, from what the other parts
of the system wrote:

- the plan outcome (`recipients.outcome`) unless it is `ready`;
- for a `ready` row, its batch's state: `accepted` -> `delivered` / `failed` / `pending` from
  the delivery reports joined on (batch msgid, recipient mobile); `rejected`; `unknown`;
  `cancelled` (the campaign was cancelled before it left) -> `cancelled`;
  `pending` / `sending` / `unsent` -> `unsent`.

Reports of one recipient (one per part of a long SMS, pushes repeated): `delivered` only when
every report is DELIVRD; otherwise `failed` with `dlr_status` = the first non-DELIVRD status
by report time (ties: the status first in alphabetical order); `report_time` = the latest
report's time. No report: `pending`.

Unmatched reports: a report is matched when some recipient in a batch whose msgid is the
report's msgid has the report's mobile. `unmatched_reports(engine)` counts every stored report
that is not matched (including reports whose msgid no batch carries yet: they may still become
matched when the sender records the msgid). `unmatched_reports(engine, campaign_id)` counts the
reports that carry one of that campaign's msgids but whose mobile is in no batch of that
campaign with that msgid (misrouted or foreign numbers). Both count report rows (a repeated
push is stored once, so it counts once).

Everything here is a handful of SQL statements and imports neither pandas nor pyarrow
(`campaign status` reads its figures here and starts quickly). Beside it:
`campaign.store.result_chunks` streams a campaign of any size in chunks of input rows with
bounded memory (Arrow arrays; on SQLite through the JSON transport of
`campaign.store.json_transport`), and `campaign.store.breakdowns` makes the tables of
the summary sheet and the charts (pandas). The reason texts and the spreadsheet's columns
are made above the store, in `campaign.result_rows` and `campaign.result_texts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CTE,
    Engine,
    Integer,
    Select,
    and_,
    case,
    func,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from campaign.outcomes import (
    ACCEPTED_OUTCOMES,
    DELIVERED_STATUS,
    LEFT_OUT_OUTCOMES,
    RESULT_COLUMNS,
    BatchState,
    Outcome,
)
from campaign.outcomes import RESULT_OUTCOMES as OUTCOMES
from campaign.store.schema import batches, recipients, reports
from campaign.store.statistics import refresh_statistics

__all__ = [
    "ACCEPTED_OUTCOMES",
    "DELIVERED_STATUS",
    "OUTCOMES",
    "RESULT_COLUMNS",
    "SegmentTotals",
    "outcome_counts",
    "recipient_count",
    "report_status_counts",
    "results_select",
    "scoped_reports",
    "segment_totals",
    "unknown_msgid_reports",
    "unmatched_reports",
]

# ---------------------------------------------------------------------------------------------
# The query: recipients + their batch + their reports, aggregated per recipient.

_SEP = "|"  # between time and status in `first_failure`; in neither an ISO time nor a status


class _position(FunctionElement[int]):
    """1-based position of a substring (0 when absent): instr() in SQLite, strpos() in PG."""

    type = Integer()
    inherit_cache = True


@compiles(_position)
def _position_sqlite(element: _position, compiler: Any, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


@compiles(_position, "postgresql")
def _position_postgresql(element: _position, compiler: Any, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


def scoped_reports(campaign_id: int, lo: int | None, hi: int | None) -> CTE:
    """Reports joined to the ready recipients of accepted batches (of rows lo..hi-1 if given)."""
    r, b, rep = recipients.alias("sr"), batches.alias("sb"), reports.alias("rep")
    where = [
        r.c.campaign_id == campaign_id,
        r.c.outcome == Outcome.READY,
        b.c.state == BatchState.ACCEPTED,
    ]
    if lo is not None and hi is not None:
        where += [r.c.row_no >= lo, r.c.row_no < hi]
    joined = r.join(b, and_(b.c.campaign_id == r.c.campaign_id, b.c.batch_id == r.c.batch_id))
    joined = joined.join(rep, and_(rep.c.msgid == b.c.msgid, rep.c.mobile == r.c.mobile))
    return (
        select(
            r.c.row_no,
            rep.c.status,
            rep.c.report_time,
        )
        .select_from(joined)
        .where(*where)
        .cte("scoped")
    )


def results_select(campaign_id: int, lo: int | None = None, hi: int | None = None) -> Select:
    """One row per recipient (rows lo..hi-1, or all) with its final outcome, in SQL.

    Columns: row_no, cells, source, source_row, normalized_mobile, carrier, outcome,
    plan_outcome, plan_reason, message, segments, batch_id, batch_state, batch_detail, msgid,
    submit_code, dlr_status, report_time, n_reports.
    """
    r, b = recipients.alias("r"), batches.alias("b")
    scoped = scoped_reports(campaign_id, lo, hi)
    stats = (
        select(
            scoped.c.row_no,
            func.count().label("n_reports"),
            func.sum(case((scoped.c.status == DELIVERED_STATUS, 1), else_=0)).label("n_ok"),
            func.max(scoped.c.report_time).label("last_time"),
            # "time|status" of the first non-DELIVRD report: ISO times of one offset sort as text
            func.min(
                case(
                    (
                        scoped.c.status != DELIVERED_STATUS,
                        scoped.c.report_time + _SEP + scoped.c.status,
                    ),
                    else_=None,
                )
            ).label("first_failure"),
        )
        .group_by(scoped.c.row_no)
        .subquery("stats")
    )
    delivered = stats.c.n_ok == stats.c.n_reports
    outcome: ColumnElement[str] = case(
        (r.c.outcome != Outcome.READY, r.c.outcome),
        (
            b.c.state == BatchState.ACCEPTED,
            case(
                (stats.c.n_reports.is_(None), Outcome.PENDING.value),
                (delivered, Outcome.DELIVERED.value),
                else_=Outcome.FAILED.value,
            ),
        ),
        (b.c.state == BatchState.REJECTED, Outcome.REJECTED.value),
        (b.c.state == BatchState.UNKNOWN, Outcome.UNKNOWN.value),
        (b.c.state == BatchState.CANCELLED, Outcome.CANCELLED.value),
        else_=Outcome.UNSENT.value,
    )
    dlr_status = case(
        (stats.c.n_reports.is_(None), None),
        (delivered, DELIVERED_STATUS),
        else_=func.substr(
            stats.c.first_failure, _position(stats.c.first_failure, _SEP) + len(_SEP)
        ),
    )
    joined = r.outerjoin(b, and_(b.c.campaign_id == r.c.campaign_id, b.c.batch_id == r.c.batch_id))
    joined = joined.outerjoin(stats, stats.c.row_no == r.c.row_no)
    where = [r.c.campaign_id == campaign_id]
    if lo is not None and hi is not None:
        where += [r.c.row_no >= lo, r.c.row_no < hi]
    return (
        select(
            r.c.row_no,
            r.c.cells,
            r.c.source,
            r.c.source_row,
            r.c.mobile.label("normalized_mobile"),
            r.c.carrier,
            outcome.label("outcome"),
            r.c.outcome.label("plan_outcome"),
            r.c.reason.label("plan_reason"),
            r.c.message,
            r.c.segments,
            r.c.batch_id,
            b.c.state.label("batch_state"),
            b.c.detail.label("batch_detail"),
            b.c.msgid,
            b.c.submit_code,
            dlr_status.label("dlr_status"),
            stats.c.last_time.label("report_time"),
            stats.c.n_reports,
        )
        .select_from(joined)
        .where(*where)
        .order_by(r.c.row_no)
    )


# ---------------------------------------------------------------------------------------------
# Figures of a campaign (status, summary sheet).


def outcome_counts(engine: Engine, campaign_id: int) -> dict[str, int]:
    """Outcome -> number of input rows, every outcome of SPEC present (zeros included)."""
    refresh_statistics(engine, campaign_id)
    sub = results_select(campaign_id).subquery()
    query = select(sub.c.outcome, func.count()).group_by(sub.c.outcome)
    with engine.connect() as conn:
        found = {outcome: int(n) for outcome, n in conn.execute(query)}
    counts = {str(outcome): found.pop(outcome, 0) for outcome in OUTCOMES}  # plain text keys
    counts.update(found)  # an outcome this version does not know: shown, not dropped
    return counts


def report_status_counts(engine: Engine, campaign_id: int) -> dict[str, int]:
    """Report status -> number of recipients whose `dlr_status` it is (most frequent first)."""
    sub = results_select(campaign_id).subquery()
    query = (
        select(sub.c.dlr_status, func.count().label("n"))
        .where(sub.c.dlr_status.is_not(None))
        .group_by(sub.c.dlr_status)
        .order_by(func.count().desc(), sub.c.dlr_status)
    )
    with engine.connect() as conn:
        return {status: int(n) for status, n in conn.execute(query)}


def recipient_count(engine: Engine, campaign_id: int) -> int:
    """Input rows of a campaign (every outcome)."""
    query = select(func.count()).where(recipients.c.campaign_id == campaign_id)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def unmatched_reports(engine: Engine, campaign_id: int | None = None) -> int:
    """Stored reports that match no recipient (see the module docstring for the definition)."""
    rep, b, r = reports.alias("ur"), batches.alias("ub"), recipients.alias("urr")
    match = (
        select(1)
        .select_from(
            b.join(r, and_(r.c.campaign_id == b.c.campaign_id, r.c.batch_id == b.c.batch_id))
        )
        .where(b.c.msgid == rep.c.msgid, r.c.mobile == rep.c.mobile)
    )
    query = select(func.count()).select_from(rep)
    if campaign_id is None:
        query = query.where(~match.exists())
    else:
        own = select(batches.c.msgid).where(
            batches.c.campaign_id == campaign_id, batches.c.msgid.is_not(None)
        )
        query = query.where(
            rep.c.msgid.in_(own), ~match.where(b.c.campaign_id == campaign_id).exists()
        )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def unknown_msgid_reports(engine: Engine) -> int:
    """Stored reports whose msgid no request of any campaign carries (yet)."""
    known = select(batches.c.msgid).where(batches.c.msgid.is_not(None))
    query = select(func.count()).select_from(reports).where(reports.c.msgid.not_in(known))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


@dataclass(frozen=True)
class SegmentTotals:
    planned: int  # billed parts of every row the plan would send (ready rows)
    billed: int  # billed parts of the rows the gateway accepted
    accepted_rows: int  # rows the gateway accepted (delivered + failed + pending)


def segment_totals(engine: Engine, campaign_id: int) -> SegmentTotals:
    refresh_statistics(engine, campaign_id)
    sub = results_select(campaign_id).subquery()
    accepted = sub.c.outcome.in_(ACCEPTED_OUTCOMES)
    ready = sub.c.batch_id.is_not(None) & ~sub.c.outcome.in_(LEFT_OUT_OUTCOMES)
    query = select(
        func.coalesce(func.sum(case((ready, sub.c.segments), else_=0)), 0),
        func.coalesce(func.sum(case((accepted, sub.c.segments), else_=0)), 0),
        func.coalesce(func.sum(case((accepted, 1), else_=0)), 0),
    )
    with engine.connect() as conn:
        planned, billed, rows = conn.execute(query).one()
    return SegmentTotals(int(planned), int(billed), int(rows))
