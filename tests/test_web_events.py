"""The Server-Sent Events of web/events.py without a server: what a stream sends and when
(state before progress, only changes, keep-alive when quiet), and the Hub's sharing of
one reading between the streams watching a campaign (a real SQLite store)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from campaign.store import open_store
from campaign.store.campaigns import create_campaign
from campaign.store.queue import pause
from campaign.web import events
from campaign.web.events import Hub, Reading, campaign_stream, list_stream
from campaign.workflow_web import Progress, Snapshot
from tests.support.plans import small_plan


def snapshot(state: str = "sending", sent: int = 0) -> Snapshot:
    return Snapshot(1, state, None, Progress(sent, sent, 10), (("accepted", sent),))


class FakeHub:
    """Readings handed out one per poll (the last one repeated)."""

    poll = 0.01

    def __init__(self, readings: list[Reading]) -> None:
        self.readings = readings

    def read(self, campaign_id: int) -> Reading:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]

    def read_all(self) -> list[Snapshot]:
        return [self.read(1).snapshot]


def parse(chunks: list[str]) -> list[tuple[str, Any]]:
    found = []
    for chunk in chunks:
        if chunk.startswith("event: "):
            head, data = chunk.strip().split("\n")
            found.append((head[7:], json.loads(data[6:])))
        elif chunk.startswith(":"):
            found.append(("comment", chunk.strip()))
        else:
            found.append(("other", chunk.strip()))
    return found


async def take(stream: Any, count: int) -> list[str]:
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == count:
            break
    await stream.aclose()
    return chunks


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


def test_the_hub_shares_readings_and_sees_store_changes(engine, monkeypatch):
    cid = create_campaign(engine, small_plan(7, 3), name="spring", settings_snapshot={})
    now = [100.0]
    hub = Hub(engine, poll=0.5, outcomes_every=2.0, clock=lambda: now[0])
    calls = {"outcomes": 0}
    real = events.campaign_outcomes

    def counted(engine: Any, campaign_id: int) -> dict[str, int]:
        calls["outcomes"] += 1
        return real(engine, campaign_id)

    monkeypatch.setattr(events, "campaign_outcomes", counted)
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
    assert calls["outcomes"] == 3  # every outcomes_every anyway (reports arrive)
    [listed] = hub.read_all()
    assert listed == paused.snapshot
