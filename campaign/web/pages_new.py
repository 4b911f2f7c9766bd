"""The new-campaign flow (senders): upload -> map (where unclear) -> template -> preview ->
confirm -> the campaign, queued for the workers.

    GET  /new                        the upload form (one or more contact files)
    POST /new                        files streamed to disk (uploads.receive_files), planned
                                     (PlanCache) -> 303 to map when a file is unclear, else
                                     to template; a file no choice can read -> the form, 422
    GET  /new/{id}/map               sheet / header row / mobile column, with each sheet's
    POST /new/{id}/map                 first rows; POST action=show tries choices, apply keeps
                                     them (re-plans) -> 303 template
    GET  /new/{id}/template          the template editor (columns offered as placeholders)
    POST /new/{id}/sample            the live sample (htmx partial): first rows rendered
    POST /new/{id}/template          re-plans with the template -> 303 preview
    GET  /new/{id}/preview           counts by outcome (= `plan --json`), problem rows
                                     (?outcome=&page=, 50 a page), cost vs balance, schedule
    GET  /new/{id}/preview.xlsx      the per-row preview of `plan --out`
    GET  /new/{id}/confirm           states the recipients; the time checked as `send --at`
    POST /new/{id}/send              the campaign, once per plan (PlanCache): 303 to it;
                                     a repeated list -> the refusal page (409) offering
                                     "send again anyway" (again=1)

{id} is a plan of PlanCache, or (map only) a draft: an upload no choice has read yet
(new_drafts). Both belong to the user who uploaded them (anyone else: 404). Cells, file
and sheet names are only ever values given to the templates (escaped). Every upload,
plan and send is audited. The preview, confirm and send steps are in new_send.py, what
the steps share in new_common.py.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from campaign import workflow_web
from campaign.errors import ContactsError, InputError, NotFoundError
from campaign.outcomes import AuditAction
from campaign.store.users import User
from campaign.web.auth import audit
from campaign.web.i18n import lang_of, t
from campaign.web.new_common import (
    drafts_of,
    entry_of,
    field_of,
    gone,
    is_draft,
    masked_layout,
    page_ctx,
    plans_of,
    read_form,
    see_other,
    sender,
    template_of,
    tidy,
    upload_form,
    used,
)
from campaign.web.new_drafts import Draft
from campaign.web.new_send import confirm_page, preview_page, preview_xlsx, send_submit
from campaign.web.plans import PlanChoices, PlanEntry, PlanUsedError
from campaign.web.render import render
from campaign.web.uploads import UploadTooLarge, receive_files, too_large_fragment, too_large_text

_NO_HEADER = re.compile(r"column_[A-Z]+")  # the mobile column of a sheet without a header


# --------------------------------------------------------------------------- upload


async def upload_page(request: Request) -> Response:
    await sender(request)
    return upload_form(request)


async def upload_submit(request: Request) -> Response:
    user = await sender(request)
    state = request.app.state
    try:
        upload = await receive_files(request, limit_bytes=state.settings.web.max_upload_bytes)
    except UploadTooLarge:
        return too_large_fragment(request) or upload_form(request, too_large_text(request), 413)
    try:
        if not upload.files:
            return upload_form(request, t(lang_of(request), "new.upload.none"), 422)
        files = [(f.path, f.name) for f in upload.files]
        draft = await run_in_threadpool(drafts_of(request).add, user.name, files)
    finally:
        upload.remove()  # what was received moved into the draft
    detail = {"files": [f.name for f in upload.files], "bytes": sum(f.size for f in upload.files)}
    await run_in_threadpool(audit, request, AuditAction.UPLOAD, detail)
    try:
        outcome = await run_in_threadpool(_plan_draft, request, user, draft, "upload")
    except InputError as exc:
        drafts_of(request).remove(draft.draft_id)
        return upload_form(request, tidy(request, str(exc)), 422)
    if isinstance(outcome, PlanEntry):
        unclear = await run_in_threadpool(_unclear, request, outcome)
        step = "map" if unclear else "template"
        return see_other(f"/new/{outcome.plan_id}/{step}")
    if outcome is None:
        return see_other(f"/new/{draft.draft_id}/map")
    drafts_of(request).remove(draft.draft_id)
    return upload_form(request, f"{t(lang_of(request), 'new.upload.unreadable')} {outcome}", 422)


def _plan_draft(request: Request, user: User, draft: Draft, why: str) -> PlanEntry | str | None:
    """Plan a draft's files with its choices: the plan (the draft removed); None when the
    files can be read, but not so (draft.problem says why: the map step); or why they
    cannot be read at all. Other bad input (a setting) is raised, the draft kept."""
    state, drafts = request.app.state, drafts_of(request)
    try:
        entry = plans_of(request).add(
            state.settings, state.engine, drafts.linked(draft), draft.choices, user.name
        )
    except ContactsError as exc:
        drafts.tidy(draft)
        draft.problem = tidy(request, str(exc))
        try:
            workflow_web.contact_layouts(state.settings, draft.files)
        except InputError as unreadable:
            return tidy(request, str(unreadable))
        return None
    except BaseException:
        drafts.tidy(draft)
        raise
    drafts.remove(draft.draft_id)
    _audit_plan(request, entry, why)
    return entry


def _audit_plan(request: Request, entry: PlanEntry, why: str) -> None:
    summary = entry.planned.summary
    audit(
        request,
        AuditAction.PLAN,
        {
            "plan_id": entry.plan_id,
            "revision": entry.revision,
            "why": why,
            "files": list(entry.uploaded_names),
            "rows": summary["rows"],
            "recipients": summary["recipients"],
        },
    )


def _unclear(request: Request, entry: PlanEntry) -> list[str]:
    """Why a plan's files may not be read as the sender means (the map step shows it):
    a workbook of several sheets, a sheet without a header row."""
    lang = lang_of(request)
    files = entry.planned.plan.contacts.files
    found = []
    if entry.choices.sheet is None:
        for path, count in Counter(f.path for f in files).items():
            if count > 1:
                found.append(t(lang, "new.map.why_sheets", file=_name_of(entry, path), n=count))
    for summary in files:
        if entry.choices.header_row is None and _NO_HEADER.fullmatch(summary.mobile_column):
            found.append(t(lang, "new.map.why_header", source=summary.source))
    return found


def _name_of(entry: PlanEntry, path: str) -> str:
    for placed, name in zip(entry.files, entry.uploaded_names, strict=True):
        if str(placed) == path:
            return name
    return path.rsplit("/", 1)[-1]


# --------------------------------------------------------------------------- map


def _target(request: Request, user: User, some_id: str) -> PlanEntry | Draft | None:
    draft = drafts_of(request).find(some_id, user.name)
    if draft is not None:
        return draft
    try:
        return entry_of(request, user, some_id)
    except NotFoundError:
        return None


async def map_page(request: Request) -> Response:
    user = await sender(request)
    target = await run_in_threadpool(_target, request, user, request.path_params["plan_id"])
    if target is None:
        return gone(request)
    return await _map(request, target, target.choices)


async def _map(
    request: Request,
    target: PlanEntry | Draft,
    choices: PlanChoices,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    state = request.app.state
    if isinstance(target, Draft):
        files, the_id = list(target.files), target.draft_id
        notes = [] if error else [f"{t(lang_of(request), 'new.map.cannot')} {target.problem}"]
    else:
        files = list(zip(target.files, target.uploaded_names, strict=True))
        the_id = target.plan_id
        notes = await run_in_threadpool(_unclear, request, target)

    def read() -> Any:
        return workflow_web.contact_layouts(
            state.settings,
            files,
            sheet=choices.sheet,
            header_row=choices.header_row,
            mobile_column=choices.mobile_column,
        )

    try:
        layouts = await run_in_threadpool(read)
    except InputError as exc:
        message = f"{t(lang_of(request), 'new.upload.unreadable')} {tidy(request, str(exc))}"
        return upload_form(request, message, 422)
    layouts = [replace(x, problem=tidy(request, x.problem)) if x.problem else x for x in layouts]
    layouts = [masked_layout(x) for x in layouts]  # no whole mobile number on the page
    sheets = list(dict.fromkeys(x.sheet for x in layouts if x.sheet is not None))
    columns = list(dict.fromkeys(c for x in layouts if x.used for c in x.columns))
    return render(
        request,
        "new_map.html",
        status_code=status,
        **page_ctx(
            request,
            plan_id=the_id,
            layouts=layouts,
            sheets=sheets,
            columns=columns,
            choices=choices,
            notes=notes,
            error=error,
        ),
    )


async def map_submit(request: Request) -> Response:
    user = await sender(request)
    form = await read_form(request)
    lang = lang_of(request)
    target = await run_in_threadpool(_target, request, user, request.path_params["plan_id"])
    if target is None:
        return gone(request)
    header_text = field_of(form, "header_row").strip()
    header_row = int(header_text) if header_text.isdecimal() else None
    choices = replace(
        target.choices,
        sheet=field_of(form, "sheet").strip() or None,
        header_row=header_row,
        mobile_column=field_of(form, "mobile_column").strip() or None,
    )
    if header_text and (header_row is None or header_row < 1):
        return await _map(request, target, choices, error=t(lang, "new.map.bad_header"), status=422)
    if field_of(form, "action") != "apply":
        return await _map(request, target, choices)
    if isinstance(target, Draft):
        target.choices = choices
        try:
            outcome = await run_in_threadpool(_plan_draft, request, user, target, "map")
        except InputError as exc:
            return await _map(request, target, choices, error=tidy(request, str(exc)), status=422)
        if isinstance(outcome, PlanEntry):
            return see_other(f"/new/{outcome.plan_id}/template")
        why = f"{t(lang, 'new.map.cannot')} {outcome or target.problem}"
        return await _map(request, target, choices, error=why, status=422)
    state = request.app.state

    def revise() -> PlanEntry:
        entry = plans_of(request).revise(
            state.settings,
            state.engine,
            target.plan_id,
            user.name,
            sheet=choices.sheet,
            header_row=choices.header_row,
            mobile_column=choices.mobile_column,
        )
        _audit_plan(request, entry, "map")
        return entry

    try:
        entry = await run_in_threadpool(revise)
    except PlanUsedError:
        return used(request, target.campaign_id or 0)
    except NotFoundError:
        return gone(request)
    except InputError as exc:
        why = f"{t(lang, 'new.map.cannot')} {tidy(request, str(exc))}"
        return await _map(request, target, choices, error=why, status=422)
    return see_other(f"/new/{entry.plan_id}/template")


# --------------------------------------------------------------------------- template


async def template_page(request: Request) -> Response:
    user = await sender(request)
    plan_id = request.path_params["plan_id"]
    try:
        entry = await run_in_threadpool(entry_of, request, user, plan_id)
    except NotFoundError:
        target = await run_in_threadpool(_target, request, user, plan_id)
        return see_other(f"/new/{plan_id}/map") if target is not None else gone(request)
    if entry.campaign_id is not None:
        return used(request, entry.campaign_id)
    text = "" if is_draft(entry) else entry.choices.template
    return await _template(request, entry, text)


async def _template(
    request: Request, entry: PlanEntry, text: str, *, error: str | None = None, status: int = 200
) -> Response:
    sample = await _sample_of(request, entry, text)
    return render(
        request,
        "new_template.html",
        status_code=status,
        **page_ctx(
            request,
            plan_id=entry.plan_id,
            template=text,
            error=error,
            sample=sample,
            columns=entry.planned.plan.contacts.columns,
            summary=entry.planned.summary,
            names=entry.uploaded_names,
        ),
    )


async def _sample_of(request: Request, entry: PlanEntry, text: str) -> Any:
    if not text.strip():
        return None
    settings = request.app.state.settings
    try:
        return await run_in_threadpool(workflow_web.template_sample, settings, entry.planned, text)
    except InputError as exc:  # the settings' word list: shown, never a crash
        from campaign.template_sample import TemplateSample

        return TemplateSample([], tidy(request, str(exc)), [], "", False, "", 0, [])


async def sample_partial(request: Request) -> Response:
    user = await sender(request)
    form = await read_form(request)
    try:
        entry = await run_in_threadpool(entry_of, request, user, request.path_params["plan_id"])
    except NotFoundError:
        return gone(request)
    sample = await _sample_of(request, entry, template_of(form))
    return render(request, "partials/new_sample.html", **page_ctx(request, sample=sample))


async def template_submit(request: Request) -> Response:
    user = await sender(request)
    form = await read_form(request)
    lang = lang_of(request)
    plan_id = request.path_params["plan_id"]
    try:
        entry = await run_in_threadpool(entry_of, request, user, plan_id)
    except NotFoundError:
        return gone(request)
    text = template_of(form)
    if not text:
        return await _template(
            request, entry, text, error=t(lang, "new.template.empty"), status=422
        )
    state = request.app.state

    def revise() -> PlanEntry:
        revised = plans_of(request).revise(
            state.settings, state.engine, plan_id, user.name, template=text
        )
        _audit_plan(request, revised, "template")
        return revised

    try:
        await run_in_threadpool(revise)
    except PlanUsedError:
        return used(request, entry.campaign_id or 0)
    except NotFoundError:
        return gone(request)
    except InputError as exc:
        why = f"{t(lang, 'new.sample.problem')} {tidy(request, str(exc))}"
        return await _template(request, entry, text, error=why, status=422)
    return see_other(f"/new/{plan_id}/preview")


routes: list[BaseRoute] = [
    Route("/new", upload_page, methods=["GET"]),
    Route("/new", upload_submit, methods=["POST"]),
    Route("/new/{plan_id}/map", map_page, methods=["GET"]),
    Route("/new/{plan_id}/map", map_submit, methods=["POST"]),
    Route("/new/{plan_id}/template", template_page, methods=["GET"]),
    Route("/new/{plan_id}/template", template_submit, methods=["POST"]),
    Route("/new/{plan_id}/sample", sample_partial, methods=["POST"]),
    Route("/new/{plan_id}/preview", preview_page, methods=["GET"]),
    Route("/new/{plan_id}/preview.xlsx", preview_xlsx, methods=["GET"]),
    Route("/new/{plan_id}/confirm", confirm_page, methods=["GET"]),
    Route("/new/{plan_id}/send", send_submit, methods=["POST"]),
]

__all__ = ["routes"]
