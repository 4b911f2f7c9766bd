"""The send-window gate: may a request leave now (China time), and if not, until when?

A window is daily, `end` may be before `start` (overnight, e.g. 21:00-08:00); `start` is in
it, `end` is not. A job's [send_at, not_after) reaches the sender as its narrowed window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from campaign.config import SendWindow


@dataclass(frozen=True)
class GateDecision:
    """OPEN (both None), wait until `wait_until`, or stop the run with `stop_reason`
    (its cause is always StopCause.WINDOW).

    `message` says why it is closed; `announce` is True on the first look of a closed
    spell (the loop logs "waiting: ..." once, not every step)."""

    wait_until: datetime | None = None
    stop_reason: str | None = None
    message: str = ""
    announce: bool = False

    @property
    def is_open(self) -> bool:
        return self.wait_until is None and self.stop_reason is None


OPEN = GateDecision()


class WindowGate:
    """Looks at the clock and the window; with `no_wait` a closed window stops the run."""

    def __init__(
        self, window: SendWindow | None, clock: Callable[[], datetime], *, no_wait: bool
    ) -> None:
        self.window, self.clock, self.no_wait = window, clock, no_wait
        self._closed = False  # the last look found it closed (announced already)

    def check(self) -> GateDecision:
        if self.window is None:
            return OPEN
        now = self.clock()
        if self.window.contains(now.time()):
            self._closed = False
            return OPEN
        message = outside_window_message(self.window, now)
        if self.no_wait:
            return GateDecision(stop_reason=message + "; resume then", message=message)
        announce, self._closed = not self._closed, True
        return GateDecision(
            wait_until=next_opening(self.window, now), message=message, announce=announce
        )


def outside_window_message(window: SendWindow, now: datetime) -> str:
    opens = next_opening(window, now)
    wait_for = opens - now
    hours, rest = divmod(int(wait_for.total_seconds()) // 60, 60)
    return (
        f"outside the send window {window} (China time); it opens at {opens:%Y-%m-%d %H:%M} "
        f"(in {hours} h {rest} min)"
    )


def next_opening(window: SendWindow, now: datetime) -> datetime:
    """The next time the window opens after `now` (today's opening or tomorrow's)."""
    opening = now.replace(
        hour=window.start.hour, minute=window.start.minute, second=0, microsecond=0
    )
    return opening if opening > now else opening + timedelta(days=1)
