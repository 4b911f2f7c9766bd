"""The web console's foundation, served for real (uvicorn on loopback, httpx, a real SQLite
store): sign-in and sessions, throttling, cookies, CSRF and Origin, security headers,
streamed uploads (413, generated names), languages, the vendored files, the worker."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from campaign import passwords
from campaign.config import GatewaySettings, Settings, load_settings
from campaign.errors import ConfigError
from campaign.outcomes import AuditAction, Role
from campaign.passwords import hash_password
from campaign.store.users import audit_entries, new_token, remove_user, set_password
from campaign.web import i18n_en, i18n_zh
from campaign.web.auth import require
from campaign.web.i18n import accepted_lang
from campaign.web.uploads import receive_files
from tests.support.console import Console, csrf_of, running_console, session_csrf, sign_in
from tests.support.simulator import free_port

WEB = Path(__file__).resolve().parent.parent / "campaign" / "web"
PASSWORD = "correct horse battery staple"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with small parameters here (the defaults take ~1 s on a loaded 2-core
    machine; tests/test_user_cli.py checks the real ones)."""
    monkeypatch.setattr(
        passwords, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


async def _upload(request: Request) -> Response:
    """A test route: what receive_files made of the body."""
    require(request, Role.SENDER)
    limit = request.app.state.settings.web.max_upload_bytes
    upload = await receive_files(request, limit_bytes=limit)
    files = [{"path": str(f.path), "name": f.name, "size": f.size} for f in upload.files]
    return JSONResponse({"files": files, "fields": upload.fields})


async def _whoami(request: Request) -> Response:
    user = require(request, Role.VIEWER)
    return JSONResponse({"name": user.name, "role": str(user.role)})


async def _admin_only(request: Request) -> Response:
    require(request, Role.ADMIN)
    return JSONResponse({"ok": True})


async def _boom(request: Request) -> Response:
    raise RuntimeError("boom")


TEST_ROUTES = [
    Route("/test/upload", _upload, methods=["POST"]),
    Route("/test/admin", _admin_only, methods=["GET"]),
    Route("/test/boom", _boom, methods=["GET"]),
    Route("/api/test/whoami", _whoami, methods=["GET", "POST"]),
]


def _settings(tmp_path: Path, **web: object) -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'campaign.db'}")
    return replace(settings, web=replace(settings.web, max_upload_mb=1, **web))  # type: ignore[arg-type]


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with _console(tmp_path) as running:
        yield running


def _console(tmp_path: Path, **web: object):  # type: ignore[no-untyped-def]
    from contextlib import contextmanager

    @contextmanager
    def made() -> Iterator[Console]:
        with running_console(_settings(tmp_path, **web), data_dir=tmp_path / "web") as running:
            running.app.router.routes[:0] = TEST_ROUTES
            running.add_user("ann", PASSWORD, Role.ADMIN)
            running.add_user("vic", PASSWORD, Role.VIEWER)
            yield running

    return made()


@pytest.fixture
def ann(console: Console) -> Iterator[httpx.Client]:
    with console.client() as client:
        assert sign_in(client, "ann", PASSWORD).status_code == 303
        yield client


# --------------------------------------------------------------------------- sign-in


def test_every_page_but_login_healthz_and_static_needs_a_session(console: Console):
    with console.client() as client:
        home = client.get("/", params={"lang": "en"})
        assert home.status_code == 303
        assert home.headers["location"] == "/login?next=%2F%3Flang%3Den"
        assert client.get("/test/admin").status_code == 303
        api = client.get("/api/test/whoami")
        assert api.status_code == 401 and api.json() == {"error": "sign-in needed"}
        assert api.headers["www-authenticate"] == "Bearer"
        assert client.get("/api/v1/campaigns").status_code == 401
        assert client.get("/login").status_code == 200
        assert client.get("/healthz").json() == {"ok": True, "store": "ok"}
        assert client.get("/static/htmx.min.js").status_code == 200
        assert client.get("/static/app.css").status_code == 200


def test_a_wrong_password_is_refused_and_both_are_audited(console: Console):
    with console.client() as client:
        wrong = sign_in(client, "ann", "not it")
        assert wrong.status_code == 401
        assert "用户名或密码不正确" in wrong.text and "not it" not in wrong.text
        assert client.get("/").status_code == 303  # still not signed in
        nobody = sign_in(client, "nobody", PASSWORD)
        assert nobody.status_code == 401
        right = sign_in(client, "ann", PASSWORD)
        assert right.status_code == 303 and right.headers["location"] == "/"
        assert client.get("/").status_code == 200
    entries = audit_entries(console.engine)
    seen = [(e.user_name, e.action, e.ip) for e in reversed(entries)]
    assert seen == [
        ("ann", AuditAction.LOGIN_FAILED, "127.0.0.1"),
        ("nobody", AuditAction.LOGIN_FAILED, "127.0.0.1"),
        ("ann", AuditAction.LOGIN, "127.0.0.1"),
    ]
    assert all(PASSWORD not in str(e.detail) and "not it" not in str(e.detail) for e in entries)


def test_sign_in_goes_only_to_a_local_next_path(console: Console):
    with console.client() as client:
        token = csrf_of(client.get("/login").text)
        form = {"csrf_token": token, "name": "ann", "password": PASSWORD}
        away = client.post("/login", data={**form, "next": "//evil.example/x"})
        assert away.headers["location"] == "/"
        client.post("/logout", data={"csrf_token": session_csrf(client)})
        token = csrf_of(client.get("/login").text)
        local = client.post("/login", data={**form, "csrf_token": token, "next": "/health?x=1"})
        assert local.headers["location"] == "/health?x=1"


def test_five_failures_throttle_the_name_from_that_address(console: Console):
    with console.client() as client:
        for _ in range(5):
            assert sign_in(client, "ann", "wrong").status_code == 401
        throttled = sign_in(client, "ann", PASSWORD)  # even the right password now
        assert throttled.status_code == 429
        assert 800 <= int(throttled.headers["retry-after"]) <= 900
        assert "登录失败次数过多" in throttled.text
        assert client.get("/").status_code == 303
        assert sign_in(client, "vic", PASSWORD).status_code == 303  # another name is not
    failed = [e for e in audit_entries(console.engine) if e.action == AuditAction.LOGIN_FAILED]
    assert len(failed) == 6 and failed[0].detail == {"why": "throttled"}


def test_the_session_cookie_is_httponly_strict_and_secure_only_under_https(tmp_path: Path):
    with _console(tmp_path / "plain") as console:
        with console.client() as client:
            cookie = sign_in(client, "ann", PASSWORD).headers["set-cookie"]
            assert cookie.startswith("campaign_session=")
            flags = {part.strip().lower() for part in cookie.split(";")}
            assert "httponly" in flags and "samesite=strict" in flags and "secure" not in flags
        with console.client() as client:  # a proxy's word is not believed unless trusted
            cookie = sign_in(client, "ann", PASSWORD, **{"X-Forwarded-Proto": "https"})
            assert "secure" not in cookie.headers["set-cookie"].lower()
    with _console(tmp_path / "proxied", trust_proxy=True) as console, console.client() as client:
        https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        page = client.get("/login", headers=https)
        assert "secure" in page.headers["set-cookie"].lower()
        cookie = page.headers["set-cookie"].split(";")[0]  # httpx keeps Secure ones for https
        form = {"csrf_token": csrf_of(page.text), "name": "ann", "password": PASSWORD}
        origin = f"https://{client.base_url.netloc.decode()}"
        signed = client.post(
            "/login", data=form, headers={**https, "Origin": origin, "Cookie": cookie}
        )
        assert signed.status_code == 303
        flags = {part.strip().lower() for part in signed.headers["set-cookie"].split(";")}
        assert {"httponly", "samesite=strict", "secure"} <= flags
        assert signed.headers["strict-transport-security"].startswith("max-age=")
        [login] = [e for e in audit_entries(console.engine) if e.action == AuditAction.LOGIN]
        assert login.ip == "203.0.113.9"


def test_a_new_password_or_removal_ends_the_sessions(console: Console, ann: httpx.Client):
    assert ann.get("/").status_code == 200
    set_password(console.engine, "ann", hash_password("another one"))
    assert ann.get("/").status_code == 303
    with console.client() as client:
        assert sign_in(client, "vic", PASSWORD).status_code == 303
        remove_user(console.engine, "vic")
        assert client.get("/").status_code == 303


def test_roles_are_checked(console: Console, ann: httpx.Client):
    assert ann.get("/test/admin").json() == {"ok": True}
    with console.client() as client:
        sign_in(client, "vic", PASSWORD)
        forbidden = client.get("/test/admin")
        assert forbidden.status_code == 403 and "没有权限" in forbidden.text
        token = session_csrf(client)
        refused = client.post("/test/upload", files={"files": ("a.csv", b"x")},
                              headers={"X-CSRF-Token": token})  # fmt: skip
        assert refused.status_code == 403


def test_bearer_tokens_authenticate_the_api_without_csrf(console: Console):
    token = new_token(console.engine, "vic")
    with console.client() as client:
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/test/whoami", headers=bearer).json() == {
            "name": "vic",
            "role": "viewer",
        }
        assert client.post("/api/test/whoami", headers=bearer).status_code == 200
        wrong = client.get("/api/test/whoami", headers={"Authorization": "Bearer cmp_nope"})
        assert wrong.status_code == 401
        assert client.get("/", headers=bearer).status_code == 303  # pages want a session


# --------------------------------------------------------------------------- CSRF


def test_csrf_token_missing_or_wrong_is_403(console: Console, ann: httpx.Client):
    token = session_csrf(ann)
    assert ann.post("/logout").status_code == 403
    assert ann.post("/logout", data={"csrf_token": "x" * 43}).status_code == 403
    assert ann.post("/logout", headers={"X-CSRF-Token": "nope"}).status_code == 403
    api = ann.post("/api/test/whoami")
    assert api.status_code == 403 and "CSRF" in api.json()["error"]
    assert ann.post("/api/test/whoami", headers={"X-CSRF-Token": token}).status_code == 200
    multipart = ann.post("/test/upload", files={"files": ("a.csv", b"1\n")})
    assert multipart.status_code == 403  # no token field first
    with_field = ann.post(
        "/test/upload", data={"csrf_token": token}, files={"files": ("a.csv", b"1\n")}
    )
    assert with_field.status_code == 200
    assert ann.get("/").status_code == 200  # nothing of that signed anyone out
    out = ann.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303 and ann.get("/").status_code == 303
    with console.client() as client:  # the sign-in form is protected too
        client.get("/login")
        form = {"name": "ann", "password": PASSWORD}
        assert client.post("/login", data=form).status_code == 403


def test_a_cross_site_origin_is_403(console: Console, ann: httpx.Client):
    token = session_csrf(ann)
    evil = ann.post(
        "/logout", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403
    fetched = ann.post(
        "/logout", data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert fetched.status_code == 403
    assert ann.get("/").status_code == 200
    same = ann.post("/logout", data={"csrf_token": token}, headers={"Origin": console.url})
    assert same.status_code == 303


# --------------------------------------------------------------------------- headers


def _check_headers(response: httpx.Response, *, static: bool = False) -> None:
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    if not static:
        assert response.headers["cache-control"] == "no-store"


def test_security_headers_are_on_every_response(console: Console, ann: httpx.Client):
    with console.client() as anonymous:
        for response in (
            anonymous.get("/login"),
            anonymous.get("/"),
            anonymous.get("/healthz"),
            anonymous.get("/nowhere"),
            anonymous.get("/api/v1/nowhere"),
            anonymous.post("/login", data={"name": "x"}),  # 403 of the CSRF guard
            anonymous.get("/api/test/whoami"),
        ):
            _check_headers(response)
        _check_headers(anonymous.get("/static/htmx.min.js"), static=True)
    _check_headers(ann.get("/"))
    boom = ann.get("/test/boom")  # uvicorn closes the connection after it
    assert boom.status_code == 500 and "RuntimeError" not in boom.text
    _check_headers(boom)


def test_templates_hold_no_inline_script_or_style():
    for path in (WEB / "templates").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", text), path
        assert "javascript:" not in text, path


def test_the_vendored_files_are_the_published_ones():
    static = WEB / "static"
    vendored = (static / "VENDORED.md").read_text(encoding="utf-8")
    for name, version in (("htmx.min.js", "2.0.11"), ("sse.js", "2.2.4")):
        digest = hashlib.sha256((static / name).read_bytes()).hexdigest()
        row = next(line for line in vendored.splitlines() if line.startswith(f"| {name} "))
        assert version in row and digest in row, name


def _raw(client: httpx.Client, url: str, encoding: str) -> tuple[httpx.Response, int, str]:
    """The response, the bytes that crossed the wire (body) and the decoded text."""
    with client.stream("GET", url, headers={"Accept-Encoding": encoding}) as response:
        text = response.read().decode("utf-8")
        return response, response.num_bytes_downloaded, text


def test_pages_and_static_files_are_gzipped_when_asked(console: Console, ann: httpx.Client):
    with console.client() as anonymous:
        for url in ("/login", "/static/htmx.min.js", "/static/app.css"):
            plain, plain_bytes, plain_text = _raw(anonymous, url, "identity")
            packed, packed_bytes, packed_text = _raw(anonymous, url, "gzip")
            assert "content-encoding" not in plain.headers, url
            assert packed.headers["content-encoding"] == "gzip", url
            assert "accept-encoding" in packed.headers["vary"].lower(), url
            assert packed_bytes < plain_bytes / 2, (url, packed_bytes, plain_bytes)
            assert packed_text == plain_text, url  # one session: the same CSRF token
            _check_headers(packed, static=url.startswith("/static/"))
    page, _, _ = _raw(ann, "/", "gzip")
    assert (
        page.headers["content-encoding"] == "gzip" and page.headers["cache-control"] == "no-store"
    )


def test_event_streams_are_never_gzipped(console: Console, ann: httpx.Client):
    headers = {"Accept-Encoding": "gzip"}
    with ann.stream("GET", "/campaigns/events", headers=headers, timeout=10) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in answer.headers
        first = next(answer.iter_lines())  # arrives at once: nothing buffers it
        assert first == "retry: 2000"


# --------------------------------------------------------------------------- uploads


def _leftovers(console: Console) -> list[Path]:
    return [p for p in (console.data_dir / "uploads").rglob("*") if p.is_file()]


def test_an_upload_over_the_limit_is_413_and_leaves_no_file(console: Console, ann: httpx.Client):
    token = session_csrf(ann)
    big = b"13800138000\n" * 200_000  # 2.4 MB, the limit is 1 MB
    refused = ann.post(
        "/test/upload", data={"csrf_token": token}, files={"files": ("big.csv", big)}
    )
    assert refused.status_code == 413 and "1 MB" in refused.text
    _check_headers(refused)
    assert _leftovers(console) == []

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        boundary = b"--xyz"
        yield boundary + b'\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        yield token.encode() + b"\r\n" + boundary
        yield b'\r\nContent-Disposition: form-data; name="files"; filename="big.csv"\r\n\r\n'
        for _ in range(40):
            yield b"1" * 65536
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = ann.post(
        "/test/upload",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=xyz", "X-CSRF-Token": token},
    )
    assert streamed.status_code == 413
    assert _leftovers(console) == []
    assert ann.get("/").status_code == 200  # the connection and the session survive


def test_uploaded_files_get_generated_names(console: Console, ann: httpx.Client, tmp_path: Path):
    token = session_csrf(ann)
    files = [
        ("files", ("../../x", b"evil\n")),
        ("files", ("名单.XLSX", b"PK")),
        ("files", ('<script>alert(1)</script>".csv', b"a\n")),
        ("other", ("ignored.csv", b"b\n")),
    ]
    made = ann.post(
        "/test/upload", data={"csrf_token": token, "template": "你好 {name}"}, files=files
    )
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["fields"] == {"csrf_token": [token], "template": ["你好 {name}"]}
    uploads = (console.data_dir / "uploads").resolve()
    names = []
    for entry in body["files"]:
        path = Path(entry["path"]).resolve()
        assert path.parent.parent == uploads and path.is_file()
        names.append((path.name, entry["name"], entry["size"]))
    assert names == [
        ("upload-1", "../../x", 5),  # the name as sent: metadata, never a path
        ("upload-2.xlsx", "名单.XLSX", 2),
        ("upload-3.csv", '<script>alert(1)</script>".csv', 2),  # sent as %22: decoded
    ]
    assert not (tmp_path / "x").exists() and not (console.data_dir / "x").exists()


def test_a_malformed_upload_is_400_and_leaves_no_file(console: Console, ann: httpx.Client):
    token = session_csrf(ann)
    bad = ann.post(
        "/test/upload",
        content=b'--b\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\nab',
        headers={"Content-Type": "multipart/form-data; boundary=b", "X-CSRF-Token": token},
    )
    assert bad.status_code == 400
    assert _leftovers(console) == []
    plain = ann.post("/test/upload", data={"a": "b"}, headers={"X-CSRF-Token": token})
    assert plain.status_code == 400


# --------------------------------------------------------------------------- languages


def _fields(text: str) -> set[str]:
    """The {field}s `t` fills: ASCII names in single braces."""
    return set(re.findall(r"(?<!\{)\{([A-Za-z_]\w*)\}(?!\})", text))


def test_the_catalogs_have_the_same_keys():
    """One key set; a text filled with fields has the same fields in both languages (texts
    shown as they are, e.g. examples of the template syntax such as {列名}, are left out:
    `t` formats only when given fields)."""
    assert i18n_zh.CATALOG.keys() == i18n_en.CATALOG.keys()
    verbatim = re.compile(r"\{[^}]*[^\x00-\x7f][^}]*\}")
    for key, text in i18n_zh.CATALOG.items():
        english = i18n_en.CATALOG[key]
        if verbatim.search(text) or verbatim.search(english):
            continue
        assert _fields(text) == _fields(english), key


def test_chinese_by_default_english_by_browser_or_choice(console: Console):
    with console.client() as client:
        page = client.get("/login")
        assert '<html lang="zh-CN">' in page.text and "用户名" in page.text
        english = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
        assert '<html lang="en">' in english.text and ">Username<" in english.text
        assert ">Sign in<" in english.text and ">Password<" in english.text
        chosen = client.get("/login", params={"lang": "en"})
        assert "campaign_lang=en" in chosen.headers["set-cookie"]
        assert ">Username<" in client.get("/login").text  # remembered (cookie)
        back = client.get("/login", params={"lang": "zh"}, headers={"Accept-Language": "en"})
        assert "用户名" in back.text
        assert "用户名" in client.get("/login", headers={"Accept-Language": "en"}).text


def test_accept_language_picks_by_quality():
    assert accepted_lang("fr-FR, en;q=0.5, zh;q=0.4") == "en"
    assert accepted_lang("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert accepted_lang("en;q=0.2, zh-TW;q=0.8") == "zh"
    assert accepted_lang("fr, de") is None
    assert accepted_lang("en;q=0") is None


def test_user_values_are_escaped_in_pages(console: Console):
    console.add_user('<img src=x onerror=alert(1)>"{{7*7}}', PASSWORD)
    with console.client() as client:
        page = sign_in(client, "<script>alert(1)</script>", "x").text
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
        sign_in(client, '<img src=x onerror=alert(1)>"{{7*7}}', PASSWORD)
        home = client.get("/").text
        assert "<img src=x" not in home and "&lt;img src=x onerror=alert(1)&gt;" in home
        assert "{{7*7}}" in home and "49" not in home


# --------------------------------------------------------------------------- app


def test_the_worker_runs_with_the_app_and_stops_with_it(tmp_path: Path):
    settings = replace(_settings(tmp_path), gateway=GatewaySettings(url="simulator"))
    with running_console(settings, data_dir=tmp_path / "web", run_worker=True) as console:
        worker = console.app.state.worker
        deadline = time.monotonic() + 10
        while not worker.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.running and worker.error is None
    assert not worker.running


def test_the_session_key_is_kept_in_the_store(tmp_path: Path):
    with _console(tmp_path) as console, console.client() as client:
        sign_in(client, "ann", PASSWORD)
        cookies = dict(client.cookies)
    settings = _settings(tmp_path)
    with (
        running_console(settings, data_dir=tmp_path / "web") as again,
        again.client(cookies=cookies) as client,
    ):
        assert client.get("/").status_code == 200  # the same key after a restart


def test_web_settings_are_checked(tmp_path: Path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[web]\nhost = "0.0.0.0"\nport = 9000\nmax_upload_mb = 5\ntrust_proxy = true\n'
        f'secret_key = "{"k" * 32}"\n',
        encoding="utf-8",
    )
    web = load_settings(config).web
    assert (web.host, web.port, web.max_upload_bytes, web.trust_proxy) == (
        "0.0.0.0",
        9000,
        5 * 1024 * 1024,
        True,
    )
    assert "k" * 32 not in repr(load_settings(config))
    for bad, message in (
        ("port = 70000", "web.port"),
        ("max_upload_mb = 0", "web.max_upload_mb"),
        ('secret_key = "short"', "at least 32"),
        ("trust_proxy = 1", "true or false"),
        ("colour = 1", "web.colour"),
    ):
        config.write_text(f"[web]\n{bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_settings(config)


def test_campaign_web_serves_and_says_how_to_make_the_first_admin(tmp_path: Path):
    port = free_port()
    url = f"sqlite:///{tmp_path / 'campaign.db'}"
    command = [sys.executable, "-m", "campaign", "web", "--db", url, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--no-worker"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert health.json() == {"ok": True, "store": "ok"}
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    text = err.decode()
    assert f"campaign user add NAME --role admin --db {url}" in text
    assert f"console at http://127.0.0.1:{port}/" in text and "warning" not in text
    assert process.returncode == 0 and "Traceback" not in text
