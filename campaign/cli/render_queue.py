"""How queued sending is shown to people: a campaign scheduled or queued, paused,
cancelled or handed back to the workers, a worker's end, and the lines `status` adds (the
due time, the live workers). The JSON forms are the results' `to_json()`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from campaign.cli.common import fail, info, print_json
from campaign.errors import ExitCode
from campaign.outcomes import CampaignState
from campaign.timeutil import CHINA, china_text

if TYPE_CHECKING:  # campaign.workflow_queue loads the store: not at start-up
    from campaign.workflow_queue import ChangeResult, ScheduleResult, WorkerResult

WORKERS_HINT = "a worker sends it (`campaign worker`)"
WAITING = (CampaignState.SCHEDULED, CampaignState.QUEUED)


def when(moment: Any) -> str:
    """China time to the minute, with its offset: "2026-12-04 10:00+08:00"."""
    return china_text(moment, timespec="minutes")


def scheduled(result: ScheduleResult, json_output: bool) -> None:
    if json_output:
        print_json(result.to_json())
        return
    record = result.record
    if record.state == CampaignState.SCHEDULED and record.due_at is not None:
        due = record.due_at.astimezone(CHINA)
        typer.echo(
            f"campaign {record.id} ({record.name}) scheduled for {due:%Y-%m-%d %H:%M} "
            f"(China time): {WORKERS_HINT}"
        )
    else:
        typer.echo(f"campaign {record.id} ({record.name}) {record.state}: {WORKERS_HINT}")


def changed(result: ChangeResult, json_output: bool) -> None:
    """`pause`, `cancel`, `resume --queue`: the move, and what happens next."""
    if json_output:
        print_json(result.to_json())
        return
    record = result.record
    head = f"campaign {record.id} ({record.name})"
    if not result.changed:
        typer.echo(f"{head} is already {record.state}")
        return
    typer.echo(f"{head}: {result.before} -> {record.state}")
    if record.state == CampaignState.PAUSED:
        typer.echo(
            f"  {record.stop_reason}: no new request leaves (those in flight finish); "
            f"`campaign resume {record.id}` goes on"
        )
    elif record.state == CampaignState.CANCELLED:
        extra = result.extra
        typer.echo(
            f"  {record.stop_reason}: {extra['cancelled_requests']} request(s) "
            f"({extra['cancelled_recipients']} recipients) not sent are cancelled; "
            "those in flight finish and are recorded"
        )
    else:
        typer.echo(f"  {WORKERS_HINT}")


def worker_result(result: WorkerResult, json_output: bool) -> None:
    if json_output:
        print_json(result.to_json())
    code = result.exit_code
    if code is ExitCode.INTERRUPTED:
        fail("interrupted: the worker stopped after the requests in flight", code)
    if code is not ExitCode.OK:
        fail("not every campaign this worker sent ended cleanly (see the lines above)", code)
    info(f"worker done: {len(result.report.sends)} send(s)")


def state_line(record: Any, workers: list[dict[str, Any]]) -> str:
    """`status`: the campaign, its state, who sends it now."""
    running = f", {len(workers)} worker(s) sending now" if workers else ""
    if record.state == CampaignState.SENDING and not workers:
        if record.queued:
            running = " (no worker is sending it now: `campaign worker` goes on)"
        else:
            running = f" (no run is alive: `campaign resume {record.id}` goes on)"
    return f"campaign {record.id} {record.name!r}: {record.state}{running}"


def status_lines(record: Any, workers: list[dict[str, Any]]) -> list[str]:
    """`status`: the due time, the live workers, why it stopped."""
    lines = []
    if record.due_at is not None and record.state in WAITING:
        lines.append(f"  due: {when(record.due_at)}")
    if workers:
        shown = ", ".join(f"{w['host']} (pid {w['pid']})" for w in workers)
        lines.append(f"  workers: {shown}")
    if record.stop_reason:
        stopped = record.state not in (CampaignState.PAUSED, CampaignState.CANCELLED)
        lines.append(f"  stopped: {record.stop_reason}" if stopped else f"  {record.stop_reason}")
    return lines


def due_text(record: Any) -> str:
    """`status` (the list): "  due 2026-12-04 10:00+08:00" for a campaign that waits."""
    if record.due_at is None or record.state not in WAITING:
        return ""
    return f"  due {when(record.due_at)}"
