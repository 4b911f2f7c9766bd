"""Issue 15, real-browser test 1 (and the keyboard part of 8): every page but sign-in needs
a session; a wrong password is refused; a viewer cannot send; sign-in works from the
keyboard alone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.kit import (
    SIGN_IN_PATH,
    Console,
    api_token,
    app_routes,
    concrete,
    has_route,
    http_client,
    http_signed_in,
    mobile,
    path_of,
    screenshot,
    seed_campaign,
    seed_folder,
    submit_sign_in,
    write_csv,
)

PUBLIC = {SIGN_IN_PATH, "/healthz"}
SEND_CONTROLS = re.compile(r"^\s*(Send|Pause|Resume|Cancel|New campaign)\b")


def is_sign_in_redirect(response: Any, wanted_next: str) -> bool:
    if response.status_code not in (302, 303, 307):
        return False
    target = urlsplit(response.headers["location"])
    return target.path == SIGN_IN_PATH and parse_qs(target.query).get("next") == [wanted_next]


@pytest.fixture(scope="module")
def scheduled(console: Console) -> int:
    """A campaign scheduled for tomorrow (so that senders see pause and cancel)."""
    from campaign.store.queue import schedule

    rows = [{"姓名": f"客户{n}", "手机号": mobile(n)} for n in range(3)]
    files = [write_csv(seed_folder(console) / "名单.csv", rows)]
    campaign_id = seed_campaign(console, files)
    schedule(console.engine, campaign_id, datetime.now(UTC) + timedelta(days=1))
    return campaign_id


# --------------------------------------------------------------------------- sessions


def test_every_page_and_api_route_but_sign_in_needs_a_session(console: Console) -> None:
    routes = app_routes(console.app)
    assert any(path == "/" for path, _ in routes), "the console has no campaigns page"
    with http_client(console) as client:
        for path, methods in routes:
            if path in PUBLIC:
                continue
            url = concrete(path)
            if "GET" in methods:
                got = client.get(url)
                if url.startswith("/api/"):
                    assert got.status_code == 401, (url, got.status_code)
                    assert "error" in got.json(), url
                else:
                    assert is_sign_in_redirect(got, url), (url, got.status_code, got.headers)
            for method in methods - {"GET", "HEAD", "OPTIONS"}:
                got = client.request(method, url, headers={"Origin": console.url})
                assert got.status_code in (303, 401, 403), (method, url, got.status_code)


def test_a_page_opened_without_a_session_asks_to_sign_in_then_shows_it(
    new_page: Any, console: Console
) -> None:
    wanted = "/optouts" if any(p == "/optouts" for p, _ in app_routes(console.app)) else "/"
    page = new_page("en")
    page.goto(wanted)
    assert path_of(page) == SIGN_IN_PATH
    assert parse_qs(urlsplit(page.url).query).get("next") == [wanted]
    screenshot(page, "login")
    submit_sign_in(page, console.user("viewer"), console.password)
    assert path_of(page) == wanted


def test_the_next_address_never_leads_to_another_site(new_page: Any, console: Console) -> None:
    page = new_page("en")
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        page.goto(f"{SIGN_IN_PATH}?next={target}")
        submit_sign_in(page, console.user("viewer"), console.password)
        assert page.url.startswith(console.url), (target, page.url)
        page.context.clear_cookies()


@pytest.mark.parametrize("who", ["wrong password", "unknown user"])
def test_a_wrong_password_is_refused(new_page: Any, console: Console, who: str) -> None:
    page = new_page("zh")
    page.goto(SIGN_IN_PATH)
    name = console.user("sender") if who == "wrong password" else "nobody-here"
    submit_sign_in(page, name, console.password + "x")
    assert path_of(page) == SIGN_IN_PATH
    assert console.password not in page.content()
    if who == "wrong password":
        screenshot(page, "login-refused")
    page.goto("/")
    assert path_of(page) == SIGN_IN_PATH, "a refused sign-in still opened a session"


# --------------------------------------------------------------------------- roles


def _send_controls(page: Any) -> list[str]:
    found = []
    for role in ("button", "link"):
        found += page.get_by_role(role, name=SEND_CONTROLS).all_inner_texts()
    return found


def test_a_viewer_sees_no_control_that_sends(new_page: Any, signed_in: Any, scheduled: int) -> None:
    viewer = signed_in(new_page("en"), "viewer")
    sender = signed_in(new_page("en"), "sender")
    for path in ("/", f"/campaigns/{scheduled}"):
        for page in (viewer, sender):
            answer = page.goto(path)
            assert answer is not None and answer.status == 200, path
        assert _send_controls(sender), f"a sender sees no send control on {path}"
        assert _send_controls(viewer) == [], f"a viewer sees send controls on {path}"
    screenshot(viewer, "campaign-viewer")
    answer = viewer.goto("/new")
    assert answer is not None and answer.status == 403


def test_a_viewer_cannot_send_through_forms_or_the_api(console: Console, scheduled: int) -> None:
    from campaign.store.campaigns import get_campaign

    before = get_campaign(console.engine, str(scheduled)).state
    with http_signed_in(console, "viewer") as (client, token):
        headers = {"X-CSRF-Token": token, "Origin": console.url}
        posts = ("/new", f"/campaigns/{scheduled}/cancel", f"/campaigns/{scheduled}/pause")
        for path in [p for p in posts if has_route(console.app, "POST", p)]:
            got = client.post(path, data={"csrf_token": token}, headers=headers)
            assert got.status_code == 403, (path, got.status_code)
    bearer = {"Authorization": f"Bearer {api_token(console, 'viewer')}"}
    with http_client(console) as api:
        got = api.post("/api/v1/campaigns", json={"plan_id": "x", "name": "x"}, headers=bearer)
        assert got.status_code == 403
        got = api.post(f"/api/v1/campaigns/{scheduled}/cancel", headers=bearer)
        assert got.status_code == 403
        got = api.post("/api/v1/plans", files={"files": ("a.csv", b"mobile\n13800138000\n")},
                       data={"template": "x"}, headers=bearer)  # fmt: skip
        assert got.status_code == 403
    assert get_campaign(console.engine, str(scheduled)).state == before


# --------------------------------------------------------------------------- keyboard


def _focused(page: Any) -> dict[str, str]:
    return dict(
        page.evaluate(
            "() => { const e = document.activeElement;"
            " return {tag: e.tagName, type: e.type || '', name: e.name || ''}; }"
        )
    )


def test_sign_in_works_from_the_keyboard_alone(new_page: Any, console: Console) -> None:
    page = new_page("zh")
    page.goto(SIGN_IN_PATH)
    for _ in range(15):  # focused at once, or reached by Tab past the links before it
        if _focused(page)["tag"] == "INPUT":
            break
        page.keyboard.press("Tab")
    first = _focused(page)
    assert first["tag"] == "INPUT" and first["type"] in ("text", "email"), first
    page.keyboard.type(console.user("sender"))
    page.keyboard.press("Tab")
    assert _focused(page)["type"] == "password"
    page.keyboard.type(console.password)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert path_of(page) == "/"
