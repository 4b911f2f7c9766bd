"""FormTransport: POST a form body over a kept socket, the answer parsed by httptools.

The gateway client's fast path. requests' adapter costs more CPU per request than the
exchange itself, and so does http.client's header parsing (the `email` package): on 2
cores, one-recipient POSTs to the simulator at 16 threads cost the client ~280 µs each
through http.client and ~50 µs here (llhttp, the C parser under Node.js and uvicorn,
through `httptools`); bench/bench_send_inflight.py. `GatewayClient` uses this transport
only where it sends what requests would send: a plain `http://` URL without credentials,
no proxy for it from the environment, no `~/.netrc` entry, no session handed in by the
caller. Everything else (https, credentials, proxies, injected sessions) stays on requests.

One job: `post(path, body)` returns `(status, body bytes)` or raises `TransportFailure`,
whose `result` is classified by `classify_transport_error` (the only place with these rules):

* `NotSent` — the failure came while connecting (DNS, refused, connect timeout): nothing
  left this machine, safe to retry;
* `Ambiguous` — the failure came after the request started to go out (read timeout, reset,
  EOF, incomplete body, an answer that is not HTTP): it may have been sent. Never retried.

The request: `POST <path> HTTP/1.1`, `Host` (as http.client and requests write it), the
caller's headers with `Accept-Encoding: gzip, deflate` (as requests sends it), then
`Content-Length`, the blank line and the body, in one `sendall`.

Connections: one socket per thread (thread-local, TCP_NODELAY), kept alive and registered
under a lock so that `close()` closes every thread's connection (those of threads that
have ended are closed when a new one is made). Before a kept connection is reused it is
checked: readable while idle means the server closed it (or sent garbage), so it is closed
and a new one connected; a server's idle timeout never turns into an Ambiguous result.
After any failure, when the answer says the connection closes (or HTTP/1.0 does not say
keep-alive), when its body ran until the close, or when more bytes came after it, the
connection is dropped. The connect timeout covers connecting; the read timeout (None: wait
forever) each socket operation after it, like requests' `(connect, read)`.

The answer is read whole (Content-Length, chunked, or until close); 1xx interim answers
are skipped; gzip and deflate bodies are decoded, as requests does.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
import zlib
from collections.abc import Mapping

import httptools
from urllib3.util.wait import wait_for_read

from campaign.gateway.protocol import Ambiguous, NotSent

__all__ = ["ACCEPT_ENCODING", "FormTransport", "TransportFailure", "classify_transport_error"]

ACCEPT_ENCODING = "gzip, deflate"
_MAX_CAUSE = 200
_RECV_SIZE = 65536


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
        fields = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        lines = [f"Host: {_host_header(host, port)}"]
        lines += [f"{name}: {value}" for name, value in fields.items()]
        self._header_block = "".join(f"{line}\r\n" for line in lines).encode("latin-1")
        self._heads: dict[str, bytes] = {}  # path -> request line and headers up to the length
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, decoded body); raises only `TransportFailure`."""
        head = self._heads.get(path) or self._head(path)
        sock = self._connection()
        try:
            sock.sendall(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
            answer = _read_answer(sock)
            data = _decoded(b"".join(answer.body), answer.encoding)
        except BaseException as exc:
            self._drop(sock)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt & co.: not a gateway outcome
            raise TransportFailure(classify_transport_error(exc, sent=True)) from None
        if not answer.reusable:
            self._drop(sock)
        return answer.status, data

    def close(self) -> None:
        """Close every thread's connection; a later `post` connects anew."""
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for sock in connections:
            sock.close()

    def _head(self, path: str) -> bytes:
        """The request line and the fixed headers for `path` (made once per path)."""
        line = f"POST {path} HTTP/1.1\r\n".encode("latin-1")
        head = self._heads[path] = line + self._header_block
        return head

    # ------------------------------------------------------------------ connections

    def _connection(self) -> socket.socket:
        """This thread's kept connection if still open and idle, else a new connected one."""
        kept: socket.socket | None = getattr(self._local, "sock", None)
        if kept is not None:
            if _idle_and_open(kept):
                return kept
            self._drop(kept)
        try:
            sock = self._connect()
        except Exception as exc:
            raise TransportFailure(classify_transport_error(exc, sent=False)) from None
        self._register(sock)
        return sock

    def _connect(self) -> socket.socket:
        """A connected socket: connect timeout to connect, then the read timeout."""
        sock = socket.create_connection((self._host, self._port), self._connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._read_timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def _register(self, sock: socket.socket) -> None:
        with self._lock:
            for thread in [t for t in self._connections if not t.is_alive()]:
                self._connections.pop(thread).close()
            self._connections[threading.current_thread()] = sock
        self._local.sock = sock

    def _drop(self, sock: socket.socket) -> None:
        self._local.sock = None
        thread = threading.current_thread()
        with self._lock:
            if self._connections.get(thread) is sock:
                del self._connections[thread]
        sock.close()


def _host_header(host: str, port: int) -> str:
    """`Host` as http.client (and so requests) writes it: IDNA, [IPv6], the port unless 80."""
    name = host if host.isascii() else host.encode("idna").decode("ascii")
    if ":" in name:
        name = f"[{name}]"
    return name if port == http.client.HTTP_PORT else f"{name}:{port}"


def _idle_and_open(sock: socket.socket) -> bool:
    """Open and nothing to read: readable while idle is an EOF (server closed) or garbage."""
    if sock.fileno() < 0:
        return False  # closed by `close()`
    try:
        return not wait_for_read(sock, timeout=0.0)
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- the answer


class _Answer:
    """httptools callbacks collecting one answer: status, body, encoding, framing."""

    __slots__ = (
        "body",
        "complete",
        "encoding",
        "framed",
        "headers_done",
        "parser",
        "reusable",
        "status",
        "trailing",
    )

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.encoding: str | None = None
        self.status = 0
        self.framed = False  # Content-Length or Transfer-Encoding: not "until close"
        self.headers_done = False
        self.complete = False  # the final (non-1xx) answer is whole
        self.reusable = False  # the connection may carry the next request
        self.trailing = False  # bytes came after the final answer
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        if self.complete:
            self.trailing = True
            return
        self.body.clear()  # after a 1xx interim answer
        self.encoding, self.framed, self.headers_done = None, False, False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete:
            return
        lower = name.lower()
        if lower == b"content-encoding":
            text = value.decode("latin-1")
            self.encoding = f"{self.encoding}, {text}" if self.encoding else text
        elif lower in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        if not self.complete and self.parser is not None:
            self.status = self.parser.get_status_code()
            self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.complete and self.status >= 200 and self.parser is not None:
            self.complete = True
            self.reusable = self.parser.should_keep_alive()


def _read_answer(sock: socket.socket) -> _Answer:
    """The whole final answer on `sock` (after the request went out)."""
    answer = _Answer()
    parser = answer.parser
    assert parser is not None
    try:
        while not answer.complete:
            data = sock.recv(_RECV_SIZE)
            if not data:
                _end_of_stream(answer)
                break
            try:
                parser.feed_data(data)
            except httptools.HttpParserError:
                if not answer.complete:
                    raise
                answer.trailing = True  # garbage after a whole answer
        if answer.trailing:
            answer.reusable = False
    finally:
        answer.parser = None  # no reference cycle left for the collector
    return answer


def _end_of_stream(answer: _Answer) -> None:
    """The server closed: the answer is whole only if its body ran until the close."""
    if answer.headers_done and answer.status >= 200 and not answer.framed:
        answer.complete, answer.reusable = True, False
        return
    if not answer.headers_done and not answer.body:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    raise http.client.IncompleteRead(b"".join(answer.body))


# --------------------------------------------------------------------------- classification


def classify_transport_error(exc: BaseException, *, sent: bool) -> NotSent | Ambiguous:
    """NotSent for a failure while connecting (`sent=False`), else Ambiguous.

    The http.client twin of `client.classify_exception` (requests' exceptions), in the
    same words (`campaign.zh` translates them): socket.gaierror, ConnectionRefusedError,
    TimeoutError and other OSErrors while connecting are NotSent; a timeout after sending
    is "no answer ... before the timeout"; anything else after sending (reset, EOF,
    RemoteDisconnected, IncompleteRead, an answer that is not HTTP) "failed after sending".
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
