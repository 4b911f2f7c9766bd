"""The receiver's writer: one thread committing queued pushes in group transactions.

Each round blocks for one push, takes whatever else is queued (no waiting window), writes
them all in ONE transaction, commits, and only then resolves their futures, so that every
`200 OK` means "durably stored" while the fsync cost is shared by everyone waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from campaign.config import Settings
from campaign.optout_keywords import OptoutMatcher
from campaign.patterns import first_line
from campaign.push_params import mask_mobile
from campaign.reports import suppress_blacklisted
from campaign.store.engine import is_sqlite, write
from campaign.store.inbound import ADDED_BY, InboundPart, store_inbound
from campaign.store.reports import ReportRow, insert_reports

log = logging.getLogger("campaign.receiver")

CHECKPOINT_INTERVAL = 0.5  # seconds between SQLite WAL checkpoints


@dataclass
class Work:
    reports: list[ReportRow] | None
    part: InboundPart | None
    future: asyncio.Future[None]


class StoreWriter:
    """One thread; each round commits everything queued in one transaction (group commit).

    The thread keeps one connection. On SQLite, WAL checkpoints (which write and fsync the
    database file) run in a second thread instead of inside a commit that pushes wait for.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._optout = OptoutMatcher(settings.receiver.optout_keywords)
        self._suppress_blacklisted = settings.receiver.suppress_blacklisted
        self._thread = threading.Thread(target=self._run, name="receiver-writer", daemon=True)
        self._conn: Connection | None = None
        self._ended = False
        self._checkpointer = _Checkpointer(engine) if is_sqlite(engine) else None
        self.committed = 0  # pushes committed (for logs and benchmarks)

    def start(self) -> None:
        self._thread.start()
        if self._checkpointer:
            self._checkpointer.start()

    def submit(self, work: Work) -> None:
        if self._ended:
            _settle([work], RuntimeError("the receiver's writer has stopped"))
            return
        self._queue.put(work)

    def stop(self) -> None:
        """Commit what is queued, then end the threads."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._checkpointer:
            self._checkpointer.stop()

    def _run(self) -> None:
        try:
            stopping = False
            while not stopping:
                group, stopping = self._next_group()
                if group:
                    self._commit_group(group)
        finally:
            self._ended = True
            self._drop_connection()
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        """Whatever is still queued once the thread ends gets an error, never silence."""
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                return
            if work is not None:
                _settle([work], RuntimeError("the receiver's writer has stopped"))

    def _next_group(self) -> tuple[list[Work], bool]:
        """Block for one push, then take whatever else is queued (no waiting window)."""
        items = [self._queue.get()]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        group = [item for item in items if item is not None]
        return group, len(group) < len(items)

    def _commit_group(self, group: list[Work]) -> None:
        try:
            self._write(group)
        except Exception as exc:
            self._drop_connection()
            if len(group) == 1 or _store_wide(exc):
                log.error("could not store %d push(es): %s", len(group), error_line(exc))
                _settle(group, exc)
                return
            for work in group:  # one bad push must not sink the others
                self._commit_group([work])
            return
        self.committed += len(group)
        _settle(group, None)

    def _write(self, group: list[Work]) -> None:
        rows = [row for work in group if work.reports for row in work.reports]
        conn = self._connection()
        with write(conn):
            insert_reports(conn, rows)
            if self._suppress_blacklisted:
                pairs = ((row[1], row[2]) for row in rows)
                suppress_blacklisted(conn, pairs, added_by=ADDED_BY)
            for work in group:
                if work.part is not None:
                    result = store_inbound(conn, work.part, self._optout)
                    if result.is_optout:
                        log.info("opt-out reply from %s", mask_mobile(work.part.mobile))

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            if self._checkpointer:
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
                conn.commit()
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None


class _Checkpointer:
    """Runs SQLite WAL checkpoints (PASSIVE: never blocking the writer) every interval."""

    def __init__(self, engine: Engine, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._engine = engine
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        raw = self._engine.raw_connection()  # autocommit: a PRAGMA outside any transaction
        try:
            while not self._stopped.wait(self._interval):
                try:
                    raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
                except Exception as exc:
                    log.warning("WAL checkpoint failed: %s", error_line(exc))
        finally:
            raw.close()


#: SQLite's primary result codes of a store that cannot take any write just now (busy,
#: locked, read-only, I/O error, corrupt, full, cannot open): not the fault of one push.
_SQLITE_STORE_WIDE = frozenset({5, 6, 8, 10, 11, 13, 14})


def _store_wide(exc: BaseException) -> bool:
    """True when a failed group failed because of the store, not of one of its pushes:
    retrying the pushes one at a time would repeat the failure (and its 30 s busy wait)
    once per push."""
    if getattr(exc, "connection_invalidated", False):
        return True
    code = getattr(getattr(exc, "orig", None), "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _SQLITE_STORE_WIDE


def _settle(group: list[Work], error: BaseException | None) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for work in group:
        by_loop.setdefault(work.future.get_loop(), []).append(work.future)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, futures, error)


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def error_line(exc: BaseException) -> str:
    """An error for a log line: its type and the first line of its message."""
    return f"{type(exc).__name__}: {first_line(exc)}"
