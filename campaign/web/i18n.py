"""The console's two languages: Chinese (default) and English.

`lang_of(request)`: `?lang=zh|en` (remembered in the `campaign_lang` cookie by
`LangCookie`) > that cookie > Accept-Language (zh* -> zh, en* -> en, by q-value) > zh.
`t(lang, key, **fields)`: the text of `key` in the catalog of `lang` (i18n_zh / i18n_en,
one key set), with `{field}`s filled; `{n:entry|entries}` is the word for a count, the
first when n is 1, else the second (English: "1 entry", "2 entries"). Texts are plain
strings: Jinja escapes them.
Outcome, state and carrier words come from `campaign.zh` in Chinese; in English they
are the words of SPEC.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaign.web import i18n_en, i18n_zh
from campaign.web.security import API_PREFIX
from campaign.zh import carrier_zh, outcome_zh, state_zh

LANGS: tuple[str, ...] = ("zh", "en")
DEFAULT_LANG = "zh"
LANG_COOKIE = "campaign_lang"
LANG_PARAM = "lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
CATALOGS: Mapping[str, Mapping[str, str]] = {"zh": i18n_zh.CATALOG, "en": i18n_en.CATALOG}


def _chosen(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if value in LANGS else None


def lang_of(request: HTTPConnection) -> str:
    """The language of the response to `request` (see the module docstring)."""
    return (
        _chosen(request.query_params.get(LANG_PARAM))
        or _chosen(request.cookies.get(LANG_COOKIE))
        or accepted_lang(request.headers.get("accept-language", ""))
        or DEFAULT_LANG
    )


def accepted_lang(header: str) -> str | None:
    """The first of our languages in an Accept-Language header, by q-value then order."""
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else None


class _CountFormatter(string.Formatter):
    """str.format, and `{n:one|other}`: `one` when n is 1, else `other`."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        if "|" in format_spec:
            one, other = format_spec.split("|", 1)
            return one if value == 1 else other
        return super().format_field(value, format_spec)


_FORMATTER = _CountFormatter()


def t(lang: str, key: str, **fields: object) -> str:
    """The text of `key` in `lang` (KeyError for a key no catalog has: a bug). Given
    fields, `{name}`s are filled (str.format: literal braces doubled; `{n:one|other}` a
    word for a count); without, the text is shown as written (e.g. an example of the
    template syntax, {列名})."""
    text = CATALOGS.get(lang, CATALOGS[DEFAULT_LANG])[key]
    return _FORMATTER.format(text, **fields) if fields else text


def outcome_word(lang: str, outcome: str) -> str:
    return outcome_zh(outcome) if lang == "zh" else str(outcome)


def state_word(lang: str, state: str) -> str:
    return state_zh(state) if lang == "zh" else str(state)


def carrier_word(lang: str, carrier: str) -> str:
    return carrier_zh(carrier) if lang == "zh" else str(carrier)


class LangCookie:
    """Pure ASGI middleware: a page navigation with `?lang=zh|en` sets the `campaign_lang`
    cookie, so the choice holds on the next pages (SameSite=strict; HttpOnly: no script
    reads it). A page is an HTML answer or a redirect, not to htmx and not under the API:
    the `?lang=` of a download (results.xlsx?lang=en) picks only the file's language."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = None
        if scope["type"] == "http":
            connection = HTTPConnection(scope)
            if not _api_or_htmx(connection):
                chosen = _chosen(connection.query_params.get(LANG_PARAM))
        if chosen is None:
            await self.app(scope, receive, send)
            return

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and _is_page(message):
                value = (
                    f"{LANG_COOKIE}={chosen}; Path=/; Max-Age={LANG_COOKIE_MAX_AGE}; "
                    "HttpOnly; SameSite=strict"
                ).encode()
                message["headers"] = [*message.get("headers", []), (b"set-cookie", value)]
            await send(message)

        await self.app(scope, receive, with_cookie)


def _api_or_htmx(connection: HTTPConnection) -> bool:
    path: str = connection.scope.get("path", "")
    return path.startswith(API_PREFIX) or connection.headers.get("hx-request") == "true"


def _is_page(start: Message) -> bool:
    """Whether a response (its http.response.start) is a page: HTML, or a redirect."""
    if 300 <= int(start.get("status", 200)) < 400:
        return True
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return bytes(value).lower().startswith(b"text/html")
    return False


__all__ = [
    "DEFAULT_LANG",
    "LANGS",
    "LANG_COOKIE",
    "LangCookie",
    "accepted_lang",
    "carrier_word",
    "lang_of",
    "outcome_word",
    "state_word",
    "t",
]
