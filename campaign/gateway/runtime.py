"""Resolve `--gateway simulator`: start the built-in simulator for the duration of a call.

    with open_gateway(settings.gateway) as gateway:     # GatewaySettings with a real URL
        client = GatewayClient(gateway)

For a real gateway URL nothing is started and the settings come back unchanged. For
`simulator` a `Simulator` is started on a free loopback port. Without credentials the
simulator's demo account is used. With credentials for another account than `demo`, the
simulator is started knowing that account too (with its password and the configured
product), so a config written for the real gateway runs against the simulator unchanged;
`demo` with a wrong password is refused (102) like on the real gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from campaign.config import SIMULATOR, GatewaySettings
from campaign.errors import ConfigError

NO_ACCOUNT = (
    "no gateway account: set CAMPAIGN_ACCOUNT and CAMPAIGN_PASSWORD "
    "or [gateway] account/password in the config"
)


def is_simulator(settings: GatewaySettings) -> bool:
    return settings.url.strip().lower() == SIMULATOR


def require_account(settings: GatewaySettings) -> None:
    """ConfigError (exit 3) when a real gateway is configured without credentials."""
    if not is_simulator(settings) and not (settings.account and settings.password):
        raise ConfigError(NO_ACCOUNT)


@contextmanager
def open_gateway(settings: GatewaySettings, **simulator_changes: Any) -> Iterator[GatewaySettings]:
    """Yield settings pointing at a reachable gateway (starting the simulator if asked)."""
    if not is_simulator(settings):
        require_account(settings)
        yield settings
        return
    from campaign.gateway.simconfig import DEMO_ACCOUNT, DEMO_PRODUCT, DEMO_QUOTA, SimAccount
    from campaign.gateway.simulator import Simulator

    changes = dict(simulator_changes)
    if settings.account and settings.account != DEMO_ACCOUNT and "accounts" not in changes:
        product = settings.product or DEMO_PRODUCT
        configured = SimAccount(settings.account, settings.password, ((product, DEMO_QUOTA),))
        changes["accounts"] = (configured, SimAccount())
    with Simulator(**changes) as sim:
        if settings.account:
            yield replace(settings, url=sim.url)
        else:
            yield replace(settings, url=sim.url, account=sim.account, password=sim.password)
