"""One poller per watched campaign, whatever the number of streams watching it.

A campaign's `Watch` reads it (`read(campaign_id)`, in a worker thread) every `poll`
seconds while at least one stream watches it, and when the reading moved it wakes the
streams at once. Each distinct live part of a page is rendered once per reading, not
once per stream (`Watch.text`, one rendering per key, e.g. language and role). A stream
then costs its page a wake-up and one write per reading: ten pages open on a campaign
that is sending take no more thread hops, store reads or renderings than one.

The last stream to leave stops the poller. A poller whose read failed ends its streams
(the browser reconnects after the stream's retry time and finds the campaign, or a 404),
and so does `Watches.close` (the console is stopping: its server would otherwise wait
for the open streams).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

R = TypeVar("R")  # a reading


class Watch(Generic[R]):
    """The poller of one campaign in one event loop, and its latest reading."""

    def __init__(self, read: Callable[[int], R], campaign_id: int, poll: float) -> None:
        self.campaign_id, self.poll, self._read = campaign_id, poll, read
        self.loop = asyncio.get_running_loop()
        self.reading: R | None = None
        self.version = 0  # moves with each new reading
        self.failed: BaseException | None = None
        self.closed = False  # the console is stopping: the streams end
        self.streams = 0
        self._changed = asyncio.Event()
        self._made: dict[Hashable, asyncio.Future[str]] = {}  # of this version
        self._task: asyncio.Task[None] | None = None

    @property
    def ended(self) -> bool:
        return self._task is not None and self._task.done()

    def join(self) -> None:
        self.streams += 1
        if self._task is None:
            self._task = self.loop.create_task(self._run(), name=f"watch-{self.campaign_id}")

    def leave(self) -> None:
        self.streams -= 1
        if self.streams <= 0 and self._task is not None:
            self._task.cancel()

    async def changed(self, seen: int, timeout: float) -> bool:
        """Whether a reading newer than version `seen` came (or the poller ended) within
        `timeout` seconds."""
        if self.version != seen or self.ended or self.closed:
            return True
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def text(self, key: Hashable, make: Callable[[R], str]) -> str:
        """`make(reading)` of the latest reading, once per `key` for every stream (in a
        worker thread: it may read the store)."""
        made = self._made.get(key)
        if made is None:
            reading = self.reading
            made = asyncio.ensure_future(run_in_threadpool(make, reading))  # type: ignore[arg-type]
            self._made[key] = made
        return await asyncio.shield(made)

    async def _run(self) -> None:
        try:
            while True:
                reading = await run_in_threadpool(self._read, self.campaign_id)
                if self.version == 0 or reading != self.reading:
                    self._publish(reading)
                await asyncio.sleep(self.poll)
        except Exception as exc:  # the store went away, the campaign was deleted: end
            self.failed = exc
            self._wake()

    def close(self) -> None:
        """End the streams (in the watch's event loop)."""
        self.closed = True
        self._wake()

    def _publish(self, reading: R) -> None:
        self.reading, self.version, self._made = reading, self.version + 1, {}
        self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()


class Watches(Generic[R]):
    """The watches of an application's campaigns (one per campaign and event loop)."""

    def __init__(self, read: Callable[[int], R], poll: float) -> None:
        self.read, self.poll = read, poll
        # a test's event loops may run in several threads; reentrant: `close` runs in a
        # signal handler, which may interrupt this thread inside `join` or `leave`
        self._lock = threading.RLock()
        self._watches: dict[int, Watch[R]] = {}
        self.closed = False

    def join(self, campaign_id: int) -> Watch[R]:
        """The campaign's watch (started if none runs in this loop), one stream more."""
        loop = asyncio.get_running_loop()
        with self._lock:
            watch = self._watches.get(campaign_id)
            if watch is None or watch.loop is not loop or watch.ended or watch.streams <= 0:
                watch = Watch(self.read, campaign_id, self.poll)
                self._watches[campaign_id] = watch
            watch.join()
            if self.closed:
                watch.closed = True
            return watch

    def leave(self, watch: Watch[R]) -> None:
        with self._lock:
            watch.leave()
            if watch.streams <= 0 and self._watches.get(watch.campaign_id) is watch:
                del self._watches[watch.campaign_id]

    def close(self) -> None:
        """End every stream of every watch, now and to come (from any thread, a signal
        handler's included)."""
        with self._lock:
            self.closed = True
            watches = list(self._watches.values())
        for watch in watches:
            if not watch.loop.is_closed():
                watch.loop.call_soon_threadsafe(watch.close)

    def __len__(self) -> int:
        return len(self._watches)


__all__ = ["Watch", "Watches"]
