"""Spreadsheet and CSV files as grids of text cells, exactly as a spreadsheet program shows them.

The low level of reading contact (or report) files: no headers, no meaning, just every cell
as text, row i of a grid being row i+1 of the file. Workbooks (.xlsx .xlsm .xlsb .xls .ods)
are read with python-calamine; numbers become their shown text (13900210021.0 ->
"13900210021"), dates ISO text. CSV is read with pyarrow (every column a string, nothing
ever converted to a number), in UTF-8, UTF-8 with a BOM, UTF-16 with a BOM, or GB18030/GBK;
separated by commas, tabs or semicolons (whichever is on the most of the first lines); Excel's
keep-as-text cells ="010010" read as 010010.
Problems with a whole file raise `ContactsError` naming the file.

Hostile files are refused in bounded memory before a reader allocates for them (limits from
`[limits]`, `campaign.input_limits`): a workbook's parts are streamed through zlib and its
sheets' declared size and cell references checked first; a CSV's line length and first-line
width are checked before pyarrow parses it; rows, columns and cell lengths of every grid
after. What a native reader raises (a Rust panic, an Arrow or Python MemoryError) is bad
input naming the file, never a crash.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

from campaign import input_limits
from campaign.config import LimitSettings
from campaign.errors import ContactsError

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
_MAX_CSV_COLUMNS = 4096
DEFAULT_LIMITS = LimitSettings()
T = TypeVar("T")
# What a native reader raises for a file it cannot hold: pyo3's PanicException derives from
# BaseException only; ArrowMemoryError is a MemoryError.
_NATIVE_FAILURES: tuple[type[BaseException], ...] = (BaseException,)


@dataclass(frozen=True)
class Grid:
    """One table of text cells: a CSV file or one sheet of a workbook."""

    source: str  # "name.xlsx:Sheet1" or "name.csv" (file name, not the full path)
    where: str  # for messages: "dir/name.xlsx (sheet 'Sheet1')" or "dir/name.csv"
    columns: list[pa.Array | pa.ChunkedArray]  # pa.string(), of equal length, never null
    sheet: str | None = None  # the sheet's name; None for CSV

    @property
    def height(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def rows(self, start: int, stop: int) -> list[list[str]]:
        """Rows start..stop-1 (0-based) as Python lists: for looking at a file's first rows."""
        stop = min(stop, self.height)
        if start >= stop:
            return []
        heads = [column.slice(start, stop - start).to_pylist() for column in self.columns]
        return [list(row) for row in zip(*heads, strict=True)]


def read_grids(
    path: Path | str,
    sheet: str | None = None,
    what: str = "file",
    limits: LimitSettings = DEFAULT_LIMITS,
) -> list[Grid]:
    """The grids of one file: each visible worksheet of a workbook (or just `sheet`), or the
    CSV. Raises ContactsError (exit 3) for a missing, unreadable, empty, corrupt or unsupported
    file, or one past `limits`; `what` names the file in those messages ("contact file",
    "report file", ...)."""
    file = Path(path)
    data = _read_bytes(file, str(path), what)
    suffix = file.suffix.lower()
    if suffix in WORKBOOK_SUFFIXES or data.startswith((_ZIP_MAGIC, _OLE_MAGIC)):
        grids = _guarded(str(path), lambda: _workbook_grids(file, str(path), data, sheet, limits))
    elif suffix in TEXT_SUFFIXES:
        grids = [_guarded(str(path), lambda: _csv_grid(file, str(path), data, limits))]
    else:
        grids = None
    if grids is not None:
        for grid in grids:
            _check_grid(grid, limits)
        return grids
    kinds = ", ".join(WORKBOOK_SUFFIXES + TEXT_SUFFIXES)
    raise ContactsError(
        f"cannot read {path}: unsupported file type '{file.suffix or '(none)'}'; use one of {kinds}"
    )


def _guarded(shown: str, read: Callable[[], T]) -> T:
    """`read()`, with whatever a native reader raises for a file it cannot hold (a Rust
    panic, MemoryError, ArrowMemoryError) turned into a ContactsError naming the file."""
    try:
        return read()
    except (ContactsError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except _NATIVE_FAILURES as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ContactsError(
            f"cannot read {shown}: the reader gave up on it ({type(exc).__name__}"
            f"{': ' + detail if detail else ''})"
        ) from None


def _check_grid(grid: Grid, limits: LimitSettings) -> None:
    """Rows, columns and the longest cell of a grid that was read (each column's longest
    cell is found from its offsets: bytes, then characters only when bytes pass)."""
    input_limits.check_grid_size(grid.height, len(grid.columns), grid.where, limits)
    for number, column in enumerate(grid.columns, start=1):
        if not len(column):
            continue
        longest = pc.max(pc.binary_length(column)).as_py() or 0
        if longest > limits.max_cell_chars:
            longest = pc.max(pc.utf8_length(column)).as_py() or 0
        if longest > limits.max_cell_chars:
            raise ContactsError(
                f"{grid.where}: a cell of column {input_limits.column_letters(number)} holds "
                f"{longest:,} characters (the limit is {limits.max_cell_chars:,}: "
                "[limits] max_cell_chars)"
            )


def _read_bytes(file: Path, shown: str, what: str) -> bytes:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ContactsError(f"{what} not found: {shown}") from None
    except IsADirectoryError:
        raise ContactsError(f"cannot read {shown}: it is a folder, not a file") from None
    except PermissionError:
        raise ContactsError(f"cannot read {shown}: permission denied") from None
    except OSError as exc:
        raise ContactsError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if not data or data.isspace():
        raise ContactsError(f"{what} {shown} is empty")
    return data


# --- workbooks --------------------------------------------------------------------------------


def _workbook_grids(
    file: Path, shown: str, data: bytes, sheet: str | None, limits: LimitSettings
) -> list[Grid]:
    if data.startswith(_ZIP_MAGIC):
        input_limits.check_zip_workbook(data, shown, limits)
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as exc:  # calamine raises many kinds (zip, xml, cfb, ...)
        raise ContactsError(_corrupt_workbook_message(shown, data, exc)) from None
    with workbook:
        if sheet is not None:
            names = [_sheet_named(workbook.sheet_names, sheet, shown)]
        else:
            names = [
                meta.name
                for meta in workbook.sheets_metadata
                if meta.visible == SheetVisibleEnum.Visible and meta.typ == SheetTypeEnum.WorkSheet
            ]
        return [_sheet_grid(workbook, file.name, shown, name, limits) for name in names]


def _sheet_named(names: list[str], wanted: str, shown: str) -> str:
    """The sheet called `wanted`; failing that, the one whose name differs only in case or
    surrounding spaces (Excel's sheet names are unique regardless of case)."""
    if wanted in names:
        return wanted
    loose = [name for name in names if name.strip().casefold() == wanted.strip().casefold()]
    if loose:
        return loose[0]
    listed = ", ".join(repr(name) for name in names)
    raise ContactsError(f"no sheet '{wanted}' in {shown}; its sheets are: {listed}")


def _sheet_grid(
    workbook: CalamineWorkbook, file_name: str, shown: str, name: str, limits: LimitSettings
) -> Grid:
    where = f"{shown} (sheet '{name}')"
    try:
        sheet = workbook.get_sheet_by_name(name)
    except Exception as exc:
        raise ContactsError(f"cannot read sheet '{name}' of {shown}: {exc}") from None
    end = sheet.end  # None for an empty sheet only
    if sheet.height and end is not None:  # to_python fills the grid from A1: bound it first
        rows_to, columns_to = end
        input_limits.check_grid_size(rows_to + 1, columns_to + 1, where, limits)
    try:
        rows = sheet.to_python(skip_empty_area=False)
        merged = sheet.merged_cell_ranges or []
    except Exception as exc:
        raise ContactsError(f"cannot read sheet '{name}' of {shown}: {exc}") from None
    _fill_merged_down(rows, merged)
    return Grid(f"{file_name}:{name}", where, _text_columns(rows), name)


def _fill_merged_down(
    rows: Sequence[list[T]], merged: list[tuple[tuple[int, int], tuple[int, int]]]
) -> None:
    """A cell merged down one column (a store's name beside each of its customers) holds its
    value on every row it spans, as the sheet shows it. Merges across columns (a title over
    the table) are left as they are. One step per merged cell, not per row of the sheet."""
    for (top, left), (bottom, right) in merged:
        if left != right or bottom <= top or top >= len(rows) or left >= len(rows[top]):
            continue
        value = rows[top][left]
        for row in rows[top + 1 : bottom + 1]:
            if left < len(row) and any(cell not in ("", None) for cell in row):
                row[left] = value  # a row that is otherwise blank stays blank


def _text_columns(rows: Sequence[Sequence[object]]) -> list[pa.Array]:
    """Calamine's rows (all of one width) as text columns: transposed in C by numpy; a column
    of strings goes to Arrow as is, only columns holding numbers/dates take the cell path."""
    if not rows:
        return []
    width = max(len(row) for row in rows)
    if any(len(row) != width for row in rows):  # calamine pads rows; be safe if it ever doesn't
        rows = [list(row) + [""] * (width - len(row)) for row in rows]
    table = np.empty((len(rows), width), dtype=object)
    table[:] = rows
    columns = []
    for cells in table.T:
        try:
            columns.append(pc.fill_null(pa.array(cells, pa.string()), ""))
        except (pa.ArrowException, TypeError, ValueError):  # numbers, dates, booleans
            columns.append(pa.array(_texts(cells.tolist()), pa.string()))
    return columns


def _texts(cells: Sequence[object]) -> list[str]:
    """Cells as shown text; strings pass through, whole numbers take the short way."""
    return [
        cell
        if type(cell) is str
        else str(int(cell))
        if type(cell) is float and cell.is_integer() and -1e15 < cell < 1e15
        else cell_text(cell)
        for cell in cells
    ]


def cell_text(cell: object) -> str:
    """A workbook cell as a spreadsheet shows it in General format."""
    if cell is None or cell == "":
        return ""
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float):
        if cell.is_integer() and abs(cell) < 1e21:
            return str(int(cell))
        return f"{cell:.15g}"  # Excel shows 15 significant digits
    if isinstance(cell, dt.datetime):
        if cell.time() == dt.time(0):
            return cell.date().isoformat()
        return cell.isoformat(sep=" ", timespec="seconds" if not cell.microsecond else "auto")
    if isinstance(cell, dt.date | dt.time):
        return cell.isoformat()
    return str(cell)


def _corrupt_workbook_message(shown: str, data: bytes, exc: Exception) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<table", b"<?xml")):
        what = "it is an HTML/XML page saved with a spreadsheet name; save it as .xlsx or .csv"
    elif data.startswith(_ZIP_MAGIC):
        what = f"the workbook is damaged or truncated ({exc})"
    elif data.startswith(_OLE_MAGIC):
        what = f"the old-style workbook is damaged or password-protected ({exc})"
    else:
        what = "it is not an Excel workbook (perhaps a text file renamed); save it as .xlsx or .csv"
    return f"cannot read {shown} as a workbook: {what}"


# --- CSV ------------------------------------------------------------------------------------


def _csv_grid(file: Path, shown: str, data: bytes, limits: LimitSettings) -> Grid:
    """UTF-8 goes straight to pyarrow (which validates it); anything else is decoded first."""
    body = _without_bom(shown, data)
    head = body[:65536]
    if head.count(b"\x00") > max(2, len(head) // 1000):  # a stray NUL: a bad row, not binary
        raise ContactsError(f"cannot read {shown}: it is a binary file, not CSV text")
    input_limits.check_csv_lines(body, shown, limits)
    delimiter = _delimiter(file, body)
    _check_first_line(body, shown, delimiter, limits)
    try:
        columns = _csv_columns_fast(body, delimiter, limits)
    except pa.ArrowInvalid:  # not UTF-8, or ragged rows (e.g. a title line without commas)
        pass
    else:
        _refuse_open_quote(shown, columns, body, delimiter)
        return Grid(file.name, shown, _as_shown(columns))
    text, encoding = _decode(shown, body)
    recoded: list[pa.Array] | None = None
    if encoding != "utf-8":
        with contextlib.suppress(pa.ArrowInvalid):
            recoded = _csv_columns_fast(text.encode("utf-8"), delimiter, limits)
            _refuse_open_quote(shown, recoded, text, delimiter)
    if recoded is None:
        recoded = _csv_columns_careful(shown, text, delimiter, limits)
    return Grid(file.name, shown, _as_shown(recoded))


def _check_first_line(body: bytes, shown: str, delimiter: str, limits: LimitSettings) -> None:
    """pyarrow makes a column per field of the first line: count them first (delimiters
    give an upper bound; quotes are respected only when that bound passes the limit)."""
    end = input_limits.next_line_break(body, 0)
    first = body[:end]
    if first.count(delimiter.encode()) < limits.max_columns:
        return
    fields = input_limits.count_fields(first.decode("utf-8", "replace"), delimiter)
    input_limits.check_columns(fields, shown, limits)


def _as_shown(
    columns: list[pa.Array | pa.ChunkedArray],
) -> list[pa.Array | pa.ChunkedArray]:
    """Cells as a spreadsheet program shows them: Excel's keep-as-text form `="010010"`
    (exported so that leading zeros and long digits survive) is shown as 010010."""
    return [
        pc.replace_substring_regex(column, r'^="([^"]*)"$', r"\1")
        if pc.any(pc.starts_with(column, '="')).as_py()
        else column
        for column in columns
    ]


def _refuse_open_quote(
    shown: str, columns: list[pa.ChunkedArray], data: bytes | str, delimiter: str
) -> None:
    """pyarrow reads a quote that is never closed as one cell running to the end of the file;
    only then does the last row hold a line break, and only then is the file parsed again."""
    if not columns or not len(columns[0]):
        return
    last = [column[-1].as_py() or "" for column in columns]
    if any("\n" in cell or "\r" in cell for cell in last):
        text = data if isinstance(data, str) else str(data, "utf-8")
        _strict_csv_rows(shown, text, delimiter)


def _without_bom(shown: str, data: bytes) -> bytes:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise ContactsError(f"cannot read {shown}: it is not valid UTF-16 text") from None
    return data


def _decode(shown: str, body: bytes) -> tuple[str, str]:
    """(text, encoding): strict UTF-8, else GB18030 (a superset of GBK)."""
    for encoding in ("utf-8", "gb18030"):
        try:
            return str(body, encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ContactsError(
        f"cannot read {shown}: it is neither UTF-8 nor GBK text; save it as CSV UTF-8"
    )


def _delimiter(file: Path, data: bytes) -> str:
    if file.suffix.lower() == ".tsv":
        return "\t"
    lines = [line for line in data[:65536].splitlines()[:50] if line.strip()]
    # The delimiter is on (nearly) every line; a comma in an address or a ";" in a title line
    # is on a few. Then: the most frequent; then comma. Tabs: WPS / "Unicode text"; ";":
    # European Excel.
    found = [
        (sum(1 for line in lines if d in line), sum(line.count(d) for line in lines), d)
        for d in (b",", b"\t", b";")
    ]
    lines_with, _, delimiter = max(found, key=lambda found: found[:2])
    return delimiter.decode() if lines_with else ","


def _csv_columns_fast(data: bytes, delimiter: str, limits: LimitSettings) -> list[pa.Array]:
    table = pa_csv.read_csv(
        pa.BufferReader(data),
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter, newlines_in_values=b'"' in data, ignore_empty_lines=False
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types={
                f"f{i}": pa.string() for i in range(max(_MAX_CSV_COLUMNS, limits.max_columns))
            },
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return list(table.columns)  # chunked arrays: combining them would copy every cell


def _csv_columns_careful(
    shown: str, text: str, delimiter: str, limits: LimitSettings
) -> list[pa.Array]:
    rows = _strict_csv_rows(shown, text, delimiter)
    if rows is None:  # e.g. `"ab"c`: read it as a spreadsheet program would
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except csv.Error as exc:
            raise ContactsError(f"cannot read {shown} as CSV: {exc}") from None
    input_limits.check_columns(max(map(len, rows), default=0), shown, limits)
    return [pa.array(column, pa.string()) for column in itertools.zip_longest(*rows, fillvalue="")]


def _strict_csv_rows(shown: str, text: str, delimiter: str) -> list[list[str]] | None:
    """The rows, None when the file is loose but readable; ContactsError for a quote that is
    never closed (it would swallow every later row into one cell)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    last_line = 0
    try:
        for row in reader:
            rows.append(row)
            last_line = reader.line_num
    except csv.Error as exc:
        if "unexpected end of data" not in str(exc):
            return None
        raise ContactsError(
            f"cannot read {shown} as CSV: the quoted cell that starts on line {last_line + 1} "
            "is never closed (a '\"' too many?); every later row would vanish into it"
        ) from None
    return rows
