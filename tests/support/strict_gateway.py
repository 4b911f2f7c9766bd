"""A small, strict, independent gateway stub written from PROTOCOL.md alone.

Not the project's simulator: stdlib `http.server`, nothing imported from `campaign`.
It records every raw request, checks it against the protocol to the letter and keeps
every breach in `violations` (a test asserts that list is empty). Its answers are
scripted: `script("103", "0", "drop", "garbage")` makes the next send requests answer
those, in order; afterwards every request is accepted (or answers `default_code`).
`without_balance` makes it a send-only gateway (QueryBalance is a 404);
`balance_interval` answers 103 to a balance query sooner than that after the last one.

    with StrictGateway(account="003547", password="Sd123456") as gw:
        ...  # campaign send --gateway gw.url
        gw.sends()          # RawRequest: .form, .mobiles, .answer, .msgid
        gw.accepted()       # the sends answered 0

Pushes to a receiver, as the platform does them: `push(url, report_params(...))`,
`push(url, mo_params(...), method="POST")`, `push_raw_query(url, batched_report_query(...))`.
"""

from __future__ import annotations

import http.server
import itertools
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

CHINA = timezone(timedelta(hours=8))
SEND_FIELDS = {"account", "pswd", "mobile", "msg", "needstatus", "product", "extno"}
BALANCE_FIELDS = {"account", "pswd"}
MAX_MOBILES = 50_000
MAX_UNITS = 536
NOT_FOUND = b"404 Not Found"  # answered with HTTP 404 (by identity)


@dataclass
class RawRequest:
    method: str
    path: str
    query: str
    content_type: str
    body: bytes
    form: dict[str, str] = field(default_factory=dict)
    answer: str = ""  # "0" (accepted), a code, "drop", "garbage"
    msgid: str = ""

    @property
    def mobiles(self) -> list[str]:
        return self.form.get("mobile", "").split(",")


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _valid_mobile(text: str) -> bool:
    return len(text) == 11 and text.isdigit() and text.startswith("1")


class StrictGateway:
    """The gateway of PROTOCOL.md on a free loopback port; `url` is the base URL."""

    def __init__(
        self,
        *,
        account: str = "003547",
        password: str = "Sd123456",
        products: dict[str, int] | None = None,
        base: str = "/msg",
        min_batch: int = 1,
    ) -> None:
        self.account, self.password, self.base = account, password, base
        self.products = products if products is not None else {"1234567": 1000}
        self.min_batch = min_batch
        self.without_balance = False  # True: a send-only gateway (QueryBalance is a 404)
        self.balance_interval = 0.0  # PROTOCOL: 10 s; a query sooner is answered 103
        self._last_balance = float("-inf")
        self.default_code = "0"
        self.requests: list[RawRequest] = []
        self.violations: list[str] = []
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._msgids = itertools.count(2026112500000001)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{base}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StrictGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ test API

    def script(self, *answers: str) -> None:
        """The next send requests' answers: a code, "drop", "garbage", "raw:BODY"
        (that body), or "slow:SECONDS" (accepted, answered that late)."""
        with self._lock:
            self._script.extend(answers)

    def sends(self) -> list[RawRequest]:
        """Send requests, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/HttpBatchSendSM")]

    def accepted(self) -> list[RawRequest]:
        return [r for r in self.sends() if r.answer == "0"]

    def mobiles_accepted(self) -> list[str]:
        return [m for r in self.accepted() for m in r.mobiles]

    # ------------------------------------------------------------------ handling

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def _next_answer(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self.default_code

    def _handle(self, request: RawRequest) -> bytes | None:
        """The response body, or None to drop the connection."""
        with self._lock:
            self.requests.append(request)
        if request.method != "POST":
            self._violation(f"{request.method} {request.path}: the protocol uses POST")
        if "pswd" in urllib.parse.parse_qs(request.query) or self.password in request.query:
            self._violation(f"password in the URL of {request.path}")
        if request.content_type.split(";")[0].strip() != "application/x-www-form-urlencoded":
            self._violation(f"content type {request.content_type!r}")
        try:
            text = request.body.decode("utf-8")
            pairs = urllib.parse.parse_qsl(
                text,
                keep_blank_values=True,
                strict_parsing=bool(text),
                encoding="utf-8",
                errors="strict",
            )
        except (UnicodeDecodeError, ValueError) as exc:
            self._violation(f"body is not a UTF-8 form: {exc}")
            return _line("101")
        request.form = dict(pairs)
        if len(request.form) != len(pairs):
            self._violation("a field is repeated")
        if request.path == f"{self.base}/HttpBatchSendSM":
            return self._send(request)
        if request.path == f"{self.base}/QueryBalance" and not self.without_balance:
            return self._balance(request)
        if not request.path.endswith("/QueryBalance"):
            self._violation(f"unknown path {request.path}")
        return NOT_FOUND

    def _credentials(self, form: dict[str, str]) -> str | None:
        if form.get("account") != self.account:
            return "101"
        if form.get("pswd") != self.password:
            return "102"
        return None

    def _send(self, request: RawRequest) -> bytes | None:
        form = request.form
        self._check_send_form(form)
        refused = self._credentials(form)
        answer = refused or self._next_answer()
        request.answer = answer
        if answer == "drop":
            return None
        if answer == "garbage":
            return b"<html>502 Bad Gateway</html>"
        if answer.startswith("raw:"):  # a body exactly as given ("{msgid}" filled in)
            request.msgid = str(next(self._msgids))
            return answer[4:].replace("{msgid}", request.msgid).encode("utf-8")
        if answer.startswith("slow:"):  # accept, but answer only after that many seconds
            time.sleep(float(answer[5:]))
            request.answer = answer = "0"
        if answer != "0":
            return _line(answer)
        request.msgid = str(next(self._msgids))
        if form.get("needstatus") == "false":
            return _line("0")
        return _line("0") + request.msgid.encode("ascii")

    def _check_send_form(self, form: dict[str, str]) -> None:
        extra = set(form) - SEND_FIELDS
        if extra:
            self._violation(f"unknown fields {sorted(extra)}")
        for name in ("account", "pswd", "mobile", "msg", "needstatus"):
            if not form.get(name):
                self._violation(f"required field {name} missing or empty")
        if form.get("needstatus") not in ("true", "false"):
            self._violation(f"needstatus={form.get('needstatus')!r}")
        mobiles = form.get("mobile", "").split(",")
        if not 1 <= len(mobiles) <= MAX_MOBILES or len(mobiles) < self.min_batch:
            self._violation(f"{len(mobiles)} mobiles in one request")
        bad = [m for m in mobiles if not _valid_mobile(m)]
        if bad:
            self._violation(f"invalid mobiles {bad[:3]}")
        if len(set(mobiles)) != len(mobiles):
            self._violation("a mobile twice in one request")
        units = utf16_units(form.get("msg", ""))
        if not 1 <= units <= MAX_UNITS:
            self._violation(f"msg of {units} UTF-16 units")
        extno = form.get("extno", "")
        if extno and not extno.isdigit():
            self._violation(f"extno {extno!r} is not digits")
        product = form.get("product", "")
        if product and product not in self.products:
            self._violation(f"product {product!r} not ordered")

    def _balance(self, request: RawRequest) -> bytes:
        extra = set(request.form) - BALANCE_FIELDS
        if extra:
            self._violation(f"unknown balance fields {sorted(extra)}")
        refused = self._credentials(request.form)
        if refused:
            return _line(refused)
        with self._lock:
            now, last = time.monotonic(), self._last_balance
            self._last_balance = now
        if now - last < self.balance_interval:
            return _line("103")
        lines = [f"{product},{left}" for product, left in self.products.items()]
        return _line("0") + "\n".join(lines).encode("ascii")

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = RawRequest(
                    self.command, path, query, self.headers.get("Content-Type", ""), body
                )
                answer = gateway._handle(request)
                if answer is None:
                    self.close_connection = True
                    return
                self.send_response(404 if answer is NOT_FOUND else 200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _serve

        return Handler


def _line(code: str) -> bytes:
    return f"{datetime.now(CHINA):%Y%m%d%H%M%S},{code}\n".encode("ascii")


# ---------------------------------------------------------------------- pushes


@dataclass(frozen=True)
class PushAnswer:
    status: int
    body: str


def push(url: str, params: dict[str, str], *, method: str = "GET") -> PushAnswer:
    """One push as the platform sends it: a GET query string or a POST form (UTF-8)."""
    encoded = urllib.parse.urlencode(params, encoding="utf-8")
    if method == "GET":
        request = urllib.request.Request(f"{url}?{encoded}", method="GET")
    else:
        request = urllib.request.Request(
            url,
            data=encoded.encode("ascii"),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    return _open(request)


def push_raw_query(url: str, query: str) -> PushAnswer:
    """A GET with the query string exactly as given (already encoded)."""
    return _open(urllib.request.Request(f"{url}?{query}", method="GET"))


def _open(request: urllib.request.Request) -> PushAnswer:
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return PushAnswer(response.status, response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        return PushAnswer(exc.code, exc.read().decode("utf-8", "replace"))


def report_params(
    msgid: str,
    mobile: str,
    status: str = "DELIVRD",
    report_time: str = "2611251002",
    *,
    receiver: str = "",
    pswd: str = "",
) -> dict[str, str]:
    """The parameters of one report push, in the order PROTOCOL.md shows them."""
    return {
        "receiver": receiver,
        "pswd": pswd,
        "msgid": msgid,
        "reportTime": report_time,
        "mobile": mobile,
        "status": status,
    }


def mo_params(
    mobile: str,
    msg: str,
    *,
    mo_time: str = "2611252205",
    destcode: str = "1065751600001",
    receiver: str = "",
    pswd: str = "",
    ems: tuple[str, int, int] | None = None,
) -> dict[str, str]:
    """The parameters of one inbound (MO) push; `ems=(id, total, part)` for a long one."""
    params = {
        "receiver": receiver,
        "pswd": pswd,
        "moTime": mo_time,
        "destcode": destcode,
        "mobile": mobile,
        "msg": msg,
    }
    if ems is not None:
        params["isems"] = "1"
        params["emshead"] = f"{ems[0]},{ems[1]},{ems[2]}"
    return params


def batched_report_query(
    reports: list[tuple[str, str, str, str]], *, receiver: str = "", pswd: str = ""
) -> str:
    """`report=msgid,reportTime,mobile,status||...`, each value URL-encoded, as a query."""
    items = "||".join(",".join(urllib.parse.quote(v, safe="") for v in r) for r in reports)
    creds = urllib.parse.urlencode({"receiver": receiver, "pswd": pswd})
    return f"{creds}&report={urllib.parse.quote(items, safe=',|%')}"
