"""Opt-outs (/optouts), the report-file import (/reports/import), and /health.

    GET  /optouts?q=&page=           the suppression list, newest first, searched (a number
                                     or a part of one; else the source, detail or adder),
                                     50 a page, numbers masked, each entry's provenance
    POST /optouts/add                senders: `mobiles` (one or many: any separators),
                                     `note` -> `optout add` by this user; 303 back
    POST /optouts/remove             senders: `mobiles` -> a page to confirm; with
                                     confirm=yes -> `optout remove`; 303 back
    POST /optouts/import             senders, multipart (the CSRF token first): `files`,
                                     optional `mobile_column` -> `optout import` of each
                                     file, the figures shown on the page
    GET  /optouts/export.xlsx|.csv   the list with provenance (`optout export`)
    GET  /reports/import             senders: the upload form
    POST /reports/import             senders, multipart `files` -> `reports import`; the
                                     per-file figures (imported, repeated, malformed,
                                     unmatched) and the first malformed rows
    GET  /health                     the gateway balance (or why not: a note; asked at most
                                     every few seconds: web/new_balance), the worker
                                     processes and the workers of each campaign, the
                                     receiver (configured? answering?), the store

Viewers read the list and the health page; senders change the list and import. Every
change is in the audit log. Contact data is only ever a value in a template (escaped).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any, Unpack
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from campaign import workflow, workflow_health, workflow_web
from campaign.errors import CampaignError, InputError
from campaign.outcomes import AuditAction, Role
from campaign.redact import Redactor, redact
from campaign.store.users import User
from campaign.web.auth import audit, require
from campaign.web.i18n import lang_of, t
from campaign.web.new_balance import BalanceCache
from campaign.web.plans import place_files
from campaign.web.render import FormAnswer, render, render_form_page
from campaign.web.scratch import scratch_of
from campaign.web.uploads import (
    Upload,
    UploadTooLarge,
    receive_files,
    too_large_fragment,
    too_large_text,
)

PAGE_SIZE = 50  # entries of the list on one page
MAX_PAGE = 10**6
MAX_MOBILES = 100_000  # numbers in one add or remove
MAX_FORM_FIELDS = 10
MAX_FIELD_BYTES = 1024 * 1024  # a pasted list of numbers (security.MAX_FORM_BYTES caps it too)
AUDITED_MOBILES = 100  # numbers of one change written into its audit detail
MALFORMED_SHOWN = 20  # malformed rows of one report file listed on the page
CONFIRMED = "yes"
FLASH = "flash_optouts"  # session key: what the last change did, shown once
WORK_DIR = "work"  # data_dir/work/<random>/: imported files and exports, removed after use
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
_SEPARATORS = re.compile(r"[\r\n,;，；、]+")
_SPACES = re.compile(r"\s+")
MAX_NUMBER_DIGITS = 15  # a line with more digits than one number holds is several numbers
#: suppression.reason -> catalog key of its word (others are shown as stored).
REASONS = {
    "manual": "optouts.reason.manual",
    "import": "optouts.reason.import",
    "optout reply": "optouts.reason.reply",
    "blacklist status": "optouts.reason.blacklist",
}


# --------------------------------------------------------------------------- plumbing


async def _user(request: Request, role: Role) -> User:
    return await run_in_threadpool(require, request, role)


def _state(request: Request) -> Any:
    return request.app.state


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(
        max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES
    )
    return {key: str(value) for key, value in form.items() if isinstance(value, str)}


def mobiles_of(text: str) -> list[str]:
    """The numbers of a pasted text: one a line, or separated by commas, semicolons (also
    the full-width ones) or spaces; a piece with spaces but no more digits than one number
    has is one number written in groups ("+86 138 0013 8000"). At most MAX_MOBILES."""
    found: list[str] = []
    for piece in _SEPARATORS.split(text):
        piece = piece.strip()
        if sum(ch.isdigit() for ch in piece) > MAX_NUMBER_DIGITS:
            found += [part for part in _SPACES.split(piece) if part]
        elif piece:
            found.append(piece)
    if len(found) > MAX_MOBILES:
        raise InputError(f"at most {MAX_MOBILES} numbers at once: import a file instead")
    return found


def _audit_mobiles(mobiles: list[str]) -> dict[str, Any]:
    shown = mobiles[:AUDITED_MOBILES]
    return {"count": len(mobiles), "mobiles": shown, "more": len(mobiles) - len(shown)}


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "")
    return min(int(raw), MAX_PAGE) if raw.isdigit() and int(raw) >= 1 else 1


def page_links(request: Request, page: int, total: int, size: int) -> dict[str, Any]:
    """The pager of a list page: its numbers and the addresses of the pages before and
    after (the other query parameters kept)."""
    pages = max(1, -(-total // size))

    def url(number: int) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        params.append(("page", str(number)))
        return f"{request.url.path}?{urlencode(params)}"

    return {
        "page": page,
        "pages": pages,
        "first": (page - 1) * size + 1 if total else 0,
        "last": min(page * size, total),
        "total": total,
        "prev": url(page - 1) if page > 1 else None,
        "next": url(page + 1) if page < pages else None,
    }


def _work_folder(request: Request) -> Path:
    return scratch_of(_state(request)).folder(WORK_DIR)


async def _upload(request: Request) -> Upload:
    limit = _state(request).settings.web.max_upload_bytes
    return await receive_files(request, limit_bytes=limit)


def shown_time(iso: str | None) -> str:
    """An entry's added_at (ISO 8601, China time) as a table cell: "2026-12-03 16:05:01"."""
    return (iso or "").replace("T", " ")[:19]


# --------------------------------------------------------------------------- opt-outs


async def optouts_page(request: Request) -> Response:
    """GET /optouts: the list (see the module docstring)."""
    await _user(request, Role.VIEWER)
    return await _optouts(request)


async def _optouts(
    request: Request, *, imported: dict[str, Any] | None = None, **answer: Unpack[FormAnswer]
) -> Response:
    engine = _state(request).engine
    lang = lang_of(request)
    query = request.query_params.get("q", "")[:200]
    page = _page_number(request)
    found = await run_in_threadpool(
        workflow_web.search_optouts, engine, query,
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
    )  # fmt: skip
    entries = [
        {**entry, "when": shown_time(entry["added_at"]), "source": _reason(lang, entry["reason"])}
        for entry in found["optouts"]
    ]
    return render_form_page(
        request,
        "optouts.html",
        flash=FLASH,
        q=query,
        entries=entries,
        pager=page_links(request, page, int(found["total"]), PAGE_SIZE),
        imported=imported,
        limit_mb=_state(request).settings.web.max_upload_mb,
        **answer,
    )


def _reason(lang: str, reason: str | None) -> str:
    key = REASONS.get(reason or "")
    return t(lang, key) if key else reason or ""


async def optouts_add(request: Request) -> Response:
    """POST /optouts/add: `optout add` of the numbers, by this user, with the note."""
    user = await _user(request, Role.SENDER)
    form = await _form(request)
    lang = lang_of(request)
    note = form.get("note", "").strip()[:500] or None
    try:
        mobiles = mobiles_of(form.get("mobiles", ""))
        if not mobiles:
            raise InputError(t(lang, "optouts.add.none"))

        def work() -> dict[str, Any]:
            engine = _state(request).engine
            result = workflow_web.add_optouts(engine, mobiles, added_by=user.name, note=note)
            body: dict[str, Any] = result.to_json()
            audit(
                request,
                AuditAction.OPTOUT_ADD,
                {**body, **_audit_mobiles(mobiles), "note": note, "via": "page"},
            )
            return body

        done = await run_in_threadpool(work)
    except InputError as exc:
        return await _optouts(
            request, status_code=422, error=t(lang, "optouts.add.refused"), detail=str(exc),
            typed={"add": form.get("mobiles", ""), "note": note or ""},
        )  # fmt: skip
    request.session[FLASH] = t(lang, "optouts.add.done", **done)
    return RedirectResponse("/optouts", status_code=303)


async def optouts_remove(request: Request) -> Response:
    """POST /optouts/remove: without confirm=yes, the page to confirm; with it, `optout
    remove` of the numbers."""
    await _user(request, Role.SENDER)
    form = await _form(request)
    lang = lang_of(request)
    try:
        mobiles = mobiles_of(form.get("mobiles", ""))
        if not mobiles:
            raise InputError(t(lang, "optouts.remove.none"))
        numbers = await run_in_threadpool(workflow.normalized_mobiles, mobiles)
    except InputError as exc:
        return await _optouts(
            request, status_code=422, error=t(lang, "optouts.remove.refused"), detail=str(exc),
            typed={"remove": form.get("mobiles", "")},
        )  # fmt: skip
    if form.get("confirm") != CONFIRMED:
        return await _remove_confirmation(request, numbers)

    def work() -> dict[str, Any]:
        result = workflow_web.remove_optouts(_state(request).engine, numbers)
        body: dict[str, Any] = result.to_json()
        audit(
            request, AuditAction.OPTOUT_REMOVE, {**body, **_audit_mobiles(numbers), "via": "page"}
        )
        return body

    done = await run_in_threadpool(work)
    request.session[FLASH] = t(lang, "optouts.remove.done", **done)
    return RedirectResponse("/optouts", status_code=303)


async def _remove_confirmation(request: Request, numbers: list[str]) -> Response:
    """The numbers to take off the list, each with its entry (or "not listed")."""
    lang = lang_of(request)
    engine = _state(request).engine

    def listed() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for number in numbers[:PAGE_SIZE]:
            for entry in workflow_web.search_optouts(engine, number, limit=5)["optouts"]:
                if entry["mobile"] == number:
                    found[number] = entry
        return found

    entries = await run_in_threadpool(listed)
    rows = [
        {
            "mobile": number,
            "entry": entries.get(number),
            "when": shown_time((entries.get(number) or {}).get("added_at")),
            "source": _reason(lang, (entries.get(number) or {}).get("reason")),
        }
        for number in numbers[:PAGE_SIZE]
    ]
    return render(
        request,
        "optouts_remove.html",
        rows=rows,
        count=len(numbers),
        more=max(0, len(numbers) - PAGE_SIZE),
        mobiles=" ".join(numbers),
    )


async def optouts_import(request: Request) -> Response:
    """POST /optouts/import (multipart): `optout import` of each file, by this user."""
    user = await _user(request, Role.SENDER)
    state = _state(request)
    lang = lang_of(request)
    try:
        upload = await _upload(request)
    except UploadTooLarge:
        return too_large_fragment(request) or await _optouts(
            request, status_code=413, error=too_large_text(request)
        )
    folder = _work_folder(request)
    try:
        if not upload.files:
            return await _optouts(request, status_code=422, error=t(lang, "optouts.import.none"))
        mobile_column = upload.field("mobile_column").strip()[:200] or None
        paths = place_files([(f.path, f.name) for f in upload.files], folder)

        def work() -> dict[str, Any]:
            each = [
                workflow.import_optouts(
                    state.settings, path, mobile_column=mobile_column,
                    engine=state.engine, added_by=user.name,
                ).to_json()
                for path in paths
            ]  # fmt: skip
            summed = {
                key: sum(int(e.get(key, 0)) for e in each)
                for key in ("rows", "added", "already", "repeated", "invalid")
            }
            audit(
                request,
                AuditAction.OPTOUT_IMPORT,
                {"source": ", ".join(str(e["source"]) for e in each), **summed, "via": "page"},
            )
            return {"files": each, **summed}

        try:
            imported = await run_in_threadpool(work)
        except CampaignError as exc:
            return await _optouts(
                request, status_code=422, error=t(lang, "optouts.import.refused"),
                detail=str(exc),
            )  # fmt: skip
        return await _optouts(request, imported=imported)
    finally:
        upload.remove()
        shutil.rmtree(folder, ignore_errors=True)


def _export(suffix: str, media_type: str) -> Any:
    async def download(request: Request) -> Response:
        await _user(request, Role.VIEWER)
        folder = _work_folder(request)
        out = folder / f"optouts{suffix}"
        try:
            await run_in_threadpool(workflow.export_optouts, _state(request).settings, out)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            out,
            media_type=media_type,
            filename=f"optouts{suffix}",
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    download.__name__ = f"optouts_export_{suffix[1:]}"
    download.__doc__ = f"GET /optouts/export{suffix}: `optout export` (with provenance)."
    return download


# --------------------------------------------------------------------------- reports


async def reports_page(request: Request) -> Response:
    """GET /reports/import: the form."""
    await _user(request, Role.SENDER)
    return _reports(request)


def _reports(
    request: Request,
    *,
    status_code: int = 200,
    files: list[dict[str, Any]] | None = None,
    error: str | None = None,
    detail: str | None = None,
) -> Response:
    return render(
        request,
        "reports_import.html",
        status_code=status_code,
        files=files,
        error=error,
        detail=detail,
        limit_mb=_state(request).settings.web.max_upload_mb,
    )


async def reports_import(request: Request) -> Response:
    """POST /reports/import (multipart `files`): `reports import`, figures per file."""
    await _user(request, Role.SENDER)
    state = _state(request)
    lang = lang_of(request)
    try:
        upload = await _upload(request)
    except UploadTooLarge:
        return too_large_fragment(request) or _reports(
            request, status_code=413, error=too_large_text(request)
        )
    folder = _work_folder(request)
    try:
        if not upload.files:
            return _reports(request, status_code=422, error=t(lang, "reports.none"))
        paths = place_files([(f.path, f.name) for f in upload.files], folder)

        def work() -> list[dict[str, Any]]:
            result = workflow.import_reports(state.settings, paths, engine=state.engine)
            audit(request, AuditAction.REPORTS_IMPORT, {**result.to_json(), "via": "page"})
            return [
                {
                    **summary.to_json(),
                    "source": Path(summary.source).name,
                    "malformed_rows": list(summary.malformed_rows[:MALFORMED_SHOWN]),
                }
                for summary in result.files
            ]

        try:
            files = await run_in_threadpool(work)
        except CampaignError as exc:
            return _reports(
                request, status_code=422, error=t(lang, "reports.refused"), detail=str(exc)
            )
        return _reports(request, files=files)
    finally:
        upload.remove()
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- health


async def health_page(request: Request) -> Response:
    """GET /health: balance, workers, receiver, store (each one asked at once)."""
    await _user(request, Role.VIEWER)
    state = _state(request)
    (products, why), health = await asyncio.gather(
        run_in_threadpool(_balance, state),
        run_in_threadpool(workflow_health.health, state.settings, state.engine),
    )
    worker = getattr(state, "worker", None)
    if worker is None:
        console_worker = "off"
    elif worker.running:
        console_worker = "running"
    else:
        console_worker = "stopped"
    return render(
        request,
        "health.html",
        balance={"products": products, "error": why},
        health=health,
        console_worker=console_worker,
        worker_error=getattr(worker, "error", None),
    )


def _balance(state: Any) -> tuple[dict[str, int] | None, str | None]:
    """(products, None) or (None, why not, secrets masked), through the console's balance
    cache (web/new_balance: the gateway is asked at most every few seconds, one query at a
    time, as PROTOCOL wants; the preview's cost shares it)."""
    cache: BalanceCache | None = getattr(state, "new_balance", None)
    if cache is None:
        cache = state.new_balance = BalanceCache()
    products, why = cache.get(state.settings)
    if why is not None:
        why = Redactor(state.settings.secrets).redact(redact(why))
    return products, why


routes: list[BaseRoute] = [
    Route("/optouts", optouts_page, methods=["GET"]),
    Route("/optouts/add", optouts_add, methods=["POST"]),
    Route("/optouts/remove", optouts_remove, methods=["POST"]),
    Route("/optouts/import", optouts_import, methods=["POST"]),
    Route("/optouts/export.xlsx", _export(".xlsx", XLSX), methods=["GET"]),
    Route("/optouts/export.csv", _export(".csv", CSV), methods=["GET"]),
    Route("/reports/import", reports_page, methods=["GET"]),
    Route("/reports/import", reports_import, methods=["POST"]),
    Route("/health", health_page, methods=["GET"]),
]

__all__ = ["mobiles_of", "page_links", "routes", "shown_time"]
