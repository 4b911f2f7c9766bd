"""The push receiver: `/dlr` (delivery reports), `/mo` (inbound messages), `/healthz`.

A raw ASGI app served by uvicorn (httptools + uvloop). A push is checked (credentials ->
403, parameters -> 400, size -> 413: nothing stored) and handed to one writer thread,
which drains whatever is queued into ONE transaction (group commit, no waiting window),
commits, and only then lets every push of that transaction answer `200 OK`. So an `OK`
always means "durably stored", and throughput grows with load instead of paying one
fsync per push.

`Receiver` runs the app in a thread on a free loopback port (tests, demo);
`serve()` runs it in the foreground (`campaign serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import queue
import re
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, unquote

import uvicorn
from sqlalchemy import Connection, Engine

from campaign.config import BLACKLIST_STATUSES, Settings
from campaign.errors import ConfigError
from campaign.phones import VALID_MOBILE, normalize_mobile
from campaign.reports import OptoutMatcher, parse_report_time
from campaign.store import open_store, suppression
from campaign.store.engine import is_sqlite
from campaign.store.inbound import BLACKLIST_REASON, InboundPart, store_inbound
from campaign.store.reports import ReportRow, insert_reports

log = logging.getLogger("campaign.receiver")

MAX_BODY = 64 * 1024
MAX_FIELDS = 64  # parameters per push
BACKLOG = 4096
CHECKPOINT_INTERVAL = 0.5  # seconds between SQLite WAL checkpoints
ANSWER_TIMEOUT = 30.0  # seconds a push waits for its commit before 503
PUSH_ORIGIN = "push"
_DIGITS = re.compile(r"^[0-9]{1,64}$")
_MOBILE = re.compile(r"^\+?[0-9]{5,20}$")
_VALID_MOBILE = re.compile(VALID_MOBILE)
_EMSHEAD = re.compile(r"^\s*([0-9]{1,32})\s*,\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*$")
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class PushRefused(Exception):
    """A push answered with an HTTP error and stored nowhere."""

    def __init__(self, status: int, reason: str, mobile: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.mobile = mobile


def mask_mobile(mobile: str) -> str:
    """139****0021: enough to tell numbers apart in a log, not to text them."""
    if len(mobile) >= 8:
        return f"{mobile[:3]}****{mobile[-4:]}"
    return "****"


# ----------------------------------------------------------------------------- parsing


def parse_reports(params: Mapping[str, str]) -> list[ReportRow]:
    """The reports of one /dlr push (single or batched `report=` form), or PushRefused."""
    batched = params.get("report")
    if batched is not None:
        items = [item for item in batched.split("||") if item.strip()]
        if not items:
            raise PushRefused(400, "empty report parameter")
        return [_batched_report(item, n) for n, item in enumerate(items, start=1)]
    missing = [k for k in ("msgid", "reportTime", "mobile", "status") if not params.get(k)]
    if missing:
        raise PushRefused(400, f"missing parameter(s): {', '.join(missing)}")
    return [_report(params["msgid"], params["reportTime"], params["mobile"], params["status"])]


def _batched_report(item: str, number: int) -> ReportRow:
    fields = [unquote(f).strip() for f in item.split(",")]
    if len(fields) != 4:
        raise PushRefused(400, f"report #{number} needs 4 fields: msgid,time,mobile,status")
    try:
        return _report(*fields)
    except PushRefused as exc:
        raise PushRefused(400, f"report #{number}: {exc.reason}", exc.mobile) from None


def _report(msgid: str, report_time: str, mobile: str, status: str) -> ReportRow:
    msgid, report_time, status = msgid.strip(), report_time.strip(), status.strip()
    number = _mobile(mobile)
    if not _DIGITS.match(msgid):
        raise PushRefused(400, "msgid is not a number", number)
    canonical = parse_report_time(report_time)
    if canonical is None:
        raise PushRefused(400, f"reportTime {report_time[:20]!r} is not a real time", number)
    if not status or len(status) > 64:
        raise PushRefused(400, "status is empty" if not status else "status is too long", number)
    return (msgid, number, status, canonical, report_time[:32], PUSH_ORIGIN)


def _mobile(raw: str) -> str:
    text = raw.strip().replace(" ", "").replace("-", "")
    if not _MOBILE.match(text):
        raise PushRefused(400, "mobile is not a number")
    return normalize_number(text)


def normalize_number(text: str) -> str:
    """The 11-digit form where the number is a Chinese mobile, else its digits as pushed
    (a report for any number is kept: it just matches no recipient)."""
    return normalize_mobile(text) or text.lstrip("+")


def parse_inbound(params: Mapping[str, str]) -> InboundPart:
    """The part of one /mo push, or PushRefused."""
    missing = [k for k in ("mobile", "moTime") if not params.get(k)]
    if "msg" not in params:
        missing.append("msg")
    if missing:
        raise PushRefused(400, f"missing parameter(s): {', '.join(missing)}")
    number = _mobile(params["mobile"])
    mo_time = parse_report_time(params["moTime"].strip())
    if mo_time is None:
        raise PushRefused(400, f"moTime {params['moTime'][:20]!r} is not a real time", number)
    destcode = params.get("destcode", "").strip()
    if len(destcode) > 32:
        raise PushRefused(400, "destcode is too long", number)
    isems = params.get("isems", "").strip()
    if isems in ("", "0"):
        return InboundPart(number, destcode, mo_time, params["msg"])
    if isems != "1":
        raise PushRefused(400, "isems must be 0 or 1", number)
    match = _EMSHEAD.match(params.get("emshead", ""))
    if not match:
        raise PushRefused(400, "emshead must be id,total,number", number)
    ems_id, total, part = match.group(1), int(match.group(2)), int(match.group(3))
    if not 1 <= part <= total:
        raise PushRefused(400, f"emshead part {part} of {total} is impossible", number)
    return InboundPart(number, destcode, mo_time, params["msg"], ems_id, total, part)


# ----------------------------------------------------------------------------- writer


@dataclass
class _Work:
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
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._optout = OptoutMatcher(settings.receiver.optout_keywords)
        self._suppress_blacklisted = settings.receiver.suppress_blacklisted
        self._thread = threading.Thread(target=self._run, name="receiver-writer", daemon=True)
        self._conn: Connection | None = None
        self._checkpointer = _Checkpointer(engine) if is_sqlite(engine) else None
        self.committed = 0  # pushes committed (for logs and benchmarks)

    def start(self) -> None:
        self._thread.start()
        if self._checkpointer:
            self._checkpointer.start()

    def submit(self, work: _Work) -> None:
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
            self._drop_connection()

    def _next_group(self) -> tuple[list[_Work], bool]:
        """Block for one push, then take whatever else is queued (no waiting window)."""
        items = [self._queue.get()]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        group = [item for item in items if item is not None]
        return group, len(group) < len(items)

    def _commit_group(self, group: list[_Work]) -> None:
        try:
            self._write(group)
        except Exception as exc:
            self._drop_connection()
            if len(group) == 1:
                log.error("could not store a push: %s", _first_line(exc))
                _settle(group, exc)
                return
            for work in group:  # one bad push must not sink the others
                self._commit_group([work])
            return
        self.committed += len(group)
        _settle(group, None)

    def _write(self, group: list[_Work]) -> None:
        rows = [row for work in group if work.reports for row in work.reports]
        conn = self._connection()
        with conn.begin():
            insert_reports(conn, rows)
            if self._suppress_blacklisted:
                suppress_blacklisted(conn, rows)
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
                    log.warning("WAL checkpoint failed: %s", _first_line(exc))
        finally:
            raw.close()


def suppress_blacklisted(conn: Connection, rows: Iterable[ReportRow]) -> int:
    """Put the numbers of blacklist-status reports on the suppression list."""
    by_status: dict[str, list[str]] = {}
    for row in rows:
        if row[2] in BLACKLIST_STATUSES and _VALID_MOBILE.match(row[1]):
            by_status.setdefault(row[2], []).append(row[1])
    return sum(
        suppression.add_in(conn, mobiles, BLACKLIST_REASON, f"report status {status}")
        for status, mobiles in by_status.items()
    )


def _settle(group: list[_Work], error: BaseException | None) -> None:
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


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# ----------------------------------------------------------------------------- the app


class ReceiverApp:
    """The ASGI app. `store=False` answers without storing (benchmark baseline only)."""

    def __init__(self, settings: Settings, engine: Engine | None, *, store: bool = True) -> None:
        self._user = settings.receiver.receiver.encode()
        self._password = settings.receiver.pswd.encode()
        self._check_auth = bool(self._user or self._password)
        self._store = store
        self.writer = StoreWriter(engine, settings) if store and engine is not None else None

    def start(self) -> None:
        if self.writer:
            self.writer.start()

    def close(self) -> None:
        if self.writer:
            self.writer.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        # by the last path segment: .../dlr works behind a proxy that adds a prefix
        path = "/" + scope["path"].rstrip("/").rsplit("/", 1)[-1]
        if path == "/healthz" and method in ("GET", "HEAD"):
            await _answer(send, 200, "OK")
            return
        if path not in ("/dlr", "/mo"):
            await _answer(send, 404, "not found: use /dlr, /mo or /healthz")
            return
        if method not in ("GET", "POST"):
            await _answer(send, 405, "use GET or POST")
            return
        try:
            params = await _params(scope, receive)
            self._authenticate(params)
            work = self._work(path, params)
        except PushRefused as exc:
            _log_refusal(path, exc)
            await _answer(send, exc.status, exc.reason)
            return
        except Exception as exc:  # a bug: one line without the parameters, and a 500
            log.error("%s push failed: %s", path, _first_line(exc))
            await _answer(send, 500, "internal error, nothing stored")
            return
        await self._store_and_answer(work, send)

    def _authenticate(self, params: Mapping[str, str]) -> None:
        if not self._check_auth:
            return
        user = params.get("receiver", "").encode()
        password = params.get("pswd", "").encode()
        ok_user = hmac.compare_digest(user, self._user)
        ok_password = hmac.compare_digest(password, self._password)
        if not (ok_user and ok_password):
            raise PushRefused(403, "wrong push credentials")

    def _work(self, path: str, params: Mapping[str, str]) -> _Work:
        future = asyncio.get_running_loop().create_future()
        if path == "/dlr":
            return _Work(parse_reports(params), None, future)
        return _Work(None, parse_inbound(params), future)

    async def _store_and_answer(self, work: _Work, send: Send) -> None:
        if self.writer is None:
            await _answer(send, 200, "OK")
            return
        self.writer.submit(work)
        try:
            await asyncio.wait_for(work.future, ANSWER_TIMEOUT)
        except Exception as exc:
            if not isinstance(exc, TimeoutError):
                log.warning("push not stored: %s", _first_line(exc))
            await _answer(send, 503, "not stored, try again")
            return
        await _answer(send, 200, "OK")


async def _params(scope: Scope, receive: Receive) -> dict[str, str]:
    query = scope.get("query_string", b"")
    if len(query) > MAX_BODY:
        raise PushRefused(414, f"query string longer than {MAX_BODY} bytes")
    body = await _body(scope, receive) if scope["method"] == "POST" else b""
    try:
        pairs = _pairs(query)
        if body:
            pairs += _pairs(body)
    except (UnicodeDecodeError, ValueError):
        raise PushRefused(400, "parameters are not URL-encoded UTF-8") from None
    return dict(pairs)


def _pairs(data: bytes) -> list[tuple[str, str]]:
    return parse_qsl(
        data.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS
    )


async def _body(scope: Scope, receive: Receive) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            raise PushRefused(413, f"body larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise PushRefused(413, f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [*_TEXT, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _log_refusal(path: str, exc: PushRefused) -> None:
    who = f" (mobile {mask_mobile(exc.mobile)})" if exc.mobile else ""
    log.warning("%s push refused with %d: %s%s", path, exc.status, exc.reason, who)


# ----------------------------------------------------------------------------- running


def _config(app: ReceiverApp, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,  # query strings carry the push password
        log_level="warning",
        backlog=BACKLOG,
        timeout_graceful_shutdown=10,
    )


class Receiver:
    """The receiver on a free loopback port, in a thread (tests and the demo).

    >>> with Receiver(settings) as rx:   # pushes go to rx.dlr_url and rx.mo_url
    ...     ...
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        store: bool = True,
    ) -> None:
        self._own_engine = engine is None and store
        self.engine = open_store(settings.store_url) if self._own_engine else engine
        self.app = ReceiverApp(settings, self.engine, store=store)
        self._sock = listen(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(_config(self.app, self.host, self.port))
        self._thread = threading.Thread(target=self._serve, name="receiver", daemon=True)
        self.app.start()
        self._thread.start()
        self._wait_started()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def dlr_url(self) -> str:
        return f"{self.url}/dlr"

    @property
    def mo_url(self) -> str:
        return f"{self.url}/mo"

    def _serve(self) -> None:
        self._server.run(sockets=[self._sock])

    def _wait_started(self) -> None:
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the receiver did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop answering, commit what is queued, release the store."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self.app.close()
        self._sock.close()
        if self._own_engine and self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the receiver in the foreground until SIGINT/SIGTERM (`campaign serve`)."""
    serve_app(settings, host, port, store=True)


def serve_app(
    settings: Settings, host: str | None, port: int | None, *, store: bool = True
) -> None:
    """`serve`, with `store=False` for the benchmark baseline (answers without storing)."""
    host = host or settings.receiver.host
    port = settings.receiver.port if port is None else port
    sock = listen(host, port)
    engine = None
    try:
        engine = open_store(settings.store_url) if store else None
        app = ReceiverApp(settings, engine, store=store)
        app.start()
        gc.collect()
        gc.freeze()  # the imported libraries' objects: no full GC pass walks them mid-request
        try:
            bound = sock.getsockname()
            log.info("receiving on http://%s:%d (/dlr, /mo, /healthz)", bound[0], bound[1])
            _ForegroundServer(_config(app, host, port)).run(sockets=[sock])
        finally:
            app.close()
    finally:
        sock.close()
        if engine is not None:
            engine.dispose()


class _ForegroundServer(uvicorn.Server):
    """SIGINT/SIGTERM stop gracefully (answering in-flight pushes, committing what is
    queued) and the command then ends normally, exit 0, instead of dying by the signal."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def listen(host: str, port: int) -> socket.socket:
    """A listening socket for uvicorn; ConfigError (exit 3) when the address cannot be used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _type, _proto, _name, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)  # connections wait in the backlog while uvicorn starts
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
