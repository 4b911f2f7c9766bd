"""The options of queued sending (typer declarations only): `send --at/--queue`,
`resume --queue`, `worker --once`."""

from __future__ import annotations

from typing import Annotated

import typer

AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        metavar="'YYYY-MM-DD HH:MM'",
        help="Do not send now: store it `scheduled` for this China time; a worker sends it.",
        show_default=False,
    ),
]
QueueOption = Annotated[
    bool,
    typer.Option("--queue", help="Do not send here: store it `queued`; a worker sends it."),
]
ResumeQueueOption = Annotated[
    bool,
    typer.Option(
        "--queue", help="Hand it to the workers (`campaign worker`) instead of sending here."
    ),
]
OnceOption = Annotated[
    bool,
    typer.Option("--once", help="Send what is due now, then exit (for cron)."),
]
