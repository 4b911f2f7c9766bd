"""FormTransport: POST a form body over stdlib `http.client`, one keep-alive connection a thread.

The gateway client's fast path. requests' adapter costs more CPU per request than the
exchange itself (on 2 cores, one-recipient POSTs at 16 threads: http.client ~3,700/s,
requests ~1,450/s). `GatewayClient` uses this transport only where it is exactly
equivalent to requests: a plain `http://` URL without credentials, no proxy for it from
the environment, no `~/.netrc` entry, no session handed in by the caller. Everything else
(https, credentials, proxies, injected sessions) stays on requests.

One job: `post(path, body)` returns `(status, body bytes)` or raises `TransportFailure`,
whose `result` is classified by `classify_transport_error` (the only place with these rules):

* `NotSent` — the failure came while connecting (DNS, refused, connect timeout): nothing
  left this machine, safe to retry;
* `Ambiguous` — the failure came after the request started to go out (read timeout, reset,
  EOF, incomplete body, bad status line): it may have been sent. Never retried here.

Connections: one `http.client.HTTPConnection` per thread (thread-local), kept alive and
registered under a lock so that `close()` closes every thread's connection (those of
threads that have ended are closed when a new one is made). Before a kept connection is
reused it is checked: readable while idle means the server closed it (or sent garbage),
so it is closed and a new one connected; a server's idle timeout never turns into an
Ambiguous result. After any failure, or when the answer says the connection closes, the
connection is dropped. The connect timeout covers connecting; the read timeout (None:
wait forever) each socket operation after it, like requests' `(connect, read)`.

The body is read whole (Content-Length, chunked, or until close). The caller's headers go
out as given (http.client adds Host and Content-Length), with `Accept-Encoding: gzip,
deflate` as requests sends it (requests adds br/zstd only when those packages are
installed); gzip and deflate answers are decoded here, as requests does.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
import zlib
from collections.abc import Mapping

from urllib3.util.wait import wait_for_read

from campaign.gateway.protocol import Ambiguous, NotSent

__all__ = ["ACCEPT_ENCODING", "FormTransport", "TransportFailure", "classify_transport_error"]

ACCEPT_ENCODING = "gzip, deflate"
_MAX_CAUSE = 200


class TransportFailure(Exception):
    """One POST failed; `result` says whether it may have been sent."""

    def __init__(self, result: NotSent | Ambiguous) -> None:
        super().__init__(result.reason)
        self.result = result


class FormTransport:
    """POST form bodies to one host; thread-safe, one keep-alive connection per thread."""

    def __init__(
        self,
        host: str,
        port: int,
        headers: Mapping[str, str],
        *,
        connect_timeout: float,
        read_timeout: float | None,
    ) -> None:
        self._host, self._port = host, port
        self._headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, http.client.HTTPConnection] = {}

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, decoded body); raises only `TransportFailure`."""
        conn = self._connection()
        try:
            conn.request("POST", path, body, self._headers)
            response = conn.getresponse()
            data = _decoded(response.read(), response.getheader("Content-Encoding"))
        except BaseException as exc:
            self._drop(conn)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt & co.: not a gateway outcome
            raise TransportFailure(classify_transport_error(exc, sent=True)) from None
        if response.will_close:
            self._drop(conn)
        return response.status, data

    def close(self) -> None:
        """Close every thread's connection; a later `post` connects anew."""
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            conn.close()

    # ------------------------------------------------------------------ connections

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's kept connection if still open and idle, else a new connected one."""
        kept: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if kept is not None:
            if _idle_and_open(kept):
                return kept
            self._drop(kept)
        try:
            conn = self._connect()
        except Exception as exc:
            raise TransportFailure(classify_transport_error(exc, sent=False)) from None
        self._register(conn)
        return conn

    def _connect(self) -> http.client.HTTPConnection:
        """A connected HTTPConnection: connect timeout to connect, then the read timeout."""
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout)
        conn.auto_open = 0  # never reconnect silently inside request()
        try:
            conn.connect()
            conn.sock.settimeout(self._read_timeout)
        except BaseException:
            conn.close()
            raise
        return conn

    def _register(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            for thread in [t for t in self._connections if not t.is_alive()]:
                self._connections.pop(thread).close()
            self._connections[threading.current_thread()] = conn
        self._local.conn = conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        self._local.conn = None
        thread = threading.current_thread()
        with self._lock:
            if self._connections.get(thread) is conn:
                del self._connections[thread]
        conn.close()


def _idle_and_open(conn: http.client.HTTPConnection) -> bool:
    """Open and nothing to read: readable while idle is an EOF (server closed) or garbage."""
    sock = conn.sock
    if sock is None:
        return False  # closed by `close()`
    try:
        return not wait_for_read(sock, timeout=0.0)
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- classification


def classify_transport_error(exc: BaseException, *, sent: bool) -> NotSent | Ambiguous:
    """NotSent for a failure while connecting (`sent=False`), else Ambiguous.

    The http.client twin of `client.classify_exception` (requests' exceptions), in the
    same words (`campaign.zh` translates them): socket.gaierror, ConnectionRefusedError,
    TimeoutError and other OSErrors while connecting are NotSent; a timeout after sending
    is "no answer ... before the timeout"; anything else after sending (reset, EOF,
    RemoteDisconnected, IncompleteRead, a bad status line) "failed after sending".
    """
    if not sent:
        if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
            return NotSent("could not connect to the gateway (connect timeout): connect timed out")
        if isinstance(exc, socket.gaierror):
            return NotSent(f"could not connect to the gateway: name resolution failed ({exc})")
        return NotSent(f"could not connect to the gateway: {_describe(exc)}")
    if isinstance(exc, TimeoutError):
        return Ambiguous("no answer from the gateway before the timeout; it may have been sent")
    return Ambiguous(
        f"the connection failed after sending ({type(exc).__name__}{_detail(exc)}); "
        "it may have been sent"
    )


def _describe(exc: BaseException) -> str:
    """`[Errno 111] Connection refused`-like text, or the exception's name."""
    text = str(exc) if isinstance(exc, OSError) else ""
    return text[:_MAX_CAUSE] if text else type(exc).__name__


def _detail(exc: BaseException) -> str:
    """ ": <system message>" for an OSError; nothing for texts the server chose (status lines)."""
    text = str(exc) if isinstance(exc, OSError) else ""
    return f": {text[:_MAX_CAUSE]}" if text else ""


# --------------------------------------------------------------------------- body


def _decoded(data: bytes, content_encoding: str | None) -> bytes:
    """The body without its gzip/deflate Content-Encoding (others are left as they are)."""
    if not content_encoding or not data:
        return data
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",")]):
        if coding in ("gzip", "x-gzip"):
            data = gzip.decompress(data)
        elif coding == "deflate":
            data = _inflate(data)
        elif coding not in ("", "identity"):
            return data
    return data


def _inflate(data: bytes) -> bytes:
    """Deflate as sent in the wild: zlib-wrapped (RFC 9110) or raw."""
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -zlib.MAX_WBITS)
