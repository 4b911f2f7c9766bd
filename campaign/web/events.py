"""Live progress as Server-Sent Events, read from the store (so campaigns sent by the CLI,
the nightly run or another machine's worker show as well as the console's own).

    GET /campaigns/{id}/events, /api/v1/campaigns/{id}/events   one campaign
    GET /campaigns/events, /api/v1/campaigns/events             every campaign (the list)

Every POLL_SECONDS the stream reads the campaign's state and request figures; it sends

    event: state      data: {"campaign_id", "state", "stop_reason"} when the state changed
    event: progress   data: {"campaign_id", "state", "stop_reason", "sent", "done",
                             "total", "batches", "outcomes"}        when anything changed

(both at the start; a state event comes before the progress event of the same reading),
a `: keep-alive` comment after KEEPALIVE_SECONDS of silence, and ends when the client
goes away. The send progress (two small queries) is read every poll; the outcome counts
(delivery reports arriving) every OUTCOMES_SECONDS, and at once when the state changes.
Counting a large campaign takes time (0.7 s for 100,000 rows on SQLite), so that
interval grows to OUTCOMES_COST times the last count's duration: the live pages never
take more than a tenth of a core for it. One `Hub` per application shares the readings
between the pages that watch the same campaign: ten open pages cost the store what one
does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from campaign.errors import NotFoundError
from campaign.outcomes import Role
from campaign.store.users import User
from campaign.web.auth import require
from campaign.web.security import API_PREFIX
from campaign.workflow_web import Snapshot, campaign_outcomes, campaign_snapshot, list_snapshots

if TYPE_CHECKING:
    from sqlalchemy import Engine

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
OUTCOMES_SECONDS = 2.0
OUTCOMES_COST = 10  # the outcomes are counted at most every this many times their cost
RETRY_MS = 2000  # how soon a browser reconnects after the stream broke
HEADERS = {"X-Accel-Buffering": "no"}  # a reverse proxy (nginx) must not buffer the stream


@dataclass(frozen=True)
class Reading:
    snapshot: Snapshot
    outcomes: dict[str, int] | None


class Hub:
    """The latest reading of each watched campaign, shared by every stream of an app."""

    def __init__(
        self,
        engine: Engine,
        *,
        poll: float = POLL_SECONDS,
        outcomes_every: float = OUTCOMES_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.poll, self.clock = engine, poll, clock
        self.outcomes_every = outcomes_every
        self._costs: dict[int, float] = {}  # seconds the last outcome count took
        self._lock = threading.Lock()
        self._locks: dict[int | None, threading.Lock] = {}
        self._readings: dict[int, tuple[float, Reading, float]] = {}  # at, reading, outcomes at
        self._lists: tuple[float, list[Snapshot]] | None = None

    def _campaign_lock(self, key: int | None) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def read(self, campaign_id: int, *, outcomes: bool = True) -> Reading:
        """The campaign's reading, fresh within half a poll (NotFoundError: no campaign)."""
        with self._campaign_lock(campaign_id):
            now = self.clock()
            cached = self._readings.get(campaign_id)
            if cached is not None and now - cached[0] < self.poll / 2:
                return cached[1]
            snapshot = campaign_snapshot(self.engine, campaign_id)
            counts, counted_at = None, now
            if cached is not None:
                counts, counted_at = cached[1].outcomes, cached[2]
            every = max(self.outcomes_every, OUTCOMES_COST * self._costs.get(campaign_id, 0.0))
            moved = cached is None or cached[1].snapshot.state != snapshot.state
            if outcomes and (moved or counts is None or now - counted_at >= every):
                started = time.perf_counter()
                counts, counted_at = campaign_outcomes(self.engine, campaign_id), now
                self._costs[campaign_id] = time.perf_counter() - started
            reading = Reading(snapshot, counts)
            self._readings[campaign_id] = (now, reading, counted_at)
            return reading

    def read_all(self, *, force: bool = False) -> list[Snapshot]:
        """Every campaign's snapshot (state and request figures), fresh within half a poll
        (`force`: read now, e.g. for a campaign newer than the last reading)."""
        with self._campaign_lock(None):
            now = self.clock()
            if not force and self._lists is not None and now - self._lists[0] < self.poll / 2:
                return self._lists[1]
            known = {s.campaign_id: s for s in self._lists[1]} if self._lists else None
            found = list_snapshots(self.engine, known)
            self._lists = (now, found)
            return found


def hub_of(request: Request) -> Hub:
    """The application's Hub (made on first use)."""
    state = request.app.state
    hub = getattr(state, "event_hub", None)
    if hub is None:
        with _HUB_LOCK:
            hub = getattr(state, "event_hub", None)
            if hub is None:
                hub = Hub(state.engine)
                state.event_hub = hub
    return hub


_HUB_LOCK = threading.Lock()


def sse(event: str, data: Any) -> str:
    """One event in the text/event-stream format (JSON data on one line)."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _state_of(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "campaign_id": snapshot.campaign_id,
        "state": snapshot.state,
        "stop_reason": snapshot.stop_reason,
    }


async def campaign_stream(
    hub: Hub, campaign_id: int, *, keepalive: float = KEEPALIVE_SECONDS
) -> AsyncIterator[str]:
    """The events of one campaign, until the consumer stops (the client went away)."""
    yield f"retry: {RETRY_MS}\n\n"
    last: Reading | None = None
    quiet_since = time.monotonic()
    while True:
        reading = await run_in_threadpool(hub.read, campaign_id)
        sent = False
        if last is None or (reading.snapshot.state, reading.snapshot.stop_reason) != (
            last.snapshot.state,
            last.snapshot.stop_reason,
        ):
            yield sse("state", _state_of(reading.snapshot))
            sent = True
        if last is None or reading != last:
            yield sse("progress", {**reading.snapshot.to_json(), "outcomes": reading.outcomes})
            sent = True
        last = reading
        now = time.monotonic()
        if sent:
            quiet_since = now
        elif now - quiet_since >= keepalive:
            yield ": keep-alive\n\n"
            quiet_since = now
        await asyncio.sleep(hub.poll)


async def list_stream(hub: Hub, *, keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[str]:
    """`progress` (and `state`) events of every campaign whose figures changed."""
    yield f"retry: {RETRY_MS}\n\n"
    last: dict[int, Snapshot] = {}
    quiet_since = time.monotonic()
    while True:
        found = await run_in_threadpool(hub.read_all)
        sent = False
        for snapshot in found:
            before = last.get(snapshot.campaign_id)
            if before == snapshot:
                continue
            if before is None or before.state != snapshot.state:
                yield sse("state", _state_of(snapshot))
            yield sse("progress", snapshot.to_json())
            sent = True
        last = {s.campaign_id: s for s in found}
        now = time.monotonic()
        if sent:
            quiet_since = now
        elif now - quiet_since >= keepalive:
            yield ": keep-alive\n\n"
            quiet_since = now
        await asyncio.sleep(hub.poll)


def _stream_response(stream: AsyncIterator[str]) -> Response:
    return StreamingResponse(stream, media_type="text/event-stream; charset=utf-8", headers=HEADERS)


async def campaign_events(request: Request) -> Response:
    """GET .../campaigns/{campaign_id}/events (viewers and up); 404 for no such campaign."""
    await require_role(request, Role.VIEWER)
    hub = hub_of(request)
    campaign_id = int(request.path_params["campaign_id"])
    try:
        await run_in_threadpool(hub.read, campaign_id)  # before the stream starts
    except NotFoundError as exc:
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"error": str(exc)}, status_code=404)
        return PlainTextResponse(str(exc), status_code=404)
    return _stream_response(campaign_stream(hub, campaign_id))


async def all_events(request: Request) -> Response:
    """GET .../campaigns/events: every campaign's progress (the campaigns list)."""
    await require_role(request, Role.VIEWER)
    return _stream_response(list_stream(hub_of(request)))


async def require_role(request: Request, role: Role) -> User:
    """auth.require (it may read the store: in a worker thread)."""
    return await run_in_threadpool(require, request, role)


#: The page routes (the API mounts the same endpoints under /api/v1).
routes: list[BaseRoute] = [
    Route("/campaigns/events", all_events, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/events", campaign_events, methods=["GET"]),
]

__all__ = [
    "Hub",
    "all_events",
    "campaign_events",
    "campaign_stream",
    "list_stream",
    "routes",
    "sse",
]
