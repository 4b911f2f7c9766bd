"""Delivery reports in the store: kept as they came, exact repeats stored once.

A report is identified by (msgid, mobile, status, report_time) — `report_time` is the
canonical ISO string of `campaign.reports.parse_report_time`, so a pushed report and the
same report imported from a file are one row. Reports are not joined at insert time (one
may arrive before its msgid is recorded, or carry a msgid this system never issued):
matching to recipients by (msgid, mobile) happens when they are read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy import Connection

from campaign.store.schema import batches, recipients, reports
from campaign.timeutil import utcnow

# (msgid, mobile, status, report_time, raw_time, origin)
ReportRow = tuple[str, str, str, str, str | None, str]
REPORT_COLUMNS = ("msgid", "mobile", "status", "report_time", "raw_time", "origin")
REPORT_KEY = ("msgid", "mobile", "status", "report_time")  # what makes a report the same one
_MSGID_CHUNK = 500
SQLITE_ROWS_PER_STATEMENT = 1000  # 7 parameters each, within the SQLite build's limit


def insert_reports(
    conn: Connection, rows: Sequence[ReportRow], received_at: datetime | None = None
) -> int:
    """Insert reports inside the caller's transaction; returns how many were new.

    An exact repeat (same msgid, mobile, status, report_time) changes nothing.
    """
    if not rows:
        return 0
    stamp = _bind_time(conn, received_at or utcnow())
    if conn.dialect.name == "postgresql":
        return _insert_postgres(conn, _insert_sql("%s", 1), [(*row, stamp) for row in rows])
    return _insert_sqlite(conn, rows, stamp)


@lru_cache(maxsize=256)
def _insert_sql(mark: str, count: int) -> str:
    """INSERT ... VALUES (...), (...) ... ON CONFLICT DO NOTHING for `count` reports."""
    one = f"({', '.join([mark] * (len(REPORT_COLUMNS) + 1))})"
    return (
        f"INSERT INTO {reports.name} ({', '.join(REPORT_COLUMNS)}, received_at) "
        f"VALUES {', '.join([one] * count)} ON CONFLICT DO NOTHING"
    )


def _insert_sqlite(conn: Connection, rows: Sequence[ReportRow], stamp: object) -> int:
    """Many reports per statement: one step of SQLite (one release of the GIL) per chunk,
    not one per report, so the receiver's writer thread does not queue for the GIL."""
    dbapi = conn.connection.driver_connection
    limit = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
    per_statement = max(1, min(SQLITE_ROWS_PER_STATEMENT, limit // (len(REPORT_COLUMNS) + 1)))
    cursor = dbapi.cursor()  # type: ignore[union-attr]
    new = 0
    try:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params = [value for row in chunk for value in (*row, stamp)]
            cursor.execute(_insert_sql("?", len(chunk)), params)
            new += max(cursor.rowcount, 0)
    finally:
        cursor.close()
    return new


def _insert_postgres(conn: Connection, sql: str, params: list[tuple]) -> int:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, params)
        return max(cursor.rowcount, 0)
    finally:
        cursor.close()


def insert_report_frame(
    conn: Connection,
    frame: pd.DataFrame,
    received_at: datetime | None = None,
    *,
    ordered: bool = False,
) -> int:
    """Bulk form of `insert_reports` for an imported file (columns REPORT_COLUMNS);
    `ordered`: the frame is in REPORT_KEY order already (not sorted again)."""
    if frame.empty:
        return 0
    if conn.dialect.name == "postgresql":
        return _copy_postgres(conn, frame[list(REPORT_COLUMNS)], received_at or utcnow())
    # in index order: SQLite appends to its B-trees instead of touching random pages
    if not ordered:
        frame = frame.sort_values(list(REPORT_KEY), ignore_index=True)
    columns = [frame[c].to_numpy(dtype=object) for c in REPORT_COLUMNS]
    return insert_reports(conn, list(zip(*columns, strict=True)), received_at)


def _copy_postgres(conn: Connection, frame: pd.DataFrame, received_at: datetime) -> int:
    """COPY into a temporary table, then one INSERT ... ON CONFLICT DO NOTHING."""
    cols = ", ".join(REPORT_COLUMNS)
    dbapi = conn.connection.driver_connection
    with dbapi.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS report_import "
            "(msgid text, mobile text, status text, report_time text, raw_time text, "
            "origin text) ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE report_import")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        buffer = pa.BufferOutputStream()
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
        with cursor.copy(f"COPY report_import ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buffer.getvalue().to_pybytes())
        cursor.execute(  # in index order, like the SQLite path
            f"INSERT INTO {reports.name} ({cols}, received_at) "
            f"SELECT {cols}, %s FROM report_import ORDER BY msgid, mobile, status, report_time "
            "ON CONFLICT DO NOTHING",
            (received_at,),
        )
        return max(cursor.rowcount, 0)


def _bind_time(conn: Connection, moment: datetime) -> object:
    """The value the driver needs for a DateTime column (SQLite stores text)."""
    column_type = reports.c.received_at.type.dialect_impl(conn.dialect)
    processor = column_type.bind_processor(conn.dialect)
    return processor(moment) if processor else moment


def matched_pairs(conn: Connection, msgids: Iterable[str]) -> pd.DataFrame:
    """(msgid, mobile) of the recipients sent in the batches with these msgids."""
    wanted = sorted(set(msgids))
    parts = []
    for start in range(0, len(wanted), _MSGID_CHUNK):
        chunk = wanted[start : start + _MSGID_CHUNK]
        query = (
            sa.select(batches.c.msgid, recipients.c.mobile)
            .join(
                recipients,
                sa.and_(
                    recipients.c.campaign_id == batches.c.campaign_id,
                    recipients.c.batch_id == batches.c.batch_id,
                ),
            )
            .where(batches.c.msgid.in_(chunk))
        )
        parts.append(pd.DataFrame(conn.execute(query).all(), columns=["msgid", "mobile"]))
    if not parts:
        return pd.DataFrame({"msgid": [], "mobile": []}, dtype=object)
    return pd.concat(parts, ignore_index=True)


def count_unmatched(conn: Connection, msgids: pd.Series, mobiles: pd.Series) -> int:
    """How many of these reports match no recipient of a batch with that msgid."""
    if msgids.empty:
        return 0
    known = matched_pairs(conn, msgids.unique())
    keys = pd.MultiIndex.from_arrays([msgids.to_numpy(), mobiles.to_numpy()])
    known_keys = pd.MultiIndex.from_frame(known)
    return int((~keys.isin(known_keys)).sum())


def count_reports(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(reports)).scalar_one())


def last_report_id(conn: Connection) -> int:
    """The highest report id stored (0 for none): a mark to look for newer reports from."""
    return int(conn.execute(sa.select(sa.func.max(reports.c.id))).scalar() or 0)


def reports_after(conn: Connection, campaign_id: int, after: int) -> bool:
    """Whether a report newer than id `after` carries one of the campaign's msgids (the
    new reports alone are read: a range of the primary key, each looked up by msgid)."""
    own = (
        sa.select(1)
        # `+ 0`: looked up by msgid (ix_batches_msgid), not among every batch of the campaign
        .where(batches.c.msgid == reports.c.msgid, batches.c.campaign_id + 0 == campaign_id)
        .exists()
    )
    query = sa.select(1).where(reports.c.id > after, own).limit(1)
    return conn.execute(query).first() is not None
