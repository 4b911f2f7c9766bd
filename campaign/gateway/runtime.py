"""Resolve `--gateway simulator`: start the built-in simulator for the duration of a call.

    with open_gateway(settings.gateway) as gateway:     # GatewaySettings with a real URL
        client = GatewayClient(gateway)

For a real gateway URL nothing is started and the settings come back unchanged. For
`simulator` a `Simulator` is started on a free loopback port. Without credentials the
simulator's demo account is used. With credentials for another account than `demo`, the
simulator is started knowing that account too (with its password and the configured
product), so a config written for the real gateway runs against the simulator unchanged;
`demo` with a wrong password is refused (102) like on the real gateway.

Delivery reports of the simulator: given the `[receiver]` settings, the simulator pushes
its reports to that receiver (`http://HOST:PORT/dlr`, with the configured receiver/pswd)
when one answers its `/healthz` as the send starts, and waits (up to REPORT_DRAIN_SECONDS)
for the pushes to be answered before it stops. When none answers, no reports are pushed:
the simulator lives only as long as the command, so its reports could never arrive
later. Either way `notify` is told where the reports go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from campaign.config import SIMULATOR, GatewaySettings, ReceiverSettings
from campaign.errors import ConfigError

if TYPE_CHECKING:
    from campaign.gateway.simulator import Simulator

Notify = Callable[[str], None]
HEALTH_TIMEOUT = 1.0  # seconds to wait for the receiver's /healthz
REPORT_DRAIN_SECONDS = 60.0  # after the send, the longest wait for the pushes to be answered
PUSH_BATCH = 500  # reports per push (the batched `report=` form every receiver takes)

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


@dataclass(frozen=True)
class ReportRoute:
    """Where the built-in simulator's delivery reports go, and whether anyone is there."""

    base_url: str  # http://HOST:PORT of the configured receiver
    answering: bool

    @property
    def dlr_url(self) -> str:
        return f"{self.base_url}/dlr"

    def message(self) -> str:
        if self.answering:
            return f"built-in simulator: delivery reports are pushed to {self.dlr_url}"
        return (
            f"built-in simulator: no receiver answers at {self.base_url}, so no delivery "
            f"reports are pushed; run `campaign serve` (same config) before sending to "
            "receive them"
        )


def receiver_base_url(receiver: ReceiverSettings) -> str:
    """http://HOST:PORT of the configured receiver, as a client on this machine reaches it
    (a wildcard address such as 0.0.0.0 is reached on loopback)."""
    host = receiver.host.strip() or "127.0.0.1"
    if host in ("0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{receiver.port}"


def report_route(receiver: ReceiverSettings) -> ReportRoute:
    """The receiver's address, and whether its /healthz answers OK now."""
    import httpx

    base = receiver_base_url(receiver)
    try:
        response = httpx.get(f"{base}/healthz", timeout=HEALTH_TIMEOUT, trust_env=False)
    except httpx.HTTPError:
        return ReportRoute(base, False)
    return ReportRoute(base, response.status_code == 200 and response.text.strip() == "OK")


@contextmanager
def open_gateway(
    settings: GatewaySettings,
    *,
    receiver: ReceiverSettings | None = None,
    notify: Notify | None = None,
    **simulator_changes: Any,
) -> Iterator[GatewaySettings]:
    """Yield settings pointing at a reachable gateway (starting the simulator if asked).

    With `receiver`, the simulator pushes its delivery reports there when it answers
    (see the module docstring); `notify` hears where the reports go."""
    if not is_simulator(settings):
        require_account(settings)
        yield settings
        return
    from campaign.gateway.simulator import Simulator

    say = notify or (lambda _line: None)
    changes = _account_changes(settings, simulator_changes)
    route = report_route(receiver) if receiver is not None else None
    if route is not None:
        say(route.message())
        if route.answering:
            changes.update(_push_changes(route, receiver))
    with Simulator(**changes) as sim:
        if settings.account:
            yield replace(settings, url=sim.url)
        else:
            yield replace(settings, url=sim.url, account=sim.account, password=sim.password)
        if route is not None and route.answering:
            _drain_pushes(sim, route, say)


def _account_changes(settings: GatewaySettings, changes: dict[str, Any]) -> dict[str, Any]:
    """The simulator knows a configured account other than `demo` too."""
    from campaign.gateway.simconfig import DEMO_ACCOUNT, DEMO_PRODUCT, DEMO_QUOTA, SimAccount

    changes = dict(changes)
    if settings.account and settings.account != DEMO_ACCOUNT and "accounts" not in changes:
        product = settings.product or DEMO_PRODUCT
        configured = SimAccount(settings.account, settings.password, ((product, DEMO_QUOTA),))
        changes["accounts"] = (configured, SimAccount())
    return changes


def _push_changes(route: ReportRoute, receiver: ReceiverSettings | None) -> dict[str, Any]:
    assert receiver is not None
    return {
        "push_url": route.dlr_url,
        "push_receiver": receiver.receiver,
        "push_pswd": receiver.pswd,
        "push_batch": PUSH_BATCH,
        "report_delay": 0.0,
    }


def _drain_pushes(sim: Simulator, route: ReportRoute, say: Notify) -> None:
    """Wait for the queued pushes to be answered: the simulator stops with the command."""
    pending = sim.pusher.pending
    if pending:
        say(f"waiting for {pending} delivery report(s) to be pushed to {route.dlr_url}")
    if not sim.wait_reports_pushed(timeout=REPORT_DRAIN_SECONDS):
        say(f"{sim.pusher.pending} delivery report(s) were not pushed in time and are lost")
    if sim.pusher.given_up:
        say(
            f"{sim.pusher.given_up} delivery report(s) were not taken by {route.dlr_url} "
            "(check [receiver] receiver/pswd) and are lost"
        )
