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
    TextOption,
    handle_errors,
    info,
    print_json,
    settings_from,
    template_text,
)

Reasons = dict[str, list[tuple[str, int]]]  # outcome -> [(reason, rows), ...]
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
    from campaign.contacts import read_contacts
    from campaign.errors import InputError
    from campaign.messages import check_template_limits
    from campaign.plan import make_plan, plan_options, refuse_if_nothing_valid
    from campaign.store.caps import read_capped_mobiles
    from campaign.store.suppression import read_suppressed

    if out is not None:
        _refuse_to_overwrite_input(out, [Path(p) for p in contacts])
    settings = settings_from(config, db)
    message = template_text(template, text)
    options = plan_options(settings)
    check_template_limits(message, settings.limits)  # before a long list is read
    found = read_contacts(
        [Path(p) for p in contacts],
        sheet=sheet,
        header_row=header_row,
        mobile_column=mobile_column,
        limits=settings.limits,
    )
    suppressed = read_suppressed(settings.store_url)
    capped = read_capped_mobiles(
        settings.store_url, options.max_per_recipient, options.cap_window_hours
    )
    result = make_plan(
        found, message, options, suppressed, capped=capped, allow_nothing_valid=out is not None
    )
    summary = {**result.summary(), **before_sending(result)}
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
    for warning in summary["warnings"]:
        info(f"warning: {warning}")
    if json_output:
        print_json(summary)
        return
    typer.echo(human_summary(summary, top_reasons(result.rows)))
    if out is not None:
        info(f"preview written to {out}")


def before_sending(plan: Any) -> dict[str, Any]:
    """What the sender sees before sending: `sample` (or None) and `warnings`."""
    from campaign.plan_sample import plan_warnings, sample_message

    sample = sample_message(plan)
    return {"sample": sample, "warnings": plan_warnings(plan, sample)}


def show_before_sending(plan: Any) -> dict[str, Any]:
    """`before_sending`, shown on stderr: the sample message and the warnings."""
    seen = before_sending(plan)
    for line in sample_lines(seen["sample"]):
        info(line)
    for warning in seen["warnings"]:
        info(f"warning: {warning}")
    return seen


def sample_lines(sample: dict[str, Any] | None) -> list[str]:
    """The sample message for people: number, segments, then the text indented."""
    if sample is None:
        return ["sample message: none (nobody is ready to send to)"]
    parts = "segment" if sample["segments"] == 1 else "segments"
    head = f"sample message to {sample['mobile']} ({sample['segments']} billed {parts}):"
    return [head, *(f"  {line}" for line in sample["text"].split("\n"))]


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
    if "sample" in summary:
        lines.extend(sample_lines(summary["sample"]))
    return "\n".join(lines)
