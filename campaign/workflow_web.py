"""The facade's part for the web console (`campaign/web/`): what a page or an API call needs
beyond the commands' functions of `workflow` and `workflow_queue`.

    POST /plans ─► workflow.plan_from_files (kept in web/plans.PlanCache)
    POST /campaigns ─► schedule_plan: the plan stored and handed to the workers at once
    GET /campaigns/{id} ─► campaign_detail (status --json + progress); events ─► snapshot
    /optouts ─► add_optouts / remove_optouts / search_optouts (the console user recorded)

Like `workflow`: typed results or JSON-ready dicts, no printing; InputError (and its
subclasses: NotFoundError, RepeatError, ...) for what cannot be done, nothing changed then.
Every function takes the console's open `Engine`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign.config import Settings
from campaign.errors import InputError
from campaign.outcomes import BatchState, CampaignState
from campaign.timeutil import CHINA
from campaign.workflow import PlanResult, create_campaign, normalized_mobiles, usable_name
from campaign.workflow_queue import ScheduleResult, due_time

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from campaign.contact_layout import SheetLayout
    from campaign.template_sample import TemplateSample

#: Batch states whose recipients the gateway took (the messages counted as sent).
SENT_STATES = (BatchState.ACCEPTED,)
#: Batch states whose recipients are still to be sent (or whose answer is awaited).
OPEN_STATES = (BatchState.PENDING, BatchState.SENDING)
#: Campaign states whose requests no longer move.
ENDED_STATES = (CampaignState.FINISHED, CampaignState.CANCELLED)
#: Opt-out entries a search returns at most.
MAX_OPTOUT_PAGE = 1000
_DIGITS = re.compile(r"[\d\s()+-]+")


# --------------------------------------------------------------------------- send a plan


def send_at_time(settings: Settings, text: str | None) -> datetime | None:
    """When a new campaign is due: None (now) for no text; else `--at`'s "YYYY-MM-DD HH:MM"
    China time, or an ISO 8601 time with an offset; InputError when it cannot be read, is
    past, or falls outside the send window."""
    if text is None or not str(text).strip():
        return None
    value = str(text).strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is not None:
        value = moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
    return due_time(settings, value).replace(second=0, microsecond=0)


def schedule_plan(
    settings: Settings,
    engine: Engine,
    planned: PlanResult,
    *,
    name: str | None,
    paths: Sequence[Path],
    again: bool = False,
    due_at: datetime | None = None,
) -> ScheduleResult:
    """Store an already-built plan as a campaign and hand it to the workers (`scheduled`
    for `due_at`, else `queued`): what `send --queue` / `send --at` does after planning.

    The repeat guard of `send` runs in the creating transaction: the same list again
    (unless `again`) or a `name` already taken is a RepeatError, nothing stored. A plan
    with no valid row, or without an account for a real gateway, is an InputError."""
    from campaign.gateway.runtime import require_account
    from campaign.plan import refuse_if_nothing_valid
    from campaign.store.queue import schedule
    from campaign.store.repeats import RepeatGuard

    require_account(settings.gateway)
    refuse_if_nothing_valid(planned.plan)
    chosen = usable_name(name.strip()) if name and name.strip() else None
    guard = RepeatGuard(name=chosen, allow_repeat=again or not planned.recipients)
    created = create_campaign(
        settings, engine, planned, name=chosen, paths=list(paths), guard=guard
    )
    record = schedule(engine, created.campaign_id, due_at)
    return ScheduleResult(record, planned.figures())


def contact_layouts(
    settings: Settings,
    files: Sequence[tuple[Path, str]],
    *,
    sheet: str | None = None,
    header_row: int | None = None,
    mobile_column: str | None = None,
) -> list[SheetLayout]:
    """How uploaded files (path, name as uploaded) would be read with these choices: each
    sheet's first rows, header row, columns, mobile column, problem (the "map" step)."""
    from campaign.contact_layout import contact_layouts as layouts

    return layouts(
        files, sheet=sheet, header_row=header_row, mobile_column=mobile_column,
        limits=settings.limits,
    )  # fmt: skip


def template_sample(settings: Settings, planned: PlanResult, template: str) -> TemplateSample:
    """`template` rendered for the first rows of a plan's list, with compliance notes."""
    from campaign.template_sample import template_sample as sample

    return sample(settings, planned.plan.contacts, template)


def campaign_brief(engine: Engine, campaign_id: int) -> dict[str, Any]:
    """A campaign's listing fields (campaign_id, name, state, stop_reason, times)."""
    from campaign.store.campaigns import get_campaign

    return get_campaign(engine, campaign_id).brief()


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Progress:
    """Recipients of a campaign's requests: `sent` (the gateway took them), `done` (their
    request has its answer: accepted, rejected, unknown, unsent or cancelled), `total`."""

    sent: int
    done: int
    total: int

    def to_json(self) -> dict[str, int]:
        return {"sent": self.sent, "done": self.done, "total": self.total}


def progress_of(figures: dict[str, dict[str, int]]) -> Progress:
    """Progress from `store.batches.batch_figures` (per batch state)."""
    total = sum(f["recipients"] for f in figures.values())
    sent = sum(figures.get(str(s), {}).get("recipients", 0) for s in SENT_STATES)
    still = sum(figures.get(str(s), {}).get("recipients", 0) for s in OPEN_STATES)
    return Progress(sent, total - still, total)


def campaign_progress(engine: Engine, campaign_id: int) -> Progress:
    from campaign.store.batches import batch_figures

    return progress_of(batch_figures(engine, campaign_id))


def campaign_detail(engine: Engine, ref: str) -> dict[str, Any]:
    """`status CAMPAIGN --json` with `progress` (sent, done, total recipients)."""
    from campaign.workflow import campaign_status

    status = campaign_status(engine, ref)
    return {**status.to_json(), "progress": campaign_progress(engine, status.record.id).to_json()}


def campaign_rows(engine: Engine) -> dict[str, Any]:
    """`status --json` (every campaign with its request counts by state) with `progress`."""
    from campaign.store.batches import batch_figures
    from campaign.store.campaigns import list_campaigns

    rows = []
    for record in list_campaigns(engine):
        figures = batch_figures(engine, record.id)
        rows.append(
            {
                **record.brief(),
                "batches": {state: f["batches"] for state, f in figures.items()},
                "progress": progress_of(figures).to_json(),
            }
        )
    return {"campaigns": rows}


@dataclass(frozen=True)
class Snapshot:
    """What a live page shows of a campaign; equal snapshots need no new event."""

    campaign_id: int
    state: str
    stop_reason: str | None
    progress: Progress
    batches: tuple[tuple[str, int], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "state": self.state,
            "stop_reason": self.stop_reason,
            **self.progress.to_json(),
            "batches": dict(self.batches),
        }


def campaign_snapshot(engine: Engine, campaign_id: int) -> Snapshot:
    """The state and the request figures of a campaign: two small queries (the live pages
    ask every half second)."""
    from campaign.store.batches import batch_figures
    from campaign.store.campaigns import get_campaign

    record = get_campaign(engine, campaign_id)
    return _snapshot(record, batch_figures(engine, record.id))


def _snapshot(record: Any, figures: dict[str, dict[str, int]]) -> Snapshot:
    return Snapshot(
        record.id,
        str(record.state),
        record.stop_reason,
        progress_of(figures),
        tuple((state, f["batches"]) for state, f in figures.items()),
    )


def list_snapshots(engine: Engine, known: Mapping[int, Snapshot] | None = None) -> list[Snapshot]:
    """Every campaign's snapshot, oldest first. A finished or cancelled campaign's requests
    no longer move: its snapshot in `known` (same state) is reused, not read again."""
    from campaign.store.batches import batch_figures
    from campaign.store.campaigns import list_campaigns

    found = []
    for record in list_campaigns(engine):
        before = (known or {}).get(record.id)
        if (
            before is not None
            and record.state in ENDED_STATES
            and (before.state, before.stop_reason) == (record.state, record.stop_reason)
        ):
            found.append(before)
            continue
        found.append(_snapshot(record, batch_figures(engine, record.id)))
    return found


def campaign_outcomes(engine: Engine, campaign_id: int) -> dict[str, int]:
    """Outcome -> rows (delivered, failed, pending, ...), as `status --json` counts them."""
    from campaign.store.results import outcome_counts

    return outcome_counts(engine, campaign_id)


def report_mark(engine: Engine) -> int:
    """The newest delivery report's id (0 for none): `new_reports` looks past it."""
    from campaign.store.reports import last_report_id

    with engine.connect() as conn:
        return last_report_id(conn)


def new_reports(engine: Engine, campaign_id: int, after: int) -> bool:
    """Whether a report newer than the mark `after` is one of the campaign's (its outcome
    counts may have moved)."""
    from campaign.store.reports import reports_after

    with engine.connect() as conn:
        return reports_after(conn, campaign_id, after)


# --------------------------------------------------------------------------- opt-outs


def add_optouts(
    engine: Engine, mobiles: list[str], *, added_by: str, note: str | None = None
) -> Any:
    """`optout add` by a console user (recorded as `added_by`); OptoutChange."""
    from campaign.store import suppression
    from campaign.workflow import OptoutChange

    numbers = normalized_mobiles(mobiles)
    added = suppression.add(engine, numbers, "manual", note or None, added_by=added_by)
    return OptoutChange(added, len(numbers) - added, ("added", "already"))


def remove_optouts(engine: Engine, mobiles: list[str]) -> Any:
    """`optout remove`; OptoutChange."""
    from campaign.store import suppression
    from campaign.workflow import OptoutChange

    numbers = normalized_mobiles(mobiles)
    removed = suppression.remove(engine, numbers)
    return OptoutChange(removed, len(numbers) - removed, ("removed", "not_listed"))


def search_optouts(
    engine: Engine, query: str | None = None, *, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    """Entries of the suppression list (as `optout list --details --json`), newest first,
    whose number contains the digits of `query` (a number, or a part of one), or whose
    reason, detail or adder contains `query`; {"total", "optouts"}."""
    from campaign.optout_export import entry_json
    from campaign.store.suppression import search_entries

    if limit < 1 or limit > MAX_OPTOUT_PAGE or offset < 0:
        raise InputError(f"limit must be 1 to {MAX_OPTOUT_PAGE} and offset 0 or more")
    text = (query or "").strip()
    digits = re.sub(r"\D", "", text) if _DIGITS.fullmatch(text) else ""
    if text.startswith(("+86", "0086")):  # the country code is not stored
        digits = digits.removeprefix("00").removeprefix("86")
    total, entries = search_entries(
        engine, mobile_part=digits or None, text=None if digits else text or None,
        limit=limit, offset=offset,
    )  # fmt: skip
    return {"total": total, "optouts": [entry_json(entry) for entry in entries]}


# --------------------------------------------------------------------------- campaign pages
# What the console's campaigns list and campaign page read beyond `campaign_status`
# (web/pages_campaigns.py, web/charts.py).


def campaign_records(engine: Engine) -> list[Any]:
    """Every campaign's record (CampaignRecord: name, state, times), newest first: one query."""
    from campaign.store.campaigns import list_campaigns

    return list(reversed(list_campaigns(engine)))


def campaign_record(engine: Engine, campaign_id: int) -> Any:
    """One campaign's record (CampaignRecord); NotFoundError when there is none."""
    from campaign.store.campaigns import get_campaign

    return get_campaign(engine, campaign_id)


def campaign_workers(engine: Engine, campaign_id: int) -> list[Any]:
    """The processes sending the campaign now (WorkerInfo: id, host, pid, heartbeat_at)."""
    from campaign.store.workers import live_workers

    return live_workers(engine, campaign_id)


def campaign_breakdowns(engine: Engine, campaign_id: int) -> dict[str, Any]:
    """The figures of a campaign's delivery charts (JSON-ready):

    carriers: [{"carrier", "rows", <every outcome>: rows, "delivery_rate" (None when
              nothing was accepted)}], most rows first ("" for no carrier);
    hours:    [{"hour" ("YYYY-MM-DD HH:00", China time), "reports", "delivered"}] in time
              order (delivery reports per hour of report time)."""
    from math import isnan

    from campaign.store.breakdowns import outcome_breakdown, reports_per_hour

    carriers = []
    for row in outcome_breakdown(engine, campaign_id, "carrier").to_dict("records"):
        rate = row.pop("delivery_rate")
        figures = {str(k): int(v) for k, v in row.items() if k != "carrier"}
        carriers.append(
            {"carrier": str(row["carrier"]), **figures,
             "delivery_rate": None if isnan(rate) else float(rate)}  # NaN: none accepted
        )  # fmt: skip
    hours = [
        {"hour": str(r["hour"]), "reports": int(r["reports"]), "delivered": int(r["delivered"])}
        for r in reports_per_hour(engine, campaign_id).to_dict("records")
    ]
    return {"carriers": carriers, "hours": hours}


__all__ = [
    "Progress",
    "Snapshot",
    "add_optouts",
    "campaign_breakdowns",
    "campaign_brief",
    "campaign_detail",
    "campaign_outcomes",
    "campaign_progress",
    "campaign_record",
    "campaign_records",
    "campaign_rows",
    "campaign_snapshot",
    "campaign_workers",
    "contact_layouts",
    "list_snapshots",
    "remove_optouts",
    "schedule_plan",
    "search_optouts",
    "send_at_time",
    "template_sample",
]
