"""The SQLite JSON transport of result rows: one chunk of rows out of SQLite as ONE value.

Reading a million rows through DBAPI tuples builds a Python object per value; on SQLite the
chunk is instead written by SQLite itself as JSON lines (`json_object` per row, joined by
`group_concat`, without holding the GIL) and parsed into Arrow columns by Arrow's JSON reader.
The chunk's columns come out the same as through `tuple_columns` (the fallback, and the only
way on PostgreSQL). The stored cell lists (`recipients.cells`, JSON text) are decoded here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from sqlalchemy import Connection, LargeBinary, Select, cast, func, literal, select
from sqlalchemy.exc import DBAPIError

INT_COLUMNS = frozenset({"row_no", "source_row", "segments", "n_reports"})
_CELLS_SCHEMA = pa.schema([("c", pa.list_(pa.string()))])
#: results_select columns read for the result rows, under short keys in the JSON lines
FETCHED = (
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
_JSON_KEYS = {f"k{pos}": name for pos, name in enumerate(FETCHED)}
_ROW_NO_KEY = "k0"
_JSON_SCHEMA = pa.schema(
    [
        (
            key,
            pa.list_(pa.string())
            if name == "cells"
            else pa.int64()
            if name in INT_COLUMNS
            else pa.string(),
        )
        for key, name in _JSON_KEYS.items()
    ]
)
_JSON_BLOCK = 1 << 22  # bytes of cell JSON per parsing block (Arrow's JSON reader)


def json_blob(conn: Connection, query: Select) -> bytes | None:
    """The rows of `query` (a chunk of `results_select`) as ONE value: JSON lines (SQLite).

    SQLite writes the lines (json_object per row, group_concat) without holding the GIL;
    Arrow's JSON reader parses them into columns (`json_columns`): no Python object per
    value. b"" when the chunk has no rows; None when SQLite could not (e.g. a chunk past its
    string size limit): the caller reads the chunk as tuples instead.
    """
    try:
        blob = conn.execute(_json_select(query)).scalar()
    except DBAPIError:
        conn.rollback()
        return None
    return b"" if blob is None else bytes(blob)


def json_columns(blob: bytes) -> dict[str, pa.Array] | None:
    """`json_blob`'s lines as Arrow columns (None when Arrow does not take them)."""
    try:
        table = _read_json_lines(blob, _JSON_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    row_no = table[_ROW_NO_KEY]
    if not pc.all(pc.greater(row_no[1:], row_no[:-1])).as_py():
        table = table.sort_by(_ROW_NO_KEY)  # group_concat's order is not promised
    return {name: table[key].combine_chunks() for key, name in _JSON_KEYS.items()}


def _json_select(query: Select) -> Select:
    sub = query.subquery("q")
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


def tuple_columns(keys: list[str], rows: Sequence[Sequence[Any]]) -> dict[str, pa.Array]:
    """DBAPI row tuples -> one typed Arrow array per column."""
    return {
        key: pa.array(values, type=pa.int64() if key in INT_COLUMNS else pa.string())
        for key, values in zip(keys, zip(*rows, strict=True), strict=True)
    }


def cell_columns(cells: pa.Array, n_columns: int) -> list[pa.Array]:
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
    return [pc.fill_null(flat.take(starts + pos), "") for pos in range(n_columns)]


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
