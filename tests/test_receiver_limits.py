"""Hostile pushers: huge or slow headers, idle sockets, big and broken batches, NUL bytes.

Real sockets against a real receiver (`campaign serve` in a subprocess where its memory is
measured, else `Receiver` in a thread) on real SQLite files and the real PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import ReceiverSettings, Settings, load_settings
from campaign.errors import ConfigError
from campaign.receiver import Receiver, check_exposure
from campaign.store import open_store
from campaign.store.schema import inbound_parts, reports

_LISTENING = re.compile(r"receiving on (http://[\d.]+:\d+)")
DLR = {"msgid": "1234567890100", "reportTime": "2611251002", "mobile": "13900210021"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _settings(url: str, **receiver: object) -> Settings:
    return Settings(store_url=url, receiver=replace(ReceiverSettings(), **receiver))


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _stored_reports(url: str) -> int:
    engine = open_store(url)
    try:
        return _count(engine, reports)
    finally:
        engine.dispose()


def _batch(count: int, start: int = 0) -> str:
    return "||".join(
        f"{start + i},2611251002,139{(start + i) % 100_000_000:08d},DELIVRD" for i in range(count)
    )


@pytest.fixture(autouse=True, scope="module")
def _enough_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))


# ------------------------------------------------------------------ connection limits


@contextmanager
def serve_process(tmp_path: Path, *args: str, **receiver: object) -> Iterator[tuple[int, str]]:
    """`campaign serve --port 0` with these [receiver] keys; yields its pid and base URL."""
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in receiver.items()]
    config = tmp_path / "campaign.toml"
    config.write_text("[receiver]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'campaign.db'}"}
    command = [sys.executable, "-m", "campaign", "serve", "--port", "0", "--config", str(config)]
    process = subprocess.Popen(
        [*command, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    try:
        assert process.stderr is not None
        url, seen = None, []
        while url is None and (line := process.stderr.readline()):
            seen.append(line)
            if match := _LISTENING.search(line):
                url = match.group(1)
        assert url, f"campaign serve did not start: {''.join(seen)}"
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield process.pid, url
    finally:
        process.kill()
        process.wait(10)
        if process.stderr:
            process.stderr.close()


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def _endless_header(host: str, port: int, sent: list[int]) -> None:
    """Sends a header that never ends (up to 50 MB) until the server cuts it off."""
    total = 0
    chunk = b"a" * 65536
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(b"GET /dlr HTTP/1.1\r\nHost: x\r\nX-Long: ")
            while total < 50_000_000:
                sock.sendall(chunk)
                total += len(chunk)
    except TimeoutError:
        total = -1  # the server stopped reading but kept the socket: not cut off
    except OSError:
        pass  # reset or closed by the server
    sent.append(total)


def _half_requests(host: str, port: int, count: int, stack: ExitStack) -> list[socket.socket]:
    opened = []
    for n in range(count):
        sock = stack.enter_context(socket.create_connection((host, port), timeout=10))
        sock.sendall(f"GET /dlr?msgid={n} HTTP/1.1\r\nHost: x\r\n".encode())  # never ends
        opened.append(sock)
    return opened


def _push_many(url: str, first: int, count: int) -> list[int]:
    with httpx.Client(timeout=10) as client:
        return [
            client.get(
                f"{url}/dlr", params={**DLR, "msgid": str(n), "status": "DELIVRD"}
            ).status_code
            for n in range(first, first + count)
        ]


def test_huge_headers_and_idle_half_requests_do_not_stop_pushes(tmp_path):
    limits = {"max_connections": 500, "header_timeout": 2.0, "max_header_bytes": 16384}
    with serve_process(tmp_path, **limits) as (pid, url), ExitStack() as stack:
        host, port = url.removeprefix("http://").split(":")
        sent: list[int] = []
        hogs = [
            threading.Thread(target=_endless_header, args=(host, int(port), sent)) for _ in range(8)
        ]
        for hog in hogs:
            hog.start()
        idle = _half_requests(host, int(port), 2000, stack)
        started = time.monotonic()
        answers = _push_many(url, 1, 100)
        for hog in hogs:
            hog.join(20)
        took = time.monotonic() - started
        rss = _rss_mb(pid)
        cut = sum(1 for sock in idle if _closed_within(sock, 0.01))
    assert answers == [200] * 100
    assert took < 15
    assert len(sent) == 8 and min(sent) >= 0 and max(sent) < 16_000_000  # cut off, not 50 MB
    assert rss < 300, f"the receiver grew to {rss:.0f} MB"
    assert cut >= 1500  # over max_connections the oldest idle ones were closed
    assert _stored_reports(f"sqlite:///{tmp_path / 'campaign.db'}") == 100


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closed the socket (an answer, if any, then end of stream)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_idle_and_slow_connections_are_closed_after_their_timeouts(sqlite_url):
    settings = _settings(sqlite_url, header_timeout=0.5, idle_timeout=0.5)
    with Receiver(settings) as rx, ExitStack() as stack:
        address = (rx.host, rx.port)
        silent = stack.enter_context(socket.create_connection(address))
        slow = stack.enter_context(socket.create_connection(address))
        slow.sendall(b"GET /dlr?msgid=1 HTTP/1.1\r\nHost: x\r\n")
        kept = stack.enter_context(socket.create_connection(address))
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert all(_closed_within(sock, 3) for sock in (silent, slow, kept))
        assert time.monotonic() - started < 2.5
        slow_body = stack.enter_context(socket.create_connection(address))
        slow_body.sendall(b"POST /dlr HTTP/1.1\r\nHost: x\r\ncontent-length: 100\r\n\r\nmsg")
        assert slow_body.recv(4096).startswith(b"HTTP/1.1 408")
        assert _count(rx.engine, reports) == 0


def test_over_max_connections_the_oldest_idle_one_is_closed(sqlite_url):
    with Receiver(_settings(sqlite_url, max_connections=20)) as rx, ExitStack() as stack:
        idle = [
            stack.enter_context(socket.create_connection((rx.host, rx.port))) for _ in range(30)
        ]
        assert _push_many(rx.url, 1, 5) == [200] * 5
        closed = [_closed_within(sock, 0.02) for sock in idle]
    assert closed[:10] == [True] * 10  # the oldest
    assert not any(closed[-10:])  # the newest idle ones are still open


def test_serve_on_a_public_address_needs_credentials_or_insecure(tmp_path, sqlite_url):
    public = ["serve", "--host", "0.0.0.0", "--port", "0", "--db", sqlite_url]
    result = CliRunner().invoke(app, public)
    assert result.exit_code == 3
    assert "without push credentials" in result.output
    assert "--insecure" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with serve_process(tmp_path, "--host", "0.0.0.0", "--insecure") as (_pid, url):
        assert httpx.get(f"{url}/healthz").text == "OK"


@pytest.mark.parametrize(
    ("host", "receiver", "allowed"),
    [
        ("127.0.0.1", {}, True),
        ("127.0.0.2", {}, True),
        ("::1", {}, True),
        ("localhost", {}, True),
        ("0.0.0.0", {}, False),
        ("", {}, False),
        ("::", {}, False),
        ("sms.example.com", {}, False),
        ("0.0.0.0", {"pswd": "s3"}, True),
        ("0.0.0.0", {"receiver": "gw"}, True),
    ],
)
def test_which_addresses_need_credentials(host, receiver, allowed):
    settings = replace(ReceiverSettings(), **receiver)
    if allowed:
        check_exposure(host, settings)
    else:
        with pytest.raises(ConfigError, match="without push credentials"):
            check_exposure(host, settings)
        check_exposure(host, settings, insecure=True)


@pytest.mark.parametrize("key", ["max_body_bytes", "header_timeout", "max_connections"])
def test_receiver_limits_must_be_positive(tmp_path, key):
    config = tmp_path / "campaign.toml"
    config.write_text(f"[receiver]\n{key} = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"receiver.{key} must be more than 0"):
        load_settings(config, env={})
    config.write_text(f"[receiver]\n{key} = 3\n", encoding="utf-8")
    assert getattr(load_settings(config, env={}).receiver, key) == 3


# ------------------------------------------------------------------ batches and NUL


def test_a_batch_of_10000_reports_is_stored_whole(store_url):
    with Receiver(_settings(store_url)) as rx:
        answer = httpx.post(rx.dlr_url, content="report=" + _batch(10_000), headers=FORM)
        assert (answer.status_code, answer.text) == (200, "OK")
        assert _count(rx.engine, reports) == 10_000


def test_a_batch_of_50000_reports_is_stored_whole_and_fast(sqlite_url):
    body = "report=" + _batch(50_000)
    assert len(body) < ReceiverSettings().max_body_bytes
    with Receiver(_settings(sqlite_url)) as rx:
        started = time.monotonic()
        answer = httpx.post(rx.dlr_url, content=body, headers=FORM, timeout=30)
        took = time.monotonic() - started
        assert (answer.status_code, answer.text) == (200, "OK")
        assert _count(rx.engine, reports) == 50_000
    assert took < 5


def test_a_batch_with_bad_items_stores_the_others_and_counts_them(store_url, caplog):
    items = [*_batch(3).split("||"), "x,2611251002,13900210021,DELIVRD", "5,2611251002,139"]
    with (
        caplog.at_level(logging.WARNING, logger="campaign.receiver"),
        Receiver(_settings(store_url)) as rx,
    ):
        answer = httpx.get(rx.dlr_url, params={"report": "||".join(items)})
        assert (answer.status_code, answer.text) == (200, "OK")
        assert _count(rx.engine, reports) == 3
        assert rx.app.malformed_reports == 2
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "stored 3 report(s), left out 2 malformed" in logged
    assert "#4: msgid is not a number" in logged and "#5 needs 4 fields" in logged


@pytest.mark.parametrize("field", ["status", "msgid", "mobile", "reportTime"])
def test_a_control_character_in_a_single_push_is_400(store_url, field):
    with Receiver(_settings(store_url)) as rx:
        for bad in ("\x00", "\x1b", "\n"):
            params = {**DLR, "status": "DELIVRD"}
            params[field] = params[field][:4] + bad + params[field][4:]
            answer = httpx.get(rx.dlr_url, params=params)
            assert answer.status_code == 400, (field, bad)
        assert httpx.get(rx.dlr_url, params={**DLR, "status": "DELIVRD"}).status_code == 200
        assert _count(rx.engine, reports) == 1


def test_nul_in_a_batch_loses_only_its_own_item(store_url):
    batch = _batch(3) + "||9,2611251002,13900210029,DELIV%00RD||" + _batch(2, start=10)
    with Receiver(_settings(store_url)) as rx:
        answer = httpx.post(rx.dlr_url, content="report=" + batch, headers=FORM)
        assert (answer.status_code, answer.text) == (200, "OK")
        with rx.engine.connect() as conn:
            msgids = set(conn.execute(sa.select(reports.c.msgid)).scalars())
        assert rx.app.malformed_reports == 1
    assert msgids == {"0", "1", "2", "10", "11"}


def test_nul_in_a_reply_is_400_but_line_breaks_are_kept(store_url):
    mo = {"moTime": "2611251002", "mobile": "13900210021", "destcode": "106"}
    with Receiver(_settings(store_url)) as rx:
        for bad in ({"msg": "T\x00D"}, {"msg": "hi\x07"}, {"msg": "ok", "destcode": "10\x006"}):
            assert httpx.post(rx.mo_url, data={**mo, **bad}).status_code == 400
        assert httpx.post(rx.mo_url, data={**mo, "msg": "line one\r\nline\ttwo"}).status_code == 200
        assert _count(rx.engine, inbound_parts) == 1
