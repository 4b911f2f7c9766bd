"""The facade's part for console users (`campaign user ...`, the users page): add, remove,
list, new password, API tokens. Typed results, no printing; bad input is an InputError
(exit 3): a name taken or unusable, a role not admin|sender|viewer, an empty password.
Passwords are hashed here (campaign.passwords, argon2id) and never stored or shown; every
change is in the audit log, by `actor` (the console user, or "cli:<OS user>").
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from campaign.config import Settings
from campaign.errors import InputError, NotFoundError
from campaign.outcomes import ROLES, AuditAction, Role
from campaign.passwords import hash_password
from campaign.store import users as store
from campaign.store.users import AuditEntry, User
from campaign.timeutil import china_iso

if TYPE_CHECKING:
    from sqlalchemy import Engine

MAX_NAME_CHARS = 64
MAX_PASSWORD_CHARS = 1024
ENV_USER_PASSWORD = "CAMPAIGN_USER_PASSWORD"
AUDIT_PAGE_SIZE = 50  # entries of one page of the audit log (the /audit page, the API)
MAX_AUDIT_PAGE = 10**6  # the highest page number asked for


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


@contextmanager
def _store(settings: Settings, engine: Engine | None) -> Iterator[Engine]:
    """`engine` (the console's, left open), else the store of `settings` for this call."""
    if engine is not None:
        yield engine
        return
    from campaign.store import open_store

    own = open_store(settings.store_url)
    try:
        yield own
    finally:
        own.dispose()


def _audit(
    engine: Engine, actor: str, action: AuditAction, detail: Mapping[str, object], ip: str | None
) -> None:
    store.record_audit(engine, actor, action, detail, ip)


def add_user(
    settings: Settings,
    name: str,
    role: str,
    password: str,
    *,
    actor: str,
    engine: Engine | None = None,
    ip: str | None = None,
) -> UserInfo:
    """Add a console user; InputError when the name is taken or anything is unusable."""
    name, chosen, password = check_name(name), check_role(role), check_password(password)
    with _store(settings, engine) as db:
        user = store.add_user(db, name, chosen, hash_password(password))
        _audit(db, actor, AuditAction.USER_ADD, {"name": name, "role": chosen}, ip)
        return _info(user)


def remove_user(
    settings: Settings,
    name: str,
    *,
    actor: str,
    engine: Engine | None = None,
    ip: str | None = None,
    keep_an_admin: bool = False,
) -> None:
    """Remove a user and its tokens; with `keep_an_admin` (the console), InputError when
    it is the last admin who may sign in (the CLI may: it does not need one)."""
    with _store(settings, engine) as db:
        if keep_an_admin:
            _keep_an_admin(db, name, "removed")
        if not store.remove_user(db, name):
            raise NotFoundError(f"no user named {name!r}")
        _audit(db, actor, AuditAction.USER_REMOVE, {"name": name}, ip)


def set_role(
    settings: Settings,
    name: str,
    role: str,
    *,
    actor: str,
    engine: Engine | None = None,
    ip: str | None = None,
) -> UserInfo:
    """Give a user another role; InputError when that leaves no admin who may sign in."""
    chosen = check_role(role)
    with _store(settings, engine) as db:
        before = _existing(db, name)
        if chosen is not Role.ADMIN:
            _keep_an_admin(db, name, f"made {chosen}")
        store.set_role(db, name, chosen)
        detail = {"name": name, "from": str(before.role), "to": str(chosen)}
        _audit(db, actor, AuditAction.USER_ROLE, detail, ip)
        return _info(_existing(db, name))


def set_disabled(
    settings: Settings,
    name: str,
    disabled: bool,
    *,
    actor: str,
    engine: Engine | None = None,
    ip: str | None = None,
) -> UserInfo:
    """Disable a user (no sign-in, no token; its sessions end) or enable it again;
    InputError when disabling leaves no admin who may sign in."""
    with _store(settings, engine) as db:
        _existing(db, name)
        if disabled:
            _keep_an_admin(db, name, "disabled")
        store.set_disabled(db, name, disabled)
        action = AuditAction.USER_DISABLE if disabled else AuditAction.USER_ENABLE
        _audit(db, actor, action, {"name": name}, ip)
        return _info(_existing(db, name))


def _existing(engine: Engine, name: str) -> User:
    found = store.get_user(engine, name)
    if found is None:
        raise NotFoundError(f"no user named {name!r}")
    return found


def _keep_an_admin(engine: Engine, name: str, change: str) -> None:
    """InputError when `name` is the last enabled admin (nobody could manage users then)."""
    admins = [u.name for u in store.list_users(engine) if u.role is Role.ADMIN and not u.disabled]
    if admins == [name]:
        raise InputError(f"{name!r} is the last admin who may sign in: it cannot be {change}")


def list_users(settings: Settings, *, engine: Engine | None = None) -> list[UserInfo]:
    with _store(settings, engine) as db:
        return [_info(user) for user in store.list_users(db)]


def count_users(settings: Settings) -> int:
    with _store(settings, None) as db:
        return store.count_users(db)


def change_password(
    settings: Settings,
    name: str,
    password: str,
    *,
    actor: str,
    engine: Engine | None = None,
    ip: str | None = None,
) -> None:
    """A new password (every session of the old one ends)."""
    password = check_password(password)
    with _store(settings, engine) as db:
        if not store.set_password(db, name, hash_password(password)):
            raise NotFoundError(f"no user named {name!r}")
        _audit(db, actor, AuditAction.PASSWORD_CHANGE, {"name": name}, ip)


def new_token(
    settings: Settings,
    name: str,
    *,
    actor: str,
    engine: Engine | None = None,
    ip: str | None = None,
) -> str:
    """A new API token of the user (returned once: only its hash is kept)."""
    with _store(settings, engine) as db:
        if store.get_user(db, name) is None:
            raise NotFoundError(f"no user named {name!r}")
        token = store.new_token(db, name)
        _audit(db, actor, AuditAction.TOKEN_NEW, {"name": name}, ip)
        return token


# --------------------------------------------------------------------------- audit log


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log (newest first) and how many entries match in all."""

    total: int
    entries: list[AuditEntry]


def audit_page(
    engine: Engine,
    *,
    limit: int = 100,
    offset: int = 0,
    user_name: str | None = None,
    action: str | None = None,
) -> AuditPage:
    """Entries of the audit log, only `user_name`'s or only `action`s when given."""
    if action is not None and action not in set(AuditAction):
        raise InputError(f"no audit action {action!r}")
    return AuditPage(
        store.count_audit(engine, user_name=user_name, action=action),
        store.audit_entries(engine, limit, offset, user_name=user_name, action=action),
    )


__all__ = [
    "AUDIT_PAGE_SIZE",
    "ENV_USER_PASSWORD",
    "MAX_AUDIT_PAGE",
    "AuditPage",
    "UserInfo",
    "add_user",
    "audit_page",
    "change_password",
    "check_name",
    "check_password",
    "check_role",
    "count_users",
    "list_users",
    "new_token",
    "remove_user",
    "set_disabled",
    "set_role",
]
