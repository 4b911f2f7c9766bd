"""Writing many rows into a `constant_memory` xlsxwriter worksheet, fast.

Two ways, same cells:

- `write_rows_xml` (default): the `<row>` XML of a whole chunk is built column by column
  with Arrow string kernels (escaping, cell references, inline strings) and appended to
  the worksheet's row file in one write. No Python work per cell; about 10x faster than
  the cell API. It relies on how xlsxwriter's constant_memory mode stores rows (a temp
  file of `<row>` elements, `previous_row`, `dim_*`), checked by `fast_path_available`;
  the test suite compares its output with the cell API's.
- `write_rows_cells`: xlsxwriter's public cell API (`write_string`/`write_number`), one
  call per non-empty cell.

Every text cell is written as text (an inline string): nothing is ever turned into a
formula, a number or a link, whatever it starts with. Empty cells are not written.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import Worksheet

MAX_CELL_CHARS = 32_767  # Excel's limit (UTF-16 units; checked per character here)

_CONTROL = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20))]
_CONTROL_RE = "[" + "".join(f"\\x{ord(c):02x}" for c in _CONTROL) + "\ufffe\uffff]"
_LITERAL_ESCAPE_RE = r"(_x[0-9a-fA-F]{4}_)"


def fast_path_available(sheet: Worksheet) -> bool:
    """True when the worksheet stores rows the way `write_rows_xml` expects."""
    return bool(getattr(sheet, "constant_memory", False)) and all(
        hasattr(sheet, name)
        for name in ("row_data_fh", "previous_row", "dim_rowmax", "table", "_write_single_row")
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
    sheet: Worksheet, frame: pd.DataFrame, first_row: int, numeric: Collection[int] = ()
) -> None:
    """Append the rows of `frame` (sheet rows first_row, first_row+1, ...) as XML."""
    if frame.empty:
        return
    if sheet.dim_rowmax is not None and first_row <= sheet.dim_rowmax:
        raise ValueError("rows must be written below the rows already in the sheet")
    sheet._write_single_row(first_row)  # flush a row still held in the cell table (the header)
    sheet.row_data_fh.write(rows_xml(frame, first_row, numeric))
    last_row = first_row + len(frame) - 1
    last_col = frame.shape[1] - 1
    sheet.previous_row = last_row
    if sheet.dim_rowmin is None or first_row < sheet.dim_rowmin:
        sheet.dim_rowmin = first_row
    if sheet.dim_rowmax is None or last_row > sheet.dim_rowmax:
        sheet.dim_rowmax = last_row
    if sheet.dim_colmin is None:
        sheet.dim_colmin = 0
    if sheet.dim_colmax is None or last_col > sheet.dim_colmax:
        sheet.dim_colmax = last_col


def rows_xml(frame: pd.DataFrame, first_row: int, numeric: Collection[int] = ()) -> str:
    """The `<row>` elements of `frame`, 0-based sheet row `first_row` first."""
    numbers = pa.array(np.arange(first_row + 1, first_row + 1 + len(frame)).astype(str))
    pieces: list[pa.Array] = [pc.binary_join_element_wise('<row r="', numbers, '">', "")]
    for pos in range(frame.shape[1]):
        column = frame.iloc[:, pos]
        ref = pc.binary_join_element_wise('<c r="', xl_col_to_name(pos), numbers, '"', "")
        cell = _number_cells(column, ref) if pos in numeric else _text_cells(column, ref)
        pieces.append(cell)
    pieces.append(pa.array(["</row>"] * len(frame), type=pa.string()))
    rows = pc.binary_join_element_wise(*pieces, "")
    return "".join(rows.to_pylist())


def _number_cells(column: pd.Series, ref: pa.Array) -> pa.Array:
    values = pa.array(pd.to_numeric(column, errors="coerce"), from_pandas=True)
    text = pc.cast(values, pa.string())
    cells = pc.binary_join_element_wise(ref, "><v>", text, "</v></c>", "")
    return pc.fill_null(cells, "")


def _text_cells(column: pd.Series, ref: pa.Array) -> pa.Array:
    text = pa.array(column.astype(object).where(column.notna(), ""), type=pa.string())
    text = _escape(text)
    preserve = pc.match_substring_regex(text, r"^\s|\s$")
    open_t = pc.if_else(preserve, '<t xml:space="preserve">', "<t>")
    cells = pc.binary_join_element_wise(
        ref, ' t="inlineStr"><is>', open_t, text, "</t></is></c>", ""
    )
    return pc.if_else(pc.equal(pc.utf8_length(text), 0), "", cells)


def _escape(text: pa.Array) -> pa.Array:
    """Excel's escapes (as xlsxwriter does them) and XML's, for a whole column at once."""
    if pc.any(pc.greater(pc.utf8_length(text), MAX_CELL_CHARS)).as_py():
        text = pc.utf8_slice_codeunits(text, 0, MAX_CELL_CHARS)
    if pc.any(pc.match_substring_regex(text, _LITERAL_ESCAPE_RE)).as_py():
        text = pc.replace_substring_regex(text, _LITERAL_ESCAPE_RE, r"_x005F\1")
    if pc.any(pc.match_substring_regex(text, _CONTROL_RE)).as_py():
        for char in [*_CONTROL, "\ufffe", "\uffff"]:
            text = pc.replace_substring(text, char, f"_x{ord(char):04X}_")
    text = pc.replace_substring(text, "&", "&amp;")
    text = pc.replace_substring(text, "<", "&lt;")
    return pc.replace_substring(text, ">", "&gt;")
