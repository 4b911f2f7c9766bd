"""Sign-in and sign-out: GET/POST /login, POST /logout (and a placeholder start page).

POST /login checks the CSRF token of the anonymous session (security.CSRFGuard), then the
password (auth.login: throttled, audited). Success -> 303 to `next` (a local path only);
a wrong name or password -> the form again, 401, the same words for both; too many
failures -> 429 with Retry-After.
"""

from __future__ import annotations

import math

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from campaign.outcomes import Role
from campaign.store.users import count_users
from campaign.web.auth import LoginRefused, current_user, login, logout, require, safe_next
from campaign.web.i18n import lang_of, t
from campaign.web.render import render

MAX_LOGIN_FORM_FIELD = 1024


async def login_page(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if current_user(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    return await _form(request, next_path=next_path)


async def _form(
    request: Request,
    *,
    next_path: str,
    name: str = "",
    error: str | None = None,
    message: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    no_users = await run_in_threadpool(count_users, request.app.state.engine) == 0
    return render(
        request,
        "login.html",
        status_code=status_code,
        headers=headers,
        next=next_path,
        name=name,
        error=error,
        message=message,
        no_users=no_users,
    )


async def login_submit(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_LOGIN_FORM_FIELD)
    name = str(form.get("name") or "")[:MAX_LOGIN_FORM_FIELD]
    password = str(form.get("password") or "")[:MAX_LOGIN_FORM_FIELD]
    next_path = safe_next(str(form.get("next") or ""))
    lang = lang_of(request)
    try:
        await run_in_threadpool(login, request, name, password)  # argon2: not on the loop
    except LoginRefused as refused:
        if refused.retry_after is not None:
            minutes = max(1, math.ceil(refused.retry_after / 60))
            return await _form(
                request,
                next_path=next_path,
                name=name,
                error=t(lang, "login.throttled", minutes=minutes),
                status_code=429,
                headers={"Retry-After": str(math.ceil(refused.retry_after))},
            )
        return await _form(
            request,
            next_path=next_path,
            name=name,
            error=t(lang, "login.failed"),
            status_code=401,
        )
    return RedirectResponse(next_path, status_code=303)


async def logout_submit(request: Request) -> Response:
    await run_in_threadpool(logout, request)
    return RedirectResponse("/login", status_code=303)


async def placeholder_home(request: Request) -> Response:
    """The start page until pages_campaigns serves "/" (its route comes first)."""
    user = await run_in_threadpool(require, request, Role.VIEWER)
    return render(request, "home.html", user=user)


routes: list[BaseRoute] = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout_submit, methods=["POST"]),
]

#: Added by app.py AFTER every page module's routes: a "/" of pages_campaigns wins.
placeholder_routes: list[BaseRoute] = [
    Route("/", placeholder_home, methods=["GET"]),
]

__all__ = ["placeholder_routes", "routes"]
