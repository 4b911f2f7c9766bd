"""`campaign plan --out FILE`: the per-row preview of a plan, as `.xlsx` (or `.csv`).

One row per input row, in input order: the original columns, then the result columns of
SPEC with what the plan knows (the send columns msgid ... report_time stay empty). Rows are
written a chunk at a time in Arrow-built row XML (xlsx_rows); every text cell is text, never
a formula or a number. Past Excel's row limit the rows continue on `plan_2`, `plan_3`, ...
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
from xlsxwriter.exceptions import XlsxWriterException
from xlsxwriter.workbook import Workbook

from campaign.errors import InputError
from campaign.export import ZIP64_ROWS, atomic_output
from campaign.outcomes import RESULT_COLUMNS
from campaign.patterns import FORMULA_PREFIXES, neutralise_formula
from campaign.plan import Plan
from campaign.xlsx_rows import fast_path_available, write_rows_cells, write_rows_xml

SHEET = "plan"
MAX_SHEET_ROWS = 1_048_575  # Excel's row limit, less the header row
CHUNK_ROWS = 50_000
NUMERIC_COLUMNS = ("source_row", "segments")
SEND_COLUMNS = ("msgid", "submit_code", "dlr_status", "dlr_description", "report_time")


def preview_frame(plan: Plan) -> pd.DataFrame:
    """The preview rows: original columns, then RESULT_COLUMNS (names may repeat)."""
    frame = plan.contacts.frame
    rows = plan.rows
    result = pd.DataFrame(
        {
            "source": frame["_source"],
            "source_row": frame["_source_row"],
            **{name: rows[name] for name in RESULT_COLUMNS[2:9]},
        },
        index=frame.index,
    )
    for name in SEND_COLUMNS:
        result[name] = ""
    originals = frame[plan.contacts.columns]
    preview = pd.concat([originals, result[list(RESULT_COLUMNS)]], axis=1)
    return pd.DataFrame(
        {pos: _contiguous(preview.iloc[:, pos]) for pos in range(preview.shape[1])}
    ).set_axis(preview.columns, axis=1)


def _contiguous(column: pd.Series) -> pd.Series:
    """Text columns as one Arrow array each (several files' rows come in several chunks)."""
    if not isinstance(column.dtype, pd.StringDtype):
        return column
    array = pa.array(column)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return pd.Series(array, dtype=column.dtype, index=column.index)


def write_preview(plan: Plan, out: Path) -> int:
    """Write the preview to `out` (.xlsx or .csv); returns the number of rows written."""
    suffix = out.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise InputError(f"{out}: the preview is written as .xlsx or .csv")
    frame = preview_frame(plan)
    with atomic_output(out) as partial:
        if suffix == ".csv":
            _csv_safe(frame).to_csv(partial, index=False, encoding="utf-8-sig")
        else:
            _write_xlsx(frame, partial)
    return len(frame)


def _csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells (and headers) that start like a formula get a leading `'` (OWASP)."""
    columns = {}
    for pos in range(frame.shape[1]):
        column = frame.iloc[:, pos]
        if pd.api.types.is_string_dtype(column.dtype):
            risky = column.str.startswith(FORMULA_PREFIXES, na=False).to_numpy(dtype=bool)
            if risky.any():
                column = column.where(~risky, "'" + column)
        columns[pos] = column
    safe = pd.DataFrame(columns, index=frame.index)
    safe.columns = [neutralise_formula(str(name)) for name in frame.columns]
    return safe


def _write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    book = Workbook(
        str(path),
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
            "use_zip64": len(frame) > ZIP64_ROWS,
        },
    )
    header = book.add_format({"bold": True})
    numeric = {pos for pos, name in enumerate(frame.columns) if name in NUMERIC_COLUMNS}
    numeric = {pos for pos in numeric if pos >= frame.shape[1] - len(RESULT_COLUMNS)}
    try:
        for number, start in enumerate(range(0, max(len(frame), 1), MAX_SHEET_ROWS), start=1):
            sheet = book.add_worksheet(SHEET if number == 1 else f"{SHEET}_{number}")
            sheet.freeze_panes(1, 0)
            for col, name in enumerate(frame.columns):
                sheet.write_string(0, col, str(name), header)
            part = frame.iloc[start : start + MAX_SHEET_ROWS]
            for offset in range(0, len(part), CHUNK_ROWS):
                chunk = part.iloc[offset : offset + CHUNK_ROWS]
                if fast_path_available(sheet):
                    write_rows_xml(sheet, chunk, 1 + offset, numeric)
                else:
                    write_rows_cells(sheet, chunk, 1 + offset, numeric)
        book.close()
    except (XlsxWriterException, OSError) as exc:
        raise InputError(f"cannot write the preview {path.name}: {exc}") from None
