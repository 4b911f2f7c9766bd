"""Delivery reports: report-file import and blacklist suppression.

- `import_report_files`: `campaign reports import FILE...` (reading and checking the
  files: `campaign.report_files`; report times: `campaign.report_times`).
- `suppress_blacklisted`: the one rule putting the numbers of blacklist-status reports on
  the suppression list, for pushed reports (the receiver) and imported ones.

Opt-out keywords are in `campaign.optout_keywords`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from campaign.config import BLACKLIST_STATUSES
from campaign.errors import InputError
from campaign.phones import VALID_MOBILE
from campaign.report_files import read_report_file
from campaign.store import suppression
from campaign.store.engine import write
from campaign.store.inbound import BLACKLIST_REASON
from campaign.store.reports import REPORT_KEY, count_unmatched, insert_report_frame

_VALID_MOBILE = re.compile(VALID_MOBILE)
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
    read = read_report_file(path)
    valid = _in_key_order(read.valid)  # index order
    new = 0
    for start in range(0, len(valid), IMPORT_CHUNK):
        # one transaction per chunk: a receiver on the same SQLite store waits for a
        # chunk, not the whole file; a crash in between is repaired by importing again
        with write(engine) as conn:
            chunk = valid.iloc[start : start + IMPORT_CHUNK]
            new += insert_report_frame(conn, chunk, ordered=True)
    with write(engine) as conn:
        unmatched = count_unmatched(conn, valid["msgid"], valid["mobile"])
        if suppress_blacklisted:
            listed = valid[valid["status"].isin(BLACKLIST_STATUSES)]  # only a quicker loop
            _suppress(
                conn,
                zip(listed["mobile"], listed["status"], strict=True),
                added_by=REPORTS_IMPORT,
                source=read.source,
            )
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


def suppress_blacklisted(
    conn: Connection,
    reports: Iterable[tuple[str, str]],
    *,
    added_by: str,
    source: str | None = None,
) -> int:
    """Put the numbers of blacklist-status reports ((mobile, status) pairs) on the
    suppression list: pushed (the receiver) or imported from a file (`source`)."""
    by_status: dict[str, list[str]] = {}
    for mobile, status in reports:
        if status in BLACKLIST_STATUSES and _VALID_MOBILE.match(mobile):
            by_status.setdefault(status, []).append(mobile)
    where = f" ({source})" if source else ""
    return sum(
        suppression.add_in(
            conn, mobiles, BLACKLIST_REASON, f"report status {status}{where}", added_by=added_by
        )
        for status, mobiles in sorted(by_status.items())
    )


_suppress = suppress_blacklisted  # inside import_report_file, a flag has the function's name
