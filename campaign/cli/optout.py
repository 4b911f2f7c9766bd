"""`campaign optout add/remove/list/import/export`: the suppression list (numbers never
sent to). Every entry keeps where it came from (reason, detail, added_by, added_at):
`add` and `import` record the OS user who ran them, `import` the file and row of each
number, `add --note` a note of your own."""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from campaign.cli.app import app
from campaign.cli.common import (
    ConfigOption,
    DbOption,
    HeaderRowOption,
    JsonOption,
    MobileColumnOption,
    SheetOption,
    handle_errors,
    info,
    print_json,
    settings_from,
)
from campaign.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

optout_app = typer.Typer(
    help="Manage the suppression list: numbers that no campaign sends to."
    "\n\nExample:\n  campaign optout add 13800138000 --note 'asked by phone'",
    no_args_is_help=True,
)
app.add_typer(optout_app, name="optout")

MobilesArg = Annotated[
    list[str],
    typer.Argument(metavar="MOBILE", help="Mobile numbers (11 digits; +86 and spaces are fine)."),
]
NoteOption = Annotated[
    str | None,
    typer.Option(
        "--note", metavar="TEXT", help="Why, kept with each entry (its detail).", show_default=False
    ),
]
DetailsOption = Annotated[
    bool,
    typer.Option(
        "--details",
        "-l",
        help="A table of where each entry came from (with --json: objects, not numbers).",
    ),
]
SHOWN_PROBLEMS = 10  # invalid rows of an imported file listed by row number
TABLE_HEADERS = ("mobile", "added (China time)", "reason", "detail", "by")


def _os_user(fallback: str) -> str:
    """Who ran the command, for added_by: the OS user name, or `fallback` if unknown."""
    try:
        return getpass.getuser() or fallback
    except Exception:  # no user name in the environment or the password database
        return fallback


def _normalized(mobiles: list[str]) -> list[str]:
    """The numbers normalized, or InputError naming every one that is not a mobile."""
    import pandas as pd

    from campaign.phones import normalize_mobiles

    result = normalize_mobiles(pd.Series(mobiles, dtype="str"))
    bad = [f"{raw!r} ({why})" for raw, why in zip(mobiles, result["reason"], strict=True) if why]
    if bad:
        raise InputError(f"not a mobile number: {', '.join(bad)}; nothing changed")
    return list(dict.fromkeys(result["mobile"].tolist()))


@optout_app.command("add")
@handle_errors
def add(
    mobiles: MobilesArg,
    note: NoteOption = None,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Put numbers on the suppression list (recorded with your OS user name and --note).

    Example:
      campaign optout add 13800138000 +86 139 0013 9000 --note 'asked by phone'
    """
    from campaign.store import open_store, suppression

    numbers = _normalized(mobiles)
    engine = open_store(settings_from(config, db).store_url)
    try:
        added = suppression.add(
            engine, numbers, "manual", note or None, added_by=_os_user("manual")
        )
    finally:
        engine.dispose()
    already = len(numbers) - added
    if json_output:
        print_json({"added": added, "already": already})
    else:
        typer.echo(f"added {added} number(s) to the suppression list ({already} already on it)")


@optout_app.command("remove")
@handle_errors
def remove(
    mobiles: MobilesArg,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Take numbers off the suppression list.

    Example:
      campaign optout remove 13800138000
    """
    from campaign.store.suppression import remove as remove_numbers

    numbers = _normalized(mobiles)
    engine = _existing_store(settings_from(config, db).store_url)
    removed = 0
    if engine is not None:
        try:
            removed = remove_numbers(engine, numbers)
        finally:
            engine.dispose()
    missing = len(numbers) - removed
    if json_output:
        print_json({"removed": removed, "not_listed": missing})
    else:
        typer.echo(f"removed {removed} number(s) from the suppression list ({missing} not on it)")


@optout_app.command("list")
@handle_errors
def list_numbers(
    details: DetailsOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print the suppression list, one number a line (--json: a JSON list of numbers).

    --details: a table of mobile, date added (China time), reason, detail and who added
    it; with --json a list of objects (mobile, added_at, reason, detail, added_by).

    Example:
      campaign optout list --details
    """
    from campaign.store.suppression import read_entries, read_suppressed

    url = settings_from(config, db).store_url
    if details:
        _print_entries(read_entries(url), json_output)
        return
    numbers = sorted(read_suppressed(url))
    if json_output:
        print_json(numbers)
    elif numbers:
        typer.echo("\n".join(numbers))


@optout_app.command("export")
@handle_errors
def export_list(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="FILE", help="The file to write: .xlsx or .csv."),
    ],
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write the suppression list with where each entry came from to FILE (.xlsx/.csv).

    Columns: mobile, added_at (China time, with its offset), reason, detail, added_by.

    Example:
      campaign optout export -o optouts.xlsx
    """
    from campaign.optout_export import write_optouts
    from campaign.store.suppression import read_entries

    rows = write_optouts(read_entries(settings_from(config, db).store_url), out)
    if json_output:
        print_json({"path": str(out), "rows": rows})
    else:
        typer.echo(f"wrote {rows} suppressed number(s) to {out}")


@optout_app.command("import")
@handle_errors
def import_file(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="CSV/XLSX file with a mobile column.")
    ],
    mobile_column: MobileColumnOption = None,
    sheet: SheetOption = None,
    header_row: HeaderRowOption = None,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add every valid number of a file's mobile column; invalid ones are reported, skipped.

    Example:
      campaign optout import unsubscribed.xlsx --mobile-column 手机号
    """
    from campaign.contacts import read_contacts
    from campaign.phones import normalize_mobiles
    from campaign.store import open_store, suppression

    settings = settings_from(config, db)
    contacts = read_contacts(
        [Path(file)],
        sheet=sheet,
        header_row=header_row,
        mobile_column=mobile_column,
        what="opt-out file",
        limits=settings.limits,
    )
    frame = contacts.frame
    normalized = normalize_mobiles(frame["_mobile_raw"])
    valid = normalized["valid"].to_numpy(dtype=bool)
    numbers = normalized["mobile"][valid]
    first = ~numbers.duplicated()
    unique = numbers[first].tolist()
    where = _rows_of(frame[valid][first.to_numpy()])
    engine = open_store(settings.store_url)
    try:
        added = suppression.add(
            engine,
            unique,
            "import",
            added_by=_os_user("import"),
            details=dict(zip(unique, where, strict=True)),
        )
    finally:
        engine.dispose()
    figures = {
        "source": ", ".join(f.source for f in contacts.files),
        "rows": len(frame),
        "added": added,
        "already": len(unique) - added,
        "repeated": int(len(numbers) - len(unique)),
        "invalid": int((~valid).sum()),
    }
    _report_invalid(frame[~valid], normalized["reason"][~valid])
    if json_output:
        print_json(figures)
    else:
        typer.echo(
            f"{figures['source']}: {figures['rows']} rows; added {added} number(s) to the "
            f"suppression list, {figures['already']} already on it, {figures['repeated']} "
            f"repeated in the file, {figures['invalid']} invalid (skipped)"
        )


def _rows_of(rows: pd.DataFrame) -> list[str]:
    """Where each row came from, as a detail: "optouts.xlsx:Sheet1 row 5"."""
    return [
        f"{source} row {row}"
        for source, row in zip(rows["_source"].tolist(), rows["_source_row"].tolist(), strict=True)
    ]


def _print_entries(entries: Sequence[Mapping[str, object]], json_output: bool) -> None:
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
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _report_invalid(rows: pd.DataFrame, reasons: pd.Series) -> None:
    shown = list(
        zip(rows["_source"].tolist(), rows["_source_row"].tolist(), reasons.tolist(), strict=True)
    )
    for source, row, reason in shown[:SHOWN_PROBLEMS]:
        info(f"skipped {source} row {row}: {reason}")
    if len(shown) > SHOWN_PROBLEMS:
        info(f"... and {len(shown) - SHOWN_PROBLEMS} more invalid rows")


def _existing_store(url: str) -> Engine | None:
    """The store at `url` if there is one (a missing SQLite file is not created)."""
    from campaign.store import open_store
    from campaign.store.suppression import store_exists

    return open_store(url) if store_exists(url) else None
