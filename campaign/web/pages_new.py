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
plan and send is audited.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from campaign import workflow, workflow_web
from campaign.errors import CampaignError, ContactsError, InputError, NotFoundError, RepeatError
from campaign.outcomes import PLAN_OUTCOMES, AuditAction, Outcome, Role
from campaign.redact import redact
from campaign.store.users import User
from campaign.web.auth import audit, require
from campaign.web.i18n import lang_of, t
from campaign.web.new_balance import cost_of
from campaign.web.new_drafts import DRAFT_TEMPLATE, Draft, Drafts
from campaign.web.plans import (
    PlanCache,
    PlanChangedError,
    PlanChoices,
    PlanEntry,
    PlanUsedError,
    problem_rows,
)
from campaign.web.render import render
from campaign.web.uploads import receive_files
from campaign.zh import reason_zh

PER_PAGE = 50  # problem rows a preview page shows
MAX_FORM_FIELD = 1024 * 1024  # a template is at most [limits] max_template_chars
MAX_NAME = 200  # characters of a campaign name
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_NO_HEADER = re.compile(r"column_[A-Z]+")  # the mobile column of a sheet without a header
NOT_READY = tuple(o for o in PLAN_OUTCOMES if o != Outcome.READY)


# --------------------------------------------------------------------------- plumbing


async def _sender(request: Request) -> User:
    return await run_in_threadpool(require, request, Role.SENDER)


def _plans(request: Request) -> PlanCache:
    plans: PlanCache = request.app.state.plans
    return plans


def _drafts(request: Request) -> Drafts:
    state = request.app.state
    drafts: Drafts | None = getattr(state, "new_drafts", None)
    if drafts is None:
        drafts = state.new_drafts = Drafts(state.data_dir / "drafts")
    return drafts


def _tidy(request: Request, text: str) -> str:
    """A library message for a page: no folder of the console's own (its files are named
    as uploaded), no secret."""
    folder = re.escape(str(request.app.state.data_dir))
    text = re.sub(folder + r"/(?:plans|drafts|uploads)/(?:[\w-]+/)*", "", text)
    return redact(text)


def _reason(lang: str, text: str) -> str:
    return reason_zh(text) if lang == "zh" else text


def _ctx(request: Request, **ctx: Any) -> dict[str, Any]:
    """What every page of the flow gives its template besides render()'s own."""
    return {"reason_word": partial(_reason, lang_of(request)), **ctx}


async def _form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=20, max_part_size=MAX_FORM_FIELD)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _text_of(form: FormData) -> str:
    """The template of a form, as `--text` reads it (CRLF as LF, no surrounding space)."""
    return _field(form, "template").replace("\r\n", "\n").strip()


def _notice(
    request: Request, status: int, title: str, message: str, links: list[tuple[str, str]]
) -> Response:
    return render(
        request, "new_notice.html", status_code=status, **_ctx(request, title=title,
                                                                message=message, links=links)
    )  # fmt: skip


def _gone(request: Request) -> Response:
    lang = lang_of(request)
    return _notice(request, 404, t(lang, "new.gone.title"), t(lang, "new.gone.text"),
                   [("/new", t(lang, "new.gone.again"))])  # fmt: skip


def _used(request: Request, campaign_id: int) -> Response:
    lang = lang_of(request)
    return _notice(
        request, 409, t(lang, "new.used.title"), t(lang, "new.used.text", id=campaign_id),
        [(f"/campaigns/{campaign_id}", t(lang, "new.used.open")), ("/new", t(lang, "nav.new"))],
    )  # fmt: skip


def _entry(request: Request, user: User, plan_id: str) -> PlanEntry:
    return _plans(request).get(plan_id, user.name)


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _is_draft(entry: PlanEntry) -> bool:
    return entry.choices.template == DRAFT_TEMPLATE


# --------------------------------------------------------------------------- upload


async def upload_page(request: Request) -> Response:
    await _sender(request)
    return _upload_form(request)


def _upload_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    limit = request.app.state.settings.web.max_upload_mb
    return render(request, "new_upload.html", status_code=status,
                  **_ctx(request, error=error, limit_mb=limit))  # fmt: skip


async def upload_submit(request: Request) -> Response:
    user = await _sender(request)
    state = request.app.state
    upload = await receive_files(request, limit_bytes=state.settings.web.max_upload_bytes)
    try:
        if not upload.files:
            return _upload_form(request, t(lang_of(request), "new.upload.none"), 422)
        files = [(f.path, f.name) for f in upload.files]
        draft = await run_in_threadpool(_drafts(request).add, user.name, files)
    finally:
        upload.remove()  # what was received moved into the draft
    detail = {"files": [f.name for f in upload.files], "bytes": sum(f.size for f in upload.files)}
    await run_in_threadpool(audit, request, AuditAction.UPLOAD, detail)
    try:
        outcome = await run_in_threadpool(_plan_draft, request, user, draft, "upload")
    except InputError as exc:
        _drafts(request).remove(draft.draft_id)
        return _upload_form(request, _tidy(request, str(exc)), 422)
    if isinstance(outcome, PlanEntry):
        unclear = await run_in_threadpool(_unclear, request, outcome)
        step = "map" if unclear else "template"
        return _see_other(f"/new/{outcome.plan_id}/{step}")
    if outcome is None:
        return _see_other(f"/new/{draft.draft_id}/map")
    _drafts(request).remove(draft.draft_id)
    return _upload_form(request, f"{t(lang_of(request), 'new.upload.unreadable')} {outcome}", 422)


def _plan_draft(request: Request, user: User, draft: Draft, why: str) -> PlanEntry | str | None:
    """Plan a draft's files with its choices: the plan (the draft removed); None when the
    files can be read, but not so (draft.problem says why: the map step); or why they
    cannot be read at all. Other bad input (a setting) is raised, the draft kept."""
    state, drafts = request.app.state, _drafts(request)
    try:
        entry = _plans(request).add(
            state.settings, state.engine, drafts.linked(draft), draft.choices, user.name
        )
    except ContactsError as exc:
        drafts.tidy(draft)
        draft.problem = _tidy(request, str(exc))
        try:
            workflow_web.contact_layouts(state.settings, draft.files)
        except InputError as unreadable:
            return _tidy(request, str(unreadable))
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
    draft = _drafts(request).find(some_id, user.name)
    if draft is not None:
        return draft
    try:
        return _entry(request, user, some_id)
    except NotFoundError:
        return None


async def map_page(request: Request) -> Response:
    user = await _sender(request)
    target = await run_in_threadpool(_target, request, user, request.path_params["plan_id"])
    if target is None:
        return _gone(request)
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
            state.settings, files, sheet=choices.sheet, header_row=choices.header_row,
            mobile_column=choices.mobile_column,
        )  # fmt: skip

    try:
        layouts = await run_in_threadpool(read)
    except InputError as exc:
        message = f"{t(lang_of(request), 'new.upload.unreadable')} {_tidy(request, str(exc))}"
        return _upload_form(request, message, 422)
    layouts = [replace(x, problem=_tidy(request, x.problem)) if x.problem else x for x in layouts]
    sheets = list(dict.fromkeys(x.sheet for x in layouts if x.sheet is not None))
    columns = list(dict.fromkeys(c for x in layouts if x.used for c in x.columns))
    return render(
        request,
        "new_map.html",
        status_code=status,
        **_ctx(
            request, plan_id=the_id, layouts=layouts,
            sheets=sheets, columns=columns, choices=choices, notes=notes, error=error,
        ),
    )  # fmt: skip


async def map_submit(request: Request) -> Response:
    user = await _sender(request)
    form = await _form(request)
    lang = lang_of(request)
    target = await run_in_threadpool(_target, request, user, request.path_params["plan_id"])
    if target is None:
        return _gone(request)
    header_text = _field(form, "header_row").strip()
    header_row = int(header_text) if header_text.isdecimal() else None
    choices = replace(
        target.choices,
        sheet=_field(form, "sheet").strip() or None,
        header_row=header_row,
        mobile_column=_field(form, "mobile_column").strip() or None,
    )
    if header_text and (header_row is None or header_row < 1):
        return await _map(request, target, choices, error=t(lang, "new.map.bad_header"),
                          status=422)  # fmt: skip
    if _field(form, "action") != "apply":
        return await _map(request, target, choices)
    if isinstance(target, Draft):
        target.choices = choices
        try:
            outcome = await run_in_threadpool(_plan_draft, request, user, target, "map")
        except InputError as exc:
            return await _map(request, target, choices, error=_tidy(request, str(exc)),
                              status=422)  # fmt: skip
        if isinstance(outcome, PlanEntry):
            return _see_other(f"/new/{outcome.plan_id}/template")
        why = f"{t(lang, 'new.map.cannot')} {outcome or target.problem}"
        return await _map(request, target, choices, error=why, status=422)
    state = request.app.state

    def revise() -> PlanEntry:
        entry = _plans(request).revise(
            state.settings, state.engine, target.plan_id, user.name, sheet=choices.sheet,
            header_row=choices.header_row, mobile_column=choices.mobile_column,
        )  # fmt: skip
        _audit_plan(request, entry, "map")
        return entry

    try:
        entry = await run_in_threadpool(revise)
    except PlanUsedError:
        return _used(request, target.campaign_id or 0)
    except NotFoundError:
        return _gone(request)
    except InputError as exc:
        why = f"{t(lang, 'new.map.cannot')} {_tidy(request, str(exc))}"
        return await _map(request, target, choices, error=why, status=422)
    return _see_other(f"/new/{entry.plan_id}/template")


# --------------------------------------------------------------------------- template


async def template_page(request: Request) -> Response:
    user = await _sender(request)
    plan_id = request.path_params["plan_id"]
    try:
        entry = await run_in_threadpool(_entry, request, user, plan_id)
    except NotFoundError:
        target = await run_in_threadpool(_target, request, user, plan_id)
        return _see_other(f"/new/{plan_id}/map") if target is not None else _gone(request)
    if entry.campaign_id is not None:
        return _used(request, entry.campaign_id)
    text = "" if _is_draft(entry) else entry.choices.template
    return await _template(request, entry, text)


async def _template(
    request: Request, entry: PlanEntry, text: str, *, error: str | None = None, status: int = 200
) -> Response:
    sample = await _sample_of(request, entry, text)
    return render(
        request,
        "new_template.html",
        status_code=status,
        **_ctx(
            request, plan_id=entry.plan_id, template=text, error=error, sample=sample,
            columns=entry.planned.plan.contacts.columns, summary=entry.planned.summary,
            names=entry.uploaded_names,
        ),
    )  # fmt: skip


async def _sample_of(request: Request, entry: PlanEntry, text: str) -> Any:
    if not text.strip():
        return None
    settings = request.app.state.settings
    try:
        return await run_in_threadpool(workflow_web.template_sample, settings, entry.planned, text)
    except InputError as exc:  # the settings' word list: shown, never a crash
        from campaign.template_sample import TemplateSample

        return TemplateSample([], _tidy(request, str(exc)), [], "", False, "", 0, [])


async def sample_partial(request: Request) -> Response:
    user = await _sender(request)
    form = await _form(request)
    try:
        entry = await run_in_threadpool(_entry, request, user, request.path_params["plan_id"])
    except NotFoundError:
        return _gone(request)
    sample = await _sample_of(request, entry, _text_of(form))
    return render(request, "partials/new_sample.html", **_ctx(request, sample=sample))


async def template_submit(request: Request) -> Response:
    user = await _sender(request)
    form = await _form(request)
    lang = lang_of(request)
    plan_id = request.path_params["plan_id"]
    try:
        entry = await run_in_threadpool(_entry, request, user, plan_id)
    except NotFoundError:
        return _gone(request)
    text = _text_of(form)
    if not text:
        return await _template(request, entry, text, error=t(lang, "new.template.empty"),
                               status=422)  # fmt: skip
    state = request.app.state

    def revise() -> PlanEntry:
        revised = _plans(request).revise(
            state.settings, state.engine, plan_id, user.name, template=text
        )
        _audit_plan(request, revised, "template")
        return revised

    try:
        await run_in_threadpool(revise)
    except PlanUsedError:
        return _used(request, entry.campaign_id or 0)
    except NotFoundError:
        return _gone(request)
    except InputError as exc:
        why = f"{t(lang, 'new.sample.problem')} {_tidy(request, str(exc))}"
        return await _template(request, entry, text, error=why, status=422)
    return _see_other(f"/new/{plan_id}/preview")


# --------------------------------------------------------------------------- preview


async def preview_page(request: Request) -> Response:
    user = await _sender(request)
    plan_id = request.path_params["plan_id"]
    try:
        entry = await run_in_threadpool(_entry, request, user, plan_id)
    except NotFoundError:
        return _gone(request)
    if _is_draft(entry):
        return _see_other(f"/new/{plan_id}/template")
    if entry.campaign_id is not None:
        return _used(request, entry.campaign_id)
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "problems":
        problems = _problems(request, entry)
        return render(request, "partials/new_problems.html", **_ctx(request, **problems))
    return await _preview(request, entry)


def _problems(request: Request, entry: PlanEntry) -> dict[str, Any]:
    """The problem rows of the page asked for (?outcome=&page=)."""
    wanted = request.query_params.get("outcome", "")
    outcome = wanted if wanted in NOT_READY else ""
    page_text = request.query_params.get("page", "1")
    page = int(page_text) if page_text.isdecimal() and 0 < int(page_text) < 10**9 else 1
    total, rows = problem_rows(entry.planned, outcome=outcome or None, limit=0)
    pages = max(1, -(-total // PER_PAGE))
    page = min(page, pages)
    _, rows = problem_rows(entry.planned, outcome=outcome or None,
                           offset=(page - 1) * PER_PAGE, limit=PER_PAGE)  # fmt: skip
    counts = entry.planned.summary["outcomes"]
    return {
        "plan_id": entry.plan_id,
        "outcome": outcome,
        "problem_outcomes": [(o, counts.get(o, 0)) for o in NOT_READY if counts.get(o, 0)],
        "not_ready": sum(counts.get(o, 0) for o in NOT_READY),
        "rows": rows,
        "total": total,
        "page": page,
        "pages": pages,
        "first": (page - 1) * PER_PAGE + 1,
        "last": (page - 1) * PER_PAGE + len(rows),
    }


async def _preview(
    request: Request,
    entry: PlanEntry,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    summary = entry.planned.summary
    cost = await run_in_threadpool(cost_of, request.app, int(summary["segments"]))
    if cost.error:
        cost = replace(cost, error=_tidy(request, cost.error))
    return render(
        request,
        "preview.html",
        status_code=status,
        **_ctx(
            request, entry=entry, summary=summary, sample=entry.planned.sample,
            warnings=[_warning(request, w) for w in entry.planned.warnings], cost=cost,
            error=error,
            outcomes=[(o, summary["outcomes"].get(o, 0)) for o in PLAN_OUTCOMES],
            form=form or {"name": entry.choices.name or "", "when": "now", "send_at": ""},
            **_problems(request, entry),
        ),
    )  # fmt: skip


def _warning(request: Request, text: str) -> str:
    """A plan's warning in the page's language (the one warning there is: no signature)."""
    from campaign.plan_sample import UNSIGNED_WARNING

    lang = lang_of(request)
    return t(lang, "new.notes.no_signature") if text == UNSIGNED_WARNING else _reason(lang, text)


async def preview_xlsx(request: Request) -> Response:
    user = await _sender(request)
    plan_id = request.path_params["plan_id"]
    try:
        path = await run_in_threadpool(_plans(request).preview_file, plan_id, user.name)
    except NotFoundError:
        return _gone(request)
    return FileResponse(path, media_type=XLSX, filename="preview.xlsx")


# --------------------------------------------------------------------------- confirm, send


def _when(settings: Any, form: dict[str, str]) -> Any:
    """The due time of the form (None: now); InputError as `send --at` refuses it."""
    if form["when"] != "at":
        return None
    if not form["send_at"].strip():
        raise InputError("no time given")
    return workflow_web.send_at_time(settings, form["send_at"])


async def confirm_page(request: Request) -> Response:
    user = await _sender(request)
    lang = lang_of(request)
    plan_id = request.path_params["plan_id"]
    try:
        entry = await run_in_threadpool(_entry, request, user, plan_id)
    except NotFoundError:
        return _gone(request)
    if _is_draft(entry):
        return _see_other(f"/new/{plan_id}/template")
    if entry.campaign_id is not None:
        return _see_other(f"/campaigns/{entry.campaign_id}")
    params = request.query_params
    form = {
        "name": params.get("name", "").strip()[:MAX_NAME],
        "when": "at" if params.get("when") == "at" else "now",
        "send_at": params.get("send_at", "").strip()[:40],
    }
    revision = params.get("revision", "")
    if revision != str(entry.revision):
        return await _preview(request, entry, error=t(lang, "new.confirm.changed"), form=form,
                              status=409)  # fmt: skip
    if not entry.planned.recipients:
        return await _preview(request, entry, error=t(lang, "new.confirm.nobody"), form=form,
                              status=422)  # fmt: skip
    try:
        workflow.usable_name(form["name"] or None)
        due = _when(request.app.state.settings, form)
    except InputError as exc:
        message = t(lang, "new.confirm.bad_time" if form["when"] == "at" else "new.confirm.bad")
        return await _preview(request, entry, error=f"{message} {_tidy(request, str(exc))}",
                              form=form, status=422)  # fmt: skip
    return render(
        request,
        "new_confirm.html",
        **_ctx(request, entry=entry, summary=entry.planned.summary, form=form, due=due,
               sample=entry.planned.sample),
    )  # fmt: skip


async def send_submit(request: Request) -> Response:
    user = await _sender(request)
    form_data = await _form(request)
    lang = lang_of(request)
    plan_id = request.path_params["plan_id"]
    state = request.app.state
    form = {
        "name": _field(form_data, "name").strip()[:MAX_NAME],
        "when": "at" if _field(form_data, "send_at").strip() else "now",
        "send_at": _field(form_data, "send_at").strip()[:40],
    }
    again = _field(form_data, "again") == "1"
    revision_text = _field(form_data, "revision")
    revision = int(revision_text) if revision_text.isdecimal() else -1

    def work() -> Any:
        due = _when(state.settings, form)
        made = _plans(request).create_campaign(
            state.settings, state.engine, plan_id, user.name, name=form["name"] or None,
            due_at=due, again=again, revision=revision,
        )  # fmt: skip
        if made.result is not None:
            body = made.result.to_json()
            audit(request, AuditAction.SEND, {
                "campaign_id": made.campaign_id, "name": body["name"], "plan_id": plan_id,
                "recipients": body["recipients"], "due_at": body["due_at"], "again": again,
            })  # fmt: skip
        return made.campaign_id

    try:
        campaign_id = await run_in_threadpool(work)
    except NotFoundError:
        return _gone(request)
    except RepeatError as exc:
        return await _repeat(request, plan_id, exc, form, revision)
    except PlanChangedError:
        return _notice(request, 409, t(lang, "new.changed.title"), t(lang, "new.confirm.changed"),
                       [(f"/new/{plan_id}/preview", t(lang, "new.changed.back"))])  # fmt: skip
    except InputError as exc:
        try:
            entry = await run_in_threadpool(_entry, request, user, plan_id)
        except NotFoundError:
            return _gone(request)
        return await _preview(request, entry, error=_tidy(request, str(exc)), form=form,
                              status=422)  # fmt: skip
    return _see_other(f"/campaigns/{campaign_id}")


async def _repeat(
    request: Request, plan_id: str, exc: RepeatError, form: dict[str, str], revision: int
) -> Response:
    engine = request.app.state.engine
    earlier = None
    if exc.campaign_id is not None:
        try:
            earlier = await run_in_threadpool(workflow_web.campaign_brief, engine, exc.campaign_id)
        except CampaignError:
            earlier = None
    return render(
        request,
        "new_repeat.html",
        status_code=409,
        **_ctx(request, plan_id=plan_id, earlier=earlier, name_taken=exc.name_taken,
               detail=_tidy(request, str(exc)), form=form, revision=revision),
    )  # fmt: skip


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
