"""The gateway protocol as data: submit/balance codes, report statuses, response parsing.

Pure: no I/O. Code elsewhere refers to the classes here (`Action.RETRY_LATER`,
`StatusGroup.BLACKLIST`, ...), never to bare numbers. Unknown codes and statuses are
kept verbatim with a generic meaning; they are never treated as success.

Parsing is strict (see `parse_submit_response`): anything that is not exactly the
protocol's answer is `Ambiguous`, because an HTTP error page or garbage that came back
after the request was sent does not tell whether the batch was sent.

Reasons quote at most a short piece of a malformed answer, and none at all of an answer
that carries a password field (it echoes the request: `campaign.redact.is_echo`). The
client passes every reason through its `Redactor`, which knows the password.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from campaign.redact import ECHOED, is_echo


class Action(StrEnum):
    """What the sender does with a submit code."""

    ACCEPTED = "accepted"  # the batch was taken
    RETRY_LATER = "retry_later"  # transient: the same batch may be submitted again later
    STOP_RUN = "stop_run"  # the account cannot send now: stop the run (resumable)
    WAIT_WINDOW = "wait_window"  # outside the allowed send time: wait or stop
    REFUSE_BATCH = "refuse_batch"  # this batch is refused; others may pass
    UNKNOWN_CODE = "unknown_code"  # a code not in our table: treat as refused, never success


@dataclass(frozen=True)
class CodeInfo:
    code: str
    zh: str
    en: str
    action: Action

    @property
    def description(self) -> str:
        return f"{self.code} {self.en} ({self.zh})"


_A = Action
SUBMIT_CODES: dict[str, CodeInfo] = {
    info.code: info
    for info in (
        CodeInfo("0", "提交成功", "accepted", _A.ACCEPTED),
        CodeInfo("101", "无此用户", "no such user", _A.STOP_RUN),
        CodeInfo("102", "密码错", "wrong password", _A.STOP_RUN),
        CodeInfo("103", "提交过快（提交速度超过流速限制）", "submitting too fast", _A.RETRY_LATER),
        CodeInfo(
            "104", "系统忙（因平台侧原因，暂时无法处理提交的短信）", "system busy", _A.RETRY_LATER
        ),
        CodeInfo(
            "105",
            "敏感短信（短信内容包含敏感词）",
            "sensitive content (the message contains a sensitive word)",
            _A.REFUSE_BATCH,
        ),
        CodeInfo(
            "106",
            "消息长度错（>536或<=0）",
            "wrong message length (> 536 or <= 0)",
            _A.REFUSE_BATCH,
        ),
        CodeInfo("107", "包含错误的手机号码", "contains an invalid mobile number", _A.REFUSE_BATCH),
        CodeInfo(
            "108",
            "手机号码个数错（群发>50000或<=0）",
            "wrong number of mobiles (> 50000, <= 0, or below the account's minimum group size)",
            _A.REFUSE_BATCH,
        ),
        CodeInfo("109", "无发送额度（该用户可用短信数已使用完）", "no quota left", _A.STOP_RUN),
        CodeInfo(
            "110",
            "不在发送时间内(验证码通知7*24小时发送)",
            "outside the allowed send time",
            _A.WAIT_WINDOW,
        ),
        CodeInfo(
            "111", "超出该账户当月发送额度限制", "over the account's monthly limit", _A.STOP_RUN
        ),
        CodeInfo(
            "112",
            "无此产品，用户没有订购该产品",
            "no such product: the account has not ordered it",
            _A.STOP_RUN,
        ),
        CodeInfo(
            "113",
            "extno格式错（非数字或者长度不对）",
            "wrong extno (not digits, or wrong length)",
            _A.REFUSE_BATCH,
        ),
        CodeInfo("115", "自动审核驳回", "rejected by automatic review", _A.REFUSE_BATCH),
        CodeInfo(
            "116",
            "签名不合法，未带签名（用户必须带签名的前提下）",
            "invalid signature, or no signature where the account requires one",
            _A.REFUSE_BATCH,
        ),
        CodeInfo(
            "117",
            "IP地址认证错,请求调用的IP地址不是系统登记的IP地址",
            "IP authentication failed: the caller's IP is not registered",
            _A.STOP_RUN,
        ),
        CodeInfo(
            "118", "用户没有相应的发送权限", "the user has no permission to send this", _A.STOP_RUN
        ),
        CodeInfo("119", "用户已过期", "the user has expired", _A.STOP_RUN),
        CodeInfo("120", "内容不在白名单中", "content not on the whitelist", _A.REFUSE_BATCH),
    )
}

BALANCE_CODES: dict[str, CodeInfo] = {
    info.code: info
    for info in (
        CodeInfo("0", "成功", "ok", _A.ACCEPTED),
        CodeInfo("101", "无此用户", "no such user", _A.STOP_RUN),
        CodeInfo("102", "密码错", "wrong password", _A.STOP_RUN),
        CodeInfo(
            "103",
            "查询过快（建议每10秒查询一次）",
            "querying too fast (query at most once every 10 s)",
            _A.RETRY_LATER,
        ),
    )
}

_UNKNOWN_ZH = "未知的状态码"
_UNKNOWN_EN = "unknown gateway code (not in the protocol table)"


def submit_code_info(code: str) -> CodeInfo:
    """Meaning of a submit code; an unknown code is kept verbatim with a generic meaning."""
    code = str(code).strip()
    return SUBMIT_CODES.get(code) or CodeInfo(code, _UNKNOWN_ZH, _UNKNOWN_EN, Action.UNKNOWN_CODE)


def balance_code_info(code: str) -> CodeInfo:
    """Meaning of a QueryBalance status code; unknown codes verbatim."""
    code = str(code).strip()
    return BALANCE_CODES.get(code) or CodeInfo(code, _UNKNOWN_ZH, _UNKNOWN_EN, Action.UNKNOWN_CODE)


# --------------------------------------------------------------------------- report statuses


class StatusGroup(StrEnum):
    DELIVERED = "delivered"
    BLACKLIST = "blacklist"  # the number is on a blacklist
    NUMBER = "number"  # the number does not exist, is suspended or in arrears
    CARRIER = "carrier"  # a channel/carrier gateway problem
    CONTENT = "content"  # the text was refused (review, keyword, signature)
    OTHER = "other"  # anything else, including statuses not in our table


@dataclass(frozen=True)
class StatusInfo:
    status: str
    zh: str
    en: str
    group: StatusGroup

    @property
    def delivered(self) -> bool:
        return self.group is StatusGroup.DELIVERED


_G = StatusGroup
REPORT_STATUSES: dict[str, StatusInfo] = {
    info.status: info
    for info in (
        StatusInfo("DELIVRD", "成功", "delivered", _G.DELIVERED),
        StatusInfo("MBBLACK", "黑名单号码", "number is blacklisted", _G.BLACKLIST),
        StatusInfo("NOROUTE", "无通道", "no route (channel)", _G.CARRIER),
        StatusInfo("ROUTEERR", "通道异常", "route/channel fault", _G.CARRIER),
        StatusInfo("REJECT", "审核驳回", "rejected by review", _G.CONTENT),
        StatusInfo(
            "DISTURB", "手机号码发送次数过多", "number has received too many messages", _G.OTHER
        ),
        StatusInfo("EMSERR", "长短信不完整", "long message incomplete", _G.CARRIER),
        StatusInfo("SIGNERR", "签名错", "signature error", _G.CONTENT),
        StatusInfo("KEYWORD", "敏感词", "sensitive word", _G.CONTENT),
        StatusInfo("WHITESMS", "短信内容不在白名单中", "content not on the whitelist", _G.CONTENT),
        StatusInfo(
            "SY1RESP:-9",
            "扩展码错误  不用填写扩展码",
            "extension-number error: do not fill in an extno",
            _G.CARRIER,
        ),
        StatusInfo("DB:0141", "用户处在黑名单中", "subscriber is on a blacklist", _G.BLACKLIST),
        StatusInfo("ID:0103", "用户欠费", "subscriber's account in arrears", _G.NUMBER),
        StatusInfo("ID:0102", "用户停机", "subscriber's line suspended", _G.NUMBER),
        StatusInfo("ID:0101", "手机号码错误", "wrong mobile number", _G.NUMBER),
        StatusInfo("MA:0001", "黑名单", "blacklist", _G.BLACKLIST),
        StatusInfo("MX:0013", "通道黑名单", "channel blacklist", _G.BLACKLIST),
        StatusInfo("601", "空号 暂停服务", "number does not exist / service suspended", _G.NUMBER),
        StatusInfo("GL:0000", "获取频繁 被拦截了", "intercepted: requested too often", _G.CARRIER),
        StatusInfo("ERR:104", "系统忙", "system busy", _G.CARRIER),
        StatusInfo("SIGFAIL", "签名没有报备", "signature not registered", _G.CONTENT),
    )
}

# Families "CMPP20ERR:XXX", "SMGPERR:XXX", "SGIPERR:XXX", "**RESP:XXX": the carrier gateway
# returned error XXX on submit.
_FAMILY = re.compile(r"^(CMPP\d*ERR|SMGPERR|SGIPERR|[A-Z0-9_]*RESP):(.+)$", re.ASCII)
_OTHER_ZH = "网关状态，参考短信状态报告说明"
_OTHER_EN = "carrier gateway status (see the carrier's status-report documentation)"


def report_status_info(status: str) -> StatusInfo:
    """Meaning and group of a delivery-report status; unknown statuses verbatim (OTHER)."""
    text = str(status).strip()
    key = text.upper()
    known = REPORT_STATUSES.get(key)
    if known is not None:
        return known if known.status == text else StatusInfo(text, known.zh, known.en, known.group)
    family = _FAMILY.match(key)
    if family:
        code = text.split(":", 1)[1]
        return StatusInfo(
            text,
            f"提交到网关时网关返回了{code}的错误码",
            f"carrier gateway error {code} ({family.group(1)})",
            StatusGroup.CARRIER,
        )
    return StatusInfo(text, _OTHER_ZH, _OTHER_EN, StatusGroup.OTHER)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Accepted:
    """The gateway took the batch (code 0)."""

    msgid: str
    response_time: str
    code: str = "0"


@dataclass(frozen=True)
class Refused:
    """The gateway answered with a non-zero code; `.action` says what to do."""

    code: str
    info: CodeInfo
    response_time: str = ""

    @property
    def action(self) -> Action:
        return self.info.action

    @property
    def reason(self) -> str:
        return f"gateway code {self.code}: {self.info.en} ({self.info.zh})"


@dataclass(frozen=True)
class Ambiguous:
    """No valid answer after the request may have reached the gateway: never resend by itself."""

    reason: str


@dataclass(frozen=True)
class NotSent:
    """Nothing reached the gateway (could not connect): safe to retry."""

    reason: str


@dataclass(frozen=True)
class Balances:
    """QueryBalance answer: balance per product id, in the gateway's order."""

    products: dict[str, int] = field(default_factory=dict)
    response_time: str = ""


SubmitResult = Accepted | Refused | Ambiguous | NotSent
BalanceResult = Balances | Refused | Ambiguous | NotSent

# --------------------------------------------------------------------------- parsing

_STATUS_LINE = re.compile(r"^(\d{14}),(-?\d{1,9})$", re.ASCII)
_MSGID = re.compile(r"^\d{1,64}$", re.ASCII)
_PRODUCT_LINE = re.compile(r"^([^,\s]+)\s*,\s*(-?\d{1,18})$", re.ASCII)
_SNIPPET = 60


Quote = Callable[[str], str]


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat[:_SNIPPET] + ("..." if len(flat) > _SNIPPET else ""))


def _quoter(body: str) -> Quote:
    """How to quote pieces of this answer: never at all when it echoes the request (a
    gateway or proxy that answers with the request body would show the password)."""
    if is_echo(body):
        return lambda _text: f"({ECHOED})"
    return _snippet


def _lines(body: str) -> list[str]:
    """Lines split on \\n (CRLF tolerated), trimmed; trailing blank lines dropped."""
    return [line.strip() for line in body.lstrip("\ufeff").strip().split("\n")]


# HTTP statuses that say the interface does not exist at this URL: the request was not
# routed to any send handler, so nothing was sent (a wrong base URL, a typo in the path).
NO_SUCH_INTERFACE = frozenset({404, 405, 501})


def no_such_interface(http_status: int) -> CodeInfo:
    """The refusal of an HTTP status in NO_SUCH_INTERFACE: stop the run, nothing was sent."""
    return CodeInfo(
        f"HTTP {http_status}",
        "网关地址错误：此地址没有该接口，短信未发出",
        "no such interface at this URL (check the gateway base URL); nothing was sent",
        Action.STOP_RUN,
    )


def is_no_such_interface(result: Refused) -> bool:
    """True for the refusal of an HTTP status in NO_SUCH_INTERFACE (not a gateway code)."""
    return result.code in {f"HTTP {status}" for status in NO_SUCH_INTERFACE}


def _precheck(http_status: int, body: str, what: str, quote: Quote) -> Ambiguous | Refused | None:
    if http_status in NO_SUCH_INTERFACE:
        return Refused(f"HTTP {http_status}", no_such_interface(http_status))
    if not 200 <= http_status < 300:
        kind = "an HTML page" if _looks_html(body) else f"body {quote(body)}"
        kind = ECHOED if is_echo(body) else kind
        return Ambiguous(f"HTTP {http_status} from the gateway ({kind}); {what}")
    if not body.strip():
        return Ambiguous(f"empty answer from the gateway; {what}")
    if _looks_html(body):
        return Ambiguous(f"the gateway answered with an HTML page, not the protocol; {what}")
    return None


def _looks_html(body: str) -> bool:
    head = body.lstrip()[:200].lower()
    return head.startswith("<") or "<html" in head or "<!doctype" in head


def _accepted_lines(
    http_status: int, body: str, what: str, meaning: Callable[[str], CodeInfo], quote: Quote
) -> Ambiguous | Refused | tuple[str, list[str]]:
    """What both answers share: the HTTP and body checks, the `TIME,CODE` line, a refusal.

    For code 0: (response time, the lines after the status line)."""
    problem = _precheck(http_status, body, what, quote)
    if problem:
        return problem
    lines = _lines(body)
    status = _STATUS_LINE.match(lines[0])
    if not status:
        return Ambiguous(f"unexpected first line {quote(lines[0])}; {what}")
    response_time, code = status.group(1), status.group(2)
    if code != "0":
        if len(lines) > 1:
            return Ambiguous(f"code {code} followed by unexpected lines; {what}")
        return Refused(code, meaning(code), response_time)
    return response_time, lines[1:]


def parse_submit_response(http_status: int, body: str, needstatus: bool) -> SubmitResult:
    """Classify the answer to HttpBatchSendSM; strict: anything malformed is Ambiguous."""
    maybe = "the batch may have been sent"
    quote = _quoter(body)
    head = _accepted_lines(http_status, body, maybe, submit_code_info, quote)
    if not isinstance(head, tuple):
        return head
    response_time, rest = head
    if len(rest) > 1:
        return Ambiguous(f"unexpected extra lines after the msgid; {maybe}")
    if rest:
        if not _MSGID.match(rest[0]):
            return Ambiguous(f"code 0 with a malformed msgid {quote(rest[0])}; {maybe}")
        return Accepted(rest[0], response_time)
    if needstatus:
        return Ambiguous(f"code 0 without a msgid although reports were requested; {maybe}")
    return Accepted("", response_time)


def parse_balance_response(http_status: int, body: str) -> BalanceResult:
    """Classify the answer to QueryBalance; strict like `parse_submit_response`."""
    what = "no balance"
    quote = _quoter(body)
    head = _accepted_lines(http_status, body, what, balance_code_info, quote)
    if not isinstance(head, tuple):
        return head
    response_time, rest = head
    products: dict[str, int] = {}
    for line in rest:
        match = _PRODUCT_LINE.match(line)
        if not match:
            return Ambiguous(f"malformed product line {quote(line)}; {what}")
        products[match.group(1)] = int(match.group(2))
    return Balances(products, response_time)


# --------------------------------------------------------------------------- formatting


def format_submit_response(response_time: str, code: str, msgid: str = "") -> str:
    """The exact body the gateway answers: `TIME,CODE` and, when given, `\\nMSGID`."""
    return f"{response_time},{code}\n{msgid}" if msgid else f"{response_time},{code}"
