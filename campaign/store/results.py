"""The read side of the store: every input row with its final outcome; a campaign's figures.

The outcome of a recipient is decided when it is read, in SQL, from what the other parts
of the system wrote:

- the plan outcome (`recipients.outcome`) unless it is `ready`;
- for a `ready` row, its batch's state: `accepted` -> `delivered` / `failed` / `pending` from
  the delivery reports joined on (batch msgid, recipient mobile); `rejected`; `unknown`;
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

Everything here is a handful of SQL statements; `iter_results` streams a campaign of any size
in chunks of input rows with bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import CTE, Engine, Integer, Select, and_, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from campaign.errors import UsageError
from campaign.gateway.protocol import report_status_info, submit_code_info
from campaign.store.campaigns import CampaignRecord, get_campaign
from campaign.store.schema import batches, recipients, reports

DELIVERED_STATUS = "DELIVRD"

#: Outcome values of the result spreadsheet (SPEC), in the order they are shown.
OUTCOMES: tuple[str, ...] = (
    "delivered",
    "failed",
    "pending",
    "rejected",
    "unknown",
    "invalid",
    "duplicate",
    "suppressed",
    "unsent",
)
#: Outcomes of rows the gateway accepted: these are the billed ones.
ACCEPTED_OUTCOMES: tuple[str, ...] = ("delivered", "failed", "pending")

#: Columns after the original ones, with exactly the names of SPEC.
RESULT_COLUMNS: tuple[str, ...] = (
    "source",
    "source_row",
    "normalized_mobile",
    "carrier",
    "outcome",
    "reason",
    "message",
    "segments",
    "batch_id",
    "msgid",
    "submit_code",
    "dlr_status",
    "dlr_description",
    "report_time",
)
LANGS = ("en", "zh")
DEFAULT_CHUNK_ROWS = 100_000

_REASONS: dict[str, dict[str, str]] = {
    "en": {
        "failed": "not delivered: {status} ({meaning})",
        "pending": "accepted by the gateway; no delivery report yet",
        "rejected": "the gateway refused the request: code {code} ({meaning})",
        "unknown": "the request may or may not have reached the gateway ({detail}); not resent",
        "unknown_plain": "the request may or may not have reached the gateway; not resent",
        "unsent_stopped": "not sent: the run stopped ({why})",
        "unsent_detail": "not sent: {why}",
        "unsent_yet": "not sent yet",
    },
    "zh": {
        "failed": "未送达：{status}（{meaning}）",
        "pending": "网关已接收，尚无状态报告",
        "rejected": "网关拒绝了该请求：代码 {code}（{meaning}）",
        "unknown": "请求可能已到达网关，也可能没有（{detail}）；未重发",
        "unknown_plain": "请求可能已到达网关，也可能没有；未重发",
        "unsent_stopped": "未发送：运行已停止（{why}）",
        "unsent_detail": "未发送：{why}",
        "unsent_yet": "尚未发送",
    },
}


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


def _scoped_reports(campaign_id: int, lo: int | None, hi: int | None) -> CTE:
    """Reports joined to the ready recipients of accepted batches (of rows lo..hi-1 if given)."""
    r, b, rep = recipients.alias("sr"), batches.alias("sb"), reports.alias("rep")
    where = [r.c.campaign_id == campaign_id, r.c.outcome == "ready", b.c.state == "accepted"]
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
    scoped = _scoped_reports(campaign_id, lo, hi)
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
        (r.c.outcome != "ready", r.c.outcome),
        (
            b.c.state == "accepted",
            case(
                (stats.c.n_reports.is_(None), "pending"),
                (delivered, "delivered"),
                else_="failed",
            ),
        ),
        (b.c.state == "rejected", "rejected"),
        (b.c.state == "unknown", "unknown"),
        else_="unsent",
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
# Streaming the rows.


def iter_results(
    engine: Engine,
    campaign_id: int,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    lang: str = "en",
) -> Iterator[pd.DataFrame]:
    """Yield the result rows of a campaign in input order, `chunk_rows` input rows at a time.

    Each frame has the campaign's original columns (text), then exactly RESULT_COLUMNS.
    Original column names may repeat a result column's name: select by position.
    """
    _check_lang(lang)
    if chunk_rows < 1:
        raise UsageError("chunk_rows must be at least 1")
    header = get_campaign(engine, campaign_id)
    with engine.connect() as conn:
        top = conn.execute(
            select(func.max(recipients.c.row_no)).where(recipients.c.campaign_id == campaign_id)
        ).scalar()
    if top is None:
        return
    for lo in range(0, top + 1, chunk_rows):
        with engine.connect() as conn:
            result = conn.execute(results_select(campaign_id, lo, lo + chunk_rows))
            keys = list(result.keys())
            # plain tuples from the DBAPI cursor: these columns need no type processing, and
            # building SQLAlchemy Row objects would double the time of a chunk
            rows = result.cursor.fetchall()
            result.close()
            raw = pd.DataFrame(rows, columns=keys, dtype=object)
        if len(raw):
            yield _result_frame(raw, header, lang)


def _result_frame(raw: pd.DataFrame, header: CampaignRecord, lang: str) -> pd.DataFrame:
    cells = _cells_frame(raw["cells"], header.columns, raw.index)
    out = pd.DataFrame(index=raw.index)
    out["source"] = _text(raw["source"])
    out["source_row"] = raw["source_row"].astype("Int64")
    out["normalized_mobile"] = _text(raw["normalized_mobile"])
    out["carrier"] = _text(raw["carrier"])
    out["outcome"] = raw["outcome"].astype(object)
    out["reason"] = _reasons(raw, header, lang)
    out["message"] = _text(raw["message"])
    out["segments"] = pd.to_numeric(raw["segments"]).astype("Int64")
    out["batch_id"] = _text(raw["batch_id"])
    sent = raw["batch_state"].isin(["accepted", "rejected", "unknown"])
    out["msgid"] = _text(raw["msgid"].where(sent))
    out["submit_code"] = _text(raw["submit_code"].where(sent))
    out["dlr_status"] = _text(raw["dlr_status"])
    out["dlr_description"] = _status_meanings(out["dlr_status"], lang)
    out["report_time"] = _text(raw["report_time"])
    return pd.concat([cells, out], axis=1)


def _cells_frame(cells: pd.Series, columns: list[str], index: pd.Index) -> pd.DataFrame:
    """Decode the JSON cell lists of a chunk with one json.loads call, not one per row."""
    if not columns:
        return pd.DataFrame(index=index)
    rows = json.loads("[" + ",".join(cells.fillna("[]").tolist()) + "]")
    frame = pd.DataFrame(rows, index=index, columns=range(len(columns)), dtype=object)
    frame = frame.reindex(columns=range(len(columns)))
    frame = frame.where(frame.notna(), "")
    frame.columns = pd.Index(columns, dtype=object)
    return frame


def _reasons(raw: pd.DataFrame, header: CampaignRecord, lang: str) -> pd.Series:
    words = _REASONS[lang]
    outcome = raw["outcome"]
    reason = _text(raw["plan_reason"])
    reason = reason.where(outcome.isin(["invalid", "duplicate", "suppressed", "unsent"]), "")

    failed = outcome == "failed"
    if failed.any():
        status = raw.loc[failed, "dlr_status"].fillna("")
        reason[failed] = status.map(
            {
                s: words["failed"].format(status=s, meaning=_status_meaning(s, lang))
                for s in status.unique()
            }
        )
    reason[outcome == "pending"] = words["pending"]

    rejected = outcome == "rejected"
    if rejected.any():
        codes = raw.loc[rejected, "submit_code"].fillna("")
        reason[rejected] = codes.map(
            {
                c: words["rejected"].format(code=c, meaning=_code_meaning(c, lang))
                for c in codes.unique()
            }
        )

    unknown = outcome == "unknown"
    if unknown.any():
        detail = raw.loc[unknown, "batch_detail"].fillna("")
        reason[unknown] = detail.map(
            {
                d: words["unknown"].format(detail=d) if d else words["unknown_plain"]
                for d in detail.unique()
            }
        )

    # Ready rows whose batch never went out: the plan said "send", the run did not get there.
    unsent = (outcome == "unsent") & (raw["batch_state"].notna() | (reason == ""))
    if unsent.any():
        detail = raw.loc[unsent, "batch_detail"].fillna("")
        reason[unsent] = detail.map(
            {d: _unsent_reason(d, header.stop_reason, words) for d in detail.unique()}
        )
    return reason


def _unsent_reason(detail: str, stop_reason: str | None, words: Mapping[str, str]) -> str:
    if detail:
        return words["unsent_detail"].format(why=detail)
    if stop_reason:
        return words["unsent_stopped"].format(why=stop_reason)
    return words["unsent_yet"]


def _status_meanings(status: pd.Series, lang: str) -> pd.Series:
    meanings = {s: (_status_meaning(s, lang) if s else "") for s in status.unique()}
    return status.map(meanings).astype(object)


def _status_meaning(status: str, lang: str) -> str:
    info = report_status_info(status)
    return str(info.zh if lang == "zh" else info.en)


def _code_meaning(code: str, lang: str) -> str:
    info = submit_code_info(code)
    return str(info.zh if lang == "zh" else info.en)


def _text(series: pd.Series) -> pd.Series:
    """Text column: None/NaN -> "", everything else str."""
    return series.astype(object).where(series.notna(), "")


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise UsageError(f"unknown language {lang!r}; use en or zh")


# ---------------------------------------------------------------------------------------------
# Figures of a campaign (status, summary sheet).


def outcome_counts(engine: Engine, campaign_id: int) -> dict[str, int]:
    """Outcome -> number of input rows, every outcome of SPEC present (zeros included)."""
    sub = results_select(campaign_id).subquery()
    query = select(sub.c.outcome, func.count()).group_by(sub.c.outcome)
    with engine.connect() as conn:
        found = {outcome: int(n) for outcome, n in conn.execute(query)}
    counts = {outcome: found.pop(outcome, 0) for outcome in OUTCOMES}
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


@dataclass(frozen=True)
class SegmentTotals:
    planned: int  # billed parts of every row the plan would send (ready rows)
    billed: int  # billed parts of the rows the gateway accepted
    accepted_rows: int  # rows the gateway accepted (delivered + failed + pending)


def segment_totals(engine: Engine, campaign_id: int) -> SegmentTotals:
    sub = results_select(campaign_id).subquery()
    accepted = sub.c.outcome.in_(ACCEPTED_OUTCOMES)
    ready = sub.c.batch_id.is_not(None) & ~sub.c.outcome.in_(("invalid", "duplicate", "suppressed"))
    query = select(
        func.coalesce(func.sum(case((ready, sub.c.segments), else_=0)), 0),
        func.coalesce(func.sum(case((accepted, sub.c.segments), else_=0)), 0),
        func.coalesce(func.sum(case((accepted, 1), else_=0)), 0),
    )
    with engine.connect() as conn:
        planned, billed, rows = conn.execute(query).one()
    return SegmentTotals(int(planned), int(billed), int(rows))


BREAKDOWNS = ("carrier", "source")


def outcome_breakdown(engine: Engine, campaign_id: int, by: str) -> pd.DataFrame:
    """Rows per `by` value ("carrier" or "source") and outcome.

    Columns: `by`, rows, one column per outcome (SPEC order), delivery_rate (delivered over
    accepted, NaN when nothing was accepted). Sorted by rows, most first (ties by value); "" for no
    value.
    """
    if by not in BREAKDOWNS:
        raise UsageError(f"breakdown by {by!r}; use one of {', '.join(BREAKDOWNS)}")
    sub = results_select(campaign_id).subquery()
    key = func.coalesce(sub.c[by], "")
    query = select(key.label(by), sub.c.outcome, func.count().label("n")).group_by(
        key, sub.c.outcome
    )
    with engine.connect() as conn:
        long = pd.DataFrame(conn.execute(query).fetchall(), columns=[by, "outcome", "n"])
    return breakdown_frame(long, by)


def breakdown_frame(long: pd.DataFrame, by: str) -> pd.DataFrame:
    """`outcome_breakdown`'s table from counts in long form (columns: by, outcome, n)."""
    if long.empty:
        columns = [by, "rows", *OUTCOMES, "delivery_rate"]
        return pd.DataFrame({c: pd.Series(dtype=object if c == by else "int64") for c in columns})
    long = long.astype({"n": "int64"})
    wide = long.pivot_table(index=by, columns="outcome", values="n", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=list(OUTCOMES), fill_value=0).astype("int64")
    wide.insert(0, "rows", wide.sum(axis=1))
    accepted = wide[list(ACCEPTED_OUTCOMES)].sum(axis=1)
    wide["delivery_rate"] = (wide["delivered"] / accepted.where(accepted > 0)).astype("float64")
    wide = wide.sort_index().sort_values("rows", ascending=False, kind="stable")
    return wide.reset_index().rename_axis(columns=None)


def report_status_breakdown(engine: Engine, campaign_id: int, *, lang: str = "en") -> pd.DataFrame:
    """Columns: status, description, recipients, share (of recipients with a report)."""
    _check_lang(lang)
    return status_frame(report_status_counts(engine, campaign_id), lang)


def status_frame(counts: Mapping[str, int], lang: str = "en") -> pd.DataFrame:
    """`report_status_breakdown`'s table from status -> recipients (most frequent first)."""
    counts = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    frame = pd.DataFrame({"status": list(counts), "recipients": list(counts.values())})
    frame.insert(1, "description", [_status_meaning(s, lang) for s in frame["status"]])
    total = frame["recipients"].sum()
    frame["share"] = frame["recipients"] / total if total else 0.0
    return frame.astype({"recipients": "int64", "share": "float64"})


def reports_per_hour(engine: Engine, campaign_id: int) -> pd.DataFrame:
    """Reports of the campaign's recipients per hour of report time (China time).

    Columns: hour ("YYYY-MM-DD HH:00"), reports, delivered (DELIVRD reports), in time order.
    """
    scoped = _scoped_reports(campaign_id, None, None)
    hour = func.substr(scoped.c.report_time, 1, 13)
    query = (
        select(
            hour.label("hour"),
            func.count().label("reports"),
            func.sum(case((scoped.c.status == DELIVERED_STATUS, 1), else_=0)).label("delivered"),
        )
        .group_by(hour)
        .order_by(hour)
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(query).fetchall(), columns=["hour", "reports", "delivered"]
        )
    frame["hour"] = frame["hour"].astype(str).str.replace("T", " ", regex=False) + ":00"
    return frame.astype({"reports": "int64", "delivered": "int64"})
