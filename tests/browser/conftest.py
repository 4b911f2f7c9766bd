"""Real-browser tests of the web console (issue 15): Debian's Chromium driven by Playwright.

One Chromium per test session; one console per test module: `create_app` on a real SQLite
store, the built-in gateway simulator on loopback as its gateway (pushing its delivery
reports and inbound messages to the receiver, also on loopback), served by uvicorn in a
thread on a free loopback port, with one user per role (tests/browser/kit.py).

Fixtures:
- `browser` (session): Chromium from /usr/bin/chromium (`playwright install` cannot
  download a browser here). Never skipped in CI (CI set): missing there, the test fails.
- `console` (module): the running console (kit.Console).
- `new_page(lang="zh", **context_options)`: a page in a fresh context whose browser
  language is `lang`; a request to any host but the console's is aborted, and the test
  fails if there was one. `page` is `new_page("zh")`.
- `signed_in(page, role)`: `page` signed in as the admin, sender or viewer, through the form.
Screenshots go to tests/browser/screenshots/ (ignored by git; CAMPAIGN_SCREENSHOTS moves it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.kit import (
    SIGN_IN_PATH,
    Console,
    ForeignRequests,
    Pages,
    path_of,
    submit_sign_in,
)
from tests.support.console import simulated_console

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    """Outside CI skip with the reason; in CI (CI set) never skip: fail, saying what to do."""
    if os.environ.get("CI"):
        pytest.fail(
            f"the browser tests cannot run in CI: {reason}; .ci/run installs Chromium with "
            "`apt-get install -y --no-install-recommends chromium fonts-noto-cjk`",
            pytrace=False,
        )
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc}); pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The console of this test module, with the simulator and the receiver (one each)."""
    with simulated_console(tmp_path_factory.mktemp("console"), report_delay=0.2) as console:
        yield console


@pytest.fixture
def new_page(browser: Any, console: Console) -> Iterator[Pages]:
    pages = Pages(browser, console, ForeignRequests(console.url))
    yield pages
    pages.close()
    assert pages.foreign.seen == [], "the console made the browser ask other hosts"


@pytest.fixture
def page(new_page: Pages) -> Any:
    return new_page("zh")


@pytest.fixture(scope="module")
def sessions() -> dict[str, list[Any]]:
    """role -> the session cookies of its first sign-in in this module."""
    return {}


@pytest.fixture
def signed_in(console: Console, sessions: dict[str, list[Any]]) -> Callable[[Any, str], Any]:
    """`signed_in(page, role)`: `page` signed in as that role's user, on the campaigns page.

    The first time per role and module through the sign-in form; after that with the
    session cookie it got (a password hash costs a second on a loaded machine)."""

    def sign_in(page: Any, role: str) -> Any:
        if role in sessions:
            page.context.add_cookies(sessions[role])
            page.goto("/")
            if path_of(page) == "/":
                return page
        page.goto(SIGN_IN_PATH)
        submit_sign_in(page, console.user(role), console.password)
        assert path_of(page) == "/", f"the {role} could not sign in"
        sessions[role] = page.context.cookies()
        return page

    return sign_in
