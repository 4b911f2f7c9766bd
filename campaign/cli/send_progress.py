"""Progress of a send on stderr: a rich progress bar on a terminal, timestamped lines otherwise
(China time with its offset: `2026-12-03 16:05:01+08:00  12/40 requests, ...`)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from campaign.timeutil import china_text

if TYPE_CHECKING:
    from campaign.sender import ProgressEvent

PLAIN_EVERY = 5.0  # seconds between plain progress lines


@contextmanager
def progress_reporter() -> Iterator[Callable[[ProgressEvent], None]]:
    """Yield an `on_progress` callback that draws on stderr until the block ends."""
    if sys.stderr.isatty():
        with _rich_reporter() as report:
            yield report
    else:
        yield _PlainReporter()


class _PlainReporter:
    def __init__(self) -> None:
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.kind != "progress":
                prefix = "warning: " if event.kind == "warning" else ""
                _line(prefix + event.message)
                return
            now = time.monotonic()
            finished = event.requests_done >= event.requests_total
            if now - self._last < PLAIN_EVERY and not finished:
                return
            self._last = now
            _line(_figures(event))


def _line(text: str) -> None:
    print(f"{china_text()}  {text}", file=sys.stderr, flush=True)


def _figures(event: ProgressEvent) -> str:
    eta = f", about {_duration(event.eta)} left" if event.eta else ""
    return (
        f"{event.requests_done}/{event.requests_total} requests, "
        f"{event.recipients_sent}/{event.recipients_total} recipients sent, "
        f"{event.rate:.1f} requests/s{eta}"
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@contextmanager
def _rich_reporter() -> Iterator[Callable[[ProgressEvent], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
    from rich.text import Text

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]sending"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[figures]}"),
        console=console,
        transient=False,
    )
    task = progress.add_task("send", total=None, figures="")

    def report(event: ProgressEvent) -> None:
        if event.kind != "progress":
            style = "yellow" if event.kind == "warning" else "dim"
            progress.console.print(Text(event.message, style=style))
            return
        progress.update(
            task,
            total=event.requests_total,
            completed=event.requests_done,
            figures=_figures(event),
        )

    with progress:
        yield report
