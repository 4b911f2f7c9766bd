"""`campaign optout export`: the suppression list with where each entry came from.

One row per number: mobile, added_at (China time with its offset, e.g.
"2026-12-03 16:05:01+08:00"), reason, detail, added_by. `.xlsx` (every cell text, so
mobiles stay digits) or `.csv` (UTF-8 with a BOM for Excel); text that a spreadsheet
program would take for a formula gets a leading `'`. Written beside the target and
renamed onto it, so a failed export leaves no half file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from campaign.export import atomic_output, output_format
from campaign.patterns import neutralise_formula
from campaign.store.suppression import ENTRY_FIELDS
from campaign.timeutil import CHINA

SHEET = "optouts"
COLUMN_WIDTHS = {"mobile": 14, "added_at": 26, "reason": 16, "detail": 48, "added_by": 14}


def china_time(moment: object, *, sep: str = " ", offset: bool = True) -> str:
    """An entry's `added_at` for people: China time, with its offset unless `offset` is
    False (for a table whose header says "China time"); "" when unknown."""
    if not isinstance(moment, datetime):
        return ""
    text = moment.astimezone(CHINA).isoformat(sep=sep, timespec="seconds")
    return text if offset else text[: -len("+08:00")]


def entry_cells(entry: Mapping[str, object], *, offset: bool = True) -> list[str]:
    """The cells of one entry, in ENTRY_FIELDS order, every one text."""
    return [
        china_time(entry.get(name), offset=offset)
        if name == "added_at"
        else str(entry.get(name) or "")
        for name in ENTRY_FIELDS
    ]


def entry_json(entry: Mapping[str, object]) -> dict[str, str | None]:
    """One entry for JSON: added_at as ISO 8601 in China time ("2026-12-03T16:05:01+08:00")."""
    data = {name: entry.get(name) for name in ENTRY_FIELDS}
    return {
        name: china_time(value, sep="T") or None if name == "added_at" else _text(value)
        for name, value in data.items()
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def write_optouts(entries: Iterable[Mapping[str, object]], out: Path) -> int:
    """Write `entries` to `out` (.xlsx or .csv); return the rows written."""
    kind = output_format(out)
    rows = [[neutralise_formula(cell) for cell in entry_cells(entry)] for entry in entries]
    with atomic_output(out) as partial:
        if kind == "csv":
            _write_csv(rows, partial)
        else:
            _write_xlsx(rows, partial)
    return len(rows)


def _write_csv(rows: Sequence[list[str]], path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(ENTRY_FIELDS)
        writer.writerows(rows)


def _write_xlsx(rows: Sequence[list[str]], path: Path) -> None:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(
        str(path), {"constant_memory": True, "strings_to_formulas": False}
    )
    try:
        sheet = workbook.add_worksheet(SHEET)
        bold = workbook.add_format({"bold": True})
        for col, name in enumerate(ENTRY_FIELDS):
            sheet.set_column(col, col, COLUMN_WIDTHS[name])
            sheet.write_string(0, col, name, bold)
        for row_no, cells in enumerate(rows, start=1):
            for col, cell in enumerate(cells):
                sheet.write_string(row_no, col, cell)
        sheet.freeze_panes(1, 0)
    finally:
        workbook.close()


__all__ = ["china_time", "entry_cells", "entry_json", "write_optouts"]
