"""Console users, their API tokens, the audit log and the console's secrets (schema 5).

- `users`: a name (unique), a role (`outcomes.Role`), an argon2id hash made by
  `campaign.passwords` (this module never sees a password), `disabled`.
- `api_tokens`: only the SHA-256 (hex) of a token is kept; `new_token` returns the token
  itself once. Removing a user removes its tokens.
- `audit`: who did what, when, from where (`outcomes.AuditAction`, a JSON detail).
- `web_secrets`: e.g. the session signing key made on a console's first start, so that
  sessions survive a restart and every console process on one store agrees on it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from campaign.errors import InputError
from campaign.outcomes import AuditAction, Role
from campaign.store.engine import write
from campaign.store.schema import api_tokens, audit, users, web_secrets
from campaign.timeutil import utcnow

TOKEN_PREFIX = "cmp_"
#: `last_used_at` of a token is written at most this often (a write per API call would
#: compete with the senders for SQLite's one write lock).
TOKEN_USE_RESOLUTION = timedelta(minutes=5)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role
    created_at: datetime
    disabled: bool = False
    password_hash: str = field(default="", repr=False)  # argon2id; never shown

    def may(self, needed: Role | str) -> bool:
        """Whether this user may do what `needed` may (and is not disabled)."""
        return not self.disabled and self.role.allows(Role(needed))


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    user_name: str | None
    action: str
    detail: dict[str, Any]
    ip: str | None


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were stored as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        created_at=_aware(row.created_at),
        disabled=bool(row.disabled),
        password_hash=row.password_hash,
    )


def add_user(engine: Engine, name: str, role: Role, password_hash: str) -> User:
    """Add a user; InputError (exit 3) when the name is taken."""
    try:
        with write(engine) as conn:
            conn.execute(
                insert(users).values(
                    name=name,
                    role=Role(role).value,
                    password_hash=password_hash,
                    created_at=utcnow(),
                    disabled=False,
                )
            )
    except IntegrityError:
        raise InputError(f"a user named {name!r} already exists") from None
    found = get_user(engine, name)
    assert found is not None
    return found


def get_user(engine: Engine, name: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
    return _user(row) if row is not None else None


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(select(users).order_by(users.c.name)).all()
    return [_user(row) for row in rows]


def count_users(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def remove_user(engine: Engine, name: str) -> bool:
    """Remove a user and its API tokens; False when there was no such user."""
    with write(engine) as conn:
        found = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
        if found is None:
            return False
        conn.execute(delete(api_tokens).where(api_tokens.c.user_id == found))
        conn.execute(delete(users).where(users.c.id == found))
    return True


def set_password(engine: Engine, name: str, password_hash: str) -> bool:
    """Replace a user's hash (its sessions end: they carry a fingerprint of the old one);
    False when there is no such user."""
    with write(engine) as conn:
        changed = conn.execute(
            update(users).where(users.c.name == name).values(password_hash=password_hash)
        )
    return changed.rowcount > 0


def set_role(engine: Engine, name: str, role: Role) -> bool:
    with write(engine) as conn:
        changed = conn.execute(update(users).where(users.c.name == name).values(role=role.value))
    return changed.rowcount > 0


def set_disabled(engine: Engine, name: str, disabled: bool) -> bool:
    with write(engine) as conn:
        changed = conn.execute(update(users).where(users.c.name == name).values(disabled=disabled))
    return changed.rowcount > 0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(engine: Engine, name: str) -> str:
    """A new API token for the user `name`, returned this once (only its hash is stored);
    InputError when there is no such user."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write(engine) as conn:
        user_id = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
        if user_id is None:
            raise InputError(f"no user named {name!r}")
        conn.execute(
            insert(api_tokens).values(
                user_id=user_id, token_hash=token_hash(token), created_at=utcnow()
            )
        )
    return token


def user_for_token(engine: Engine, token: str) -> User | None:
    """The user a token belongs to, or None (unknown token, disabled user)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    query = (
        select(users, api_tokens.c.id.label("token_id"), api_tokens.c.last_used_at)
        .join(api_tokens, api_tokens.c.user_id == users.c.id)
        .where(api_tokens.c.token_hash == token_hash(token))
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.disabled:
        return None
    now = utcnow()
    if row.last_used_at is None or now - _aware(row.last_used_at) > TOKEN_USE_RESOLUTION:
        with write(engine) as conn:
            conn.execute(
                update(api_tokens).where(api_tokens.c.id == row.token_id).values(last_used_at=now)
            )
    return _user(row)


def record_audit(
    engine: Engine,
    user_name: str | None,
    action: AuditAction,
    detail: Mapping[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """One row of the audit log (`detail` as a JSON object; values made text if need be)."""
    text = json.dumps(dict(detail or {}), ensure_ascii=False, default=str, sort_keys=True)
    with write(engine) as conn:
        conn.execute(
            insert(audit).values(
                at=utcnow(), user_name=user_name, action=str(action), detail=text, ip=ip
            )
        )


def _audit_filter(user_name: str | None, action: str | None) -> list[Any]:
    where = []
    if user_name is not None:
        where.append(audit.c.user_name == user_name)
    if action is not None:
        where.append(audit.c.action == str(action))
    return where


def audit_entries(
    engine: Engine,
    limit: int = 100,
    offset: int = 0,
    *,
    user_name: str | None = None,
    action: str | None = None,
) -> list[AuditEntry]:
    """The audit log, newest first; only `user_name`'s, or only `action`s, when given."""
    query = (
        select(audit)
        .where(*_audit_filter(user_name, action))
        .order_by(audit.c.at.desc(), audit.c.id.desc())
        .limit(max(0, limit))
        .offset(max(0, offset))
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        AuditEntry(
            id=row.id,
            at=_aware(row.at),
            user_name=row.user_name,
            action=row.action,
            detail=json.loads(row.detail) if row.detail else {},
            ip=row.ip,
        )
        for row in rows
    ]


def count_audit(engine: Engine, *, user_name: str | None = None, action: str | None = None) -> int:
    query = select(func.count()).select_from(audit).where(*_audit_filter(user_name, action))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _random_secret() -> str:
    return secrets.token_hex(32)


def web_secret(engine: Engine, key: str, make: Callable[[], str] = _random_secret) -> str:
    """The secret stored under `key`, made by `make` and stored the first time. Two
    processes asking at once agree: the first insert wins, the other reads it."""
    found = _read_secret(engine, key)
    if found is not None:
        return found
    try:
        with write(engine) as conn:
            conn.execute(insert(web_secrets).values(key=key, value=make()))
    except IntegrityError:
        pass  # another process stored one first: that one counts
    found = _read_secret(engine, key)
    assert found is not None
    return found


def _read_secret(engine: Engine, key: str) -> str | None:
    with engine.connect() as conn:
        value = conn.execute(select(web_secrets.c.value).where(web_secrets.c.key == key)).scalar()
    return None if value is None else str(value)


__all__ = [
    "AuditEntry",
    "User",
    "add_user",
    "audit_entries",
    "count_audit",
    "count_users",
    "get_user",
    "list_users",
    "new_token",
    "record_audit",
    "remove_user",
    "set_disabled",
    "set_password",
    "set_role",
    "user_for_token",
    "web_secret",
]
