"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for the simulator's pushes.

Pushing reports is the simulator's hot path toward the receiver: one small request per
report. A general client (httpx) spends ~1-2 ms of CPU per request; this one writes the
request bytes and reads status, headers and a Content-Length or chunked body, ~10x less.
Plain `http://` only (the simulator pushes to local receivers); anything unusual in the
answer just closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlencode, urlsplit

_MAX_HEAD = 64 * 1024


class RawHttpPool:
    """Idle keep-alive connections per (host, port); callers bound the concurrency."""

    def __init__(self, timeout: float = 5.0) -> None:
        self._timeout = timeout
        self._idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
        self._idle = {}

    async def request(self, method: str, url: str, params: dict[str, str]) -> int:
        """Send one GET (query) or POST (form) request; the HTTP status, or 0 on failure."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path or "/"
        query = urlencode(params)
        if method.upper() == "POST":
            prefix = f"{path}?{parts.query}" if parts.query else path
            head = (
                f"POST {prefix} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(query)}\r\n\r\n{query}"
            )
        else:
            joined = f"{parts.query}&{query}" if parts.query else query
            head = f"GET {path}?{joined} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n"
        try:
            return await asyncio.wait_for(self._exchange(host, port, head.encode()), self._timeout)
        except Exception:  # any failure is a failed attempt; the pusher retries
            return 0

    async def _exchange(self, host: str, port: int, data: bytes) -> int:
        key = (host, port)
        idle = self._idle.setdefault(key, [])
        reused = bool(idle)
        reader, writer = idle.pop() if idle else await asyncio.open_connection(host, port)
        try:
            writer.write(data)
            status, keep = await _read_response(reader)
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            if not reused:
                raise
            # a stale keep-alive connection: once more on a fresh one
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(data)
            status, keep = await _read_response(reader)
        except BaseException:
            writer.close()
            raise
        if keep:
            idle.append((reader, writer))
        else:
            writer.close()
        return status

    async def close(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep-alive) after reading the whole response."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _MAX_HEAD:
        raise ValueError("response head too large")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    keep = version == "HTTP/1.1" and headers.get("connection") != "close"
    if "chunked" in headers.get("transfer-encoding", ""):
        await _read_chunked(reader)
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    else:
        await reader.read()  # body until the server closes
        keep = False
    return int(status), keep


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return
        await reader.readexactly(size + 2)
