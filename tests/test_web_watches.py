"""web/watches.py under the campaign streams of web/events.py: one poller per campaign
whatever the number of streams, one rendering of a live part per reading and key, the
poller stopped by the last stream to leave, streams ended by a failed read."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio

from campaign.errors import NotFoundError
from campaign.web.events import Hub, Reading, campaign_stream
from campaign.workflow_web import Progress, Snapshot

POLL = 0.02


def reading(sent: int, state: str = "sending") -> Reading:
    snap = Snapshot(1, state, None, Progress(sent, sent, 1000), (("accepted", sent),))
    return Reading(snap, {"pending": 1000 - sent, "delivered": sent})


class CountingHub(Hub):
    """A campaign whose `sent` moves by one at each read; the reads are counted."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__(None, poll=POLL)  # type: ignore[arg-type]
        self.reads = 0
        self.fail_after = fail_after
        self.lock = threading.Lock()

    def read(self, campaign_id: int, *, outcomes: bool = True) -> Reading:
        with self.lock:
            self.reads += 1
            if self.fail_after is not None and self.reads > self.fail_after:
                raise NotFoundError("no campaign 1")
            return reading(self.reads)


def events_of(written: list[str]) -> list[str]:
    return [e.split("\n")[0] for w in written for e in w.split("\n\n")[:-1]]


async def watch_for(hub: Hub, streams: int, seconds: float, keys: list[Any]) -> list[list[str]]:
    """`streams` streams on campaign 1 for `seconds`, stream i with fragment key keys[i]."""
    found: list[list[str]] = [[] for _ in range(streams)]

    def fragment(key: Any) -> Any:
        def make(r: Reading) -> str:
            renders.append((key, r.snapshot.progress.sent))
            return f"<p>{key} {r.snapshot.progress.sent}</p>"

        return make

    async def one(i: int) -> None:
        key = keys[i % len(keys)]
        stream = campaign_stream(hub, 1, fragment=fragment(key), fragment_key=key)
        with anyio.move_on_after(seconds):
            async for written in stream:
                found[i].append(written)
        await stream.aclose()

    async with anyio.create_task_group() as group:
        for i in range(streams):
            group.start_soon(one, i)
    return found


renders: list[tuple[Any, int]] = []


def test_ten_streams_share_one_poller_and_one_rendering_per_key():
    renders.clear()
    hub = CountingHub()
    found = anyio.run(watch_for, hub, 10, 0.5, ["zh", "en"])
    polls = 0.5 / POLL
    assert hub.reads <= polls + 2, f"{hub.reads} reads for ~{polls:.0f} polls"  # not 10x
    sent_seen = {sent for _, sent in renders}
    for key in ("zh", "en"):  # each reading rendered once per key, however many streams
        per_key = [sent for k, sent in renders if k == key]
        assert len(per_key) == len(set(per_key))
    assert len(renders) <= 2 * len(sent_seen)
    for i, written in enumerate(found):
        assert written[0] == "retry: 2000\n\n"
        for chunk in written[1:]:  # a reading's events in one write: progress, then html
            kinds = events_of([chunk])
            assert kinds[-2:] == ["event: progress", "event: progress-html"], kinds
        assert events_of(found[i][1:2])[0] == "event: state"
        assert sum(1 for w in written if "event: progress-html" in w) >= 10


def test_the_last_stream_to_leave_stops_the_poller():
    hub = CountingHub()
    anyio.run(watch_for, hub, 3, 0.2, [None])
    assert len(hub.watches) == 0
    before = hub.reads

    async def later() -> None:
        await anyio.sleep(5 * POLL)

    anyio.run(later)
    assert hub.reads == before


def test_a_failed_read_ends_every_stream():
    hub = CountingHub(fail_after=3)
    started = time.monotonic()
    found = anyio.run(watch_for, hub, 4, 30.0, [None])
    assert time.monotonic() - started < 5  # not the 30 s of watching: ended by the failure
    for written in found:
        progress = [e for e in events_of(written) if e == "event: progress"]
        assert 1 <= len(progress) <= 3
    assert len(hub.watches) == 0


def test_a_stream_joining_late_gets_the_latest_reading_at_once():
    hub = CountingHub()

    async def run() -> tuple[list[str], float]:
        first = campaign_stream(hub, 1)
        await first.__anext__()  # retry
        await first.__anext__()  # the first reading
        await anyio.sleep(3 * POLL)
        second = campaign_stream(hub, 1, keepalive=60)
        started = anyio.current_time()
        got = [await second.__anext__(), await second.__anext__()]
        took = anyio.current_time() - started
        await second.aclose()
        await first.aclose()
        return got, took

    got, took = anyio.run(run)
    assert got[0] == "retry: 2000\n\n"
    assert events_of(got[1:])[:2] == ["event: state", "event: progress"]
    assert took < POLL  # the watch's reading, not the next poll's


def test_closing_the_watches_ends_every_stream_now_and_to_come():
    """`Watches.close` (the console stopping; called from a signal handler or another
    thread) ends the open streams within a poll, and a stream opened after ends at once."""
    hub = CountingHub()

    async def run() -> tuple[float, list[str]]:
        started = time.monotonic()
        threading.Timer(0.2, hub.watches.close).start()  # from another thread
        found = await watch_for(hub, 3, 30.0, [None])
        took = time.monotonic() - started
        late = campaign_stream(hub, 1)
        written = [chunk async for chunk in late]
        return took, [w for ws in found for w in ws] + written

    took, written = anyio.run(run)
    assert took < 2, f"the streams ended after {took:.1f} s"
    assert written[-1] == "retry: 2000\n\n"  # the late stream: its retry line, then the end
    assert len(hub.watches) == 0
