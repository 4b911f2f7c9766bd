"""`campaign balance` and `campaign simulator`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campaign.cli.app import app
from campaign.cli.common import (
    ConfigOption,
    GatewayOption,
    JsonOption,
    handle_errors,
    info,
    print_json,
    settings_from,
)
from campaign.errors import ConfigError


@app.command("balance")
@handle_errors
def balance(
    config: ConfigOption = None,
    gateway: GatewayOption = None,
    json_output: JsonOption = False,
) -> None:
    """Query the gateway balance (remaining billed messages) per product.

    Example:
      campaign balance --config campaign.toml
      campaign balance --gateway simulator --json
    """
    from campaign import workflow

    result = workflow.balance(settings_from(config, gateway=gateway), notify=info)
    if json_output:
        print_json(result.to_json())
        return
    if not result.products:
        typer.echo("no products on this account")
    for product, amount in result.products.items():
        typer.echo(f"product {product}: {amount}")


SimConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Simulator TOML file (keys: see campaign.gateway.simconfig).",
    ),
]


@app.command("simulator")
@handle_errors
def simulator(
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="N", help="Port to listen on.")] = 8090,
    config: SimConfigOption = None,
    push_url: Annotated[
        str | None,
        typer.Option("--push-url", metavar="URL", help="Where delivery reports are pushed."),
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option("--log", metavar="FILE", help="Append every send request as a JSON line."),
    ] = None,
) -> None:
    """Run the built-in gateway simulator until Ctrl-C.

    Example:
      campaign simulator --port 8090 --push-url http://127.0.0.1:8080/dlr
    """
    from campaign.gateway.simconfig import DEMO_PASSWORD, SimulatorSettings, make_settings
    from campaign.gateway.simulator import Simulator, load_simulator_settings, run_simulator

    settings = load_simulator_settings(config) if config else SimulatorSettings()
    settings = make_settings(settings, keep_log=False)  # nobody reads it here: --log is the log
    if push_url is not None:
        settings = make_settings(settings, push_url=push_url)

    def announce(sim: Simulator) -> None:
        account = sim.settings.accounts[0]
        secret = f", password {account.password}" if account.password == DEMO_PASSWORD else ""
        info(f"gateway simulator at {sim.url} (account {account.name}{secret})")
        info(f"delivery reports pushed to {settings.push_url or '(nowhere: no --push-url)'}")
        info("press Ctrl-C to stop")

    try:
        run_simulator(settings, host=host, port=port, log_path=log, on_start=announce)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
