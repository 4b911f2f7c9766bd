"""`campaign plan` through the CLI, on real generated .xlsx and .csv files."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.store import open_store
from campaign.store import suppression as sup
from campaign.store.results import RESULT_COLUMNS

runner = CliRunner()
HEADER = ["姓名", "手机号码", "城市", "积分"]
TEMPLATE = "{姓名|会员}您好，积分{积分}分，{城市|全国}门店可用"


pytestmark = pytest.mark.usefixtures("isolated_cli")  # empty folder, no campaign env


def write_xlsx(path: Path, rows: list[list[object]], title: str | None = None) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    if title:
        sheet.append([title])
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    for line in sheet.iter_rows():
        for cell in line:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text that looks like a formula, as users type it
    book.save(path)
    book.close()
    return path


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    lines = [",".join(HEADER), *(",".join(r) for r in rows)]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def plan_json(*args: str) -> dict:
    result = runner.invoke(app, ["plan", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_xlsx_with_title_row_and_numeric_cells(tmp_path):
    path = write_xlsx(
        tmp_path / "vip.xlsx",
        [
            ["张三", 13800138000, "北京", 100],  # numeric cells
            ["李四", "139 0013 9000", "", 250],
            [None, None, None, None],  # blank row
            ["王五", 12345, "上海", 10],  # invalid
            ["张三", 13800138000, "北京", 100],  # duplicate
        ],
        title="2024年VIP客户名单",
    )
    summary = plan_json(str(path), "--text", TEMPLATE)
    assert summary["rows"] == 4
    assert summary["blank_rows"] == 1
    assert summary["outcomes"] == {
        "ready": 2,
        "invalid": 1,
        "duplicate": 1,
        "suppressed": 0,
        "capped": 0,
        "unsent": 0,
    }
    assert summary["recipients"] == 2
    assert summary["requests"] == 2
    assert summary["segments"] == 2
    assert summary["files"] == [{"source": "vip.xlsx:Sheet1", "rows": 4, "blank_rows": 1}]


def test_gbk_csv_and_template_file(tmp_path):
    path = write_csv(
        tmp_path / "gbk.csv",
        [["赵六", "13700137000", "广州", "5"], ["钱七", "13600136000", "广州", "5"]],
        encoding="gbk",
    )
    (tmp_path / "t.txt").write_text("{城市}门店积分{积分}分\n", encoding="utf-8")
    summary = plan_json(str(path), "-t", "t.txt")
    assert summary["recipients"] == 2
    assert summary["requests"] == 1  # the same text: one request
    assert summary["largest_batch"] == 2


def test_human_summary_on_stdout(tmp_path):
    path = write_csv(tmp_path / "c.csv", [["甲", "13800138000", "", "1"], ["乙", "x", "", "1"]])
    result = runner.invoke(app, ["plan", str(path), "--text", TEMPLATE])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "c.csv: 2 rows" in out
    assert "invalid     1" in out
    assert "1 contains letters" in out  # the most frequent reasons follow the count
    assert "recipients: 1" in out
    assert "billed segments: 1" in out
    assert "largest batch: 1" in out


def test_settings_from_config(tmp_path):
    path = write_csv(
        tmp_path / "c.csv", [["代开发票", "13800138000", "", "1"], ["乙", "13900139000", "", "2"]]
    )
    (tmp_path / "words.txt").write_text("发票\n", encoding="utf-8")
    config = tmp_path / "campaign.toml"
    config.write_text(
        '[gateway]\nmax_batch = 1\n[compliance]\nsignature = "【品牌】"\n'
        'optout_text = "回T退订"\nsensitive_words = "words.txt"\n',
        encoding="utf-8",
    )
    out = tmp_path / "p.csv"
    args = [str(path), "--text", "{姓名}您好", "--config", str(config), "--out", str(out)]
    summary = plan_json(*args)
    assert summary["outcomes"]["invalid"] == 1
    assert summary["recipients"] == 1
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert "message contains the sensitive word 发票" in lines[1]
    assert "【品牌】乙您好回T退订" in lines[2]
    result = runner.invoke(app, ["plan", str(path), "--text", "代开发票", "--config", str(config)])
    assert result.exit_code == 3
    assert "no valid recipients: all 2 rows are invalid" in result.stderr
    assert "sensitive word 发票" in result.stderr


def test_preview_xlsx_read_back(tmp_path):
    path = write_xlsx(
        tmp_path / "c.xlsx",
        [
            ["=HYPERLINK(1)", 13800138000, "北京", "007"],
            ["李四", "abc", "", "1"],
            ["王五", 13900139000, "", None],
        ],
    )
    out = tmp_path / "plan.xlsx"
    result = runner.invoke(app, ["plan", str(path), "--text", "{姓名}:{积分}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out, read_only=True)
    try:
        rows = list(book["plan"].iter_rows(values_only=True))
    finally:
        book.close()
    assert list(rows[0]) == [*HEADER, *RESULT_COLUMNS]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["姓名"] == "=HYPERLINK(1)"  # text, not a formula
    assert first["积分"] == "007"  # text, not a number
    assert first["source"] == "c.xlsx:Sheet1"
    assert first["source_row"] == 2
    assert first["normalized_mobile"] == "13800138000"
    assert first["carrier"] == "China Mobile"
    assert first["outcome"] == "ready"
    assert first["message"] == "=HYPERLINK(1):007"
    assert first["segments"] == 1
    assert first["batch_id"] == "b000001"
    assert first["msgid"] is None
    second = dict(zip(rows[0], rows[2], strict=True))
    assert second["outcome"] == "invalid"
    assert second["reason"]
    third = dict(zip(rows[0], rows[3], strict=True))
    assert third["reason"] == "empty value in column 积分"
    assert len(rows) == 4


def test_preview_csv(tmp_path):
    path = write_csv(
        tmp_path / "c.csv", [["甲", "13800138000", "", "1"], ["=1+1", "13900139000", "", "2"]]
    )
    out = tmp_path / "plan.csv"
    result = runner.invoke(app, ["plan", str(path), "--text", "hi", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8-sig").splitlines()
    assert text[0] == ",".join([*HEADER, *RESULT_COLUMNS])
    assert text[2].startswith("'=1+1,13900139000,")
    assert text[1].startswith(
        "甲,13800138000,,1,c.csv,2,13800138000,China Mobile,ready,,hi,1,b000001"
    )


def test_suppression_list_is_read_and_nothing_is_written(tmp_path):
    path = write_csv(
        tmp_path / "c.csv", [["甲", "13800138000", "", "1"], ["乙", "13900139000", "", "1"]]
    )
    summary = plan_json(str(path), "--text", "hi")
    assert summary["outcomes"]["suppressed"] == 0
    assert not (tmp_path / "campaign.db").exists()  # no store file created
    store = tmp_path / "store.db"
    engine = open_store(f"sqlite:///{store}")
    sup.add(engine, ["13900139000"], "manual")
    engine.dispose()
    before = store.read_bytes()
    summary = plan_json(str(path), "--text", "hi", "--db", f"sqlite:///{store}")
    assert summary["outcomes"]["suppressed"] == 1
    assert summary["recipients"] == 1
    assert store.read_bytes() == before


def test_suppression_from_postgres(tmp_path, pg_url):
    engine = open_store(pg_url)
    sup.add(engine, ["13800138000"], "manual")
    engine.dispose()
    path = write_csv(
        tmp_path / "c.csv", [["甲", "13800138000", "", "1"], ["乙", "13900139000", "", "1"]]
    )
    summary = plan_json(str(path), "--text", "hi", "--db", pg_url)
    assert summary["outcomes"]["suppressed"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "--text", "hi"], "missing.csv"),
        (["c.csv", "--text", "{会员等级}您好"], "columns available: 姓名, 手机号码, 城市, 积分"),
        (["c.csv", "--text", "{姓名您好"], "position 1"),
        (
            ["c.csv", "-t", "tpl.txt"],
            "no template file tpl.txt; to give the text itself use --text",
        ),
        (["c.csv", "--text", "{积分}"], "no valid recipients"),
        (["c.csv", "--text", "hi", "--mobile-column", "电话"], "电话"),
        (["nomobile.csv", "--text", "hi"], "mobile"),
    ],
)
def test_bad_input_exits_3_with_a_clear_message(tmp_path, args, message):
    write_csv(tmp_path / "c.csv", [["甲", "13800138000", "", ""], ["乙", "12", "", "1"]])
    (tmp_path / "nomobile.csv").write_text("姓名,城市\n甲,北京\n", encoding="utf-8")
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 3, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_json_is_the_only_stdout(tmp_path):
    path = write_csv(tmp_path / "c.csv", [["甲", "13800138000", "", "1"]])
    out = tmp_path / "p.xlsx"
    result = runner.invoke(app, ["plan", str(path), "--text", "hi", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("rows", "outcomes", "recipients", "requests", "segments", "files"):
        assert key in data
    assert out.exists()


def test_preview_of_several_files(tmp_path):
    first = write_csv(
        tmp_path / "a.csv", [[f"甲{i}", f"1380000{i:04d}", "", "1"] for i in range(300)]
    )
    second = write_xlsx(tmp_path / "b.xlsx", [["乙", 13900139000, "北京", 2]])
    out = tmp_path / "plan.xlsx"
    result = runner.invoke(
        app, ["plan", str(first), str(second), "--text", "hi", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out, read_only=True)
    try:
        rows = list(book["plan"].iter_rows(values_only=True))
    finally:
        book.close()
    assert len(rows) == 302
    assert rows[-1][:4] == ("乙", "13900139000", "北京", "2")
    assert rows[-1][4:6] == ("b.xlsx:Sheet1", 2)
    assert rows[1][4:6] == ("a.csv", 2)


def test_sheet_and_header_row_options(tmp_path):
    book = openpyxl.Workbook()
    book.active.title = "说明"
    book.active.append(["这一页不是名单"])
    sheet = book.create_sheet("名单")
    sheet.append(["导出时间", "2024-11-01"])
    sheet.append(["备注", "VIP"])
    sheet.append(HEADER)
    sheet.append(["甲", 13800138000, "北京", 1])
    book.save(tmp_path / "two.xlsx")
    book.close()
    args = [str(tmp_path / "two.xlsx"), "--text", "{姓名}", "--sheet", "名单", "--header-row", "3"]
    summary = plan_json(*args)
    assert summary["recipients"] == 1
    assert summary["files"][0]["source"] == "two.xlsx:名单"
    result = runner.invoke(
        app, ["plan", str(tmp_path / "two.xlsx"), "--text", "hi", "--sheet", "无"]
    )
    assert result.exit_code == 3
    assert "无" in result.stderr


def test_out_naming_the_contact_file_is_refused_and_the_file_kept(tmp_path):
    path = write_csv(tmp_path / "c.csv", [["甲", "13800138000", "", "1"]])
    before = path.read_bytes()
    result = runner.invoke(app, ["plan", "c.csv", "--text", "hi", "--out", str(path)])
    assert result.exit_code == 3, result.output
    assert "is the contact file c.csv itself" in result.stderr
    assert path.read_bytes() == before
