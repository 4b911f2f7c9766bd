"""The campaigns list (/) and a campaign's page (/campaigns/{id}), with their actions.

    GET  /                                    every campaign (viewers and up)
    GET  /campaigns/rows                      the list's rows (htmx, on each `progress`
                                              event of /campaigns/events)
    GET  /campaigns/{id}                      the campaign page
    GET  /campaigns/{id}/events               its SSE stream (web/events.py), with its
                                              progress part rendered (`progress-html`)
    GET  /campaigns/{id}/parts/state          its live parts (htmx, on the events of the
         /campaigns/{id}/parts/charts         stream: state; charts once they rest);
         /campaigns/{id}/parts/progress       progress (what `progress-html` carries)
    POST /campaigns/{id}/pause                senders; no confirmation (resume undoes it)
    GET  /campaigns/{id}/resume|cancel        senders: what it will do, and a form to confirm
    POST /campaigns/{id}/resume|cancel        with confirm=yes: `resume --queue` / `cancel`
    GET  /campaigns/{id}/resend               senders: the `unknown` requests explained
    POST /campaigns/{id}/resend               with confirm=yes AND the box `understood`
                                              ticked: `resume --resend-unknown` (web/resends)
    GET  /campaigns/{id}/results.xlsx|csv?lang=zh|en   the result file of `export`
                                              (written to a folder of its own, streamed,
                                              removed after; lang: the page's by default)

The event streams themselves are web/events.py's (its routes are served from here too).
The parts every open page of a campaign shows alike are rendered once for all of them:
the progress part once per reading, language and role, into the stream (web/watches.py);
the charts (~60 ms) at most every CHARTS_SECONDS per language, sooner when the figures
moved (web/events.Hub.shared). Every page reads without JavaScript: live parts are
refreshed by htmx when it runs, the actions are plain forms (the CSRF token first). A
change that worked answers 303 back to the campaign page, which says what was done (a
message kept in the session); one the campaign's state forbids (what the command refuses
with exit 3: pause a finished campaign) answers 409 with the page and why. Every change
is in the audit log.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from campaign import workflow, workflow_queue, workflow_web
from campaign.errors import InputError, NotFoundError
from campaign.outcomes import AuditAction, BatchState, CampaignState, Outcome, Role
from campaign.store.users import User
from campaign.web import charts, events
from campaign.web.auth import audit, require
from campaign.web.i18n import LANGS, carrier_word, lang_of, outcome_word, state_word, t
from campaign.web.plans import harmless_name
from campaign.web.render import render, shared_text
from campaign.web.resends import resends_of
from campaign.web.scratch import scratch_of
from campaign.workflow_web import Snapshot
from campaign.zh import reason_zh

WORK_DIR = "work"  # data_dir/work/<random>/: one download's file, removed once sent
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
FLASH = "flash"  # session key of the message shown once on the next campaign page
MAX_FORM_FIELDS = 10
CHARTS_SECONDS = 5.0  # the charts part is shared this long at most (same figures)

#: What a sender may do to a campaign in each state (the store refuses the rest anyway).
PAUSABLE = frozenset(
    {
        CampaignState.PLANNED,
        CampaignState.SCHEDULED,
        CampaignState.QUEUED,
        CampaignState.SENDING,
        CampaignState.STOPPED,
    }
)
RESUMABLE = frozenset({CampaignState.PLANNED, CampaignState.PAUSED, CampaignState.STOPPED})
CANCELLABLE = frozenset(set(CampaignState) - {CampaignState.FINISHED, CampaignState.CANCELLED})
#: States in which the unknown requests may be resent here (nobody else is sending it).
RESENDABLE = frozenset({CampaignState.FINISHED, CampaignState.STOPPED, CampaignState.PAUSED})
CONFIRMED = "yes"


# --------------------------------------------------------------------------- what a page shows


@dataclass(frozen=True)
class View:
    """One campaign as its page shows it: the record (name, times), the live snapshot
    (state, progress, requests by state), the outcome counts and the sending processes."""

    record: Any  # store.campaigns.CampaignRecord
    snapshot: Snapshot
    outcomes: Mapping[str, int]
    workers: list[Any]  # store.workers.WorkerInfo
    resending: bool

    @property
    def id(self) -> int:
        return int(self.record.id)

    @property
    def state(self) -> str:
        return self.snapshot.state

    @property
    def unknown_requests(self) -> int:
        return dict(self.snapshot.batches).get(str(BatchState.UNKNOWN), 0)

    @property
    def unknown_recipients(self) -> int:
        return int(self.outcomes.get(str(Outcome.UNKNOWN), 0))

    @property
    def pending(self) -> int:
        """Recipients whose request has not been answered (pending or in flight)."""
        progress = self.snapshot.progress
        return progress.total - progress.done

    @property
    def percent(self) -> int:
        progress = self.snapshot.progress
        return round(100 * progress.sent / progress.total) if progress.total else 0

    def may(self, action: str) -> bool:
        state = self.state
        if action == "pause":
            return state in PAUSABLE
        if action == "resume":
            return state in RESUMABLE and not self.resending
        if action == "cancel":
            return state in CANCELLABLE
        if action == "resend":
            return self.resend_refusal() is None
        raise ValueError(action)

    def resend_refusal(self) -> str | None:
        """The catalog key of why the unknown requests cannot be resent now, or None."""
        if self.state == CampaignState.CANCELLED:
            return "refused.resend.cancelled"
        if self.resending:
            return "refused.resend.running"
        if not self.unknown_requests:
            return "refused.resend.none"
        if self.state not in RESENDABLE:
            return "refused.resend.busy"
        return None


def _state(request: Request) -> Any:
    return request.app.state


def _campaign_id(request: Request) -> int:
    return int(request.path_params["campaign_id"])


async def _user(request: Request, role: Role) -> User:
    return await run_in_threadpool(require, request, role)


def _read(request: Request, campaign_id: int, fresh: bool) -> View:
    """The campaign's view (in a worker thread: it reads the store); 404 for none.

    `fresh`: read the store now (a page, after an action); else the live parts share the
    readings of the event streams (web/events.Hub: at most half a poll old)."""
    state = _state(request)
    engine = state.engine
    try:
        if fresh:
            record = workflow_web.campaign_record(engine, campaign_id)
            snapshot = workflow_web.campaign_snapshot(engine, campaign_id)
            outcomes = workflow_web.campaign_outcomes(engine, campaign_id)
            workers = workflow_web.campaign_workers(engine, campaign_id)
        else:
            hub = events.hub_of(request)
            reading = hub.read(campaign_id)
            snapshot, outcomes = reading.snapshot, reading.outcomes or {}
            record, workers = hub.details(reading)
    except NotFoundError:
        raise HTTPException(404, f"no campaign {campaign_id}") from None
    resending = resends_of(state).running(campaign_id)
    return View(record, snapshot, outcomes, workers, resending)


async def _view(request: Request, *, fresh: bool = True) -> View:
    return await run_in_threadpool(_read, request, _campaign_id(request), fresh)


def _reason(lang: str) -> Callable[[str], str]:
    """A stop reason (English, from the store) in the page's language."""
    return reason_zh if lang == "zh" else str


def _common(request: Request, view: View) -> dict[str, Any]:
    lang = lang_of(request)
    return {
        "c": view.record,
        "view": view,
        "snap": view.snapshot,
        "reason": _reason(lang),
        "no_worker": getattr(_state(request), "worker", None) is None,
    }


# --------------------------------------------------------------------------- charts


def chart_context(lang: str, outcomes: Mapping[str, int], figures: Mapping[str, Any]) -> dict:
    """The three charts (SVG markup) and the rows of their number tables."""

    def carrier(name: str) -> str:
        return carrier_word(lang, name) if name else t(lang, "chart.no_carrier")

    def word(outcome: str) -> str:
        return outcome_word(lang, outcome)

    empty = t(lang, "chart.empty")
    carriers = [
        {**row, "label": carrier(row["carrier"]), "rate": charts.rate_text(row["delivery_rate"])}
        for row in figures["carriers"]
    ]
    return {
        "outcome_svg": charts.outcome_chart(
            outcomes, title=t(lang, "chart.outcomes"), word=word, empty=empty
        ),
        "carrier_svg": charts.carrier_chart(
            figures["carriers"], title=t(lang, "chart.carriers"), word=carrier, empty=empty
        ),
        "hour_svg": charts.hour_chart(figures["hours"], title=t(lang, "chart.hours"), empty=empty),
        "carriers": carriers,
        "hours": figures["hours"],
        "carrier_legend": [
            (part, t(lang, "chart.other") if part == "other" else word(part))
            for part in charts.CARRIER_PARTS
        ],
    }


async def _charts(request: Request, view: View) -> dict:
    engine = _state(request).engine
    figures = await run_in_threadpool(workflow_web.campaign_breakdowns, engine, view.id)
    return chart_context(lang_of(request), view.outcomes, figures)


# --------------------------------------------------------------------------- pages


async def campaigns_page(request: Request) -> Response:
    """GET /: every campaign, newest first, with live progress."""
    await _user(request, Role.VIEWER)
    rows = await run_in_threadpool(_rows, request)
    return render(request, "campaigns.html", rows=rows)


async def campaign_rows(request: Request) -> Response:
    """GET /campaigns/rows: the list's rows alone (htmx)."""
    await _user(request, Role.VIEWER)
    rows = await run_in_threadpool(_rows, request)
    return render(request, "partials/campaign_rows.html", rows=rows)


def _rows(request: Request) -> list[tuple[Any, Snapshot | None]]:
    """(record, snapshot) of every campaign, newest first (snapshots shared with the
    event streams: web/events.Hub)."""
    records = workflow_web.campaign_records(_state(request).engine)
    hub = events.hub_of(request)
    snapshots = {s.campaign_id: s for s in hub.read_all()}
    if any(record.id not in snapshots for record in records):  # newer than the reading
        snapshots = {s.campaign_id: s for s in hub.read_all(force=True)}
    return [(record, snapshots.get(record.id)) for record in records]


async def campaign_page(request: Request) -> Response:
    """GET /campaigns/{id}."""
    await _user(request, Role.VIEWER)
    return await _campaign_page(request)


async def _campaign_page(
    request: Request, *, status_code: int = 200, error: str | None = None, detail: str = ""
) -> Response:
    view = await _view(request)
    message = request.session.pop(FLASH, None) if error is None else None
    return render(
        request,
        "campaign.html",
        status_code=status_code,
        message=message if isinstance(message, str) else None,
        error=error,
        detail=detail,
        **_common(request, view),
        **await _charts(request, view),
    )


PARTS = ("state", "progress", "charts")


def _part(name: str) -> Callable[[Request], Any]:
    async def part(request: Request) -> Response:
        await _user(request, Role.VIEWER)
        if name == "charts":
            html = await run_in_threadpool(_charts_text, request, _campaign_id(request))
            return HTMLResponse(html)
        view = await _view(request, fresh=False)
        return render(request, f"partials/campaign_{name}.html", **_common(request, view))

    part.__name__ = part.__qualname__ = f"campaign_{name}_part"
    part.__doc__ = f"GET /campaigns/{{id}}/parts/{name}: that part of the page alone (htmx)."
    return part


def _charts_text(request: Request, campaign_id: int) -> str:
    """The charts part, shared by the pages of one language while the hub's reading of the
    campaign stays the same, CHARTS_SECONDS at most (in a worker thread)."""
    hub, lang = events.hub_of(request), lang_of(request)
    try:
        reading = hub.read(campaign_id)
    except NotFoundError:
        raise HTTPException(404, f"no campaign {campaign_id}") from None

    def make() -> str:
        # the charts read their other figures from the store now: their outcomes too, or
        # the outcome bars lag the carrier bars (the hub counts outcomes every 1 s at most)
        view = _read(request, campaign_id, True)
        figures = workflow_web.campaign_breakdowns(_state(request).engine, campaign_id)
        context = chart_context(lang, view.outcomes, figures)
        return shared_text("partials/campaign_charts.html", lang, **context)

    key = ("charts", campaign_id, lang)
    return hub.shared(key, reading, make, max_age=CHARTS_SECONDS)


@dataclass(frozen=True)
class Roles:
    """All a shared part may ask of the user (`user.may(role)`): their name, and all else
    of theirs, stays out of a rendering other users' pages receive."""

    allowed: frozenset[Role]

    @classmethod
    def of(cls, user: User) -> Roles:
        return cls(frozenset(role for role in Role if user.may(role)))

    def may(self, needed: Role | str) -> bool:
        return Role(needed) in self.allowed


def progress_fragment(request: Request, user: User) -> events.Fragment:
    """The campaign's progress part for a reading (the stream sends it as `progress-html`;
    its watch renders it once per reading for every page of the same language and role:
    only `Roles` of the user reach it)."""
    state, hub, lang = _state(request), events.hub_of(request), lang_of(request)
    campaign_id, roles = _campaign_id(request), Roles.of(user)

    def fragment(reading: events.Reading) -> str:
        resending = resends_of(state).running(campaign_id)
        record, workers = hub.details(reading)
        view = View(record, reading.snapshot, reading.outcomes or {}, workers, resending)
        return shared_text(
            "partials/campaign_progress.html",
            lang,
            user=roles,
            c=record,
            view=view,
            snap=reading.snapshot,
        )

    return fragment


async def campaign_events(request: Request) -> Response:
    """GET /campaigns/{id}/events: the campaign's events (web/events.py) and, after each
    `progress`, the page's progress part (`progress-html`)."""
    user = await _user(request, Role.VIEWER)
    key = (lang_of(request), Roles.of(user))  # the pages that share one rendering
    return await events.campaign_response(request, progress_fragment(request, user), key)


# --------------------------------------------------------------------------- actions


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=4096)
    return {key: str(value) for key, value in form.items() if isinstance(value, str)}


def _flash(request: Request, text: str) -> RedirectResponse:
    request.session[FLASH] = text
    return RedirectResponse(f"/campaigns/{_campaign_id(request)}", status_code=303)


async def _refused(request: Request, action: str, exc: InputError) -> Response:
    """409: the campaign page, saying why `action` was not done (the state read again)."""
    lang = lang_of(request)
    view = await _view(request)
    error = t(lang, f"refused.{action}", state=state_word(lang, view.state))
    return await _campaign_page(request, status_code=409, error=error, detail=str(exc))


async def pause_submit(request: Request) -> Response:
    """POST /campaigns/{id}/pause: as `campaign pause` (no confirmation: resume undoes it)."""
    user = await _user(request, Role.SENDER)
    await _form(request)  # the CSRF token was checked by security.CSRFGuard
    return await _change(request, user, AuditAction.PAUSE)


async def _change(request: Request, user: User, action: AuditAction) -> Response:
    state = _state(request)
    ref = str(_campaign_id(request))
    who = f"{user.name} (console)"

    def work() -> dict[str, Any]:
        settings, engine = state.settings, state.engine
        if action is AuditAction.PAUSE:
            result = workflow_queue.pause_campaign(settings, ref, who=who, engine=engine)
        elif action is AuditAction.CANCEL:
            result = workflow_queue.cancel_campaign(settings, ref, who=who, engine=engine)
        else:
            result = workflow_queue.resume_queued(settings, ref, engine=engine)
        body: dict[str, Any] = result.to_json()
        detail = {"campaign_id": body["campaign_id"], "from": body["previous_state"],
                  "to": body["state"]}  # fmt: skip
        if action is AuditAction.CANCEL:
            detail["cancelled_recipients"] = body["cancelled_recipients"]
        audit(request, action, detail)
        return body

    try:
        body = await run_in_threadpool(work)
    except NotFoundError:
        raise HTTPException(404, f"no campaign {ref}") from None
    except InputError as exc:
        return await _refused(request, str(action), exc)
    lang = lang_of(request)
    recipients = body.get("cancelled_recipients", 0)
    return _flash(request, t(lang, f"done.{action}", recipients=recipients))


def _confirm_page(action: str) -> Callable[[Request], Any]:
    async def page(request: Request) -> Response:
        await _user(request, Role.SENDER)
        return await _confirmation(request, action)

    page.__name__ = page.__qualname__ = f"{action}_confirm"
    page.__doc__ = f"GET /campaigns/{{id}}/{action}: what it would do, and a form to confirm."
    return page


async def _confirmation(
    request: Request, action: str, *, status_code: int = 200, error: str | None = None
) -> Response:
    view = await _view(request)
    lang = lang_of(request)
    refusal = None
    if action == "resend":
        key = view.resend_refusal()
        refusal = t(lang, key) if key else None
    elif not view.may(action):
        refusal = t(lang, f"refused.{action}", state=state_word(lang, view.state))
    return render(
        request,
        "campaign_confirm.html",
        status_code=status_code,
        action=action,
        refusal=refusal,
        error=error,
        **_common(request, view),
    )


def _submit(action: AuditAction) -> Callable[[Request], Any]:
    async def submit(request: Request) -> Response:
        user = await _user(request, Role.SENDER)
        form = await _form(request)
        if form.get("confirm") != CONFIRMED:  # not confirmed: ask (nothing done)
            return await _confirmation(request, str(action))
        return await _change(request, user, action)

    submit.__name__ = submit.__qualname__ = f"{action}_submit"
    submit.__doc__ = f"POST /campaigns/{{id}}/{action} with confirm=yes: as `campaign {action}`."
    return submit


async def resend_submit(request: Request) -> Response:
    """POST /campaigns/{id}/resend with confirm=yes and understood=yes: the unknown requests
    sent again, in a thread of the console (web/resends.py); audited."""
    user = await _user(request, Role.SENDER)
    form = await _form(request)
    lang = lang_of(request)
    if form.get("confirm") != CONFIRMED:
        return await _confirmation(request, "resend")
    if form.get("understood") != CONFIRMED:
        error = t(lang, "confirm.resend.unticked")
        return await _confirmation(request, "resend", status_code=422, error=error)
    view = await _view(request)
    key = view.resend_refusal()
    if key is not None:
        return await _confirmation(request, "resend", status_code=409, error=t(lang, key))
    state = _state(request)
    started = resends_of(state).start(state.settings, state.engine, view.id)
    if not started:
        error = t(lang, "refused.resend.running")
        return await _confirmation(request, "resend", status_code=409, error=error)
    detail = {
        "campaign_id": view.id,
        "state": view.state,
        "unknown_requests": view.unknown_requests,
        "unknown_recipients": view.unknown_recipients,
        "by": user.name,
    }
    await run_in_threadpool(audit, request, AuditAction.RESEND, detail)
    return _flash(request, t(lang, "done.resend", requests=view.unknown_requests))


# --------------------------------------------------------------------------- downloads


def _results(suffix: str, media_type: str) -> Callable[[Request], Any]:
    async def download(request: Request) -> Response:
        await _user(request, Role.VIEWER)
        state = _state(request)
        lang = request.query_params.get("lang") or lang_of(request)
        if lang not in LANGS:
            raise HTTPException(400, f"lang must be one of {', '.join(LANGS)}")
        ref = str(_campaign_id(request))
        folder = scratch_of(state).folder(WORK_DIR)
        out = folder / f"results{suffix}"
        try:
            result = await run_in_threadpool(
                workflow.export, state.settings, ref, out, lang=lang, engine=state.engine
            )
        except NotFoundError:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(404, f"no campaign {ref}") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            out,
            media_type=media_type,
            filename=download_name(result.name, lang, suffix),
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    download.__name__ = download.__qualname__ = f"results_{suffix[1:]}"
    download.__doc__ = f"GET /campaigns/{{id}}/results{suffix}?lang=zh|en: the result file."
    return download


def download_name(name: str, lang: str, suffix: str) -> str:
    """The file name a download is saved under: the campaign's name made harmless."""
    cleaned = "".join(ch for ch in harmless_name(name, 0) if ch not in '"<>:|?*/\\')
    return f"{cleaned.strip() or 'results'}-{lang}{suffix}"


routes: list[BaseRoute] = [
    Route("/", campaigns_page, methods=["GET"]),
    Route("/campaigns/rows", campaign_rows, methods=["GET"]),
    *events.routes,  # /campaigns/events: the list's live updates
    Route("/campaigns/{campaign_id:int}/events", campaign_events, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}", campaign_page, methods=["GET"]),
    *(
        Route(f"/campaigns/{{campaign_id:int}}/parts/{name}", _part(name), methods=["GET"])
        for name in PARTS
    ),
    Route("/campaigns/{campaign_id:int}/pause", pause_submit, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/resume", _confirm_page("resume"), methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/resume", _submit(AuditAction.RESUME), methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/cancel", _confirm_page("cancel"), methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/cancel", _submit(AuditAction.CANCEL), methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/resend", _confirm_page("resend"), methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/resend", resend_submit, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/results.xlsx", _results(".xlsx", XLSX), methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/results.csv", _results(".csv", CSV), methods=["GET"]),
]

__all__ = [
    "Roles",
    "View",
    "campaign_events",
    "chart_context",
    "download_name",
    "progress_fragment",
    "routes",
]
