"""The built-in gateway simulator: a real HTTP server on loopback speaking PROTOCOL.md.

    with Simulator(push_url="http://127.0.0.1:8080/dlr") as sim:
        settings = GatewaySettings(url=sim.url, account=sim.account, password=sim.password)
        ...                                   # send through GatewayClient(settings)
        sim.wait_reports_pushed()             # all delivery reports pushed
        sim.received()                        # every send request, as the simulator saw it

`Simulator` runs uvicorn (httptools; uvloop when installed) in a background thread on a
free port of 127.0.0.1 (or `port=`); `url` is the base URL (`http://127.0.0.1:PORT/msg`).
Rules, quotas, faults and the log are in `simcore.SimulatorCore` (inherited: `set_quota`,
`top_up`, `quota`, `inject_busy/too_fast/code/drop/delay/garbage`, `push_mo`,
`configure`, `received`, `wait_reports_pushed`); settings and TOML keys in `simconfig`.
`run_simulator()` serves in the foreground until Ctrl-C (the `campaign simulator` command).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from campaign.gateway.simconfig import (
    DEMO_ACCOUNT,
    DEMO_PASSWORD,
    DEMO_PRODUCT,
    SimAccount,
    SimulatorSettings,
    load_simulator_settings,
    make_settings,
)
from campaign.gateway.simcore import ReceivedRequest, SimulatorCore

__all__ = [
    "DEMO_ACCOUNT",
    "DEMO_PASSWORD",
    "DEMO_PRODUCT",
    "ReceivedRequest",
    "SimAccount",
    "Simulator",
    "SimulatorSettings",
    "load_simulator_settings",
    "run_simulator",
]

BASE_PATH = "/msg"
START_TIMEOUT = 10.0
_log = logging.getLogger(__name__)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency via uvicorn[standard]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Simulator(SimulatorCore):
    """The simulator served in a background thread; a context manager."""

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | str | None = None,
        **changes: Any,
    ) -> None:
        super().__init__(make_settings(settings, **changes), Path(log_path) if log_path else None)
        self._host = host
        self._port = port
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the simulator is not running")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT/msg (append /HttpBatchSendSM)."""
        return f"http://{self._host}:{self.port}{BASE_PATH}"

    @property
    def account(self) -> str:
        return self.settings.accounts[0].name

    @property
    def password(self) -> str:
        return self.settings.accounts[0].password

    def __repr__(self) -> str:
        where = self.url if self._sock is not None else "stopped"
        return f"Simulator({where}, account={self.account!r})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Simulator:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.open_log()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="gateway-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the simulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(START_TIMEOUT)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._server = None
        self.close_log()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = _new_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    async def _serve(self) -> None:
        assert self._sock is not None
        config = uvicorn.Config(
            self,
            http="httptools",
            loop="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        await self.pusher.start()
        try:
            serving = asyncio.create_task(self._server.serve(sockets=[self._sock]))
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.002)
            self._ready.set()
            await serving
        finally:
            await self.pusher.close()


def run_simulator(
    settings: SimulatorSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8090,
    log_path: Path | str | None = None,
    on_start: Callable[[Simulator], None] | None = None,
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():

        def _terminate(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, _terminate)
    sim = Simulator(settings, host=host, port=port, log_path=log_path)
    try:
        sim.start()
        if on_start is not None:
            on_start(sim)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
