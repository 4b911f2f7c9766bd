"""A campaign's result rows streamed in chunks of input rows, as Arrow arrays (bounded
memory at any size): `campaign.store.results.results_select` chunk by chunk, read ahead in
threads; on SQLite through the JSON transport of `campaign.store.json_transport`, else
through DBAPI tuples."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, func, select

from campaign.store.json_transport import json_blob as _json_blob
from campaign.store.json_transport import json_columns as _json_columns
from campaign.store.json_transport import tuple_columns
from campaign.store.results import results_select
from campaign.store.schema import recipients
from campaign.store.statistics import refresh_statistics

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["READ_AHEAD", "iter_result_columns"]

READ_AHEAD = 2  # chunks read from the store (in threads) while the caller works on one


def iter_result_columns(
    engine: Engine, campaign_id: int, chunk_rows: int
) -> Iterator[dict[str, pa.Array]]:
    """`results_select` in chunks of `chunk_rows` input rows, as one Arrow array per column.

    Columns: those of `campaign.store.json_transport.FETCHED` (text `string`, the numbers
    `int64`; null where empty). Chunks without rows are skipped.
    """
    for lo, payload in _raw_chunks(engine, campaign_id, chunk_rows):
        raw = _chunk_columns(engine, campaign_id, lo, lo + chunk_rows, payload)
        if raw:
            yield raw


def _raw_chunks(
    engine: Engine, campaign_id: int, chunk_rows: int
) -> Iterator[tuple[int, bytes | dict[str, pa.Array]]]:
    """`results_select` chunk by chunk (first row_no, then JSON lines or Arrow columns).

    The next READ_AHEAD chunks are read in threads (SQLite works without the GIL) while the
    caller works on this one; the JSON lines are parsed by `_chunk_columns`, in the caller's
    thread. Errors are raised in the caller; stopping early waits for the reads in progress.
    """
    refresh_statistics(engine, campaign_id)
    with engine.connect() as conn:
        top = conn.execute(
            select(func.max(recipients.c.row_no)).where(recipients.c.campaign_id == campaign_id)
        ).scalar()
    if top is None:
        return
    starts = iter(range(0, top + 1, chunk_rows))
    pool = ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="results-read-ahead")
    pending: deque[Future[bytes | dict[str, pa.Array]]] = deque()

    def fill() -> None:
        while len(pending) < READ_AHEAD and (lo := next(starts, None)) is not None:
            pending.append(pool.submit(_read_chunk, engine, campaign_id, lo, lo + chunk_rows))

    try:
        fill()
        lo = 0
        while pending:
            payload = pending.popleft().result()
            fill()
            if payload:
                yield lo, payload
            lo += chunk_rows
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _read_chunk(engine: Engine, campaign_id: int, lo: int, hi: int) -> bytes | dict[str, pa.Array]:
    with engine.connect() as conn:
        payload: bytes | dict[str, pa.Array] | None = None
        if engine.dialect.name == "sqlite":
            payload = _json_blob(conn, results_select(campaign_id, lo, hi))
        if payload is None:
            payload = _tuple_chunk(conn, campaign_id, lo, hi)
    return payload


def _chunk_columns(
    engine: Engine, campaign_id: int, lo: int, hi: int, payload: bytes | dict[str, pa.Array]
) -> dict[str, pa.Array]:
    if isinstance(payload, dict):
        return payload
    raw = _json_columns(payload)
    if raw is None:  # lines Arrow would not take: read this chunk again, as tuples
        with engine.connect() as conn:
            raw = _tuple_chunk(conn, campaign_id, lo, hi)
    return raw


def _tuple_chunk(conn: Connection, campaign_id: int, lo: int, hi: int) -> dict[str, pa.Array]:
    """One chunk of `results_select` through DBAPI tuples ({} when it has no rows)."""
    result = conn.execute(results_select(campaign_id, lo, hi))
    keys = list(result.keys())
    # plain tuples from the DBAPI cursor: these columns need no type processing, and
    # building SQLAlchemy Row objects would double the time of a chunk
    rows = result.cursor.fetchall()
    result.close()
    return tuple_columns(keys, rows) if rows else {}
