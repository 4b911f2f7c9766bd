"""Users (/users) and the audit log (/audit): admins only.

    GET  /users                  every user (name, role, since, disabled) with its actions
    POST /users/add              name, role, password, password2 -> `user add`
    POST /users/role             name, role -> the user's role changed
    POST /users/password         name, password, password2 -> `user passwd` (its sessions end)
    POST /users/disable|enable   name -> it may not (or may again) sign in or use a token
    POST /users/remove           name -> a page to confirm; with confirm=yes `user remove`
    POST /users/token            name -> `user token`: the new token shown on the answer
                                 page this once (never kept in the session or a URL)
    GET  /audit?user=&action=&page=   the audit log, newest first, 50 a page, China time

A user is named in a form field, never in the path (a name may hold any printable
character). The last admin who may sign in cannot be removed, disabled or made anything
else (nobody could manage users then). Each change is audited by the facade
(workflow_users), as this admin from this address; a refused one changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Unpack

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from campaign import workflow_users
from campaign.errors import InputError
from campaign.outcomes import ROLES, AuditAction, Role
from campaign.store.users import User
from campaign.web.auth import ip_of, require
from campaign.web.i18n import lang_of, t
from campaign.web.pages_lists import page_links
from campaign.web.render import FormAnswer, mask, render, render_form_page

PAGE_SIZE = workflow_users.AUDIT_PAGE_SIZE  # audit entries on one page
MAX_PAGE = workflow_users.MAX_AUDIT_PAGE
MAX_FORM_FIELDS = 10
MAX_FIELD_BYTES = 4096
MAX_DETAIL_CHARS = 300  # of one audit entry's detail on the page
CONFIRMED = "yes"
FLASH = "flash_users"  # session key: what the last change did, shown once
#: audit detail keys whose values are mobile numbers (shown masked)
MOBILE_KEYS = frozenset({"mobile", "mobiles"})


# --------------------------------------------------------------------------- plumbing


async def _admin(request: Request) -> User:
    return await run_in_threadpool(require, request, Role.ADMIN)


def _state(request: Request) -> Any:
    return request.app.state


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(
        max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES
    )
    return {key: str(value) for key, value in form.items() if isinstance(value, str)}


def _not_yourself(lang: str, admin: User, name: str) -> None:
    """InputError when an admin would remove, disable or demote its own account (it
    would lock itself out: another admin does it)."""
    if name == admin.name:
        raise InputError(t(lang, "users.not_yourself"))


def _passwords(lang: str, form: Mapping[str, str]) -> str:
    password = form.get("password", "")
    if password != form.get("password2", ""):
        raise InputError(t(lang, "users.password_mismatch"))
    return password


# --------------------------------------------------------------------------- users


async def users_page(request: Request) -> Response:
    """GET /users: the users and the forms that change them."""
    await _admin(request)
    return await _users(request)


async def _users(
    request: Request, *, token: dict[str, str] | None = None, **answer: Unpack[FormAnswer]
) -> Response:
    state = _state(request)
    found = await run_in_threadpool(
        lambda: workflow_users.list_users(state.settings, engine=state.engine)
    )
    return render_form_page(
        request,
        "users.html",
        flash=FLASH if token is None else None,
        users=found,
        roles=[str(role) for role in ROLES],
        token=token,
        **answer,
    )


Change = Callable[[Request, User, dict[str, str]], str]


def _change(work: Change, refused: str) -> Callable[[Request], Any]:
    """A POST that changes a user: `work` (in a thread) does it and says what it did
    (shown once on /users after the 303); InputError: /users again, 422, saying why."""

    async def submit(request: Request) -> Response:
        admin = await _admin(request)
        form = await _form(request)
        lang = lang_of(request)
        try:
            done = await run_in_threadpool(work, request, admin, form)
        except InputError as exc:  # NotFoundError too
            typed = {"name": form.get("name", ""), "role": form.get("role", "")}
            return await _users(
                request, status_code=422, error=t(lang, refused), detail=str(exc), typed=typed
            )
        request.session[FLASH] = done
        return RedirectResponse("/users", status_code=303)

    submit.__name__ = work.__name__.lstrip("_")
    submit.__doc__ = work.__doc__
    return submit


def _who(request: Request, admin: User) -> dict[str, Any]:
    state = _state(request)
    return {"actor": admin.name, "engine": state.engine, "ip": ip_of(request)}


def _add(request: Request, admin: User, form: dict[str, str]) -> str:
    """POST /users/add."""
    lang = lang_of(request)
    password = _passwords(lang, form)
    added = workflow_users.add_user(
        _state(request).settings, form.get("name", ""), form.get("role", ""), password,
        **_who(request, admin),
    )  # fmt: skip
    return t(lang, "users.added", name=added.name, role=t(lang, f"role.{added.role}"))


def _role(request: Request, admin: User, form: dict[str, str]) -> str:
    """POST /users/role."""
    lang = lang_of(request)
    name = form.get("name", "")
    if form.get("role", "").strip().lower() != Role.ADMIN:
        _not_yourself(lang, admin, name)
    changed = workflow_users.set_role(
        _state(request).settings, name, form.get("role", ""), **_who(request, admin)
    )
    return t(lang, "users.role_set", name=changed.name, role=t(lang, f"role.{changed.role}"))


def _password(request: Request, admin: User, form: dict[str, str]) -> str:
    """POST /users/password."""
    lang = lang_of(request)
    name = form.get("name", "")
    workflow_users.change_password(
        _state(request).settings, name, _passwords(lang, form), **_who(request, admin)
    )
    return t(lang, "users.password_set", name=name)


def _disabled(disabled: bool) -> Change:
    def work(request: Request, admin: User, form: dict[str, str]) -> str:
        lang = lang_of(request)
        if disabled:
            _not_yourself(lang, admin, form.get("name", ""))
        changed = workflow_users.set_disabled(
            _state(request).settings, form.get("name", ""), disabled, **_who(request, admin)
        )
        key = "users.disabled" if disabled else "users.enabled"
        return t(lang, key, name=changed.name)

    work.__name__ = "_disable" if disabled else "_enable"
    work.__doc__ = f"POST /users/{'disable' if disabled else 'enable'}."
    return work


async def remove_submit(request: Request) -> Response:
    """POST /users/remove: without confirm=yes, the page to confirm; with it, removed."""
    admin = await _admin(request)
    form = await _form(request)
    lang = lang_of(request)
    name = form.get("name", "")

    def work() -> None:
        _not_yourself(lang, admin, name)
        if form.get("confirm") == CONFIRMED:
            workflow_users.remove_user(
                _state(request).settings, name, keep_an_admin=True, **_who(request, admin)
            )

    try:
        await run_in_threadpool(work)
        if form.get("confirm") != CONFIRMED:
            return render(request, "users_remove.html", name=name)
    except InputError as exc:
        return await _users(
            request, status_code=422, error=t(lang, "users.refused.remove"), detail=str(exc)
        )
    request.session[FLASH] = t(lang, "users.removed", name=name)
    return RedirectResponse("/users", status_code=303)


async def token_submit(request: Request) -> Response:
    """POST /users/token: a new API token, shown on this answer only."""
    admin = await _admin(request)
    form = await _form(request)
    lang = lang_of(request)
    name = form.get("name", "")

    def work() -> str:
        return workflow_users.new_token(_state(request).settings, name, **_who(request, admin))

    try:
        token = await run_in_threadpool(work)
    except InputError as exc:
        return await _users(
            request, status_code=422, error=t(lang, "users.refused.token"), detail=str(exc)
        )
    return await _users(request, token={"name": name, "token": token})


# --------------------------------------------------------------------------- audit


def detail_text(detail: Mapping[str, Any]) -> str:
    """An audit entry's detail as one line ("key: value; ..."), mobile numbers masked,
    at most MAX_DETAIL_CHARS."""
    parts = []
    for key, value in sorted(detail.items()):
        if key in MOBILE_KEYS:
            value = [mask(v) for v in value] if isinstance(value, list) else mask(value)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}: {text}")
    line = "; ".join(parts)
    return line if len(line) <= MAX_DETAIL_CHARS else line[: MAX_DETAIL_CHARS - 1] + "…"


async def audit_page(request: Request) -> Response:
    """GET /audit?user=&action=&page=: the audit log (see the module docstring)."""
    await _admin(request)
    engine = _state(request).engine
    lang = lang_of(request)
    user_name = request.query_params.get("user", "").strip()[:200] or None
    action = request.query_params.get("action", "").strip() or None
    raw = request.query_params.get("page", "")
    page = min(int(raw), MAX_PAGE) if raw.isdigit() and int(raw) >= 1 else 1
    error = None
    if action is not None and action not in set(AuditAction):
        error, action = t(lang, "audit.bad_action"), None
    found = await run_in_threadpool(
        lambda: workflow_users.audit_page(
            engine, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
            user_name=user_name, action=action,
        )
    )  # fmt: skip
    entries = [{"entry": entry, "detail": detail_text(entry.detail)} for entry in found.entries]
    return render(
        request,
        "audit.html",
        status_code=422 if error else 200,
        entries=entries,
        actions=[str(a) for a in AuditAction],
        chosen_user=user_name or "",
        chosen_action=action or "",
        pager=page_links(request, page, found.total, PAGE_SIZE),
        error=error,
    )


routes: list[BaseRoute] = [
    Route("/users", users_page, methods=["GET"]),
    Route("/users/add", _change(_add, "users.refused.add"), methods=["POST"]),
    Route("/users/role", _change(_role, "users.refused.role"), methods=["POST"]),
    Route("/users/password", _change(_password, "users.refused.password"), methods=["POST"]),
    Route("/users/disable", _change(_disabled(True), "users.refused.disable"), methods=["POST"]),
    Route("/users/enable", _change(_disabled(False), "users.refused.enable"), methods=["POST"]),
    Route("/users/remove", remove_submit, methods=["POST"]),
    Route("/users/token", token_submit, methods=["POST"]),
    Route("/audit", audit_page, methods=["GET"]),
]

__all__ = ["detail_text", "routes"]
