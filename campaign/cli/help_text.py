"""Help that reads well, and that costs no more than it must to print.

`tidy_help` reflows paragraphs and names values (FILE, N, TEXT) instead of Python types;
`help_not_given_is_false` keeps typer from loading pydantic for a help flag not given.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer._click import Command, Context
from typer.core import TyperArgument, TyperGroup

_VALUE_NAMES = {"path": "FILE", "int": "N", "float": "N"}


def help_not_given_is_false(option: Any) -> None:
    """-h/--help not given: False rather than None. Typer coerces a flag's None through a
    pydantic TypeAdapter (importing pydantic, ~0.1 s on this machine) and a bool not at all;
    `campaign plan --help` would pay it for the group's own help flag."""
    if option is not None:
        option.default = False


def tidy_help(command: Command, ctx: Context, *, recurse: bool = True) -> None:
    """Help that reads well: paragraphs reflowed, value names (FILE, N, TEXT), never
    Python types like `<bool>`.

    Flags (and -h/--help) take no value: nothing is shown beside them. An option without
    a metavar of its own gets one from its type; an argument's metavar is its name.
    """
    if command.help:
        command.help = reflow(command.help)
    help_option = command.get_help_option(ctx)
    help_not_given_is_false(help_option)
    for param in [*command.params, help_option]:
        if isinstance(param, TyperArgument):
            param.display_type_rich = _no_type  # type: ignore[method-assign]
        elif param is not None and param.metavar is None:
            param.metavar = "" if getattr(param, "is_flag", False) else _value_name(param, ctx)
    if recurse and isinstance(command, TyperGroup):
        for sub in command.commands.values():
            tidy_help(sub, ctx)


def reflow(text: str) -> str:
    """Join the lines of each paragraph of a docstring (rich help keeps line breaks), except
    in paragraphs with indented lines: examples stay one command a line."""
    paragraphs = [p.strip("\n") for p in inspect.cleandoc(text).split("\n\n")]
    kept = [p if _has_indented_line(p) else " ".join(p.split("\n")) for p in paragraphs]
    if len(kept) > 1 and _has_indented_line(kept[1]):
        # rich help dedents the text after the first paragraph as a docstring, ignoring its
        # first line: an empty first line keeps an example's indentation
        kept[1] = "\n" + kept[1]
    return "\n\n".join(kept)


def _has_indented_line(paragraph: str) -> bool:
    return any(line[:1].isspace() for line in paragraph.split("\n"))


def _value_name(param: Any, ctx: Context) -> str:
    shown = str(param.display_type(ctx)).strip("<>")
    if "|" in shown:  # a choice: its values say more than any name
        return shown
    return _VALUE_NAMES.get(shown.removesuffix(" range"), "TEXT")


def _no_type(ctx: Context) -> None:
    return None
