"""The console's users and audit pages (web/pages_admin.py), end to end: a real uvicorn on
a loopback port serving `create_app` on a real SQLite store, httpx clients signed in
through the sign-in form. What an admin does on /users is checked by what the user can
then do (sign in, reach pages, use a token) and by the audit log on /audit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from campaign import workflow_users
from campaign.config import Settings
from campaign.errors import InputError
from campaign.outcomes import Role
from campaign.store import open_store
from campaign.store.users import get_user
from campaign.web.pages_admin import detail_text
from tests.support.console import Console, csrf_of, running_console, sign_in

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("admin")
    store_url = f"sqlite:///{folder / 'campaign.db'}"
    engine = open_store(store_url)
    settings = Settings(store_url=store_url)
    with running_console(settings, data_dir=folder / "web", engine=engine) as running:
        running.add_user("ann", PASSWORD, Role.ADMIN)
        running.add_user("sam", PASSWORD, Role.SENDER)
        yield running
    engine.dispose()


@pytest.fixture(scope="module")
def admin(console: Console) -> Iterator[httpx.Client]:
    with signed_in(console, "ann") as client:
        yield client


def client_of(console: Console) -> httpx.Client:
    client = console.client()
    client.headers["Accept-Language"] = "en"
    return client


@contextmanager
def signed_in(console: Console, name: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    with client_of(console) as client:
        answer = sign_in(client, name, password)
        assert answer.status_code == 303, answer.text[:300]
        yield client


def can_sign_in(console: Console, name: str, password: str) -> bool:
    with client_of(console) as client:
        return sign_in(client, name, password).status_code == 303


def post(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    token = csrf_of(client.get("/users").text)
    return client.post(path, data={"csrf_token": token, **fields})


def audit_rows(client: httpx.Client, **params: str) -> list[list[str]]:
    page = client.get("/audit", params=params)
    assert page.status_code == 200, page.text[:300]
    body = re.search(r'<table class="audit">.*?<tbody>(.*?)</tbody>', page.text, re.S)
    if body is None:
        return []
    return [
        [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    ]


def _text(cell: str) -> str:
    """A cell's text: tags stripped, whitespace collapsed (entities left as they are)."""
    return " ".join(re.sub(r"<[^>]+>", " ", cell).split())


def user_row(page: str, name: str) -> str:
    found = re.search(rf'<tr data-user="{re.escape(name)}">(.*?)</tr>', page, re.S)
    assert found, f"no row of {name}"
    return found.group(1)


# --------------------------------------------------------------------------- users


def test_an_added_user_can_sign_in_with_its_role(console: Console, admin: httpx.Client) -> None:
    added = post(admin, "/users/add", name="nina", role="sender", password="pw-nina-1",
                 password2="pw-nina-1")  # fmt: skip
    assert added.status_code == 303 and added.headers["location"] == "/users"
    page = admin.get("/users")
    assert "Added nina (sender)." in page.text
    assert '<option value="sender" selected>' in user_row(page.text, "nina")
    with signed_in(console, "nina", "pw-nina-1") as nina:
        assert nina.get("/optouts").status_code == 200
        assert nina.get("/users").status_code == 403
    stored = get_user(console.engine, "nina")
    assert stored is not None and stored.role is Role.SENDER
    assert "pw-nina-1" not in stored.password_hash


def test_a_refused_add_says_why_and_adds_nothing(console: Console, admin: httpx.Client) -> None:
    taken = post(admin, "/users/add", name="sam", role="viewer", password="x", password2="x")
    assert taken.status_code == 422
    assert "The user was not added:" in taken.text and "already exists" in taken.text
    differ = post(admin, "/users/add", name="olga", role="viewer", password="a", password2="b")
    assert differ.status_code == 422 and "The two passwords differ." in differ.text
    bad_role = post(admin, "/users/add", name="olga", role="root", password="a", password2="a")
    assert bad_role.status_code == 422 and "the role must be one of" in bad_role.text
    empty = post(admin, "/users/add", name="olga", role="viewer", password="", password2="")
    assert empty.status_code == 422
    assert get_user(console.engine, "olga") is None


def test_role_password_disable_enable_token_remove(console: Console, admin: httpx.Client) -> None:
    post(admin, "/users/add", name="otto", role="sender", password="pw-1", password2="pw-1")
    with signed_in(console, "otto", "pw-1") as otto:
        token = csrf_of(otto.get("/optouts").text)
        assert post(admin, "/users/role", name="otto", role="viewer").status_code == 303
        assert "otto is now viewer." in admin.get("/users").text
        refused = otto.post("/optouts/add", data={"csrf_token": token, "mobiles": "13800138000"})
        assert refused.status_code == 403  # the role is read on every request
        changed = post(admin, "/users/password", name="otto", password="pw-2", password2="pw-2")
        assert changed.status_code == 303
        assert otto.get("/optouts").status_code == 303  # its session ended
    assert not can_sign_in(console, "otto", "pw-1") and can_sign_in(console, "otto", "pw-2")

    assert post(admin, "/users/disable", name="otto").status_code == 303
    assert "otto is disabled" in admin.get("/users").text
    assert "disabled" in user_row(admin.get("/users").text, "otto")
    assert not can_sign_in(console, "otto", "pw-2")
    assert post(admin, "/users/enable", name="otto").status_code == 303
    assert can_sign_in(console, "otto", "pw-2")

    made = post(admin, "/users/token", name="otto")
    assert made.status_code == 200
    found = re.search(r'id="new-token" class="token" readonly value="(cmp_[^"]+)"', made.text)
    assert found and "it is shown this once" in made.text
    token_text = found.group(1)
    api = httpx.get(f"{console.url}/api/v1/campaigns",
                    headers={"Authorization": f"Bearer {token_text}"})  # fmt: skip
    assert api.status_code == 200
    assert token_text not in admin.get("/users").text
    assert token_text not in str(admin.cookies.get("campaign_session"))

    asked = post(admin, "/users/remove", name="otto")
    assert asked.status_code == 200 and "Remove the user otto?" in asked.text
    assert get_user(console.engine, "otto") is not None
    assert post(admin, "/users/remove", name="otto", confirm="yes").status_code == 303
    assert "otto is removed, with its tokens." in admin.get("/users").text
    assert get_user(console.engine, "otto") is None
    assert not can_sign_in(console, "otto", "pw-2")
    gone = httpx.get(f"{console.url}/api/v1/campaigns",
                     headers={"Authorization": f"Bearer {token_text}"})  # fmt: skip
    assert gone.status_code == 401


def test_an_admin_cannot_lock_itself_out(console: Console, admin: httpx.Client) -> None:
    for path, fields in (
        ("/users/remove", {"confirm": "yes"}),
        ("/users/remove", {}),
        ("/users/disable", {}),
        ("/users/role", {"role": "sender"}),
    ):
        refused = post(admin, path, name="ann", **fields)
        assert refused.status_code == 422, path
        assert "You cannot remove, disable or demote your own account" in refused.text
    ann = get_user(console.engine, "ann")
    assert ann is not None and ann.role is Role.ADMIN and not ann.disabled
    assert post(admin, "/users/role", name="ann", role="admin").status_code == 303


def test_the_last_admin_is_kept(console: Console) -> None:
    settings, engine = console.settings, console.engine
    for change in (
        lambda: workflow_users.set_role(settings, "ann", "viewer", actor="x", engine=engine),
        lambda: workflow_users.set_disabled(settings, "ann", True, actor="x", engine=engine),
        lambda: workflow_users.remove_user(
            settings, "ann", actor="x", engine=engine, keep_an_admin=True
        ),
    ):
        with pytest.raises(InputError, match="last admin"):
            change()
    ann = get_user(engine, "ann")
    assert ann is not None and ann.role is Role.ADMIN and not ann.disabled


def test_unknown_users_are_refused(admin: httpx.Client) -> None:
    for path in ("/users/role", "/users/password", "/users/disable", "/users/token"):
        fields = {"role": "viewer", "password": "p", "password2": "p"}
        refused = post(admin, path, name="nobody", **fields)
        assert refused.status_code == 422 and "no user named" in refused.text, path


def test_names_and_details_are_escaped(console: Console, admin: httpx.Client) -> None:
    name = '<img src=x onerror="alert(1)">'
    assert post(admin, "/users/add", name=name, role="viewer", password="p",
                password2="p").status_code == 303  # fmt: skip
    users = admin.get("/users").text
    audit = admin.get("/audit").text
    for page in (users, audit):
        assert "<img src=x" not in page and "&lt;img src=x onerror=" in page


def test_senders_and_viewers_may_not_manage_users(console: Console, admin: httpx.Client) -> None:
    post(admin, "/users/add", name="vera", role="viewer", password="pw", password2="pw")
    for name, password in (("sam", PASSWORD), ("vera", "pw")):
        with signed_in(console, name, password) as client:
            assert client.get("/users").status_code == 403
            assert client.get("/audit").status_code == 403
            token = csrf_of(client.get("/optouts").text)
            for path in ("/users/add", "/users/role", "/users/remove", "/users/token"):
                fields = {"csrf_token": token, "name": name, "role": "admin", "password": "p",
                          "password2": "p", "confirm": "yes"}  # fmt: skip
                assert client.post(path, data=fields).status_code == 403, path
    sam = get_user(console.engine, "sam")
    assert sam is not None and sam.role is Role.SENDER
    assert get_user(console.engine, "vera") is not None


def test_changes_need_the_csrf_token(console: Console, admin: httpx.Client) -> None:
    bare = admin.post("/users/add", data={"name": "zed", "role": "admin", "password": "p",
                                          "password2": "p"})  # fmt: skip
    assert bare.status_code == 403
    assert get_user(console.engine, "zed") is None


# --------------------------------------------------------------------------- audit


def test_the_audit_page_lists_what_was_done(console: Console, admin: httpx.Client) -> None:
    post(admin, "/users/add", name="paul", role="viewer", password="pw", password2="pw")
    post(admin, "/users/role", name="paul", role="sender")
    post(admin, "/users/password", name="paul", password="pw2", password2="pw2")
    post(admin, "/users/disable", name="paul")
    post(admin, "/users/enable", name="paul")
    post(admin, "/users/token", name="paul")
    post(admin, "/users/remove", name="paul", confirm="yes")
    rows = audit_rows(admin, user="ann")
    paul = [r for r in rows if "name: paul" in r[3]]
    assert [r[2] for r in paul] == [
        "user_remove",
        "token_new",
        "user_enable",
        "user_disable",
        "password_change",
        "user_role",
        "user_add",
    ]  # newest first
    assert all(r[1] == "ann" and r[4] == "127.0.0.1" for r in paul)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", paul[0][0])
    assert "from: viewer; name: paul; to: sender" in [r[3] for r in paul if r[2] == "user_role"]
    assert any(r[2] == "login" for r in rows)
    added = audit_rows(admin, action="user_add")
    assert added and all(r[2] == "user_add" for r in added)
    assert "pw2" not in admin.get("/audit").text
    bad = admin.get("/audit", params={"action": "<nope>"})
    assert bad.status_code == 422 and "No such action: showing all." in bad.text


def test_the_audit_page_is_paged(console: Console, admin: httpx.Client) -> None:
    from campaign.outcomes import AuditAction
    from campaign.store.users import record_audit

    for n in range(55):
        record_audit(console.engine, "pager", AuditAction.LOGOUT, {"n": n}, "10.0.0.1")
    first = admin.get("/audit", params={"user": "pager"})
    assert "Page 1 of 2" in first.text and len(audit_rows(admin, user="pager")) == 50
    second = audit_rows(admin, user="pager", page="2")
    assert [r[3] for r in second] == [f"n: {n}" for n in range(4, -1, -1)]


def test_detail_text_masks_numbers_and_is_short() -> None:
    detail: dict[str, Any] = {"mobiles": ["13800138000"], "added": 1, "note": "x" * 400}
    text = detail_text(detail)
    assert text.startswith('added: 1; mobiles: ["138****8000"]; note: xxx')
    assert len(text) == 300 and text.endswith("…")
    assert detail_text({"mobile": "13900001111"}) == "mobile: 139****1111"


def test_no_secret_in_pages(admin: httpx.Client) -> None:
    page = admin.get("/users").text
    assert "argon2" not in page and PASSWORD not in page
