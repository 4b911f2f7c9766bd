"""`campaign status [ID]`: one campaign's figures, or the list of all."""

from __future__ import annotations

from typing import Annotated

import typer

from campaign.cli import render
from campaign.cli.app import app
from campaign.cli.common import (
    ConfigOption,
    DbOption,
    JsonOption,
    handle_errors,
    print_json,
    settings_from,
    store_failures_raise,
)
from campaign.errors import UsageError


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
    from campaign import workflow

    if name is not None and campaign is not None and name != campaign:
        raise UsageError("give the campaign either as CAMPAIGN or with --name, not both")
    campaign = campaign if campaign is not None else name
    settings = settings_from(config, db)
    # listing a store that has no campaigns yet is an empty list, not an error
    with workflow.opened(settings, create=campaign is None) as engine:
        if campaign is None:
            listed = workflow.campaign_list(engine)
            print_json(listed.to_json()) if json_output else render.status_list(listed)
        else:
            one = workflow.campaign_status(engine, campaign)
            print_json(one.to_json()) if json_output else render.status(one)
