"""`campaign plan`: the dry run. Reads, validates, renders and batches; sends and stores nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from campaign.cli.app import app
from campaign.cli.common import (
    ConfigOption,
    DbOption,
    HeaderRowOption,
    JsonOption,
    MobileColumnOption,
    SheetOption,
    TemplateOption,
    handle_errors,
    info,
    print_json,
    settings_from,
)

Reasons = dict[str, list[tuple[str, int]]]  # outcome -> [(reason, rows), ...]
ContactsArg = Annotated[
    list[str],
    typer.Argument(metavar="CONTACTS", help="Contact files (xlsx, xls, csv).", show_default=False),
]


@app.command("plan")
@handle_errors
def plan(
    contacts: ContactsArg,
    template: TemplateOption,
    sheet: SheetOption = None,
    header_row: HeaderRowOption = None,
    mobile_column: MobileColumnOption = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Campaign name (shown only).", show_default=False)
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the per-row preview (.xlsx or .csv).", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Dry run: counts by outcome, billed segments and batches; sends and stores nothing."""
    from campaign.contacts import read_contacts
    from campaign.errors import InputError
    from campaign.messages import load_template
    from campaign.plan import make_plan, plan_options, refuse_if_nothing_valid
    from campaign.store.caps import read_capped_mobiles
    from campaign.store.suppression import read_suppressed

    if out is not None:
        _refuse_to_overwrite_input(out, [Path(p) for p in contacts])
    settings = settings_from(config, db)
    text = load_template(template)
    options = plan_options(settings)
    found = read_contacts(
        [Path(p) for p in contacts], sheet=sheet, header_row=header_row, mobile_column=mobile_column
    )
    suppressed = read_suppressed(settings.store_url)
    capped = read_capped_mobiles(
        settings.store_url, options.max_per_recipient, options.cap_window_hours
    )
    result = make_plan(
        found, text, options, suppressed, capped=capped, allow_nothing_valid=out is not None
    )
    summary = result.summary()
    if name:
        summary["name"] = name
    if out is not None:
        from campaign.plan_preview import write_preview

        write_preview(result, out)
        summary["preview"] = str(out)
        try:
            refuse_if_nothing_valid(result)  # still bad input, but the preview shows each row
        except InputError as exc:
            raise InputError(f"{exc}; every row and its reason: {out}") from None
    if json_output:
        print_json(summary)
        return
    typer.echo(human_summary(summary, top_reasons(result.rows)))
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


def top_reasons(
    rows: Any, outcomes: tuple[str, ...] = ("invalid", "unsent"), top: int = 3
) -> Reasons:
    """The most frequent reasons of these outcomes: {outcome: [(reason, count), ...]}."""
    found: Reasons = {}
    for outcome in outcomes:
        counts = rows["reason"][rows["outcome"] == outcome].value_counts().head(top)
        if len(counts):
            found[outcome] = [(str(reason), int(n)) for reason, n in counts.items()]
    return found


def human_summary(summary: dict[str, Any], reasons: Reasons | None = None) -> str:
    lines = [f"Plan{' ' + summary['name'] if summary.get('name') else ''} (nothing sent)"]
    for file in summary["files"]:
        blank = f", {file['blank_rows']} blank skipped" if file["blank_rows"] else ""
        lines.append(f"  {file['source']}: {file['rows']} rows{blank}")
    lines.append(f"rows: {summary['rows']}")
    width = max(len(k) for k in summary["outcomes"])
    for outcome, count in summary["outcomes"].items():
        lines.append(f"  {outcome:<{width}}  {count}")
        for reason, n in (reasons or {}).get(outcome, []):
            lines.append(f"  {'':<{width}}    {n} {reason}")
    lines.append(f"recipients: {summary['recipients']}")
    lines.append(f"requests: {summary['requests']}")
    lines.append(f"billed segments: {summary['segments']}")
    if summary["requests"]:
        lines.append(
            f"largest batch: {summary['largest_batch']}, "
            f"smallest batch: {summary['smallest_batch']}"
        )
    return "\n".join(lines)
