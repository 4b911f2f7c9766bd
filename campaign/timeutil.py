"""Time helpers: China Standard Time (the gateway's local time) and UTC for storage."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def china_now() -> datetime:
    return datetime.now(CHINA)
