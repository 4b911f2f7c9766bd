"""GatewayClient's two transports behave the same, against real servers over loopback.

Each behaviour runs once with the httptools transport (a default client on a plain
http URL) and once with requests (the same client given a `requests.Session`).
`RawGateway` is a tiny socketserver HTTP/1.1 server that records the raw requests and
the connections, and can close a keep-alive connection after answering.
"""

from __future__ import annotations

import gzip
import http.client
import io
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from campaign.config import GatewaySettings
from campaign.gateway.client import (
    Accepted,
    Ambiguous,
    Balances,
    GatewayClient,
    NotSent,
    Refused,
    TransportName,
    make_session,
)
from campaign.gateway.simulator import Simulator
from campaign.gateway.transport import classify_transport_error
from campaign.zh import reason_zh
from tests.support.simulator import PushReceiver, free_port, gateway_settings, running_simulator

SECRET = "Sd123456-secret"
MOBILE = "13800138000"
TRANSPORTS: list[TransportName] = ["httptools", "requests"]
PROXY_VARIABLES = ["http_proxy", "https_proxy", "all_proxy", "no_proxy"]

OpenClient = Callable[[GatewaySettings], GatewayClient]


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> TransportName:
    return request.param


@pytest.fixture
def open_client(transport: TransportName) -> Iterator[OpenClient]:
    """Clients on `transport`: requests when given a session, else httptools."""
    opened: list[tuple[GatewayClient, requests.Session | None]] = []

    def open_(settings: GatewaySettings) -> GatewayClient:
        session = make_session() if transport == "requests" else None
        client = GatewayClient(settings, session=session)
        assert client.transport == transport
        opened.append((client, session))
        return client

    yield open_
    for client, session in opened:
        client.close()
        if session is not None:
            session.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with running_simulator() as simulator:
        yield simulator


# --------------------------------------------------------------------------- RawGateway


@dataclass
class RawGateway:
    """Answers every POST like the gateway; records requests and connection events.

    mode: "keep" (keep-alive), "close" (answers without saying so, then closes),
    "connection-close" (answers with `Connection: close`, then closes), "gzip" or
    "chunked" (keep-alive, the answer so encoded), "interim" (a `100 Continue` first),
    "until-close" (no length: the body runs until the server closes), "trailing" (bytes
    after the answer), "short" (closes halfway through the body), "not-http" (garbage).
    With `together=N` the first N requests are answered only once all N have arrived (so
    they are on N connections).
    """

    mode: str = "keep"
    together: int = 0
    heads: list[list[str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._server = _RawServer(("127.0.0.1", 0), _RawHandler)
        self._server.gateway = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._barrier = threading.Barrier(self.together) if self.together else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/msg"

    def __enter__(self) -> RawGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def count(self, event: str) -> int:
        with self._changed:
            return self.events.count(event)

    def wait_for(self, event: str, count: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.events.count(event) >= count, timeout)

    def record(self, event: str) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def answer(self, head: list[str], body: bytes) -> bytes:
        with self._changed:
            self.heads.append(head)
            self.bodies.append(body)
            number = len(self.heads)
        if self._barrier is not None and number <= self.together:
            self._barrier.wait(5)
        if head[0].split()[1].endswith("/QueryBalance"):
            text = b"20130303180000,0\n1001,500"
        else:
            text = b"20110725160412,0\n%d" % (1234567890100 + number)
        extra = ""
        if self.mode == "connection-close":
            extra = "Connection: close\r\n"
        elif self.mode == "gzip":
            text, extra = gzip.compress(text), "Content-Encoding: gzip\r\n"
        if self.mode == "not-http":
            return b"SSH-2.0-OpenSSH_9.2\r\n\r\n"
        if self.mode == "chunked":
            payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(text), text)
            extra += "Transfer-Encoding: chunked\r\n"
        elif self.mode == "until-close":
            payload = text
        elif self.mode == "short":
            payload, extra = text[:5], extra + f"Content-Length: {len(text)}\r\n"
        else:
            payload, extra = text, extra + f"Content-Length: {len(text)}\r\n"
        start = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{extra}\r\n"
        interim = b"HTTP/1.1 100 Continue\r\n\r\n" if self.mode == "interim" else b""
        trailing = b"HTTP/1.1 200 OK\r\n" if self.mode == "trailing" else b""
        return interim + start.encode("ascii") + payload + trailing


class _RawServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    gateway: RawGateway


class _RawHandler(socketserver.StreamRequestHandler):
    timeout = 5.0
    server: _RawServer

    def handle(self) -> None:
        gateway = self.server.gateway
        gateway.record("opened")
        while True:
            try:
                head = _read_head(self.rfile)
            except OSError:
                return
            if head is None:
                gateway.record("closed by the client")
                return
            length = next(
                (int(h.split(":")[1]) for h in head if h.lower().startswith("content-length:")), 0
            )
            self.wfile.write(gateway.answer(head, self.rfile.read(length)))
            if gateway.mode in ("close", "connection-close", "until-close", "short", "not-http"):
                self.connection.shutdown(socket.SHUT_RDWR)
                gateway.record("closed by the server")
                return


def _read_head(stream: io.BufferedIOBase) -> list[str] | None:
    """Request line and header lines; None at EOF before a request."""
    lines: list[str] = []
    while True:
        line = stream.readline()
        if not line:
            return lines or None
        if line == b"\r\n":
            return lines
        lines.append(line.decode("latin-1").rstrip("\r\n"))


# --------------------------------------------------------------------------- the request


def test_both_transports_send_the_same_request() -> None:
    """Same request line, same header lines (in any order), same body bytes."""
    seen: dict[str, tuple[list[list[str]], list[bytes]]] = {}
    with RawGateway() as gateway:
        settings = GatewaySettings(url=gateway.url, account="003547", password=SECRET)
        for name in TRANSPORTS:
            session = make_session() if name == "requests" else None
            with GatewayClient(settings, session=session) as client:
                assert client.transport == name
                assert isinstance(client.send_batch([MOBILE, "13900210021"], "您好&x=1"), Accepted)
                assert isinstance(client.query_balance(), Balances)
            if session is not None:
                session.close()
            heads = [[head[0], *sorted(head[1:])] for head in gateway.heads[-2:]]
            seen[name] = (heads, gateway.bodies[-2:])
    assert seen["httptools"] == seen["requests"]
    heads, _ = seen["httptools"]
    assert heads[0][0] == "POST /msg/HttpBatchSendSM HTTP/1.1"
    assert "Content-Type: application/x-www-form-urlencoded" in heads[0]
    assert not any(SECRET in line for head in heads for line in head)


def test_the_gateway_sees_the_form_with_the_password_only_in_the_body(
    open_client: OpenClient,
) -> None:
    with PushReceiver() as fake_gateway:
        settings = GatewaySettings(url=fake_gateway.url + "/msg", account="a", password=SECRET)
        client = open_client(settings)
        client.send_batch([MOBILE], "您好")
        client.query_balance()
        seen = fake_gateway.requests()
    assert [(r["method"], r["path"], r["query"]) for r in seen] == [
        ("POST", "/msg/HttpBatchSendSM", ""),
        ("POST", "/msg/QueryBalance", ""),
    ]
    assert seen[0]["params"] == {
        "account": "a",
        "pswd": SECRET,
        "mobile": MOBILE,
        "msg": "您好",
        "needstatus": "true",
        "product": "",
        "extno": "",
    }
    assert seen[1]["params"] == {"account": "a", "pswd": SECRET}


@pytest.mark.parametrize("mode", ["gzip", "chunked"])
def test_encoded_answers_are_read_whole(open_client: OpenClient, mode: str) -> None:
    with RawGateway(mode) as gateway:
        client = open_client(GatewaySettings(url=gateway.url, account="a", password=SECRET))
        assert client.send_batch([MOBILE], "hi") == Accepted("1234567890101", "20110725160412")
        assert client.query_balance() == Balances({"1001": 500}, "20130303180000")
        assert gateway.count("opened") == 1


@pytest.mark.parametrize("mode", ["interim", "until-close", "trailing"])
def test_unusual_but_whole_answers_are_read(open_client: OpenClient, mode: str) -> None:
    """A 1xx first, a body until the close, bytes after the answer: Accepted each time; the
    connection is kept only when nothing odd came after the answer."""
    with RawGateway(mode) as gateway:
        client = open_client(GatewaySettings(url=gateway.url, account="a", password=SECRET))
        for number in range(1, 3):
            result = client.send_batch([MOBILE], "hi")
            assert result == Accepted(str(1234567890100 + number), "20110725160412")
        kept = mode == "interim" or (mode == "trailing" and client.transport == "requests")
        assert gateway.count("opened") == (1 if kept else 2)


@pytest.mark.parametrize(
    ("mode", "words"),
    [("short", "IncompleteRead"), ("not-http", "HttpParser")],
)
def test_broken_answers_are_ambiguous(open_client: OpenClient, mode: str, words: str) -> None:
    with RawGateway(mode) as gateway:
        client = open_client(GatewaySettings(url=gateway.url, account="a", password=SECRET))
        result = client.send_batch([MOBILE], "hi")
        assert isinstance(result, Ambiguous), result
        assert result.reason.startswith("the connection failed after sending (")
        if client.transport == "httptools":  # requests names its own exceptions
            assert words in result.reason
        assert "SSH" not in result.reason  # what the server sent is not a reason
        assert reason_zh(result.reason) != result.reason
        assert isinstance(client.send_batch([MOBILE], "hi"), Ambiguous)  # connects anew
        assert gateway.count("opened") == 2


# --------------------------------------------------------------------------- the simulator


def test_accepted_and_refused(sim: Simulator, open_client: OpenClient) -> None:
    client = open_client(gateway_settings(sim))
    first, second = client.send_batch([MOBILE], "hi"), client.send_batch([MOBILE], "hi")
    assert isinstance(first, Accepted) and isinstance(second, Accepted)
    assert int(second.msgid) > int(first.msgid)
    wrong = open_client(gateway_settings(sim, password="wrong-password"))
    refused = wrong.send_batch([MOBILE], "hi")
    assert isinstance(refused, Refused) and refused.code == "102"
    assert isinstance(wrong.query_balance(), Refused)


def test_garbage_is_ambiguous(sim: Simulator, open_client: OpenClient) -> None:
    sim.inject_garbage(1)
    result = open_client(gateway_settings(sim)).send_batch([MOBILE], "hi")
    assert result == Ambiguous(
        "HTTP 502 from the gateway (an HTML page); the batch may have been sent"
    )


def test_a_dropped_connection_is_ambiguous_then_the_client_recovers(
    sim: Simulator, open_client: OpenClient
) -> None:
    client = open_client(gateway_settings(sim))
    assert isinstance(client.send_batch([MOBILE], "hi"), Accepted)  # a kept connection
    sim.inject_drop(1)
    dropped = client.send_batch([MOBILE], "hi")
    assert isinstance(dropped, Ambiguous), dropped
    assert dropped.reason.startswith("the connection failed after sending (")
    assert reason_zh(dropped.reason) != dropped.reason
    assert sim.received()[-1].fault == "drop"
    assert isinstance(client.send_batch([MOBILE], "hi"), Accepted)


def test_a_delay_past_the_timeout_is_ambiguous(sim: Simulator, open_client: OpenClient) -> None:
    client = open_client(gateway_settings(sim, timeout=0.15))
    sim.inject_delay(1, seconds=0.6)
    result = client.send_batch([MOBILE], "hi")
    assert result == Ambiguous(
        "no answer from the gateway before the timeout; it may have been sent"
    )
    assert sim.received()[-1].sent


def test_a_closed_port_is_not_sent(open_client: OpenClient) -> None:
    settings = GatewaySettings(url=f"http://127.0.0.1:{free_port()}/msg", password=SECRET)
    client = open_client(settings)
    result = client.send_batch([MOBILE], "hi")
    assert isinstance(result, NotSent), result
    assert result.reason.startswith("could not connect to the gateway: ")
    assert "refused" in result.reason.lower()
    assert isinstance(client.query_balance(), NotSent)


def test_a_dns_failure_is_not_sent(open_client: OpenClient) -> None:
    settings = GatewaySettings(url="http://gateway.invalid/msg", password=SECRET)
    result = open_client(settings).send_batch([MOBILE], "hi")
    assert isinstance(result, NotSent), result
    assert result.reason.startswith("could not connect to the gateway: ")
    assert SECRET not in result.reason


def test_threads_share_one_client(sim: Simulator, open_client: OpenClient) -> None:
    client = open_client(gateway_settings(sim))
    msgids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            result = client.send_batch([MOBILE], "hi")
            assert isinstance(result, Accepted), result
            with lock:
                msgids.append(result.msgid)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(msgids)) == 200
    assert len(sim.received()) == 200


# --------------------------------------------------------------------------- connections


@pytest.mark.parametrize("mode", ["close", "connection-close"])
def test_a_connection_the_server_closed_is_not_reused(open_client: OpenClient, mode: str) -> None:
    """Closed after the answer (said or not): the next request connects anew, no Ambiguous."""
    with RawGateway(mode) as gateway:
        client = open_client(GatewaySettings(url=gateway.url, account="a", password=SECRET))
        for number in range(1, 4):
            assert isinstance(client.send_batch([MOBILE], "hi"), Accepted)
            assert gateway.wait_for("closed by the server", number)
        assert gateway.count("opened") == 3


def test_one_keep_alive_connection_per_thread(open_client: OpenClient) -> None:
    with RawGateway() as gateway:
        client = open_client(GatewaySettings(url=gateway.url, account="a", password=SECRET))
        for _ in range(5):
            assert isinstance(client.send_batch([MOBILE], "hi"), Accepted)
        assert gateway.count("opened") == 1


@pytest.mark.parametrize(
    ("url_of", "expected"),
    [
        (lambda gateway: gateway.url, "httptools"),
        (lambda gateway: gateway.url.replace("http://", "http://user:pw@"), "requests"),
    ],
    ids=["plain", "credentials"],
)
def test_close_closes_every_threads_connection(
    url_of: Callable[[RawGateway], str], expected: TransportName
) -> None:
    with RawGateway(together=3) as gateway:
        client = GatewayClient(GatewaySettings(url=url_of(gateway), account="a", password=SECRET))
        assert client.transport == expected
        threads = [
            threading.Thread(target=client.send_batch, args=([MOBILE], "hi")) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert gateway.count("opened") == 3
        client.close()
        assert gateway.wait_for("closed by the client", 3)
        assert isinstance(client.send_batch([MOBILE], "hi"), Accepted)  # connects anew
        client.close()
        assert gateway.wait_for("closed by the client", 4)


# --------------------------------------------------------------------------- which transport


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9/msg", "httptools"),
        ("http://gateway.example.com/msg/", "httptools"),
        ("https://gateway.example.com/msg", "requests"),
        ("http://user:pw@gateway.example.com/msg", "requests"),
        ("http:///msg", "requests"),
        ("", "requests"),
    ],
)
def test_the_transport_follows_the_url(url: str, expected: TransportName) -> None:
    with GatewayClient(GatewaySettings(url=url, password=SECRET)) as client:
        assert client.transport == expected


def test_an_injected_session_keeps_requests() -> None:
    with make_session() as session:
        client = GatewayClient(GatewaySettings(url="http://127.0.0.1:9/msg"), session=session)
        assert client.transport == "requests"


@pytest.mark.parametrize(
    ("no_proxy", "expected"),
    [(None, "requests"), ("127.0.0.1", "httptools"), ("example.com", "requests")],
)
def test_a_proxy_from_the_environment_keeps_requests(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str | None, expected: TransportName
) -> None:
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    if no_proxy is not None:
        monkeypatch.setenv("no_proxy", no_proxy)
    with GatewayClient(GatewaySettings(url="http://127.0.0.1:9/msg")) as client:
        assert client.transport == expected


def test_the_proxy_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    with PushReceiver() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        settings = GatewaySettings(url="http://gateway.test/msg", password=SECRET)
        with GatewayClient(settings) as client:
            assert client.transport == "requests"
            client.send_batch([MOBILE], "hi")
        assert [r["path"] for r in proxy.requests()] == ["/msg/HttpBatchSendSM"]


def test_a_netrc_entry_keeps_requests(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """requests adds the Authorization of a ~/.netrc entry; httptools would not."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login user password pw\n")
    monkeypatch.setenv("NETRC", str(netrc))
    with GatewayClient(GatewaySettings(url="http://127.0.0.1:9/msg")) as client:
        assert client.transport == "requests"
    with GatewayClient(GatewaySettings(url="http://127.0.0.2:9/msg")) as client:
        assert client.transport == "httptools"


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("error", "sent", "expected", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), False, NotSent, "refused"),
        (socket.gaierror(-2, "Name or service not known"), False, NotSent, "resolution"),
        (TimeoutError("timed out"), False, NotSent, "connect timeout"),
        (OSError(113, "No route to host"), False, NotSent, "No route"),
        (TimeoutError("timed out"), True, Ambiguous, "timeout"),
        (http.client.RemoteDisconnected("closed"), True, Ambiguous, "RemoteDisconnected"),
        (ConnectionResetError(104, "reset"), True, Ambiguous, "ConnectionResetError"),
        (BrokenPipeError(32, "Broken pipe"), True, Ambiguous, "BrokenPipeError"),
        (http.client.IncompleteRead(b"2011", 12), True, Ambiguous, "IncompleteRead"),
        (http.client.BadStatusLine("<html>"), True, Ambiguous, "BadStatusLine"),
        (ValueError("odd"), True, Ambiguous, "ValueError"),
    ],
)
def test_transport_errors_are_classified(
    error: BaseException, sent: bool, expected: type, words: str
) -> None:
    result = classify_transport_error(error, sent=sent)
    assert type(result) is expected
    assert words in result.reason
    assert reason_zh(result.reason) != result.reason  # every reason has its Chinese
    assert "<html>" not in result.reason  # what the server sent is not a reason


@pytest.mark.parametrize(
    ("mobiles", "text"),
    [
        (["13800138000"], "hi"),
        (["15924188183", "13900210021"], "您好，您的验证码：1234&x=1 +%/?="),
        ([], "😀 emoji\nnew line"),
    ],
)
def test_the_send_form_is_urlencode_of_the_fields_in_order(mobiles, text) -> None:
    settings = GatewaySettings(
        url="http://127.0.0.1:9/msg", account="a&b", password="p w=%", product="1001", extno="12"
    )
    with GatewayClient(settings) as client:
        expected = urlencode(
            {
                "account": "a&b",
                "pswd": "p w=%",
                "mobile": ",".join(mobiles),
                "msg": text,
                "needstatus": "true",
                "product": "1001",
                "extno": "12",
            }
        ).encode("ascii")
        assert client.send_form(mobiles, text) == expected
