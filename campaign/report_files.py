"""Delivery-report files (CSV or workbook) -> one frame of checked reports.

Columns are found by their header, case- and width-insensitively (SPEC): msgid (`msgid`,
`消息ID`, `消息编号`), mobile (`mobile`, `手机号`, `手机号码`), status (`status`, `状态`,
`状态码`), time (`reportTime`, `report_time`, `状态报告时间`, `时间`). The header is the first
of the file's first rows that names all four (title rows above it are fine). Every cell is
read as text (`campaign.tabular`): a long msgid never becomes a float. Rows are checked a
column at a time; a bad row is data (`malformed`, with its row number), not an error.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from campaign.errors import InputError
from campaign.phones import normalize_mobiles
from campaign.reports import parse_report_times
from campaign.tabular import Grid, read_grids

HEADER_NAMES: dict[str, tuple[str, ...]] = {
    "msgid": ("msgid", "消息ID", "消息编号"),
    "mobile": ("mobile", "手机号", "手机号码"),
    "status": ("status", "状态", "状态码"),
    "time": ("reportTime", "report_time", "状态报告时间", "时间"),
}
HEADER_SEARCH_ROWS = 20
MAX_STATUS = 64


@dataclass(frozen=True)
class ReportFile:
    """The reports of one file: `valid` has REPORT_COLUMNS (origin = the file name);
    `malformed` has row (as a spreadsheet shows it) and reason."""

    source: str
    valid: pd.DataFrame
    malformed: pd.DataFrame


def read_report_file(path: Path | str) -> ReportFile:
    """Read and check one report file; InputError (exit 3) when it cannot be used at all."""
    file = Path(path)
    if not file.exists():
        raise InputError(f"report file not found: {path}")
    grids = [g for g in read_grids(file) if g.height]
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


def _key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold().replace(" ", "")


_FIELD_BY_KEY = {_key(alias): field for field, aliases in HEADER_NAMES.items() for alias in aliases}


def _fields(cells: list[str]) -> dict[str, int]:
    """field -> column index, for the cells of one row (the first match of each field)."""
    found: dict[str, int] = {}
    for index, cell in enumerate(cells):
        field = _FIELD_BY_KEY.get(_key(cell))
        if field and field not in found:
            found[field] = index
    return found


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
    start = header_at + 1
    cells = {
        field: grid.columns[index].slice(start).to_pandas().astype(object).str.strip()
        for field, index in columns.items()
    }
    frame = pd.DataFrame(cells)
    frame.index = pd.RangeIndex(start + 1, start + 1 + len(frame))  # spreadsheet row numbers
    frame = frame[(frame != "").any(axis=1)]  # blank rows are not reports
    reasons = pd.Series("", index=frame.index, dtype=object)
    msgid_ok = frame["msgid"].str.fullmatch(r"\d{1,64}")
    mobile = _mobiles(frame["mobile"])
    times = parse_report_times(frame["time"])
    status_ok = (frame["status"] != "") & (frame["status"].str.len() <= MAX_STATUS)
    checks = (
        (~msgid_ok, "msgid is not a number"),
        (mobile.isna(), "mobile is not a number"),
        (~status_ok, "status is empty or too long"),
        (times.isna(), "time is not a real date and time"),
    )
    for bad, reason in reversed(checks):  # the first problem of a row is its reason
        reasons = reasons.mask(bad, reason)
    ok = reasons == ""
    valid = pd.DataFrame(
        {
            "msgid": frame["msgid"][ok],
            "mobile": mobile[ok],
            "status": frame["status"][ok],
            "report_time": times[ok],
            "raw_time": frame["time"][ok].str.slice(0, 32),
            "origin": origin,
        }
    )
    malformed = pd.DataFrame({"row": frame.index[~ok], "reason": reasons[~ok].to_numpy()})
    return valid.reset_index(drop=True), malformed


def _mobiles(raw: pd.Series) -> pd.Series:
    """The 11-digit mobile where it is one, else the number's digits as given; NA when the
    cell is not a number at all (same rule as the receiver)."""
    normalized = normalize_mobiles(raw)
    digits = raw.str.replace(r"[\s\-]", "", regex=True).str.removeprefix("+")
    plain = digits.where(digits.str.fullmatch(r"\d{5,20}"))
    return normalized["mobile"].where(normalized["valid"], plain).astype(object)
