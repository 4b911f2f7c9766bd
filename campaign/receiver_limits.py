"""Connection limits of the receiver, on top of uvicorn's httptools protocol.

httptools buffers a request line and headers without any bound and waits for them
forever, and uvicorn arms no timer before a connection's first request: a few clients
sending a never-ending header, or thousands sending half a request, would take the memory
or the sockets of the receiver. `GuardedHttpToolsProtocol` adds, per connection:

- a cap on the bytes of a request line + headers (431, then closed);
- a header-read timeout, from the connection's opening or a request's first byte to its
  last header (408, then closed);
- a cap on open connections: over it, the oldest connection that is not in the middle of
  a push (idle, or still sending its headers) is closed, so a flood of idle or slow
  clients cannot lock real pushes out.

The idle (keep-alive) timeout between requests is uvicorn's own `timeout_keep_alive`.
h11 has a header cap, but answered 3-4x fewer pushes a second here
(docs/performance-notes.md, Receiving reports).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("campaign.receiver")


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    header_timeout: float  # seconds
    max_connections: int


@dataclass
class _OpenConnections:
    """The connections of one server, oldest first."""

    limits: ConnectionLimits
    open: dict[GuardedHttpToolsProtocol, None] = field(default_factory=dict)
    evicted: int = 0

    def admit(self, newcomer: GuardedHttpToolsProtocol) -> None:
        self.open[newcomer] = None
        if len(self.open) <= self.limits.max_connections:
            return
        victim = next((c for c in self.open if c is not newcomer and c.evictable()), newcomer)
        self.open.pop(victim)  # closing: no longer counted, never picked twice
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning(
                "over %d connections: closed the oldest idle one (%d so far)",
                self.limits.max_connections,
                self.evicted,
            )
        victim.refuse(503, b"Service Unavailable")

    def forget(self, connection: GuardedHttpToolsProtocol) -> None:
        self.open.pop(connection, None)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; see `guarded_protocol`.

    Nothing is added to the parser's callbacks (the hot path of every push): a request
    whose headers are still coming is one whose scope has no method yet, looked at only
    after each read, and a timer is armed only at the opening and for a request that did
    not come whole in one read."""

    connections_of_server: ClassVar[_OpenConnections]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._partial_since: float | None = None  # a request's headers are coming since then
        self._opened_at = self.loop.time()
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer(self.connections_of_server.limits.header_timeout)
        self.connections_of_server.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self.connections_of_server.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        scope = self.scope
        if scope is None or "method" in scope:  # the common case: a whole request in one read
            if self._partial_since is not None:
                self._partial_since = None
                self._header_bytes = 0
            return
        if self.transport.is_closing():
            return
        self._header_bytes += len(data)
        limits = self.connections_of_server.limits
        if self._header_bytes > limits.max_header_bytes:
            self.refuse(431, b"Request Header Fields Too Large")
            return
        if self._partial_since is None:
            self._partial_since = self.loop.time()
        if self._header_timer is None:
            self._arm_header_timer(limits.header_timeout)

    def evictable(self) -> bool:
        """Idle between requests, or still sending headers: no push of it is in hand."""
        scope, cycle = self.scope, self.cycle
        return scope is None or "method" not in scope or cycle is None or cycle.response_complete

    def refuse(self, status: int, phrase: bytes) -> None:
        """Answer `status` with `connection: close` (only where no answer is under way)
        and close the connection."""
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            head = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
            self.transport.write(head + b"content-length: 0\r\nconnection: close\r\n\r\n")
        self.transport.close()

    def _arm_header_timer(self, delay: float) -> None:
        self._header_timer = self.loop.call_later(delay, self._header_timeout)

    def _header_timeout(self) -> None:
        self._header_timer = None
        scope = self.scope
        if self.transport.is_closing() or (scope is not None and "method" in scope):
            return  # in or after a request: uvicorn's keep-alive timer and the app's own
        since = self._opened_at if scope is None else self._partial_since
        left = self.connections_of_server.limits.header_timeout
        if since is not None:
            left -= self.loop.time() - since
        if left > 0.001:  # the timer of the opening, fired while a later request is coming
            self._arm_header_timer(left)
            return
        self.refuse(408, b"Request Timeout")


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for one server (uvicorn `http=`), sharing its connection list."""
    namespace = {"connections_of_server": _OpenConnections(limits)}
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), namespace)
