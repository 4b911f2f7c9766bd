"""Gateway benchmark: what the client sustains against the simulator on loopback.

    .venv/bin/python bench/bench_gateway.py [--seconds 3] [--threads 8] [--reports 5000]

The simulator runs as a separate process (`campaign simulator`), like a remote gateway.
Figures (one-mobile batches, all accepted):

* baseline: a plain single-threaded `requests.post` loop (no session, a new connection each);
* GatewayClient, one thread (one keep-alive connection);
* GatewayClient shared by N threads (the sender's thread pool);
* the simulator's own ceiling: raw keep-alive HTTP/1.1 loops on asyncio sockets;
* report pushes per second from the simulator to a minimal receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from campaign.config import GatewaySettings  # noqa: E402
from campaign.gateway.client import Accepted, GatewayClient  # noqa: E402

MOBILE = "13800138000"
FORM = {
    "account": "demo",
    "pswd": "demo-secret",
    "mobile": MOBILE,
    "msg": "您好",
    "needstatus": "true",
    "product": "",
    "extno": "",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def simulator_process(*extra: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "campaign", "simulator", "--port", str(port), *extra]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/msg"
    finally:
        process.terminate()
        process.wait(15)


def timed_loop(seconds: float, step: Callable[[], bool]) -> tuple[int, float]:
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        if step():
            done += 1
    return done, time.perf_counter() - start


def bench_baseline(url: str, seconds: float) -> float:
    def step() -> bool:
        response = requests.post(f"{url}/HttpBatchSendSM", data=FORM, timeout=(5, 30))
        return response.status_code == 200 and response.text.split("\n")[0].endswith(",0")

    done, elapsed = timed_loop(seconds, step)
    return done / elapsed


def bench_client(url: str, seconds: float, threads: int) -> float:
    settings = GatewaySettings(url=url, account="demo", password="demo-secret")
    counts = [0] * threads
    elapsed = [0.0] * threads
    with GatewayClient(settings) as client:

        def worker(index: int) -> None:
            def step() -> bool:
                return isinstance(client.send_batch([MOBILE], "您好"), Accepted)

            counts[index], elapsed[index] = timed_loop(seconds, step)

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    return sum(counts) / max(elapsed)


async def _raw_connection(port: int, request: bytes, deadline: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            done += body[15:16] == b"0"
    finally:
        writer.close()
        await writer.wait_closed()
    return done


def bench_ceiling(url: str, seconds: float, connections: int) -> float:
    port = int(url.split(":")[2].split("/")[0])
    body = "&".join(f"{k}={v}" for k, v in FORM.items() if k != "msg") + "&msg=hello"
    request = (
        f"POST /msg/HttpBatchSendSM HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        f"{body}"
    ).encode()

    async def run() -> float:
        start = time.perf_counter()
        deadline = start + seconds
        counts = await asyncio.gather(
            *(_raw_connection(port, request, deadline) for _ in range(connections))
        )
        return sum(counts) / (time.perf_counter() - start)

    import uvloop

    return uvloop.run(run())


class CountingReceiver:
    """A minimal ASGI receiver answering OK, counting requests, in a thread."""

    def __init__(self) -> None:
        self.count = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            http="httptools",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/dlr"

    async def _app(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        await receive()
        query = scope["query_string"]
        self.count += query.count(b"%7C%7C") + 1 if b"report=" in query else 1
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"OK"})

    def __enter__(self) -> CountingReceiver:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def bench_pushes(reports: int, batch: int, folder: Path) -> float:
    config = folder / f"sim-batch-{batch}.toml"
    config.write_text(f"push_batch = {batch}\nreport_delay = 0\n", encoding="utf-8")
    with (
        CountingReceiver() as receiver,
        simulator_process("--push-url", receiver.url, "--config", str(config)) as url,
    ):
        settings = GatewaySettings(url=url, account="demo", password="demo-secret")
        mobiles = [f"138{n:08d}" for n in range(reports)]
        with GatewayClient(settings) as client:
            start = time.perf_counter()
            assert isinstance(client.send_batch(mobiles, "hi"), Accepted)
        deadline = start + 60
        while receiver.count < reports and time.perf_counter() < deadline:
            time.sleep(0.005)
        return receiver.count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--reports", type=int, default=5000)
    args = parser.parse_args()
    with simulator_process() as url:
        # warm up (imports, first connections)
        bench_client(url, 0.3, 1)
        baseline = bench_baseline(url, args.seconds)
        single = bench_client(url, args.seconds, 1)
        pooled = bench_client(url, args.seconds, args.threads)
        ceiling = bench_ceiling(url, args.seconds, 16)
    with tempfile.TemporaryDirectory() as folder:
        pushes = bench_pushes(args.reports, 1, Path(folder))
        batched = bench_pushes(args.reports * 10, 100, Path(folder))
    rows = [
        ("baseline: requests.post loop, new connection each", baseline, "req/s"),
        ("GatewayClient, 1 thread (keep-alive)", single, "req/s"),
        (f"GatewayClient shared by {args.threads} threads", pooled, "req/s"),
        ("simulator ceiling: raw keep-alive, 16 connections", ceiling, "req/s"),
        (f"report pushes, one per request ({args.reports})", pushes, "reports/s"),
        (f"report pushes, report= form x100 ({args.reports * 10})", batched, "reports/s"),
    ]
    for label, value, unit in rows:
        ratio = (
            f"  ({value / baseline:.1f}x baseline)" if unit == "req/s" and value != baseline else ""
        )
        print(f"{label:<52} {value:8.0f} {unit}{ratio}")


if __name__ == "__main__":
    main()
