"""The summary and breakdown sheets of the result workbook (xlsxwriter, native charts).

Sheets: `summary` (campaign settings, outcomes with rates, billed segments, delivery rate,
a chart of outcomes and one of failure statuses), `by status`, `by carrier`, `by source`,
`by hour`. Every sheet is written top to bottom (the workbook is in constant_memory mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from campaign.outcomes import ACCEPTED_OUTCOMES, DELIVERED_STATUS, RESULT_COLUMNS, Outcome
from campaign.outcomes import RESULT_OUTCOMES as OUTCOMES
from campaign.result_rows import status_frame
from campaign.store.breakdowns import BREAKDOWNS, breakdown_frame, reports_per_hour
from campaign.store.campaigns import CampaignRecord
from campaign.store.engine import safe_url
from campaign.store.results import unmatched_reports
from campaign.timeutil import china_text, utcnow
from campaign.zh import SHEETS_ZH, carrier_zh, outcome_zh, reason_zh, state_zh

SUMMARY_SHEET = "summary"
STATUS_SHEET = "by status"
CARRIER_SHEET = "by carrier"
SOURCE_SHEET = "by source"
HOUR_SHEET = "by hour"
SHEETS = (SUMMARY_SHEET, STATUS_SHEET, CARRIER_SHEET, SOURCE_SHEET, HOUR_SHEET)


def sheet_name(name: str, lang: str) -> str:
    """A sheet's name in `lang` (the English names are SPEC's)."""
    return SHEETS_ZH.get(name, name) if lang == "zh" else name


def outcome_label(outcome: str, lang: str) -> str:
    return outcome_zh(outcome) if lang == "zh" else outcome


LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Campaign results",
        "campaign": "Campaign",
        "id": "Campaign id",
        "name": "Name",
        "state": "State",
        "stop_reason": "Stop reason",
        "template": "Template",
        "signature": "Signature",
        "optout_text": "Opt-out text",
        "created": "Created (China time)",
        "started": "Started (China time)",
        "finished": "Finished (China time)",
        "exported": "Exported (China time)",
        "store": "Store",
        "rows": "Input rows",
        "outcome": "Outcome",
        "count": "Rows",
        "share": "Share of rows",
        "share_reported": "Share of recipients with a report",
        "meaning": "Meaning",
        "total": "Total",
        "sending": "Sending and delivery",
        "accepted_rows": "Recipients accepted by the gateway",
        "billed": "Billed segments (accepted)",
        "planned": "Segments planned",
        "delivered": "Delivered",
        "delivery_rate": "Delivery rate (of accepted)",
        "failed_rate": "Failed (of accepted)",
        "pending_rate": "No report yet (of accepted)",
        "unmatched": "Reports matching no recipient of this campaign",
        "status": "Status",
        "description": "Description",
        "recipients": "Recipients",
        "carrier": "Carrier",
        "source": "Source",
        "hour": "Hour (China time)",
        "reports": "Reports",
        "delivered_reports": "DELIVRD reports",
        "chart_outcomes": "Outcomes",
        "chart_failures": "Failure statuses",
        "chart_hours": "Delivery reports per hour",
        "none": "(none)",
        "title_sep": ": ",
    },
    "zh": {
        "title": "群发结果",
        "campaign": "活动",
        "id": "活动编号",
        "name": "名称",
        "state": "状态",
        "stop_reason": "停止原因",
        "template": "模板",
        "signature": "签名",
        "optout_text": "退订提示",
        "created": "创建时间（北京时间）",
        "started": "开始时间（北京时间）",
        "finished": "结束时间（北京时间）",
        "exported": "导出时间（北京时间）",
        "store": "数据库",
        "rows": "输入行数",
        "outcome": "结果",
        "count": "行数",
        "share": "占比",
        "share_reported": "占有状态报告号码的比例",
        "meaning": "说明",
        "total": "合计",
        "sending": "发送与送达",
        "accepted_rows": "网关已接收的号码",
        "billed": "计费条数（已接收）",
        "planned": "计划条数",
        "delivered": "已送达",
        "delivery_rate": "送达率（占已接收）",
        "failed_rate": "失败（占已接收）",
        "pending_rate": "尚无状态报告（占已接收）",
        "unmatched": "无法匹配本活动号码的状态报告",
        "status": "状态码",
        "description": "说明",
        "recipients": "号码数",
        "carrier": "运营商",
        "source": "来源",
        "hour": "小时（北京时间）",
        "reports": "状态报告数",
        "delivered_reports": "DELIVRD 报告数",
        "chart_outcomes": "结果分布",
        "chart_failures": "失败状态",
        "chart_hours": "每小时状态报告",
        "none": "（无）",
        "title_sep": "：",
    },
}

OUTCOME_MEANINGS: dict[str, dict[str, str]] = {
    "en": {
        "delivered": "delivery report DELIVRD",
        "failed": "a delivery report other than DELIVRD",
        "pending": "accepted by the gateway, no report yet",
        "rejected": "the gateway refused the request",
        "unknown": "may or may not have reached the gateway; not resent",
        "invalid": "number, template or length problem",
        "duplicate": "the same number earlier in this campaign",
        "suppressed": "opted out or blacklisted",
        "capped": "the number already got the most messages allowed in the window",
        "cancelled": "the campaign was cancelled before this row was sent",
        "unsent": "valid, not sent",
    },
    "zh": {
        "delivered": "状态报告为 DELIVRD",
        "failed": "状态报告不是 DELIVRD",
        "pending": "网关已接收，尚无状态报告",
        "rejected": "网关拒绝了请求",
        "unknown": "不确定是否到达网关；未重发",
        "invalid": "号码、模板或长度有误",
        "duplicate": "本活动中前面已有相同号码",
        "suppressed": "已退订或在黑名单中",
        "capped": "该号码在时间窗口内已达发送上限",
        "cancelled": "此行发送前活动已取消",
        "unsent": "有效，但未发送",
    },
}


class Formats:
    """The few cell formats of the workbook, created once."""

    def __init__(self, book: Workbook) -> None:
        self.header = book.add_format(
            {"bold": True, "bg_color": "#DDEBF7", "bottom": 1, "text_wrap": False}
        )
        self.title = book.add_format({"bold": True, "font_size": 14})
        self.section = book.add_format({"bold": True, "font_size": 12, "bottom": 1})
        self.label = book.add_format({"bold": True})
        self.count = book.add_format({"num_format": "#,##0"})
        self.count_bold = book.add_format({"num_format": "#,##0", "bold": True})
        self.percent = book.add_format({"num_format": "0.0%"})
        self.wrap = book.add_format({"text_wrap": True, "valign": "top"})


class ResultTally:
    """Figures of the summary sheets, added up from the result chunks as they stream past.

    The same figures as the SQL of `campaign.store.results` (outcome_counts, outcome_breakdown,
    report_status_counts, segment_totals), without reading the campaign a second time.
    """

    def __init__(self, n_original_columns: int) -> None:
        self._offset = n_original_columns
        self.rows = 0
        self._outcomes: dict[str, int] = {}
        self._statuses: dict[str, int] = {}
        self._by: dict[str, pd.Series] = {}
        self.billed_segments = 0
        self.planned_segments = 0
        self.accepted_rows = 0

    def _col(self, frame: pd.DataFrame, name: str) -> pd.Series:
        return frame.iloc[:, self._offset + RESULT_COLUMNS.index(name)]

    def add(self, chunk: pd.DataFrame | pa.Table) -> None:
        """Count a chunk of `iter_results` (a DataFrame, or a Table with arrow=True)."""
        if isinstance(chunk, pa.Table):
            self._add_table(chunk)
            return
        self.rows += len(chunk)
        outcome = self._col(chunk, "outcome")
        _add_counts(self._outcomes, outcome.value_counts())
        status = self._col(chunk, "dlr_status")
        _add_counts(self._statuses, status[status != ""].value_counts())
        for by in BREAKDOWNS:
            sizes = pd.DataFrame({by: self._col(chunk, by), "outcome": outcome}).value_counts()
            previous = self._by.get(by)
            self._by[by] = sizes if previous is None else previous.add(sizes, fill_value=0)
        segments = self._col(chunk, "segments").fillna(0).astype("int64")
        accepted = outcome.isin(ACCEPTED_OUTCOMES)
        self.accepted_rows += int(accepted.sum())
        self.billed_segments += int(segments[accepted].sum())
        self.planned_segments += int(segments[self._col(chunk, "batch_id") != ""].sum())

    def _add_table(self, chunk: pa.Table) -> None:
        """`add` with Arrow kernels (text columns hold "" for empty, as iter_results gives)."""

        def col(name: str) -> pa.ChunkedArray:
            return chunk.column(self._offset + RESULT_COLUMNS.index(name))

        self.rows += chunk.num_rows
        outcome = col("outcome")
        _add_counts(self._outcomes, _value_counts(outcome))
        status = col("dlr_status")
        _add_counts(self._statuses, _value_counts(pc.filter(status, pc.not_equal(status, ""))))
        for by in BREAKDOWNS:
            sizes = _pair_counts(col(by), outcome, by)
            previous = self._by.get(by)
            self._by[by] = sizes if previous is None else previous.add(sizes, fill_value=0)
        segments = pc.fill_null(col("segments"), 0)
        accepted = pc.is_in(outcome, value_set=pa.array(ACCEPTED_OUTCOMES))
        self.accepted_rows += int(pc.sum(accepted).as_py() or 0)
        self.billed_segments += int(pc.sum(pc.filter(segments, accepted)).as_py() or 0)
        planned = pc.filter(segments, pc.not_equal(col("batch_id"), ""))
        self.planned_segments += int(pc.sum(planned).as_py() or 0)

    def outcome_counts(self) -> dict[str, int]:
        counts = {str(o): self._outcomes.get(o, 0) for o in OUTCOMES}
        counts.update({o: n for o, n in self._outcomes.items() if o not in counts})
        return counts

    def status_counts(self) -> dict[str, int]:
        return dict(sorted(self._statuses.items(), key=lambda item: (-item[1], item[0])))

    def breakdown(self, by: str) -> pd.DataFrame:
        sizes = self._by.get(by)
        if sizes is None:
            return breakdown_frame(pd.DataFrame({by: [], "outcome": [], "n": []}), by)
        return breakdown_frame(sizes.rename("n").reset_index(), by)


def _value_counts(values: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(values)
    return dict(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    )


def _pair_counts(key: pa.ChunkedArray, outcome: pa.ChunkedArray, by: str) -> pd.Series:
    """Rows per (key, outcome), like DataFrame.value_counts() of those two columns."""
    sizes = (
        pa.table({by: key, "outcome": outcome})
        .group_by([by, "outcome"])
        .aggregate([([], "count_all")])
    )
    index = pd.MultiIndex.from_arrays(
        [np.asarray(sizes[c].to_pylist(), dtype=object) for c in (by, "outcome")],
        names=[by, "outcome"],
    )
    return pd.Series(sizes["count_all"].to_numpy(), index=index, name="count")


def _add_counts(total: dict[str, int], counts: pd.Series | dict[str, int]) -> None:
    for key, n in counts.items():
        total[str(key)] = total.get(str(key), 0) + int(n)


@dataclass(frozen=True)
class StoreFigures:
    """What the summary sheets read from the store besides the result rows: the reports
    matching no recipient, and the reports per hour. Independent of the rows, so they can be
    read (`read_store_figures`, in a thread) while the rows are written."""

    unmatched: int
    hours: pd.DataFrame


def read_store_figures(engine: Engine, campaign_id: int) -> StoreFigures:
    return StoreFigures(
        unmatched_reports(engine, campaign_id), reports_per_hour(engine, campaign_id)
    )


@dataclass(frozen=True)
class SummaryInputs:
    campaign: CampaignRecord
    tally: ResultTally
    store_url: str
    lang: str
    figures: StoreFigures


def write_summary_sheets(book: Workbook, formats: Formats, inputs: SummaryInputs) -> list[str]:
    """Add the summary and breakdown sheets; return their names in order."""
    lang = inputs.lang
    names = [sheet_name(n, lang) for n in SHEETS]
    statuses = status_frame(inputs.tally.status_counts(), lang)
    summary = book.add_worksheet(sheet_name(SUMMARY_SHEET, lang))
    status_sheet = book.add_worksheet(sheet_name(STATUS_SHEET, lang))
    failures = _write_status_sheet(status_sheet, formats, statuses, lang)
    _write_summary(summary, book, formats, inputs, failures)
    for by, name in (("carrier", CARRIER_SHEET), ("source", SOURCE_SHEET)):
        sheet = book.add_worksheet(sheet_name(name, lang))
        _write_breakdown(sheet, formats, inputs.tally.breakdown(by), lang)
    hours = inputs.figures.hours
    _write_hours(book.add_worksheet(sheet_name(HOUR_SHEET, lang)), book, formats, hours, lang)
    return names


def _write_summary(
    sheet: Worksheet,
    book: Workbook,
    formats: Formats,
    inputs: SummaryInputs,
    failures: int,
) -> None:
    lang, campaign = inputs.lang, inputs.campaign
    words = LABELS[lang]
    sheet.set_column(0, 0, 44)
    sheet.set_column(1, 1, 18)
    sheet.set_column(2, 2, 14)
    sheet.set_column(3, 3, 48)
    sheet.write_string(0, 0, f"{words['title']}{words['title_sep']}{campaign.name}", formats.title)
    sheet.write_string(2, 0, words["campaign"], formats.section)
    settings = [
        ("id", campaign.id),
        ("name", campaign.name),
        ("state", state_zh(campaign.state) if lang == "zh" else campaign.state),
        ("stop_reason", _reason(campaign.stop_reason or "", lang)),
        ("template", campaign.template),
        ("signature", _setting(campaign.settings, "signature")),
        ("optout_text", _setting(campaign.settings, "optout_text")),
        ("created", _china(campaign.created_at)),
        ("started", _china(campaign.started_at)),
        ("finished", _china(campaign.finished_at)),
        ("exported", _china(utcnow())),
        ("store", safe_url(inputs.store_url)),
        ("rows", inputs.tally.rows),
    ]
    row = 3
    for key, value in settings:
        sheet.write_string(row, 0, words[key], formats.label)
        _write_value(sheet, row, 1, value, formats.count)
        row += 1

    row += 1
    sheet.write_string(row, 0, words["outcome"], formats.header)
    sheet.write_string(row, 1, words["count"], formats.header)
    sheet.write_string(row, 2, words["share"], formats.header)
    sheet.write_string(row, 3, words["meaning"], formats.header)
    first_outcome = row + 1
    total = inputs.tally.rows
    outcomes = inputs.tally.outcome_counts()
    for outcome in OUTCOMES:
        row += 1
        count = outcomes.get(outcome, 0)
        sheet.write_string(row, 0, outcome_label(outcome, lang))
        sheet.write_number(row, 1, count, formats.count)
        sheet.write_number(row, 2, count / total if total else 0.0, formats.percent)
        sheet.write_string(row, 3, OUTCOME_MEANINGS[lang].get(outcome, ""))
    last_outcome = row
    row += 1
    sheet.write_string(row, 0, words["total"], formats.label)
    sheet.write_number(row, 1, total, formats.count_bold)

    row += 2
    sheet.write_string(row, 0, words["sending"], formats.section)
    tally = inputs.tally
    accepted = tally.accepted_rows
    figures: list[tuple[str, float | int | None, Any]] = [
        ("accepted_rows", accepted, formats.count),
        ("billed", tally.billed_segments, formats.count),
        ("planned", tally.planned_segments, formats.count),
        ("delivered", outcomes.get(Outcome.DELIVERED, 0), formats.count),
        ("delivery_rate", _rate(outcomes.get(Outcome.DELIVERED, 0), accepted), formats.percent),
        ("failed_rate", _rate(outcomes.get(Outcome.FAILED, 0), accepted), formats.percent),
        ("pending_rate", _rate(outcomes.get(Outcome.PENDING, 0), accepted), formats.percent),
        ("unmatched", inputs.figures.unmatched, formats.count),
    ]
    for key, value, fmt in figures:
        row += 1
        sheet.write_string(row, 0, words[key], formats.label)
        if value is None:
            sheet.write_string(row, 1, "-")
        else:
            sheet.write_number(row, 1, value, fmt)

    chart = book.add_chart({"type": "column"})
    chart.add_series(
        {
            "name": words["chart_outcomes"],
            "categories": [sheet_name(SUMMARY_SHEET, lang), first_outcome, 0, last_outcome, 0],
            "values": [sheet_name(SUMMARY_SHEET, lang), first_outcome, 1, last_outcome, 1],
            "data_labels": {"value": True},
        }
    )
    chart.set_title({"name": words["chart_outcomes"]})
    chart.set_x_axis({"name": words["outcome"]})
    chart.set_y_axis({"name": words["count"]})
    chart.set_legend({"none": True})
    sheet.insert_chart(2, 5, chart, {"x_scale": 1.3, "y_scale": 1.2})
    if failures:
        status_sheet = sheet_name(STATUS_SHEET, lang)
        first, last = 1 + _delivered_rows, failures + _delivered_rows
        bar = book.add_chart({"type": "bar"})
        bar.add_series(
            {
                "name": words["chart_failures"],
                "categories": [status_sheet, first, 0, last, 0],
                "values": [status_sheet, first, 2, last, 2],
                "data_labels": {"value": True},
            }
        )
        bar.set_title({"name": words["chart_failures"]})
        bar.set_legend({"none": True})
        bar.set_x_axis({"name": words["recipients"]})
        bar.set_y_axis({"reverse": True, "name": words["status"]})
        sheet.insert_chart(22, 5, bar, {"x_scale": 1.3, "y_scale": 1.2})


_delivered_rows = 1  # the `by status` sheet lists DELIVRD first (one row, possibly zero)


def _write_status_sheet(
    sheet: Worksheet, formats: Formats, statuses: pd.DataFrame, lang: str
) -> int:
    """DELIVRD first, then the failure statuses, most frequent first; return their number."""
    words = LABELS[lang]
    delivered = statuses[statuses["status"] == DELIVERED_STATUS]
    failed = statuses[statuses["status"] != DELIVERED_STATUS]
    if delivered.empty:
        delivered = status_frame({DELIVERED_STATUS: 0}, lang)
    ordered = pd.concat([delivered, failed], ignore_index=True)
    headers = [words["status"], words["description"], words["recipients"], words["share_reported"]]
    _table_header(sheet, formats, headers, [16, 60, 14, 12], len(ordered))
    cells = ordered[["status", "description", "recipients", "share"]]
    for row, record in enumerate(cells.itertuples(index=False, name=None), start=1):
        status, description, recipients, share = record
        sheet.write_string(row, 0, str(status))
        sheet.write_string(row, 1, str(description))
        sheet.write_number(row, 2, int(recipients), formats.count)
        sheet.write_number(row, 3, float(share), formats.percent)
    return len(failed)


def _write_breakdown(sheet: Worksheet, formats: Formats, frame: pd.DataFrame, lang: str) -> None:
    words = LABELS[lang]
    key = frame.columns[0]
    headers = [
        words[key],
        words["count"],
        *(outcome_label(o, lang) for o in OUTCOMES),
        words["delivery_rate"],
    ]
    widths = [30, 10, *[11] * len(OUTCOMES), 16]
    _table_header(sheet, formats, headers, widths, len(frame))
    for row, record in enumerate(frame.itertuples(index=False, name=None), start=1):
        value = str(record[0])
        if key == "carrier" and lang == "zh":
            value = carrier_zh(value)
        sheet.write_string(row, 0, value or words["none"])
        for col, value in enumerate(record[1:-1], start=1):
            sheet.write_number(row, col, int(value), formats.count)
        rate = record[-1]
        if pd.notna(rate):
            sheet.write_number(row, len(record) - 1, float(rate), formats.percent)


def _write_hours(
    sheet: Worksheet, book: Workbook, formats: Formats, frame: pd.DataFrame, lang: str
) -> None:
    words = LABELS[lang]
    headers = [words["hour"], words["reports"], words["delivered_reports"]]
    _table_header(sheet, formats, headers, [20, 12, 16], len(frame))
    cells = frame[["hour", "reports", "delivered"]]
    for row, (hour, reports, delivered) in enumerate(
        cells.itertuples(index=False, name=None), start=1
    ):
        sheet.write_string(row, 0, str(hour))
        sheet.write_number(row, 1, int(reports), formats.count)
        sheet.write_number(row, 2, int(delivered), formats.count)
    if frame.empty:
        return
    chart = book.add_chart({"type": "line"})
    for col, name in ((1, words["reports"]), (2, words["delivered_reports"])):
        chart.add_series(
            {
                "name": name,
                "categories": [sheet_name(HOUR_SHEET, lang), 1, 0, len(frame), 0],
                "values": [sheet_name(HOUR_SHEET, lang), 1, col, len(frame), col],
            }
        )
    chart.set_title({"name": words["chart_hours"]})
    chart.set_x_axis({"name": words["hour"]})
    chart.set_y_axis({"name": words["reports"]})
    sheet.insert_chart(1, 4, chart, {"x_scale": 1.4, "y_scale": 1.2})


def _table_header(
    sheet: Worksheet, formats: Formats, headers: list[str], widths: list[int], rows: int
) -> None:
    for col, width in enumerate(widths):
        sheet.set_column(col, col, width)
    for col, title in enumerate(headers):
        sheet.write_string(0, col, title, formats.header)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(rows, 1), len(headers) - 1)


def _write_value(sheet: Worksheet, row: int, col: int, value: Any, number_format: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = "" if value is None else str(value)
        if text:
            sheet.write_string(row, col, text)
    else:
        sheet.write_number(row, col, value, number_format)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _china(moment: datetime | None) -> str:
    return china_text(moment) if moment is not None else ""


def _reason(text: str, lang: str) -> str:
    return reason_zh(text) if lang == "zh" else text


def _setting(settings: dict[str, Any], key: str) -> str:
    """A setting by key, at the top of the snapshot or one section down."""
    if key in settings and settings[key] is not None:
        return str(settings[key])
    for section in settings.values():
        if isinstance(section, dict) and section.get(key) is not None:
            return str(section[key])
    return ""
