"""How contact files would be read, for a person to check and correct (the console's
"map" step): each visible sheet (or CSV file) with its first rows, the header row, the
columns and the mobile column that `read_contacts` finds with the given choices, and what
it would refuse. Reads the files (bounded by `[limits]` as `read_contacts` is); sends and
stores nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from campaign.config import LimitSettings
from campaign.contacts import column_letter, grid_layout
from campaign.errors import ContactsError
from campaign.tabular import DEFAULT_LIMITS, read_grids

#: Rows and columns of a sheet shown, and characters of a cell.
SHOWN_ROWS = 8
SHOWN_COLUMNS = 20
SHOWN_CHARS = 40


@dataclass(frozen=True)
class SheetLayout:
    """One sheet of a workbook, or a CSV file, as it would be read."""

    file: str  # the file's name as uploaded (for showing)
    sheet: str | None  # None for CSV
    used: bool  # read with the chosen sheet (all visible sheets when none is chosen)
    first_rows: list[tuple[int, list[str]]]  # (row number as a spreadsheet shows it, cells)
    width: int  # columns of the sheet
    height: int  # rows of the sheet
    header_row: int | None  # 1-based; None: no header row found
    columns: list[str]
    mobile_column: str | None
    rows: int  # contact rows below the header
    problem: str | None  # why it cannot be read so, or None
    mobile_index: int | None = None  # 0-based column of the mobile column (None: none)

    @property
    def letters(self) -> list[str]:
        """The column letters (A, B, ...) of the cells shown."""
        widest = max((len(cells) for _, cells in self.first_rows), default=0)
        return [column_letter(i) for i in range(widest)]


def contact_layouts(
    files: Sequence[tuple[Path, str]],
    *,
    sheet: str | None = None,
    header_row: int | None = None,
    mobile_column: str | None = None,
    limits: LimitSettings = DEFAULT_LIMITS,
) -> list[SheetLayout]:
    """The layout of every visible sheet of each file (path, name as uploaded). A file
    that cannot be read at all is a ContactsError (naming it as uploaded)."""
    found: list[SheetLayout] = []
    for path, name in files:
        try:
            grids = read_grids(path, None, what="contact file", limits=limits)
        except ContactsError as exc:
            raise ContactsError(str(exc).replace(str(path), name)) from None
        for grid in grids:
            used = sheet is None or grid.sheet is None or _same_sheet(grid.sheet, sheet)
            layout = grid_layout(grid, header_row, mobile_column if used else None)
            problem = layout.problem
            if problem is not None:
                problem = problem.replace(str(path), name)
            first = [
                (number, [_shown(cell) for cell in cells[:SHOWN_COLUMNS]])
                for number, cells in enumerate(grid.rows(0, SHOWN_ROWS), start=1)
            ]
            found.append(
                SheetLayout(
                    name,
                    grid.sheet,
                    used,
                    first,
                    len(grid.columns),
                    grid.height,
                    layout.header_row,
                    layout.columns,
                    layout.mobile_column,
                    layout.rows,
                    problem,
                    layout.mobile_index,
                )
            )
    return found


def _same_sheet(name: str, wanted: str) -> bool:
    return name == wanted or name.strip().casefold() == wanted.strip().casefold()


def _shown(cell: str) -> str:
    return cell if len(cell) <= SHOWN_CHARS else cell[: SHOWN_CHARS - 1] + "…"


__all__ = ["SHOWN_ROWS", "SheetLayout", "contact_layouts"]
