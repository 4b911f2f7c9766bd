"""Command-line interface: `campaign COMMAND ...` (see SPEC.md for the contract).

Each command module registers its commands on `app` when imported.
"""

from __future__ import annotations

from campaign.cli.app import app

# Command modules: imported for their registrations, in the order of `campaign --help`.
_COMMAND_MODULES = (
    "demo",
    "plan",
    "send",
    "reports",
    "serve",
    "export",
    "gateway",
    "optout",
    "run",
)


def _register() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(f"campaign.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"campaign.cli.{name}":
                raise


_register()


def main() -> None:
    app()


__all__ = ["app", "main"]
