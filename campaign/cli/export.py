"""`campaign export CAMPAIGN -o FILE`: the result spreadsheet of a campaign."""

from __future__ import annotations

from enum import StrEnum
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


class Lang(StrEnum):
    en = "en"
    zh = "zh"


@app.command("export")
@handle_errors
def export(
    campaign: Annotated[
        str, typer.Argument(metavar="ID", help="Campaign id (or name).", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="File to write: .xlsx (with summary sheets) or .csv.",
            show_default=False,
        ),
    ],
    lang: Annotated[
        Lang,
        typer.Option(
            "--lang",
            help="en: SPEC's column names and English words; zh: everything but your own "
            "columns in Chinese (sheets, headers, outcomes, reasons, labels).",
        ),
    ] = Lang.en,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write the result spreadsheet of a campaign: one row per input row, with its outcome.

    Example:
      campaign export 12 -o results.xlsx
      campaign export spring-2026 -o results.csv --lang zh
    """
    from campaign import workflow

    workflow.check_export_path(out)  # a wrong extension before the config
    result = workflow.export(settings_from(config, db=db), campaign, out, lang=lang.value)
    summary = result.summary
    if json_output:
        print_json(result.to_json())
        return
    counts = ", ".join(f"{o} {n}" for o, n in summary.outcomes.items() if n)
    typer.echo(str(summary.path))
    what = f"campaign {result.campaign_id} ({result.name})"
    typer.echo(f"{summary.rows} rows of {what}: {counts or 'none'}")
