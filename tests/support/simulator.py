"""Reusable test helpers around the gateway simulator.

    from tests.support.simulator import PushReceiver, running_simulator, gateway_settings

    with PushReceiver() as receiver, running_simulator(push_url=receiver.dlr_url) as sim:
        client = GatewayClient(gateway_settings(sim))
        ...
        sim.wait_reports_pushed()
        receiver.reports()            # list of dicts: msgid, mobile, status, reportTime, ...

`simulator_process(*args)` runs `campaign simulator` as a subprocess (`.url`, `.port`,
`.stop() -> stderr`), for tests that need a separate process (add `--log FILE` to read
what was sent).

Fixtures (import them into a test module, or list this module in `pytest_plugins`):
`simulator` (a running Simulator, no pushes, report_delay 0) and `push_receiver`.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from campaign.config import GatewaySettings
from campaign.gateway.simulator import Simulator


@contextmanager
def running_simulator(**changes: Any) -> Iterator[Simulator]:
    """A started Simulator (report_delay 0 unless given); stopped on exit."""
    changes.setdefault("report_delay", 0.0)
    with Simulator(**changes) as sim:
        yield sim


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def simulator_process(*args: str, start_timeout: float = 15.0) -> Iterator[SimulatorProcess]:
    """`campaign simulator --port P *args` as a subprocess; terminated (SIGTERM) on exit."""
    port = free_port()
    command = [sys.executable, "-m", "campaign", "simulator", "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    running = SimulatorProcess(f"http://127.0.0.1:{port}/msg", port, process)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the simulator process did not start") from None
                time.sleep(0.05)
        yield running
    finally:
        running.stop()


class SimulatorProcess:
    """A running `campaign simulator`; `stop()` returns its stderr."""

    def __init__(self, url: str, port: int, process: subprocess.Popen[bytes]) -> None:
        self.url, self.port, self.process = url, port, process
        self.stderr = ""

    def stop(self) -> str:
        if self.process.returncode is None:
            self.process.terminate()
            _, err = self.process.communicate(timeout=15)
            self.stderr = err.decode("utf-8", "replace")
        return self.stderr


def gateway_settings(sim: Simulator, **changes: Any) -> GatewaySettings:
    """GatewaySettings pointing at `sim` with its first account (timeout 5 s)."""
    base = GatewaySettings(url=sim.url, account=sim.account, password=sim.password, timeout=5.0)
    return replace(base, **changes)


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops concurrent connects for a second


class PushReceiver:
    """A tiny HTTP server on loopback recording every push (GET query or POST form).

    Answers 200 `OK`, except for the next N requests after `fail_next(n, status)`.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._requests: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def dlr_url(self) -> str:
        return f"{self.url}/dlr"

    @property
    def mo_url(self) -> str:
        return f"{self.url}/mo"

    def start(self) -> PushReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> PushReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def requests(self) -> list[dict[str, Any]]:
        """Every request: {"method", "path", "params", "status", "query", "body"}."""
        with self._lock:
            return list(self._requests)

    def reports(self) -> list[dict[str, str]]:
        """Parameters of the /dlr pushes answered 200."""
        return [r["params"] for r in self.requests() if r["path"] == "/dlr" and r["status"] == 200]

    def inbound(self) -> list[dict[str, str]]:
        """Parameters of the /mo pushes answered 200."""
        return [r["params"] for r in self.requests() if r["path"] == "/mo" and r["status"] == 200]

    def wait_for(self, count: int, timeout: float = 5.0, path: str = "/dlr") -> bool:
        """Wait until `count` pushes to `path` were answered 200."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._ok(path) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def _ok(self, path: str) -> int:
        return sum(1 for r in self._requests if r["path"] == path and r["status"] == 200)

    def _record(self, method: str, path: str, params: dict[str, str], query: str, body: str) -> int:
        with self._lock:
            status = self._failures.pop(0) if self._failures else 200
            self._requests.append(
                {
                    "method": method,
                    "path": path,
                    "params": params,
                    "status": status,
                    "query": query,
                    "body": body,
                }
            )
            self._lock.notify_all()
            return status

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 2.0
            disable_nagle_algorithm = True
            wbufsize = -1  # one write per response (flushed by handle_one_request)

            def do_GET(self) -> None:
                self._handle("")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._handle(self.rfile.read(length).decode("utf-8") if length else "")

            def _handle(self, body: str) -> None:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                params.update(parse_qsl(body, keep_blank_values=True))
                status = receiver._record(self.command, parts.path, params, parts.query, body)
                data = b"OK" if status == 200 else b"error"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def push_receiver() -> Iterator[PushReceiver]:
    with PushReceiver() as receiver:
        yield receiver


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with running_simulator() as sim:
        yield sim
