"""The result rows of a campaign: every input row with its final outcome, in SPEC's columns.

`iter_results` streams them in input order, a chunk of input rows at a time with bounded
memory: the store reads the facts of each row (`campaign.store.results`), this module lays
them out as the original columns then `RESULT_COLUMNS`, with the reasons and descriptions of
`campaign.result_texts` in English or Chinese.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Literal, overload

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from campaign.errors import UsageError
from campaign.outcomes import ANSWERED_STATES, RESULT_COLUMNS
from campaign.outcomes import RESULT_OUTCOMES as OUTCOMES
from campaign.result_texts import LANGS, check_lang, filled, mapped, reasons, status_meaning
from campaign.store.campaigns import CampaignRecord, get_campaign
from campaign.store.json_transport import cell_columns
from campaign.store.result_chunks import iter_result_columns
from campaign.store.results import report_status_counts

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "LANGS",
    "OUTCOMES",
    "RESULT_COLUMNS",
    "frame_from_table",
    "iter_results",
    "report_status_breakdown",
    "status_frame",
]

DEFAULT_CHUNK_ROWS = 100_000


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
    check_lang(lang)
    if chunk_rows < 1:
        raise UsageError("chunk_rows must be at least 1")
    header = get_campaign(engine, campaign_id)
    for raw in iter_result_columns(engine, campaign_id, chunk_rows):
        table = _result_table(raw, header, lang)
        yield table if arrow else frame_from_table(table, header.columns)


def _result_table(raw: Mapping[str, pa.Array], header: CampaignRecord, lang: str) -> pa.Table:
    sent = pc.is_in(raw["batch_state"], value_set=pa.array([str(s) for s in ANSWERED_STATES]))
    dlr_status = filled(raw["dlr_status"])
    out = {
        "source": filled(raw["source"]),
        "source_row": raw["source_row"],
        "normalized_mobile": filled(raw["normalized_mobile"]),
        "carrier": filled(raw["carrier"]),
        "outcome": raw["outcome"],
        "reason": reasons(raw, header.stop_reason, lang),
        "message": filled(raw["message"]),
        "segments": raw["segments"],
        "batch_id": filled(raw["batch_id"]),
        "msgid": pc.if_else(sent, filled(raw["msgid"]), ""),
        "submit_code": pc.if_else(sent, filled(raw["submit_code"]), ""),
        "dlr_status": dlr_status,
        "dlr_description": mapped(dlr_status, lambda s: status_meaning(s, lang) if s else ""),
        "report_time": filled(raw["report_time"]),
    }
    cells = cell_columns(raw["cells"], len(header.columns))
    return pa.Table.from_arrays(
        [*cells, *(out[name] for name in RESULT_COLUMNS)],
        names=[*header.columns, *RESULT_COLUMNS],
    )


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


def report_status_breakdown(engine: Engine, campaign_id: int, *, lang: str = "en") -> pd.DataFrame:
    """Columns: status, description, recipients, share (of recipients with a report)."""
    check_lang(lang)
    return status_frame(report_status_counts(engine, campaign_id), lang)


def status_frame(counts: Mapping[str, int], lang: str = "en") -> pd.DataFrame:
    """`report_status_breakdown`'s table from status -> recipients (most frequent first)."""
    counts = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    frame = pd.DataFrame({"status": list(counts), "recipients": list(counts.values())})
    frame.insert(1, "description", [status_meaning(s, lang) for s in frame["status"]])
    total = frame["recipients"].sum()
    frame["share"] = frame["recipients"] / total if total else 0.0
    return frame.astype({"recipients": "int64", "share": "float64"})
