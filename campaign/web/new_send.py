"""The last steps of the new-campaign flow: the preview (counts by outcome as `plan
--json` gives them, the problem rows filtered and paged, the cost against the balance,
the schedule form), the confirmation (the time checked as `send --at`), and the send:
one campaign per plan (PlanCache), a repeated list refused naming its campaign until it
is sent again on purpose. Routes: pages_new.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from campaign import workflow, workflow_web
from campaign.errors import CampaignError, InputError, NotFoundError, RepeatError
from campaign.outcomes import PLAN_OUTCOMES, AuditAction, Outcome
from campaign.store.users import User
from campaign.web.auth import audit
from campaign.web.i18n import lang_of, t
from campaign.web.new_balance import cost_of
from campaign.web.new_common import (
    entry_of,
    field_of,
    gone,
    is_draft,
    notice,
    page_ctx,
    plans_of,
    read_form,
    reason_text,
    see_other,
    sender,
    tidy,
    used,
)
from campaign.web.plans import PlanChangedError, PlanEntry, problem_rows
from campaign.web.render import render

PER_PAGE = 50  # problem rows a preview page shows
MAX_NAME = 200  # characters of a campaign name
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NOT_READY = tuple(o for o in PLAN_OUTCOMES if o != Outcome.READY)


# --------------------------------------------------------------------------- preview


async def preview_page(request: Request) -> Response:
    user = await sender(request)
    plan_id = request.path_params["plan_id"]
    try:
        entry = await run_in_threadpool(entry_of, request, user, plan_id)
    except NotFoundError:
        return gone(request)
    if is_draft(entry):
        return see_other(f"/new/{plan_id}/template")
    if entry.campaign_id is not None:
        return used(request, entry.campaign_id)
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "problems":
        problems = _problems(request, entry)
        return render(request, "partials/new_problems.html", **page_ctx(request, **problems))
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
    _, rows = problem_rows(
        entry.planned, outcome=outcome or None, offset=(page - 1) * PER_PAGE, limit=PER_PAGE
    )
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
        cost = replace(cost, error=tidy(request, cost.error))
    return render(
        request,
        "preview.html",
        status_code=status,
        **page_ctx(
            request,
            entry=entry,
            summary=summary,
            sample=entry.planned.sample,
            warnings=[_warning(request, w) for w in entry.planned.warnings],
            cost=cost,
            error=error,
            outcomes=[(o, summary["outcomes"].get(o, 0)) for o in PLAN_OUTCOMES],
            form=form or {"name": entry.choices.name or "", "when": "now", "send_at": ""},
            **_problems(request, entry),
        ),
    )


def _warning(request: Request, text: str) -> str:
    """A plan's warning in the page's language (the one warning there is: no signature)."""
    from campaign.plan_sample import UNSIGNED_WARNING

    lang = lang_of(request)
    return (
        t(lang, "new.notes.no_signature") if text == UNSIGNED_WARNING else reason_text(lang, text)
    )


async def preview_xlsx(request: Request) -> Response:
    user = await sender(request)
    plan_id = request.path_params["plan_id"]
    try:
        path = await run_in_threadpool(plans_of(request).preview_file, plan_id, user.name)
    except NotFoundError:
        return gone(request)
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
    user = await sender(request)
    lang = lang_of(request)
    plan_id = request.path_params["plan_id"]
    try:
        entry = await run_in_threadpool(entry_of, request, user, plan_id)
    except NotFoundError:
        return gone(request)
    if is_draft(entry):
        return see_other(f"/new/{plan_id}/template")
    if entry.campaign_id is not None:
        return see_other(f"/campaigns/{entry.campaign_id}")
    params = request.query_params
    form = {
        "name": params.get("name", "").strip()[:MAX_NAME],
        "when": "at" if params.get("when") == "at" else "now",
        "send_at": params.get("send_at", "").strip()[:40],
    }
    revision = params.get("revision", "")
    if revision != str(entry.revision):
        return await _preview(
            request, entry, error=t(lang, "new.confirm.changed"), form=form, status=409
        )
    if not entry.planned.recipients:
        return await _preview(
            request, entry, error=t(lang, "new.confirm.nobody"), form=form, status=422
        )
    try:
        workflow.usable_name(form["name"] or None)
        due = _when(request.app.state.settings, form)
    except InputError as exc:
        message = t(lang, "new.confirm.bad_time" if form["when"] == "at" else "new.confirm.bad")
        return await _preview(
            request, entry, error=f"{message} {tidy(request, str(exc))}", form=form, status=422
        )
    return render(
        request,
        "new_confirm.html",
        **page_ctx(
            request,
            entry=entry,
            summary=entry.planned.summary,
            form=form,
            due=due,
            sample=entry.planned.sample,
        ),
    )


async def send_submit(request: Request) -> Response:
    user = await sender(request)
    form_data = await read_form(request)
    lang = lang_of(request)
    plan_id = request.path_params["plan_id"]
    state = request.app.state
    form = {
        "name": field_of(form_data, "name").strip()[:MAX_NAME],
        "when": "at" if field_of(form_data, "send_at").strip() else "now",
        "send_at": field_of(form_data, "send_at").strip()[:40],
    }
    again = field_of(form_data, "again") == "1"
    revision_text = field_of(form_data, "revision")
    revision = int(revision_text) if revision_text.isdecimal() else -1

    def work() -> Any:
        try:
            due = _when(state.settings, form)
        except InputError:  # a time that has passed since: fine if it was sent already
            sent = _sent_as(request, user, plan_id)
            if sent is not None:
                return sent
            raise
        made = plans_of(request).create_campaign(
            state.settings,
            state.engine,
            plan_id,
            user.name,
            name=form["name"] or None,
            due_at=due,
            again=again,
            revision=revision,
        )
        if made.result is not None:
            body = made.result.to_json()
            audit(
                request,
                AuditAction.SEND,
                {
                    "campaign_id": made.campaign_id,
                    "name": body["name"],
                    "plan_id": plan_id,
                    "recipients": body["recipients"],
                    "due_at": body["due_at"],
                    "again": again,
                },
            )
        return made.campaign_id

    try:
        campaign_id = await run_in_threadpool(work)
    except NotFoundError:
        return gone(request)
    except RepeatError as exc:
        return await _repeat(request, plan_id, exc, form, revision)
    except PlanChangedError:
        return notice(
            request,
            409,
            t(lang, "new.changed.title"),
            t(lang, "new.confirm.changed"),
            [(f"/new/{plan_id}/preview", t(lang, "new.changed.back"))],
        )
    except InputError as exc:
        try:
            entry = await run_in_threadpool(entry_of, request, user, plan_id)
        except NotFoundError:
            return gone(request)
        return await _preview(request, entry, error=tidy(request, str(exc)), form=form, status=422)
    return see_other(f"/campaigns/{campaign_id}")


def _sent_as(request: Request, user: User, plan_id: str) -> int | None:
    """The campaign a plan was sent as, if it was."""
    try:
        return entry_of(request, user, plan_id).campaign_id
    except NotFoundError:
        return None


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
        **page_ctx(
            request,
            plan_id=plan_id,
            earlier=earlier,
            name_taken=exc.name_taken,
            detail=tidy(request, str(exc)),
            form=form,
            revision=revision,
        ),
    )
