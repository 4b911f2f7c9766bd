"""Transitional stand-in for `campaign.gateway.protocol` (used only until that module lands)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _Info:
    zh: str
    en: str


_STATUS = {"DELIVRD": _Info("成功", "delivered")}
_CODES = {"0": _Info("提交成功", "accepted")}


def report_status_info(status: str) -> _Info:
    return _STATUS.get(status, _Info("网关状态", "carrier gateway status"))


def submit_code_info(code: str) -> _Info:
    return _CODES.get(code, _Info("未知的状态码", "unknown gateway code"))
