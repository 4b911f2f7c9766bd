"""The JSON API of SPEC ("Web console and HTTP API"), mounted at /api/v1.

Every route authenticates (`Authorization: Bearer TOKEN`, or the console's session) and
checks the role: viewers read; senders also plan, send, pause, resume, cancel and change
the opt-out list; admins also read the audit log. Each one parses its input, makes one
call into the facade (`workflow`, `workflow_queue`, `workflow_web`, `workflow_users`,
`web/plans`) in a worker thread, audits what changed and answers JSON. Errors are
`{"error": "..."}`:

    400 malformed request (not JSON, wrong types)   401 no or unknown token
    403 role too low                                404 no such campaign / plan / route
    409 a repeat `send` would refuse, a plan already sent or revised, a campaign whose
        state forbids the move (pause a finished one)
    413 upload or body too large                    422 input that cannot be used
    (409 also: the gateway or the account refused or did not answer, e.g. the balance
    query; the reason without any secret)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from campaign import workflow, workflow_queue, workflow_users, workflow_web
from campaign.errors import (
    CampaignError,
    GatewayStop,
    InputError,
    NotFoundError,
    RepeatError,
    UsageError,
)
from campaign.outcomes import AuditAction, Role
from campaign.redact import Redactor, redact
from campaign.store.users import User
from campaign.web import events
from campaign.web.auth import audit, require
from campaign.web.plans import PlanCache, PlanChangedError, PlanChoices, PlanUsedError, place_files
from campaign.web.scratch import scratch_of
from campaign.web.uploads import Upload, receive_files

MAX_JSON_BYTES = 8 * 1024 * 1024  # a JSON body (100,000 numbers to add fit)
MAX_MOBILES = 100_000  # numbers in one opt-out change
AUDITED_MOBILES = 100  # numbers of one change written into its audit detail
WORK_DIR = "work"  # data_dir/work/<random>/: imported files and exports, removed after use
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"

Handler = Callable[[Request, User], Awaitable[Response]]


# --------------------------------------------------------------------------- plumbing


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def status_of(exc: CampaignError, *, conflict: bool = False) -> int:
    """The HTTP status of a facade error; `conflict`: an InputError means the campaign's
    state forbids the move (409), not bad input."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, RepeatError | PlanUsedError | PlanChangedError):
        return 409
    if isinstance(exc, InputError):
        return 409 if conflict else 422
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, GatewayStop):
        return 409  # SPEC's codes: the account's or gateway's state forbids it now
    return 500


def reason_of(request: Request, exc: CampaignError) -> str:
    """A facade error's message for an answer: no secret of the settings (a password, the
    credentials of a URL), nor any password field."""
    known = app_state(request).settings.secrets
    return Redactor(known).redact(redact(str(exc)))


def endpoint(role: Role, *, conflict: bool = False) -> Callable[[Handler], Any]:
    """An API endpoint for users of `role` and up, answering errors as JSON."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                user = await run_in_threadpool(require, request, role)
                return await handler(request, user)
            except HTTPException as exc:
                return error(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)
            except ApiError as exc:
                return error(exc.status, exc.message)
            except CampaignError as exc:
                return error(status_of(exc, conflict=conflict), reason_of(request, exc))

        run.__name__ = run.__qualname__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run

    return wrap


def app_state(request: Request) -> Any:
    return request.app.state


def plan_cache(request: Request) -> PlanCache:
    """The app's PlanCache (made on first use under data_dir/plans when app.py made none)."""
    state = app_state(request)
    cache = getattr(state, "plans", None)
    if cache is None:
        cache = PlanCache(Path(state.data_dir) / "plans")
        state.plans = cache
    return cache


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object of the body (400 when it is none; 413 past MAX_JSON_BYTES)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_JSON_BYTES // 2**20} MB")
    try:
        data = json.loads(bytes(body) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def text_field(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise ApiError(400, f"{key!r} is missing")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{key!r} must be a string")
    return value


def bool_field(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(400, f"{key!r} must be true or false")
    return value


def mobiles_field(data: dict[str, Any]) -> list[str]:
    value = data.get("mobiles")
    if not isinstance(value, list) or not value:
        raise ApiError(400, 'expected {"mobiles": ["13800138000", ...]} (a non-empty list)')
    if len(value) > MAX_MOBILES:
        raise ApiError(413, f"at most {MAX_MOBILES} numbers in one request")
    if not all(isinstance(m, str | int) and not isinstance(m, bool) for m in value):
        raise ApiError(400, '"mobiles" must hold numbers as strings')
    return [str(m) for m in value]


def int_param(request: Request, key: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{key} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"{key} must be {low} to {high}")
    return value


def header_row_of(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError(422, f"header_row must be a row number (1 or more), not {text!r}") from None


def work_folder(request: Request) -> Path:
    return scratch_of(app_state(request)).folder(WORK_DIR)


async def upload_of(request: Request) -> Upload:
    settings = app_state(request).settings
    upload = await receive_files(request, limit_bytes=settings.web.max_upload_bytes)
    if not upload.files:
        upload.remove()
        raise ApiError(422, "no files: send one or more files in the multipart field 'files'")
    return upload


def _audit_mobiles(mobiles: Sequence[str]) -> dict[str, Any]:
    shown = list(mobiles[:AUDITED_MOBILES])
    return {"count": len(mobiles), "mobiles": shown, "more": max(0, len(mobiles) - len(shown))}


# --------------------------------------------------------------------------- plans


@endpoint(Role.SENDER)
async def create_plan(request: Request, user: User) -> Response:
    """POST /plans: multipart `files`, `template`, optional name/sheet/header_row/mobile_column."""
    state = app_state(request)
    upload = await upload_of(request)
    try:
        template = upload.field("template")
        if not template.strip():
            raise ApiError(422, "the template (the text of the message) is empty")
        name = upload.field("name").strip() or None
        choices = PlanChoices(
            template,
            name=workflow.usable_name(name),
            sheet=upload.field("sheet").strip() or None,
            header_row=header_row_of(upload.field("header_row")),
            mobile_column=upload.field("mobile_column").strip() or None,
        )
        files = [(f.path, f.name) for f in upload.files]

        def work() -> dict[str, Any]:
            entry = plan_cache(request).add(state.settings, state.engine, files, choices, user.name)
            body = entry.to_json()
            audit(
                request,
                AuditAction.PLAN,
                {"plan_id": entry.plan_id, "files": [name for _, name in files],
                 "rows": body["rows"], "recipients": body["recipients"]},
            )  # fmt: skip
            return body

        body = await run_in_threadpool(work)
    finally:
        upload.remove()  # what was planned moved into the plan's folder
    return JSONResponse(body, status_code=201)


@endpoint(Role.SENDER)
async def plan_preview(request: Request, user: User) -> Response:
    """GET /plans/{plan_id}/preview.xlsx: the per-row preview of `plan --out`."""
    plan_id = request.path_params["plan_id"]
    path = await run_in_threadpool(plan_cache(request).preview_file, plan_id, user.name)
    return FileResponse(path, media_type=XLSX, filename="preview.xlsx")


# --------------------------------------------------------------------------- campaigns


@endpoint(Role.SENDER)
async def create_campaign(request: Request, user: User) -> Response:
    """POST /campaigns {plan_id, name, send_at, again}: queued for the workers, once."""
    state = app_state(request)
    data = await json_body(request)
    plan_id = text_field(data, "plan_id", required=True)
    name = text_field(data, "name")
    send_at = text_field(data, "send_at")
    again = bool_field(data, "again")
    revision = data.get("revision")
    if revision is not None and (not isinstance(revision, int) or isinstance(revision, bool)):
        raise ApiError(400, "'revision' must be a whole number")
    assert plan_id is not None

    def work() -> tuple[int, dict[str, Any]]:
        plans = plan_cache(request)
        made_before = plans.made_campaign(plan_id, user.name)  # a repeat: that campaign
        if made_before is None:
            due_at = workflow_web.send_at_time(state.settings, send_at)
            made = plans.create_campaign(
                state.settings, state.engine, plan_id, user.name,
                name=name, due_at=due_at, again=again, revision=revision,
            )  # fmt: skip
            made_before = None if made.result is not None else made.campaign_id
        if made_before is not None:
            brief = workflow_web.campaign_brief(state.engine, made_before)
            return 200, {**brief, "created": False}
        assert made.result is not None
        body = {**made.result.to_json(), "created": True}
        audit(
            request,
            AuditAction.SEND,
            {
                "campaign_id": made.campaign_id,
                "name": body["name"],
                "recipients": body["recipients"],
                "due_at": body["due_at"],
                "again": again,
            },
        )
        return 201, body

    status, body = await run_in_threadpool(work)
    return JSONResponse(body, status_code=status)


@endpoint(Role.VIEWER)
async def list_campaigns(request: Request, user: User) -> Response:
    """GET /campaigns: `status --json` with each campaign's progress."""
    engine = app_state(request).engine
    return JSONResponse(await run_in_threadpool(workflow_web.campaign_rows, engine))


@endpoint(Role.VIEWER)
async def show_campaign(request: Request, user: User) -> Response:
    """GET /campaigns/{id}: `status ID --json` with progress (sent, done, total)."""
    engine = app_state(request).engine
    ref = str(request.path_params["campaign_id"])
    return JSONResponse(await run_in_threadpool(workflow_web.campaign_detail, engine, ref))


def _change(action: AuditAction, change: Callable[..., Any]) -> Handler:
    async def handler(request: Request, user: User) -> Response:
        state = app_state(request)
        ref = str(request.path_params["campaign_id"])

        def work() -> dict[str, Any]:
            if action is AuditAction.RESUME:
                result = change(state.settings, ref, engine=state.engine)
            else:
                result = change(state.settings, ref, who=f"{user.name} (console)",
                                engine=state.engine)  # fmt: skip
            body: dict[str, Any] = result.to_json()
            audit(
                request,
                action,
                {"campaign_id": body["campaign_id"], "from": body["previous_state"],
                 "to": body["state"]},
            )  # fmt: skip
            return body

        return JSONResponse(await run_in_threadpool(work))

    handler.__name__ = f"{action}_campaign"
    handler.__doc__ = f"POST /campaigns/{{id}}/{action}: as `campaign {action}`."
    return handler


pause_campaign = endpoint(Role.SENDER, conflict=True)(
    _change(AuditAction.PAUSE, workflow_queue.pause_campaign)
)
resume_campaign = endpoint(Role.SENDER, conflict=True)(
    _change(AuditAction.RESUME, workflow_queue.resume_queued)
)
cancel_campaign = endpoint(Role.SENDER, conflict=True)(
    _change(AuditAction.CANCEL, workflow_queue.cancel_campaign)
)


def _results(suffix: str, media_type: str) -> Handler:
    async def handler(request: Request, user: User) -> Response:
        state = app_state(request)
        lang = request.query_params.get("lang", "en")
        if lang not in ("en", "zh"):
            raise ApiError(422, f"lang must be en or zh, not {lang!r}")
        ref = str(request.path_params["campaign_id"])
        folder = work_folder(request)
        out = folder / f"results{suffix}"
        try:
            result = await run_in_threadpool(
                workflow.export, state.settings, ref, out, lang=lang, engine=state.engine
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            out,
            media_type=media_type,
            filename=_download_name(result.name, suffix),
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    handler.__name__ = f"results_{suffix[1:]}"
    return handler


def _download_name(name: str, suffix: str) -> str:
    from campaign.web.plans import harmless_name

    cleaned = "".join(ch for ch in harmless_name(name, 0) if ch not in '"<>:|?*')
    return f"{cleaned.strip() or 'results'}{suffix}"


results_xlsx = endpoint(Role.VIEWER)(_results(".xlsx", XLSX))
results_csv = endpoint(Role.VIEWER)(_results(".csv", CSV))


# --------------------------------------------------------------------------- opt-outs


@endpoint(Role.VIEWER)
async def list_optouts(request: Request, user: User) -> Response:
    """GET /optouts?q=&limit=&offset=: {"total", "optouts": [entries]} newest first."""
    engine = app_state(request).engine
    query = request.query_params.get("q")
    limit = int_param(request, "limit", 100, low=1, high=workflow_web.MAX_OPTOUT_PAGE)
    offset = int_param(request, "offset", 0, low=0, high=10**9)
    found = await run_in_threadpool(
        workflow_web.search_optouts, engine, query, limit=limit, offset=offset
    )
    return JSONResponse(found)


@endpoint(Role.SENDER)
async def add_optouts(request: Request, user: User) -> Response:
    """POST /optouts {"mobiles": [...], "note"}: as `optout add --json`."""
    engine = app_state(request).engine
    data = await json_body(request)
    mobiles, note = mobiles_field(data), text_field(data, "note")

    def work() -> dict[str, Any]:
        result = workflow_web.add_optouts(engine, mobiles, added_by=user.name, note=note)
        audit(request, AuditAction.OPTOUT_ADD, {**result.to_json(), **_audit_mobiles(mobiles)})
        body: dict[str, Any] = result.to_json()
        return body

    return JSONResponse(await run_in_threadpool(work))


@endpoint(Role.SENDER)
async def remove_optouts(request: Request, user: User) -> Response:
    """DELETE /optouts {"mobiles": [...]}: as `optout remove --json`."""
    engine = app_state(request).engine
    mobiles = mobiles_field(await json_body(request))

    def work() -> dict[str, Any]:
        result = workflow_web.remove_optouts(engine, mobiles)
        audit(request, AuditAction.OPTOUT_REMOVE, {**result.to_json(), **_audit_mobiles(mobiles)})
        body: dict[str, Any] = result.to_json()
        return body

    return JSONResponse(await run_in_threadpool(work))


@endpoint(Role.SENDER)
async def import_optouts(request: Request, user: User) -> Response:
    """POST /optouts/import (multipart `files`, optional sheet/header_row/mobile_column):
    the keys of `optout import --json` summed over the files, and `files` (each one's)."""
    state = app_state(request)
    upload = await upload_of(request)
    folder = work_folder(request)
    try:
        sheet = upload.field("sheet").strip() or None
        header_row = header_row_of(upload.field("header_row"))
        mobile_column = upload.field("mobile_column").strip() or None
        paths = place_files([(f.path, f.name) for f in upload.files], folder)

        def work() -> dict[str, Any]:
            each = [
                workflow.import_optouts(
                    state.settings, path, sheet=sheet, header_row=header_row,
                    mobile_column=mobile_column, engine=state.engine, added_by=user.name,
                ).to_json()
                for path in paths
            ]  # fmt: skip
            body = _summed(each)
            audit(request, AuditAction.OPTOUT_IMPORT, {k: v for k, v in body.items()
                                                       if k != "files"})  # fmt: skip
            return body

        return JSONResponse(await run_in_threadpool(work))
    finally:
        upload.remove()
        shutil.rmtree(folder, ignore_errors=True)


def _summed(each: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"source": ", ".join(str(e["source"]) for e in each)}
    for key in ("rows", "added", "already", "repeated", "invalid"):
        body[key] = sum(int(e.get(key, 0)) for e in each)
    body["files"] = each
    return body


# --------------------------------------------------------------- reports, balance, audit


@endpoint(Role.SENDER)
async def import_reports(request: Request, user: User) -> Response:
    """POST /reports/import (multipart `files`): as `reports import --json`."""
    state = app_state(request)
    upload = await upload_of(request)
    folder = work_folder(request)
    try:
        paths = place_files([(f.path, f.name) for f in upload.files], folder)

        def work() -> dict[str, Any]:
            result = workflow.import_reports(state.settings, paths, engine=state.engine)
            body: dict[str, Any] = result.to_json()
            audit(request, AuditAction.REPORTS_IMPORT, body)
            return body

        return JSONResponse(await run_in_threadpool(work))
    finally:
        upload.remove()
        shutil.rmtree(folder, ignore_errors=True)


@endpoint(Role.VIEWER)
async def balance(request: Request, user: User) -> Response:
    """GET /balance: as `balance --json`."""
    settings = app_state(request).settings
    result = await run_in_threadpool(workflow.balance, settings)
    return JSONResponse(result.to_json())


@endpoint(Role.ADMIN)
async def audit_log(request: Request, user: User) -> Response:
    """GET /audit?user=&action=&page=: the audit log as the /audit page pages and filters
    it (workflow_users.audit_page), newest first (admins; anyone else 403).

    Query parameters (each optional):

        user     only this user's entries (the exact name; the first 200 characters)
        action   only entries of this action (an AuditAction: send, pause, login, ...);
                 any other is 422
        page     the page, from 1 (default), AUDIT_PAGE_SIZE (50) entries a page; not a
                 whole number from 1 to MAX_AUDIT_PAGE is 400 (`limit`/`offset` too: gone)

    Answers {"total" (entries matching in all), "page", "page_size", "entries": [{"id",
    "at" (China time), "user", "action", "detail", "ip"}]}; a page past the last has no
    entries."""
    from campaign.timeutil import china_iso

    engine = app_state(request).engine
    params = request.query_params
    for old in ("limit", "offset"):
        if old in params:
            raise ApiError(400, f"{old} is not a parameter of /audit: use page (from 1)")
    page = int_param(request, "page", 1, low=1, high=workflow_users.MAX_AUDIT_PAGE)
    size = workflow_users.AUDIT_PAGE_SIZE
    user_name = params.get("user", "").strip()[:200] or None
    action = params.get("action", "").strip() or None

    def work() -> dict[str, Any]:
        found = workflow_users.audit_page(
            engine, limit=size, offset=(page - 1) * size, user_name=user_name, action=action
        )
        return {
            "total": found.total,
            "page": page,
            "page_size": size,
            "entries": [
                {
                    "id": e.id,
                    "at": china_iso(e.at),
                    "user": e.user_name,
                    "action": e.action,
                    "detail": e.detail,
                    "ip": e.ip,
                }
                for e in found.entries
            ],
        }

    return JSONResponse(await run_in_threadpool(work))


@endpoint(Role.VIEWER)
async def campaign_events(request: Request, user: User) -> Response:
    """GET /campaigns/{id}/events: Server-Sent Events (web/events.py)."""
    return await events.campaign_events(request)


@endpoint(Role.VIEWER)
async def all_events(request: Request, user: User) -> Response:
    """GET /campaigns/events: every campaign's progress as Server-Sent Events."""
    return await events.all_events(request)


@endpoint(Role.VIEWER)
async def not_found(request: Request, user: User) -> Response:
    """Any other path under /api/v1 (signed-in callers only: others get 401 first)."""
    return error(404, f"no API route {request.method} {request.url.path}")


routes: list[BaseRoute] = [
    Route("/plans", create_plan, methods=["POST"]),
    Route("/plans/{plan_id}/preview.xlsx", plan_preview, methods=["GET"]),
    Route("/campaigns", list_campaigns, methods=["GET"]),
    Route("/campaigns", create_campaign, methods=["POST"]),
    Route("/campaigns/events", all_events, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}", show_campaign, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/events", campaign_events, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/pause", pause_campaign, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/resume", resume_campaign, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/cancel", cancel_campaign, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/results.xlsx", results_xlsx, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/results.csv", results_csv, methods=["GET"]),
    Route("/optouts", list_optouts, methods=["GET"]),
    Route("/optouts", add_optouts, methods=["POST"]),
    Route("/optouts", remove_optouts, methods=["DELETE"]),
    Route("/optouts/import", import_optouts, methods=["POST"]),
    Route("/reports/import", import_reports, methods=["POST"]),
    Route("/balance", balance, methods=["GET"]),
    Route("/audit", audit_log, methods=["GET"]),
    Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
]

__all__ = ["routes"]
