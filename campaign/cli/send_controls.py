"""What a person does to a send from the terminal: confirm it before it starts, stop it
while it runs (Ctrl-C, or SIGTERM from outside)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from campaign.cli.common import fail
from campaign.errors import ExitCode


def confirm(figures: dict[str, Any]) -> bool:
    """Ask on stderr whether to send (default no); Ctrl-C at the question is exit 130."""
    question = (
        f"Send {figures['recipients']} recipients in {figures['requests']} requests "
        f"({figures['segments']} billed segments)?"
    )
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:  # Ctrl-C (or end of input) at the question
        fail("interrupted: nothing was sent (nothing stored)", ExitCode.INTERRUPTED)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """The library's stop request; SIGTERM sets it (Ctrl-C: `workflow.send` sets it)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
