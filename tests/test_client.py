"""GatewayClient: answer parsing (responses) and the real simulator over loopback.

The `responses` tests mock requests, so their clients get a `requests.Session` (which
selects the requests transport); the real-simulator tests use the default client, the
http.client transport. tests/test_client_transport.py runs both against real servers.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import parse_qs

import pytest
import requests
import responses
from urllib3.exceptions import NewConnectionError, ProtocolError

from campaign.config import GatewaySettings
from campaign.gateway.client import (
    Accepted,
    Ambiguous,
    Balances,
    GatewayClient,
    NotSent,
    Refused,
    classify_exception,
    make_session,
)
from campaign.gateway.protocol import SUBMIT_CODES, Action
from campaign.gateway.simulator import Simulator
from tests.support.simulator import PushReceiver, gateway_settings, running_simulator

BASE = "http://gateway.test/msg"
SEND_URL = f"{BASE}/HttpBatchSendSM"
BALANCE_URL = f"{BASE}/QueryBalance"
SECRET = "Sd123456-secret"
MOBILE = "13800138000"


def make_client(**changes: object) -> GatewayClient:
    values: dict[str, object] = {"url": BASE, "account": "003547", "password": SECRET}
    values.update(changes)
    client = GatewayClient(GatewaySettings(**values), session=make_session())  # type: ignore[arg-type]
    assert client.transport == "requests"  # what `responses` mocks
    return client


# --------------------------------------------------------------------------- the request


@responses.activate
def test_the_form_is_posted_as_utf8_with_the_password_only_in_the_body() -> None:
    responses.post(SEND_URL, body="20110725160412,0\n1234567890100")
    client = make_client(product="1001", extno="12")
    result = client.send_batch(["15924188183", "13900210021"], "您好，您的验证码：1234&x=1")
    assert result == Accepted("1234567890100", "20110725160412")
    request = responses.calls[0].request
    assert request.method == "POST"
    assert request.url == SEND_URL
    assert SECRET not in request.url
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert int(request.headers["Content-Length"]) == len(request.body)
    form = parse_qs(request.body.decode("ascii"), keep_blank_values=True, encoding="utf-8")
    assert form == {
        "account": ["003547"],
        "pswd": [SECRET],
        "mobile": ["15924188183,13900210021"],
        "msg": ["您好，您的验证码：1234&x=1"],
        "needstatus": ["true"],
        "product": ["1001"],
        "extno": ["12"],
    }
    assert SECRET not in repr(client)
    client.close()


@responses.activate
def test_needstatus_false_and_empty_optional_fields_are_sent() -> None:
    responses.post(SEND_URL, body="20110725160412,0")
    client = make_client(needstatus=False)
    assert client.send_batch([MOBILE], "hi") == Accepted("", "20110725160412")
    form = parse_qs(responses.calls[0].request.body.decode(), keep_blank_values=True)
    assert form["needstatus"] == ["false"]
    assert form["product"] == [""] and form["extno"] == [""]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("code", sorted(set(SUBMIT_CODES) - {"0"}, key=int))
@responses.activate
def test_every_refusal_code_is_classified(code: str) -> None:
    responses.post(SEND_URL, body=f"20110725160412,{code}")
    result = make_client().send_batch([MOBILE], "hi")
    assert isinstance(result, Refused)
    assert result.code == code
    assert result.info == SUBMIT_CODES[code]


@pytest.mark.parametrize("code", ["121", "999"])
@responses.activate
def test_unknown_codes_are_refusals_never_success(code: str) -> None:
    responses.post(SEND_URL, body=f"20110725160412,{code}")
    result = make_client().send_batch([MOBILE], "hi")
    assert isinstance(result, Refused)
    assert result.action is Action.UNKNOWN_CODE
    assert result.code == code


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (500, "Internal Server Error", "text/plain"),
        (502, "<html><head><title>502 Bad Gateway</title></head></html>", "text/html"),
        (200, "<html><body>maintenance</body></html>", "text/html"),
        (200, "", "text/plain"),
        (200, "20110725160412", "text/plain"),
        (200, "20110725160412,OK\n1", "text/plain"),
        (200, "20110725160412,0", "text/plain"),  # needstatus=true but no msgid
        (200, "20110725160412,0\n1234\ngarbage", "text/plain"),
    ],
)
@responses.activate
def test_malformed_answers_are_ambiguous(status: int, body: str, content_type: str) -> None:
    responses.post(SEND_URL, body=body, status=status, content_type=content_type)
    result = make_client().send_batch([MOBILE], "hi")
    assert isinstance(result, Ambiguous), result
    assert SECRET not in result.reason


@responses.activate
def test_gbk_or_binary_garbage_does_not_raise() -> None:
    responses.post(SEND_URL, body="系统错误".encode("gbk"))
    assert isinstance(make_client().send_batch([MOBILE], "hi"), Ambiguous)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (requests.ConnectTimeout("connect timed out"), NotSent),
        (
            requests.ConnectionError(
                NewConnectionError(None, "Failed to establish a new connection: refused")  # type: ignore[arg-type]
            ),
            NotSent,
        ),
        (requests.exceptions.InvalidURL("bad"), NotSent),
        (requests.ReadTimeout("read timed out"), Ambiguous),
        (
            requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())),
            Ambiguous,
        ),
        (requests.exceptions.ChunkedEncodingError("broken"), Ambiguous),
        (RuntimeError("anything else"), Ambiguous),
    ],
)
@responses.activate
def test_transport_failures(error: Exception, expected: type) -> None:
    responses.post(SEND_URL, body=error)
    result = make_client().send_batch([MOBILE], "hi")
    assert isinstance(result, expected), result
    assert classify_exception(error) == result


@responses.activate
def test_balance_parsing() -> None:
    responses.post(BALANCE_URL, body="20130303180000,0\n1234567,1000\n1234531,2000")
    result = make_client().query_balance()
    assert result == Balances({"1234567": 1000, "1234531": 2000}, "20130303180000")
    form = parse_qs(responses.calls[0].request.body.decode())
    assert form == {"account": ["003547"], "pswd": [SECRET]}


# --------------------------------------------------------------------------- real simulator


@pytest.fixture
def sim() -> Simulator:
    with running_simulator() as simulator:
        yield simulator


@pytest.fixture
def client(sim: Simulator) -> GatewayClient:
    with GatewayClient(gateway_settings(sim)) as gateway_client:
        yield gateway_client


def test_accepted_by_the_simulator(sim: Simulator, client: GatewayClient) -> None:
    first = client.send_batch([MOBILE, "13900210021"], "您好")
    second = client.send_batch([MOBILE], "您好")
    assert isinstance(first, Accepted) and isinstance(second, Accepted)
    assert first.msgid.isdigit() and int(second.msgid) > int(first.msgid)
    assert len(first.response_time) == 14
    log = sim.received()
    assert [r.mobiles for r in log] == [(MOBILE, "13900210021"), (MOBILE,)]
    assert log[0].msgid == first.msgid and log[0].product == "1001" and log[0].code == "0"


@pytest.mark.parametrize(
    ("code", "changes", "mobiles", "text", "sim_changes"),
    [
        ("101", {"account": "nobody"}, [MOBILE], "hi", {}),
        ("102", {"password": "wrong-password"}, [MOBILE], "hi", {}),
        ("105", {}, [MOBILE], "这是赌博广告", {"sensitive_words": ["赌博"]}),
        ("106", {}, [MOBILE], "x" * 537, {}),
        ("106", {}, [MOBILE], "", {}),
        ("107", {}, [MOBILE, "12345"], "hi", {}),
        ("107", {}, ["23800138000"], "hi", {}),
        ("107", {}, ["1３800138000"], "hi", {}),
        ("108", {}, [], "hi", {}),
        ("108", {}, [MOBILE] * 4, "hi", {"max_mobiles": 3}),
        (
            "108",
            {},
            [MOBILE],
            "hi",
            {"accounts": [{"name": "demo", "password": "demo-secret", "min_batch": 2}]},
        ),
        ("110", {}, [MOBILE], "hi", {"send_window": "00:00-00:00"}),
        ("112", {"product": "9999"}, [MOBILE], "hi", {}),
        ("113", {"extno": "12a"}, [MOBILE], "hi", {}),
        ("113", {"extno": "1234567"}, [MOBILE], "hi", {}),
        (
            "116",
            {},
            [MOBILE],
            "no signature",
            {"accounts": [{"name": "demo", "password": "demo-secret", "require_signature": True}]},
        ),
        (
            "117",
            {},
            [MOBILE],
            "hi",
            {
                "accounts": [
                    {"name": "demo", "password": "demo-secret", "allowed_ips": ["10.9.9.9"]}
                ]
            },
        ),
        (
            "119",
            {},
            [MOBILE],
            "hi",
            {"accounts": [{"name": "demo", "password": "demo-secret", "expired": True}]},
        ),
    ],
)
def test_simulator_rules(
    code: str, changes: dict, mobiles: list[str], text: str, sim_changes: dict
) -> None:
    with running_simulator(**sim_changes) as simulator:
        with GatewayClient(gateway_settings(simulator, **changes)) as gateway_client:
            result = gateway_client.send_batch(mobiles, text)
        assert isinstance(result, Refused), result
        assert result.code == code
        assert simulator.received()[-1].code == code
        assert simulator.quota("1001") == 10_000_000


def test_signature_and_extno_that_pass() -> None:
    accounts = [{"name": "demo", "password": "demo-secret", "require_signature": True}]
    with (
        running_simulator(accounts=accounts) as simulator,
        GatewayClient(gateway_settings(simulator, extno="123")) as gateway_client,
    ):
        assert isinstance(gateway_client.send_batch([MOBILE], "【品牌】您好"), Accepted)
        assert isinstance(gateway_client.send_batch([MOBILE], "【】您好"), Refused)


def test_rate_limit_gives_103(sim: Simulator, client: GatewayClient) -> None:
    sim.configure(rate_limit=3)
    codes = [getattr(client.send_batch([MOBILE], "hi"), "code", "?") for _ in range(8)]
    assert "103" in codes
    assert codes[0] == "0"


def test_quota_is_deducted_by_segments_times_mobiles(sim: Simulator, client: GatewayClient) -> None:
    sim.set_quota("1001", 10)
    long_text = "长" * 140  # 140 units -> 3 parts of 67
    assert isinstance(client.send_batch([MOBILE, "13900210021"], long_text), Accepted)
    assert sim.quota("1001") == 4
    assert sim.received()[-1].segments == 3
    emoji = "😀" * 35  # 70 UTF-16 units: one part
    assert isinstance(client.send_batch([MOBILE] * 4, emoji), Accepted)
    assert sim.quota("1001") == 0
    refused = client.send_batch([MOBILE], "hi")
    assert isinstance(refused, Refused) and refused.code == "109"
    assert refused.action is Action.STOP_RUN
    sim.top_up("1001", 1)
    assert isinstance(client.send_batch([MOBILE], "hi"), Accepted)


def test_busy_burst_then_accepted(sim: Simulator, client: GatewayClient) -> None:
    sim.inject_busy(3)
    results = [client.send_batch([MOBILE], "hi") for _ in range(4)]
    assert [getattr(r, "code", "") for r in results] == ["104", "104", "104", "0"]
    assert results[0].action is Action.RETRY_LATER  # type: ignore[union-attr]
    sim.inject_too_fast(1)
    sim.inject_code("121", 1)
    assert client.send_batch([MOBILE], "hi").code == "103"  # type: ignore[union-attr]
    unknown = client.send_batch([MOBILE], "hi")
    assert isinstance(unknown, Refused) and unknown.action is Action.UNKNOWN_CODE


def test_dropped_connection_is_ambiguous_but_was_sent(
    sim: Simulator, client: GatewayClient
) -> None:
    sim.inject_drop(1)
    result = client.send_batch([MOBILE, "13900210021"], "hi")
    assert isinstance(result, Ambiguous), result
    taken = sim.received()[-1]
    assert taken.code == "0" and taken.fault == "drop" and taken.msgid
    assert sim.quota("1001") == 10_000_000 - 2
    assert isinstance(client.send_batch([MOBILE], "hi"), Accepted)  # the client recovers


def test_delay_past_the_timeout_is_ambiguous(sim: Simulator) -> None:
    sim.inject_delay(1, seconds=0.6)
    with GatewayClient(gateway_settings(sim, timeout=0.15)) as gateway_client:
        result = gateway_client.send_batch([MOBILE], "hi")
    assert isinstance(result, Ambiguous), result
    assert "timeout" in result.reason
    assert sim.received()[-1].sent


def test_garbage_answer_is_ambiguous(sim: Simulator, client: GatewayClient) -> None:
    sim.inject_garbage(1)
    result = client.send_batch([MOBILE], "hi")
    assert isinstance(result, Ambiguous)
    assert "502" in result.reason and "HTML" in result.reason
    assert sim.received()[-1].fault == "garbage"


def test_closed_port_is_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = GatewaySettings(url=f"http://127.0.0.1:{port}/msg", account="a", password=SECRET)
    with GatewayClient(settings) as gateway_client:
        result = gateway_client.send_batch([MOBILE], "hi")
        assert isinstance(result, NotSent), result
        assert "refused" in result.reason.lower()
        assert isinstance(gateway_client.query_balance(), NotSent)


def test_dns_failure_is_not_sent() -> None:
    settings = GatewaySettings(url="http://gateway.invalid/msg", account="a", password=SECRET)
    with GatewayClient(settings) as gateway_client:
        result = gateway_client.send_batch([MOBILE], "hi")
    assert isinstance(result, NotSent), result
    assert SECRET not in result.reason


def test_password_never_in_the_url() -> None:
    with PushReceiver() as fake_gateway:
        settings = GatewaySettings(url=fake_gateway.url + "/msg", account="a", password=SECRET)
        with GatewayClient(settings) as gateway_client:
            gateway_client.send_batch([MOBILE], "hi")
            gateway_client.query_balance()
        seen = fake_gateway.requests()
    assert [r["path"] for r in seen] == ["/msg/HttpBatchSendSM", "/msg/QueryBalance"]
    assert all(r["method"] == "POST" and r["query"] == "" for r in seen)
    assert all(SECRET not in r["path"] for r in seen)
    assert all(r["params"]["pswd"] == SECRET for r in seen)


def test_balance_from_the_simulator(sim: Simulator, client: GatewayClient) -> None:
    sim.configure(
        accounts=[{"name": "demo", "password": "demo-secret", "products": {"1001": 500, "2002": 7}}]
    )
    sim.set_quota("1001", 500)
    assert client.query_balance() == Balances(
        {"1001": 500, "2002": 7},
        client.query_balance().response_time,  # type: ignore[union-attr]
    )
    with GatewayClient(gateway_settings(sim, password="nope")) as wrong:
        refused = wrong.query_balance()
    assert isinstance(refused, Refused) and refused.code == "102"


def test_balance_query_rate_limit(sim: Simulator, client: GatewayClient) -> None:
    sim.configure(balance_interval=10)
    assert isinstance(client.query_balance(), Balances)
    too_fast = client.query_balance()
    assert isinstance(too_fast, Refused) and too_fast.code == "103"
    assert "10 s" in too_fast.info.en


def test_one_client_shared_by_threads(sim: Simulator, client: GatewayClient) -> None:
    msgids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            result = client.send_batch([MOBILE], "hi")
            assert isinstance(result, Accepted)
            with lock:
                msgids.append(result.msgid)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(msgids)) == 200
    assert len(sim.received()) == 200


def _tls_error(inner: BaseException) -> requests.exceptions.SSLError:
    """As requests raises it: SSLError(MaxRetryError(reason=urllib3 SSLError(ssl error)))."""
    from urllib3.exceptions import MaxRetryError
    from urllib3.exceptions import SSLError as Urllib3SSLError

    wrapped = Urllib3SSLError(inner)
    return requests.exceptions.SSLError(MaxRetryError(None, "/", wrapped))  # type: ignore[arg-type]


def test_a_tls_error_after_the_request_left_is_ambiguous_not_retried() -> None:
    """urllib3 wraps every ssl error as SSLError, also an EOF while reading the answer."""
    import ssl

    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    assert isinstance(classify_exception(_tls_error(eof)), Ambiguous)
    assert isinstance(
        classify_exception(_tls_error(ssl.SSLZeroReturnError(6, "closed"))), Ambiguous
    )


def test_a_failed_tls_handshake_is_not_sent() -> None:
    import ssl

    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert isinstance(classify_exception(_tls_error(verify)), NotSent)
    version = ssl.SSLError(1, "wrong version number")
    version.reason = "WRONG_VERSION_NUMBER"  # type: ignore[misc]
    assert isinstance(classify_exception(_tls_error(version)), NotSent)
