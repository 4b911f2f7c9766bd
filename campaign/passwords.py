"""Password hashes of console users: argon2id with argon2-cffi's default parameters.

Only the hash is stored (`users.password_hash`, an encoded `$argon2id$...` string that
carries its own salt and parameters); a password never reaches the store, a log or a URL.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id, memory-hard (64 MiB, 3 passes, 4 lanes)


@functools.cache
def _dummy_hash() -> str:
    """Checked against when a user does not exist, so that a wrong name costs the same
    time; made on first use (an argon2 hash costs ~0.1-0.2 s: not at every import)."""
    return _HASHER.hash("not a password of anyone")


def hash_password(password: str) -> str:
    """The encoded argon2id hash of `password` (a fresh random salt every time)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches `password_hash`; never raises. With no hash (no such
    user) a dummy hash is checked all the same and False returned."""
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's defaults."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True
