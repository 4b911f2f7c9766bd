"""Live progress as Server-Sent Events, read from the store (so campaigns sent by the CLI,
the nightly run or another machine's worker show as well as the console's own).

    GET /campaigns/{id}/events, /api/v1/campaigns/{id}/events   one campaign
    GET /campaigns/events, /api/v1/campaigns/events             every campaign (the list)

Every POLL_SECONDS the campaign's poller (web/watches.py: one per campaign, whatever the
number of streams) reads its state and request figures; each stream sends

    event: state      data: {"campaign_id", "state", "stop_reason"} when the state changed
    event: progress   data: {"campaign_id", "state", "stop_reason", "sent", "done",
                             "total", "batches", "outcomes"}        when anything changed

(both at the start; a state event comes before the progress event of the same reading),
a `: keep-alive` comment after KEEPALIVE_SECONDS of silence, and ends when the client
goes away or the console stops (`close_streams`). The campaign page's stream
(pages_campaigns) also sends

    event: progress-html  data: the page's progress part, rendered (one `data:` line per
                                line of HTML)                after each progress event

which the page swaps in (htmx sse-swap): no page fetches it. It is rendered once per
reading, language and role (`Watch.text`), whatever the number of pages
open. The events of one reading leave in one write.

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
campaign: ten open pages cost the store what one does, and the console little more.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from campaign.errors import NotFoundError
from campaign.outcomes import Role
from campaign.store.users import User
from campaign.web.auth import require
from campaign.web.security import API_PREFIX
from campaign.web.watches import Watches
from campaign.workflow_web import (
    Snapshot,
    campaign_outcomes,
    campaign_record,
    campaign_snapshot,
    campaign_workers,
    list_snapshots,
    new_reports,
    report_mark,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

T = TypeVar("T")

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
        self._shared: dict[Hashable, tuple[float, object, Any]] = {}  # made at, basis, value
        self.watches: Watches[Reading] = Watches(self.read, poll)  # the streams' pollers

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

    def details(self, reading: Reading) -> tuple[Any, list[Any]]:
        """The record of the reading's campaign and the processes sending it (what a page
        shows beside the reading), read again when its state moved or half a poll passed:
        the progress part and the fetched parts of every page share them."""
        snapshot = reading.snapshot
        campaign_id = snapshot.campaign_id

        def read() -> tuple[Any, list[Any]]:
            return (
                campaign_record(self.engine, campaign_id),
                campaign_workers(self.engine, campaign_id),
            )

        basis = (snapshot.state, snapshot.stop_reason)
        return self.shared(("details", campaign_id), basis, read, max_age=self.poll / 2)

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
        self, key: Hashable, basis: object, make: Callable[[], T], *, max_age: float = 0.0
    ) -> T:
        """`make()` (a page's live part, or what it shows) once for `key` while `basis`
        (what it depends on, e.g. the reading) stays equal and, with `max_age`, for at most
        that many seconds: the pages watching a campaign share one (the others wait)."""
        with self._campaign_lock(("shared", key)):
            now = self.clock()
            made = self._shared.get(key)
            if made is not None and made[1] == basis and (not max_age or now - made[0] < max_age):
                return cast(T, made[2])
            value = make()
            self._shared[key] = (now, basis, value)
            return value

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


def close_streams(app: Any) -> None:
    """End the app's event streams (the console is stopping: `campaign web` calls it on
    Ctrl-C or SIGTERM, before its server waits for the open connections): within a poll."""
    hub = getattr(app.state, "event_hub", None)
    if hub is not None:
        hub.watches.close()


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
    fragment_key: Hashable = None,
) -> AsyncIterator[str]:
    """The events of one campaign, until the consumer stops (the client went away) or the
    campaign can no longer be read; `fragment`: a `progress-html` event after each progress
    event (when its text moved), rendered once per reading for every stream of the same
    `fragment_key`. The campaign's readings come from its one poller (`Hub.watches`); each
    reading's events leave in one write."""
    watch = hub.watches.join(campaign_id)
    try:
        yield f"retry: {RETRY_MS}\n\n"
        seen, state, text = 0, None, None
        quiet_since = time.monotonic()
        while True:
            wait = max(0.0, keepalive - (time.monotonic() - quiet_since))
            if not await watch.changed(seen, wait):
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
                continue
            if watch.failed is not None or watch.closed or watch.reading is None:
                return
            reading, seen = watch.reading, watch.version
            snapshot = reading.snapshot
            out = []
            if (snapshot.state, snapshot.stop_reason) != state:
                out.append(sse("state", _state_of(snapshot)))
                state = (snapshot.state, snapshot.stop_reason)
            out.append(sse("progress", {**snapshot.to_json(), "outcomes": reading.outcomes}))
            if fragment is not None:
                made = await watch.text(fragment_key, fragment)
                if made != text:
                    out.append(sse_text("progress-html", made))
                    text = made
            yield "".join(out)
            quiet_since = time.monotonic()
    finally:
        hub.watches.leave(watch)


async def list_stream(hub: Hub, *, keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[str]:
    """`progress` (and `state`) events of every campaign whose figures changed."""
    yield f"retry: {RETRY_MS}\n\n"
    last: dict[int, Snapshot] = {}
    quiet_since = time.monotonic()
    while not hub.watches.closed:
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


async def campaign_response(
    request: Request, fragment: Fragment | None = None, fragment_key: Hashable = None
) -> Response:
    """The stream of the campaign of the path (the caller checked the user's role)."""
    hub = hub_of(request)
    campaign_id = int(request.path_params["campaign_id"])
    try:
        await run_in_threadpool(hub.read, campaign_id)  # before the stream starts
    except NotFoundError as exc:
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"error": str(exc)}, status_code=404)
        return PlainTextResponse(str(exc), status_code=404)
    stream = campaign_stream(hub, campaign_id, fragment=fragment, fragment_key=fragment_key)
    return _stream_response(stream)


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
    "close_streams",
    "list_stream",
    "routes",
    "sse",
    "sse_text",
]
