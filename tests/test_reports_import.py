"""`campaign reports import`: real CSV and XLSX files into real stores, through the CLI."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import xlsxwriter
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import Settings
from campaign.receiver import Receiver
from campaign.reports import import_report_files
from campaign.store import open_store
from campaign.store.schema import reports, suppression
from tests.support.plans import accepted_batch

runner = CliRunner()
LONG_MSGID = "202611251002123456789"  # would lose digits as a float

HEADER = "msgid,mobile,status,reportTime\n"
ROWS = [
    f"{LONG_MSGID},13900210021,DELIVRD,2611251002",
    f"{LONG_MSGID},13900210022,MBBLACK,2026-11-25 10:03:00",
    "12x,13900210023,DELIVRD,2611251002",  # row 4: bad msgid
    f"{LONG_MSGID},13900210024,,2611251002",  # row 5: no status
    "",  # row 6: blank, not a report
    f"{LONG_MSGID},not-a-number,DELIVRD,2611251002",  # row 7
    f"{LONG_MSGID},13900210025,DELIVRD,2026-02-30 10:00",  # row 8: impossible time
    f"{LONG_MSGID},+86 139 0021 0026,UNDELIV,2026/11/25 10:04",
    f"{LONG_MSGID},13900210021,DELIVRD,20261125100200",  # the first report again
]


def _csv(tmp_path: Path, name: str = "reports.csv", encoding: str = "utf-8", header=HEADER):
    path = tmp_path / name
    path.write_bytes((header + "\n".join(ROWS) + "\n").encode(encoding))
    return path


def _import(db: str, *files: Path, extra: tuple[str, ...] = ()) -> tuple[int, dict | str]:
    result = runner.invoke(
        app, ["reports", "import", *map(str, files), "--db", db, "--json", *extra]
    )
    if result.exit_code != 0:
        return result.exit_code, result.output
    return 0, json.loads(result.stdout)


def _stored(db: str) -> list[dict]:
    engine = open_store(db)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(reports).order_by("id"))]
    finally:
        engine.dispose()


def test_csv_import_counts_and_is_idempotent(tmp_path, store_url):
    path = _csv(tmp_path)
    code, first = _import(store_url, path)
    assert code == 0
    assert first == {
        "files": [
            {"source": "reports.csv", "imported": 3, "repeated": 1, "malformed": 4,
             "unmatched": 4}
        ]
    }  # fmt: skip
    stored = _stored(store_url)
    assert {r["msgid"] for r in stored} == {LONG_MSGID}
    assert {r["mobile"] for r in stored} == {"13900210021", "13900210022", "13900210026"}
    assert {r["origin"] for r in stored} == {"reports.csv"}
    assert "2026-11-25T10:04:00+08:00" in {r["report_time"] for r in stored}
    code, second = _import(store_url, path)
    assert code == 0
    assert second["files"][0] == {
        "source": "reports.csv", "imported": 0, "repeated": 4, "malformed": 4, "unmatched": 4
    }  # fmt: skip
    assert len(_stored(store_url)) == 3


def test_human_output_names_malformed_rows(tmp_path, sqlite_url):
    result = runner.invoke(app, ["reports", "import", str(_csv(tmp_path)), "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "reports.csv: 3 imported, 1 repeated, 4 malformed, 4 unmatched" in out
    for row, reason in ((4, "msgid"), (5, "status"), (7, "mobile"), (8, "time")):
        assert f"row {row}: {reason}" in out
    assert "row 6" not in out


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk"])
def test_chinese_headers_in_bom_and_gbk_files(tmp_path, sqlite_url, encoding):
    header = "消息ID,手机号码,状态,状态报告时间\n"
    path = _csv(tmp_path, "回执.csv", encoding, header)
    code, summary = _import(sqlite_url, path)
    assert code == 0, summary
    assert summary["files"][0]["imported"] == 3


def test_title_row_and_other_header_spellings(tmp_path, sqlite_url):
    path = tmp_path / "export.csv"
    path.write_text(
        "状态报告导出 2026-11-25\n"
        "序号,消息编号,手机号,状态码,时间,备注\n"
        f"1,{LONG_MSGID},13900210021,DELIVRD,2026-11-25 10:02,\n"
        f"2,{LONG_MSGID},13900210022,ID:0101,2026-11-25 10:02,x\n",
        encoding="utf-8",
    )
    code, summary = _import(sqlite_url, path)
    assert code == 0, summary
    assert summary["files"][0]["imported"] == 2


def test_specific_headers_win_over_generic_ones(tmp_path, sqlite_url):
    """A platform export with a submit 时间 and a 状态 in words beside the report's own
    columns: the report time and the status code are taken, wherever they stand."""
    path = tmp_path / "平台导出.csv"
    path.write_text(
        "消息ID,手机号码,时间,状态,状态码,状态报告时间\n"
        f"{LONG_MSGID},13900210021,2026-11-25 09:00,成功,DELIVRD,2026-11-25 10:02\n"
        f"{LONG_MSGID},13900210022,2026-11-25 09:00,失败,UNDELIV,2026-11-25 10:03\n",
        encoding="utf-8",
    )
    code, summary = _import(sqlite_url, path)
    assert code == 0, summary
    assert summary["files"][0]["imported"] == 2
    assert [(r["status"], r["report_time"]) for r in _stored(sqlite_url)] == [
        ("DELIVRD", "2026-11-25T10:02:00+08:00"),
        ("UNDELIV", "2026-11-25T10:03:00+08:00"),
    ]


def _xlsx(path: Path) -> Path:
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("回执")
    when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    sheet.write_row(0, 0, ["MsgID", "Mobile", "Status", "Report_Time"])
    sheet.write_string(1, 0, LONG_MSGID)
    sheet.write_number(1, 1, 13900210021)
    sheet.write_string(1, 2, "DELIVRD")
    sheet.write_datetime(1, 3, datetime(2026, 11, 25, 10, 2), when)
    sheet.write_number(2, 0, 1234567890100)
    sheet.write_string(2, 1, "13900210022")
    sheet.write_string(2, 2, "DB:0141")
    sheet.write_string(2, 3, "2611251003")
    sheet.write_row(3, 0, [LONG_MSGID, "13900210023", "DELIVRD", "not a time"])
    workbook.close()
    return path


def test_xlsx_import_with_date_cells_twice(tmp_path, store_url):
    path = _xlsx(tmp_path / "reports.xlsx")
    code, first = _import(store_url, path)
    assert code == 0, first
    assert first["files"][0] == {
        "source": "reports.xlsx", "imported": 2, "repeated": 0, "malformed": 1, "unmatched": 2
    }  # fmt: skip
    stored = _stored(store_url)
    assert {(r["msgid"], r["mobile"], r["report_time"]) for r in stored} == {
        (LONG_MSGID, "13900210021", "2026-11-25T10:02:00+08:00"),
        ("1234567890100", "13900210022", "2026-11-25T10:03:00+08:00"),
    }
    code, second = _import(store_url, path)
    assert code == 0
    assert (second["files"][0]["imported"], second["files"][0]["repeated"]) == (0, 2)


def test_an_imported_report_that_was_pushed_is_repeated(tmp_path, sqlite_url):
    settings = Settings(store_url=sqlite_url)
    with Receiver(settings) as rx:
        params = {"msgid": LONG_MSGID, "reportTime": "2611251002", "mobile": "13900210021",
                  "status": "DELIVRD"}  # fmt: skip
        assert httpx.get(rx.dlr_url, params=params).status_code == 200
    code, summary = _import(sqlite_url, _csv(tmp_path))
    assert code == 0
    assert (summary["files"][0]["imported"], summary["files"][0]["repeated"]) == (2, 2)


def test_unmatched_counts_against_recorded_batches(tmp_path, store_url):
    engine = open_store(store_url)
    try:
        accepted_batch(engine, LONG_MSGID, ["13900210021", "13900210022"])
        summaries = import_report_files(engine, [_csv(tmp_path)])
    finally:
        engine.dispose()
    assert summaries[0].unmatched == 1  # 13900210026 is in no batch of that msgid


def test_blacklist_statuses_suppressed_when_configured(tmp_path, sqlite_url):
    config = tmp_path / "campaign.toml"
    config.write_text("[receiver]\nsuppress_blacklisted = true\n", encoding="utf-8")
    code, _ = _import(sqlite_url, _csv(tmp_path), extra=("--config", str(config)))
    assert code == 0
    engine = open_store(sqlite_url)
    try:
        with engine.connect() as conn:
            listed = conn.execute(sa.select(suppression.c.mobile, suppression.c.reason)).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in listed] == [("13900210022", "blacklist status")]


def test_missing_file_is_exit_3_and_nothing_imported(tmp_path, sqlite_url):
    good = _csv(tmp_path)
    result = runner.invoke(
        app, ["reports", "import", str(good), str(tmp_path / "nope.csv"), "--db", sqlite_url]
    )
    assert result.exit_code == 3
    assert "nope.csv" in result.output and "not found" in result.output
    assert _stored(sqlite_url) == []


def test_file_without_report_columns_lists_the_columns_found(tmp_path, sqlite_url):
    path = tmp_path / "contacts.csv"
    path.write_text("name,phone\nWang,13900210021\n", encoding="utf-8")
    result = runner.invoke(app, ["reports", "import", str(path), "--db", sqlite_url])
    assert result.exit_code == 3
    assert "no recognisable report columns" in result.output
    assert "'name', 'phone'" in result.output
    partial = tmp_path / "partial.csv"
    partial.write_text("msgid,mobile,status\n1,13900210021,DELIVRD\n", encoding="utf-8")
    result = runner.invoke(app, ["reports", "import", str(partial), "--db", sqlite_url])
    assert result.exit_code == 3
    assert "no time column" in result.output


def test_unreadable_files_are_exit_3(tmp_path, sqlite_url):
    corrupt = tmp_path / "broken.xlsx"
    corrupt.write_bytes(b"PK\x03\x04 not really a workbook")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    for path in (corrupt, empty, tmp_path):
        result = runner.invoke(app, ["reports", "import", str(path), "--db", sqlite_url])
        assert result.exit_code == 3, result.output
        assert "Error:" in result.output
        assert "Traceback" not in result.output
        assert "contact" not in result.output


def test_import_in_several_transactions_counts_the_same(tmp_path, store_url, monkeypatch):
    monkeypatch.setattr("campaign.reports.IMPORT_CHUNK", 2)
    engine = open_store(store_url)
    try:
        (first,) = import_report_files(engine, [_csv(tmp_path)])
        (second,) = import_report_files(engine, [_csv(tmp_path)])
    finally:
        engine.dispose()
    assert (first.imported, first.repeated, first.malformed) == (3, 1, 4)
    assert (second.imported, second.repeated) == (0, 4)
    assert [row for row, _reason in first.malformed_rows] == [4, 5, 7, 8]


def test_reports_are_put_in_key_order_once_like_pandas_would():
    import pandas as pd

    from campaign import reports as module
    from campaign.store.reports import REPORT_KEY

    frame = pd.DataFrame(
        {
            "msgid": ["9", "10", "9", "10", "9"],
            "mobile": ["13900000002", "13900000001", "13900000001", "13900000001", "+85212345"],
            "status": ["失败", "DELIVRD", "UNDELIV", "DB:0107", "ÉCHEC"],
            "report_time": ["2026-11-25T10:02:00+08:00"] * 5,
            "raw_time": ["a", "b", "c", "d", "e"],
            "origin": ["f.csv"] * 5,
        },
        index=[4, 3, 2, 1, 0],
    )
    expected = frame.sort_values(list(REPORT_KEY), ignore_index=True)
    pd.testing.assert_frame_equal(module._in_key_order(frame), expected)
    assert module._in_key_order(frame.head(1)).index.tolist() == [0]
    assert module._in_key_order(frame.head(0)).empty
