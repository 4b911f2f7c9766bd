"""The facade's part for console users (`campaign user ...`, the users page): add, remove,
list, new password, API tokens. Typed results, no printing; bad input is an InputError
(exit 3): a name taken or unusable, a role not admin|sender|viewer, an empty password.
Passwords are hashed here (campaign.passwords, argon2id) and never stored or shown; every
change is in the audit log, by `actor` (the console user, or "cli:<OS user>").
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from campaign.config import Settings
from campaign.errors import InputError, NotFoundError
from campaign.outcomes import ROLES, AuditAction, Role
from campaign.passwords import hash_password
from campaign.store import users as store
from campaign.store.users import User
from campaign.timeutil import china_iso

if TYPE_CHECKING:
    from sqlalchemy import Engine

MAX_NAME_CHARS = 64
MAX_PASSWORD_CHARS = 1024
ENV_USER_PASSWORD = "CAMPAIGN_USER_PASSWORD"


@dataclass(frozen=True)
class UserInfo:
    """A user as shown: never its hash."""

    name: str
    role: Role
    created_at: datetime
    disabled: bool

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": str(self.role),
            "created_at": china_iso(self.created_at),
            "disabled": self.disabled,
        }


def _info(user: User) -> UserInfo:
    return UserInfo(user.name, user.role, user.created_at, user.disabled)


def check_name(name: str) -> str:
    """A user name: 1-64 characters, no spaces at the ends, no control characters."""
    name = unicodedata.normalize("NFC", name or "").strip()
    if not name:
        raise InputError("a user name cannot be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InputError(f"a user name has at most {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InputError("a user name cannot hold control characters")
    return name


def check_role(role: str) -> Role:
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        choices = "|".join(ROLES)
        raise InputError(f"the role must be one of {choices}, not {role!r}") from None


def check_password(password: str) -> str:
    if not password:
        raise InputError("the password cannot be empty")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InputError(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    return password


def _engine(settings: Settings) -> Engine:
    from campaign.store import open_store

    return open_store(settings.store_url)


def add_user(settings: Settings, name: str, role: str, password: str, *, actor: str) -> UserInfo:
    """Add a console user; InputError when the name is taken or anything is unusable."""
    name, chosen, password = check_name(name), check_role(role), check_password(password)
    engine = _engine(settings)
    try:
        user = store.add_user(engine, name, chosen, hash_password(password))
        store.record_audit(engine, actor, AuditAction.USER_ADD, {"name": name, "role": chosen})
        return _info(user)
    finally:
        engine.dispose()


def remove_user(settings: Settings, name: str, *, actor: str) -> None:
    engine = _engine(settings)
    try:
        if not store.remove_user(engine, name):
            raise NotFoundError(f"no user named {name!r}")
        store.record_audit(engine, actor, AuditAction.USER_REMOVE, {"name": name})
    finally:
        engine.dispose()


def list_users(settings: Settings) -> list[UserInfo]:
    engine = _engine(settings)
    try:
        return [_info(user) for user in store.list_users(engine)]
    finally:
        engine.dispose()


def count_users(settings: Settings) -> int:
    engine = _engine(settings)
    try:
        return store.count_users(engine)
    finally:
        engine.dispose()


def change_password(settings: Settings, name: str, password: str, *, actor: str) -> None:
    """A new password (every session of the old one ends)."""
    password = check_password(password)
    engine = _engine(settings)
    try:
        if not store.set_password(engine, name, hash_password(password)):
            raise NotFoundError(f"no user named {name!r}")
        store.record_audit(engine, actor, AuditAction.PASSWORD_CHANGE, {"name": name})
    finally:
        engine.dispose()


def new_token(settings: Settings, name: str, *, actor: str) -> str:
    """A new API token of the user (returned once: only its hash is kept)."""
    engine = _engine(settings)
    try:
        if store.get_user(engine, name) is None:
            raise NotFoundError(f"no user named {name!r}")
        token = store.new_token(engine, name)
        store.record_audit(engine, actor, AuditAction.TOKEN_NEW, {"name": name})
        return token
    finally:
        engine.dispose()


__all__ = [
    "ENV_USER_PASSWORD",
    "UserInfo",
    "add_user",
    "change_password",
    "check_name",
    "check_password",
    "check_role",
    "count_users",
    "list_users",
    "new_token",
    "remove_user",
]
