"""The push receiver: `/dlr` (delivery reports), `/mo` (inbound messages), `/healthz`.

A raw ASGI app served by uvicorn (httptools + uvloop). A push is checked (credentials ->
403, parameters -> 400, size -> 413: nothing stored) and handed to one writer thread,
which drains whatever is queued into ONE transaction (group commit, no waiting window),
commits, and only then lets every push of that transaction answer `200 OK`. So an `OK`
always means "durably stored", and throughput grows with load instead of paying one
fsync per push.

`Receiver` runs the app in a thread on a free loopback port (tests, demo);
`serve()` runs it in the foreground (`campaign serve`). Checking a push's parameters is
`campaign.push_params`; the writer thread is `campaign.receiver_writer`. Logs carry no
passwords (the access log is off: query strings hold `pswd`) and mask mobiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import ipaddress
import logging
import resource
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any
from urllib.parse import unquote_plus

import uvicorn
from sqlalchemy import Engine

from campaign.config import ReceiverSettings, Settings
from campaign.errors import ConfigError
from campaign.push_params import (
    PushRefused,
    Reports,
    mask_mobile,
    normalize_number,
    parse_inbound,
    parse_reports,
)
from campaign.receiver_limits import ConnectionLimits, guarded_protocol
from campaign.receiver_writer import StoreWriter, Work, error_line
from campaign.reports import suppress_blacklisted
from campaign.store import open_store

log = logging.getLogger("campaign.receiver")

MAX_FIELDS = 64  # parameters per push
BACKLOG = 4096
FILES_BESIDE_CONNECTIONS = 64  # listening socket, store files, logs
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

__all__ = [
    "PushRefused",
    "Receiver",
    "ReceiverApp",
    "StoreWriter",
    "listen",
    "mask_mobile",
    "normalize_number",
    "parse_inbound",
    "parse_reports",
    "serve",
    "serve_app",
    "suppress_blacklisted",
]


class ReceiverApp:
    """The ASGI app. `store=False` answers without storing (benchmark baseline only)."""

    def __init__(self, settings: Settings, engine: Engine | None, *, store: bool = True) -> None:
        self._user = settings.receiver.receiver.encode()
        self._password = settings.receiver.pswd.encode()
        self._check_auth = bool(self._user or self._password)
        self._store = store
        self._limits = _RequestLimits(
            settings.receiver.max_header_bytes,
            settings.receiver.max_body_bytes,
            settings.receiver.header_timeout,
        )
        self.writer = StoreWriter(engine, settings) if store and engine is not None else None
        self.malformed_reports = 0  # items of batched pushes left out as malformed

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
            params = await _params(scope, receive, self._limits)
            self._authenticate(params)
            work = self._work(path, params)
        except _ClientGone:  # closed mid-body: nothing to store, nobody to answer
            return
        except PushRefused as exc:
            _log_refusal(path, exc)
            await _answer(send, exc.status, exc.reason)
            return
        except Exception as exc:  # a bug: one line without the parameters, and a 500
            log.error("%s push failed: %s", path, error_line(exc))
            await _answer(send, 500, "internal error, nothing stored")
            return
        await self._store_and_answer(work, send)

    def _authenticate(self, params: Mapping[str, str]) -> None:
        if not self._check_auth:
            return
        # only what is configured is checked: with just a pswd set, any receiver name passes
        user = params.get("receiver", "").encode()
        password = params.get("pswd", "").encode()
        ok_user = hmac.compare_digest(user, self._user) or not self._user
        ok_password = hmac.compare_digest(password, self._password) or not self._password
        if not (ok_user and ok_password):
            raise PushRefused(403, "wrong push credentials")

    def _work(self, path: str, params: Mapping[str, str]) -> Work:
        future = asyncio.get_running_loop().create_future()
        if path == "/dlr":
            found = parse_reports(params)
            if found.malformed:
                self._count_malformed(found)
            return Work(found.rows, None, future)
        return Work(None, parse_inbound(params), future)

    def _count_malformed(self, found: Reports) -> None:
        self.malformed_reports += len(found.malformed)
        log.warning(
            "/dlr batch: stored %d report(s), left out %d malformed: %s",
            len(found.rows),
            len(found.malformed),
            found.malformed_summary(),
        )

    async def _store_and_answer(self, work: Work, send: Send) -> None:
        if self.writer is None:
            await _answer(send, 200, "OK")
            return
        self.writer.submit(work)
        try:
            await work.future  # the writer always settles it: committed, or an error
        except Exception as exc:
            log.warning("push not stored: %s", error_line(exc))
            await _answer(send, 503, "not stored, try again")
            return
        await _answer(send, 200, "OK")


@dataclass(frozen=True)
class _RequestLimits:
    max_query: int  # bytes; the header cap bounds it too, this is the app's own check
    max_body: int  # bytes
    body_stall: float  # seconds a body may pause between two chunks


class _ClientGone(Exception):
    """The client closed the connection before its request was whole."""


async def _params(scope: Scope, receive: Receive, limits: _RequestLimits) -> dict[str, str]:
    query = scope.get("query_string", b"")
    if len(query) > limits.max_query:
        raise PushRefused(414, f"query string longer than {limits.max_query} bytes")
    body = await _body(scope, receive, limits) if scope["method"] == "POST" else b""
    try:
        pairs = _pairs(query)
        if body:
            pairs += _pairs(body)
    except (UnicodeDecodeError, ValueError):
        raise PushRefused(400, "parameters are not URL-encoded UTF-8") from None
    return dict(pairs)


def _pairs(data: bytes) -> list[tuple[str, str]]:
    """URL-encoded UTF-8 (the protocol); GBK as the fallback some platforms send."""
    try:
        return _decoded_pairs(data, "utf-8")
    except UnicodeDecodeError:
        return _decoded_pairs(data, "gb18030")


def _decoded_pairs(data: bytes, encoding: str) -> list[tuple[str, str]]:
    """`parse_qsl(keep_blank_values=True)`, strict, at most MAX_FIELDS fields; unquoting only
    the fields that need it (the hot path of every push)."""
    text = data.decode(encoding)
    if text.count("&") >= MAX_FIELDS:
        raise ValueError("too many fields")
    pairs = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in field or "+" in field:
            name = unquote_plus(name, encoding=encoding, errors="strict")
            value = unquote_plus(value, encoding=encoding, errors="strict")
        pairs.append((name, value))
    return pairs


async def _body(scope: Scope, receive: Receive, limits: _RequestLimits) -> bytes:
    too_large = PushRefused(413, f"body larger than {limits.max_body} bytes")
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > limits.max_body:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await _next_chunk(receive, limits.body_stall)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _next_chunk(receive: Receive, stall: float) -> dict[str, Any]:
    """The next body message; a body that stops coming for `stall` seconds is refused (408),
    a client gone mid-body is `_ClientGone` (its partial body is never parsed)."""
    try:
        async with asyncio.timeout(stall):
            message = await receive()
    except TimeoutError:
        raise PushRefused(408, f"the body stalled for {stall:g} s") from None
    if message["type"] == "http.disconnect":
        raise _ClientGone
    return message


async def _answer(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [*_TEXT, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _log_refusal(path: str, exc: PushRefused) -> None:
    who = f" (mobile {mask_mobile(exc.mobile)})" if exc.mobile else ""
    log.warning("%s push refused with %d: %s%s", path, exc.status, exc.reason, who)


# ----------------------------------------------------------------------------- running


def _config(app: ReceiverApp, host: str, port: int, limits: ReceiverSettings) -> uvicorn.Config:
    guard = ConnectionLimits(limits.max_header_bytes, limits.header_timeout, limits.max_connections)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=guarded_protocol(guard),  # httptools, with a header cap and timeouts
        timeout_keep_alive=limits.idle_timeout,  # type: ignore[arg-type]  # float is fine
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
        config = _config(self.app, self.host, self.port, settings.receiver)
        self._server = uvicorn.Server(config)
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


def serve(
    settings: Settings, host: str | None = None, port: int | None = None, *, insecure: bool = False
) -> None:
    """Run the receiver in the foreground until SIGINT/SIGTERM (`campaign serve`).

    ConfigError when `host` is not loopback and no push credentials are configured, unless
    `insecure`: anyone reaching the port could otherwise write reports and opt-outs."""
    host = host or settings.receiver.host
    check_exposure(host, settings.receiver, insecure=insecure)
    serve_app(settings, host, port, store=True)


def check_exposure(host: str, receiver: ReceiverSettings, *, insecure: bool = False) -> None:
    """Refuse (ConfigError) a non-loopback address without push credentials."""
    if insecure or receiver.receiver or receiver.pswd or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to listen on {host or 'every address'} without push credentials: "
        "set receiver and pswd in [receiver], or pass --insecure"
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name (or "", every address): reachable from elsewhere


def serve_app(
    settings: Settings, host: str | None, port: int | None, *, store: bool = True
) -> None:
    """`serve`, with `store=False` for the benchmark baseline (answers without storing)."""
    host = host or settings.receiver.host
    port = settings.receiver.port if port is None else port
    sock = listen(host, port)
    _allow_open_files(settings.receiver.max_connections)
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
            config = _config(app, host, port, settings.receiver)
            _ForegroundServer(config).run(sockets=[sock])
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


def _allow_open_files(connections: int) -> None:
    """Raise the soft limit of open files (up to the hard one) so that `max_connections`
    sockets, plus the store's files, fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + FILES_BESIDE_CONNECTIONS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


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
