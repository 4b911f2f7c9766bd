"""The simulator's push worker: delivery reports and inbound messages, sent by httpx.

Runs on the simulator's event loop, off the send path: an accepted batch only queues a
job; a dispatcher expands it into one push per report (one per part of a long text,
some pushed twice when asked) and keeps at most `push_concurrency` in flight. A push
that does not get HTTP 200 is retried with exponential backoff, then given up.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import httpx

from campaign.gateway.simconfig import SimulatorSettings
from campaign.gateway.simhttp import RawHttpPool
from campaign.timeutil import CHINA

MAX_BACKOFF = 5.0


def china_minute() -> str:
    """`YYMMDDhhmm` now, China time (reportTime / moTime)."""
    return datetime.now(CHINA).strftime("%y%m%d%H%M")


def _fraction(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    return zlib.crc32(":".join(map(str, parts)).encode()) / 0x1_0000_0000


class StatusPicker:
    """Report status per mobile: overrides first, else the weighted mix, by seed and mobile."""

    def __init__(self, settings: SimulatorSettings) -> None:
        mix = [(s, w) for s, w in settings.report_mix if w > 0] or [("DELIVRD", 1.0)]
        total = sum(w for _, w in mix)
        self._statuses = [s for s, _ in mix]
        self._bounds = list(itertools.accumulate(w / total for _, w in mix))
        self._overrides = settings.report_overrides
        self._seed = settings.seed

    def status(self, mobile: str) -> str:
        override = self._overrides.get(mobile)
        if override:
            return override
        index = bisect.bisect_right(self._bounds, _fraction(self._seed, mobile))
        return self._statuses[min(index, len(self._statuses) - 1)]


@dataclass(frozen=True)
class _Push:
    url: str
    params: dict[str, str]
    count: int = 1  # reports carried (more than 1 in the batched `report=` form)


@dataclass(frozen=True)
class _ReportJob:
    msgid: str
    mobiles: tuple[str, ...]
    parts: int


class Pusher:
    """Queues and performs pushes; `wait_idle` (any thread) waits until all are done."""

    def __init__(self, settings: Callable[[], SimulatorSettings]) -> None:
        self._settings = settings
        self._cond = threading.Condition()
        self._pending = 0
        self.pushed = 0  # pushes answered 200
        self.given_up = 0  # pushes dropped after the last retry
        self.attempts = 0
        self.lost = 0  # reports never pushed (lost_rate), like a platform that drops pushes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_ReportJob | _Push] | None = None
        self._client: httpx.AsyncClient | None = None
        self._raw = RawHttpPool()
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._mo_ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle (loop)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        concurrency = max(1, self._settings().push_concurrency)
        self._client = httpx.AsyncClient(
            timeout=5.0,
            trust_env=False,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._dispatcher = asyncio.create_task(self._dispatch())

    async def close(self) -> None:
        tasks = [t for t in (self._dispatcher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        await self._raw.close()
        with self._cond:
            self._pending = 0
            self._cond.notify_all()

    # ------------------------------------------------------------------ scheduling

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    def schedule_reports(self, msgid: str, mobiles: tuple[str, ...], parts: int) -> None:
        """Called on the loop thread by the send handler of an accepted batch."""
        settings = self._settings()
        if not settings.push_url or self._loop is None or self._queue is None:
            return
        self._add_pending(len(mobiles) * parts)
        self._enqueue(_ReportJob(msgid, mobiles, parts), settings.report_delay)

    def schedule_mo(self, params: list[dict[str, str]], shuffle_seed: int | None) -> None:
        """Thread-safe: queue the parts of one inbound message."""
        url = self._settings().mo_target
        if not url:
            raise ValueError("the simulator has no push_url/mo_url to push inbound messages to")
        if shuffle_seed is not None:
            params = sorted(params, key=lambda p: _fraction(shuffle_seed, p.get("emshead", "")))
        self.schedule_pushes(url, params)

    def schedule_pushes(self, url: str, params: list[dict[str, str]]) -> None:
        """Thread-safe: queue ready-made pushes to `url`, in this order."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the simulator is not running")
        self._add_pending(len(params))
        for item in params:
            loop.call_soon_threadsafe(self._enqueue, _Push(url, item), 0.0)

    def new_mo_id(self) -> int:
        return next(self._mo_ids) % 256

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no push is pending (True), or the timeout passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _add_pending(self, count: int) -> None:
        with self._cond:
            self._pending += count

    def _done(self, count: int = 1) -> None:
        with self._cond:
            self._pending -= count
            if self._pending <= 0:
                self._pending = 0
                self._cond.notify_all()

    def _enqueue(self, item: _ReportJob | _Push, delay: float) -> None:
        assert self._loop is not None and self._queue is not None
        if delay > 0:
            self._loop.call_later(delay, self._queue.put_nowait, item)
        else:
            self._queue.put_nowait(item)

    # ------------------------------------------------------------------ pushing (loop)

    async def _dispatch(self) -> None:
        assert self._queue is not None
        semaphore = asyncio.Semaphore(max(1, self._settings().push_concurrency))
        while True:
            item = await self._queue.get()
            if isinstance(item, _ReportJob):
                pushes = _batched(self._expand(item), self._settings().push_batch)
            else:
                pushes = iter([item])
            for push in pushes:
                await semaphore.acquire()
                task = asyncio.create_task(self._push(push, semaphore))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _expand(self, job: _ReportJob) -> Iterator[_Push]:
        settings = self._settings()
        picker = StatusPicker(settings)
        url = settings.push_url
        report_time = china_minute()
        for mobile in job.mobiles:
            if settings.lost_rate > 0 and (
                _fraction(settings.seed, "lost", job.msgid, mobile) < settings.lost_rate
            ):
                self.lost += job.parts
                self._done(job.parts)
                continue
            params = {
                "receiver": settings.push_receiver,
                "pswd": settings.push_pswd,
                "msgid": job.msgid,
                "reportTime": report_time,
                "mobile": mobile,
                "status": picker.status(mobile),
            }
            for _ in range(job.parts):
                yield _Push(url, params)
            if settings.duplicate_rate > 0 and (
                _fraction(settings.seed, "dup", job.msgid, mobile) < settings.duplicate_rate
            ):
                self._add_pending(1)
                yield _Push(url, params)

    async def _push(self, push: _Push, semaphore: asyncio.Semaphore) -> None:
        settings = self._settings()
        try:
            for attempt in range(max(1, settings.push_retries)):
                if attempt:
                    await asyncio.sleep(
                        min(MAX_BACKOFF, settings.push_backoff * 2 ** (attempt - 1))
                    )
                self.attempts += 1
                if await self._send_once(push, settings.push_method):
                    self.pushed += push.count
                    return
            self.given_up += push.count
        finally:
            semaphore.release()
            self._done(push.count)

    async def _send_once(self, push: _Push, method: str) -> bool:
        if push.url.startswith("http://"):
            return await self._raw.request(method, push.url, push.params) == 200
        assert self._client is not None
        try:
            if method.upper() == "POST":
                response = await self._client.post(push.url, data=push.params)
            else:
                response = await self._client.get(push.url, params=push.params)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


def _batched(pushes: Iterator[_Push], size: int) -> Iterator[_Push]:
    """Group report pushes into the batched form `report=msgid,time,mobile,status||...`."""
    if size <= 1:
        yield from pushes
        return
    for group in _chunks(pushes, size):
        first = group[0]
        report = "||".join(
            ",".join(
                (p.params["msgid"], p.params["reportTime"], p.params["mobile"], p.params["status"])
            )
            for p in group
        )
        params = {
            "receiver": first.params["receiver"],
            "pswd": first.params["pswd"],
            "report": report,
        }
        yield _Push(first.url, params, len(group))


def _chunks(items: Iterator[_Push], size: int) -> Iterator[tuple[_Push, ...]]:
    while chunk := tuple(itertools.islice(items, size)):
        yield chunk
