"""The input edge: contact files -> one ContactList (every cell text, with where it came from).

For each CSV file and each visible sheet of a workbook (or just `sheet`): find the header row
(a caption such as "2024年VIP客户名单" above it is skipped), name the columns (unique), skip
and count blank rows, and find the mobile column (by header name, a named column holding
mobiles before one of landlines; else by content). Several files become one frame over the
union of their columns, in first-seen order.

Files past `[limits]` are refused by `campaign.tabular` before they are read whole. Control
characters (NUL, ESC, ... see `campaign.input_limits`) stay in the cells as they are, so
the result shows the row as it was; `control_character_rows` finds the rows where one would
go into a message text (they become `invalid`). In headers they become U+FFFD.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from campaign.config import LimitSettings
from campaign.errors import ContactsError
from campaign.input_limits import (
    CONTROL_CHARS_RE2,
    control_char_name,
    may_hold_control_chars,
)
from campaign.patterns import header_key
from campaign.phones import normalize_mobiles
from campaign.tabular import DEFAULT_LIMITS, Grid, read_grids

RESERVED_COLUMNS = ("_source", "_source_row", "_mobile_raw")
HEADER_SCAN_ROWS = 10  # the header is among the first this many non-blank rows
CONTENT_SAMPLE_ROWS = 1000  # rows sampled per column to find the mobile column by content
CONTENT_SAMPLE_CELLS = 200_000  # ... and cells over all columns (fewer rows of a wide list)
MIN_MOBILE_SHARE = 0.5  # ... where at least this share of non-empty cells are mobiles

# Mobile column headers, most specific first (compared after _header_key).
MOBILE_HEADERS = (
    "手机号码",
    "手机号",
    "手机",
    "移动电话",
    "mobile number",
    "mobile phone",
    "mobile",
    "cellphone",
    "cell phone",
    "cell",
    "msisdn",
    "联系电话",
    "电话号码",
    "phone number",
    "phone",
    "telephone",
    "tel",
    "电话",
    "联系方式",
    "号码",
)
# Failing an exact name, a header containing one of these (e.g. "客户手机", "手机(必填)").
MOBILE_HEADER_PARTS = ("手机", "mobile", "cellphone", "移动电话", "联系电话", "电话", "phone")

_BLANK = r"^[\s\p{Z}\x{200b}-\x{200d}\x{2060}\x{feff}]*$"
# A cell holding a phone-like number (7+ digits and separators only: "021-12345678", a mobile
# a digit short): such a row is data, never a header.
_NUMBER_CHARS = re.compile(r"[\d\s().+-]+")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_STR = pd.StringDtype("pyarrow", na_value=float("nan"))
_HEADER_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class FileSummary:
    source: str  # "contacts.xlsx:Sheet1" for a sheet of a workbook, "contacts.csv" for CSV
    rows: int  # input rows (blank rows excluded)
    blank_rows: int
    mobile_column: str  # header of the column the mobiles came from
    path: str  # the path as given


@dataclass(frozen=True, eq=False)
class ContactList:
    frame: pd.DataFrame  # original columns (text, "" if empty) + RESERVED_COLUMNS
    columns: list[str]  # the original column names, in order (no reserved columns)
    files: list[FileSummary]


def read_contacts(
    paths: Sequence[Path | str],
    *,
    sheet: str | None = None,
    header_row: int | None = None,
    mobile_column: str | None = None,
    what: str = "contact file",
    limits: LimitSettings = DEFAULT_LIMITS,
) -> ContactList:
    """Read contact files (.xlsx/.xls/... workbooks, .csv) into one ContactList.

    `sheet` limits workbooks to that sheet; `header_row` (1-based, as a spreadsheet shows it)
    fixes the header row; `mobile_column` names the mobile column. Raises ContactsError for a
    file that cannot be used, naming it (as `what`: "contact file", "opt-out file", ...),
    or one past `limits` (the `[limits]` settings).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ContactsError("no contact files given")
    if header_row is not None and header_row < 1:
        raise ContactsError(f"header row must be 1 or more, not {header_row}")
    frames: list[pd.DataFrame] = []
    files: list[FileSummary] = []
    for path in paths:
        grids = read_grids(path, sheet, what=what, limits=limits)
        used = [grid for grid in grids if sheet is not None or _has_cells(grid)]
        if not used:
            raise ContactsError(f"{what} {path} has no data: {_nothing_in(grids)}")
        read = [_read_grid(grid, str(path), header_row, mobile_column) for grid in used]
        if sheet is None and any(read):  # a header-only sheet beside others: nothing to read
            read = [result for result in read if result]
        for result in read:
            if result.summary is None:  # = not result
                raise ContactsError(f"no contact rows in {result.where}: nothing below the header")
            frames.append(result.frame)
            files.append(result.summary)
    return _combine(frames, files)


def _nothing_in(grids: list[Grid]) -> str:
    if grids and grids[0].sheet is None:
        return "every row is blank"
    return "every visible sheet is empty (hidden sheets are read only with --sheet)"


@dataclass(frozen=True, eq=False)
class _GridRead:
    where: str
    frame: pd.DataFrame
    summary: FileSummary | None  # None: the grid has a header but no rows

    def __bool__(self) -> bool:
        return self.summary is not None


# --- one grid (a CSV file or a sheet) ---------------------------------------------------------


def _read_grid(
    grid: Grid, path: str, header_row: int | None, mobile_column: str | None
) -> _GridRead:
    header_at, has_header = _header_position(grid, header_row)
    first_data = header_at + 1 if has_header else header_at
    data = [column.slice(first_data) for column in grid.columns]
    blank = _blank_rows(data)
    row_numbers = np.flatnonzero(~blank.to_numpy(zero_copy_only=False)) + first_data + 1
    if not row_numbers.size:
        return _GridRead(grid.where, pd.DataFrame(), None)
    keep = pc.invert(blank)
    names = _column_names(grid, header_at if has_header else None)
    columns = _named_columns(names, [column.filter(keep) for column in data])
    mobile = _mobile_column(grid, columns, mobile_column)
    frame = pd.DataFrame({name: _to_series(column) for name, column in columns.items()})
    frame["_source"] = pd.Series(grid.source, index=frame.index, dtype=_STR)
    frame["_source_row"] = row_numbers.astype(np.int64)
    frame["_mobile_raw"] = frame[mobile]
    blank_count = len(blank) - len(frame)
    return _GridRead(
        grid.where, frame, FileSummary(grid.source, len(frame), blank_count, mobile, path)
    )


@dataclass(frozen=True)
class GridLayout:
    """How `read_contacts` reads one grid with the given choices (for a person to check)."""

    header_row: int | None  # 1-based; None: no header row (the data starts at the top)
    columns: list[str]  # the column names it would use
    mobile_column: str | None  # None: none found (see `problem`)
    rows: int  # non-blank rows below the header
    problem: str | None  # why read_contacts would refuse the grid, or None
    mobile_index: int | None = None  # 0-based position of the mobile column in the grid


def grid_layout(
    grid: Grid, header_row: int | None = None, mobile_column: str | None = None
) -> GridLayout:
    """The header row, columns and mobile column `read_contacts` would find in `grid` with
    `header_row` / `mobile_column` (None: found as it finds them), and what it would refuse."""
    try:
        header_at, has_header = _header_position(grid, header_row)
    except ContactsError as exc:
        return GridLayout(None, [], None, 0, str(exc))
    first_data = header_at + 1 if has_header else header_at
    data = [column.slice(first_data) for column in grid.columns]
    rows = int(len(data[0]) - (pc.sum(_blank_rows(data)).as_py() or 0)) if data else 0
    columns = _named_columns(_column_names(grid, header_at if has_header else None), data)
    shown_row = header_at + 1 if has_header else None
    try:
        mobile = _mobile_column(grid, columns, mobile_column)
    except ContactsError as exc:
        return GridLayout(shown_row, list(columns), None, rows, str(exc))
    problem = None if rows else f"no contact rows in {grid.where}: nothing below the header"
    index = next(i for i, column in enumerate(data) if column is columns[mobile])  # same object
    return GridLayout(shown_row, list(columns), mobile, rows, problem, index)


def _named_columns(names: list[str], data: list[pa.Array]) -> dict[str, pa.Array]:
    """Columns by unique name; a column without a header is named by its letter when it holds
    data ("column_F") and dropped when it is empty too."""
    kept = [
        (name or f"column_{column_letter(i)}", column)
        for i, (name, column) in enumerate(zip(names, data, strict=True))
        if name or _has_text(column)
    ]
    return dict(zip(_unique([name for name, _ in kept]), (c for _, c in kept), strict=True))


def _header_position(grid: Grid, header_row: int | None) -> tuple[int, bool]:
    """(0-based index of the header row, whether it is a header at all)."""
    if header_row is not None:
        if header_row > grid.height:
            raise ContactsError(
                f"header row {header_row} is past the end of {grid.where}: "
                f"it has {grid.height} rows"
            )
        return header_row - 1, True
    candidates = _first_nonblank_rows(grid, HEADER_SCAN_ROWS)
    if not candidates:
        raise ContactsError(f"no contact rows in {grid.where}: it is empty")
    for index, cells in candidates:
        if any(_header_key(cell) in _EXACT for cell in cells):  # not a caption "...手机..."
            return index, True
    width = max(_filled(cells) for _, cells in candidates)
    needed = max(min(2, width), math.ceil(width / 2))
    holds_mobile = _rows_holding_mobiles([cells for _, cells in candidates])
    is_data = [
        mobile or (_filled(cells) >= needed and any(_phone_like(cell) for cell in cells))
        for mobile, (_, cells) in zip(holds_mobile, candidates, strict=True)
    ]
    for (index, cells), data in zip(candidates, is_data, strict=True):
        if data:  # the header is above the first row holding a mobile (or another number)
            break
        if _filled(cells) >= needed and any(_mobile_header_rank(c) is not None for c in cells):
            return index, True  # "手机号码（必填）" under a caption of two cells
    # The first full row is the header, unless a row holding a number comes first: then that
    # row is the first data row (no header), and nothing below a caption is skipped.
    position, (index, cells) = next(
        (p, (i, c)) for p, (i, c) in enumerate(candidates) if is_data[p] or _filled(c) >= needed
    )
    return index, not is_data[position]


def _phone_like(cell: str) -> bool:
    """A number of 7+ digits, not a date: "021-12345678", "1390021002"; not "2024-11-11"."""
    return (
        _NUMBER_CHARS.fullmatch(cell) is not None
        and sum(c.isdigit() for c in cell) >= 7
        and not _DATE.search(cell)
    )


def _rows_holding_mobiles(rows: list[list[str]]) -> list[bool]:
    """Whether each row has a cell that is a valid mobile (one vectorized pass)."""
    cells = pd.Series([cell for row in rows for cell in row], dtype=object)
    valid = normalize_mobiles(cells)["valid"].to_numpy(dtype=bool)
    ends = np.cumsum([len(row) for row in rows])
    return [bool(valid[end - len(row) : end].any()) for row, end in zip(rows, ends, strict=True)]


def _first_nonblank_rows(grid: Grid, count: int) -> list[tuple[int, list[str]]]:
    found: list[tuple[int, list[str]]] = []
    start, chunk = 0, 64
    while len(found) < count and start < grid.height:
        for offset, cells in enumerate(grid.rows(start, start + chunk)):
            if _filled(cells):
                found.append((start + offset, cells))
        start += chunk
    return found[:count]


def _filled(cells: Sequence[str]) -> int:
    return sum(1 for cell in cells if cell.strip())


def _column_names(grid: Grid, header_at: int | None) -> list[str]:
    if header_at is None:
        return [""] * len(grid.columns)
    return [_clean_header(cell) for cell in grid.rows(header_at, header_at + 1)[0]]


def _clean_header(cell: str) -> str:
    """Spaces collapsed, invisible marks dropped, control characters shown as U+FFFD (a
    header names a column in reasons, placeholders and the store)."""
    cell = _HEADER_CONTROL.sub("\ufffd", cell.replace("\ufeff", "").replace("\u200b", ""))
    return re.sub(r"\s+", " ", cell).strip()


def _unique(names: list[str]) -> list[str]:
    """Make names unique: a repeated "电话" becomes "电话_2", "电话_3", ... (never a name that
    another header already has, nor a reserved column)."""
    taken = set(RESERVED_COLUMNS) | set(names)
    seen: set[str] = set()
    unique = []
    for name in names:
        if name in seen or name in RESERVED_COLUMNS:
            n, candidate = 2, f"{name}_2"
            while candidate in taken:
                n += 1
                candidate = f"{name}_{n}"
            taken.add(candidate)
            name = candidate
        seen.add(name)
        unique.append(name)
    return unique


def column_letter(index: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "AA": a column as a spreadsheet names it."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _blank_rows(columns: list[pa.Array]) -> pa.Array:
    """Rows whose every cell is empty or whitespace (checked column by column on the rows
    still in doubt, so a typical file costs one pass over its first column)."""
    if not columns:
        return pa.array([], pa.bool_())
    doubt = pc.indices_nonzero(pc.match_substring_regex(columns[0], _BLANK))
    for column in columns[1:]:
        if not len(doubt):
            break
        doubt = doubt.filter(pc.match_substring_regex(column.take(doubt), _BLANK))
    blank = np.zeros(len(columns[0]), dtype=bool)
    blank[doubt.to_numpy()] = True
    return pa.array(blank)


def _has_text(column: pa.Array) -> bool:
    """Whether any cell holds something other than whitespace (first rows looked at first)."""
    for part in (column.slice(0, 1000), column):
        if len(part) and not pc.all(pc.match_substring_regex(part, _BLANK)).as_py():
            return True
    return False


def _has_cells(grid: Grid) -> bool:
    return any(_has_text(column) for column in grid.columns)


def _to_series(column: pa.Array) -> pd.Series:
    return pd.Series(pd.array(column, dtype=_STR))


# --- the mobile column ------------------------------------------------------------------------


def _header_key(name: str) -> str:
    """Headers compared without case, width, spaces, punctuation: "Mobile-Phone" ~ "mobilephone"."""
    return re.sub(r"[\W_]+", "", header_key(name))


_EXACT = {_header_key(name): rank for rank, name in enumerate(MOBILE_HEADERS)}
_PARTS = [_header_key(part) for part in MOBILE_HEADER_PARTS]


def _mobile_header_rank(name: str) -> int | None:
    """Rank of a header as a mobile column header (lower is more specific), None if not one."""
    key = _header_key(name)
    if not key:
        return None
    if key in _EXACT:
        return _EXACT[key]
    for rank, part in enumerate(_PARTS):
        if part in key:
            return len(_EXACT) + rank
    return None


def _mobile_column(grid: Grid, columns: dict[str, pa.Array], wanted: str | None) -> str:
    if wanted is not None:
        return _named_column(grid, list(columns), wanted)
    by_header = sorted(
        (rank, position, name)
        for position, (name, column) in enumerate(columns.items())
        if (rank := _mobile_header_rank(name)) is not None and _has_text(column)
    )
    shares = _mobile_shares([columns[name] for _rank, _position, name in by_header])
    for (_rank, _position, name), share in zip(by_header, shares, strict=True):
        if share >= MIN_MOBILE_SHARE:  # "电话" of landlines beside "客户手机"
            return name
    if by_header:
        return by_header[0][2]
    by_content = _mobile_column_by_content(columns)
    if by_content is not None:
        return by_content
    raise ContactsError(
        f"no mobile column in {grid.where}; columns found: {', '.join(columns) or '(none)'}; "
        "use --mobile-column"
        + (" (or --sheet to read only the sheet of contacts)" if grid.sheet is not None else "")
    )


def _named_column(grid: Grid, names: list[str], wanted: str) -> str:
    if wanted in names:
        return wanted
    matches = [name for name in names if _header_key(name) == _header_key(wanted)]
    if matches:
        return matches[0]
    raise ContactsError(
        f"no column '{wanted}' in {grid.where}; columns found: {', '.join(names) or '(none)'}"
    )


def _mobile_column_by_content(columns: dict[str, pa.Array]) -> str | None:
    """The column with the largest share of mobiles (at least MIN_MOBILE_SHARE) among the
    first rows; every column's sample is checked in one vectorized call (a list of a
    thousand columns costs one pass over CONTENT_SAMPLE_CELLS cells, not a call per column)."""
    if not columns:
        return None
    shares = _mobile_shares(list(columns.values()))
    best = int(np.argmax(shares))  # the first of equal shares
    return list(columns)[best] if shares[best] >= MIN_MOBILE_SHARE else None


def _mobile_shares(columns: list[pa.Array]) -> np.ndarray:
    """Per column: the share of mobiles among the non-empty cells of its first rows (0 if
    none); one normalize_mobiles call over every sample, fewer rows when many columns."""
    if not columns:
        return np.zeros(0)
    rows = max(20, min(CONTENT_SAMPLE_ROWS, CONTENT_SAMPLE_CELLS // len(columns)))
    samples = [_nonblank_sample(column, rows) for column in columns]
    sizes = np.array([len(sample) for sample in samples], dtype=np.int64)
    if not sizes.sum():
        return np.zeros(len(columns))
    cells = pa.concat_arrays([sample.cast(pa.string()) for sample in samples])
    valid = normalize_mobiles(_to_series(cells))["valid"].to_numpy(dtype=float)
    owner = np.repeat(np.arange(len(columns)), sizes)
    counts = np.bincount(owner, weights=valid, minlength=len(columns))
    return np.divide(counts, sizes, out=np.zeros(len(columns)), where=sizes > 0)


def _nonblank_sample(column: pa.Array, rows: int) -> pa.Array:
    sample = column.slice(0, rows)
    if isinstance(sample, pa.ChunkedArray):
        sample = sample.combine_chunks()
    return sample.filter(pc.invert(pc.match_substring_regex(sample, _BLANK)))


# --- control characters -----------------------------------------------------------------------


def control_character_rows(
    frame: pd.DataFrame, columns: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, reasons): the positions of the rows where one of `columns` holds a control
    character, in order, and why ("column 姓名 holds a control character (NUL)", for the
    first such column). A look at each column's raw bytes first, a regex pass only where it
    may hold one; reasons are built per distinct character, not per row."""
    found: dict[int, str] = {}
    for column in columns:
        values = pa.array(frame[column], from_pandas=True)  # no copy: Arrow-backed already
        if not may_hold_control_chars(values):
            continue
        values = pc.fill_null(pa.array(frame[column].astype("str"), pa.string()), "")
        if isinstance(values, pa.ChunkedArray):  # several files: one chunk each
            values = values.combine_chunks()
        hit = pc.match_substring_regex(values, CONTROL_CHARS_RE2)
        rows = [row for row in pc.indices_nonzero(hit).to_numpy() if row not in found]
        if not rows:
            continue
        chars = pc.extract_regex(values.take(pa.array(rows)), f"(?P<c>{CONTROL_CHARS_RE2})")
        encoded = pc.dictionary_encode(pc.struct_field(chars, "c"))
        named = [
            f"column {column} holds a control character ({control_char_name(char)})"
            for char in encoded.dictionary.to_pylist()
        ]
        for row, index in zip(rows, encoded.indices.to_pylist(), strict=True):
            found[int(row)] = named[index]
    positions = np.array(sorted(found), dtype=np.int64)
    return positions, np.array([found[row] for row in positions], dtype=object)


# --- several files ----------------------------------------------------------------------------


def _combine(frames: list[pd.DataFrame], files: list[FileSummary]) -> ContactList:
    columns: list[str] = []
    for frame in frames:
        columns.extend(c for c in frame.columns if c not in RESERVED_COLUMNS and c not in columns)
    if len(frames) == 1:
        combined = frames[0]
    else:
        combined = pd.concat(frames, ignore_index=True, sort=False)
        combined[columns] = combined[columns].fillna("")
    combined = combined[[*columns, *RESERVED_COLUMNS]].reset_index(drop=True)
    return ContactList(combined, columns, files)
