"""`campaign worker`, `campaign pause`, `campaign cancel`: parse options, one call to
`workflow_queue`, print."""

from __future__ import annotations

from campaign.cli import render_queue
from campaign.cli.app import app
from campaign.cli.common import (
    ConfigOption,
    DbOption,
    GatewayOption,
    JsonOption,
    handle_errors,
    info,
    settings_from,
    store_failures_raise,
)
from campaign.cli.options import CampaignArg
from campaign.cli.queue_options import OnceOption
from campaign.cli.send_controls import stop_on_signals


@app.command("worker")
@handle_errors
@store_failures_raise("")
def worker(
    once: OnceOption = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
    gateway: GatewayOption = None,
) -> None:
    """Send the campaigns handed to the workers (send --at or --queue, resume --queue) as
    they fall due; one line per state change on stderr.

    Runs until SIGTERM or Ctrl-C: the requests in flight finish and are recorded, and the
    campaign stays with the workers. --once sends what is due now, then exits (cron).
    Several workers, on one machine or on several sharing a PostgreSQL store, share the
    campaigns and keep the account's gateway.rate together.

    Example:
      campaign worker --config campaign.toml
      campaign worker --once --db postgresql://campaign@db.internal/campaign
    """
    from campaign import workflow_queue

    settings = settings_from(config, db, gateway)
    with stop_on_signals() as stop:
        result = workflow_queue.run_worker(
            settings, once=once, stop=stop, given_gateway=gateway, notify=info
        )
    render_queue.worker_result(result, json_output)


@app.command("pause")
@handle_errors
@store_failures_raise("")
def pause(
    campaign: CampaignArg,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Pause a campaign, whichever process or machine sends it: no new request leaves
    after at most 2 s (those in flight finish and are recorded).

    Example:
      campaign pause 12
      campaign resume 12 --queue
    """
    from campaign import workflow_queue

    settings = settings_from(config, db)
    render_queue.changed(workflow_queue.pause_campaign(settings, campaign), json_output)


@app.command("cancel")
@handle_errors
@store_failures_raise("")
def cancel(
    campaign: CampaignArg,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Cancel what a campaign has not sent yet: those rows become `cancelled`, nothing more
    is sent (requests in flight finish and are recorded). It cannot be resumed.

    Example:
      campaign cancel 12
    """
    from campaign import workflow_queue

    settings = settings_from(config, db)
    result = workflow_queue.cancel_campaign(settings, campaign)
    render_queue.changed(result, json_output)
    if result.changed:
        info(f"`campaign export {result.record.id} -o results.xlsx` shows every row's outcome")
