"""`campaign optout add/remove/list/import/export`: the suppression list (numbers never
sent to). Every entry keeps where it came from (reason, detail, added_by, added_at):
`add` and `import` record the OS user who ran them, `import` the file and row of each
number, `add --note` a note of your own."""

from __future__ import annotations

from pathlib import Path

import typer

from campaign.cli import render_optout
from campaign.cli.app import app
from campaign.cli.common import handle_errors, print_json, settings_from
from campaign.cli.options import (
    ConfigOption,
    DbOption,
    DetailsOption,
    HeaderRowOption,
    JsonOption,
    MobileColumnOption,
    MobilesArg,
    NoteOption,
    OptoutFileArg,
    OptoutOutOption,
    SheetOption,
)

optout_app = typer.Typer(
    help="Manage the suppression list: numbers that no campaign sends to."
    "\n\nExample:\n  campaign optout add 13800138000 --note 'asked by phone'",
    no_args_is_help=True,
)
app.add_typer(optout_app, name="optout")


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
    from campaign import workflow

    numbers = workflow.normalized_mobiles(mobiles)  # bad numbers before the config
    result = workflow.add_optouts(settings_from(config, db), numbers, note)
    render_optout.optout_change(result, json_output)


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
    from campaign import workflow

    numbers = workflow.normalized_mobiles(mobiles)  # bad numbers before the config
    result = workflow.remove_optouts(settings_from(config, db), numbers)
    render_optout.optout_change(result, json_output)


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
    from campaign import workflow

    settings = settings_from(config, db)
    if details:
        render_optout.optout_entries(workflow.optout_entries(settings), json_output)
        return
    render_optout.optout_numbers(workflow.optout_numbers(settings), json_output)


@optout_app.command("export")
@handle_errors
def export_list(
    out: OptoutOutOption,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write the suppression list with where each entry came from to FILE (.xlsx/.csv).

    Columns: mobile, added_at (China time, with its offset), reason, detail, added_by.

    Example:
      campaign optout export -o optouts.xlsx
    """
    from campaign import workflow

    result = workflow.export_optouts(settings_from(config, db), out)
    render_optout.optout_export(result, json_output)


@optout_app.command("import")
@handle_errors
def import_file(
    file: OptoutFileArg,
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
    from campaign import workflow

    settings = settings_from(config, db)
    result = workflow.import_optouts(
        settings, Path(file), sheet=sheet, header_row=header_row, mobile_column=mobile_column
    )
    render_optout.skipped_rows(result.invalid)
    print_json(result.to_json()) if json_output else render_optout.optout_import(result.figures)
