"""The result spreadsheet: `export_campaign` and `campaign export`, read back with openpyxl."""

from __future__ import annotations

import csv
import json
import os
import stat
import zipfile
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

import campaign.export as export_module
from campaign.cli import app
from campaign.errors import InputError, NotFoundError
from campaign.export import export_campaign
from campaign.store import open_store
from campaign.store.campaigns import create_campaign
from campaign.store.results import OUTCOMES, RESULT_COLUMNS
from campaign.zh import RESULT_COLUMNS_ZH
from tests.support.plans import (
    COLUMNS,
    campaign_without_rows,
    contact_file,
    every_outcome_campaign,
    plan_of,
    planned_campaign,
)

runner = CliRunner()
HEADERS = [*COLUMNS, *RESULT_COLUMNS]
EXPECTED_OUTCOMES = [
    "delivered", "failed", "pending", "rejected", "unknown", "unsent",
    "invalid", "duplicate", "suppressed", "unsent",
]  # fmt: skip
SOURCE_ROWS = [*range(2, 10), 2, 3]  # rows 1-8 in contacts.xlsx, 9-10 in more.csv


@pytest.fixture
def sqlite_engine(sqlite_url):
    engine = open_store(sqlite_url)
    yield engine
    engine.dispose()


def read_sheets(path: Path) -> dict[str, list[list]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return {
            sheet.title: [list(row) for row in sheet.iter_rows(values_only=True)]
            for sheet in book.worksheets
        }
    finally:
        book.close()


def results_rows(sheets: dict[str, list[list]]) -> list[list]:
    """Data rows of results, results_2, ... in order (each sheet's header checked and dropped)."""
    names = sorted((n for n in sheets if n.startswith("results")), key=lambda n: (len(n), n))
    rows: list[list] = []
    for name in names:
        assert sheets[name][0] == HEADERS, name
        rows += sheets[name][1:]
    return rows


def col(name: str) -> int:
    return HEADERS.index(name)


def test_xlsx_has_every_row_and_outcome_in_input_order(engine, tmp_path):
    cid = every_outcome_campaign(engine)
    out = tmp_path / "out" / "results.xlsx"
    out.parent.mkdir()
    summary = export_campaign(engine, cid, out)
    assert summary.rows == 10 and summary.path == out
    assert summary.outcomes == {o: EXPECTED_OUTCOMES.count(o) for o in OUTCOMES}
    sheets = read_sheets(out)
    assert list(sheets)[:2] == ["results", "summary"]
    assert {"by status", "by carrier", "by source", "by hour"} <= set(sheets)
    rows = results_rows(sheets)
    assert len(rows) == 10
    assert [r[col("outcome")] for r in rows] == EXPECTED_OUTCOMES
    assert [r[col("source_row")] for r in rows] == SOURCE_ROWS
    assert all(r[col("reason")] for r in rows if r[col("outcome")] != "delivered")
    assert rows[1][col("dlr_status")] == "UNDELIV"
    assert rows[0][col("report_time")] == "2026-11-25T10:05:00+08:00"
    assert os.listdir(out.parent) == ["results.xlsx"]  # no temporary file left
    umask = os.umask(0o22)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_formula_looking_text_and_identifiers_stay_text(sqlite_engine, tmp_path):
    cid = every_outcome_campaign(sqlite_engine)
    out = tmp_path / "r.xlsx"
    export_campaign(sqlite_engine, cid, out)
    book = openpyxl.load_workbook(out)
    try:
        sheet = book["results"]
        names = [sheet.cell(row=r, column=1) for r in range(2, 6)]
        assert [c.value for c in names] == ["=SUM(A1)", "+86 luck", "@x", "-1"]
        assert all(c.data_type == "s" for c in names)
        assert sheet.cell(row=11, column=3).value == "-1"  # 孙八's note
        for name in ("phone", "normalized_mobile", "msgid", "batch_id", "submit_code"):
            cell = sheet.cell(row=2, column=col(name) + 1)
            assert cell.data_type == "s" and isinstance(cell.value, str), name
        assert sheet.cell(row=2, column=col("normalized_mobile") + 1).value == "13800000001"
        assert sheet.cell(row=2, column=col("source_row") + 1).data_type == "n"
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref == "A1:Q11"
    finally:
        book.close()


def test_summary_sheet_figures_and_charts(sqlite_engine, tmp_path):
    cid = every_outcome_campaign(sqlite_engine)
    out = tmp_path / "r.xlsx"
    export_campaign(sqlite_engine, cid, out)
    summary = {row[0]: row[1:] for row in read_sheets(out)["summary"] if row and row[0]}
    assert summary["Name"][0] == "spring sale"
    assert summary["Signature"][0] == "【品牌】"
    assert summary["Input rows"][0] == 10
    assert list(summary["unsent"][:2]) == [2, 0.2]
    assert summary["Total"][0] == 10
    assert summary["Billed segments (accepted)"][0] == 3
    assert summary["Delivery rate (of accepted)"][0] == pytest.approx(1 / 3)
    assert summary["Reports matching no recipient of this campaign"][0] == 1
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert "xl/charts/chart1.xml" in names and "xl/charts/chart2.xml" in names
        styles = archive.read("xl/styles.xml").decode()
        assert "0.0%" in styles  # rates are shown as percentages
    by_status = read_sheets(out)["by status"]
    assert [r[0] for r in by_status[1:]] == ["DELIVRD", "UNDELIV"]
    by_carrier = {r[0]: r for r in read_sheets(out)["by carrier"][1:]}
    assert by_carrier["China Mobile"][1] == 6


def test_store_password_is_masked_in_the_summary(sqlite_engine, tmp_path, monkeypatch):
    cid = every_outcome_campaign(sqlite_engine)
    monkeypatch.setattr(
        export_module, "_store_url", lambda engine: "postgresql+psycopg://u:s3cret@db/x"
    )
    out = tmp_path / "r.xlsx"
    export_campaign(sqlite_engine, cid, out)
    with zipfile.ZipFile(out) as archive:
        text = b"".join(archive.read(n) for n in archive.namelist())
    assert b"s3cret" not in text
    assert b"postgresql+psycopg://u:***@db/x" in text


def test_csv_is_utf8_with_bom_and_neutralised(sqlite_engine, tmp_path):
    cid = every_outcome_campaign(sqlite_engine)
    out = tmp_path / "r.csv"
    summary = export_campaign(sqlite_engine, cid, out)
    assert summary.rows == 10 and summary.sheets == []
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    with out.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == HEADERS
    assert len(rows) == 11
    assert [r[0] for r in rows[1:5]] == ["'=SUM(A1)", "'+86 luck", "'@x", "'-1"]
    assert rows[10][2] == "'-1"
    assert rows[5][0] == "张三"
    assert [r[col("outcome")] for r in rows[1:]] == EXPECTED_OUTCOMES
    assert rows[1][col("normalized_mobile")] == "13800000001"


def test_chinese_reasons_and_labels(sqlite_engine, tmp_path):
    cid = every_outcome_campaign(sqlite_engine)
    out = tmp_path / "r.xlsx"
    summary = export_campaign(sqlite_engine, cid, out, lang="zh")
    assert summary.sheets == ["结果", "汇总", "按回执状态", "按运营商", "按来源文件", "按小时"]
    assert summary.outcomes["pending"] == 1  # the JSON keys stay SPEC's outcome names
    sheets = read_sheets(out)
    header, *rows = sheets["结果"]
    assert header[len(COLUMNS) :] == [RESULT_COLUMNS_ZH[name] for name in RESULT_COLUMNS]
    assert rows[2][col("outcome")] == "等待回执"
    assert rows[2][col("reason")] == "网关已接收，尚无状态报告"
    assert rows[0][col("dlr_description")] == "成功"
    assert rows[0][col("carrier")] == "中国移动"
    assert any(row and row[0] == "送达率（占已接收）" for row in sheets["汇总"])


@pytest.mark.parametrize("fast", [True, False])
def test_more_rows_than_a_sheet_holds_continue_on_the_next(sqlite_engine, tmp_path, fast):
    cid = every_outcome_campaign(sqlite_engine)
    out = tmp_path / "r.xlsx"
    summary = export_campaign(
        sqlite_engine, cid, out, max_rows_per_sheet=4, chunk_rows=3, fast=fast
    )
    assert summary.sheets[:3] == ["results", "results_2", "results_3"]
    sheets = read_sheets(out)
    assert [len(sheets[n]) for n in ("results", "results_2", "results_3")] == [5, 5, 3]
    rows = results_rows(sheets)
    assert [r[col("outcome")] for r in rows] == EXPECTED_OUTCOMES
    assert [r[col("source_row")] for r in rows] == SOURCE_ROWS


def test_row_xml_writer_matches_the_cell_api(sqlite_engine, tmp_path):
    tricky = [
        "a & b < c > d",
        "  leading and trailing  ",
        "bell\x07tab\tnewline\nend",
        "_x0041_ literal",
        "<r><t>rich?</t></r>",
        "\"quoted\" 'single'",
        "emoji 😀 and 中文",
        '=HYPERLINK("http://x")',
        "",
    ]
    same = " x & <y> \x07 _x0041_ =1 "  # one value in every row: a shared string
    rows = [[t, f"138{i:08d}", same] for i, t in enumerate(tricky)]
    path = contact_file(tmp_path / "list.csv", ["text", "phone", "same"], rows)
    cid = planned_campaign(sqlite_engine, [path], "{text}")  # the texts are messages too
    fast, slow = tmp_path / "fast.xlsx", tmp_path / "slow.xlsx"
    export_campaign(sqlite_engine, cid, fast, fast=True)
    export_campaign(sqlite_engine, cid, slow, fast=False)
    fast_rows, slow_rows = read_sheets(fast)["results"], read_sheets(slow)["results"]
    # identical values in every cell, except xlsxwriter's own handling of "<r>...</r>"
    for fast_row, slow_row, text in zip(fast_rows[1:], slow_rows[1:], tricky, strict=True):
        if text.startswith("<r>"):
            assert fast_row[0] == text
            continue
        assert fast_row[:2] == slow_row[:2] and fast_row[3:] == slow_row[3:]
    plain = [0, 1, 5, 6, 7, 8]  # openpyxl leaves Excel's _xHHHH_ escapes as they are
    assert [fast_rows[1 + i][0] for i in plain] == [tricky[i] or None for i in plain]
    # the repeated value is a shared string, escaped by xlsxwriter as Excel wants it
    # (openpyxl decodes Excel's _xHHHH_ escapes in shared strings, not in inline ones)
    with zipfile.ZipFile(fast) as archive:
        shared = archive.read("xl/sharedStrings.xml").decode()
    assert '<t xml:space="preserve"> x &amp; &lt;y&gt; _x0007_ _x005F_x0041_ =1 </t>' in shared


def test_empty_campaign_exports_the_header(sqlite_engine, tmp_path):
    cid = campaign_without_rows(sqlite_engine, COLUMNS)
    out = tmp_path / "r.xlsx"
    summary = export_campaign(sqlite_engine, cid, out)
    assert summary.rows == 0 and summary.outcomes == dict.fromkeys(OUTCOMES, 0)
    assert read_sheets(out)["results"] == [HEADERS]
    export_campaign(sqlite_engine, cid, tmp_path / "r.csv")
    with (tmp_path / "r.csv").open(encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle)) == [HEADERS]


def test_failure_mid_write_leaves_no_file(sqlite_engine, tmp_path, monkeypatch):
    cid = every_outcome_campaign(sqlite_engine)
    real = export_module.iter_results

    def broken(*args, **kwargs):
        chunks = real(*args, **kwargs)
        yield next(chunks)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(export_module, "iter_results", broken)
    folder = tmp_path / "out"
    folder.mkdir()
    for name in ("r.xlsx", "r.csv"):
        with pytest.raises(RuntimeError, match="disk on fire"):
            export_campaign(sqlite_engine, cid, folder / name, chunk_rows=2)
    assert os.listdir(folder) == []


def test_an_existing_file_is_replaced_whole(sqlite_engine, tmp_path):
    cid = every_outcome_campaign(sqlite_engine)
    out = tmp_path / "r.csv"
    out.write_text("old content")
    export_campaign(sqlite_engine, cid, out)
    with out.open(encoding="utf-8-sig", newline="") as handle:
        assert next(csv.reader(handle)) == HEADERS


def test_bad_targets_are_input_errors(sqlite_engine, tmp_path):
    cid = every_outcome_campaign(sqlite_engine)
    with pytest.raises(InputError, match=r"unsupported extension; use \.xlsx or \.csv"):
        export_campaign(sqlite_engine, cid, tmp_path / "r.txt")
    with pytest.raises(InputError, match="does not exist"):
        export_campaign(sqlite_engine, cid, tmp_path / "missing" / "r.xlsx")
    with pytest.raises(InputError, match="is a folder"):
        (tmp_path / "d.xlsx").mkdir()
        export_campaign(sqlite_engine, cid, tmp_path / "d.xlsx")
    with pytest.raises(NotFoundError):
        export_campaign(sqlite_engine, 999, tmp_path / "r.xlsx")


# ---------------------------------------------------------------- the command


def _cli(*args: str):
    return runner.invoke(app, ["export", *args])


def test_cli_writes_the_file_and_prints_json(store_url, tmp_path):
    engine = open_store(store_url)
    try:
        every_outcome_campaign(engine, name="spring sale")
    finally:
        engine.dispose()
    out = tmp_path / "r.xlsx"
    result = _cli("spring sale", "-o", str(out), "--db", store_url, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["path"] == str(out) and data["rows"] == 10
    assert data["outcomes"]["unsent"] == 2 and set(data["outcomes"]) == set(OUTCOMES)
    assert out.exists()
    plain = _cli("1", "--out", str(tmp_path / "r.csv"), "--db", store_url, "--lang", "zh")
    assert plain.exit_code == 0, plain.output
    assert str(tmp_path / "r.csv") in plain.stdout
    assert "10 rows" in plain.stdout and "delivered 1" in plain.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999", "-o", "{tmp}/r.xlsx"], "no campaign '999'"),
        (["1", "-o", "{tmp}/r.pdf"], "unsupported extension; use .xlsx or .csv"),
        (["1", "-o", "{tmp}/missing/r.xlsx"], "does not exist"),
    ],
)
def test_cli_bad_input_exits_3(sqlite_url, tmp_path, args, message):
    engine = open_store(sqlite_url)
    try:
        every_outcome_campaign(engine)
    finally:
        engine.dispose()
    result = _cli(*[a.format(tmp=tmp_path) for a in args], "--db", sqlite_url)
    assert result.exit_code == 3, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_cli_read_only_folder_exits_3(sqlite_url, tmp_path, monkeypatch):
    engine = open_store(sqlite_url)
    try:
        every_outcome_campaign(engine)
    finally:
        engine.dispose()
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(folder, os.W_OK):  # root writes anywhere: make the folder refuse instead

        def refuse(out):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(export_module, "reserve_partial", refuse)
    try:
        result = _cli("1", "-o", str(folder / "r.xlsx"), "--db", sqlite_url)
    finally:
        folder.chmod(stat.S_IRWXU)
    assert result.exit_code == 3, result.output
    assert "cannot write to the folder" in result.stderr
    assert "Permission denied" in result.stderr
    assert os.listdir(folder) == []


def test_cli_unknown_lang_is_a_usage_error(sqlite_url, tmp_path):
    result = _cli("1", "-o", str(tmp_path / "r.xlsx"), "--lang", "fr", "--db", sqlite_url)
    assert result.exit_code == 2


def test_export_of_a_stored_ready_campaign_without_batches(sqlite_engine, tmp_path):
    cid = create_campaign(
        sqlite_engine, plan_of(["13800000001"]), name="planned", settings_snapshot={}
    )
    out = tmp_path / "r.xlsx"
    export_campaign(sqlite_engine, cid, out)
    rows = read_sheets(out)["results"]
    assert rows[1][1 + RESULT_COLUMNS.index("outcome")] == "unsent"
    assert rows[1][1 + RESULT_COLUMNS.index("reason")] == "not sent yet"


def test_streamed_tally_matches_the_store_queries(engine):
    from campaign.export_summary import ResultTally
    from campaign.result_rows import iter_results
    from campaign.store.breakdowns import outcome_breakdown
    from campaign.store.results import (
        outcome_counts,
        report_status_counts,
        segment_totals,
    )

    cid = every_outcome_campaign(engine)
    tally = ResultTally(len(COLUMNS))
    for chunk in iter_results(engine, cid, chunk_rows=3):
        tally.add(chunk)
    assert tally.outcome_counts() == outcome_counts(engine, cid)
    assert tally.status_counts() == report_status_counts(engine, cid)
    totals = segment_totals(engine, cid)
    assert (tally.billed_segments, tally.planned_segments, tally.accepted_rows) == (
        totals.billed,
        totals.planned,
        totals.accepted_rows,
    )
    for by in ("carrier", "source"):
        assert tally.breakdown(by).equals(outcome_breakdown(engine, cid, by)), by


def test_tally_of_arrow_chunks_equals_the_frame_tally(engine):
    import pandas as pd

    from campaign.export_summary import ResultTally
    from campaign.result_rows import iter_results

    cid = every_outcome_campaign(engine)
    frames, tables = ResultTally(len(COLUMNS)), ResultTally(len(COLUMNS))
    for chunk in iter_results(engine, cid, chunk_rows=3):
        frames.add(chunk)
    for table in iter_results(engine, cid, chunk_rows=3, arrow=True):
        tables.add(table)
    assert tables.rows == frames.rows == 10
    assert tables.outcome_counts() == frames.outcome_counts()
    assert tables.status_counts() == frames.status_counts()
    assert (tables.billed_segments, tables.planned_segments, tables.accepted_rows) == (
        frames.billed_segments,
        frames.planned_segments,
        frames.accepted_rows,
    )
    for by in ("carrier", "source"):
        pd.testing.assert_frame_equal(tables.breakdown(by), frames.breakdown(by))


def test_end_to_end_with_the_real_pipeline_writers(store_url, tmp_path):
    """Contacts file -> plan -> stored campaign -> batch results -> reports -> spreadsheet."""
    from campaign.contacts import read_contacts
    from campaign.plan import PlanOptions, make_plan
    from campaign.report_times import parse_report_time
    from campaign.store.batches import BatchResult, claim_batches, record_results
    from campaign.store.campaigns import create_campaign
    from campaign.store.reports import insert_reports

    contacts = tmp_path / "vip.csv"
    contacts.write_text(
        "姓名,手机号码\n=SUM(A1),13800000001\n张三,13900000002\n李四,12345\n"
        "王五,13800000001\n赵六,13700000003\n",
        encoding="utf-8",
    )
    plan = make_plan(
        read_contacts([contacts]),
        "{姓名}您好，会员日快乐",
        PlanOptions(signature="【品牌】", optout_text="回T退订", max_batch=2),
    )
    engine = open_store(store_url)
    try:
        cid = create_campaign(engine, plan, name="e2e", settings_snapshot={})
        claimed = {b.mobiles[0]: b.batch_id for b in claim_batches(engine, cid, "w1", 10)}
        assert len(claimed) == 3  # one text per row: one request each
        record_results(
            engine,
            cid,
            "w1",
            [
                BatchResult(claimed["13800000001"], "accepted", msgid="9001", submit_code="0"),
                BatchResult(claimed["13900000002"], "accepted", msgid="9002", submit_code="0"),
                BatchResult(claimed["13700000003"], "rejected", submit_code="107"),
            ],
        )
        at = parse_report_time
        with engine.begin() as conn:
            insert_reports(
                conn,
                [
                    ("9001", "13800000001", "DELIVRD", at("2611251003"), None, "push"),
                    ("9002", "13900000002", "MBBLACK", at("2611251004"), None, "push"),
                ],
            )
        out = tmp_path / "e2e.xlsx"
        summary = export_campaign(engine, cid, out)
    finally:
        engine.dispose()
    rows = read_sheets(out)["results"]
    header, data = rows[0], rows[1:]
    assert header == ["姓名", "手机号码", *RESULT_COLUMNS]
    outcome = [r[2 + RESULT_COLUMNS.index("outcome")] for r in data]
    assert outcome == ["delivered", "failed", "invalid", "duplicate", "rejected"]
    assert summary.outcomes["delivered"] == 1 and summary.rows == 5
    assert data[0][0] == "=SUM(A1)"
    assert data[0][2 + RESULT_COLUMNS.index("report_time")] == "2026-11-25T10:03:00+08:00"
    assert data[1][2 + RESULT_COLUMNS.index("dlr_status")] == "MBBLACK"
    assert data[0][2 + RESULT_COLUMNS.index("message")].startswith("【品牌】=SUM(A1)您好")
