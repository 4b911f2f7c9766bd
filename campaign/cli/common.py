"""What every command shares: option declarations, settings, output and error mapping.

The CLI package is the only place that prints or exits. Library code raises
`CampaignError`s; `handle_errors` turns them into `Error: ...` on stderr and the
exit code of SPEC.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from campaign.config import ENV_CONFIG, ENV_DB, ENV_GATEWAY, Settings, load_settings
from campaign.errors import CampaignError, ExitCode

P = ParamSpec("P")
R = TypeVar("R")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", envvar=ENV_CONFIG, help="TOML config file.", show_default=False),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=ENV_DB,
        help="Store URL (sqlite:///file.db or postgresql://...); default campaign.db here.",
        show_default=False,
    ),
]
GatewayOption = Annotated[
    str | None,
    typer.Option(
        "--gateway",
        envvar=ENV_GATEWAY,
        help="Gateway base URL, or 'simulator' for the built-in one.",
        show_default=False,
    ),
]
TemplateOption = Annotated[
    str,
    typer.Option("--template", "-t", help="Template file, or the text itself.", show_default=False),
]
SheetOption = Annotated[
    str | None, typer.Option("--sheet", help="Sheet of the workbooks.", show_default=False)
]
HeaderRowOption = Annotated[
    int | None,
    typer.Option("--header-row", help="Row number of the header (1-based).", show_default=False),
]
MobileColumnOption = Annotated[
    str | None,
    typer.Option("--mobile-column", help="Header of the mobile column.", show_default=False),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON object on stdout, nothing else.")
]


def settings_from(
    config: Path | None, db: str | None = None, gateway: str | None = None
) -> Settings:
    return load_settings(config, db=db, gateway=gateway)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map library errors to `Error: ...` and the SPEC exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CampaignError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", ExitCode.UNEXPECTED)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # the last line of defence: one line, not a traceback
            if os.environ.get("CAMPAIGN_DEBUG"):
                raise
            fail(
                f"unexpected {type(exc).__name__}: {exc} (set CAMPAIGN_DEBUG=1 for a traceback)",
                ExitCode.UNEXPECTED,
            )
        raise AssertionError("unreachable")

    return wrapper


def fail(message: str, code: ExitCode) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(int(code))


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


def info(message: str) -> None:
    """A line for people, on stderr (stdout is reserved for summaries and JSON)."""
    typer.echo(message, err=True)


def is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()
