"""`OK` means stored: a `campaign serve` process killed mid-stream loses no acknowledged push."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import sqlalchemy as sa

from campaign.config import Settings
from campaign.receiver import Receiver
from campaign.store import open_store
from campaign.store.schema import reports

_LISTENING = re.compile(r"receiving on (http://[\d.]+:\d+)")


@contextmanager
def serve_process(db: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`campaign serve --port 0` in a subprocess; yields it and its base URL."""
    env = {**os.environ, "CAMPAIGN_DB": db}
    env.pop("CAMPAIGN_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            if match := _LISTENING.search(line):
                url = match.group(1)
        assert url, f"campaign serve did not start (exit {process.poll()})"
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe open
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stderr:
            process.stderr.close()


def _stored_msgids(db: str) -> set[str]:
    engine = open_store(db)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(reports.c.msgid)).scalars())
    finally:
        engine.dispose()


def _pusher(url: str, worker: int, acked: list[str], stop: threading.Event) -> None:
    with httpx.Client(timeout=5) as client:
        for i in range(100_000):
            if stop.is_set():
                return
            msgid = f"{worker}{i:06d}"
            params = {"msgid": msgid, "reportTime": "2611251002", "mobile": "13900210021",
                      "status": "DELIVRD"}  # fmt: skip
            try:
                answer = client.get(f"{url}/dlr", params=params)
            except httpx.HTTPError:
                return  # the server is gone
            if answer.status_code == 200:
                acked.append(msgid)


def test_sigkill_mid_stream_loses_no_acknowledged_push(store_url):
    acked: list[str] = []
    stop = threading.Event()
    with serve_process(store_url) as (process, url):
        threads = [
            threading.Thread(target=_pusher, args=(url, w, acked, stop)) for w in range(1, 7)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 15
        while len(acked) < 1500 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # mid-stream: pushes are in flight
        process.wait(10)
        for thread in threads:
            thread.join(10)
        stop.set()
    assert len(acked) >= 100  # 1500 unless the machine is very busy
    stored = _stored_msgids(store_url)
    assert set(acked) <= stored
    # a restarted receiver on the same store carries on
    with serve_process(store_url) as (_process, url):
        params = {"msgid": "42", "reportTime": "2611251002", "mobile": "13900210021",
                  "status": "DELIVRD"}  # fmt: skip
        assert httpx.get(f"{url}/dlr", params=params).text == "OK"
        assert httpx.get(f"{url}/healthz").status_code == 200
    assert "42" in _stored_msgids(store_url)


def test_sigterm_stops_cleanly(sqlite_url):
    with serve_process(sqlite_url) as (process, url):
        params = {"msgid": "7", "reportTime": "2611251002", "mobile": "13900210021",
                  "status": "DELIVRD"}  # fmt: skip
        assert httpx.get(f"{url}/dlr", params=params).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    assert _stored_msgids(sqlite_url) == {"7"}


def test_port_in_use_is_a_clear_error(sqlite_url):
    from typer.testing import CliRunner

    from campaign.cli import app

    with Receiver(Settings(store_url=sqlite_url)) as rx:
        result = CliRunner().invoke(
            app, ["serve", "--port", str(rx.port), "--host", rx.host, "--db", sqlite_url]
        )
    assert result.exit_code == 3
    assert "cannot listen" in result.output


@pytest.mark.postgres
def test_two_receivers_on_one_postgres_store_store_each_report_once(pg_url):
    settings = Settings(store_url=pg_url)
    with Receiver(settings) as one, Receiver(settings) as two:

        def push(url: str) -> None:
            with httpx.Client() as client:
                for i in range(150):
                    params = {"msgid": str(1000 + i), "reportTime": "2611251002",
                              "mobile": "13900210021", "status": "DELIVRD"}  # fmt: skip
                    assert client.get(url, params=params).status_code == 200

        threads = [threading.Thread(target=push, args=(rx.dlr_url,)) for rx in (one, two, one)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert _stored_msgids(pg_url) == {str(1000 + i) for i in range(150)}
