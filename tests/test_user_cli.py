"""`campaign user add/list/passwd/remove/token` and the store of users (schema 5), on a real
SQLite file and, for the store functions, the real PostgreSQL too."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.errors import InputError
from campaign.outcomes import AuditAction, Role
from campaign.passwords import hash_password, verify_password
from campaign.store import open_store
from campaign.store import users as store

runner = CliRunner()
PASSWORD = "s3cret-Passw0rd-for-tests"
ENV = {"CAMPAIGN_USER_PASSWORD": PASSWORD}


def _user(*args: str, env: dict[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["user", *args], env=env if env is not None else ENV, input=input)


def _store_bytes(path: Path) -> bytes:
    """Every byte of the SQLite store: the file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


@pytest.fixture
def db(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "campaign.db"
    return f"sqlite:///{path}", path


def test_add_list_passwd_token_remove(db: tuple[str, Path]):
    url, path = db
    added = _user("add", "ann", "--role", "admin", "--db", url)
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == "added user ann (admin)"
    assert _user("add", "vic", "--db", url).exit_code == 0  # viewer by default
    listed = json.loads(_user("list", "--json", "--db", url).stdout)
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("ann", "admin", False),
        ("vic", "viewer", False),
    ]
    assert listed[0]["created_at"].endswith("+08:00")
    assert "password" not in json.dumps(listed) and "argon2" not in json.dumps(listed)
    plain = _user("list", "--db", url).stdout
    assert plain.startswith("ann\tadmin\t")

    engine = open_store(url)
    try:
        ann = store.get_user(engine, "ann")
        assert ann is not None and ann.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert verify_password(ann.password_hash, PASSWORD)

        changed = _user("passwd", "ann", "--db", url, env={"CAMPAIGN_USER_PASSWORD": "new-one"})
        assert changed.exit_code == 0, changed.output
        ann = store.get_user(engine, "ann")
        assert ann is not None and verify_password(ann.password_hash, "new-one")
        assert not verify_password(ann.password_hash, PASSWORD)

        made = _user("token", "ann", "--db", url)
        assert made.exit_code == 0, made.output
        token = made.stdout.strip()
        assert token.startswith("cmp_") and len(token) > 40 and "shown this once" in made.stderr
        found = store.user_for_token(engine, token)
        assert found is not None and found.name == "ann"
        assert store.user_for_token(engine, token + "x") is None

        stored = _store_bytes(path)
        for secret in (PASSWORD, "new-one", token):
            assert secret.encode() not in stored
        assert hashlib.sha256(token.encode()).hexdigest().encode() in stored

        removed = _user("remove", "ann", "--db", url)
        assert removed.exit_code == 0 and store.get_user(engine, "ann") is None
        assert store.user_for_token(engine, token) is None  # its tokens went with it
        actions = [e.action for e in reversed(store.audit_entries(engine))]
        assert actions == [
            AuditAction.USER_ADD,
            AuditAction.USER_ADD,
            AuditAction.PASSWORD_CHANGE,
            AuditAction.TOKEN_NEW,
            AuditAction.USER_REMOVE,
        ]
        assert all(
            e.user_name and e.user_name.startswith("cli:") for e in store.audit_entries(engine)
        )
    finally:
        engine.dispose()


def test_a_password_typed_twice_at_the_prompt(db: tuple[str, Path], monkeypatch):
    url, _ = db
    monkeypatch.setattr("campaign.cli.user.is_terminal", lambda: True)
    typed = _user("add", "ann", "--db", url, env={}, input="pw-one\npw-one\n")
    assert typed.exit_code == 0, typed.output
    differ = _user("add", "bob", "--db", url, env={}, input="pw-one\npw-two\n")
    assert differ.exit_code == 3 and "the two passwords differ" in differ.stderr
    assert "pw-one" not in typed.output + differ.output


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["add", "ann", "--role", "boss"], ENV, "the role must be one of viewer|sender|admin"),
        (["add", "ann"], {"CAMPAIGN_USER_PASSWORD": ""}, "the password cannot be empty"),
        (["add", "ann"], {}, "no password given: set CAMPAIGN_USER_PASSWORD"),
        (["add", "  "], ENV, "a user name cannot be empty"),
        (["add", "a\x07b"], ENV, "control characters"),
        (["remove", "nobody"], ENV, "no user named 'nobody'"),
        (["passwd", "nobody"], ENV, "no user named 'nobody'"),
        (["token", "nobody"], ENV, "no user named 'nobody'"),
    ],
)
def test_bad_input_is_exit_3(db: tuple[str, Path], args, env, message):
    url, _ = db
    result = _user(*args, "--db", url, env=env)
    assert result.exit_code == 3, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_an_existing_name_is_exit_3(db: tuple[str, Path]):
    url, _ = db
    assert _user("add", "ann", "--db", url).exit_code == 0
    again = _user("add", "ann", "--role", "admin", "--db", url)
    assert again.exit_code == 3 and "a user named 'ann' already exists" in again.stderr


def test_the_users_store_on_both_stores(store_url: str):
    engine = open_store(store_url)
    try:
        ann = store.add_user(engine, "ann", Role.SENDER, hash_password("x"))
        assert (ann.name, ann.role, ann.disabled) == ("ann", Role.SENDER, False)
        with pytest.raises(InputError, match="already exists"):
            store.add_user(engine, "ann", Role.ADMIN, hash_password("y"))
        store.add_user(engine, "bob", Role.VIEWER, hash_password("y"))
        assert [u.name for u in store.list_users(engine)] == ["ann", "bob"]
        assert store.count_users(engine) == 2
        assert ann.may(Role.VIEWER) and ann.may("sender") and not ann.may(Role.ADMIN)
        assert store.set_role(engine, "bob", Role.ADMIN) and store.set_disabled(engine, "bob", True)
        bob = store.get_user(engine, "bob")
        assert bob is not None and bob.role == Role.ADMIN and not bob.may(Role.VIEWER)

        token = store.new_token(engine, "bob")
        assert store.user_for_token(engine, token) is None  # disabled
        store.set_disabled(engine, "bob", False)
        assert store.user_for_token(engine, token) is not None
        with pytest.raises(InputError):
            store.new_token(engine, "nobody")

        store.record_audit(engine, "ann", AuditAction.LOGIN, {"n": 1, "text": "你好"}, "::1")
        store.record_audit(engine, None, AuditAction.SEND, None, None)
        newest, oldest = store.audit_entries(engine)
        assert (newest.action, newest.user_name, newest.detail) == ("send", None, {})
        assert (oldest.detail, oldest.ip) == ({"n": 1, "text": "你好"}, "::1")
        assert [e.action for e in store.audit_entries(engine, limit=1, offset=1)] == ["login"]
        assert store.count_audit(engine) == 2

        key = store.web_secret(engine, "session_key")
        assert len(key) == 64 and store.web_secret(engine, "session_key", lambda: "other") == key

        assert store.remove_user(engine, "bob") and not store.remove_user(engine, "bob")
        assert not store.set_password(engine, "bob", "h")
    finally:
        engine.dispose()


def test_a_schema_4_store_is_upgraded_to_5(db: tuple[str, Path]):
    url, path = db
    open_store(url).dispose()
    with sqlite3.connect(path) as conn:
        for table in ("users", "api_tokens", "audit", "web_secrets"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.close()
    assert _user("add", "ann", "--db", url).exit_code == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta").fetchone() == ("5",)
        assert conn.execute("SELECT name, role FROM users").fetchall() == [("ann", "viewer")]
    conn.close()
