"""Delivery reports and replies: report times, opt-out keywords, report-file import.

- `parse_report_time` / `parse_report_times`: every time form the gateway and its
  website use (`YYMMDDhhmm`, `YYYYMMDDhhmmss`, `YYYY-MM-DD hh:mm[:ss]`, `YYYY/MM/DD ...`,
  Excel date cells) -> one canonical ISO 8601 string in China time, so that the pushed and
  the exported form of one report are equal ("2026-11-25T10:02:00+08:00").
- `OptoutMatcher`: is a whole inbound message an opt-out keyword?
- `import_report_files`: `campaign reports import FILE...` (reading and checking the
  files: `campaign.report_files`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from campaign.config import BLACKLIST_STATUSES
from campaign.errors import InputError
from campaign.phones import VALID_MOBILE
from campaign.store import suppression
from campaign.store.inbound import BLACKLIST_REASON
from campaign.store.reports import REPORT_KEY, count_unmatched, insert_report_frame

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
        return datetime(2000 + int(digits[:2]), *_pairs(digits[2:]))
    if digits := match.group("yyyymmddhhmm") or match.group("yyyymmddhhmmss"):
        return datetime(int(digits[:4]), *_pairs(digits[4:]))
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


# ----------------------------------------------------------------------------- opt-out


def fold_text(text: str) -> str:
    """Width- and case-insensitive form, surrounding spaces and punctuation removed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    start, end = 0, len(folded)
    while start < end and _is_filler(folded[start]):
        start += 1
    while end > start and _is_filler(folded[end - 1]):
        end -= 1
    return folded[start:end]


def _is_filler(char: str) -> bool:
    return char.isspace() or unicodedata.category(char)[0] in "PZC"


class OptoutMatcher:
    """Tells whether a whole message is one of the opt-out keywords."""

    def __init__(self, keywords: Iterable[str]) -> None:
        self.keywords = frozenset(k for k in (fold_text(w) for w in keywords) if k)

    def __call__(self, message: str) -> bool:
        return fold_text(message) in self.keywords


# ----------------------------------------------------------------------------- import


IMPORT_CHUNK = 250_000  # reports per transaction
REPORTS_IMPORT = "reports import"  # suppression.added_by of blacklisted numbers in files


@dataclass(frozen=True)
class ImportSummary:
    """What importing one report file did (SPEC `reports import --json` keys + details)."""

    source: str
    imported: int  # reports stored for the first time
    repeated: int  # reports already stored (pushed, imported before, or twice in the file)
    malformed: int  # rows that are not a report (see malformed_rows)
    unmatched: int  # reports of this file whose (msgid, mobile) is no recipient (yet)
    malformed_rows: tuple[tuple[int, str], ...] = ()  # (row as a spreadsheet shows it, reason)

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "imported": self.imported,
            "repeated": self.repeated,
            "malformed": self.malformed,
            "unmatched": self.unmatched,
        }


def import_report_files(
    engine: Engine, paths: Sequence[Path | str], *, suppress_blacklisted: bool = False
) -> list[ImportSummary]:
    """Import report files; idempotent (a second import of the same file only counts
    `repeated`). InputError (exit 3) for a missing or unusable file; missing files are
    checked for before anything is imported."""
    folders = [str(p) for p in paths if Path(p).is_dir()]
    if folders:
        raise InputError(f"not a report file but a folder: {', '.join(folders)}")
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise InputError(f"report file not found: {', '.join(missing)}")
    return [
        import_report_file(engine, path, suppress_blacklisted=suppress_blacklisted)
        for path in paths
    ]


def import_report_file(
    engine: Engine, path: Path | str, *, suppress_blacklisted: bool = False
) -> ImportSummary:
    from campaign.report_files import read_report_file

    read = read_report_file(path)
    valid = _in_key_order(read.valid)  # index order
    new = 0
    for start in range(0, len(valid), IMPORT_CHUNK):
        # one transaction per chunk: a receiver on the same SQLite store waits for a
        # chunk, not the whole file; a crash in between is repaired by importing again
        with engine.begin() as conn:
            chunk = valid.iloc[start : start + IMPORT_CHUNK]
            new += insert_report_frame(conn, chunk, ordered=True)
    with engine.begin() as conn:
        unmatched = count_unmatched(conn, valid["msgid"], valid["mobile"])
        if suppress_blacklisted:
            _suppress_blacklisted(conn, valid, read.source)
    rows = tuple(
        zip(read.malformed["row"].tolist(), read.malformed["reason"].tolist(), strict=True)
    )
    return ImportSummary(read.source, new, len(valid) - new, len(rows), unmatched, rows)


def _in_key_order(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` sorted by REPORT_KEY, by Arrow (text keys: several times faster than pandas)."""
    if len(frame) < 2:
        return frame.reset_index(drop=True)
    keys = pa.Table.from_pandas(frame[list(REPORT_KEY)], preserve_index=False)
    order = pc.sort_indices(keys, [(key, "ascending") for key in REPORT_KEY])
    return frame.take(order.to_numpy()).reset_index(drop=True)


def _suppress_blacklisted(conn: Connection, valid: pd.DataFrame, source: str) -> None:
    listed = valid[
        valid["status"].isin(BLACKLIST_STATUSES) & valid["mobile"].str.match(VALID_MOBILE)
    ]
    for status, group in listed.groupby("status"):
        detail = f"report status {status} ({source})"
        suppression.add_in(conn, group["mobile"], BLACKLIST_REASON, detail, added_by=REPORTS_IMPORT)
