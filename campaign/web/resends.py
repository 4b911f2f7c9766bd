"""Deliberate resends of a campaign's `unknown` requests, asked for on its page.

`workflow.resume(..., resend_unknown=True)` (what `campaign resume ID --resend-unknown`
does) runs in a thread of the console: the request that asked for it returns at once,
and closing the browser tab changes nothing. The campaign page shows its progress like
any other send (it reads the store). At most one resend per campaign runs in a console;
the unknown requests become pending once, in one statement (`reset_unknown`), so even two
consoles asked at once never send one twice.

The runs stop with the console, worker or not (`campaign web --no-worker`): on shutdown
the lifespan calls `Resends.stop`, which sets their stop event, refuses new runs and
waits (bounded) for them to end. A run stopped so ends after its requests in flight are
answered and recorded, resumable, as after Ctrl-C: nothing is sent once the console has
stopped, and no answer is left unrecorded.
"""

from __future__ import annotations

import logging
import threading
import time
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
        self.stop_event = threading.Event()  # set when the console stops

    def running(self, campaign_id: int) -> bool:
        with self._lock:
            run = self._runs.get(campaign_id)
            return run is not None and run.is_alive()

    def start(self, settings: Settings, engine: Any, campaign_id: int) -> bool:
        """Start resending; False (nothing started) when a resend of it already runs, or
        the console is stopping."""
        with self._lock:
            run = self._runs.get(campaign_id)
            if self.stop_event.is_set() or (run is not None and run.is_alive()):
                return False
            run = threading.Thread(
                target=_resend,
                args=(settings, engine, campaign_id, self.stop_event),
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

    def stop(self, timeout: float) -> list[int]:
        """Stop every run (no new one starts) and wait for them, `timeout` seconds in all:
        the campaigns whose run still goes on then (its request in flight not answered)."""
        self.stop_event.set()
        with self._lock:
            runs = dict(self._runs)
        deadline = time.monotonic() + timeout
        for run in runs.values():
            run.join(max(0.0, deadline - time.monotonic()))
        return sorted(cid for cid, run in runs.items() if run.is_alive())


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


__all__ = ["Resends", "resends_of"]
