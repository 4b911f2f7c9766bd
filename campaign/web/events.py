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
goes away. The campaign page's stream (pages_campaigns) also sends

    event: progress-html  data: the page's progress part, rendered (one `data:` line per
                                line of HTML)                after each progress event

which the page swaps in (htmx sse-swap): no page fetches it. It is rendered once per
reading, language and role (`Hub.shared`), whatever the number of pages open.

The send progress (two small queries) is read every poll. The outcome counts are
counted again:

- at once when the state changes;
- within REPORTS_SECONDS when a delivery report of the campaign came in (a look at the
  reports newer than the last count's mark: the new rows only, by primary key), however
  large the campaign: a report reaches the page within that, a poll and one count;
- every OUTCOMES_SECONDS while its requests move (their answers move the counts too), an
  interval that grows to OUTCOMES_COST times the last count's duration for a large
  campaign (0.7 s for 100,000 rows on SQLite): a page watching a send takes at most a
  tenth of a core for it;
- every IDLE_SECONDS (or OUTCOMES_COST times its duration) when nothing was seen moving
  (a report stored out of id order, as concurrent PostgreSQL writers may: caught then).

One `Hub` per application shares the readings between the pages that watch the same
campaign: ten open pages cost the store what one does.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable
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
from campaign.workflow_web import (
    Snapshot,
    campaign_outcomes,
    campaign_snapshot,
    list_snapshots,
    new_reports,
    report_mark,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
REPORTS_SECONDS = 1.0  # a new report is counted within this (plus a poll and the count)
OUTCOMES_SECONDS = 2.0  # the requests moved: counted again after this
IDLE_SECONDS = 10.0  # nothing seen moving: counted again after this all the same
OUTCOMES_COST = 10  # but for a report, counted at most every this many times their cost
RETRY_MS = 2000  # how soon a browser reconnects after the stream broke
HEADERS = {"X-Accel-Buffering": "no"}  # a reverse proxy (nginx) must not buffer the stream


@dataclass(frozen=True)
class Reading:
    snapshot: Snapshot
    outcomes: dict[str, int] | None


@dataclass(frozen=True)
class _Read:
    at: float  # when read
    reading: Reading
    counted_at: float  # when the outcomes were counted
    counted: Snapshot  # the snapshot read with that count
    mark: int  # the newest report's id just before that count


#: One event's text for a live part of a page: the reading it shows -> HTML.
Fragment = Callable[[Reading], str]


class Hub:
    """The latest reading of each watched campaign, shared by every stream of an app."""

    def __init__(
        self,
        engine: Engine,
        *,
        poll: float = POLL_SECONDS,
        outcomes_every: float = OUTCOMES_SECONDS,
        reports_every: float = REPORTS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.poll, self.clock = engine, poll, clock
        self.outcomes_every, self.reports_every = outcomes_every, reports_every
        self._costs: dict[int, float] = {}  # seconds the last outcome count took
        self._lock = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._readings: dict[int, _Read] = {}
        self._lists: tuple[float, list[Snapshot]] | None = None
        self._shared: dict[Hashable, tuple[float, object, str]] = {}  # made at, basis, text

    def _campaign_lock(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def read(self, campaign_id: int, *, outcomes: bool = True) -> Reading:
        """The campaign's reading, fresh within half a poll (NotFoundError: no campaign)."""
        with self._campaign_lock(campaign_id):
            now = self.clock()
            cached = self._readings.get(campaign_id)
            if cached is not None and now - cached.at < self.poll / 2:
                return cached.reading
            snapshot = campaign_snapshot(self.engine, campaign_id)
            counts, counted_at, counted, mark = None, now, snapshot, 0
            if cached is not None:
                counts, counted_at = cached.reading.outcomes, cached.counted_at
                counted, mark = cached.counted, cached.mark
            if outcomes and self._count_due(campaign_id, cached, snapshot, now):
                started = time.perf_counter()
                mark = report_mark(self.engine)  # before the count: later ones are new
                counts, counted_at = campaign_outcomes(self.engine, campaign_id), now
                counted = snapshot
                self._costs[campaign_id] = time.perf_counter() - started
            reading = Reading(snapshot, counts)
            self._readings[campaign_id] = _Read(now, reading, counted_at, counted, mark)
            return reading

    def _count_due(
        self, campaign_id: int, cached: _Read | None, snapshot: Snapshot, now: float
    ) -> bool:
        """Whether to count the campaign's outcomes again now (see the module docstring)."""
        if cached is None or cached.reading.outcomes is None:
            return True
        if cached.reading.snapshot.state != snapshot.state:
            return True
        since = now - cached.counted_at
        if since < min(self.reports_every, self.outcomes_every):
            return False
        costly = OUTCOMES_COST * self._costs.get(campaign_id, 0.0)
        if since >= max(self.outcomes_every, costly) and snapshot != cached.counted:
            return True  # the requests moved
        if since >= max(IDLE_SECONDS, costly):
            return True
        return since >= self.reports_every and new_reports(self.engine, campaign_id, cached.mark)

    def shared(
        self, key: Hashable, basis: object, make: Callable[[], str], *, max_age: float = 0.0
    ) -> str:
        """`make()` (a page's live part) once for `key` while `basis` (what it shows, e.g.
        the reading) stays equal and, with `max_age`, for at most that many seconds: the
        pages watching a campaign share one rendering (the others wait for it)."""
        with self._campaign_lock(("shared", key)):
            now = self.clock()
            made = self._shared.get(key)
            if made is not None and made[1] == basis and (not max_age or now - made[0] < max_age):
                return made[2]
            text = make()
            self._shared[key] = (now, basis, text)
            return text

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


_LINE_END = re.compile(r"\r\n|\r|\n")  # every line end of the event-stream format


def sse_text(event: str, text: str) -> str:
    """One event whose data is `text` (HTML): a `data:` line per line, which the browser's
    EventSource joins again with "\n" (a CR or CRLF in `text` arrives as "\n")."""
    lines = "".join(f"data: {line}\n" for line in _LINE_END.split(text))
    return f"event: {event}\n{lines}\n"


def _state_of(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "campaign_id": snapshot.campaign_id,
        "state": snapshot.state,
        "stop_reason": snapshot.stop_reason,
    }


async def campaign_stream(
    hub: Hub,
    campaign_id: int,
    *,
    keepalive: float = KEEPALIVE_SECONDS,
    fragment: Fragment | None = None,
) -> AsyncIterator[str]:
    """The events of one campaign, until the consumer stops (the client went away);
    `fragment`: a `progress-html` event after each progress event (when its text moved)."""
    yield f"retry: {RETRY_MS}\n\n"
    last: Reading | None = None
    last_text: str | None = None
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
            if fragment is not None:
                text = await run_in_threadpool(fragment, reading)
                if text != last_text:
                    yield sse_text("progress-html", text)
                    last_text = text
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
    return await campaign_response(request)


async def campaign_response(request: Request, fragment: Fragment | None = None) -> Response:
    """The stream of the campaign of the path (the caller checked the user's role)."""
    hub = hub_of(request)
    campaign_id = int(request.path_params["campaign_id"])
    try:
        await run_in_threadpool(hub.read, campaign_id)  # before the stream starts
    except NotFoundError as exc:
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"error": str(exc)}, status_code=404)
        return PlainTextResponse(str(exc), status_code=404)
    return _stream_response(campaign_stream(hub, campaign_id, fragment=fragment))


async def all_events(request: Request) -> Response:
    """GET .../campaigns/events: every campaign's progress (the campaigns list)."""
    await require_role(request, Role.VIEWER)
    return _stream_response(list_stream(hub_of(request)))


async def require_role(request: Request, role: Role) -> User:
    """auth.require (it may read the store: in a worker thread)."""
    return await run_in_threadpool(require, request, role)


#: The list's page route (the API mounts it and `campaign_events` under /api/v1; the
#: campaign page's stream, with its progress part, is pages_campaigns').
routes: list[BaseRoute] = [
    Route("/campaigns/events", all_events, methods=["GET"]),
]

__all__ = [
    "Fragment",
    "Hub",
    "Reading",
    "all_events",
    "campaign_events",
    "campaign_response",
    "campaign_stream",
    "list_stream",
    "routes",
    "sse",
    "sse_text",
]
