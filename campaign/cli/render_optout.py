"""How the suppression list commands show their results to people (`campaign optout ...`;
the JSON forms are the results' `to_json()`)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import typer

from campaign.cli.common import info, print_json

if TYPE_CHECKING:  # campaign.workflow loads the store and pandas: not at start-up
    from campaign.workflow import OptoutChange, OptoutExport

SHOWN_PROBLEMS = 10  # invalid rows of an imported file listed by row number
TABLE_HEADERS = ("mobile", "added (China time)", "reason", "detail", "by")
CHANGE_LINES = {  # by the first JSON key of the change: add, remove
    "added": "added {changed} number(s) to the suppression list ({unchanged} already on it)",
    "removed": "removed {changed} number(s) from the suppression list ({unchanged} not on it)",
}


def optout_change(result: OptoutChange, json_output: bool) -> None:
    """What `optout add` or `optout remove` changed."""
    if json_output:
        print_json(result.to_json())
        return
    line = CHANGE_LINES[result.keys[0]]
    typer.echo(line.format(changed=result.changed, unchanged=result.unchanged))


def optout_numbers(numbers: list[str], json_output: bool) -> None:
    """The listed numbers, one a line (nothing for an empty list), or a JSON list."""
    if json_output:
        print_json(numbers)
    elif numbers:
        typer.echo("\n".join(numbers))


def optout_entries(entries: Sequence[Mapping[str, object]], json_output: bool) -> None:
    """The entries as a table (or JSON objects), added_at in China time."""
    from campaign.optout_export import entry_cells, entry_json

    if json_output:
        print_json([entry_json(entry) for entry in entries])
        return
    rows = [entry_cells(entry, offset=False) for entry in entries]
    widths = [
        max(_width(r[i]) for r in [list(TABLE_HEADERS), *rows]) for i in range(len(TABLE_HEADERS))
    ]
    for cells in (list(TABLE_HEADERS), *rows):
        padded = (c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True))
        typer.echo("  ".join(padded).rstrip())


def _width(text: str) -> int:
    """Columns `text` takes on a terminal: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def optout_export(result: OptoutExport, json_output: bool) -> None:
    if json_output:
        print_json(result.to_json())
    else:
        typer.echo(f"wrote {result.rows} suppressed number(s) to {result.path}")


def skipped_rows(shown: list[tuple[str, int, str]]) -> None:
    for source, row, reason in shown[:SHOWN_PROBLEMS]:
        info(f"skipped {source} row {row}: {reason}")
    if len(shown) > SHOWN_PROBLEMS:
        info(f"... and {len(shown) - SHOWN_PROBLEMS} more invalid rows")


def optout_import(figures: dict[str, Any]) -> None:
    typer.echo(
        f"{figures['source']}: {figures['rows']} rows; added {figures['added']} number(s) "
        f"to the suppression list, {figures['already']} already on it, "
        f"{figures['repeated']} repeated in the file, {figures['invalid']} invalid (skipped)"
    )
