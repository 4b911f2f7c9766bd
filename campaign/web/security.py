"""What every response and every state-changing request of the console goes through.

`SecurityHeaders` (outermost ASGI middleware) adds to EVERY response, errors included:
the Content-Security-Policy `CSP` (no inline script or style anywhere: no 'unsafe-inline',
no 'unsafe-eval'), nosniff, Referrer-Policy, X-Frame-Options, `Cache-Control: no-store`
on everything but /static/ (pages hold customer data), HSTS under HTTPS; and it marks
every cookie `Secure` when the request came over HTTPS (directly, or through a trusted
reverse proxy saying X-Forwarded-Proto: https; `[web] trust_proxy`).

`CSRFGuard` refuses (403) a POST/PUT/PATCH/DELETE that a cookie could authenticate:
- from another site: an `Origin` other than the request's own scheme://host, or a
  `Sec-Fetch-Site` other than same-origin;
- of a signed-in session (or the sign-in form itself) without the session's CSRF token:
  the `X-CSRF-Token` header (htmx sends it: `hx-headers` on <body>), else the form field
  `csrf_token` (url-encoded forms: read here and handed on; multipart forms: it must be
  the FIRST part, so it is checked before any file is read).
Bearer-token requests to /api/ carry no cookie and are exempt.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")
STATIC_PREFIX = "/static/"
API_PREFIX = "/api/"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: A url-encoded form is read whole to find its token: at most this much.
MAX_FORM_BYTES = 1024 * 1024
#: A multipart body is read until its first part ends: that part must end within this much.
MAX_FIRST_PART_BYTES = 64 * 1024
LOGIN_PATH = "/login"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def is_https(scope: Scope, trust_proxy: bool) -> bool:
    """The client's request came over HTTPS (the proxy's word counts if trusted)."""
    if trust_proxy:
        forwarded = _header(scope, b"x-forwarded-proto")
        if forwarded:
            return forwarded.split(",")[0].strip().lower() == "https"
    return scope.get("scheme") in ("https", "wss")


def own_origin(scope: Scope, trust_proxy: bool) -> str:
    """scheme://host[:port] of the request as the browser addressed it."""
    host = None
    if trust_proxy:
        host = (_header(scope, b"x-forwarded-host") or "").split(",")[0].strip() or None
    if host is None:
        host = _header(scope, b"host")
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] in (None, 80, 443) else f"{server[0]}:{server[1]}"
    scheme = "https" if is_https(scope, trust_proxy) else "http"
    default = ":443" if scheme == "https" else ":80"
    return f"{scheme}://{host.lower().removesuffix(default)}"


def client_ip(scope: Scope, trust_proxy: bool) -> str | None:
    """The client's address: the one the trusted proxy saw (the last X-Forwarded-For entry,
    the one it added itself), else the peer's."""
    if trust_proxy:
        forwarded = _header(scope, b"x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[-1].strip() or None
    client = scope.get("client")
    return str(client[0]) if client else None


def is_bearer_api(scope: Scope) -> bool:
    """An API request authenticated by a token (no cookie involved)."""
    auth = _header(scope, b"authorization") or ""
    return str(scope.get("path", "")).startswith(API_PREFIX) and auth[:7].lower() == "bearer "


class SecurityHeaders:
    """Pure ASGI middleware: the headers of the module docstring on every response."""

    def __init__(self, app: ASGIApp, *, trust_proxy: bool = False) -> None:
        self.app = app
        self.trust_proxy = trust_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = is_https(scope, self.trust_proxy)
        static = str(scope.get("path", "")).startswith(STATIC_PREFIX)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _secured(list(message.get("headers", [])), https, static)
            await send(message)

        await self.app(scope, receive, with_headers)


def _secured(
    headers: list[tuple[bytes, bytes]], https: bool, static: bool
) -> list[tuple[bytes, bytes]]:
    ours = {name for name, _ in HEADERS}
    if not static:
        ours.add(b"cache-control")
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower in ours:
            continue
        if lower == b"set-cookie" and https and b"secure" not in value.lower():
            value += b"; Secure"
        kept.append((name, value))
    kept.extend(HEADERS)
    if not static:
        kept.append((b"cache-control", b"no-store"))
    if https:
        kept.append(HSTS)
    return kept


class CSRFGuard:
    """Pure ASGI middleware, inside the session middleware (it reads scope["session"])."""

    def __init__(self, app: ASGIApp, *, trust_proxy: bool = False) -> None:
        self.app = app
        self.trust_proxy = trust_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method", "GET") not in UNSAFE_METHODS
            or is_bearer_api(scope)
        ):
            await self.app(scope, receive, send)
            return
        problem = self._cross_site(scope)
        if problem is None and self._needs_token(scope):
            problem, receive = await _check_token(scope, receive)
        if problem is not None:
            await _forbidden(scope, send, problem)
            return
        await self.app(scope, receive, send)

    def _cross_site(self, scope: Scope) -> str | None:
        origin = _header(scope, b"origin")
        if origin is not None and origin.lower() != own_origin(scope, self.trust_proxy):
            return "cross-site request refused (Origin)"
        fetch_site = _header(scope, b"sec-fetch-site")
        if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
            return "cross-site request refused (Sec-Fetch-Site)"
        return None

    @staticmethod
    def _needs_token(scope: Scope) -> bool:
        session = scope.get("session") or {}
        return bool(session.get("user")) or scope.get("path") == LOGIN_PATH


async def _check_token(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """(None or why refused, the receive to hand on: what was read is given again)."""
    expected = str((scope.get("session") or {}).get("csrf") or "")
    given = _header(scope, b"x-csrf-token")
    if given is not None:
        return (None if _same(expected, given) else "wrong CSRF token"), receive
    content_type, options = parse_options_header(_header(scope, b"content-type") or "")
    if content_type == b"application/x-www-form-urlencoded":
        body, replay = await _read_form(receive)
        if body is None:
            return "form too large", replay
        values = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [])
        token = values[0] if values else ""
    elif content_type == b"multipart/form-data" and options.get(b"boundary"):
        token, replay = await _first_part(receive, options[b"boundary"])
    else:
        return "missing CSRF token (X-CSRF-Token header)", receive
    if not token:
        return "missing CSRF token", replay
    return (None if _same(expected, token) else "wrong CSRF token"), replay


def _same(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


async def _read_form(receive: Receive) -> tuple[bytes | None, Receive]:
    chunks: list[Message] = []
    size = 0
    while True:
        message = await receive()
        chunks.append(message)
        size += len(message.get("body", b""))
        if size > MAX_FORM_BYTES:
            return None, _replay(chunks, receive)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in chunks)
    return body, _replay(chunks, receive)


class _FirstPart:
    """Parser callbacks keeping the name and value of a multipart body's first part (the
    parser goes on past it within a chunk: what follows is ignored)."""

    def __init__(self) -> None:
        self.name = b""
        self.value = bytearray()
        self.done = False
        self._field = b""
        self._value = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._field.lower() == b"content-disposition" and not self.done:
            self.name = parse_options_header(self._value)[1].get(b"name", b"")
        self._field = self._value = b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self.done and len(self.value) <= MAX_FIRST_PART_BYTES:
            self.value += data[start:end]

    def on_part_end(self) -> None:
        self.done = True


async def _first_part(receive: Receive, boundary: bytes) -> tuple[str, Receive]:
    """The value of the body's first part when it is `csrf_token`, else ""."""
    first = _FirstPart()
    parser = MultipartParser(boundary, first.callbacks())
    chunks: list[Message] = []
    size = 0
    try:
        while not first.done and size <= MAX_FIRST_PART_BYTES:
            message = await receive()
            chunks.append(message)
            body = message.get("body", b"")
            size += len(body)
            parser.write(body)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
    except Exception:  # a malformed body: no token found
        return "", _replay(chunks, receive)
    if not first.done or first.name != CSRF_FIELD.encode():
        return "", _replay(chunks, receive)
    return first.value.decode("utf-8", "replace"), _replay(chunks, receive)


def _replay(chunks: list[Message], receive: Receive) -> Receive:
    """A receive that gives `chunks` again first, then goes on with `receive`."""
    pending = list(chunks)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _forbidden(scope: Scope, send: Send, why: str) -> None:
    if str(scope.get("path", "")).startswith(API_PREFIX):
        body = json.dumps({"error": why}).encode()
        kind = b"application/json"
    else:
        body = f"403 Forbidden: {why}. Reload the page and try again.".encode()
        kind = b"text/plain; charset=utf-8"
    await _respond(send, 403, kind, body)


async def _respond(send: Send, status: int, kind: bytes, body: bytes) -> None:
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = [
    "CSP",
    "CSRF_FIELD",
    "CSRFGuard",
    "SecurityHeaders",
    "client_ip",
    "is_bearer_api",
    "is_https",
    "own_origin",
]
