"""The web console served for real: uvicorn in a thread on a free loopback port, talked to
with httpx (cookies and all), on a real store.

    with running_console(settings, data_dir=tmp_path / "web") as console:
        with console.client() as client:
            sign_in(client, "ann", "pw")

`simulated_console(folder, report_delay=...)` is the one with a gateway: the simulator
pushing its reports to the receiver, and a user per role (tests/browser/kit.Console).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

from campaign.config import Settings
from campaign.outcomes import Role
from campaign.passwords import hash_password
from campaign.receiver import listen
from campaign.store.users import add_user

if TYPE_CHECKING:
    from tests.browser import kit

_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_CSRF_BODY = re.compile(r'data-csrf="([^"]+)"')


@dataclass
class Console:
    url: str
    app: Any  # the Starlette app (app.state: settings, engine, data_dir, ...)
    settings: Settings
    data_dir: Path

    @property
    def engine(self) -> Any:
        return self.app.state.engine

    def client(self, **options: Any) -> httpx.Client:
        """An HTTP client of the console: no redirects followed, cookies kept."""
        options.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.url, follow_redirects=False, **options)

    def add_user(self, name: str, password: str, role: Role = Role.SENDER) -> None:
        add_user(self.engine, name, role, hash_password(password))


class _Server:
    def __init__(self, app: Any) -> None:
        self._sock = listen("127.0.0.1", 0)
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            loop="asyncio",
            ws="none",
            proxy_headers=False,  # as `campaign web`: [web] trust_proxy decides
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the console did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()


@contextmanager
def running_console(settings: Settings, *, data_dir: Path, **options: Any) -> Iterator[Console]:
    """create_app(settings, data_dir=..., **options) served on 127.0.0.1 (no worker unless
    run_worker=True is given)."""
    from campaign.web.app import create_app

    options.setdefault("run_worker", False)
    app = create_app(settings, data_dir=data_dir, **options)
    server = _Server(app)
    try:
        yield Console(f"http://127.0.0.1:{server.port}", app, settings, data_dir)
    finally:
        server.stop()


@contextmanager
def simulated_console(
    folder: Path, *, report_delay: float, **options: Any
) -> Iterator[kit.Console]:
    """The console of tests/browser and test_web_pages_campaigns: create_app(settings,
    data_dir=folder / "web", **options) on a SQLite store in `folder` with one user per role
    (kit.add_users), served on loopback, the built-in simulator as its gateway pushing its
    delivery reports (`report_delay` seconds after a send) to the receiver, both on
    loopback too (kit.console_settings)."""
    from campaign.gateway.simulator import Simulator
    from campaign.receiver import Receiver
    from campaign.store import open_store
    from campaign.web.app import create_app
    from tests.browser.kit import Console, Uvicorn, add_users, console_settings

    store_url = f"sqlite:///{folder / 'campaign.db'}"
    engine = open_store(store_url)
    with (
        Receiver(Settings(store_url=store_url)) as receiver,
        Simulator(push_url=receiver.dlr_url, report_delay=report_delay) as simulator,
    ):
        settings = console_settings(store_url, simulator, receiver)
        data_dir = folder / "web"
        app = create_app(settings, engine=engine, data_dir=data_dir, **options)
        server = Uvicorn(app)
        try:
            yield Console(
                server.url, app, settings, engine, simulator, receiver, folder, data_dir,
                users=add_users(engine),
            )  # fmt: skip
        finally:
            server.stop()
    engine.dispose()


def csrf_of(html: str) -> str:
    """The CSRF token a page carries (its forms' hidden field, or <body data-csrf>)."""
    found = _CSRF_FIELD.search(html) or _CSRF_BODY.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: httpx.Client, name: str, password: str, **headers: str) -> httpx.Response:
    """Sign in through the form (GET /login for the token, then POST it)."""
    page = client.get("/login")
    form = {"csrf_token": csrf_of(page.text), "name": name, "password": password, "next": "/"}
    return client.post("/login", data=form, headers=headers)


def session_csrf(client: httpx.Client) -> str:
    """The CSRF token of the client's (signed-in) session, read from a page."""
    return csrf_of(client.get("/login", params={"next": "/"}, follow_redirects=True).text)
