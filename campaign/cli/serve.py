"""`campaign serve`: the HTTP receiver for pushed delivery reports and inbound messages."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from campaign.cli.app import app
from campaign.cli.common import ConfigOption, DbOption, handle_errors, info, settings_from
from campaign.redact import RedactingFilter
from campaign.timeutil import ChinaTimeFormatter


@app.command("serve")
@handle_errors
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            metavar="HOST",
            help="Address to listen on (default: receiver.host, else 127.0.0.1).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Port to listen on (default: receiver.port, else 8080).",
            show_default=False,
            min=0,
            max=65535,
        ),
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow an address other than loopback without push credentials "
            "(receiver/pswd): anyone reaching the port could write reports and opt-outs.",
        ),
    ] = False,
) -> None:
    """Run the HTTP receiver for pushed delivery reports (/dlr) and replies (/mo) until Ctrl-C.

    Every push is answered 200 OK only once it is durably stored.

    Example:
      campaign serve --config campaign.toml --host 0.0.0.0 --port 8080
    """
    from campaign.receiver import check_exposure
    from campaign.receiver import serve as run_receiver
    from campaign.store.engine import safe_url

    settings = settings_from(config, db)
    check_exposure(host or settings.receiver.host, settings.receiver, insecure=insecure)
    handler = logging.StreamHandler()
    handler.setFormatter(ChinaTimeFormatter("%(asctime)s %(name)s %(message)s"))  # +08:00
    handler.addFilter(RedactingFilter())  # no password in any form (campaign.redact)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    info(f"store {safe_url(settings.store_url)}")
    info("press Ctrl-C to stop")
    run_receiver(settings, host, port, insecure=insecure)
