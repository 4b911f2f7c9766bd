"""What every command shares: settings, output and error mapping (the option declarations
are in `cli.options`, re-exported here).

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
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import typer
from typer._click import ClickException

from campaign.cli.options import (  # noqa: F401  (re-exported for the command modules)
    ConfigOption,
    DbOption,
    GatewayOption,
    HeaderRowOption,
    JsonOption,
    MobileColumnOption,
    SheetOption,
    TemplateOption,
    TextOption,
)
from campaign.errors import CampaignError, ExitCode, UsageError
from campaign.redact import redact

if TYPE_CHECKING:
    from campaign.config import Settings

P = ParamSpec("P")
R = TypeVar("R")
_json_printed: ContextVar[bool] = ContextVar("campaign_json_printed", default=False)


TEXT_HINT = "to give the text itself use --text"


def template_text(template: Path | None, text: str | None) -> str:
    """The template of `-t FILE` or `--text TEXT`: exactly one of them (else exit 2)."""
    from campaign.messages import check_template_text, load_template

    if template is not None and text is not None:
        raise UsageError("give the template either as -t FILE or as --text TEXT, not both")
    if text is not None:
        return check_template_text(text)
    if template is None:
        raise UsageError("a template is needed: -t FILE (a UTF-8 text file) or --text 'TEXT'")
    return load_template(template, hint=TEXT_HINT)


def settings_from(
    config: Path | None, db: str | None = None, gateway: str | None = None
) -> Settings:
    from campaign.config import load_settings

    return load_settings(config, db=db, gateway=gateway)


def resume_gateway(settings: Settings, given: str | None, record: Any) -> Settings:
    """`workflow.resume_gateway` (kept here for callers of the CLI package)."""
    from campaign.workflow import resume_gateway as chosen

    return chosen(settings, given, record)


def store_failures_raise(doing: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`campaign.store.engine.store_failures_raise`, looked up when the command runs: the
    store loads SQLAlchemy, which `campaign --help` should not wait for."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            from campaign.store.engine import store_failures_raise as guard

            return guard(doing)(func)(*args, **kwargs)

        return wrapper

    return decorate


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map library errors to `Error: ...` and the SPEC exit code; never a traceback.

    With `--json` (the command's `json_output` argument), a failure also prints one
    object `{"error": ..., "exit_code": N}` on stdout, unless the command printed its own.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("json_output"))
        _json_printed.set(False)
        try:
            return func(*args, **kwargs)
        except CampaignError as exc:
            fail(str(exc), exc.exit_code, as_json=as_json)
        except (KeyboardInterrupt, typer.Abort):  # Abort: Ctrl-C at a prompt
            fail("interrupted", ExitCode.INTERRUPTED, as_json=as_json)
        except (typer.Exit, SystemExit, ClickException):
            raise
        except Exception as exc:  # the last line of defence: one line, not a traceback
            if os.environ.get("CAMPAIGN_DEBUG"):
                raise
            fail(
                f"unexpected {type(exc).__name__}: {exc} (set CAMPAIGN_DEBUG=1 for a traceback)",
                ExitCode.UNEXPECTED,
                as_json=as_json,
            )
        raise AssertionError("unreachable")

    return wrapper


def fail(message: str, code: ExitCode, *, as_json: bool = False) -> NoReturn:
    """`Error: message` on stderr, exit `code`; with `as_json` also the error object on
    stdout, unless this command already printed its JSON object. The message goes through
    `redact` first: the last line of defence for secrets (campaign.redact)."""
    message = redact(message)
    typer.echo(f"Error: {message}", err=True)
    if as_json and not _json_printed.get():
        print_json({"error": message, "exit_code": int(code)})
    raise typer.Exit(int(code))


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))
    _json_printed.set(True)


def info(message: str) -> None:
    """A line for people, on stderr (stdout is reserved for summaries and JSON)."""
    typer.echo(redact(message), err=True)


def is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()
