"""The simulator's gateway: the rules of PROTOCOL.md as a raw ASGI app, plus its state.

`SimulatorCore` answers `.../HttpBatchSendSM` and `.../QueryBalance` (POST form or GET
query) byte-exact like the protocol (`20110725160412,0\\n1234567890100`). Request handling
runs on one event loop; the runtime controls (quota, faults, settings) are thread-safe.
The runner (server thread, CLI) is in `simulator.py`; settings in `simconfig.py`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl

from campaign.gateway.protocol import format_submit_response
from campaign.gateway.simconfig import SimAccount, SimulatorSettings, make_settings
from campaign.gateway.simpush import Pusher, china_minute
from campaign.timeutil import CHINA

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_MOBILES = re.compile(r"1[3-9]\d{9}(?:,1[3-9]\d{9})*", re.ASCII)
_TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
_GARBAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
FAULT_KINDS = ("busy", "too_fast", "drop", "delay", "garbage", "code")


@dataclass(frozen=True)
class ReceivedRequest:
    """One send request as the simulator saw it (never the password)."""

    time: datetime
    account: str
    mobiles: tuple[str, ...]
    msg: str
    product: str
    extno: str
    needstatus: bool
    code: str
    msgid: str
    segments: int
    fault: str = ""  # the injected fault that shaped the answer, if any

    @property
    def sent(self) -> bool:
        """True when the simulator took the batch (code 0, whatever the client saw)."""
        return self.code == "0"

    def to_json(self) -> str:
        data = asdict(self)
        data["time"] = self.time.astimezone(CHINA).isoformat()  # for people: China time
        data["mobiles"] = list(self.mobiles)
        return json.dumps(data, ensure_ascii=False)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def billed_segments(text: str) -> int:
    length = utf16_length(text)
    return 1 if length <= 70 else math.ceil(length / 67)


class _Clock:
    """`YYYYMMDDhhmmss` China time, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._text = datetime.fromtimestamp(second, CHINA).strftime("%Y%m%d%H%M%S")
            self._second = second
        return self._text


class SimulatorCore:
    """Gateway rules, quotas, faults and the request log; an ASGI app."""

    def __init__(self, settings: SimulatorSettings | None = None, log_path: Path | None = None):
        self._settings = settings or SimulatorSettings()
        self._lock = threading.Lock()
        self._quota: dict[str, dict[str, int]] = {}
        self._accounts: dict[str, SimAccount] = {}
        self._apply_accounts(self._settings)
        self._faults: deque[list[Any]] = deque()
        self._log: list[ReceivedRequest] = []
        self._log_path = log_path
        self._log_file: TextIO | None = None
        self._rate: dict[str, list[int]] = {}
        self._last_balance: dict[str, float] = {}
        self._msgids = iter(range(time.time_ns() // 1000, 1 << 63))
        self._clock = _Clock()
        self.pusher = Pusher(lambda: self._settings)

    # ------------------------------------------------------------------ runtime controls

    @property
    def settings(self) -> SimulatorSettings:
        return self._settings

    def configure(self, **changes: Any) -> None:
        """Change settings at runtime (e.g. `rate_limit=5`, `push_url=...`); thread-safe."""
        with self._lock:
            self._settings = make_settings(self._settings, **changes)
            if "accounts" in changes:
                self._apply_accounts(self._settings)

    def _apply_accounts(self, settings: SimulatorSettings) -> None:
        self._accounts = {a.name: a for a in settings.accounts}
        for account in settings.accounts:
            known = self._quota.setdefault(account.name, {})
            for product, amount in account.products:
                known.setdefault(product, amount)

    def set_quota(self, product: str, amount: int, account: str = "") -> None:
        """Set the remaining quota (billed segments) of a product."""
        with self._lock:
            self._quota.setdefault(self._account_name(account), {})[product] = amount

    def top_up(self, product: str, amount: int, account: str = "") -> int:
        with self._lock:
            products = self._quota.setdefault(self._account_name(account), {})
            products[product] = products.get(product, 0) + amount
            return products[product]

    def quota(self, product: str, account: str = "") -> int:
        with self._lock:
            return self._quota.get(self._account_name(account), {}).get(product, 0)

    def _account_name(self, account: str) -> str:
        return account or self._settings.accounts[0].name

    def inject(self, kind: str, count: int = 1, *, code: str = "", seconds: float = 0.0) -> None:
        """Shape the answers to the next `count` send requests (faults queue up in order).

        busy: 104 · too_fast: 103 · code: answer `code` (e.g. "121", "117") · drop: take the
        batch, then close the connection without an answer · delay: take the batch, answer
        after `seconds` (default settings.fault_delay) · garbage: take the batch, answer an
        HTML 502 page.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        fixed = {"busy": "104", "too_fast": "103"}.get(kind, code)
        with self._lock:
            self._faults.append([kind, count, fixed, seconds or self._settings.fault_delay])

    def inject_busy(self, count: int = 1) -> None:
        self.inject("busy", count)

    def inject_too_fast(self, count: int = 1) -> None:
        self.inject("too_fast", count)

    def inject_code(self, code: str, count: int = 1) -> None:
        self.inject("code", count, code=str(code))

    def inject_drop(self, count: int = 1) -> None:
        self.inject("drop", count)

    def inject_delay(self, count: int = 1, seconds: float = 0.0) -> None:
        self.inject("delay", count, seconds=seconds)

    def inject_garbage(self, count: int = 1) -> None:
        self.inject("garbage", count)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self) -> list[Any] | None:
        if not self._faults:
            return None
        with self._lock:
            if not self._faults:
                return None
            head = self._faults[0]
            head[1] -= 1
            if head[1] <= 0:
                self._faults.popleft()
            return head

    def received(self) -> list[ReceivedRequest]:
        """A snapshot of every send request received so far."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def push_mo(
        self,
        mobile: str,
        text: str,
        *,
        destcode: str = "1065751600001",
        parts: int = 1,
        shuffle: bool = False,
    ) -> None:
        """Push an inbound message; `parts` > 1 splits it (isems=1, emshead "id,total,n")."""
        settings = self._settings
        base = {
            "receiver": settings.push_receiver,
            "pswd": settings.push_pswd,
            "moTime": china_minute(),
            "destcode": destcode,
            "mobile": mobile,
        }
        if parts <= 1:
            params = [{**base, "msg": text}]
        else:
            ident = self.pusher.new_mo_id()
            size = math.ceil(len(text) / parts) or 1
            chunks = [text[i * size : (i + 1) * size] for i in range(parts)]
            params = [
                {**base, "msg": chunk, "isems": "1", "emshead": f"{ident},{parts},{n}"}
                for n, chunk in enumerate(chunks, start=1)
            ]
        self.pusher.schedule_mo(params, settings.seed if shuffle else None)

    def push_report(
        self, msgid: str, mobile: str, status: str = "DELIVRD", *, report_time: str = ""
    ) -> None:
        """Push one delivery report as given (e.g. for a msgid never issued)."""
        settings = self._settings
        if not settings.push_url:
            raise ValueError("the simulator has no push_url to push reports to")
        params = {
            "receiver": settings.push_receiver,
            "pswd": settings.push_pswd,
            "msgid": msgid,
            "reportTime": report_time or china_minute(),
            "mobile": mobile,
            "status": status,
        }
        self.pusher.schedule_pushes(settings.push_url, [params])

    def wait_reports_pushed(self, timeout: float | None = 10.0) -> bool:
        """Wait until every queued push (reports and MO) got its answer or was given up."""
        return self.pusher.wait_idle(timeout)

    def open_log(self) -> None:
        if self._log_path and self._log_file is None:
            self._log_file = self._log_path.open("a", encoding="utf-8", buffering=1)

    def close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path: str = scope["path"].rstrip("/")
        if path.endswith("/HttpBatchSendSM") or path == "HttpBatchSendSM":
            await self._send_sm(scope, _params(scope, body), send)
        elif path.endswith("/QueryBalance") or path == "QueryBalance":
            code, lines = self._balance(_params(scope, body))
            await _respond(send, 200, "\n".join([f"{self._clock.now()},{code}", *lines]))
        elif path in ("", "/healthz"):
            await _respond(send, 200, "OK")
        else:
            await _respond(send, 404, "not found")

    async def _send_sm(self, scope: Scope, params: dict[str, str], send: Send) -> None:
        fault = self._take_fault()
        kind = fault[0] if fault else ""
        if kind in ("busy", "too_fast", "code"):
            assert fault is not None
            code, msgid = fault[2], ""
            self._record(params, code, "", 0, kind)
        else:
            code, msgid = self._accept(scope, params, kind)
        answer = format_submit_response(self._clock.now(), code, msgid)
        if kind == "drop":
            await _drop(send)
        elif kind == "garbage":
            await _respond(send, 502, _GARBAGE, content_type=b"text/html")
        else:
            # "delay" holds this answer; `latency` every answer (a slow gateway). A sleep on
            # the event loop: other connections are answered meanwhile.
            wait = fault[3] if fault is not None and kind == "delay" else self._settings.latency
            if wait > 0:
                await asyncio.sleep(wait)
            await _respond(send, 200, answer)

    def _accept(self, scope: Scope, params: dict[str, str], fault: str) -> tuple[str, str]:
        """Apply the rules; on 0 issue a msgid and queue the reports. (code, msgid to answer)"""
        code, product, segments = self._check(scope, params, self._settings)
        mobile_field = params.get("mobile", "")
        mobiles = tuple(mobile_field.split(",")) if mobile_field else ()
        needstatus = params.get("needstatus", "").lower() == "true"
        msgid = str(next(self._msgids)) if code == "0" else ""
        if msgid and needstatus:
            self.pusher.schedule_reports(msgid, mobiles, segments)
        self._record(params, code, msgid, segments, fault, mobiles=mobiles, product=product)
        return code, msgid if needstatus else ""

    def _check(
        self, scope: Scope, params: dict[str, str], settings: SimulatorSettings
    ) -> tuple[str, str, int]:
        """The submit code of a request (and on 0: deduct the quota)."""
        account = self._accounts.get(params.get("account", ""))
        product = params.get("product", "")
        if account is None:
            return "101", product, 0
        if params.get("pswd", "") != account.password:
            return "102", product, 0
        client = scope.get("client") or ("", 0)
        if account.allowed_ips and client[0] not in account.allowed_ips:
            return "117", product, 0
        if account.expired:
            return "119", product, 0
        if settings.rate_limit > 0 and self._over_rate(account.name, settings.rate_limit):
            return "103", product, 0
        window = settings.send_window
        if window is not None and not window.contains(datetime.now(CHINA).time()):
            return "110", product, 0
        product = product or account.default
        quotas = self._quota.get(account.name, {})
        if product not in quotas:
            return "112", product, 0
        mobile_field = params.get("mobile", "")
        count = mobile_field.count(",") + 1 if mobile_field else 0
        if count == 0 or count > settings.max_mobiles or count < account.min_batch:
            return "108", product, 0
        if not _MOBILES.fullmatch(mobile_field):
            return "107", product, 0
        msg = params.get("msg", "")
        length = utf16_length(msg)
        if length == 0 or length > settings.max_length:
            return "106", product, 0
        if account.require_signature and not _signed(msg):
            return "116", product, 0
        if any(word in msg for word in settings.sensitive_words):
            return "105", product, 0
        extno = params.get("extno", "")
        if extno and (
            not extno.isascii() or not extno.isdigit() or len(extno) > settings.extno_max_length
        ):
            return "113", product, 0
        segments = billed_segments(msg)
        with self._lock:
            if quotas.get(product, 0) < segments * count:
                return "109", product, 0
            quotas[product] -= segments * count
        return "0", product, segments

    def _over_rate(self, account: str, limit: float) -> bool:
        second = int(time.monotonic())
        window = self._rate.setdefault(account, [second, 0])
        if window[0] != second:
            window[0], window[1] = second, 0
        window[1] += 1
        return window[1] > limit

    def _balance(self, params: dict[str, str]) -> tuple[str, list[str]]:
        account = self._accounts.get(params.get("account", ""))
        if account is None:
            return "101", []
        if params.get("pswd", "") != account.password:
            return "102", []
        interval = self._settings.balance_interval
        now = time.monotonic()
        last = self._last_balance.get(account.name)
        if interval > 0 and last is not None and now - last < interval:
            return "103", []
        self._last_balance[account.name] = now
        with self._lock:
            quotas = dict(self._quota.get(account.name, {}))
        return "0", [f"{product},{amount}" for product, amount in quotas.items()]

    def _record(
        self,
        params: dict[str, str],
        code: str,
        msgid: str,
        segments: int,
        fault: str,
        *,
        mobiles: tuple[str, ...] | None = None,
        product: str | None = None,
    ) -> None:
        mobile_field = params.get("mobile", "")
        entry = ReceivedRequest(
            time=datetime.now(UTC),
            account=params.get("account", ""),
            mobiles=mobiles
            if mobiles is not None
            else (tuple(mobile_field.split(",")) if mobile_field else ()),
            msg=params.get("msg", ""),
            product=product if product is not None else params.get("product", ""),
            extno=params.get("extno", ""),
            needstatus=params.get("needstatus", "").lower() == "true",
            code=code,
            msgid=msgid,
            segments=segments,
            fault=fault,
        )
        if self._settings.keep_log:
            self._log.append(entry)
        if self._log_file is not None:
            self._log_file.write(entry.to_json() + "\n")


def _signed(msg: str) -> bool:
    end = msg.find("】")
    return msg.startswith("【") and end > 1


def _params(scope: Scope, body: bytes) -> dict[str, str]:
    """Query-string and form-body parameters (body wins), decoded as UTF-8."""
    params: dict[str, str] = {}
    query = scope.get("query_string", b"")
    if query:
        params.update(parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True))
    if body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _respond(
    send: Send, status: int, body: str | bytes, content_type: bytes | None = None
) -> None:
    data = body.encode("utf-8") if isinstance(body, str) else body
    headers = [(b"content-type", content_type)] if content_type else _TEXT_HEADERS
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _drop(send: Send) -> None:
    """Close the connection without answering (uvicorn: the transport behind `send`)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        for _ in range(3):  # let uvicorn see the disconnect before the app returns
            await asyncio.sleep(0)
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
    )
    raise ConnectionAbortedError("simulated dropped connection")
