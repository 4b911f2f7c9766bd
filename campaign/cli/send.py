"""`campaign send`, `campaign resume`, `campaign status`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from campaign.cli.app import app
from campaign.cli.common import (
    ConfigOption,
    DbOption,
    GatewayOption,
    HeaderRowOption,
    JsonOption,
    MobileColumnOption,
    SheetOption,
    TemplateOption,
    TextOption,
    fail,
    handle_errors,
    info,
    is_terminal,
    print_json,
    resume_gateway,
    settings_from,
    template_text,
)
from campaign.cli.send_progress import progress_reporter
from campaign.config import Settings
from campaign.errors import ExitCode, UsageError
from campaign.sender import SendReport, send_campaign
from campaign.store.engine import store_failures_raise

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
NoWaitOption = Annotated[
    bool,
    typer.Option("--no-wait", help="Outside the send window, stop at once (exit 4, resumable)."),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Send even when the balance looks too low.")
]
AgainOption = Annotated[
    bool,
    typer.Option(
        "--again",
        help="Send a list that the store already holds as a campaign once more, on purpose.",
    ),
]
CampaignArg = Annotated[
    str, typer.Argument(metavar="ID", help="Campaign id (or name).", show_default=False)
]


@app.command("send")
@handle_errors
@store_failures_raise("")
def send(
    contacts: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="Contact files (xlsx, xls, csv).")
    ],
    template: TemplateOption = None,
    text: TextOption = None,
    name: Annotated[
        str | None, typer.Option("--name", metavar="TEXT", help="Campaign name.")
    ] = None,
    sheet: SheetOption = None,
    header_row: HeaderRowOption = None,
    mobile_column: MobileColumnOption = None,
    config: ConfigOption = None,
    db: DbOption = None,
    gateway: GatewayOption = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
    no_wait: NoWaitOption = False,
    force: ForceOption = False,
    again: AgainOption = False,
) -> None:
    """Plan the campaign, store it and send it; prints the campaign id.

    Shows one sample message and asks for confirmation on a terminal unless --yes.
    Ctrl-C stops after the requests in flight (exit 130); `campaign resume ID` sends the rest.

    Example:
      campaign send customers.xlsx -t spring.txt --name spring-2026
      campaign send vip.csv --text '{姓名}您好，会员日八折' --yes --json
    """
    from campaign.cli.plan import show_before_sending
    from campaign.gateway.runtime import require_account
    from campaign.store import open_store
    from campaign.store.campaigns import (
        create_campaign,
        default_campaign_name,
        settings_snapshot,
        usable_name,
    )
    from campaign.store.repeats import RepeatGuard, read_repeat

    name = usable_name(name) if name is not None else None  # all digits: exit 3 (an id)
    message = template_text(template, text)
    settings = settings_from(config, db, gateway)
    require_account(settings.gateway)
    plan = _make_plan(settings, contacts, message, sheet, header_row, mobile_column)
    summary = plan.summary()
    # a list sent before (and not cancelled) is refused unless --again; nothing to send: no guard
    guard = RepeatGuard(name=name, allow_repeat=again or not summary["recipients"])
    read_repeat(settings.store_url, guard, plan.fingerprint)  # before showing or asking
    figures = {**summary, **show_before_sending(plan)}
    if is_terminal() and not yes and not _confirm(figures):
        info("declined: nothing was sent (nothing stored)")
        if json_output:  # still exactly one JSON object for a script reading stdout
            print_json({"campaign_id": None, "declined": True, **_plan_keys(figures)})
        return
    engine = open_store(settings.store_url)  # only now: bad input leaves no store behind
    try:
        campaign_id = create_campaign(
            engine,
            plan,
            name=name or default_campaign_name(contacts),
            settings_snapshot=settings_snapshot(settings),
            guard=guard,
        )
        info(
            f"campaign {campaign_id}: {figures['recipients']} recipients in "
            f"{figures['requests']} requests, {figures['segments']} billed segments"
        )
        report = _run(engine, campaign_id, settings, no_wait=no_wait, force=force)
        _finish(engine, report, json_output, {k: figures[k] for k in ("sample", "warnings")})
    finally:
        engine.dispose()


@app.command("resume")
@handle_errors
@store_failures_raise("")
def resume(
    campaign: CampaignArg,
    resend_unknown: Annotated[
        bool,
        typer.Option("--resend-unknown", help="Also send the requests whose result is unknown."),
    ] = False,
    no_wait: NoWaitOption = False,
    force: ForceOption = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
    gateway: GatewayOption = None,
) -> None:
    """Send what a stopped or failed run left unsent.

    Sends through the gateway the campaign was sent through, unless --gateway,
    CAMPAIGN_GATEWAY or the config file names one.

    Example:
      campaign resume 12
      campaign resume spring-2026 --resend-unknown
    """
    from campaign.gateway.runtime import require_account
    from campaign.store import open_store
    from campaign.store.campaigns import get_campaign

    settings = settings_from(config, db, gateway)
    engine = open_store(settings.store_url, create=False)
    try:
        record = get_campaign(engine, campaign)
        settings = resume_gateway(settings, gateway, record)
        require_account(settings.gateway)
        report = _run(
            engine,
            record.id,
            settings,
            no_wait=no_wait,
            force=force,
            resend_unknown=resend_unknown,
        )
        _finish(engine, report, json_output)
    finally:
        engine.dispose()


@app.command("status")
@handle_errors
@store_failures_raise("")
def status(
    campaign: Annotated[
        str | None,
        typer.Argument(metavar="ID", help="Campaign id or name; all campaigns when omitted."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="TEXT", help="The campaign of that name (as `send --name`)."
        ),
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Progress and delivery figures of one campaign, or a list of all.

    Example:
      campaign status
      campaign status 12 --json
    """
    from campaign.store import open_store

    if name is not None and campaign is not None and name != campaign:
        raise UsageError("give the campaign either as CAMPAIGN or with --name, not both")
    campaign = campaign if campaign is not None else name
    settings = settings_from(config, db)
    # listing a store that has no campaigns yet is an empty list, not an error
    engine = open_store(settings.store_url, create=campaign is None)
    try:
        if campaign is None:
            _list_status(engine, json_output)
        else:
            _one_status(engine, campaign, json_output)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- send / resume


def _make_plan(
    settings: Settings,
    paths: list[Path],
    text: str,
    sheet: str | None,
    header_row: int | None,
    mobile_column: str | None,
) -> Any:
    from campaign.contacts import read_contacts
    from campaign.messages import check_template_limits
    from campaign.plan import make_plan, plan_options
    from campaign.store.caps import read_capped_mobiles
    from campaign.store.suppression import read_suppressed

    check_template_limits(text, settings.limits)  # before a long list is read
    contacts = read_contacts(
        paths,
        sheet=sheet,
        header_row=header_row,
        mobile_column=mobile_column,
        limits=settings.limits,
    )
    compliance, url = settings.compliance, settings.store_url
    capped = read_capped_mobiles(url, compliance.max_per_recipient, compliance.cap_window_hours)
    return make_plan(contacts, text, plan_options(settings), read_suppressed(url), capped=capped)


def _plan_keys(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: figures[k] for k in ("outcomes", "recipients", "requests", "segments")}


def _confirm(figures: dict[str, Any]) -> bool:
    question = (
        f"Send {figures['recipients']} recipients in {figures['requests']} requests "
        f"({figures['segments']} billed segments)?"
    )
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:  # Ctrl-C (or end of input) at the question
        fail("interrupted: nothing was sent (nothing stored)", ExitCode.INTERRUPTED)


def _run(
    engine: Engine,
    campaign_id: int,
    settings: Settings,
    *,
    no_wait: bool,
    force: bool,
    resend_unknown: bool = False,
) -> SendReport:
    """Send in a thread; Ctrl-C (or SIGTERM) asks it to stop after the requests in flight."""
    from dataclasses import replace

    from campaign.gateway.client import GatewayClient
    from campaign.gateway.runtime import open_gateway

    stop = threading.Event()
    with (
        open_gateway(settings.gateway, receiver=settings.receiver, notify=info) as resolved,
        GatewayClient(resolved) as client,
        progress_reporter() as on_progress,
    ):
        run_settings = replace(settings, gateway=resolved)

        def work() -> SendReport:
            return send_campaign(
                engine,
                campaign_id,
                client,
                run_settings,
                on_progress=on_progress,
                stop=stop,
                no_wait=no_wait,
                resend_unknown=resend_unknown,
                force=force,
            )

        return _in_thread(work, stop)


def _in_thread(work: Callable[[], SendReport], stop: threading.Event) -> SendReport:
    box: dict[str, Any] = {}
    done = threading.Event()  # not thread.is_alive(): an interrupted join() can lie

    def target() -> None:
        try:
            box["report"] = work()
        except BaseException as exc:  # handed to the main thread
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name="campaign-send", daemon=True)
    with _stop_on_signals(stop):
        thread.start()
        while not done.is_set():
            try:
                done.wait(0.2)
            except KeyboardInterrupt:
                if not stop.is_set():
                    info("stopping after the requests in flight ...")
                stop.set()
    if "error" in box:
        raise box["error"]
    return box["report"]


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _finish(
    engine: Engine, report: SendReport, json_output: bool, extra: dict[str, Any] | None = None
) -> None:
    from campaign.store.results import outcome_counts

    outcomes = outcome_counts(engine, report.campaign_id)
    summary = {"campaign_id": report.campaign_id, "outcomes": outcomes, **report.summary()}
    summary.update(extra or {})
    if json_output:
        print_json(summary)
    else:
        _print_summary(summary)
    for warning in report.warnings:
        info(f"warning: {warning}")
    code = report.exit_code
    cid = report.campaign_id
    if code is ExitCode.GATEWAY_STOP:
        fail(
            f"{report.stop_reason}; campaign {cid} stopped: `campaign resume {cid}` sends the rest",
            code,
        )
    elif code is ExitCode.INTERRUPTED:
        fail(f"interrupted; campaign {cid} stopped: `campaign resume {cid}` sends the rest", code)
    elif code is ExitCode.PARTIAL:
        fail(
            f"campaign {cid} finished, but {report.count('unknown')} request(s) have an unknown "
            f"result and {report.count('rejected')} were rejected (see `campaign export {cid}`; "
            f"`campaign resume {cid} --resend-unknown` sends the unknown ones again)",
            code,
        )


def _print_summary(summary: dict[str, Any]) -> None:
    typer.echo(f"campaign {summary['campaign_id']}: {summary['state']}")
    if summary.get("stop_reason"):
        typer.echo(f"  stopped: {summary['stop_reason']}")
    typer.echo(
        f"  {summary['recipients']} recipients, {summary['requests']} requests, "
        f"{summary['segments']} billed segments"
    )
    typer.echo("  outcomes: " + _counts(summary["outcomes"]))
    typer.echo("  requests: " + _counts(summary["batches"]))


def _counts(counts: dict[str, int]) -> str:
    shown = [f"{key} {value}" for key, value in counts.items() if value]
    return ", ".join(shown) or "none"


# --------------------------------------------------------------------------- status


def _one_status(engine: Engine, ref: str, json_output: bool) -> None:
    from campaign.store.batches import batch_figures
    from campaign.store.campaigns import get_campaign
    from campaign.store.results import (
        outcome_counts,
        report_status_counts,
        unknown_msgid_reports,
        unmatched_reports,
    )
    from campaign.store.workers import live_workers

    record = get_campaign(engine, ref)
    figures = batch_figures(engine, record.id)
    in_campaign, unknown_msgid = unmatched_reports(engine, record.id), unknown_msgid_reports(engine)
    data = {
        **record.brief(),
        "workers": live_workers(engine, record.id),
        "outcomes": outcome_counts(engine, record.id),
        "reports": report_status_counts(engine, record.id),
        # reports nobody could match: this campaign's msgids with a mobile not in that
        # request, plus reports whose msgid no campaign issued (kept, never dropped)
        "unmatched_reports": in_campaign + unknown_msgid,
        "unmatched_in_campaign": in_campaign,
        "unmatched_unknown_msgid": unknown_msgid,
        "batches": {state: f["batches"] for state, f in figures.items()},
        "recipients": sum(f["recipients"] for f in figures.values()),
        "requests": sum(f["batches"] for f in figures.values()),
        "segments": sum(f["segments"] for f in figures.values()),
    }
    if json_output:
        print_json(data)
        return
    running = f", {data['workers']} worker(s) sending now" if data["workers"] else ""
    if record.state == "sending" and not data["workers"]:
        running = f" (no run is alive: `campaign resume {record.id}` goes on)"
    typer.echo(f"campaign {record.id} {record.name!r}: {record.state}{running}")
    if record.stop_reason:
        typer.echo(f"  stopped: {record.stop_reason}")
    typer.echo(
        f"  {data['recipients']} recipients, {data['requests']} requests, "
        f"{data['segments']} billed segments"
    )
    typer.echo("  outcomes: " + _counts(data["outcomes"]))
    typer.echo("  requests: " + _counts(data["batches"]))
    typer.echo("  reports: " + _counts(data["reports"]))
    typer.echo(
        f"  unmatched reports: {data['unmatched_reports']} "
        f"({in_campaign} of this campaign's requests, {unknown_msgid} with a msgid no "
        "campaign issued)"
    )


def _list_status(engine: Engine, json_output: bool) -> None:
    from campaign.store.batches import batch_state_counts
    from campaign.store.campaigns import list_campaigns
    from campaign.timeutil import china_text

    records = list_campaigns(engine)
    rows = [{**r.brief(), "batches": batch_state_counts(engine, r.id)} for r in records]
    if json_output:
        print_json({"campaigns": rows})
        return
    if not rows:
        typer.echo("no campaigns in the store")
    for record, row in zip(records, rows, strict=True):
        done = sum(row["batches"][s] for s in ("accepted", "rejected", "unknown"))
        total = sum(row["batches"].values())
        created = china_text(record.created_at, timespec="minutes")  # "... 16:05+08:00"
        typer.echo(
            f"{record.id:>5}  {record.state:<9} {done}/{total} requests  {created}  {record.name}"
        )
