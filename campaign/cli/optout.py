"""`campaign optout add/remove/list/import`: the suppression list (numbers never sent to)."""

from __future__ import annotations

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
    help="Manage the suppression list: numbers that no campaign sends to.",
    no_args_is_help=True,
)
app.add_typer(optout_app, name="optout")

MobilesArg = Annotated[
    list[str],
    typer.Argument(metavar="MOBILE", help="Mobile numbers (11 digits; +86 and spaces are fine)."),
]
SHOWN_PROBLEMS = 10  # invalid rows of an imported file listed by row number


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
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Put numbers on the suppression list."""
    from campaign.store import open_store, suppression

    numbers = _normalized(mobiles)
    engine = open_store(settings_from(config, db).store_url)
    try:
        added = suppression.add(engine, numbers, "manual")
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
    """Take numbers off the suppression list."""
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
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print the suppression list, one number a line (--json: a JSON list)."""
    from campaign.store.suppression import read_suppressed

    numbers = sorted(read_suppressed(settings_from(config, db).store_url))
    if json_output:
        print_json(numbers)
    elif numbers:
        typer.echo("\n".join(numbers))


@optout_app.command("import")
@handle_errors
def import_file(
    file: Annotated[str, typer.Argument(help="CSV/XLSX file with a mobile column.")],
    mobile_column: MobileColumnOption = None,
    sheet: SheetOption = None,
    header_row: HeaderRowOption = None,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add every valid number of a file's mobile column; invalid ones are reported, skipped."""
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
    )
    frame = contacts.frame
    normalized = normalize_mobiles(frame["_mobile_raw"])
    valid = normalized["valid"].to_numpy(dtype=bool)
    numbers = normalized["mobile"][valid]
    unique = numbers.drop_duplicates().tolist()
    engine = open_store(settings.store_url)
    try:
        added = suppression.add(engine, unique, "import", Path(file).name)
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
