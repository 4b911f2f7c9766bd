"""Redaction of secrets: every text that leaves the process or enters the store goes here.

Dependency-free (standard library only), so every layer may use it. What goes:

* each known secret (the gateway password, the push password) in any form: raw,
  URL-encoded (`quote` and `quote_plus`: `%20` and `+` for spaces, escapes in any case),
  JSON- or repr-escaped, HTML-escaped, and **any piece of 4 or more characters** of any
  of these (a password cut at 40 characters by a message is still caught);
* the value of every password field, whatever it is and whether or not it is a known
  secret (so a password shorter than 4 characters goes too): `pswd=...`, `password=...`
  in a query or form (also URL-encoded once more: `pswd%3D...`), `"pswd": "..."`,
  `'password': '...'`, `pswd: ...`, `<pswd>...</pswd>`;
* credentials inside URLs: `scheme://user:pw@host` -> `scheme://***@host`.

Secrets are known where they are known: `Redactor(secrets)` for the code that holds the
settings (the gateway client, the sender), and a small process-wide registry
(`replace_secrets` by `load_settings`, `register_secret` by `GatewayClient`) behind `redact()`,
the last line of defence for error messages and log lines (`RedactingFilter` on a log
handler).

`is_echo(text)`: an answer that carries a password field echoes the request; such an
answer is never quoted (`ECHOED`), whatever the redaction would leave of it.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"
MIN_PIECE = 4  # a piece of a secret this long or longer never survives
ECHOED = "the answer echoed the request; not shown"
# The built-in simulator's demo password is printed in the README: not a secret. Masking
# its pieces would turn every "demo" in the demo's own messages into "***".
PUBLIC_PASSWORDS = frozenset({"demo-secret"})

_KEY = r"(?:pswd|passwd|password)"
# A field name starts a word, or follows an encoded `&` or `?` (`...%26pswd%3D...`).
_NOT_WORD = r"(?:(?<![A-Za-z0-9_])|(?<=%26)|(?<=%3F))"
# `scheme://user:pw@host`: everything between `//` and the last `@` before the host.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#'\"<>]*@")
# `pswd=value` in a query or form; the value runs to the next `&` or blank.
_FORM_FIELD = re.compile(rf"(?i){_NOT_WORD}({_KEY}=)[^&\s]*")
# The same, URL-encoded once more (a form quoted inside another query): up to `%26`.
_ENCODED_FIELD = re.compile(rf"(?i){_NOT_WORD}({_KEY}%3D)(?:(?!%26)[^&\s])*")
# `"pswd": "value"`, `'password': 'value'`, `pswd: value` (JSON, repr, YAML-ish logs).
_JSON_FIELD = re.compile(
    rf"""(?ix){_NOT_WORD}
    (["']?{_KEY}["']?\s*:\s*)
    (?:"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|[^\s,;&}}\]]*)
    """
)
_XML_FIELD = re.compile(rf"(?i)(<{_KEY}>)[^<]*")
_ECHO = re.compile(rf"(?i){_NOT_WORD}{_KEY}(?:=|%3D|[\"']?\s*:)")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")


def encoded_forms(secret: str) -> set[str]:
    """The forms a secret takes on the way out: raw, URL-encoded, escaped."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        html.escape(secret),
    }
    return {form for form in forms if form}


def _pieces(secrets: Iterable[str]) -> frozenset[str]:
    """Every MIN_PIECE-long window of every form of every secret."""
    windows: set[str] = set()
    for secret in secrets:
        for form in encoded_forms(secret):
            normal = _upper_escapes(form)
            for text in {form, normal}:
                windows.update(text[i : i + MIN_PIECE] for i in range(len(text) - MIN_PIECE + 1))
    return frozenset(windows)


def _upper_escapes(text: str) -> str:
    """`%2f` -> `%2F`: the same length, so positions match the original text."""
    return _PERCENT.sub(lambda m: m.group(0).upper(), text)


class Redactor:
    """Masks the given secrets (in every form and piece), password fields and URL credentials."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = frozenset(s for s in secrets if s and s not in PUBLIC_PASSWORDS)
        self._windows = _pieces(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret(s))"

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def including(self, secrets: Iterable[str]) -> Redactor:
        """A redactor of these secrets and this one's."""
        return Redactor(self._secrets | set(secrets))

    def redact(self, text: str) -> str:
        """`text` with every secret, password field and URL credential masked."""
        if not text:
            return text
        text = redact_fields(text)
        if not self._windows:
            return text
        for _ in range(len(text)):  # a mask next to a secret with `*` in it: go again
            masked = self._mask_pieces(text)
            if masked == text:
                break
            text = masked
        return text

    def _mask_pieces(self, text: str) -> str:
        starts = sorted(self._hits(text) | self._hits(_upper_escapes(text)))
        if not starts:
            return text
        out: list[str] = []
        done = 0  # text before this is written
        span_start, span_end = starts[0], starts[0] + MIN_PIECE
        for start in starts[1:]:
            if start <= span_end:  # overlaps or touches: one mask
                span_end = max(span_end, start + MIN_PIECE)
                continue
            out += [text[done:span_start], MASK]
            done, span_start, span_end = span_end, start, start + MIN_PIECE
        out += [text[done:span_start], MASK, text[span_end:]]
        return "".join(out)

    def _hits(self, text: str) -> set[int]:
        windows = self._windows
        return {i for i in range(len(text) - MIN_PIECE + 1) if text[i : i + MIN_PIECE] in windows}


def redact_fields(text: str) -> str:
    """Password fields (any value) and URL credentials masked; no secret needs to be known."""
    text = _URL_CREDENTIALS.sub(rf"\1{MASK}@", text)
    text = _FORM_FIELD.sub(rf"\1{MASK}", text)
    text = _ENCODED_FIELD.sub(rf"\1{MASK}", text)
    text = _JSON_FIELD.sub(_json_mask, text)
    return _XML_FIELD.sub(rf"\1{MASK}", text)


def _json_mask(match: re.Match[str]) -> str:
    key = match.group(1)
    value = match.group(0)[len(key) :]
    quote_char = value[:1] if value[:1] in {'"', "'"} else ""
    return f"{key}{quote_char}{MASK}{quote_char}"


def redact_url(url: str) -> str:
    """The URL without the credentials in it (`http://***@host/...`)."""
    return _URL_CREDENTIALS.sub(rf"\1{MASK}@", url)


def url_secrets(url: str) -> list[str]:
    """The password written in a URL's `user:password@` part (as written and decoded)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


def is_echo(text: str) -> bool:
    """True when the text carries a password field: an answer that echoes the request."""
    return bool(_ECHO.search(text))


# --------------------------------------------------------------------------- the registry

_lock = threading.Lock()
_registered: set[str] = set()
_shared = Redactor()


def register_secret(*secrets: str) -> None:
    """Make these secrets known to `redact()` for the rest of the process."""
    global _shared
    new = {s for s in secrets if s and s not in _registered}
    if not new:
        return
    with _lock:
        _registered.update(new)
        _shared = Redactor(_registered)


def replace_secrets(*secrets: str) -> None:
    """The registry holds these secrets only (`load_settings`: the settings of this run;
    secrets of settings loaded before, in tests, do not mask other runs' messages)."""
    global _shared
    with _lock:
        _registered.clear()
        _registered.update(s for s in secrets if s)
        _shared = Redactor(_registered)


def forget_secrets() -> None:
    """Empty the registry (tests)."""
    replace_secrets()


def redact(text: str) -> str:
    """`text` with every registered secret, password field and URL credential masked."""
    return _shared.redact(text)


def shared_redactor() -> Redactor:
    """The redactor of the registered secrets (as they are now)."""
    return _shared


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message and traceback, redacted, before any formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
