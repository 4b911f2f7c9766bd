"""How results are shown to people: the human forms of the workflow's typed results
(the JSON forms are their `to_json()`); the suppression list's are in `render_optout`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from campaign.cli import render_queue
from campaign.cli.common import fail, info, print_json
from campaign.timeutil import china_text

if TYPE_CHECKING:  # campaign.workflow loads the store and pandas: not at start-up
    from campaign.workflow import PlanResult, SendResult, StatusList, StatusResult

Reasons = dict[str, list[tuple[str, int]]]  # outcome -> [(reason, rows), ...]


def counts(found: dict[str, int]) -> str:
    shown = [f"{key} {value}" for key, value in found.items() if value]
    return ", ".join(shown) or "none"


def sample_lines(sample: dict[str, Any] | None) -> list[str]:
    """The sample message for people: number, segments, then the text indented."""
    if sample is None:
        return ["sample message: none (nobody is ready to send to)"]
    parts = "segment" if sample["segments"] == 1 else "segments"
    head = f"sample message to {sample['mobile']} ({sample['segments']} billed {parts}):"
    return [head, *(f"  {line}" for line in sample["text"].split("\n"))]


def show_before_sending(planned: PlanResult) -> None:
    """The sample message and the warnings, on stderr."""
    for line in sample_lines(planned.sample):
        info(line)
    for warning in planned.warnings:
        info(f"warning: {warning}")


def send_declined(planned: PlanResult, json_output: bool) -> None:
    """A send declined at the question: said on stderr, and with --json still exactly one
    JSON object for a script reading stdout."""
    from campaign.workflow import PLAN_KEYS

    info("declined: nothing was sent (nothing stored)")
    if json_output:
        figures = planned.figures()
        print_json({"campaign_id": None, "declined": True, **{k: figures[k] for k in PLAN_KEYS}})


def top_reasons(
    rows: Any, outcomes: tuple[str, ...] = ("invalid", "unsent"), top: int = 3
) -> Reasons:
    """The most frequent reasons of these outcomes: {outcome: [(reason, count), ...]}."""
    found: Reasons = {}
    for outcome in outcomes:
        n_by_reason = rows["reason"][rows["outcome"] == outcome].value_counts().head(top)
        if len(n_by_reason):
            found[outcome] = [(str(reason), int(n)) for reason, n in n_by_reason.items()]
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


def figures_lines(data: dict[str, Any]) -> None:
    """Recipients, requests and segments, then outcomes and requests by state."""
    typer.echo(
        f"  {data['recipients']} recipients, {data['requests']} requests, "
        f"{data['segments']} billed segments"
    )
    typer.echo("  outcomes: " + counts(data["outcomes"]))
    typer.echo("  requests: " + counts(data["batches"]))


def send_summary(summary: dict[str, Any]) -> None:
    typer.echo(f"campaign {summary['campaign_id']}: {summary['state']}")
    if summary.get("stop_reason"):
        typer.echo(f"  stopped: {summary['stop_reason']}")
    figures_lines(summary)


def send_result(result: SendResult, json_output: bool) -> None:
    """The summary of a send or resume run (or its JSON), its warnings on stderr, and for
    a run that did not finish cleanly, the error saying how to go on (exit 4, 130 or 1)."""
    if json_output:
        print_json(result.to_json())
    else:
        send_summary(result.to_json())
    for warning in result.warnings:
        info(f"warning: {warning}")
    failure = result.failure()
    if failure is not None:
        fail(failure, result.exit_code)


def status(result: StatusResult) -> None:
    record, data = result.record, result.data
    typer.echo(render_queue.state_line(record, data["workers"]))
    for line in render_queue.status_lines(record, data["workers"]):  # due, workers, why
        typer.echo(line)
    figures_lines(data)
    typer.echo("  reports: " + counts(data["reports"]))
    typer.echo(
        f"  unmatched reports: {data['unmatched_reports']} "
        f"({data['unmatched_in_campaign']} of this campaign's requests, "
        f"{data['unmatched_unknown_msgid']} with a msgid no campaign issued)"
    )


def status_list(result: StatusList) -> None:
    if not result.rows:
        typer.echo("no campaigns in the store")
    for record, row in zip(result.records, result.rows, strict=True):
        done = sum(row["batches"][s] for s in ("accepted", "rejected", "unknown"))
        total = sum(row["batches"].values())
        created = china_text(record.created_at, timespec="minutes")  # "... 16:05+08:00"
        due = render_queue.due_text(record)
        typer.echo(
            f"{record.id:>5}  {record.state:<9} {done}/{total} requests  {created}  {record.name}"
            f"{due}"
        )
