"""Writing many rows into a `constant_memory` xlsxwriter worksheet, fast.

Two ways, same cells:

- `write_rows_xml` (default): the `<row>` XML of a whole chunk is built column by column
  with Arrow string kernels (escaping, cell references, strings) and appended as UTF-8 to
  the worksheet's row file in one write. No Python work per cell. Columns with few
  distinct values (outcome, carrier, status, reason...) refer to the workbook's shared
  strings, added once per distinct value; the rest are inline strings. It relies on how
  xlsxwriter's constant_memory mode stores rows (a temp file of `<row>` elements,
  `previous_row`, `dim_*`, the shared string table), checked by `fast_path_available`;
  the test suite compares its output with the cell API's, cell by cell.
- `write_rows_cells`: xlsxwriter's public cell API (`write_string`/`write_number`), one
  call per non-empty cell.

Every text cell is written as a string: nothing is ever turned into a formula, a number or
a link, whatever it starts with. Empty cells are not written.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from xlsxwriter.sharedstrings import SharedStringTable
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import Worksheet

XML_SLICE_ROWS = 10_000
SHARED_MAX_DISTINCT = 1_000  # per column and slice; more distinct values are written inline
SHARED_MAX_STRINGS = 200_000  # shared strings stay in memory until the workbook is written
MAX_CELL_CHARS = 32_767  # Excel's limit (UTF-16 units; checked per character here)

_CONTROL = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20))]
_CONTROL_RE = "[" + "".join(f"\\x{ord(c):02x}" for c in _CONTROL) + "\ufffe\uffff]"
_LITERAL_ESCAPE_RE = r"(_x[0-9a-fA-F]{4}_)"
_NEEDS_ESCAPE_RE = _CONTROL_RE[:-1] + "&<>]|" + _LITERAL_ESCAPE_RE
_INLINE_OPEN = '" t="inlineStr"><is><t>'
_INLINE_OPEN_PRESERVE = '" t="inlineStr"><is><t xml:space="preserve">'


def fast_path_available(sheet: Worksheet) -> bool:
    """True when the worksheet stores rows the way `write_rows_xml` expects."""
    return bool(getattr(sheet, "constant_memory", False)) and all(
        hasattr(sheet, name)
        for name in (
            "row_data_fh",
            "previous_row",
            "dim_rowmax",
            "table",
            "_write_single_row",
            "str_table",
        )
    )


def write_rows_cells(
    sheet: Worksheet, frame: pd.DataFrame, first_row: int, numeric: Collection[int] = ()
) -> None:
    """Rows through the public cell API; `numeric`: positions of number columns."""
    kinds = [pos in numeric for pos in range(frame.shape[1])]
    write_string, write_number = sheet.write_string, sheet.write_number
    for row, values in enumerate(frame.itertuples(index=False, name=None), start=first_row):
        for col, value in enumerate(values):
            if value is None or value is pd.NA or value == "":
                continue
            if kinds[col]:
                write_number(row, col, value)
            else:
                write_string(row, col, value)


def write_rows_xml(
    sheet: Worksheet,
    frame: pd.DataFrame | pa.Table,
    first_row: int,
    numeric: Collection[int] = (),
) -> None:
    """Append the rows of `frame` (sheet rows first_row, first_row+1, ...) as XML.

    `frame`: a DataFrame, or an Arrow table (text columns `string`, number columns integer),
    which is written without a pandas round trip.
    """
    n_rows, n_columns = _shape(frame)
    if not n_rows:
        return
    if sheet.dim_rowmax is not None and first_row <= sheet.dim_rowmax:
        raise ValueError("rows must be written below the rows already in the sheet")
    sheet._write_single_row(first_row)  # flush a row still held in the cell table (the header)
    for start in range(0, n_rows, XML_SLICE_ROWS):  # slices bound the memory of the XML
        part = _columns(frame, start, XML_SLICE_ROWS, numeric)
        _append_utf8(sheet, _rows_array(part, first_row + start, numeric, sheet.str_table))
    last_row = first_row + n_rows - 1
    last_col = n_columns - 1
    sheet.previous_row = last_row
    if sheet.dim_rowmin is None or first_row < sheet.dim_rowmin:
        sheet.dim_rowmin = first_row
    if sheet.dim_rowmax is None or last_row > sheet.dim_rowmax:
        sheet.dim_rowmax = last_row
    if sheet.dim_colmin is None:
        sheet.dim_colmin = 0
    if sheet.dim_colmax is None or last_col > sheet.dim_colmax:
        sheet.dim_colmax = last_col


def _shape(frame: pd.DataFrame | pa.Table) -> tuple[int, int]:
    if isinstance(frame, pa.Table):
        return frame.num_rows, frame.num_columns
    return frame.shape


def _columns(
    frame: pd.DataFrame | pa.Table, start: int, length: int, numeric: Collection[int]
) -> list[pa.Array]:
    """Rows start..start+length of `frame`, one Arrow array per column: numbers as integers or
    floats (null where empty), the rest as strings ("" where empty)."""
    if isinstance(frame, pa.Table):
        part = frame.slice(start, length)
        columns = [part.column(pos).combine_chunks() for pos in range(part.num_columns)]
    else:
        rows = frame.iloc[start : start + length]
        columns = [
            pa.array(pd.to_numeric(rows.iloc[:, pos], errors="coerce"), from_pandas=True)
            if pos in numeric
            else _text_array(rows.iloc[:, pos])
            for pos in range(rows.shape[1])
        ]
    return [
        column if pos in numeric else pc.fill_null(column, "") for pos, column in enumerate(columns)
    ]


def _text_array(column: pd.Series) -> pa.Array:
    try:
        return pa.array(column, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # not all str: show what there is, as text
        return pa.array(column.astype(str), type=pa.string())


def _rows_array(
    columns: list[pa.Array],
    first_row: int,
    numeric: Collection[int],
    sst: SharedStringTable | None,
) -> pa.Array:
    """One `<row>` element per row of `columns`, as an Arrow string array.

    With `sst` (the workbook's shared strings), columns of few distinct values refer to
    shared strings: a much smaller sheet, so less to compress.
    """
    n_rows = len(columns[0])
    numbers = pc.cast(pa.array(np.arange(first_row + 1, first_row + 1 + n_rows)), pa.string())
    pieces: list[pa.Array] = [pc.binary_join_element_wise('<row r="', numbers, '">', "")]
    for pos, column in enumerate(columns):
        letter = xl_col_to_name(pos)
        if pos in numeric:
            pieces.append(_number_cells(column, letter, numbers))
        else:
            pieces.append(_text_cells(column, letter, numbers, sst))
    pieces.append(pa.array(["</row>"] * n_rows, type=pa.string()))
    return pc.binary_join_element_wise(*pieces, "")


def _append_utf8(sheet: Worksheet, rows: pa.Array) -> None:
    """Append the UTF-8 bytes of `rows` to the sheet's row file, straight from Arrow's buffer."""
    if rows.null_count:
        rows = pc.fill_null(rows, "")
    wide = pa.types.is_large_string(rows.type)
    offsets = np.frombuffer(
        rows.buffers()[1],
        dtype=np.int64 if wide else np.int32,
        count=len(rows) + 1,
        offset=rows.offset * (8 if wide else 4),
    )
    data = rows.buffers()[2]
    if data is None:
        return
    xml = memoryview(data)[int(offsets[0]) : int(offsets[-1])]
    append = getattr(sheet, "append_row_bytes", None)
    if append is not None:  # a sheet that takes its rows as bytes itself (xlsx_zip.py)
        append(xml)
        return
    handle = sheet.row_data_fh
    handle.flush()  # text written by xlsxwriter itself (the header row) goes first
    handle.buffer.write(xml)


def _number_cells(values: pa.Array, letter: str, numbers: pa.Array) -> pa.Array:
    text = pc.cast(values, pa.string())
    cells = pc.binary_join_element_wise(f'<c r="{letter}', numbers, '"><v>', text, "</v></c>", "")
    return pc.fill_null(cells, "")


def _text_cells(
    text: pa.Array, letter: str, numbers: pa.Array, sst: SharedStringTable | None
) -> pa.Array:
    """Shared or inline strings (`xml:space="preserve"` only where spaces need it)."""
    if sst is not None:
        shared = _shared_cells(text, letter, numbers, sst)
        if shared is not None:
            return shared
    text = _escape(text)
    spaced = pc.match_substring_regex(text, r"^\s|\s$")
    opening = (
        pc.if_else(spaced, _INLINE_OPEN_PRESERVE, _INLINE_OPEN)
        if pc.any(spaced).as_py()
        else _INLINE_OPEN
    )
    cells = pc.binary_join_element_wise(
        f'<c r="{letter}', numbers, opening, text, "</t></is></c>", ""
    )
    return pc.if_else(pc.equal(text, ""), "", cells)


def _shared_cells(
    text: pa.Array, letter: str, numbers: pa.Array, sst: SharedStringTable
) -> pa.Array | None:
    """Cells referring to shared strings, when the column has few distinct values; else None.

    The strings are added to the table once per distinct value (xlsxwriter escapes them when
    it writes the table).
    """
    encoded = pc.dictionary_encode(text)
    distinct = len(encoded.dictionary)
    if distinct > min(SHARED_MAX_DISTINCT, len(text) // 4 + 1):
        return None
    if sst.unique_count + distinct > SHARED_MAX_STRINGS:
        return None
    values = encoded.dictionary.to_pylist()
    if any(_rich_looking(v) or len(v) > MAX_CELL_CHARS for v in values):
        return None  # xlsxwriter writes "<r>...</r>" shared strings raw: keep those inline
    index_of = pa.array([str(sst._get_shared_string_index(v)) if v else "" for v in values])
    empty = pc.equal(text, "")
    sst.count += len(text) - pc.sum(empty).as_py() - sum(1 for v in values if v)
    indices = pc.take(index_of, encoded.indices)
    cells = pc.binary_join_element_wise(
        f'<c r="{letter}', numbers, '" t="s"><v>', indices, "</v></c>", ""
    )
    return pc.if_else(empty, "", cells)


def _rich_looking(value: str) -> bool:
    return value.startswith("<r>") and value.endswith("</r>")


def _escape(text: pa.Array) -> pa.Array:
    """Excel's escapes (as xlsxwriter does them) and XML's, for a whole column at once."""
    if pc.max(pc.binary_length(text)).as_py() > MAX_CELL_CHARS:  # bytes >= characters
        text = pc.utf8_slice_codeunits(text, 0, MAX_CELL_CHARS)
    if not pc.any(pc.match_substring_regex(text, _NEEDS_ESCAPE_RE)).as_py():
        return text  # the common case: one pass over the column
    if pc.any(pc.match_substring_regex(text, _LITERAL_ESCAPE_RE)).as_py():
        text = pc.replace_substring_regex(text, _LITERAL_ESCAPE_RE, r"_x005F\1")
    if pc.any(pc.match_substring_regex(text, _CONTROL_RE)).as_py():
        for char in [*_CONTROL, "\ufffe", "\uffff"]:
            text = pc.replace_substring(text, char, f"_x{ord(char):04X}_")
    text = pc.replace_substring(text, "&", "&amp;")
    text = pc.replace_substring(text, "<", "&lt;")
    return pc.replace_substring(text, ">", "&gt;")
