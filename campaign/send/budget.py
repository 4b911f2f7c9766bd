"""The daily budget: recipients a run may still send (a job's `max_per_day`).

Whole batches only: a batch that does not fit is released untouched (pending, with
DAILY_LIMIT as its detail) and the run stops claiming; a batch that came back pending (not
sent after all) goes back into the budget. The China calendar day decides what "today" is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time

from campaign.timeutil import CHINA


def china_day_start(now: datetime) -> datetime:
    """00:00 China time of the China day `now` (any time zone) falls on."""
    return datetime.combine(now.astimezone(CHINA).date(), time(0, 0), tzinfo=CHINA)


def daily_budget(
    max_per_day: int | None, submitted_since: Callable[[datetime], int], now: datetime
) -> int | None:
    """Recipients still allowed today (None: no limit); `submitted_since(day_start)` counts
    what earlier runs of the day already submitted."""
    if max_per_day is None:
        return None
    return max_per_day - submitted_since(china_day_start(now))


@dataclass
class SendBudget:
    """Recipients this run may still send (`remaining` None: unlimited)."""

    remaining: int | None = None

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def limit(self, requests: int) -> int:
        """Requests the run may claim now, at most `requests` (one recipient each at least)."""
        if self.remaining is None or requests <= 0:
            return requests
        return max(0, min(requests, self.remaining))

    def spend(self, recipients: int) -> bool:
        """Take a claimed batch's recipients; False when it does not fit (release it)."""
        if self.remaining is None:
            return True
        if recipients > self.remaining:
            return False
        self.remaining -= recipients
        return True

    def refund(self, recipients: int) -> None:
        """A batch that was not sent after all (back to pending)."""
        if self.remaining is not None:
            self.remaining += recipients
