"""Build typer's pydantic TypeAdapter of a parameter only when a value needs converting.

typer (0.29) builds a pydantic TypeAdapter for each parameter of the command being run
before it looks at the value, even for an option not given: ~25 ms apiece, a fifth of a
`campaign status`. Here a parameter gets a stand-in that hands back what needs no
conversion (an option not given; a str option given a str, which typer's adapter returns
unchanged; a list[str] argument given strs, which it returns as a list) and builds typer's
own coercion the first time a value needs it, so every conversion and every error message
stays typer's. A typer without `typer._coercion` (other than 0.29's) makes this module
fail to import, and the CLI then runs without it (campaign/cli/app.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from typer import core as typer_core
from typer._click import Context
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param


@dataclass(frozen=True)
class LazyRuntimeParam(RuntimeParam):
    """typer's coercion of one parameter, built on first use."""

    descriptor: TypeDescriptor
    built: list[RuntimeParam] = field(default_factory=list)  # typer's, once built

    def _coerce_value(self, value: Any, param: Any, ctx: Context) -> Any:
        if self._text_only():
            annotation: Any = self.annotation
            if annotation is str and type(value) is str:
                return value
            if (
                get_origin(annotation) is list
                and get_args(annotation) == (str,)
                and isinstance(value, (list, tuple))
                and all(type(item) is str for item in value)
            ):
                return list(value)
        if not self.built:
            self.built.append(build_runtime_param(self.descriptor))
        return self.built[0]._coerce_value(value, param=param, ctx=ctx)

    def _text_only(self) -> bool:
        """No parser, path, file or choices: typer's adapter leaves a str as it is."""
        descriptor = self.descriptor
        return descriptor.parameter_info.parser is None and not (
            descriptor.is_file or descriptor.is_path or descriptor.is_choice
        )


def lazy_runtime_param(descriptor: TypeDescriptor) -> RuntimeParam:
    return LazyRuntimeParam(
        parameter_info=descriptor.parameter_info,
        annotation=descriptor.annotation,
        descriptor=descriptor,
    )


def install() -> None:
    """Make typer's commands use `lazy_runtime_param` (see the module docstring), where
    typer's parameters build their coercion through `typer.core.build_runtime_param`."""
    if hasattr(typer_core, "build_runtime_param"):
        typer_core.build_runtime_param = lazy_runtime_param
