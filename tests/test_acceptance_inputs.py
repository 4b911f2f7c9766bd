"""Acceptance audit of the input side, black-box: only the CLI, only what SPEC promises.

Messy real-world lists (workbooks written by openpyxl and by xlsxwriter, CSVs as Chinese
Excel and WPS save them), templates and compliance rules, suppression, and every way a
file can be unusable. Each test drives `campaign ...` through typer's CliRunner.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from typer.testing import CliRunner

from campaign.cli import app

runner = CliRunner()
RESULT_COLUMNS = [
    "source",
    "source_row",
    "normalized_mobile",
    "carrier",
    "outcome",
    "reason",
    "message",
    "segments",
    "batch_id",
    "msgid",
    "submit_code",
    "dlr_status",
    "dlr_description",
    "report_time",
]


pytestmark = pytest.mark.usefixtures("isolated_cli")  # empty folder, no campaign env


# --- helpers ----------------------------------------------------------------------------------


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def plan_json(*args: str) -> dict:
    result = cli("plan", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def bad_input(*args: str) -> str:
    """Runs a command that must refuse its input: exit 3, one `Error: ...`, no traceback."""
    result = cli(*args)
    assert result.exit_code == 3, (result.exit_code, result.output)
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def preview(*args: str) -> tuple[list[str], list[dict[str, object]]]:
    """`plan ... --out preview.xlsx`: (header, rows as {column: value}) of the preview."""
    out = Path("preview.xlsx")
    result = cli("plan", *args, "--out", out)
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out, read_only=True)
    rows = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    header = [str(h) for h in rows[0]]
    return header, [dict(zip(header, r, strict=False)) for r in rows[1:]]


def write_openpyxl(path: Path, sheets: dict[str, list[list[object]]], merge: str = "") -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        for line in sheet.iter_rows():
            for cell in line:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"  # text that looks like a formula, as users type it
        if merge and rows:
            sheet.merge_cells(merge)
    book.save(path)
    return path


def write_csv(path: Path, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def outcomes(summary: dict) -> dict[str, int]:
    return {k: v for k, v in summary["outcomes"].items() if v}


# --- workbooks ----------------------------------------------------------------------------------


def test_openpyxl_workbook_title_row_sheets_and_cell_kinds(tmp_path):
    """Merged title row, numeric/float/apostrophe mobiles, dates, 18-digit IDs, postcodes,
    space-only cells and blank rows in the middle; an empty sheet; a second sheet with another
    layout. Every non-blank row ends in exactly one outcome, original cells unchanged."""
    path = write_openpyxl(
        tmp_path / "客户.xlsx",
        {
            "VIP": [
                ["2024年VIP客户名单", None, None, None, None],
                ["姓名", "手机号码（必填）", "生日", "身份证号", "邮编"],
                ["张三", 13900210021, dt.datetime(1990, 3, 7), "110101199003071234", "010010"],
                ["李四", 13900210022.0, dt.date(1985, 12, 1), "11010119851201123X", "100000"],
                ["王五", "'13900210023", None, "440101200001011111", "020000"],
                [None, None, None, None, None],
                ["   ", "  ", None, None, None],
                ["赵六", "1.39002E+10", None, None, None],
                ["孙七", "139-0021-0024", None, None, None],
            ],
            "空": [],
            "其他": [
                ["编号", "客户名", "Mobile"],
                [1, "周八", "+86 139 0021 0025"],
                [2, "吴九", "１３９００２１００２１"],
            ],
        },
        merge="A1:E1",
    )
    header, rows = preview(path, "--text", "您好{姓名|客户}")
    assert header[:5] == ["姓名", "手机号码（必填）", "生日", "身份证号", "邮编"]
    assert header[-len(RESULT_COLUMNS) :] == RESULT_COLUMNS
    assert len(rows) == 7  # 5 + 2 data rows; the two blank rows are not input rows
    vip = [r for r in rows if str(r["source"]).endswith("VIP")]
    assert [r["source_row"] for r in vip] == [3, 4, 5, 8, 9]
    assert [r["身份证号"] for r in vip[:3]] == [
        "110101199003071234",
        "11010119851201123X",
        "440101200001011111",
    ]
    assert [r["邮编"] for r in vip[:3]] == ["010010", "100000", "020000"]
    assert str(vip[0]["生日"]).startswith("1990-03-07")
    assert [r["normalized_mobile"] for r in vip] == [
        "13900210021",
        "13900210022",
        "13900210023",
        None,
        "13900210024",
    ]
    assert [r["outcome"] for r in vip] == ["ready", "ready", "ready", "invalid", "ready"]
    other = [r for r in rows if str(r["source"]).endswith("其他")]
    assert [r["outcome"] for r in other] == ["ready", "duplicate"]
    assert [r["source_row"] for r in other] == [2, 3]
    duplicate_reason = str(other[1]["reason"])
    assert "VIP" in duplicate_reason and "3" in duplicate_reason  # names the earlier row

    summary = plan_json(path, "--text", "您好{姓名|客户}")
    assert summary["rows"] == 7
    assert summary["blank_rows"] == 2
    assert sum(summary["outcomes"].values()) == summary["rows"]
    assert outcomes(summary) == {"ready": 5, "invalid": 1, "duplicate": 1}


def test_xlsxwriter_workbook_formulas_with_cached_values_and_text_numbers(tmp_path):
    path = tmp_path / "wps.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("名单")
    sheet.merge_range("A1:D1", "十一月活动名单")
    sheet.write_row(1, 0, ["Name", "Mobile ", "订单号", "金额"])
    sheet.write_row(2, 0, ["Ann", 13900210021, "202411250000000001", 12.5])
    sheet.write_string(3, 0, "Bob")
    sheet.write_formula(3, 1, '=TEXT(13900210022,"0")', None, "13900210022")
    sheet.write_string(3, 2, "202411250000000002")
    sheet.write_formula(3, 3, "=2*3", None, 6)
    sheet.write_row(4, 0, ["Cy", "13900210023", 123456789012345678, 0])
    book.close()
    header, rows = preview(path, "--text", "Hi {Name}, order {订单号}")
    assert [h.strip() for h in header[:4]] == ["Name", "Mobile", "订单号", "金额"]
    assert [r["normalized_mobile"] for r in rows] == ["13900210021", "13900210022", "13900210023"]
    assert [r["outcome"] for r in rows] == ["ready"] * 3
    assert rows[0]["订单号"] == "202411250000000001"
    assert rows[1]["金额"] == "6"
    assert rows[0]["message"] == "Hi Ann, order 202411250000000001"
    assert [r["source_row"] for r in rows] == [3, 4, 5]


def test_header_names_matched_loosely(tmp_path):
    for header in ("Mobile", "MOBILE", "手机号码（必填）", "联系电话 ", "ｍｏｂｉｌｅ", " 手机 "):
        path = write_csv(tmp_path / "h.csv", f"name,{header},city\nA,13900210021,BJ\n")
        summary = plan_json(path, "--text", "hi")
        assert outcomes(summary) == {"ready": 1}, header


def test_mobile_column_preferred_over_landline_column(tmp_path):
    path = write_csv(
        tmp_path / "two.csv",
        "姓名,固定电话,手机\n张三,010-12345678,13900210021\n李四,021-87654321,13900210022\n",
    )
    _, rows = preview(path, "--text", "hi")
    assert [r["normalized_mobile"] for r in rows] == ["13900210021", "13900210022"]


def test_mobile_column_without_recognizable_header_found_by_content(tmp_path):
    path = write_csv(
        tmp_path / "anon.csv",
        "客户,A列,备注\n张三,13900210021,x\n李四,13900210022,y\n王五,13900210023,z\n",
    )
    summary = plan_json(path, "--text", "hi")
    assert outcomes(summary) == {"ready": 3}


# --- CSV encodings and shapes --------------------------------------------------------------------

CSV_TEXT = '姓名,手机号码,备注\n张三,13900210021,"多行\n备注, 有逗号"\n李四,13900210022,普通\n'


@pytest.mark.parametrize(
    ("encoding", "newline"),
    [
        ("gbk", "\r\n"),
        ("utf-8-sig", "\n"),
        ("utf-8-sig", "\r\n"),
        ("utf-16", "\r\n"),
        ("gb18030", "\n"),
    ],
)
def test_csv_encodings_quoted_newlines_and_crlf(tmp_path, encoding, newline):
    path = write_csv(tmp_path / "list.csv", CSV_TEXT, encoding, newline)
    header, rows = preview(path, "--text", "{姓名}:{备注}")
    assert header[:3] == ["姓名", "手机号码", "备注"]
    assert [r["姓名"] for r in rows] == ["张三", "李四"]
    assert rows[0]["备注"].replace("\r\n", "\n") == "多行\n备注, 有逗号"
    assert [r["outcome"] for r in rows] == ["ready", "ready"]
    assert [r["source_row"] for r in rows] == [2, 3]  # the record, not the physical line


def test_utf16_tab_separated_as_wps_saves(tmp_path):
    text = "姓名\t手机号码\t城市\n张三\t13900210021\t北京\n李四\t13900210022\t上海\n"
    path = write_csv(tmp_path / "wps.csv", text, "utf-16", "\r\n")
    header, rows = preview(path, "--text", "{姓名}")
    assert header[:3] == ["姓名", "手机号码", "城市"]
    assert [r["message"] for r in rows] == ["张三", "李四"]


def test_semicolon_separated_csv(tmp_path):
    text = 'name;mobile;city\nA;13900210021;"X, 1"\nB;13900210022;Y\n'
    path = write_csv(tmp_path / "eu.csv", text)
    header, rows = preview(path, "--text", "{name} {city}")
    assert header[:3] == ["name", "mobile", "city"]
    assert [r["message"] for r in rows] == ["A X, 1", "B Y"]
    titled = write_csv(tmp_path / "t.csv", "说明;请勿改表头\nname,mobile\nA,13900210021\n")
    assert plan_json(titled, "--text", "{name}")["rows"] == 1


def test_trailing_empty_columns_and_blank_rows_in_csv(tmp_path):
    path = write_csv(
        tmp_path / "t.csv",
        "name,mobile,,,\nA,13900210021,,,\n,,,,\n   ,  ,,,\nB,13900210022,,,\n,,,,\n",
    )
    header, rows = preview(path, "--text", "{name}")
    assert header[:2] == ["name", "mobile"]
    assert header[2:] == RESULT_COLUMNS
    assert [r["source_row"] for r in rows] == [2, 5]
    summary = plan_json(path, "--text", "{name}")
    assert summary["rows"] == 2 and summary["blank_rows"] == 3


def test_long_numbers_and_leading_zeros_stay_exact_in_csv(tmp_path):
    path = write_csv(
        tmp_path / "ids.csv",
        "mobile,身份证,邮编,卡号\n13900210021,110101199003071234,010010,6222020200112233445\n",
    )
    _, rows = preview(path, "--text", "hi")
    assert rows[0]["身份证"] == "110101199003071234"
    assert rows[0]["邮编"] == "010010"
    assert rows[0]["卡号"] == "6222020200112233445"


# --- mobiles ------------------------------------------------------------------------------------


def test_mobile_formats_duplicates_and_invalid_numbers(tmp_path):
    cells = [
        "13900210021",  # ready
        "+86 139 0021 0021",  # duplicate of row 2
        "139-0021-0021",  # duplicate
        "１３９００２１００２１",  # duplicate (full width)
        "1.39002E+10",  # invalid: digits lost in Excel
        "139002100211",  # 12 digits
        "1390021002",  # 10 digits
        "010-12345678",  # landline
        "13900210022 转 8001",  # extension text
        "12345678901",  # not 13-19
        "",  # empty mobile
        "8613900210023",  # ready
    ]
    text = "name,mobile\n" + "".join(f'n{i},"{c}"\n' for i, c in enumerate(cells))
    path = write_csv(tmp_path / "m.csv", text)
    _, rows = preview(path, "--text", "hi")
    got = [r["outcome"] for r in rows]
    assert got == [
        "ready",
        "duplicate",
        "duplicate",
        "duplicate",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "ready",
    ]
    assert all(r["reason"] for r in rows if r["outcome"] != "ready")
    assert all("2" in str(r["reason"]) for r in rows[1:4])  # the earlier row
    assert rows[4]["normalized_mobile"] is None  # never guessed
    assert rows[11]["normalized_mobile"] == "13900210023"


def test_duplicates_across_files_name_the_earlier_file_and_row(tmp_path):
    first = write_csv(tmp_path / "a.csv", "mobile\n13900210021\n13900210022\n")
    second = write_openpyxl(tmp_path / "b.xlsx", {"S": [["手机"], ["13900210022"], [13900210023]]})
    _, rows = preview(first, second, "--text", "hi")
    assert [r["outcome"] for r in rows] == ["ready", "ready", "duplicate", "ready"]
    assert "a.csv" in rows[2]["reason"] and "3" in rows[2]["reason"]
    summary = plan_json(first, second, "--text", "hi")
    assert [f["rows"] for f in summary["files"]] == [2, 2]
    assert "a.csv" in summary["files"][0]["source"] and "b.xlsx" in summary["files"][1]["source"]


# --- templates and compliance --------------------------------------------------------------------


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "campaign.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_template_fallbacks_braces_and_chinese_columns(tmp_path):
    path = write_csv(
        tmp_path / "c.csv",
        "姓名,手机号码,会员等级\n张三,13900210021,金卡\n,13900210022,\n小明😀,13900210023,银卡\n",
    )
    _, rows = preview(path, "--text", "{姓名|尊敬的客户}您好，{{等级}}：{会员等级|普通}")
    assert [r["message"] for r in rows] == [
        "张三您好，{等级}：金卡",
        "尊敬的客户您好，{等级}：普通",
        "小明😀您好，{等级}：银卡",
    ]
    assert [r["outcome"] for r in rows] == ["ready"] * 3


def test_empty_value_without_fallback_is_invalid_naming_the_column(tmp_path):
    path = write_csv(tmp_path / "c.csv", "姓名,手机号码\n张三,13900210021\n   ,13900210022\n")
    _, rows = preview(path, "--text", "{姓名}您好")
    assert [r["outcome"] for r in rows] == ["ready", "invalid"]
    assert "姓名" in rows[1]["reason"]
    assert not rows[1]["batch_id"]


def test_template_naming_a_missing_column_is_bad_input_listing_the_columns(tmp_path):
    path = write_csv(tmp_path / "c.csv", "姓名,手机号码,城市\n张三,13900210021,北京\n")
    for command in ("plan", "send"):
        extra = ["--gateway", "simulator", "--yes"] if command == "send" else []
        error = bad_input(command, path, "--text", "{名字}您好", *extra)
        assert "名字" in error
        assert all(column in error for column in ("姓名", "手机号码", "城市"))
    assert not list(tmp_path.glob("campaign.db*"))  # bad input: no store written


def test_segments_at_the_boundaries(tmp_path):
    units = [70, 71, 134, 135, 536, 537]
    text = "mobile,text\n" + "".join(f"1390021{i:04d},{'a' * n}\n" for i, n in enumerate(units))
    path = write_csv(tmp_path / "c.csv", text)
    _, rows = preview(path, "--text", "{text}")
    assert [r["segments"] for r in rows[:5]] == [1, 2, 2, 3, 8]
    assert [r["outcome"] for r in rows] == ["ready"] * 5 + ["invalid"]
    assert "537" in rows[5]["reason"]
    summary = plan_json(path, "--text", "{text}")
    assert summary["segments"] == 16 and summary["recipients"] == 5


@pytest.mark.parametrize(("emoji", "segments"), [(35, 1), (36, 2)])
def test_emoji_count_as_two_units(tmp_path, emoji, segments):
    path = write_csv(tmp_path / "c.csv", "mobile,name\n13900210021,😀\n")
    _, rows = preview(path, "--text", "{name}" * emoji)
    assert rows[0]["segments"] == segments
    summary = plan_json(path, "--text", "{name}" * emoji)
    assert summary["segments"] == segments


def test_signature_and_optout_text_rules(tmp_path):
    config = write_config(
        tmp_path, '[compliance]\nsignature = "【品牌】"\noptout_text = "回T退订"\n'
    )
    path = write_csv(
        tmp_path / "c.csv",
        "mobile,text\n13900210021,你好\n13900210022,【其他】你好\n13900210023,你好回T退订\n",
    )
    _, rows = preview(path, "--text", "{text}", "--config", config)
    assert [r["message"] for r in rows] == [
        "【品牌】你好回T退订",
        "【其他】你好回T退订",
        "【品牌】你好回T退订",
    ]


def test_signature_and_optout_count_in_the_length(tmp_path):
    config = write_config(
        tmp_path, '[compliance]\nsignature = "【品牌】"\noptout_text = "回T退订"\n'
    )
    path = write_csv(tmp_path / "c.csv", "mobile\n13900210021\n")
    _, rows = preview(path, "--text", "a" * 61, "--config", config)  # 4 + 61 + 4 = 69
    assert rows[0]["segments"] == 1
    _, rows = preview(path, "--text", "a" * 63, "--config", config)  # 71
    assert rows[0]["segments"] == 2


def test_sensitive_words_from_a_file(tmp_path):
    (tmp_path / "words.txt").write_text("博彩\n贷款\n", encoding="utf-8")
    config = write_config(tmp_path, '[compliance]\nsensitive_words = "words.txt"\n')
    path = write_csv(tmp_path / "c.csv", "mobile,offer\n13900210021,会员日\n13900210022,低息贷款\n")
    _, rows = preview(path, "--text", "{offer}", "--config", config)
    assert [r["outcome"] for r in rows] == ["ready", "invalid"]
    assert "贷款" in rows[1]["reason"]


def test_min_batch_leaves_small_groups_unsent_and_max_batch_chunks(tmp_path):
    config = write_config(tmp_path, "[gateway]\nmin_batch = 3\nmax_batch = 2\n")
    mobiles = [f"1390021{n:04d}" for n in range(5)]
    text = "mobile,group\n" + "".join(f"{m},A\n" for m in mobiles) + "13900219999,B\n"
    path = write_csv(tmp_path / "c.csv", text)
    config = write_config(tmp_path, "[gateway]\nmin_batch = 2\nmax_batch = 2\n")
    summary = plan_json(path, "--text", "{group}", "--config", config)
    assert outcomes(summary) == {"ready": 5, "unsent": 1}
    assert summary["requests"] == 3  # 5 recipients of one text in chunks of at most 2
    _, rows = preview(path, "--text", "{group}", "--config", config)
    assert rows[-1]["outcome"] == "unsent" and rows[-1]["reason"]
    assert len({r["batch_id"] for r in rows[:5]}) == 3


# --- suppression -------------------------------------------------------------------------------


def test_optout_add_list_remove_and_plan_marks_suppressed(tmp_path):
    assert cli("optout", "add", "+86 139-0021-0021", "13900210022").exit_code == 0
    listed = cli("optout", "list", "--json")
    assert listed.exit_code == 0
    assert sorted(json.loads(listed.stdout)) == ["13900210021", "13900210022"]
    plain = cli("optout", "list")
    assert plain.stdout.split() == ["13900210021", "13900210022"]
    path = write_csv(tmp_path / "c.csv", "mobile\n13900210021\n13900210023\n")
    summary = plan_json(path, "--text", "hi")
    assert outcomes(summary) == {"suppressed": 1, "ready": 1}
    assert cli("optout", "remove", "13900210021").exit_code == 0
    assert json.loads(cli("optout", "list", "--json").stdout) == ["13900210022"]
    assert outcomes(plan_json(path, "--text", "hi")) == {"ready": 2}


def test_optout_add_refuses_a_non_mobile_and_changes_nothing(tmp_path):
    error = bad_input("optout", "add", "13900210021", "010-12345678")
    assert "010-12345678" in error
    assert json.loads(cli("optout", "list", "--json").stdout) == []


@pytest.mark.parametrize("kind", ["gbk-csv", "xlsx"])
def test_optout_import(tmp_path, kind):
    if kind == "xlsx":
        path = write_openpyxl(
            tmp_path / "黑名单.xlsx",
            {
                "S": [
                    ["退订名单"],
                    ["客户", "手机号码"],
                    ["甲", 13900210021],
                    ["乙", "139 0021 0022"],
                ]
            },
        )
    else:
        text = "客户,手机号码\n甲,13900210021\n乙,139 0021 0022\n"
        path = write_csv(tmp_path / "黑名单.csv", text, "gbk", "\r\n")
    result = cli("optout", "import", path)
    assert result.exit_code == 0, result.output
    assert json.loads(cli("optout", "list", "--json").stdout) == ["13900210021", "13900210022"]
    contacts = write_csv(tmp_path / "c.csv", "mobile\n13900210022\n13900210023\n")
    assert outcomes(plan_json(contacts, "--text", "hi")) == {"suppressed": 1, "ready": 1}
    error = bad_input("optout", "import", tmp_path / "missing.csv")
    assert "missing.csv" in error and "contact" not in error


# --- unusable files and options -------------------------------------------------------------------


def test_unusable_files_are_bad_input_naming_the_file(tmp_path):
    good = write_csv(tmp_path / "good.csv", "mobile\n13900210021\n")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "empty.xlsx").write_bytes(b"")
    (tmp_path / "corrupt.xlsx").write_text("name,mobile\nA,13900210021\n", encoding="utf-8")
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "list.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    (tmp_path / "header_only.csv").write_text("name,mobile\n", encoding="utf-8")
    for name in (
        "empty.csv",
        "empty.xlsx",
        "corrupt.xlsx",
        "folder.csv",
        "list.pdf",
        "missing.csv",
        "header_only.csv",
    ):
        for command in ("plan", "send"):
            extra = ["--gateway", "simulator", "--yes"] if command == "send" else []
            error = bad_input(command, good, tmp_path / name, "--text", "hi", *extra)
            assert name in error, (name, error)
    assert not list(tmp_path.glob("campaign.db*"))  # bad input: no store written


def test_missing_sheet_names_the_sheets(tmp_path):
    path = write_openpyxl(tmp_path / "b.xlsx", {"一月": [["mobile"], [13900210021]], "二月": []})
    error = bad_input("plan", path, "--text", "hi", "--sheet", "三月")
    assert "三月" in error and "一月" in error and "二月" in error
    summary = plan_json(path, "--text", "hi", "--sheet", "一月")
    assert summary["rows"] == 1
    other = write_openpyxl(tmp_path / "c.xlsx", {"Sheet1": [["mobile"], [13900210021]]})
    assert plan_json(other, "--text", "hi", "--sheet", "sheet1")["rows"] == 1  # as Excel: no case


def test_missing_mobile_column_lists_the_columns(tmp_path):
    path = write_csv(tmp_path / "c.csv", "姓名,手机号码,城市\n张三,13900210021,北京\n")
    error = bad_input("plan", path, "--text", "hi", "--mobile-column", "电话")
    assert "电话" in error and "姓名" in error and "城市" in error


def test_no_mobile_column_at_all_is_bad_input(tmp_path):
    path = write_csv(tmp_path / "c.csv", "姓名,城市\n张三,北京\n李四,上海\n")
    error = bad_input("plan", path, "--text", "hi")
    assert "c.csv" in error and "姓名" in error


def test_header_row_option(tmp_path):
    path = write_openpyxl(
        tmp_path / "b.xlsx",
        {
            "S": [
                ["说明：以下为客户"],
                ["导出时间", "2024-11-25"],
                ["name", "号"],
                ["A", 13900210021],
            ]
        },
    )
    _, rows = preview(path, "--text", "{name}", "--header-row", "3", "--mobile-column", "号")
    assert [(r["message"], r["source_row"]) for r in rows] == [("A", 4)]


def test_header_row_zero_or_past_the_end_is_bad_input(tmp_path):
    path = write_csv(tmp_path / "c.csv", "mobile\n13900210021\n")
    assert "header row must be 1 or more" in bad_input(
        "plan", path, "--text", "hi", "--header-row", "0"
    )
    bad_input("plan", path, "--text", "hi", "--header-row", "9")


# --- send and export ------------------------------------------------------------------------------


def test_send_messy_workbook_then_export_every_row_once(tmp_path, monkeypatch):
    """Only `ready` rows reach the gateway, each once, with the previewed text; the export's
    `results` sheet has one row per input row, original columns (even one named like a result
    column) first, then the result columns of SPEC."""
    from tests.support.simulator import running_simulator

    path = write_openpyxl(
        tmp_path / "双十一.xlsx",
        {
            "A": [
                ["双十一客户"],
                ["姓名", "手机", "outcome", "身份证"],
                ["张三", 13900210021, "x", "110101199003071234"],
                ["李四", "13900210099", "", "=1+1"],
                [None, None, None, None],
                ["王五", "1.39002E+10", "", ""],
                ["", "139 0021 0021", "", ""],
            ],
            "B": [["mobile", "name"], ["13900210022", "赵六"], ["13900210023", "孙七"]],
        },
    )
    assert cli("optout", "add", "13900210099").exit_code == 0
    template = "{姓名|客户}您好{{VIP}}"
    _, planned = preview(path, "--text", template)
    expected = {r["normalized_mobile"]: r["message"] for r in planned if r["outcome"] == "ready"}
    monkeypatch.setenv("CAMPAIGN_ACCOUNT", "demo")
    monkeypatch.setenv("CAMPAIGN_PASSWORD", "demo-secret")
    with running_simulator() as sim:
        result = cli("send", path, "--text", template, "--gateway", sim.url, "--yes", "--json")
        assert result.exit_code == 0, result.output
        sent = [(m, r.msg) for r in sim.received() if r.sent for m in r.mobiles]
    summary = json.loads(result.stdout)
    assert summary["recipients"] == len(expected) == 3
    assert sorted(sent) == sorted(expected.items())
    assert {"campaign_id", "outcomes", "requests", "segments"} <= set(summary)
    assert "demo-secret" not in result.output
    out = tmp_path / "results.xlsx"
    exported = cli("export", str(summary["campaign_id"]), "-o", out)
    assert exported.exit_code == 0, exported.output
    book = openpyxl.load_workbook(out, read_only=True)
    rows = [list(r) for r in book["results"].iter_rows(values_only=True)]
    book.close()
    header = rows[0]
    assert header == ["姓名", "手机", "outcome", "身份证", "mobile", "name", *RESULT_COLUMNS]
    body = rows[1:]
    assert len(body) == 6
    outcome_at = header.index("outcome", 4)
    got = [row[outcome_at] for row in body]
    # accepted, and no report can arrive: the simulator pushes none without a push_url
    assert [got[0], got[4], got[5]] == ["pending", "pending", "pending"]
    assert got[1:4] == ["suppressed", "invalid", "duplicate"]
    assert body[0][2] == "x" and body[0][3] == "110101199003071234"
    assert body[1][3] == "=1+1"  # text, not a formula
    assert [row[header.index("source_row")] for row in body] == [3, 4, 6, 7, 2, 3]


def test_send_refusing_bad_input_stores_nothing(tmp_path):
    path = write_csv(tmp_path / "c.csv", "姓名,手机号码\n张三,13900210021\n")
    bad_input("send", path, "--text", "{城市}", "--gateway", "simulator", "--yes")
    bad_input(
        "send", path, "--text", "hi", "--sheet", "x", "--gateway", "simulator", "--yes"
    ) if False else None
    bad_input(
        "send", path, "--text", "hi", "--mobile-column", "电话", "--gateway", "simulator", "--yes"
    )
    bad_input(
        "send", path, "--text", "{姓名}", "--header-row", "5", "--gateway", "simulator", "--yes"
    )
    assert not list(tmp_path.glob("campaign.db*"))  # bad input: no store written
    assert cli("optout", "add", "13900210021").exit_code == 0  # an existing store is untouched
    bad_input("send", path, "--text", "{城市}", "--gateway", "simulator", "--yes")
    listed = cli("status", "--json")
    assert listed.exit_code == 0 and "c.csv" not in listed.stdout


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_csv_quote_never_closed_is_bad_input_not_rows_swallowed(tmp_path, encoding):
    """A stray '"' would make every later row part of one cell: refused, naming the line."""
    text = '姓名,手机号码\n张三,13900210021\n李四,"13900210022\n王五,13900210023\n'
    path = write_csv(tmp_path / "quote.csv", text, encoding)
    error = bad_input("plan", path, "--text", "hi")
    assert "quote.csv" in error and "line 3" in error
    fine = write_csv(tmp_path / "ok.csv", '姓名,手机号码\n"张\n三",13900210021\n', encoding)
    assert plan_json(fine, "--text", "hi")["rows"] == 1


def test_template_file_saved_on_windows_and_a_folder_given_as_template(tmp_path):
    (tmp_path / "t.txt").write_bytes("\ufeff{姓名}您好\r\n回复有礼\r\n".encode())
    path = write_csv(tmp_path / "c.csv", "姓名,手机号码\n张三,13900210021\n")
    _, rows = preview(path, "-t", "t.txt")
    assert rows[0]["message"] == "张三您好\n回复有礼"  # no BOM, no billed CR
    (tmp_path / "templates").mkdir()
    error = bad_input("plan", path, "-t", "templates")
    assert "templates" in error


def test_sensitive_words_ignore_case_and_width(tmp_path):
    (tmp_path / "words.txt").write_bytes("\ufeff博彩\r\nVX\r\n\r\n".encode())
    config = write_config(tmp_path, '[compliance]\nsensitive_words = "words.txt"\n')
    path = write_csv(
        tmp_path / "c.csv", "mobile,offer\n13900210021,加vx\n13900210022,加ＶＸ\n13900210023,好\n"
    )
    _, rows = preview(path, "--text", "{offer}", "--config", config)
    assert [r["outcome"] for r in rows] == ["invalid", "invalid", "ready"]
    assert all("VX" in r["reason"] for r in rows[:2])


def test_send_never_sends_what_the_checks_refuse(tmp_path, monkeypatch):
    """Sensitive words, small groups below min_batch, suppressed and invalid rows: none of
    them reaches the gateway; the rest goes in chunks of at most max_batch."""
    from tests.support.simulator import running_simulator

    (tmp_path / "words.txt").write_text("博彩\n", encoding="utf-8")
    config = write_config(
        tmp_path,
        "[gateway]\nmin_batch = 2\nmax_batch = 2\n"
        '[compliance]\nsignature = "【品牌】"\noptout_text = "回T退订"\n'
        'sensitive_words = "words.txt"\n',
    )
    rows = [
        ("13900210021", "会员日"),
        ("13900210022", "会员日"),
        ("13900210023", "会员日"),
        ("13900210024", "博彩"),  # sensitive
        ("13900210025", "单独一条"),  # a group of one < min_batch
        ("13900210026", "会员日"),  # suppressed
        ("1390021002", "会员日"),  # invalid
    ]
    path = write_csv(tmp_path / "c.csv", "手机,offer\n" + "".join(f"{m},{o}\n" for m, o in rows))
    assert cli("optout", "add", "13900210026").exit_code == 0
    monkeypatch.setenv("CAMPAIGN_ACCOUNT", "demo")
    monkeypatch.setenv("CAMPAIGN_PASSWORD", "demo-secret")
    with running_simulator() as sim:
        result = cli(
            "send",
            path,
            "--text",
            "{offer}",
            "--config",
            config,
            "--gateway",
            sim.url,
            "--yes",
            "--json",
        )
        requests = [r for r in sim.received() if r.sent]
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["recipients"] == 3
    assert sorted(m for r in requests for m in r.mobiles) == [
        "13900210021",
        "13900210022",
        "13900210023",
    ]
    assert all(len(r.mobiles) <= 2 and r.msg == "【品牌】会员日回T退订" for r in requests)
    counts = outcomes(summary)
    assert counts.get("invalid") == 2 and counts.get("unsent") == 1
    assert counts.get("suppressed") == 1
    assert sum(summary["outcomes"].values()) == len(rows)


@pytest.mark.parametrize(
    "header",
    [
        "姓名,电话,客户手机",
        "姓名,联系电话,手机(必填)",
        "姓名,Tel,Mobile Phone No.",
        "姓名,电话,备用电话",
    ],
)
def test_of_two_phone_columns_the_one_holding_mobiles_is_used(tmp_path, header):
    text = f"{header}\n张三,010-12345678,13900210021\n李四,021-87654321,139 0021 0022\n"
    path = write_csv(tmp_path / "c.csv", text)
    _, rows = preview(path, "--text", "hi")
    assert [r["normalized_mobile"] for r in rows] == ["13900210021", "13900210022"]


def test_a_named_mobile_column_wins_over_mobiles_in_an_unnamed_one(tmp_path):
    """Never text the emergency contacts because the customers' own column is messy."""
    text = "姓名,手机,紧急联系人\n张三,无,13900210021\n李四,13900210022,13900210023\n"
    path = write_csv(tmp_path / "c.csv", text + "王五,-,13900210024\n")
    _, rows = preview(path, "--text", "hi")
    assert [r["normalized_mobile"] for r in rows] == [None, "13900210022", None]


def test_caption_of_two_cells_above_a_header_with_a_decorated_mobile_name(tmp_path):
    text = "VIP客户名单,导出日期 2024-11-25,\n姓名,手机号码（必填）,城市\n张三,13900210021,北京\n"
    path = write_csv(tmp_path / "c.csv", text + "李四,13900210022,上海\n")
    header, rows = preview(path, "--text", "{姓名}")
    assert header[:3] == ["姓名", "手机号码（必填）", "城市"]
    assert [(r["message"], r["source_row"]) for r in rows] == [("张三", 3), ("李四", 4)]


def test_a_sheet_of_notes_beside_the_list_names_the_sheet_and_suggests_sheet(tmp_path):
    path = write_openpyxl(
        tmp_path / "b.xlsx",
        {"名单": [["姓名", "手机"], ["张三", 13900210021]], "说明": [["填写说明"], ["请勿改表头"]]},
    )
    error = bad_input("plan", path, "--text", "hi")
    assert "说明" in error and "--sheet" in error
    assert plan_json(path, "--text", "hi", "--sheet", "名单")["rows"] == 1


def test_placeholders_match_headers_regardless_of_case_width_and_spaces(tmp_path):
    text = "Customer  Name,手机号码（必填）,会员 等级\nAnn,13900210021,\nBo,13900210022,金卡\n"
    path = write_csv(tmp_path / "c.csv", text)
    template = "{customer name}{手机号码(必填)}{会员等级|普通}"
    _, rows = preview(path, "--text", template)
    assert [r["message"] for r in rows] == ["Ann13900210021普通", "Bo13900210022金卡"]
    _, rows = preview(path, "--text", "{CUSTOMER NAME}{会员等级}")
    assert rows[0]["outcome"] == "invalid" and "会员 等级" in rows[0]["reason"]
    error = bad_input("plan", path, "--text", "{客户}")
    assert "客户" in error and "Customer Name" in error


def test_csv_keep_as_text_cells_are_read_as_excel_shows_them(tmp_path):
    text = 'name,mobile,邮编,身份证\nA,="13900210021",="010010","=""110101199003071234"""\n'
    path = write_csv(tmp_path / "c.csv", text)  # both forms: bare, and quoted as Excel writes
    _, rows = preview(path, "--text", "{name}{邮编}")
    assert (rows[0]["邮编"], rows[0]["身份证"]) == ("010010", "110101199003071234")
    assert (rows[0]["normalized_mobile"], rows[0]["message"]) == ("13900210021", "A010010")


def test_tab_separated_unicode_text_with_commas_in_cells(tmp_path):
    text = "客户名单\n姓名\t手机号码\t地址\n张三\t13900210021\t北京市,朝阳区\n"
    text += "李四\t13900210022\t上海\n"
    path = write_csv(tmp_path / "wps.txt", text, "utf-16", "\r\n")
    header, rows = preview(path, "--text", "{姓名}{地址}")
    assert header[:3] == ["姓名", "手机号码", "地址"]
    assert [r["message"] for r in rows] == ["张三北京市,朝阳区", "李四上海"]
    both = "姓名\t手机号码\t地址(省,市)\n张三\t13900210021\t北京,朝阳\n"
    header, _ = preview(write_csv(tmp_path / "both.txt", both, "utf-16"), "--text", "hi")
    assert header[:3] == ["姓名", "手机号码", "地址(省,市)"]


def test_all_rows_invalid_is_bad_input_but_the_preview_shows_why(tmp_path):
    path = write_csv(tmp_path / "sci.csv", "姓名,手机\n张三,1.39002E+10\n李四,010-12345678\n")
    error = bad_input("plan", path, "--text", "hi", "--out", "preview.xlsx")
    assert "preview.xlsx" in error
    book = openpyxl.load_workbook("preview.xlsx", read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    outcome, reason = rows[0].index("outcome"), rows[0].index("reason")
    assert [(r[outcome], bool(r[reason])) for r in rows[1:]] == [("invalid", True)] * 2
    bad_input("plan", path, "--text", "hi")  # without --out: the same refusal


def test_run_skips_excel_owner_files_beside_the_lists(tmp_path):
    """Excel keeps "~$name.xlsx" beside a list while it is open: not a list, not a failure."""
    (tmp_path / "in").mkdir()
    (tmp_path / "inbox").mkdir()
    write_csv(tmp_path / "in" / "a.csv", "name,mobile\nA,13900210021\n")
    (tmp_path / "in" / "~$b.xlsx").write_bytes(b"\x07Owner\x00\x00")
    (tmp_path / "inbox" / "~$r.xlsx").write_bytes(b"\x07Owner\x00\x00")
    (tmp_path / "hi.txt").write_text("hi {name}", encoding="utf-8")
    config = write_config(
        tmp_path,
        '[gateway]\nurl = "simulator"\n[[job]]\nname = "n"\ncontacts = "in/*"\n'
        'template = "hi.txt"\ninbox = "inbox"\n',
    )
    result = cli("run", config, "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["jobs"][0]["created"]) == 1
    assert (tmp_path / "inbox" / "~$r.xlsx").exists()


def test_a_cell_merged_down_a_column_applies_to_every_row_it_spans(tmp_path):
    path = tmp_path / "stores.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    for row in (
        ["门店客户名单", None, None],
        ["门店", "姓名", "手机"],
        ["朝阳店", "A", "13900210021"],
        [None, "B", "13900210022"],
        ["海淀店", "C", "13900210023"],
        [None, None, None],
        ["西城店", "D", "13900210024"],
    ):
        sheet.append(row)
    sheet.merge_cells("A1:C1")
    sheet.merge_cells("A3:A4")
    sheet.merge_cells("A5:A6")
    book.save(path)
    _, rows = preview(path, "--text", "{姓名}到{门店}领取")
    assert [r["message"] for r in rows][:3] == ["A到朝阳店领取", "B到朝阳店领取", "C到海淀店领取"]
    assert [r["门店"] for r in rows] == ["朝阳店", "朝阳店", "海淀店", "西城店"]
    assert plan_json(path, "--text", "hi")["blank_rows"] == 1  # merged beside nothing: still blank
