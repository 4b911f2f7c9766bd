"""`campaign web`: the browser console and the JSON API (/api/v1), served by uvicorn."""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated

import typer

from campaign.cli.app import app
from campaign.cli.common import ConfigOption, DbOption, handle_errors, info, settings_from
from campaign.redact import RedactingFilter
from campaign.timeutil import ChinaTimeFormatter


@app.command("web")
@handle_errors
def web(
    host: Annotated[
        str | None,
        typer.Option(
            metavar="HOST",
            help="Address to listen on (default: web.host, else 127.0.0.1).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Port to listen on (default: web.port, else 8000).",
            show_default=False,
            min=0,
            max=65535,
        ),
    ] = None,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Do not send from this process (other `campaign worker`s do).",
        ),
    ] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Serve the web console and the JSON API until Ctrl-C.

    Unless --no-worker, it also sends queued campaigns (one worker in this process):
    closing the browser never stops a send. Users: `campaign user add NAME --role admin`.

    Example:
      campaign web --config campaign.toml --port 8000
    """
    import uvicorn

    from campaign.receiver import is_loopback
    from campaign.store.engine import safe_url
    from campaign.web.app import create_app
    from campaign.web.server import ConsoleServer
    from campaign.workflow_users import count_users

    settings = settings_from(config, db)
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    if count_users(settings) == 0:
        info("no console users yet: create the first admin with")
        info("  campaign user add NAME --role admin" + _same_store(config, db))
    if not is_loopback(host) and not settings.web.trust_proxy:
        info(
            f"warning: {host or 'every address'} is reachable from other machines over plain "
            "HTTP: put the console behind a reverse proxy with HTTPS and set "
            "[web] trust_proxy = true (README: the console behind a reverse proxy)"
        )
    _log_to_stderr()
    console = create_app(settings, run_worker=not no_worker)
    shown = f"[{host}]" if ":" in host else host
    info(f"store {safe_url(settings.store_url)}")
    info(f"console at http://{shown}:{port}/ (press Ctrl-C to stop)")
    served = uvicorn.Config(
        console,
        host=host,
        port=port,
        proxy_headers=False,  # [web] trust_proxy decides (campaign/web/security.py)
        server_header=False,
        log_config=None,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stopped, exit 0 (as uvicorn.run)
        ConsoleServer(served).run()


def _same_store(config: object, db: str | None) -> str:
    """The store option of the command to run (`info` masks any password in it)."""
    if config:
        return f" --config {config}"
    return f" --db {db}" if db else ""


def _log_to_stderr() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(ChinaTimeFormatter("%(asctime)s %(name)s %(message)s"))  # +08:00
    handler.addFilter(RedactingFilter())  # no password in any form (campaign.redact)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
