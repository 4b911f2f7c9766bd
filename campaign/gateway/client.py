"""GatewayClient: the one module that talks HTTP to the gateway (and imports requests).

It never raises for gateway behaviour; it classifies every outcome:

* `Accepted(msgid, response_time)` — code 0;
* `Refused(code, info)` — a non-zero code, `.action` says what to do;
* `Ambiguous(reason)` — the request may have reached the gateway but no valid answer came
  back (read timeout, reset after sending, HTTP error page, garbage): never resend blindly;
* `NotSent(reason)` — nothing left this machine (connect failure, DNS, bad URL): safe to retry.

Two transports, no automatic retries on either (a retry could send a batch twice):

* `httptools` (`transport.FormTransport`): one kept socket per thread, the answer parsed
  by llhttp; a fifth of http.client's CPU per request and a tenth of requests'. Used only
  where it sends what requests would send: a plain `http://` URL without credentials, no
  proxy for it from the environment, no `~/.netrc` entry, no session handed in. Same
  request on the wire (path, header lines, body), same results and reasons.
* `requests`: everything else — https, credentials in the URL, a proxy, or a
  `requests.Session` given to `GatewayClient(...)` (its adapters, hooks and mocks keep
  working) — one session with a keep-alive pool sized for a sender thread pool.

`GatewayClient.transport` says which one a client uses.

The password travels only in the POST body: never in the URL, a log, a `repr` or
a reason text (every reason goes through the client's `Redactor`, built from its settings;
the password is also registered for `campaign.redact.redact`, the last line of defence).
Credentials written in the gateway URL (`http://user:pw@host/msg`) are sent as HTTP basic
auth by requests, and never shown.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal, TypeVar
from urllib.parse import quote_plus, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.retry import Retry
from urllib3.util.ssl_match_hostname import CertificateError as HostnameMismatch

from campaign.config import GatewaySettings
from campaign.gateway.protocol import (
    Accepted,
    Ambiguous,
    BalanceResult,
    Balances,
    NotSent,
    Refused,
    SubmitResult,
    parse_balance_response,
    parse_submit_response,
)
from campaign.gateway.transport import FormTransport, TransportFailure
from campaign.redact import Redactor, redact_url, register_secret, url_secrets

__all__ = [
    "CONNECT_TIMEOUT",
    "POOL_SIZE",
    "Accepted",
    "Ambiguous",
    "BalanceResult",
    "Balances",
    "GatewayClient",
    "NotSent",
    "Refused",
    "SubmitResult",
    "TransportName",
    "make_session",
]

CONNECT_TIMEOUT = 5.0
POOL_SIZE = 32
SEND_PATH = "HttpBatchSendSM"
BALANCE_PATH = "QueryBalance"
TransportName = Literal["httptools", "requests"]
_R = TypeVar("_R", bound=Accepted | Refused | Ambiguous | NotSent | Balances)
_NOT_SENT_ERRORS = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
)


def make_session(pool_size: int = POOL_SIZE) -> requests.Session:
    """A keep-alive session without automatic retries (a retry could send a batch twice)."""
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=pool_size,
        max_retries=Retry(total=0, connect=0, read=0, redirect=0, status=0, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class GatewayClient:
    """Send batches and query balances; thread-safe for a pool sharing one client."""

    def __init__(
        self,
        settings: GatewaySettings,
        session: requests.Session | None = None,
        *,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self._settings = settings
        register_secret(settings.password, *url_secrets(settings.url))
        self._redact = Redactor([settings.password, *url_secrets(settings.url)])
        self._owns_session = session is None
        self._session = session if session is not None else make_session(pool_size)
        # Proxies from the environment (honouring no_proxy) are looked up once, not per request.
        self._proxies = dict(self._session.proxies)
        if self._session.trust_env:
            self._proxies.update(requests.utils.get_environ_proxies(settings.url or "http://x"))
        self._templates: dict[str, requests.PreparedRequest] = {}
        base = settings.url.rstrip("/")
        self._send_url = f"{base}/{SEND_PATH}"
        self._balance_url = f"{base}/{BALANCE_PATH}"
        # (connect, read) seconds; no read timeout when settings.timeout is 0
        self._timeout: tuple[float, float] | tuple[float, None] = (
            (CONNECT_TIMEOUT, settings.timeout) if settings.timeout else (CONNECT_TIMEOUT, None)
        )
        self._needstatus = "true" if settings.needstatus else "false"
        # the send form's fields other than mobile and msg, encoded once (same order and
        # bytes as urlencode of the whole form)
        self._form_head = urlencode({"account": settings.account, "pswd": settings.password})
        self._form_tail = urlencode(
            {"needstatus": self._needstatus, "product": settings.product, "extno": settings.extno}
        )
        self._paths: dict[str, str] = {}  # URL -> path as requests sends it (fast path)
        self._fast = None if session is not None else self._fast_transport()

    def __repr__(self) -> str:
        url = redact_url(self._settings.url)
        return f"GatewayClient(url={url!r}, account={self._settings.account!r})"

    @property
    def settings(self) -> GatewaySettings:
        return self._settings

    @property
    def transport(self) -> TransportName:
        """Which transport sends: "httptools" (fast) or "requests" (https, proxy, ...)."""
        return "httptools" if self._fast is not None else "requests"

    def close(self) -> None:
        """Close every connection this client opened (the caller closes a session it gave)."""
        if self._fast is not None:
            self._fast.close()
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ calls

    def send_batch(self, mobiles: Sequence[str], text: str) -> SubmitResult:
        """POST one batch; never raises for gateway answers, only classifies them."""
        answer = self._post(self._send_url, self.send_form(mobiles, text))
        if isinstance(answer, NotSent | Ambiguous):
            return answer
        status, body = answer
        return self._scrub(parse_submit_response(status, body, self._settings.needstatus))

    def send_form(self, mobiles: Sequence[str], text: str) -> bytes:
        """The form body of a batch: account, pswd, mobile, msg, needstatus, product,
        extno, URL-encoded as UTF-8 (the same bytes as `urlencode` of them in this order)."""
        mobile, msg = quote_plus(",".join(mobiles)), quote_plus(text)
        return f"{self._form_head}&mobile={mobile}&msg={msg}&{self._form_tail}".encode("ascii")

    def query_balance(self) -> BalanceResult:
        """Balance per product: `Balances(products)` or Refused/Ambiguous/NotSent."""
        form = {"account": self._settings.account, "pswd": self._settings.password}
        answer = self._post(self._balance_url, urlencode(form).encode("ascii"))
        if isinstance(answer, NotSent | Ambiguous):
            return answer
        status, body = answer
        return self._scrub(parse_balance_response(status, body))

    # ------------------------------------------------------------------ internals

    def _fast_transport(self) -> FormTransport | None:
        """The httptools transport where it sends what requests would send, else None.

        Prepared by the session as requests would: a plain http URL with a host (an invalid
        one stays with requests, which reports it per call), no credentials in it, no proxy
        for it, and no Authorization or Cookie header added (a `~/.netrc` entry).
        """
        try:
            templates = [self._template(url) for url in (self._send_url, self._balance_url)]
            target = urlsplit(templates[0].url or "")
            host, port = target.hostname, target.port or 80
        except (requests.RequestException, ValueError):
            return None
        if target.scheme != "http" or not host or "@" in target.netloc:
            return None
        if requests.utils.select_proxy(templates[0].url or "", self._proxies):
            return None
        if any("Authorization" in t.headers or "Cookie" in t.headers for t in templates):
            return None
        self._paths = {
            self._send_url: templates[0].path_url,
            self._balance_url: templates[1].path_url,
        }
        headers = {k: v for k, v in templates[0].headers.items() if k.lower() != "content-length"}
        return FormTransport(
            host, port, headers, connect_timeout=CONNECT_TIMEOUT, read_timeout=self._timeout[1]
        )

    def _post(self, url: str, body: bytes) -> tuple[int, str] | NotSent | Ambiguous:
        if self._fast is not None:
            return self._fast_post(self._fast, self._paths[url], body)
        try:
            response = self._adapter_send(url, body)
            try:
                answer = response.content.decode("utf-8", errors="replace")
            finally:
                response.close()
        except Exception as exc:  # every failure is classified, none escapes
            return self._scrub(classify_exception(exc))
        return response.status_code, answer

    def _fast_post(
        self, fast: FormTransport, path: str, body: bytes
    ) -> tuple[int, str] | NotSent | Ambiguous:
        try:
            status, data = fast.post(path, body)
        except TransportFailure as failure:
            return self._scrub(failure.result)
        return status, data.decode("utf-8", errors="replace")

    def _template(self, url: str) -> requests.PreparedRequest:
        """A POST to `url` prepared once by the session (headers, auth, cookies, URL)."""
        template = self._templates.get(url)
        if template is None:
            prototype = requests.Request("POST", url, data={"_": ""})
            template = self._templates[url] = self._session.prepare_request(prototype)
        return template

    def _adapter_send(self, url: str, body: bytes) -> requests.Response:
        """POST through the session's adapter with a request prepared once per URL.

        Same bytes on the wire as `session.post(url, data=form)`, without re-merging
        settings, cookies and hooks per request (a third of the client's CPU).
        """
        request = self._template(url).copy()
        request.body = body
        request.headers["Content-Length"] = str(len(body))
        adapter = self._session.get_adapter(url)
        return adapter.send(
            request,
            stream=False,
            timeout=self._timeout,
            # types-requests: Session.verify may be None, the adapter takes bool | str;
            # passed on as it is (requests' own Session.send does the same)
            verify=self._session.verify,  # type: ignore[arg-type]
            cert=self._session.cert,
            proxies=self._proxies,
        )

    def _scrub(self, result: _R) -> _R:
        """The result with the password (any form, any piece) out of its reason text."""
        if isinstance(result, Ambiguous | NotSent):
            return replace(result, reason=self._redact(result.reason))
        return result


def classify_exception(exc: BaseException) -> NotSent | Ambiguous:
    """NotSent when the failure happened before anything was sent, else Ambiguous."""
    name = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout):
        return NotSent(f"could not connect to the gateway (connect timeout): {_cause(exc)}")
    if isinstance(exc, requests.exceptions.SSLError) and _handshake_failed(exc):
        return NotSent(f"TLS handshake with the gateway failed: {_cause(exc)}")
    if isinstance(exc, _NOT_SENT_ERRORS):
        return NotSent(f"invalid gateway URL ({name})")
    if isinstance(exc, requests.ConnectionError) and _failed_to_connect(exc):
        return NotSent(f"could not connect to the gateway: {_cause(exc)}")
    if isinstance(exc, requests.ReadTimeout):
        return Ambiguous("no answer from the gateway before the timeout; it may have been sent")
    return Ambiguous(
        f"the connection failed after sending ({name}: {_cause(exc)}); it may have been sent"
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its args, causes, contexts and urllib3 `reason`s (no cycles)."""
    seen: list[BaseException] = []
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
        stack.extend(item.args)
    return seen


# TLS errors that only a handshake raises. urllib3 wraps ANY ssl error as SSLError, also one
# while the request is written or the answer read (an EOF on a dropped keep-alive
# connection): that one may have been sent, so it is Ambiguous, never retried.
_HANDSHAKE_REASONS = frozenset(
    {
        "CERTIFICATE_VERIFY_FAILED",
        "NO_PROTOCOLS_AVAILABLE",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "TLSV1_ALERT_UNKNOWN_CA",
        "UNSUPPORTED_PROTOCOL",
        "WRONG_VERSION_NUMBER",
    }
)


def _handshake_failed(exc: BaseException) -> bool:
    for item in _chain(exc):
        if isinstance(item, ssl.SSLCertVerificationError | HostnameMismatch):
            return True
        if isinstance(item, ssl.SSLError) and getattr(item, "reason", None) in _HANDSHAKE_REASONS:
            return True
    return False


def _failed_to_connect(exc: BaseException) -> bool:
    return any(isinstance(e, NewConnectionError | ConnectTimeoutError) for e in _chain(exc))


def _cause(exc: BaseException) -> str:
    """A short human reason: the innermost meaningful message, without URLs."""
    for item in reversed(_chain(exc)):
        if isinstance(item, NewConnectionError):
            text = str(item)
            # urllib3: "<conn>: Failed to establish a new connection: [Errno 111] ..."
            return text.split(": ", 1)[1] if ": " in text else text
        if isinstance(item, ConnectTimeoutError):
            return "connect timed out"
    for item in _chain(exc)[1:]:
        if isinstance(item, OSError | ConnectionError) and str(item):
            return type(item).__name__
    return type(exc).__name__
