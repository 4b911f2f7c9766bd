"""Delivery-report files (CSV or workbook) -> one frame of checked reports.

Columns are found by their header, case- and width-insensitively (SPEC): msgid (`msgid`,
`消息ID`, `消息编号`), mobile (`mobile`, `手机号`, `手机号码`), status (`status`, `状态`,
`状态码`), time (`reportTime`, `report_time`, `状态报告时间`, `时间`). The header is the first
of the file's first rows that names all four (title rows above it are fine); where a file
has two columns for one field, a specific header beats the generic `时间` / `状态`. Every cell is
read as text (`campaign.tabular`): a long msgid never becomes a float. Rows are checked a
column at a time by the rule of `campaign.report_rows` (shared with pushed reports); a bad
row is data (`malformed`, with its row number and the reason of its first problem), not an
error: so is a row whose msgid, mobile, status or time holds a NUL or other control
character (nothing with one reaches the store; PostgreSQL refuses NUL in text). A file past
`[limits]` is bad input (exit 3), refused by `campaign.tabular` before it is read whole.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from campaign.config import LimitSettings
from campaign.errors import ContactsError, InputError
from campaign.patterns import header_key
from campaign.report_rows import Problem, check_report_columns, trimmed
from campaign.tabular import DEFAULT_LIMITS, Grid, read_grids

HEADER_NAMES: dict[str, tuple[str, ...]] = {
    "msgid": ("msgid", "消息ID", "消息编号"),
    "mobile": ("mobile", "手机号", "手机号码"),
    "status": ("status", "状态", "状态码"),
    "time": ("reportTime", "report_time", "状态报告时间", "时间"),
}
HEADER_SEARCH_ROWS = 20
#: The reason of a malformed row: its first problem in this order.
REASONS: dict[Problem, str] = {
    Problem.CONTROL: "a cell holds a control character (NUL, ...)",
    Problem.MSGID: "msgid is not a number",
    Problem.MOBILE: "mobile is not a number",
    Problem.STATUS_EMPTY: "status is empty or too long",
    Problem.STATUS_LONG: "status is empty or too long",
    Problem.TIME: "time is not a real date and time",
}


@dataclass(frozen=True)
class ReportFile:
    """The reports of one file: `valid` has REPORT_COLUMNS (origin = the file name);
    `malformed` has row (as a spreadsheet shows it) and reason."""

    source: str
    valid: pd.DataFrame
    malformed: pd.DataFrame


def read_report_file(path: Path | str, limits: LimitSettings = DEFAULT_LIMITS) -> ReportFile:
    """Read and check one report file; InputError (exit 3) when it cannot be used at all."""
    file = Path(path)
    if not file.exists():
        raise InputError(f"report file not found: {path}")
    try:
        grids = [g for g in read_grids(file, limits=limits) if g.height]
    except ContactsError as exc:  # the shared reader speaks of contact files
        raise InputError(str(exc).replace("contact file", "report file")) from None
    found = [(grid, _header(grid)) for grid in grids]
    usable = [(grid, at) for grid, at in found if at is not None]
    if not usable:
        raise InputError(_no_columns_message(str(path), grids))
    valid, malformed = [], []
    for grid, (row, columns) in usable:
        good, bad = _check_rows(grid, row, columns, file.name)
        valid.append(good)
        malformed.append(bad)
    return ReportFile(file.name, pd.concat(valid, ignore_index=True), pd.concat(malformed))


_FIELD_BY_KEY = {
    header_key(alias): field for field, aliases in HEADER_NAMES.items() for alias in aliases
}
#: Headers that give way to a specific one in the same file: a platform's export may have a
#: submit 时间 beside the 状态报告时间, or a 状态 in words (成功/失败) beside the 状态码.
GENERIC_HEADERS = frozenset({header_key("时间"), header_key("状态")})


def _fields(cells: list[str]) -> dict[str, int]:
    """field -> column index, for the cells of one row: the first match of each field, a
    specific header before a generic one."""
    found: dict[str, tuple[bool, int]] = {}
    for index, cell in enumerate(cells):
        key = header_key(cell)
        field = _FIELD_BY_KEY.get(key)
        if field and (field not in found or (found[field][0] and key not in GENERIC_HEADERS)):
            found[field] = (key in GENERIC_HEADERS, index)
    return {field: index for field, (_, index) in found.items()}


def _header(grid: Grid) -> tuple[int, dict[str, int]] | None:
    for offset, cells in enumerate(grid.rows(0, HEADER_SEARCH_ROWS)):
        found = _fields(cells)
        if len(found) == len(HEADER_NAMES):
            return offset, found
    return None


def _no_columns_message(shown: str, grids: list[Grid]) -> str:
    best: tuple[int, list[str]] = (-1, [])
    for grid in grids:
        for cells in grid.rows(0, HEADER_SEARCH_ROWS):
            if any(c.strip() for c in cells) and len(_fields(cells)) > best[0]:
                best = (len(_fields(cells)), [c for c in cells if c.strip()])
    found = ", ".join(repr(c) for c in best[1][:30]) or "(none)"
    wanted = "; ".join(f"{field}: {', '.join(names)}" for field, names in HEADER_NAMES.items())
    present = _fields(best[1])
    missing = [f for f in HEADER_NAMES if f not in present]
    what = "no recognisable report columns" if not present else f"no {'/'.join(missing)} column"
    return f"{shown}: {what}; columns found: {found} (expected headers {wanted})"


def _check_rows(
    grid: Grid, header_at: int, columns: dict[str, int], origin: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid reports and malformed rows of one grid, a column at a time (pyarrow)."""
    start = header_at + 1
    cells = {f: trimmed(grid.columns[i].slice(start)) for f, i in columns.items()}
    rows = pa.array(np.arange(start + 1, grid.height + 1))  # as a spreadsheet shows them
    filled = functools.reduce(pc.or_, [pc.not_equal(c, "") for c in cells.values()])
    if not pc.all(filled).as_py():  # blank rows are not reports
        cells = {f: c.filter(filled) for f, c in cells.items()}
        rows = rows.filter(filled)
    checked = check_report_columns(cells["msgid"], cells["time"], cells["mobile"], cells["status"])
    problems = pc.make_struct(
        *(checked.problems[problem] for problem in REASONS),
        field_names=[problem.value for problem in REASONS],
    )
    reason = pc.case_when(problems, *REASONS.values())  # the first problem; null when none
    ok = pc.is_null(reason)
    valid = pa.table(
        {
            "msgid": cells["msgid"].filter(ok),
            "mobile": checked.mobile.filter(ok),
            "status": cells["status"].filter(ok),
            "report_time": checked.report_time.filter(ok),
            "raw_time": checked.raw_time.filter(ok),
        }
    ).to_pandas()
    valid["origin"] = origin
    bad = pc.invert(ok)
    malformed = pd.DataFrame(
        {"row": rows.filter(bad).to_numpy(), "reason": reason.filter(bad).to_pylist()}
    )
    return valid, malformed
