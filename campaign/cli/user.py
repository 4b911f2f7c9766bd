"""`campaign user add/remove/list/passwd/token`: the web console's users.

A password comes from CAMPAIGN_USER_PASSWORD, else from a prompt (typed twice, not shown).
Only its argon2id hash is stored; an API token is printed once (only its hash is kept).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from campaign.cli.app import app
from campaign.cli.common import handle_errors, info, is_terminal, print_json, settings_from
from campaign.cli.options import ConfigOption, DbOption, JsonOption
from campaign.errors import InputError
from campaign.timeutil import china_text

user_app = typer.Typer(
    help="Manage the users of the web console (`campaign web`) and their API tokens."
    "\n\nExample:\n  campaign user add ann --role admin",
    no_args_is_help=True,
)
app.add_typer(user_app, name="user")

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The user's name.")]
RoleOption = Annotated[
    str,
    typer.Option(
        "--role", metavar="admin|sender|viewer", help="What the user may do (default: viewer)."
    ),
]


def _password() -> str:
    """CAMPAIGN_USER_PASSWORD, else typed twice at a prompt."""
    from campaign import workflow_users

    given = os.environ.get(workflow_users.ENV_USER_PASSWORD)
    if given is not None:
        return workflow_users.check_password(given)
    if not is_terminal():
        raise InputError(
            f"no password given: set {workflow_users.ENV_USER_PASSWORD} or run this in a terminal"
        )
    first = typer.prompt("Password", hide_input=True, default="", show_default=False)
    workflow_users.check_password(first)
    if typer.prompt("Password again", hide_input=True, default="", show_default=False) != first:
        raise InputError("the two passwords differ")
    return first


def _actor() -> str:
    from campaign.workflow import os_user

    return f"cli:{os_user('unknown')}"


@user_app.command("add")
@handle_errors
def add(
    name: NameArg, role: RoleOption = "viewer", config: ConfigOption = None, db: DbOption = None
) -> None:
    """Add a console user (password from CAMPAIGN_USER_PASSWORD or a prompt).

    Example:
      campaign user add ann --role admin
    """
    from campaign import workflow_users

    settings = settings_from(config, db)
    workflow_users.check_name(name)
    workflow_users.check_role(role)
    added = workflow_users.add_user(settings, name, role, _password(), actor=_actor())
    typer.echo(f"added user {added.name} ({added.role})")


@user_app.command("remove")
@handle_errors
def remove(name: NameArg, config: ConfigOption = None, db: DbOption = None) -> None:
    """Remove a console user and its API tokens (its sessions end at once).

    Example:
      campaign user remove ann
    """
    from campaign import workflow_users

    workflow_users.remove_user(settings_from(config, db), name, actor=_actor())
    typer.echo(f"removed user {name}")


@user_app.command("list")
@handle_errors
def list_(
    config: ConfigOption = None, db: DbOption = None, json_output: JsonOption = False
) -> None:
    """List the console users: name, role, when added, disabled.

    Example:
      campaign user list --json
    """
    from campaign import workflow_users

    found = workflow_users.list_users(settings_from(config, db))
    if json_output:
        print_json([user.to_json() for user in found])
        return
    if not found:
        info("no users yet: campaign user add NAME --role admin")
    for user in found:
        disabled = "  disabled" if user.disabled else ""
        typer.echo(f"{user.name}\t{user.role}\t{china_text(user.created_at)}{disabled}")


@user_app.command("passwd")
@handle_errors
def passwd(name: NameArg, config: ConfigOption = None, db: DbOption = None) -> None:
    """Set a user's password (CAMPAIGN_USER_PASSWORD or a prompt); its sessions end.

    Example:
      campaign user passwd ann
    """
    from campaign import workflow_users

    settings = settings_from(config, db)
    workflow_users.change_password(settings, name, _password(), actor=_actor())
    typer.echo(f"changed the password of {name}")


@user_app.command("token")
@handle_errors
def token(name: NameArg, config: ConfigOption = None, db: DbOption = None) -> None:
    """Make a new API token for a user and print it (once: only its hash is kept).

    Example:
      curl -H "Authorization: Bearer $(campaign user token ann)" localhost:8000/api/v1/campaigns
    """
    from campaign import workflow_users

    made = workflow_users.new_token(settings_from(config, db), name, actor=_actor())
    info("the token is shown this once: keep it somewhere safe")
    typer.echo(made)
