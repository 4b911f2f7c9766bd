"""`campaign plan`: the dry run. Reads, validates, renders and batches; sends and stores nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campaign.cli import quick_exit, render
from campaign.cli.app import app
from campaign.cli.common import (
    ConfigOption,
    DbOption,
    HeaderRowOption,
    JsonOption,
    MobileColumnOption,
    SheetOption,
    TemplateOption,
    TextOption,
    handle_errors,
    info,
    print_json,
    settings_from,
    template_text,
)

ContactsArg = Annotated[
    list[str],
    typer.Argument(metavar="FILE", help="Contact files (xlsx, xls, csv).", show_default=False),
]


@app.command("plan")
@handle_errors
def plan(
    contacts: ContactsArg,
    template: TemplateOption = None,
    text: TextOption = None,
    sheet: SheetOption = None,
    header_row: HeaderRowOption = None,
    mobile_column: MobileColumnOption = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="TEXT", help="Campaign name (shown only).", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write the per-row preview (.xlsx or .csv).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Dry run: counts by outcome, billed segments and batches; sends and stores nothing.

    Shows one rendered sample message (the first recipient's, number masked) and warns
    when the texts carry no signature.

    Example:
      campaign plan customers.xlsx -t spring.txt --out preview.xlsx
      campaign plan a.csv b.csv --text '{姓名|会员}您好，春季会员日全场八折'
    """
    from campaign import workflow

    paths = [Path(p) for p in contacts]
    if out is not None:
        _refuse_to_overwrite_input(out, paths)
    settings = settings_from(config, db)
    message = template_text(template, text)
    planned = workflow.plan_from_files(
        settings, paths, message, sheet=sheet, header_row=header_row,
        mobile_column=mobile_column, allow_nothing_valid=out is not None,
    )  # fmt: skip
    summary = planned.figures()
    if name:
        summary["name"] = name
    if out is not None:
        workflow.write_preview(planned, out)
        summary["preview"] = str(out)
        workflow.refuse_if_nothing_valid(planned, out)  # bad input, but the preview shows why
    for warning in summary["warnings"]:
        info(f"warning: {warning}")
    quick_exit.allow()  # the plan of a long list is much to free, for nothing
    if json_output:
        print_json(summary)
        return
    typer.echo(render.human_summary(summary, render.top_reasons(planned.plan.rows)))
    if out is not None:
        info(f"preview written to {out}")


def _refuse_to_overwrite_input(out: Path, contacts: list[Path]) -> None:
    """--out naming one of the contact files would replace the list with its preview."""
    from campaign.errors import InputError

    target = out.expanduser().resolve()
    for path in contacts:
        if path.expanduser().resolve() == target:
            raise InputError(
                f"--out {out} is the contact file {path} itself; the preview would replace it "
                "(give another file name)"
            )
