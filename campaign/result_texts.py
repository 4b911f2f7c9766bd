"""The words of a result file: reasons, report-status and submit-code meanings (en, zh).

Presentation, above the store: the store hands out the facts of each row (outcome, the
plan's reason, the batch's state and detail, codes); this module says them in English or
Chinese, computed once per distinct value (a million rows have a handful of reasons).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from campaign.errors import UsageError
from campaign.gateway.protocol import report_status_info, submit_code_info
from campaign.outcomes import PLANNED_OUTCOMES, Outcome
from campaign.redact import redact
from campaign.zh import reason_zh

LANGS = ("en", "zh")

_REASONS: dict[str, dict[str, str]] = {
    "en": {
        "failed": "not delivered: {status} ({meaning})",
        "pending": "accepted by the gateway; no delivery report yet",
        "rejected": "the gateway refused the request: code {code} ({meaning})",
        "unknown": "the request may or may not have reached the gateway ({detail}); not resent",
        "unknown_plain": "the request may or may not have reached the gateway; not resent",
        "unsent_stopped": "not sent: the run stopped ({why})",
        "unsent_detail": "not sent: {why}",
        "unsent_yet": "not sent yet",
        "cancelled": "not sent: the campaign was cancelled",
    },
    "zh": {
        "failed": "未送达：{status}（{meaning}）",
        "pending": "网关已接收，尚无状态报告",
        "rejected": "网关拒绝了该请求：代码 {code}（{meaning}）",
        "unknown": "请求可能已到达网关，也可能没有（{detail}）；未重发",
        "unknown_plain": "请求可能已到达网关，也可能没有；未重发",
        "unsent_stopped": "未发送：运行已停止（{why}）",
        "unsent_detail": "未发送：{why}",
        "unsent_yet": "尚未发送",
        "cancelled": "活动已取消，此行未发送",
    },
}


def reasons(raw: Mapping[str, pa.Array], stop_reason: str | None, lang: str) -> pa.Array:
    """The `reason` column of a chunk of `campaign.store.result_chunks.iter_result_columns`."""
    words = _REASONS[lang]
    said = _said(lang)  # a reason made in English where it arose, in `lang`
    outcome, state = raw["outcome"], raw["batch_state"]
    planned = pc.is_in(outcome, value_set=pa.array([str(o) for o in PLANNED_OUTCOMES]))
    reason = pc.if_else(planned, filled(raw["plan_reason"]), "")
    if lang != "en":
        reason = _replace_mapped(reason, planned, reason, said)

    reason = _replace_mapped(
        reason,
        _is(outcome, Outcome.FAILED),
        filled(raw["dlr_status"]),
        lambda s: words["failed"].format(status=s, meaning=status_meaning(s, lang)),
    )
    reason = pc.if_else(_is(outcome, Outcome.PENDING), words["pending"], reason)
    reason = pc.if_else(_is(outcome, Outcome.CANCELLED), words["cancelled"], reason)
    reason = _replace_mapped(
        reason,
        _is(outcome, Outcome.REJECTED),
        filled(raw["submit_code"]),
        lambda c: words["rejected"].format(code=c, meaning=code_meaning(c, lang)),
    )
    reason = _replace_mapped(
        reason,
        _is(outcome, Outcome.UNKNOWN),
        filled(raw["batch_detail"]),
        lambda d: words["unknown"].format(detail=said(d)) if d else words["unknown_plain"],
    )
    # Ready rows whose batch never went out: the plan said "send", the run did not get there.
    unsent = pc.and_(_is(outcome, Outcome.UNSENT), pc.or_(pc.is_valid(state), _is(reason, "")))
    return _replace_mapped(
        reason,
        unsent,
        filled(raw["batch_detail"]),
        lambda d: _unsent_reason(said(d), said(stop_reason or ""), words),
    )


def _replace_mapped(
    target: pa.Array, mask: pa.Array, keys: pa.Array, describe: Callable[[str], str]
) -> pa.Array:
    """`target` with the rows of `mask` replaced by describe(key), once per distinct key."""
    if not pc.any(mask).as_py():
        return target
    return pc.replace_with_mask(target, mask, mapped(pc.filter(keys, mask), describe))


def mapped(keys: pa.Array, describe: Callable[[str], str]) -> pa.Array:
    """describe(key) for every row, computed once per distinct key."""
    encoded = pc.dictionary_encode(keys)
    values = pa.array([describe(key) for key in encoded.dictionary.to_pylist()], pa.string())
    return values.take(encoded.indices)


def _is(values: pa.Array, value: str) -> pa.Array:
    return pc.fill_null(pc.equal(values, str(value)), False)


def filled(values: pa.Array) -> pa.Array:
    """Text column: null -> ""."""
    return pc.fill_null(values, "")


def _said(lang: str) -> Callable[[str | None], str]:
    """A reason made in English (plan, sender, gateway, jobs) in `lang` (campaign.zh)."""
    if lang == "zh":  # redact: the last line of defence for a store written before it
        return lambda text: reason_zh(redact(text or ""))
    return lambda text: redact(text or "")


def _unsent_reason(detail: str, stop_reason: str | None, words: Mapping[str, str]) -> str:
    if detail:
        return words["unsent_detail"].format(why=detail)
    if stop_reason:
        return words["unsent_stopped"].format(why=stop_reason)
    return words["unsent_yet"]


def status_meaning(status: str, lang: str) -> str:
    info = report_status_info(status)
    return str(info.zh if lang == "zh" else info.en)


def code_meaning(code: str, lang: str) -> str:
    info = submit_code_info(code)
    return str(info.zh if lang == "zh" else info.en)


def check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise UsageError(f"unknown language {lang!r}; use en or zh")
