"""Pages from the Jinja2 templates of campaign/web/templates (autoescape, StrictUndefined).

`render(request, name, **ctx)` adds to every template: `request`, `user` (or None),
`lang`, `t` (the texts of that language: `t('nav.campaigns')`), `csrf_token`, `mask`
(138****0001), `lang_url(lang)` (this page in another language), `outcome_word`,
`state_word`, `carrier_word`; filters `mask` and `china_time`. `render_form_page` adds
to these what a page of forms says back (`message`, `error`, `detail`, `typed`).

Contact data, file names, a user's SMS template: all only ever VALUES given to a template
(escaped), never a template themselves.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any, TypedDict
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from campaign.timeutil import in_china
from campaign.web.auth import csrf_token, current_user
from campaign.web.i18n import LANG_PARAM, carrier_word, lang_of, outcome_word, state_word, t


def mask(mobile: object) -> str:
    """138****0001: a mobile shown in a list (enough to tell numbers apart)."""
    text = "" if mobile is None else str(mobile)
    if len(text) >= 8:
        return f"{text[:3]}****{text[-4:]}"
    return "****" if text else ""


def china_time(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A stored (UTC) time as China time; "" for none."""
    if moment is None:
        return ""
    return in_china(moment).strftime(fmt)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("campaign.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["mask"] = mask
    env.filters["china_time"] = china_time
    return env


ENV = _environment()


def lang_url(request: Request, lang: str) -> str:
    """This page's address with `?lang=` set to `lang` (other parameters kept)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != LANG_PARAM]
    params.append((LANG_PARAM, lang))
    return f"{request.url.path}?{urlencode(params)}"


def context(request: Request, /, **ctx: Any) -> dict[str, Any]:
    lang = lang_of(request)
    return {
        "request": request,
        "user": current_user(request),
        "lang": lang,
        "t": partial(t, lang),
        "csrf_token": csrf_token(request),
        "mask": mask,
        "lang_url": partial(lang_url, request),
        "outcome_word": partial(outcome_word, lang),
        "state_word": partial(state_word, lang),
        "carrier_word": partial(carrier_word, lang),
        **ctx,
    }


def render_text(request: Request, template: str, /, **ctx: Any) -> str:
    return ENV.get_template(template).render(context(request, **ctx))


def shared_text(template: str, lang: str, /, **ctx: Any) -> str:
    """A part rendered once for every page that shows it (web/watches, Hub.shared): the
    language's words only, no request (a template that asks for `request`, `csrf_token`
    or `lang_url` fails: nothing of one session can reach another's page). `ctx` holds
    `user` when the part differs by role (only `user.may(...)` may be asked of it)."""
    base = {
        "lang": lang,
        "t": partial(t, lang),
        "mask": mask,
        "outcome_word": partial(outcome_word, lang),
        "state_word": partial(state_word, lang),
        "carrier_word": partial(carrier_word, lang),
    }
    return ENV.get_template(template).render({**base, **ctx})


def render(
    request: Request,
    template: str,
    /,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **ctx: Any,
) -> HTMLResponse:
    """The template (a file name under templates/) as an HTML response; `ctx` are its
    values (see the module docstring)."""
    return HTMLResponse(render_text(request, template, **ctx), status_code, headers=headers)


class FormAnswer(TypedDict, total=False):
    """What a page of forms says back about a change (render_form_page)."""

    status_code: int
    error: str | None  # why the change was refused
    detail: str | None  # the refusal's detail
    typed: dict[str, str] | None  # what was typed, put back in the forms


def render_form_page(
    request: Request,
    template: str,
    /,
    *,
    flash: str | None,
    status_code: int = 200,
    error: str | None = None,
    detail: str | None = None,
    typed: dict[str, str] | None = None,
    **ctx: Any,
) -> HTMLResponse:
    """A page whose forms change something (a FormAnswer's values, and the page's own in
    `ctx`). Its `message` is what the last change did, kept in the session under `flash`
    by the POST before its 303 and popped here (shown once); not on an answer with an
    error, nor with `flash` None (the message waits for the next page)."""
    message = request.session.pop(flash, None) if flash is not None and error is None else None
    return render(
        request,
        template,
        status_code=status_code,
        message=message,
        error=error,
        detail=detail,
        typed=typed or {},
        **ctx,
    )


__all__ = [
    "ENV",
    "FormAnswer",
    "china_time",
    "context",
    "lang_url",
    "mask",
    "render",
    "render_form_page",
    "render_text",
    "shared_text",
]
