"""RequestPool: the threads that send the loop's requests, lighter than a ThreadPoolExecutor.

The send loop queues one job per claimed batch and takes the answers back in groups. A
`concurrent.futures.Future` per request (a Condition, an RLock, a callback list, a lock
taken on every `done()` the loop asks) cost the loop's thread as much as the request
itself once the client parses answers in C (bench/bench_send_inflight.py). Here a job is
a small slotted object: queued on a `SimpleQueue`, started under one shared lock (so that
the loop can take back a job that has not started, exactly like `Future.cancel()`), and
handed back done on a second `SimpleQueue` the loop drains without scanning what is in
flight.

One job: run `send(job)` on `workers` threads and report each job done (`on_done(job)`,
in the thread that ran it, then `finished()` in the loop's thread). A job taken back is
never started and never reported. `send` should not raise; should it, the request may
have left: the job's result is `Ambiguous`, as a failed Future's was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Generic, TypeVar

from campaign.gateway.protocol import Ambiguous

__all__ = ["Job", "RequestPool"]

_P = TypeVar("_P")  # what the loop attaches to a job (its batch and deadline)
_R = TypeVar("_R")  # what sending it returns

QUEUED, STARTED, TAKEN_BACK, DONE = range(4)


class Job(Generic[_P, _R]):
    """One request: its payload, where it is (queued, started, taken back, done), its result."""

    __slots__ = ("payload", "result", "state")

    def __init__(self, payload: _P) -> None:
        self.payload = payload
        self.state = QUEUED
        self.result: _R | Ambiguous | None = None


class RequestPool(Generic[_P, _R]):
    """`workers` threads sending queued jobs; a context manager that joins them at exit."""

    def __init__(
        self,
        workers: int,
        send: Callable[[_P], _R],
        on_done: Callable[[Job[_P, _R]], None],
        *,
        name: str = "send",
    ) -> None:
        self._send, self._on_done = send, on_done
        self._queue: SimpleQueue[Job[_P, _R] | None] = SimpleQueue()
        self._done: SimpleQueue[Job[_P, _R]] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> RequestPool[_P, _R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def submit(self, payload: _P) -> Job[_P, _R]:
        """Queue a request; it leaves once a thread is free."""
        job: Job[_P, _R] = Job(payload)
        self._queue.put(job)
        return job

    def take_back(self, job: Job[_P, _R]) -> bool:
        """True if `job` had not started: it never will (False: it started or is done)."""
        with self._lock:
            if job.state != QUEUED:
                return False
            job.state = TAKEN_BACK
            return True

    def finished(self) -> list[Job[_P, _R]]:
        """The jobs done since the last call (each once)."""
        done: list[Job[_P, _R]] = []
        try:
            while True:
                done.append(self._done.get_nowait())
        except Empty:
            return done

    def shutdown(self) -> None:
        """Wait for the started jobs; the threads end once the queue is empty."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            with self._lock:
                if job.state != QUEUED:
                    continue  # taken back
                job.state = STARTED
            try:
                job.result = self._send(job.payload)
            except BaseException as exc:  # `send` should not raise; should it, the
                # request may have left, and the job is reported all the same (the loop
                # waits for every job it queued)
                job.result = Ambiguous(
                    f"the send failed unexpectedly ({type(exc).__name__}); it may have been sent"
                )
            job.state = DONE
            self._done.put(job)
            self._on_done(job)
