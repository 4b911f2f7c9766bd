"""The Server-Sent Events of web/events.py without a server: what a stream sends and when
(state before progress, only changes, keep-alive when quiet), and the Hub's sharing of
one reading between the streams watching a campaign (a real SQLite store)."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import pytest

from campaign.store import open_store
from campaign.store.batches import claim_batches
from campaign.store.campaigns import create_campaign
from campaign.store.queue import pause
from campaign.web import events
from campaign.web.events import Hub, Reading, campaign_stream, list_stream, sse_text
from campaign.workflow_web import Progress, Snapshot
from tests.support.plans import accepted_batch, push_reports, small_plan


def snapshot(state: str = "sending", sent: int = 0) -> Snapshot:
    return Snapshot(1, state, None, Progress(sent, sent, 10), (("accepted", sent),))


class FakeHub(Hub):
    """Readings handed out one per poll (the last one repeated)."""

    def __init__(self, readings: list[Reading]) -> None:
        super().__init__(None, poll=0.01)  # type: ignore[arg-type]
        self.readings = readings

    def read(self, campaign_id: int) -> Reading:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]

    def read_all(self) -> list[Snapshot]:
        return [self.read(1).snapshot]


def event_data(chunk: str) -> tuple[str, str]:
    """(event, data) of one event as a browser's EventSource reads it: the `data:` lines
    joined with "\n" (one space after the colon dropped)."""
    event, data = "message", []
    for line in chunk.removesuffix("\n\n").split("\n"):
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    return event, "\n".join(data)


def parse(chunks: list[str]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for chunk in chunks:
        if chunk.startswith("event: progress-html"):
            found.append(event_data(chunk))
        elif chunk.startswith("event: "):
            head, data = chunk.strip().split("\n")
            found.append((head[7:], json.loads(data[6:])))
        elif chunk.startswith(":"):
            found.append(("comment", chunk.strip()))
        else:
            found.append(("other", chunk.strip()))
    return found


async def take(stream: Any, count: int) -> list[str]:
    """The first `count` events (or comments) of a stream, one string each, whatever
    the writes they came in."""
    chunks: list[str] = []
    async for written in stream:
        for chunk in written.split("\n\n")[:-1]:
            chunks.append(chunk + "\n\n")
        if len(chunks) >= count:
            break
    await stream.aclose()
    return chunks[:count]


def test_a_stream_sends_changes_state_first_then_keeps_alive():
    readings = [
        Reading(snapshot("queued"), {"pending": 0}),
        Reading(snapshot("queued"), {"pending": 0}),  # nothing new: nothing sent
        Reading(snapshot("sending", 5), {"pending": 5}),
        Reading(snapshot("sending", 5), {"pending": 3, "delivered": 2}),  # reports came
        Reading(snapshot("finished", 10), {"pending": 0, "delivered": 10}),
    ]
    hub = FakeHub(readings)
    chunks = anyio.run(take, campaign_stream(hub, 1, keepalive=0.05), 10)
    found = parse(chunks)
    assert found[0] == ("other", "retry: 2000")
    kinds = [kind for kind, _ in found[1:]]
    assert kinds[:8] == [
        "state", "progress",  # queued
        "state", "progress",  # sending 5
        "progress",  # the outcomes moved
        "state", "progress",  # finished
        "comment",  # then quiet: a keep-alive
    ]  # fmt: skip
    progress = [data for kind, data in found if kind == "progress"]
    assert [p["sent"] for p in progress] == [0, 5, 5, 10]
    assert progress[-1] == {
        "campaign_id": 1,
        "state": "finished",
        "stop_reason": None,
        "sent": 10,
        "done": 10,
        "total": 10,
        "batches": {"accepted": 10},
        "outcomes": {"pending": 0, "delivered": 10},
    }
    assert found[8] == ("comment", ": keep-alive")


def test_the_list_stream_sends_each_campaign_that_changed():
    readings = [Reading(snapshot("queued"), None), Reading(snapshot("sending", 5), None)]
    chunks = anyio.run(take, list_stream(FakeHub(readings), keepalive=10), 5)
    kinds = [kind for kind, _ in parse(chunks)]
    assert kinds == ["other", "state", "progress", "state", "progress"]


@pytest.fixture
def engine(sqlite_url):
    engine = open_store(sqlite_url)
    yield engine
    engine.dispose()


def counting_outcomes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The hub's outcome counts, counted: calls["outcomes"] after each."""
    calls = {"outcomes": 0}
    real = events.campaign_outcomes

    def counted(engine: Any, campaign_id: int) -> dict[str, int]:
        calls["outcomes"] += 1
        return real(engine, campaign_id)

    monkeypatch.setattr(events, "campaign_outcomes", counted)
    return calls


def test_the_hub_shares_readings_and_sees_store_changes(engine, monkeypatch):
    cid = create_campaign(engine, small_plan(7, 3), name="spring", settings_snapshot={})
    now = [100.0]
    hub = Hub(engine, poll=0.5, outcomes_every=2.0, clock=lambda: now[0])
    calls = counting_outcomes(monkeypatch)
    first = hub.read(cid)
    assert first.snapshot.state == "planned" and first.snapshot.progress.total == 6
    assert hub.read(cid) is first  # within half a poll: the same reading, no query
    now[0] += 0.5
    assert hub.read(cid) == first and calls["outcomes"] == 1  # unchanged, counted lately
    pause(engine, str(cid), "ann@here")
    now[0] += 0.5
    paused = hub.read(cid)
    assert paused.snapshot.state == "paused" and "ann@here" in str(paused.snapshot.stop_reason)
    assert calls["outcomes"] == 2  # the state moved: counted at once
    now[0] += 2.0
    hub.read(cid)
    assert calls["outcomes"] == 2  # nothing moved: not counted again
    now[0] += events.IDLE_SECONDS
    hub.read(cid)
    assert calls["outcomes"] == 3  # but every IDLE_SECONDS all the same
    claim_batches(engine, cid, "w1", 1)  # a request leaves: the requests moved
    now[0] += 1.0
    assert hub.read(cid).snapshot != paused.snapshot and calls["outcomes"] == 3
    now[0] += 1.0
    hub.read(cid)
    assert calls["outcomes"] == 4  # outcomes_every after the last count
    [listed] = hub.read_all()
    assert listed == hub.read(cid).snapshot and listed.state == "paused"


def test_a_report_of_the_campaign_is_counted_within_a_second(engine, monkeypatch):
    """Issue 15: a store change reaches a page within 2 s. A campaign that costs much to
    count is counted rarely, but a new report of its own is counted at the first reading
    1 s (reports_every) after the last count; another campaign's report is not."""
    cid = accepted_batch(engine, "7001", ["13800000001", "13800000002"])
    other = accepted_batch(engine, "7002", ["13800000003"])
    now = [100.0]
    hub = Hub(engine, poll=0.5, reports_every=1.0, clock=lambda: now[0])
    first = hub.read(cid)
    assert first.outcomes is not None and first.outcomes["pending"] == 2
    # a count costs ~1 ms here: as if it took seconds (no count without a new report)
    monkeypatch.setattr(events, "OUTCOMES_COST", 10**6)
    calls = counting_outcomes(monkeypatch)
    push_reports(engine, "7002,2611251000,13800000003,DELIVRD")  # the other campaign's
    now[0] += 1.0
    assert hub.read(cid) == first and calls["outcomes"] == 0
    push_reports(engine, "7001,2611251000,13800000001,DELIVRD")
    now[0] += 0.5
    moved = hub.read(cid)
    assert calls["outcomes"] == 1 and moved.outcomes is not None
    assert (moved.outcomes["delivered"], moved.outcomes["pending"]) == (1, 1)
    push_reports(engine, "7001,2611251000,13800000002,UNDELIV")
    now[0] += 0.5
    assert hub.read(cid) == moved and calls["outcomes"] == 1  # within 1 s of the last count
    now[0] += 0.5
    last = hub.read(cid)
    assert calls["outcomes"] == 2 and last.outcomes is not None
    assert (last.outcomes["failed"], last.outcomes["pending"]) == (1, 0)
    for _ in range(8):  # nothing new: no count
        now[0] += 0.5
        hub.read(cid)
    assert calls["outcomes"] == 2
    assert (hub.read(other).outcomes or {})["delivered"] == 1


def test_sse_text_sends_each_line_of_html_as_a_data_line():
    html = '<h2 id="t">进度</h2>\n<p class="figures">\r\n  1 / 2\r</p>\n'
    chunk = sse_text("progress-html", html)
    assert chunk.startswith("event: progress-html\n") and chunk.endswith("\n\n")
    assert "\r" not in chunk and "\n\n" not in chunk[:-2]  # no line ends the event early
    assert event_data(chunk) == ("progress-html", html.replace("\r\n", "\n").replace("\r", "\n"))


def test_the_progress_html_is_rendered_once_for_every_stream(engine):
    """Three pages watching a campaign: one reading, one rendering of the progress part,
    the same HTML in each stream's `progress-html` event (after its `progress`)."""
    cid = create_campaign(engine, small_plan(7, 3), name="autumn", settings_snapshot={})
    hub = Hub(engine, poll=0.05)
    renders: list[Reading] = []

    def fragment(reading: Reading) -> str:
        def make() -> str:
            renders.append(reading)
            return f"<p>{reading.snapshot.state}</p>\n<p>{reading.snapshot.progress.total}</p>"

        return hub.shared(("progress", cid), reading, make)

    async def three() -> list[list[str]]:
        found: list[list[str]] = []

        async def one() -> None:
            found.append(await take(campaign_stream(hub, cid, fragment=fragment), 4))

        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(one)
        return found

    streams = anyio.run(three)
    assert len(renders) == 1 and len(streams) == 3
    for chunks in streams:
        kinds = [kind for kind, _ in parse(chunks)]
        assert kinds == ["other", "state", "progress", "progress-html"]
        assert parse(chunks)[3][1] == "<p>planned</p>\n<p>6</p>"
    pause(engine, str(cid), "ann@here")
    time.sleep(hub.poll)  # the hub's reading is older than half a poll: read again
    chunks = anyio.run(take, campaign_stream(hub, cid, fragment=fragment), 4)
    assert parse(chunks)[3][1] == "<p>paused</p>\n<p>6</p>" and len(renders) == 2


def test_shared_makes_once_per_basis_and_age():
    now = [0.0]
    hub = Hub(None, clock=lambda: now[0])  # type: ignore[arg-type]
    made: list[str] = []

    def make(text: str) -> Any:
        return lambda: made.append(text) or text

    assert hub.shared("k", 1, make("a"), max_age=5) == "a"
    now[0] += 4.9
    assert hub.shared("k", 1, make("b"), max_age=5) == "a"  # same basis, young enough
    assert hub.shared("k", 2, make("c"), max_age=5) == "c"  # the basis moved
    now[0] += 5.0
    assert hub.shared("k", 2, make("d"), max_age=5) == "d"  # too old
    assert hub.shared("other", 2, make("e")) == "e" and made == ["a", "c", "d", "e"]


def test_details_are_shared_within_half_a_poll_and_read_again_when_the_state_moves(engine):
    """The record and the sending processes beside a reading: one store read for every
    page part within half a poll, a new one at once when the state moved (a paused
    campaign's record shows who paused it)."""
    cid = create_campaign(engine, small_plan(7, 3), name="autumn", settings_snapshot={})
    now = [0.0]
    hub = Hub(engine, poll=0.5, clock=lambda: now[0])
    reading = hub.read(cid)
    record, workers = hub.details(reading)
    assert record.name == "autumn" and workers == []
    pause(engine, str(cid), "ann@here")
    assert hub.details(reading)[0] is record  # the same reading, within half a poll
    now[0] += 0.1
    paused = Reading(Snapshot(cid, "paused", None, reading.snapshot.progress, ()), None)
    again = hub.details(paused)[0]  # the state moved: read again at once
    assert again is not record and again.state == "paused"
    now[0] += 0.3
    assert hub.details(paused)[0] is not again  # half a poll passed
