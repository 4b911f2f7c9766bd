"""Issue 15, real-browser test 7, at the HTTP level (httpx against the console on loopback):
a state-changing request without the session's CSRF token, with a wrong one, or from a
cross-site Origin is refused (403); an upload over [web] max_upload_mb is refused (413)
while it is read, and no file of it is left behind."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.kit import (
    SIGN_IN_PATH,
    UPLOAD_LIMIT_MB,
    Console,
    api_token,
    app_routes,
    concrete,
    has_route,
    http_client,
    http_signed_in,
    login_fields,
    mobile,
    path_of,
    screenshot,
    seed_campaign,
    seed_folder,
    write_csv,
)

CROSS_SITE = "http://evil.example"
OVER_LIMIT = UPLOAD_LIMIT_MB * 1024 * 1024 + 300_000


@pytest.fixture(scope="module", autouse=True)
def one_campaign(console: Console) -> int:
    """Campaign 1 exists, so a route's `{id}` filled with 1 names a real campaign."""
    rows = [{"姓名": "甲", "手机号": mobile(1)}]
    return seed_campaign(console, [write_csv(seed_folder(console) / "名单.csv", rows)])


def form_posts(app: Any) -> list[str]:
    """The console's state-changing page routes (session-authenticated), filled in."""
    found = []
    for path, methods in app_routes(app):
        if path.startswith("/api/") or path == SIGN_IN_PATH:
            continue
        if methods & {"POST", "PUT", "PATCH", "DELETE"}:
            found.append(concrete(path))
    return sorted(set(found))


def test_form_posts_without_the_right_csrf_token_or_from_another_site_are_refused(
    console: Console,
) -> None:
    posts = form_posts(console.app)
    assert posts, "the console has no state-changing page route"
    with http_signed_in(console, "sender") as (client, token):
        for path in posts:
            same_site = {"Origin": console.url}
            attempts = {
                "no token": client.post(path, headers=same_site),
                "wrong token": client.post(
                    path,
                    data={"csrf_token": token[::-1]},
                    headers={**same_site, "X-CSRF-Token": token[::-1]},
                ),
                "cross-site origin": client.post(
                    path,
                    data={"csrf_token": token},
                    headers={"Origin": CROSS_SITE, "X-CSRF-Token": token},
                ),
            }
            for what, got in attempts.items():
                assert got.status_code == 403, (path, what, got.status_code)
        # the control: the same session with its token does get through
        if has_route(console.app, "POST", "/logout"):
            got = client.post("/logout", data={"csrf_token": token}, headers=same_site)
            assert got.status_code in (200, 302, 303), got.status_code


def test_the_api_with_a_session_cookie_but_no_csrf_token_is_refused(console: Console) -> None:
    with http_signed_in(console, "sender") as (client, _token):
        got = client.post("/api/v1/optouts", json={"mobiles": [mobile(9)]})
        assert got.status_code in (401, 403), got.status_code
    from campaign import workflow

    assert mobile(9) not in workflow.suppressed(console.engine)


def test_sign_in_from_another_site_is_refused(console: Console) -> None:
    with http_client(console) as client:
        form = client.get(SIGN_IN_PATH)
        fields = login_fields(form.text, console.user("sender"), console.password)
        got = client.post(SIGN_IN_PATH, data=fields, headers={"Origin": CROSS_SITE})
        assert got.status_code == 403
        assert client.get("/").status_code in (302, 303), "the cross-site sign-in opened a session"


def test_repeated_wrong_passwords_are_throttled(console: Console) -> None:
    name = f"guess-{uuid.uuid4().hex[:6]}"
    with http_client(console) as client:
        form = client.get(SIGN_IN_PATH)
        fields = login_fields(form.text, name, "wrong")
        codes = [
            client.post(SIGN_IN_PATH, data=fields, headers={"Origin": console.url}).status_code
            for _ in range(6)
        ]
        assert 429 not in codes[:5], codes
        assert codes[5] == 429, codes


def test_pages_carry_the_security_headers(console: Console) -> None:
    with http_signed_in(console, "viewer") as (client, _token):
        for path in (SIGN_IN_PATH, "/"):
            headers = client.get(path).headers
            policy = headers["content-security-policy"]
            assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
            assert headers["x-content-type-options"] == "nosniff"
            assert "no-store" in headers["cache-control"]


# --------------------------------------------------------------------------- 413


def multipart(size: int, boundary: str = "campaign-test-boundary") -> tuple[bytes, str]:
    """A multipart body with one `files` part of about `size` bytes of contacts."""
    line = b"13800138000,\xe5\xae\xa2\xe6\x88\xb7\n"
    content = b"mobile,name\n" + line * (size // len(line) + 1)
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="template"\r\n\r\n'
            "您好\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="files"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def uploaded_files(console: Console) -> list[Path]:
    """Files the console keeps of uploads (its data_dir, the store and logs left out)."""
    return [p for p in files_in(console.data_dir) if not re.search(r"\.(db|log)", p.name)]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_upload_over_the_limit_is_refused_and_leaves_no_file(
    console: Console, framing: str
) -> None:
    body, kind = multipart(OVER_LIMIT)
    before = uploaded_files(console)
    with http_signed_in(console, "sender") as (client, token):
        headers = {"Content-Type": kind, "X-CSRF-Token": token, "Origin": console.url}
        content: Any = body if framing == "content-length" else chunks(body)
        got = client.post("/new", content=content, headers=headers)
        assert got.status_code == 413, (got.status_code, got.text[:300])
    assert uploaded_files(console) == before


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_api_upload_over_the_limit_is_refused_and_leaves_no_file(
    console: Console, framing: str
) -> None:
    body, kind = multipart(OVER_LIMIT)
    before = uploaded_files(console)
    headers = {"Content-Type": kind, "Authorization": f"Bearer {api_token(console, 'sender')}"}
    with http_client(console) as client:
        content: Any = body if framing == "content-length" else chunks(body)
        got = client.post("/api/v1/plans", content=content, headers=headers)
        assert got.status_code == 413, (got.status_code, got.text[:300])
        assert "error" in got.json()
    assert uploaded_files(console) == before


def test_an_upload_over_the_limit_in_the_browser_says_so(
    new_page: Any, signed_in: Any, console: Console, tmp_path: Path
) -> None:
    body, _kind = multipart(OVER_LIMIT)
    big = tmp_path / "大名单.csv"
    big.write_bytes(body[body.index(b"mobile,name") :])
    before = uploaded_files(console)
    page = signed_in(new_page("en"), "sender")
    page.goto("/new")
    page.get_by_label("Contact files").set_input_files(str(big))
    with page.expect_navigation() as navigation:
        page.locator("form.new-upload button[type=submit]").click()
    assert navigation.value is not None and navigation.value.status == 413
    assert f"at most {UPLOAD_LIMIT_MB} MB" in page.inner_text("main")
    assert page.locator("form.new-upload").count() == 1  # the form again, not an error page
    assert path_of(page) == "/new"
    screenshot(page, "upload_too_large")
    assert uploaded_files(console) == before
