"""Command-line interface: `campaign COMMAND ...` (see SPEC.md for the contract).

Each command module registers its commands on `app` when imported; the order of the
imports is the order of `campaign --help`. A command module imports `workflow` (and with
it the store, pandas, SQLAlchemy, ...) inside its commands, never at the top: `campaign
--help` loads none of them (tests/test_cli_startup.py, bench/bench_startup.py).
"""

# isort: skip_file
from __future__ import annotations

from campaign.cli import (  # noqa: F401  (imported for their registrations)
    demo,
    plan,
    send,
    queue,
    status,
    reports,
    serve,
    export,
    gateway,
    optout,
    run,
    web,
    user,
)
from campaign.cli import quick_exit
from campaign.cli.app import app


def main() -> None:
    quick_exit.allow(False)  # only the command run now can allow it
    try:
        app()
    except SystemExit as exc:
        quick_exit.exit_now(exc.code)  # a command that allowed it ends here
        raise


__all__ = ["app", "main"]
