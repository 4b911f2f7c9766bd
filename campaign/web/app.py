"""`create_app`: the console's Starlette application.

    SecurityHeaders (outermost: every response, errors included)
      └ GZip (text answers, gzip when asked; never an event stream or a zip file)
        └ LangCookie (?lang= remembered) └ SessionMiddleware └ CSRFGuard └ routes

Routes: each page module's `routes`, the JSON API under /api/v1, /static (the package's
static/ folder), GET /healthz (no sign-in: {"ok": true, "store": "ok"}), and last the
placeholder start page of pages_auth (a "/" of pages_campaigns comes first and wins).
app.state: settings, engine, data_dir (uploads/, work/, plans/, drafts/), plans
(PlanCache), login_throttle, worker (ConsoleWorker or None), resends (resends.Resends);
made on first use: new_drafts (new_drafts.Drafts), scratch (scratch.Scratch).

Unless `run_worker` is False, one `campaign worker` runs in a thread while the app runs
(the lifespan starts it and, on shutdown, stops it and lets its in-flight request finish).
Resends asked for on a campaign page (resends.py) stop the same way, worker or not, and
shutdown waits for them too.
On shutdown the console also removes the files it kept: its plans' and drafts' uploads
and the scratch folders its requests left (another console's in the same data_dir stay).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from campaign.config import Settings
from campaign.errors import CampaignError
from campaign.redact import redact
from campaign.store import open_store
from campaign.store.engine import store_answers
from campaign.store.users import web_secret
from campaign.web import (
    api,
    pages_admin,
    pages_auth,
    pages_campaigns,
    pages_lists,
    pages_new,
)
from campaign.web.auth import SESSION_COOKIE, SESSION_KEY_NAME, SESSION_MAX_AGE, LoginThrottle
from campaign.web.i18n import LangCookie, lang_of, t
from campaign.web.plans import PlanCache
from campaign.web.render import render
from campaign.web.resends import Resends
from campaign.web.scratch import remove_if_empty
from campaign.web.security import API_PREFIX, CSRFGuard, SecurityHeaders

log = logging.getLogger("campaign.web")

DATA_DIR_NAME = "campaign-web"  # beside the config file (or here): uploads/, plans/
WORKER_STOP_SECONDS = 120.0  # a request in flight may take the gateway's timeout and more
STATUS_TEXTS = {400, 403, 404, 405, 409, 413, 422, 429, 500}
#: Not compressed: Server-Sent Events (each event must leave at once; Starlette's default
#: list has them), and files that are zip archives already (.xlsx).
NOT_GZIPPED = (
    *DEFAULT_EXCLUDED_CONTENT_TYPES,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/octet-stream",
)
GZIP_LEVEL = 6  # zlib's default: within 1 % of level 9's size on the console's files


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    run_worker: bool = True,
    secret_key: bytes | None = None,
    data_dir: Path | None = None,
) -> Starlette:
    """The console on `settings` (see the module docstring). Given no `engine`, it opens
    the store (created or upgraded) and disposes of it on shutdown."""
    own_engine = engine is None
    store = engine if engine is not None else open_store(settings.store_url)
    folder = data_dir if data_dir is not None else settings.base_dir / DATA_DIR_NAME
    folder.mkdir(parents=True, exist_ok=True)
    key = _session_key(settings, store, secret_key)
    trust = settings.web.trust_proxy
    app = ConsoleApp(
        routes=_routes(),
        middleware=[
            Middleware(
                GZipMiddleware,
                minimum_size=500,
                compresslevel=GZIP_LEVEL,
                exclude_content_types=NOT_GZIPPED,
            ),
            Middleware(LangCookie),
            Middleware(
                SessionMiddleware,
                secret_key=key,
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_MAX_AGE,
                same_site="strict",
                https_only=False,  # Secure is added per request under HTTPS (security.py)
            ),
            Middleware(CSRFGuard, trust_proxy=trust),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = store
    app.state.own_engine = own_engine
    app.state.data_dir = folder
    app.state.plans = PlanCache(folder / "plans")
    app.state.login_throttle = LoginThrottle()
    app.state.run_worker = run_worker
    app.state.worker = None
    app.state.resends = Resends()
    return app


class ConsoleApp(Starlette):
    """Starlette with SecurityHeaders outside even its error middleware: a 500 has them too."""

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return SecurityHeaders(inner, trust_proxy=self.state.settings.web.trust_proxy)


def _session_key(settings: Settings, engine: Engine, given: bytes | None) -> str:
    """`secret_key` > [web] secret_key > the key kept in the store (made on first start)."""
    if given:
        return given.hex()
    if settings.web.secret_key:
        return settings.web.secret_key
    return web_secret(engine, SESSION_KEY_NAME)


def _routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", app=StaticFiles(packages=[("campaign.web", "static")]), name="static"),
        *pages_auth.routes,
        *pages_campaigns.routes,
        *pages_new.routes,
        *pages_lists.routes,
        *pages_admin.routes,
        Mount("/api/v1", routes=api.routes),
        *pages_auth.placeholder_routes,
    ]


async def healthz(request: Request) -> Response:
    """No sign-in: whether the console answers and its store does."""
    ok = await run_in_threadpool(store_answers, request.app.state.engine)
    body = {"ok": ok, "store": "ok" if ok else "unreachable"}
    return JSONResponse(body, status_code=200 if ok else 503)


# --------------------------------------------------------------------------- errors


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if request.url.path.startswith(API_PREFIX):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=headers)
    if exc.status_code in (301, 302, 303, 307, 308) and "Location" in headers:
        return RedirectResponse(headers["Location"], status_code=exc.status_code)
    return _error_page(request, exc.status_code, str(exc.detail), headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, CampaignError):  # a library refusal that a page did not catch
        status, detail = 422, redact(str(exc))
    else:
        log.error("unexpected %s on %s", type(exc).__name__, request.url.path)
        status, detail = 500, "unexpected server error"
    if request.url.path.startswith(API_PREFIX):
        return JSONResponse({"error": detail}, status_code=status)
    return _error_page(request, status, detail, {})


def _error_page(request: Request, status: int, detail: str, headers: dict[str, str]) -> Response:
    lang = lang_of(request)
    if status == 413:
        limit = request.app.state.settings.web.max_upload_mb
        message = t(lang, "error.413", limit=limit)
    else:
        message = t(lang, f"error.{status}" if status in STATUS_TEXTS else "error.other")
    try:
        return render(
            request,
            "error.html",
            status_code=status,
            headers=headers,
            status=status,
            message=message,
            detail=detail if detail != message else "",
        )
    except Exception:  # the error page itself failed (the store is gone?): plain text
        return Response(f"{status} {message}", status, headers, media_type="text/plain")


# --------------------------------------------------------------------------- worker


class ConsoleWorker:
    """One `campaign worker` in a thread (workflow_queue.run_worker) while the app runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.error: str | None = None  # why it is not running, for the health page
        self._thread = threading.Thread(target=self._run, name="console-worker", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = WORKER_STOP_SECONDS) -> None:
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        from campaign.workflow_queue import run_worker

        try:
            run_worker(self.settings, stop=self.stop_event, notify=_worker_line)
        except CampaignError as exc:
            self.error = redact(str(exc))
            log.error("the console's worker stopped: %s", self.error)
        except Exception as exc:  # never takes the console down
            self.error = f"unexpected {type(exc).__name__}"
            log.error("the console's worker failed: %s", self.error)


def _worker_line(line: str) -> None:
    log.info(redact(line))


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    state = app.state
    if state.run_worker:
        state.worker = ConsoleWorker(state.settings)
        state.worker.start()
    try:
        yield {}
    finally:
        state.resends.stop_event.set()  # at once, beside the worker's: both finish in flight
        if state.worker is not None:
            await run_in_threadpool(state.worker.stop)
        left = await run_in_threadpool(state.resends.stop, WORKER_STOP_SECONDS)
        if left:
            log.warning("resends of campaigns %s did not stop in time", left)
        await run_in_threadpool(_remove_files, state)
        if state.own_engine:
            state.engine.dispose()


def _remove_files(state: Any) -> None:
    """What the console kept on disk while it ran: plans and drafts live in its memory
    (their uploaded files go with them), scratch folders a request left behind."""
    state.plans.close()
    drafts = getattr(state, "new_drafts", None)
    if drafts is not None:
        drafts.close()
        remove_if_empty(drafts.folder)
    scratch = getattr(state, "scratch", None)
    if scratch is not None:
        scratch.close()
    remove_if_empty(state.plans.folder)


__all__ = ["ConsoleApp", "ConsoleWorker", "create_app", "healthz"]
