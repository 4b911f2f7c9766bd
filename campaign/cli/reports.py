"""`campaign reports import FILE...`: delivery-report files into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campaign.cli.app import app
from campaign.cli.common import (
    ConfigOption,
    DbOption,
    JsonOption,
    handle_errors,
    print_json,
    settings_from,
)

reports_app = typer.Typer(
    name="reports",
    help="Delivery-report files: import them into the store."
    "\n\nExample:\n  campaign reports import reports/*.csv",
    no_args_is_help=True,
)
app.add_typer(reports_app, name="reports")

SHOWN_MALFORMED = 20


@reports_app.command("import")
@handle_errors
def import_reports(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE",
            help="Report files (CSV or XLSX) with msgid, mobile, status and reportTime columns.",
            show_default=False,
        ),
    ],
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Import delivery-report files; importing the same file again changes nothing.

    Example:
      campaign reports import reports/2026-03-01.csv reports/2026-03-02.xlsx --json
    """
    from campaign import workflow

    result = workflow.import_reports(settings_from(config, db), files)
    if json_output:
        print_json(result.to_json())
        return
    for summary in result.files:
        typer.echo(
            f"{summary.source}: {summary.imported} imported, {summary.repeated} repeated, "
            f"{summary.malformed} malformed, {summary.unmatched} unmatched"
        )
        for row, reason in summary.malformed_rows[:SHOWN_MALFORMED]:
            typer.echo(f"  row {row}: {reason}")
        if summary.malformed > SHOWN_MALFORMED:
            typer.echo(f"  ... and {summary.malformed - SHOWN_MALFORMED} more malformed rows")
