"""The typer application object; command modules register themselves on it.

`CampaignGroup` adds what every command shares: `-h` as well as `--help`, flags shown
without a type name in help, and a usage error given with `--json` printed as one JSON
object on stdout too (SPEC: with `--json`, a command that fails still prints one).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from typer._click import Command, Context
from typer._click.exceptions import UsageError  # typer >= 0.24 carries its own click
from typer.core import TyperGroup

import campaign
from campaign.cli.help_text import help_not_given_is_false, tidy_help

try:  # typer's pydantic adapters only for values that need converting (typer 0.29)
    from campaign.cli import coercion
except ImportError:  # a typer without that machinery: nothing to defer
    pass
else:
    coercion.install()

HELP_OPTION_NAMES = ["--help", "-h"]
_JSON_FLAG = "--json"
_JSON_META = "campaign.json_output"


class CampaignGroup(TyperGroup):
    """The top-level group of `campaign`."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        ctx.meta[_JSON_META] = _JSON_FLAG in _before_double_dash(args)
        help_not_given_is_false(self.get_help_option(ctx))
        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            _print_usage_json(ctx, exc)
            raise

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:  # of a command's own options and arguments
            _print_usage_json(ctx, exc)
            raise

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            tidy_help(command, ctx)
        return command

    def format_help(self, ctx: Context, formatter: Any) -> None:
        tidy_help(self, ctx, recurse=False)
        super().format_help(ctx, formatter)


def _before_double_dash(args: list[str]) -> list[str]:
    return args[: args.index("--")] if "--" in args else args


def _print_usage_json(ctx: Context, exc: UsageError) -> None:
    if ctx.meta.get(_JSON_META) and type(exc).__name__ != "NoArgsIsHelpError":
        message = exc.format_message()
        typer.echo(json.dumps({"error": message, "exit_code": exc.exit_code}, ensure_ascii=False))


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"campaign {campaign.__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="campaign",
    cls=CampaignGroup,
    help=(
        "Bulk SMS campaigns from Excel/CSV contact lists, with delivery reports joined back."
        "\n\nExample (check, send, then export the results):"
        "\n  campaign plan customers.xlsx -t spring.txt"
        "\n  campaign send customers.xlsx -t spring.txt"
        "\n  campaign export 1 -o results.xlsx"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": HELP_OPTION_NAMES},
)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version (campaign X.Y.Z) and exit.",
            is_eager=True,
            callback=_show_version,
        ),
    ] = False,
) -> None:
    """`campaign --version`; the app's help is the `help` of `app`."""
