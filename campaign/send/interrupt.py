"""The interruption path: one way a stop is requested and one way it is noticed.

A stop is requested by `stop.set()` from anywhere (a caller's thread, the CLI's SIGTERM
handler, a web console) or by Ctrl-C while the loop waits (a caller on the main thread,
`campaign run`, spends its time in `wait`): both become the same request. The loop asks
`requested` and, once stopped, the run is recorded as interrupted; after that,
`reraise()` lets a caught Ctrl-C go on as a KeyboardInterrupt.

A stop is honoured between requests: the requests in flight finish and their answers are
recorded (lost answers would count as unknown).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar


def wait_for_answers(answers: threading.Event, timeout: float) -> None:
    """Wait until the pool's threads say the loop has work (or the timeout)."""
    answers.wait(timeout)


class Interruption:
    def __init__(
        self,
        stop: threading.Event | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.event = stop or threading.Event()
        self.sleep: Callable[[float], object] = (
            sleep or self.event.wait
        )  # a fake clock's sleep in tests
        self.keyboard = False  # the request came as a Ctrl-C: raised again at the end

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, *, keyboard: bool = False) -> None:
        self.keyboard = self.keyboard or keyboard
        self.event.set()

    def wait(self, answers: threading.Event | None, timeout: float) -> None:
        """Wait for the pool's signal `answers` (when requests are in flight; else a stop
        request wakes it), or the timeout; Ctrl-C here is a stop request."""
        try:
            if answers is not None:
                wait_for_answers(answers, timeout)
            else:
                self.sleep(timeout)
        except KeyboardInterrupt:
            self.request(keyboard=True)

    def reraise(self) -> None:
        """Once the run is recorded: a caught Ctrl-C goes on to the caller."""
        if self.keyboard:
            raise KeyboardInterrupt


T = TypeVar("T")


def in_thread(
    work: Callable[[], T], stop: threading.Event, announce: Callable[[], None], *, name: str
) -> tuple[T, bool]:
    """Run `work` in a thread while this one waits; Ctrl-C while waiting sets `stop` (and
    calls `announce` once, unless a stop was already requested). Returns what `work`
    returned and whether Ctrl-C came; what `work` raised is raised here."""
    box: dict[str, Any] = {}
    done = threading.Event()  # not thread.is_alive(): an interrupted join() can lie
    keyboard = False

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    while not done.is_set():
        try:
            done.wait(0.2)
        except KeyboardInterrupt:
            if not stop.is_set():
                announce()
            keyboard = True
            stop.set()
    if "error" in box:
        raise box["error"]
    return box["result"], keyboard
