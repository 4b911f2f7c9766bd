"""The typer application object; command modules register themselves on it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="campaign",
    help="Bulk SMS campaigns from Excel/CSV contact lists, with delivery reports joined back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
