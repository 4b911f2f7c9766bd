"""Time helpers: China Standard Time (the gateway's local time) and UTC for storage.

The store keeps UTC. Every time a person reads (progress lines, logs, status, exports) is
China time and carries its offset: `china_text` ("2026-12-03 16:05:01+08:00") for text,
`china_iso` ("2026-12-03T16:05:01+08:00") for JSON, `ChinaTimeFormatter` for log lines.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def china_now() -> datetime:
    return datetime.now(CHINA)


def in_china(moment: datetime) -> datetime:
    """`moment` in China time; a naive one is taken for UTC (how the store keeps times)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(CHINA)


def china_text(moment: datetime | None = None, *, timespec: str = "seconds") -> str:
    """For people: "2026-12-03 16:05:01+08:00" (now when no moment is given)."""
    return in_china(moment or utcnow()).isoformat(sep=" ", timespec=timespec)


def china_iso(moment: datetime | None) -> str | None:
    """For JSON: ISO 8601 in China time with its offset, "2026-12-03T16:05:01+08:00"."""
    return in_china(moment).isoformat(timespec="seconds") if moment is not None else None


class ChinaTimeFormatter(logging.Formatter):
    """Log lines stamped in China time with the offset: `2026-12-03 16:05:01+08:00`."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, CHINA)
        return moment.strftime(datefmt) if datefmt else china_text(moment)
