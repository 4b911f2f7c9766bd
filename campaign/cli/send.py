"""`campaign send` and `campaign resume`: parse options, one call to `workflow`, print
(`--at`, `--queue`: one call to `workflow_queue`, which hands the campaign to the workers)."""

from __future__ import annotations

from campaign.cli import render, render_queue
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
    handle_errors,
    info,
    is_terminal,
    settings_from,
    store_failures_raise,
    template_text,
)
from campaign.cli.options import (
    AgainOption,
    CampaignArg,
    FilesArg,
    ForceOption,
    NameOption,
    NoWaitOption,
    ResendOption,
    YesOption,
)
from campaign.cli.queue_options import AtOption, QueueOption, ResumeQueueOption
from campaign.cli.send_controls import confirm, stop_on_signals
from campaign.cli.send_progress import progress_reporter
from campaign.errors import UsageError


@app.command("send")
@handle_errors
@store_failures_raise("")
def send(
    contacts: FilesArg,
    template: TemplateOption = None,
    text: TextOption = None,
    name: NameOption = None,
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
    at: AtOption = None,
    queue: QueueOption = False,
) -> None:
    """Plan the campaign, store it and send it; prints the campaign id.

    Shows one sample message and asks for confirmation on a terminal unless --yes.
    Ctrl-C stops after the requests in flight (exit 130); `campaign resume ID` sends the rest.
    With --at (China time) or --queue nothing is sent here: a `campaign worker` sends it.

    Example:
      campaign send customers.xlsx -t spring.txt --name spring-2026
      campaign send vip.csv --text '{姓名}您好，会员日八折' --yes --json
      campaign send customers.xlsx -t spring.txt --at '2026-12-04 10:00' --yes
    """
    from campaign import workflow, workflow_queue

    name = workflow.usable_name(name)  # all digits: exit 3 (an id)
    message = template_text(template, text)
    settings = settings_from(config, db, gateway)
    due = workflow_queue.due_time(settings, at) if at is not None else None  # before reading
    prepared = workflow.prepare_send(
        settings, contacts, message, name=name, again=again, sheet=sheet,
        header_row=header_row, mobile_column=mobile_column,
    )  # fmt: skip
    render.show_before_sending(prepared.planned)
    if is_terminal() and not yes and not confirm(prepared.planned.figures()):
        render.send_declined(prepared.planned, json_output)
        return
    if at is not None or queue:  # --at wins over --queue
        scheduled = workflow_queue.schedule_new(settings, prepared, due_at=due)
        render_queue.scheduled(scheduled, json_output)
        return
    with stop_on_signals() as stop:
        result = workflow.send_new(
            settings, prepared, stop=stop, no_wait=no_wait, force=force,
            progress=progress_reporter, notify=info,
        )  # fmt: skip
    render.send_result(result, json_output)


@app.command("resume")
@handle_errors
@store_failures_raise("")
def resume(
    campaign: CampaignArg,
    resend_unknown: ResendOption = False,
    no_wait: NoWaitOption = False,
    force: ForceOption = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
    gateway: GatewayOption = None,
    queue: ResumeQueueOption = False,
) -> None:
    """Send what a stopped, failed or paused run left unsent (here, or with --queue by the
    workers).

    Sends through the gateway the campaign was sent through, unless --gateway,
    CAMPAIGN_GATEWAY or the config file names one.

    Example:
      campaign resume 12
      campaign resume spring-2026 --resend-unknown
      campaign resume 12 --queue
    """
    from campaign import workflow, workflow_queue

    if queue and resend_unknown:
        raise UsageError("--resend-unknown sends here: give it without --queue")
    settings = settings_from(config, db, gateway)
    if queue:
        render_queue.changed(workflow_queue.resume_queued(settings, campaign), json_output)
        return
    with stop_on_signals() as stop:
        result = workflow.resume(
            settings, campaign, given_gateway=gateway, stop=stop, no_wait=no_wait, force=force,
            resend_unknown=resend_unknown, progress=progress_reporter, notify=info,
        )  # fmt: skip
    render.send_result(result, json_output)
