"""The parameters of one push, checked: `/dlr` -> report rows, `/mo` -> an inbound part.

Pure: no I/O. Anything wrong raises `PushRefused` with the HTTP status and the reason the
receiver answers with (and logs, mobile masked); nothing of such a push is stored. A batched
`report=` push is checked item by item: its malformed items are listed (`Reports.malformed`)
and the others stored; only a batch with no valid item is refused.

What makes a report valid is `campaign.report_rows` (shared with report files); this module
names the first problem of a malformed one. A field holding a control character (NUL
included) is malformed: such text cannot be stored alike on SQLite and PostgreSQL (which
refuses NUL), and never goes out again in an SMS. Only the text of an inbound message may
hold tabs and line breaks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from campaign.report_rows import Malformed, Problem, check_report, report_number
from campaign.report_rows import normalize_number as normalize_number  # receiver re-exports
from campaign.report_times import parse_report_time
from campaign.store.inbound import InboundPart
from campaign.store.reports import ReportRow

PUSH_ORIGIN = "push"
#: The reason of a malformed report: its first problem in this order.
REASONS: dict[Problem, str] = {
    Problem.MOBILE: "mobile is not a number",
    Problem.CONTROL: "a field holds a control character",
    Problem.MSGID: "msgid is not a number",
    Problem.TIME: "reportTime {time!r} is not a real time",
    Problem.STATUS_EMPTY: "status is empty",
    Problem.STATUS_LONG: "status is too long",
}
_EMSHEAD = re.compile(r"^\s*([0-9]{1,32})\s*,\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: no field may hold one
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # msg: tab, CR, LF ok
MALFORMED_SHOWN = 3  # reasons of malformed batch items quoted in the log line


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


@dataclass
class Reports:
    """The valid reports of one /dlr push, and a reason per malformed batch item."""

    rows: list[ReportRow]
    malformed: list[str] = field(default_factory=list)

    def malformed_summary(self) -> str:
        """One log line's worth: how many, and the first reasons (mobiles masked)."""
        shown = "; ".join(self.malformed[:MALFORMED_SHOWN])
        more = len(self.malformed) - MALFORMED_SHOWN
        return shown + (f"; and {more} more" if more > 0 else "")


def parse_reports(params: Mapping[str, str]) -> Reports:
    """The reports of one /dlr push (single or batched `report=` form), or PushRefused
    (a single push that is malformed, a batch with no valid item)."""
    batched = params.get("report")
    if batched is not None:
        return _batched_reports(batched)
    missing = [k for k in ("msgid", "reportTime", "mobile", "status") if not params.get(k)]
    if missing:
        raise PushRefused(400, f"missing parameter(s): {', '.join(missing)}")
    fields = (params["msgid"], params["reportTime"], params["mobile"], params["status"])
    return Reports([_report(*fields)])


def _batched_reports(batched: str) -> Reports:
    items = [item for item in batched.split("||") if item.strip()]
    if not items:
        raise PushRefused(400, "empty report parameter")
    result = Reports([])
    for number, item in enumerate(items, start=1):
        try:
            result.rows.append(_batched_report(item, number))
        except PushRefused as exc:
            who = f" (mobile {mask_mobile(exc.mobile)})" if exc.mobile else ""
            result.malformed.append(exc.reason + who)
    if not result.rows:
        raise PushRefused(400, f"no valid report in the batch: {result.malformed_summary()}")
    return result


def _batched_report(item: str, number: int) -> ReportRow:
    fields = [unquote(f).strip() for f in item.split(",")]
    if len(fields) != 4:
        raise PushRefused(400, f"report #{number} needs 4 fields: msgid,time,mobile,status")
    try:
        return _report(*fields)
    except PushRefused as exc:
        raise PushRefused(400, f"report #{number}: {exc.reason}", exc.mobile) from None


def _report(msgid: str, report_time: str, mobile: str, status: str) -> ReportRow:
    report = check_report(msgid, report_time, mobile, status)
    if isinstance(report, Malformed):
        first = next(problem for problem in REASONS if problem in report.problems)
        reason = REASONS[first].format(time=report.raw_time[:20])
        raise PushRefused(400, reason, report.mobile)
    return (*report, PUSH_ORIGIN)


def _mobile(raw: str) -> str:
    number = report_number(raw)
    if number is None:
        raise PushRefused(400, REASONS[Problem.MOBILE])
    return number


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
    if _CONTROL.search(destcode) or _TEXT_CONTROL.search(params["msg"]):
        raise PushRefused(400, "a field holds a control character", number)
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
