"""What the browser tests share besides their fixtures (those are in conftest.py): the
console served on loopback, pages that may ask no other host, sign-in, the axe check,
screenshots, contact files and seeded campaigns, and signed-in HTTP clients (httpx) for
the checks that need no browser.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("CAMPAIGN_SCREENSHOTS") or ROOT / "tests/browser/screenshots")
PASSWORD = "马上-correct-horse-7"  # every test user's; long enough for any password rule
ROLES = ("admin", "sender", "viewer")
UPLOAD_LIMIT_MB = 1  # the console's [web] max_upload_mb in these tests (the 413 checks)
LOCALES = {"zh": "zh-CN", "en": "en-US"}
SERIOUS = {"serious", "critical"}
SIGN_IN_PATH = "/login"
GATEWAY_RATE = 200.0  # requests a second: a personalised list is one request per recipient


# --------------------------------------------------------------------------- the console


@dataclass
class Console:
    """The console under test and what it runs against."""

    url: str  # http://127.0.0.1:PORT, also its origin
    app: Any
    settings: Any
    engine: Any
    simulator: Any
    receiver: Any
    folder: Path  # the module's scratch folder (the store, data_dir, seeded files)
    data_dir: Path
    users: dict[str, str] = field(default_factory=dict)  # role -> user name
    password: str = PASSWORD

    def user(self, role: str) -> str:
        return self.users[role]


class Uvicorn:
    """An ASGI app served by uvicorn in a thread on a free loopback port (lifespan on)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from campaign.receiver import listen

        self._sock = listen("127.0.0.1", 0)
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="console", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the console did not start")
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self._sock.close()


def console_settings(store_url: str, simulator: Any, receiver: Any) -> Any:
    """Settings of the console under test: the simulator as gateway, the receiver's address
    (the health page asks it), a small upload limit."""
    from campaign.config import GatewaySettings, ReceiverSettings, Settings

    gateway = GatewaySettings(
        url=simulator.url,
        account=simulator.account,
        password=simulator.password,
        timeout=5.0,
        rate=GATEWAY_RATE,
    )
    pushes = ReceiverSettings(host=receiver.host, port=receiver.port)
    settings = Settings(gateway=gateway, receiver=pushes, store_url=store_url)
    return replace(settings, web=replace(settings.web, max_upload_mb=UPLOAD_LIMIT_MB))


def add_users(engine: Any) -> dict[str, str]:
    """One user per role, all with PASSWORD: role -> name."""
    from campaign.passwords import hash_password
    from campaign.store import users

    names = {role: role for role in ROLES}
    password_hash = hash_password(PASSWORD)  # one hash for all: a second each on a busy machine
    for role, name in names.items():
        users.add_user(engine, name, role, password_hash)
    return names


def api_token(console: Console, role: str) -> str:
    """A new API token of that role's user."""
    from campaign.store import users

    return users.new_token(console.engine, console.user(role))


# --------------------------------------------------------------------------- routes


def app_routes(app: Any) -> list[tuple[str, set[str]]]:
    """(path, methods) of every route of the app, mounts flattened; static files left out."""
    from starlette.routing import Mount, Route

    found: list[tuple[str, set[str]]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                if not (prefix + route.path).startswith("/static"):
                    walk(route.routes, prefix + route.path)
            elif isinstance(route, Route):
                found.append((prefix + route.path, set(route.methods or ())))

    walk(app.routes, "")
    return found


def has_route(app: Any, method: str, path: str) -> bool:
    """Whether the app has a route for `method` on the concrete `path`."""
    for template, methods in app_routes(app):
        pieces = re.split(r"\{[^}]+\}", template)
        if method in methods and re.fullmatch("[^/]+".join(map(re.escape, pieces)), path):
            return True
    return False


def concrete(path: str) -> str:
    """A route path with its parameters filled in (`{id}` -> 1)."""
    return re.sub(r"\{[^}]+\}", "1", path)


# --------------------------------------------------------------------------- pages


class ForeignRequests:
    """Requests to hosts other than the console's: aborted, and listed here."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.seen: list[str] = []

    def is_foreign(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return False
        return f"{parts.scheme}://{parts.netloc}" != self.origin

    def abort(self, route: Any) -> None:
        self.note(route.request)
        route.abort()

    def note(self, request: Any) -> None:
        if self.is_foreign(request.url) and request.url not in self.seen:
            self.seen.append(request.url)


@dataclass
class Pages:
    """Opens pages in fresh browser contexts (a browser language each) on the console;
    every request to another host is aborted and recorded in `foreign`."""

    browser: Any
    console: Console
    foreign: ForeignRequests
    contexts: list[Any] = field(default_factory=list)

    def __call__(self, lang: str = "zh", **options: Any) -> Any:
        context = self.browser.new_context(
            base_url=self.console.url,
            locale=LOCALES[lang],
            viewport={"width": 1280, "height": 800},
            accept_downloads=True,
            **options,
        )
        context.set_default_timeout(10_000)
        context.route(self.foreign.is_foreign, self.foreign.abort)
        context.on("request", self.foreign.note)
        self.contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        for context in self.contexts:
            context.close()


USERNAME_LABEL = re.compile(r"^\s*(Username|用户名)")
PASSWORD_LABEL = re.compile(r"^\s*(Password|密码)")
SIGN_IN_BUTTON = re.compile(r"^\s*(Sign in|登录)")


def submit_sign_in(page: Any, name: str, password: str) -> None:
    """Fill and submit the sign-in form of the page (at /login)."""
    page.get_by_label(USERNAME_LABEL).fill(name)
    page.get_by_label(PASSWORD_LABEL).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name=SIGN_IN_BUTTON).click()


def path_of(page_or_url: Any) -> str:
    url = page_or_url if isinstance(page_or_url, str) else page_or_url.url
    return urlsplit(url).path


# --------------------------------------------------------------------------- checks


def axe_findings(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in SERIOUS:
            where = "; ".join(", ".join(node["target"]) for node in violation["nodes"][:5])
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']}: {where}")
    return found


def axe_check(page: Any) -> None:
    """Fail on serious or critical accessibility findings (axe-core) on the page."""
    found = axe_findings(page)
    assert not found, f"axe findings on {page.url}:\n" + "\n".join(found)


def page_lang(page: Any) -> str:
    lang = page.evaluate("document.documentElement.lang") or "none"
    return str(lang).split("-")[0]


def screenshot(page: Any, name: str) -> Path:
    """Write a full-page screenshot `<name>.<lang>.png` (lang from <html lang>)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.{page_lang(page)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --------------------------------------------------------------------------- data


def mobile(n: int) -> str:
    """A valid China Mobile number, distinct for each n."""
    return f"1380013{n:04d}"


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """A UTF-8 CSV of `rows` (the keys of the first row are the header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, sheets: dict[str, list[dict[str, str]]]) -> Path:
    """An xlsx with one sheet per entry (sheet name -> rows), every value a text cell."""
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        sheet.append(list(rows[0]))
        for row in rows:
            sheet.append([str(value) for value in row.values()])
            for cell in sheet[sheet.max_row]:
                cell.data_type = "s"  # =HYPERLINK(...) stays text, as in a customer's file
    book.save(path)
    return path


_folders = itertools.count(1)


def seed_folder(console: Console) -> Path:
    """A fresh folder for one seeded campaign's files."""
    folder = console.folder / "seed" / str(next(_folders))
    folder.mkdir(parents=True)
    return folder


def seed_campaign(
    console: Console,
    files: list[Path],
    template: str = "{姓名}您好，会员日全场8折",
    *,
    name: str | None = None,
    send: bool = False,
) -> int:
    """A campaign planned from `files` through the facade (as the CLI would), sent through
    the simulator when `send`: its id."""
    from campaign import workflow

    planned = workflow.plan_from_files(
        console.settings, files, template, engine_or_url=console.engine
    )
    created = workflow.create_campaign(
        console.settings, console.engine, planned, name=name, paths=files
    )
    if send:
        workflow.send(console.settings, console.engine, created.campaign_id)
    return int(created.campaign_id)


# --------------------------------------------------------------------------- HTTP clients


class _Forms(HTMLParser):
    """The <input>s of a page: (form action, name, type, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.inputs: list[tuple[str, str, str, str]] = []
        self.data_csrf = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.action = found.get("action", "")
        elif tag == "input" and found.get("name"):
            kind = found.get("type", "text").lower()
            self.inputs.append((self.action, found["name"], kind, found.get("value", "")))
        for key, value in found.items():
            if "csrf" in key and value and not self.data_csrf:
                self.data_csrf = value


def page_inputs(html: str) -> _Forms:
    forms = _Forms()
    forms.feed(html)
    return forms


def csrf_token(html: str) -> str:
    """The CSRF token a page carries (a form's csrf_token field, or the data attribute that
    app.js sends as X-CSRF-Token)."""
    forms = page_inputs(html)
    for _action, name, _kind, value in forms.inputs:
        if name == "csrf_token" and value:
            return value
    if forms.data_csrf:
        return forms.data_csrf
    hx = re.search(r'X-CSRF-Token&#34;:\s*&#34;([^&]+)&#34;|X-CSRF-Token"\s*:\s*"([^"]+)"', html)
    if hx:
        return hx.group(1) or hx.group(2)
    raise AssertionError("no CSRF token found on the page")


def login_fields(html: str, name: str, password: str) -> dict[str, str]:
    """The sign-in form's fields filled in: hidden ones kept, the text one the name."""
    fields: dict[str, str] = {}
    for _action, field_name, kind, value in page_inputs(html).inputs:
        if kind == "password":
            fields[field_name] = password
        elif kind == "hidden":
            fields[field_name] = value
        elif kind in ("text", "email", "") and field_name not in fields:
            fields[field_name] = name
    return fields


def http_client(console: Console) -> httpx.Client:
    return httpx.Client(base_url=console.url, timeout=20, follow_redirects=False)


@contextmanager
def http_signed_in(console: Console, role: str) -> Iterator[tuple[httpx.Client, str]]:
    """An httpx client signed in as that role's user through the sign-in form, and the
    session's CSRF token (read from the campaigns page); closed on exit."""
    with http_client(console) as client:
        form = client.get(SIGN_IN_PATH)
        assert form.status_code == 200, form.text[:300]
        fields = login_fields(form.text, console.user(role), console.password)
        done = client.post(SIGN_IN_PATH, data=fields, headers={"Origin": console.url})
        assert done.status_code in (302, 303), (done.status_code, done.text[:300])
        home = client.get("/")
        assert home.status_code == 200, (home.status_code, home.text[:300])
        yield client, csrf_token(home.text)
