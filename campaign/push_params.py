"""The parameters of one push, checked: `/dlr` -> report rows, `/mo` -> an inbound part.

Pure: no I/O. Anything wrong raises `PushRefused` with the HTTP status and the reason the
receiver answers with (and logs, mobile masked); nothing of such a push is stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote

from campaign.phones import normalize_mobile
from campaign.reports import parse_report_time
from campaign.store.inbound import InboundPart
from campaign.store.reports import ReportRow

PUSH_ORIGIN = "push"
_DIGITS = re.compile(r"^[0-9]{1,64}$")
_MOBILE = re.compile(r"^\+?[0-9]{5,20}$")
_EMSHEAD = re.compile(r"^\s*([0-9]{1,32})\s*,\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*$")


class PushRefused(Exception):
    """A push answered with an HTTP error and stored nowhere."""

    def __init__(self, status: int, reason: str, mobile: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.mobile = mobile


def mask_mobile(mobile: str) -> str:
    """139****0021: enough to tell numbers apart in a log, not to text them."""
    if len(mobile) >= 8:
        return f"{mobile[:3]}****{mobile[-4:]}"
    return "****"


def parse_reports(params: Mapping[str, str]) -> list[ReportRow]:
    """The reports of one /dlr push (single or batched `report=` form), or PushRefused."""
    batched = params.get("report")
    if batched is not None:
        items = [item for item in batched.split("||") if item.strip()]
        if not items:
            raise PushRefused(400, "empty report parameter")
        return [_batched_report(item, n) for n, item in enumerate(items, start=1)]
    missing = [k for k in ("msgid", "reportTime", "mobile", "status") if not params.get(k)]
    if missing:
        raise PushRefused(400, f"missing parameter(s): {', '.join(missing)}")
    return [_report(params["msgid"], params["reportTime"], params["mobile"], params["status"])]


def _batched_report(item: str, number: int) -> ReportRow:
    fields = [unquote(f).strip() for f in item.split(",")]
    if len(fields) != 4:
        raise PushRefused(400, f"report #{number} needs 4 fields: msgid,time,mobile,status")
    try:
        return _report(*fields)
    except PushRefused as exc:
        raise PushRefused(400, f"report #{number}: {exc.reason}", exc.mobile) from None


def _report(msgid: str, report_time: str, mobile: str, status: str) -> ReportRow:
    msgid, report_time, status = msgid.strip(), report_time.strip(), status.strip()
    number = _mobile(mobile)
    if not _DIGITS.match(msgid):
        raise PushRefused(400, "msgid is not a number", number)
    canonical = parse_report_time(report_time)
    if canonical is None:
        raise PushRefused(400, f"reportTime {report_time[:20]!r} is not a real time", number)
    if not status or len(status) > 64:
        raise PushRefused(400, "status is empty" if not status else "status is too long", number)
    return (msgid, number, status, canonical, report_time[:32], PUSH_ORIGIN)


def _mobile(raw: str) -> str:
    text = raw.strip().replace(" ", "").replace("-", "")
    if not _MOBILE.match(text):
        raise PushRefused(400, "mobile is not a number")
    return normalize_number(text)


def normalize_number(text: str) -> str:
    """The 11-digit form where the number is a Chinese mobile, else its digits as pushed
    (a report for any number is kept: it just matches no recipient)."""
    return normalize_mobile(text) or text.lstrip("+")


def parse_inbound(params: Mapping[str, str]) -> InboundPart:
    """The part of one /mo push, or PushRefused."""
    missing = [k for k in ("mobile", "moTime") if not params.get(k)]
    if "msg" not in params:
        missing.append("msg")
    if missing:
        raise PushRefused(400, f"missing parameter(s): {', '.join(missing)}")
    number = _mobile(params["mobile"])
    mo_time = parse_report_time(params["moTime"].strip())
    if mo_time is None:
        raise PushRefused(400, f"moTime {params['moTime'][:20]!r} is not a real time", number)
    destcode = params.get("destcode", "").strip()
    if len(destcode) > 32:
        raise PushRefused(400, "destcode is too long", number)
    isems = params.get("isems", "").strip()
    if isems in ("", "0"):
        return InboundPart(number, destcode, mo_time, params["msg"])
    if isems != "1":
        raise PushRefused(400, "isems must be 0 or 1", number)
    match = _EMSHEAD.match(params.get("emshead", ""))
    if not match:
        raise PushRefused(400, "emshead must be id,total,number", number)
    ems_id, total, part = match.group(1), int(match.group(2)), int(match.group(3))
    if not 1 <= part <= total:
        raise PushRefused(400, f"emshead part {part} of {total} is impossible", number)
    return InboundPart(number, destcode, mo_time, params["msg"], ems_id, total, part)
