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
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from sqlalchemy import (
    CTE,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from campaign.errors import UsageError
from campaign.gateway.protocol import report_status_info, submit_code_info
from campaign.plan import OUTCOMES as ALL_OUTCOMES
from campaign.redact import redact
from campaign.store.campaigns import CampaignRecord, get_campaign
from campaign.store.schema import batches, recipients, reports
from campaign.zh import reason_zh

DELIVERED_STATUS = "DELIVRD"

#: Outcome values of the result spreadsheet (SPEC), in the order they are shown: the
#: plan's, less `ready` (which only a plan shows).
OUTCOMES: tuple[str, ...] = tuple(o for o in ALL_OUTCOMES if o != "ready")
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
READ_AHEAD = 2  # chunks read from the store (in threads) while the caller works on one

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

_INT_COLUMNS = frozenset({"row_no", "source_row", "segments", "n_reports"})
_CELLS_SCHEMA = pa.schema([("c", pa.list_(pa.string()))])
#: results_select columns read for the result rows, under short keys in the JSON lines
_FETCHED = (
    "row_no",
    "cells",
    "source",
    "source_row",
    "normalized_mobile",
    "carrier",
    "outcome",
    "plan_reason",
    "message",
    "segments",
    "batch_id",
    "batch_state",
    "batch_detail",
    "msgid",
    "submit_code",
    "dlr_status",
    "report_time",
)
_JSON_KEYS = {f"k{pos}": name for pos, name in enumerate(_FETCHED)}
_ROW_NO_KEY = "k0"
_JSON_SCHEMA = pa.schema(
    [
        (
            key,
            pa.list_(pa.string())
            if name == "cells"
            else pa.int64()
            if name in _INT_COLUMNS
            else pa.string(),
        )
        for key, name in _JSON_KEYS.items()
    ]
)
_JSON_BLOCK = 1 << 22  # bytes of cell JSON per parsing block (Arrow's JSON reader)
_PLAN_OUTCOMES = ["invalid", "duplicate", "suppressed", "capped", "unsent"]  # the plan's reason


@overload
def iter_results(
    engine: Engine,
    campaign_id: int,
    *,
    chunk_rows: int = ...,
    lang: str = ...,
    arrow: Literal[False] = ...,
) -> Iterator[pd.DataFrame]: ...


@overload
def iter_results(
    engine: Engine,
    campaign_id: int,
    *,
    chunk_rows: int = ...,
    lang: str = ...,
    arrow: Literal[True],
) -> Iterator[pa.Table]: ...


def iter_results(
    engine: Engine,
    campaign_id: int,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    lang: str = "en",
    arrow: bool = False,
) -> Iterator[pd.DataFrame] | Iterator[pa.Table]:
    """Yield the result rows of a campaign in input order, `chunk_rows` input rows at a time.

    Each frame has the campaign's original columns (text), then exactly RESULT_COLUMNS.
    Original column names may repeat a result column's name: select by position.
    `arrow=True` yields the same chunks as pyarrow Tables (text columns `string`, "" where
    empty; source_row and segments `int64`, null where empty), without building pandas
    object columns: what the CSV writer takes.
    """
    _check_lang(lang)
    if chunk_rows < 1:
        raise UsageError("chunk_rows must be at least 1")
    header = get_campaign(engine, campaign_id)
    for lo, payload in _raw_chunks(engine, campaign_id, chunk_rows):
        raw = _chunk_columns(engine, campaign_id, lo, lo + chunk_rows, payload)
        if not raw:
            continue
        table = _result_table(raw, header, lang)
        yield table if arrow else frame_from_table(table, header.columns)


def _raw_chunks(
    engine: Engine, campaign_id: int, chunk_rows: int
) -> Iterator[tuple[int, bytes | dict[str, pa.Array]]]:
    """`results_select` chunk by chunk (first row_no, then JSON lines or Arrow columns).

    The next READ_AHEAD chunks are read in threads (SQLite works without the GIL) while the
    caller works on this one; the JSON lines are parsed by `_chunk_columns`, in the caller's
    thread. Errors are raised in the caller; stopping early waits for the reads in progress.
    """
    with engine.connect() as conn:
        top = conn.execute(
            select(func.max(recipients.c.row_no)).where(recipients.c.campaign_id == campaign_id)
        ).scalar()
    if top is None:
        return
    starts = iter(range(0, top + 1, chunk_rows))
    pool = ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="results-read-ahead")
    pending: deque[Future[bytes | dict[str, pa.Array]]] = deque()

    def fill() -> None:
        while len(pending) < READ_AHEAD and (lo := next(starts, None)) is not None:
            pending.append(pool.submit(_read_chunk, engine, campaign_id, lo, lo + chunk_rows))

    try:
        fill()
        lo = 0
        while pending:
            payload = pending.popleft().result()
            fill()
            if payload:
                yield lo, payload
            lo += chunk_rows
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _read_chunk(engine: Engine, campaign_id: int, lo: int, hi: int) -> bytes | dict[str, pa.Array]:
    with engine.connect() as conn:
        payload: bytes | dict[str, pa.Array] | None = None
        if engine.dialect.name == "sqlite":
            payload = _json_blob(conn, campaign_id, lo, hi)
        if payload is None:
            payload = _tuple_chunk(conn, campaign_id, lo, hi)
    return payload


def _chunk_columns(
    engine: Engine, campaign_id: int, lo: int, hi: int, payload: bytes | dict[str, pa.Array]
) -> dict[str, pa.Array]:
    if isinstance(payload, dict):
        return payload
    raw = _json_columns(payload)
    if raw is None:  # lines Arrow would not take: read this chunk again, as tuples
        with engine.connect() as conn:
            raw = _tuple_chunk(conn, campaign_id, lo, hi)
    return raw


def _tuple_chunk(conn: Connection, campaign_id: int, lo: int, hi: int) -> dict[str, pa.Array]:
    """One chunk of `results_select` through DBAPI tuples ({} when it has no rows)."""
    result = conn.execute(results_select(campaign_id, lo, hi))
    keys = list(result.keys())
    # plain tuples from the DBAPI cursor: these columns need no type processing, and
    # building SQLAlchemy Row objects would double the time of a chunk
    rows = result.cursor.fetchall()
    result.close()
    return _columns(keys, rows) if rows else {}


def _json_blob(conn: Connection, campaign_id: int, lo: int, hi: int) -> bytes | None:
    """One chunk of `results_select` as ONE value: its rows as JSON lines (SQLite).

    SQLite writes the lines (json_object per row, group_concat) without holding the GIL;
    Arrow's JSON reader parses them into columns (`_json_columns`): no Python object per
    value. b"" when the chunk has no rows; None when SQLite could not (e.g. a chunk past its
    string size limit): the caller reads the chunk as tuples instead.
    """
    try:
        blob = conn.execute(_json_select(campaign_id, lo, hi)).scalar()
    except DBAPIError:
        conn.rollback()
        return None
    return b"" if blob is None else bytes(blob)


def _json_columns(blob: bytes) -> dict[str, pa.Array] | None:
    """`_json_blob`'s lines as Arrow columns (None when Arrow does not take them)."""
    try:
        table = _read_json_lines(blob, _JSON_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    row_no = table[_ROW_NO_KEY]
    if not pc.all(pc.greater(row_no[1:], row_no[:-1])).as_py():
        table = table.sort_by(_ROW_NO_KEY)  # group_concat's order is not promised
    return {name: table[key].combine_chunks() for key, name in _JSON_KEYS.items()}


def _json_select(campaign_id: int, lo: int, hi: int) -> Select:
    sub = results_select(campaign_id, lo, hi).subquery("q")
    pairs: list[Any] = []
    for key, name in _JSON_KEYS.items():
        pairs += [literal(key), func.json(sub.c.cells) if name == "cells" else sub.c[name]]
    lines = func.group_concat(func.json_object(*pairs), literal("\n"))
    return select(cast(lines, LargeBinary))


def _read_json_lines(data: bytes, schema: pa.Schema) -> pa.Table:
    """JSON lines -> Table with Arrow's reader (one block when a line is longer than a block)."""
    parse = pj.ParseOptions(explicit_schema=schema)
    try:
        return pj.read_json(pa.BufferReader(data), pj.ReadOptions(block_size=_JSON_BLOCK), parse)
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc) or len(data) < _JSON_BLOCK:
            raise
    return pj.read_json(pa.BufferReader(data), pj.ReadOptions(block_size=len(data) + 1), parse)


def _columns(keys: list[str], rows: list[tuple[Any, ...]]) -> dict[str, pa.Array]:
    """DBAPI row tuples -> one typed Arrow array per column."""
    return {
        key: pa.array(values, type=pa.int64() if key in _INT_COLUMNS else pa.string())
        for key, values in zip(keys, zip(*rows, strict=True), strict=True)
    }


def _result_table(raw: dict[str, pa.Array], header: CampaignRecord, lang: str) -> pa.Table:
    sent = pc.is_in(raw["batch_state"], value_set=pa.array(["accepted", "rejected", "unknown"]))
    dlr_status = _filled(raw["dlr_status"])
    out = {
        "source": _filled(raw["source"]),
        "source_row": raw["source_row"],
        "normalized_mobile": _filled(raw["normalized_mobile"]),
        "carrier": _filled(raw["carrier"]),
        "outcome": raw["outcome"],
        "reason": _reasons(raw, header, lang),
        "message": _filled(raw["message"]),
        "segments": raw["segments"],
        "batch_id": _filled(raw["batch_id"]),
        "msgid": pc.if_else(sent, _filled(raw["msgid"]), ""),
        "submit_code": pc.if_else(sent, _filled(raw["submit_code"]), ""),
        "dlr_status": dlr_status,
        "dlr_description": _mapped(dlr_status, lambda s: _status_meaning(s, lang) if s else ""),
        "report_time": _filled(raw["report_time"]),
    }
    cells = _cell_columns(raw["cells"], len(header.columns))
    return pa.Table.from_arrays(
        [*cells, *(out[name] for name in RESULT_COLUMNS)],
        names=[*header.columns, *RESULT_COLUMNS],
    )


def _cell_columns(cells: pa.Array, n_columns: int) -> list[pa.Array]:
    """The cell lists of a chunk (JSON text, or lists parsed already) as one text column per
    original column: "" where a list is shorter, extra cells dropped.

    JSON text is parsed by Arrow's JSON reader as one document a line (no Python object per
    cell); only text it refuses goes through json.loads.
    """
    if not n_columns:
        return []
    if not pa.types.is_list(cells.type):
        cells = _parse_cell_lists(cells)
    fixed = pc.list_slice(cells, 0, n_columns, return_fixed_size_list=True)  # pads with nulls
    flat = fixed.values
    starts = np.arange(len(fixed), dtype=np.int64) * n_columns
    return [_filled(flat.take(starts + pos)) for pos in range(n_columns)]


def _parse_cell_lists(cells: pa.Array) -> pa.Array:
    lines = pc.binary_join_element_wise('{"c":', pc.fill_null(cells, "[]"), "}\n", "")
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32, count=len(lines) + 1, offset=4 * lines.offset)
    try:
        return _read_json_lines(data[int(bounds[0]) : int(bounds[-1])], _CELLS_SCHEMA)[
            "c"
        ].combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text (never written so): as text
        rows = json.loads("[" + ",".join(pc.fill_null(cells, "[]").to_pylist()) + "]")
        texts = [[None if v is None else str(v) for v in row or []] for row in rows]
        return pa.array(texts, pa.list_(pa.string()))


def frame_from_table(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    """The pandas form of a result chunk: object columns of str, Int64 for the numbers."""
    index = pd.RangeIndex(table.num_rows)
    cells = pd.DataFrame(
        {pos: _object_series(table.column(pos), index) for pos in range(len(columns))},
        index=index,
    )
    cells.columns = pd.Index(columns, dtype=object)
    out = pd.DataFrame(index=index)
    for pos, name in enumerate(RESULT_COLUMNS, start=len(columns)):
        column = table.column(pos)
        if pa.types.is_integer(column.type):
            out[name] = _int_series(column, index)
        else:
            out[name] = _object_series(column, index)
    return pd.concat([cells, out], axis=1)


def _object_series(column: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(column.to_numpy(zero_copy_only=False), index=index, dtype=object)


def _int_series(column: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    values = pc.fill_null(column, 0).to_numpy()
    mask = column.is_null().to_numpy(zero_copy_only=False)
    return pd.Series(pd.arrays.IntegerArray(values.astype("int64"), mask), index=index)


def _reasons(raw: dict[str, pa.Array], header: CampaignRecord, lang: str) -> pa.Array:
    words = _REASONS[lang]
    said = _said(lang)  # a reason made in English where it arose, in `lang`
    outcome, state = raw["outcome"], raw["batch_state"]
    planned = pc.is_in(outcome, value_set=pa.array(_PLAN_OUTCOMES))
    reason = pc.if_else(planned, _filled(raw["plan_reason"]), "")
    if lang != "en":
        reason = _replace_mapped(reason, planned, reason, said)

    reason = _replace_mapped(
        reason,
        _is(outcome, "failed"),
        _filled(raw["dlr_status"]),
        lambda s: words["failed"].format(status=s, meaning=_status_meaning(s, lang)),
    )
    reason = pc.if_else(_is(outcome, "pending"), words["pending"], reason)
    reason = _replace_mapped(
        reason,
        _is(outcome, "rejected"),
        _filled(raw["submit_code"]),
        lambda c: words["rejected"].format(code=c, meaning=_code_meaning(c, lang)),
    )
    reason = _replace_mapped(
        reason,
        _is(outcome, "unknown"),
        _filled(raw["batch_detail"]),
        lambda d: words["unknown"].format(detail=said(d)) if d else words["unknown_plain"],
    )
    # Ready rows whose batch never went out: the plan said "send", the run did not get there.
    unsent = pc.and_(_is(outcome, "unsent"), pc.or_(pc.is_valid(state), _is(reason, "")))
    return _replace_mapped(
        reason,
        unsent,
        _filled(raw["batch_detail"]),
        lambda d: _unsent_reason(said(d), said(header.stop_reason or ""), words),
    )


def _replace_mapped(
    target: pa.Array, mask: pa.Array, keys: pa.Array, describe: Callable[[str], str]
) -> pa.Array:
    """`target` with the rows of `mask` replaced by describe(key), once per distinct key."""
    if not pc.any(mask).as_py():
        return target
    return pc.replace_with_mask(target, mask, _mapped(pc.filter(keys, mask), describe))


def _mapped(keys: pa.Array, describe: Callable[[str], str]) -> pa.Array:
    """describe(key) for every row, computed once per distinct key."""
    encoded = pc.dictionary_encode(keys)
    values = pa.array([describe(key) for key in encoded.dictionary.to_pylist()], pa.string())
    return values.take(encoded.indices)


def _is(values: pa.Array, value: str) -> pa.Array:
    return pc.fill_null(pc.equal(values, value), False)


def _filled(values: pa.Array) -> pa.Array:
    """Text column: null -> ""."""
    return pc.fill_null(values, "")


def _said(lang: str) -> Callable[[str | None], str]:
    """A reason made in English (plan, sender, gateway, jobs) in `lang` (campaign.zh)."""
    if lang == "zh":  # redact: the last line of defence for a store written before it
        return lambda text: reason_zh(redact(text or ""))
    return lambda text: redact(text or "")


def _unsent_reason(detail: str, stop_reason: str | None, words: Mapping[str, str]) -> str:
    if detail:
        return words["unsent_detail"].format(why=detail)
    if stop_reason:
        return words["unsent_stopped"].format(why=stop_reason)
    return words["unsent_yet"]


def _status_meaning(status: str, lang: str) -> str:
    info = report_status_info(status)
    return str(info.zh if lang == "zh" else info.en)


def _code_meaning(code: str, lang: str) -> str:
    info = submit_code_info(code)
    return str(info.zh if lang == "zh" else info.en)


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
