"""Report times: every form the gateway and its website use -> one canonical ISO string.

`YYMMDDhhmm`, `YYYYMMDDhhmmss`, `YYYY-MM-DD hh:mm[:ss]`, `YYYY/MM/DD ...` and Excel date
cells become one ISO 8601 string in China time, so that the pushed and the exported form of
one report are equal ("2026-11-25T10:02:00+08:00"). Pure: no I/O, no store.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CHINA_OFFSET = timezone(timedelta(hours=8))
EXCEL_EPOCH = datetime(1899, 12, 30)

_TIME = re.compile(
    r"""^\s*(?:
        (?P<yymmddhhmm>\d{10})
      | (?P<yyyymmddhhmm>\d{12})
      | (?P<yyyymmddhhmmss>\d{14})
      | (?P<y>\d{4})[-/.](?P<mo>\d{1,2})[-/.](?P<d>\d{1,2})
        (?:(?:[ T]+|T)(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,]\d+)?)?)?
      | (?P<serial>\d{5}(?:\.\d+)?)
    )\s*(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?\s*$""",
    re.X | re.I | re.ASCII,
)


@lru_cache(maxsize=65536)
def parse_report_time(text: str) -> str | None:
    """The canonical ISO form of a report time, or None when it is not a real time.

    Without an offset the time is China time; with one it is converted to China time.
    A bare 5-digit number (with or without a fraction) is an Excel serial date.
    """
    match = _TIME.match(text)
    if not match:
        return None
    try:
        moment = _moment(match)
    except (ValueError, OverflowError):
        return None
    tz = match.group("tz")
    offset = CHINA_OFFSET if not tz else _offset(tz)
    if offset is None:
        return None
    try:  # year 1 at +14:00 or 9999-12-31 at -10:00 has no China time
        return moment.replace(tzinfo=offset).astimezone(CHINA_OFFSET).isoformat()
    except OverflowError:
        return None


def _moment(match: re.Match[str]) -> datetime:
    if digits := match.group("yymmddhhmm"):
        return _digits_moment(2000 + int(digits[:2]), digits[2:])
    if digits := match.group("yyyymmddhhmm") or match.group("yyyymmddhhmmss"):
        return _digits_moment(int(digits[:4]), digits[4:])
    if serial := match.group("serial"):
        return excel_serial_time(float(serial))
    return datetime(
        int(match.group("y")),
        int(match.group("mo")),
        int(match.group("d")),
        int(match.group("h") or 0),
        int(match.group("mi") or 0),
        int(match.group("s") or 0),
    )


def _digits_moment(year: int, digits: str) -> datetime:
    """MMDDhhmm or MMDDhhmmss after the year."""
    month, day, hour, minute, *second = _pairs(digits)
    return datetime(year, month, day, hour, minute, second[0] if second else 0)


def _pairs(digits: str) -> list[int]:
    return [int(digits[i : i + 2]) for i in range(0, len(digits), 2)]


def _offset(tz: str) -> timezone | None:
    if tz.upper() == "Z":
        return UTC
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 14 or minutes > 59:
        return None
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def excel_serial_time(serial: float) -> datetime:
    """An Excel date cell's number (days since 1899-12-30) as a datetime, to the second."""
    if not 1 <= serial < 2958466:  # 9999-12-31
        raise ValueError(f"{serial} is not an Excel date")
    return EXCEL_EPOCH + timedelta(seconds=round(serial * 86400))


def parse_report_times_arrow(values: pa.Array) -> pa.Array:
    """`parse_report_time` over a pyarrow string array, once per distinct value; null where
    invalid."""
    encoded = pc.dictionary_encode(values)
    parsed = [parse_report_time(u) for u in encoded.dictionary.to_pylist()]
    return pc.take(pa.array(parsed, pa.string()), encoded.indices)


def parse_report_times(values: pd.Series) -> pd.Series:
    """Vectorized `parse_report_time`: parsed once per distinct value; None where invalid."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    parsed = [parse_report_time(str(u)) for u in uniques]
    table = pd.array([*parsed, None], dtype=object)  # code -1 (missing) -> the last entry
    return pd.Series(table[codes], index=values.index, dtype=object)
