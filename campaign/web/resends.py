"""Deliberate resends of a campaign's `unknown` requests, asked for on its page.

`workflow.resume(..., resend_unknown=True)` (what `campaign resume ID --resend-unknown`
does) runs in a thread of the console: the request that asked for it returns at once,
and closing the browser tab changes nothing. The campaign page shows its progress like
any other send (it reads the store). At most one resend per campaign runs in a console;
the unknown requests become pending once, in one statement (`reset_unknown`), so even two
consoles asked at once never send one twice.

The runs stop with the console: they watch the stop event of the console's worker (set
when the app shuts down); a run stopped so ends after its requests in flight are
answered and recorded, resumable, as after Ctrl-C.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from campaign import workflow
from campaign.config import Settings
from campaign.errors import CampaignError
from campaign.redact import redact

log = logging.getLogger("campaign.web")
_LOCK = threading.Lock()


class Resends:
    """The resend runs of one console (app.state.resends)."""

    def __init__(self) -> None:
        self._runs: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def running(self, campaign_id: int) -> bool:
        with self._lock:
            run = self._runs.get(campaign_id)
            return run is not None and run.is_alive()

    def start(
        self, settings: Settings, engine: Any, campaign_id: int, stop: threading.Event
    ) -> bool:
        """Start resending; False (nothing started) when a resend of it already runs."""
        with self._lock:
            run = self._runs.get(campaign_id)
            if run is not None and run.is_alive():
                return False
            run = threading.Thread(
                target=_resend,
                args=(settings, engine, campaign_id, stop),
                name=f"console-resend-{campaign_id}",
                daemon=True,
            )
            self._runs[campaign_id] = run
            run.start()
            return True

    def join(self, campaign_id: int, timeout: float | None = None) -> None:
        """Wait for the campaign's run to end (tests)."""
        with self._lock:
            run = self._runs.get(campaign_id)
        if run is not None:
            run.join(timeout)


def _resend(settings: Settings, engine: Any, campaign_id: int, stop: threading.Event) -> None:
    try:
        result = workflow.resume(
            settings, str(campaign_id), engine=engine, resend_unknown=True, stop=stop,
            notify=_line,
        )  # fmt: skip
        log.info(
            "resend of campaign %s ended: %s (exit %s)",
            campaign_id, result.report.state, int(result.exit_code),
        )  # fmt: skip
    except CampaignError as exc:
        log.warning("resend of campaign %s refused: %s", campaign_id, redact(str(exc)))
    except Exception as exc:  # never takes the console down
        log.error("resend of campaign %s failed: unexpected %s", campaign_id, type(exc).__name__)


def _line(line: str) -> None:
    log.info(redact(line))


def resends_of(state: Any) -> Resends:
    """The app's Resends (made on first use)."""
    found = getattr(state, "resends", None)
    if found is None:
        with _LOCK:
            found = getattr(state, "resends", None)
            if found is None:
                found = Resends()
                state.resends = found
    return found


def stop_event_of(state: Any) -> threading.Event:
    """The event that stops the console's sends: its worker's, else a new one (no worker:
    the run is stopped only by the process ending)."""
    worker = getattr(state, "worker", None)
    event = getattr(worker, "stop_event", None)
    return event if isinstance(event, threading.Event) else threading.Event()


__all__ = ["Resends", "resends_of", "stop_event_of"]
