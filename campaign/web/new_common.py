"""What the pages of the new-campaign flow share (pages_new.py, new_send.py): who may use
them (senders), the app's plans and drafts, forms read with bounds, library messages made
fit for a page (no folder of the console, no secret; Chinese reasons where known), and
the pages shown when a step cannot go on (no such plan, sent already).
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.outcomes import Role
from campaign.redact import redact
from campaign.store.users import User
from campaign.web.auth import require
from campaign.web.i18n import lang_of, t
from campaign.web.new_drafts import DRAFT_TEMPLATE, Drafts
from campaign.web.plans import PlanCache, PlanEntry
from campaign.web.render import mask, render
from campaign.zh import reason_zh

if TYPE_CHECKING:
    from campaign.contact_layout import SheetLayout

MAX_FORM_FIELD = 1024 * 1024  # a template is at most [limits] max_template_chars


# --------------------------------------------------------------------------- plumbing


async def sender(request: Request) -> User:
    return await run_in_threadpool(require, request, Role.SENDER)


def plans_of(request: Request) -> PlanCache:
    plans: PlanCache = request.app.state.plans
    return plans


def drafts_of(request: Request) -> Drafts:
    state = request.app.state
    drafts: Drafts | None = getattr(state, "new_drafts", None)
    if drafts is None:
        drafts = state.new_drafts = Drafts(state.data_dir / "drafts")
    return drafts


def tidy(request: Request, text: str) -> str:
    """A library message for a page: no folder of the console's own (its files are named
    as uploaded), no secret."""
    folder = re.escape(str(request.app.state.data_dir))
    text = re.sub(folder + r"/(?:plans|drafts|uploads)/(?:[\w-]+/)*", "", text)
    return redact(text)


def reason_text(lang: str, text: str) -> str:
    return reason_zh(text) if lang == "zh" else text


def masked_layout(layout: SheetLayout) -> SheetLayout:
    """A sheet's first rows fit for a page: the cells of its mobile column below the header
    row, and any cell that is a mobile number, masked as lists mask them (138****0001)."""
    from campaign.phones import normalize_mobiles

    cells = [cell for _, row in layout.first_rows for cell in row]
    looks = normalize_mobiles(pd.Series(cells, dtype=object))["valid"].to_numpy(dtype=bool)
    column = layout.mobile_index if layout.used else None
    rows, at = [], 0
    for number, row in layout.first_rows:
        data = layout.header_row is None or number > layout.header_row
        shown = [
            mask(cell) if looks[at + i] or (data and i == column and cell.strip()) else cell
            for i, cell in enumerate(row)
        ]
        rows.append((number, shown))
        at += len(row)
    return replace(layout, first_rows=rows)


def page_ctx(request: Request, **ctx: Any) -> dict[str, Any]:
    """What every page of the flow gives its template besides render()'s own."""
    return {"reason_word": partial(reason_text, lang_of(request)), **ctx}


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=20, max_part_size=MAX_FORM_FIELD)


def field_of(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def template_of(form: FormData) -> str:
    """The template of a form, as `--text` reads it (CRLF as LF, no surrounding space)."""
    return field_of(form, "template").replace("\r\n", "\n").strip()


def notice(
    request: Request, status: int, title: str, message: str, links: list[tuple[str, str]]
) -> Response:
    return render(
        request,
        "new_notice.html",
        status_code=status,
        **page_ctx(request, title=title, message=message, links=links),
    )


def gone(request: Request) -> Response:
    lang = lang_of(request)
    return notice(
        request,
        404,
        t(lang, "new.gone.title"),
        t(lang, "new.gone.text"),
        [("/new", t(lang, "new.gone.again"))],
    )


def used(request: Request, campaign_id: int) -> Response:
    lang = lang_of(request)
    return notice(
        request,
        409,
        t(lang, "new.used.title"),
        t(lang, "new.used.text", id=campaign_id),
        [(f"/campaigns/{campaign_id}", t(lang, "new.used.open")), ("/new", t(lang, "nav.new"))],
    )


def entry_of(request: Request, user: User, plan_id: str) -> PlanEntry:
    return plans_of(request).get(plan_id, user.name)


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def is_draft(entry: PlanEntry) -> bool:
    return entry.choices.template == DRAFT_TEMPLATE


def upload_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    limit = request.app.state.settings.web.max_upload_mb
    return render(
        request,
        "new_upload.html",
        status_code=status,
        **page_ctx(request, error=error, limit_mb=limit),
    )


__all__ = [
    "MAX_FORM_FIELD",
    "drafts_of",
    "entry_of",
    "field_of",
    "gone",
    "is_draft",
    "masked_layout",
    "notice",
    "page_ctx",
    "plans_of",
    "read_form",
    "reason_text",
    "see_other",
    "sender",
    "template_of",
    "tidy",
    "upload_form",
    "used",
]
