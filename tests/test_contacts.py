"""contacts: real .xlsx/.xls/.csv files in tmp_path (and tests/data) read into a ContactList."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import xlsxwriter
from typer.testing import CliRunner

from campaign.cli import app
from campaign.contacts import RESERVED_COLUMNS, ContactList, FileSummary, read_contacts
from campaign.errors import ContactsError, ExitCode
from campaign.tabular import _text_columns, cell_text

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SAMPLES = ROOT / "sample_data"
HEADERS = ["姓名", "手机号码", "城市", "会员等级", "积分"]


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]], hidden: tuple[str, ...] = ()):
    """A real workbook; each sheet's rows start at row 1 (None = an empty cell)."""
    workbook = xlsxwriter.Workbook(str(path))
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    for name, rows in sheets.items():
        sheet = workbook.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, dt.date):
                    sheet.write_datetime(r, c, value, date_format)
                else:
                    sheet.write(r, c, value)
        if name in hidden:
            sheet.hide()
    workbook.close()
    return path


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def column(contacts: ContactList, name: str) -> list[str]:
    return contacts.frame[name].tolist()


# --- workbooks ----------------------------------------------------------------------------------


def test_title_row_numeric_cells_and_shown_text(tmp_path):
    path = write_xlsx(
        tmp_path / "vip.xlsx",
        {
            "VIP": [
                ["2024年VIP客户名单"],
                ["姓名", "手机号码", "积分", "生日", "会员"],
                ["张三", 13900210021, 1200, dt.date(1990, 5, 17), True],
                ["李四", "139 0021 0022", 12.5, None, False],
                [None, 13900210023.0, 0.1 + 0.2, None, None],
            ]
        },
    )
    contacts = read_contacts([path])
    assert contacts.columns == ["姓名", "手机号码", "积分", "生日", "会员"]
    assert list(contacts.frame.columns) == [*contacts.columns, *RESERVED_COLUMNS]
    assert column(contacts, "手机号码") == ["13900210021", "139 0021 0022", "13900210023"]
    assert column(contacts, "积分") == ["1200", "12.5", "0.3"]
    assert column(contacts, "生日") == ["1990-05-17", "", ""]
    assert column(contacts, "会员") == ["TRUE", "FALSE", ""]
    assert column(contacts, "姓名") == ["张三", "李四", ""]
    assert column(contacts, "_source") == ["vip.xlsx:VIP"] * 3
    assert column(contacts, "_source_row") == [3, 4, 5]
    assert contacts.frame["_source_row"].dtype == "int64"
    assert column(contacts, "_mobile_raw") == column(contacts, "手机号码")
    assert contacts.files == [FileSummary("vip.xlsx:VIP", 3, 0, "手机号码", str(path))]
    assert list(contacts.frame.index) == [0, 1, 2]


def test_every_cell_is_text(tmp_path):
    path = write_xlsx(tmp_path / "c.xlsx", {"S": [["手机", "n"], [13900210021, 7], ["x", None]]})
    frame = read_contacts([path]).frame
    for name in ["手机", "n", "_source", "_mobile_raw"]:
        assert all(isinstance(value, str) for value in frame[name]), name
    assert not frame.drop(columns="_source_row").isna().any().any()


def test_blank_rows_are_skipped_and_counted(tmp_path):
    rows = [["姓名", "手机号码"], ["a", "13900210021"], [None, None], ["", "  "], ["b", "x"]]
    path = write_xlsx(tmp_path / "c.xlsx", {"S": rows})
    contacts = read_contacts([path])
    assert column(contacts, "_source_row") == [2, 5]
    assert contacts.files[0].rows == 2 and contacts.files[0].blank_rows == 2


def test_every_visible_sheet_is_read_and_empty_ones_ignored(tmp_path):
    path = write_xlsx(
        tmp_path / "book.xlsx",
        {
            "北京": [["姓名", "手机号码"], ["a", "13900210021"]],
            "Empty": [],
            "上海": [["手机号码", "城市", "姓名"], ["13900210022", "上海", "b"]],
            "lists": [["会员等级"], ["金卡"]],
        },
        hidden=("lists",),
    )
    contacts = read_contacts([path])
    assert contacts.columns == ["姓名", "手机号码", "城市"]
    assert column(contacts, "_source") == ["book.xlsx:北京", "book.xlsx:上海"]
    assert column(contacts, "城市") == ["", "上海"]
    assert [f.source for f in contacts.files] == ["book.xlsx:北京", "book.xlsx:上海"]


def test_sheet_option_reads_one_sheet_and_a_missing_one_lists_them(tmp_path):
    path = write_xlsx(
        tmp_path / "book.xlsx",
        {"A": [["手机"], ["13900210021"]], "B": [["手机"], ["13900210022"], ["13900210023"]]},
    )
    assert column(read_contacts([path], sheet="B"), "手机") == ["13900210022", "13900210023"]
    with pytest.raises(ContactsError) as error:
        read_contacts([path], sheet="C")
    assert "book.xlsx" in str(error.value) and "'A', 'B'" in str(error.value)


def test_a_header_only_sheet_beside_others_is_skipped_but_alone_is_an_error(tmp_path):
    path = write_xlsx(
        tmp_path / "book.xlsx",
        {"模板": [["姓名", "手机号码"]], "名单": [["姓名", "手机号码"], ["a", "13900210021"]]},
    )
    assert column(read_contacts([path]), "_source") == ["book.xlsx:名单"]
    with pytest.raises(ContactsError, match=r"no contact rows in .*book\.xlsx \(sheet '模板'\)"):
        read_contacts([path], sheet="模板")


def test_a_caption_mentioning_mobiles_is_not_the_header(tmp_path):
    rows = [
        ["2026年双十一手机会员营销名单"],
        ["姓名", "手机号码", "城市"],
        ["a", "13900210021", "上海"],
    ]
    contacts = read_contacts([write_xlsx(tmp_path / "c.xlsx", {"S": rows})])
    assert contacts.columns == ["姓名", "手机号码", "城市"]
    assert column(contacts, "_source_row") == [3]


def test_workbook_whose_sheets_are_all_empty(tmp_path):
    path = write_xlsx(tmp_path / "blank.xlsx", {"Sheet1": [], "Sheet2": []})
    with pytest.raises(ContactsError, match=r"blank\.xlsx has no data: every visible sheet"):
        read_contacts([path])
    commas = write_csv(tmp_path / "commas.csv", ",,\n , ,\n")
    with pytest.raises(ContactsError, match=r"commas\.csv has no data: every row is blank"):
        read_contacts([commas])


def test_old_xls_workbook():
    """tests/data/old_format.xls: a real BIFF8 workbook (written once with xlwt)."""
    contacts = read_contacts([DATA / "old_format.xls"])
    assert contacts.columns == ["姓名", "手机号码", "积分"]
    assert column(contacts, "_mobile_raw") == ["13900210021", "139 0021 0022"]
    assert column(contacts, "积分") == ["100", "12.5"]
    assert column(contacts, "_source") == ["old_format.xls:会员"] * 2
    assert column(contacts, "_source_row") == [3, 4]


def test_header_row_option(tmp_path):
    rows = [["导出时间", "2026-11-11"], ["备注", "内部"], ["手机", "名字"], ["13900210021", "a"]]
    path = write_xlsx(tmp_path / "c.xlsx", {"S": rows})
    contacts = read_contacts([path], header_row=3)
    assert contacts.columns == ["手机", "名字"]
    assert column(contacts, "_source_row") == [4]
    with pytest.raises(ContactsError, match=r"header row 9 is past the end of .*c\.xlsx"):
        read_contacts([path], header_row=9)


def test_duplicate_and_missing_header_names(tmp_path):
    rows = [["电话", "手机号码", "电话", None, "电话_2"], ["010-1", "13900210021", "x", "y", "z"]]
    path = write_xlsx(tmp_path / "c.xlsx", {"S": rows})
    assert read_contacts([path]).columns == ["电话", "手机号码", "电话_3", "column_D", "电话_2"]


def test_cell_text_of_workbook_values():
    assert cell_text(13900210021.0) == "13900210021"
    assert cell_text(-0.0) == "0"
    assert cell_text(1e20) == "100000000000000000000"
    assert cell_text(2.5) == "2.5"
    assert cell_text(dt.datetime(2026, 11, 11, 20, 0)) == "2026-11-11 20:00:00"
    assert cell_text(dt.datetime(2026, 11, 11)) == "2026-11-11"
    assert cell_text(dt.time(8, 30)) == "08:30:00"
    assert cell_text(None) == ""


def test_text_columns_of_uneven_mixed_rows():
    rows = [["a", 1.0, True], ["b"], ["c", dt.date(2024, 1, 2), 2.5, "x"]]
    assert [c.to_pylist() for c in _text_columns(rows)] == [
        ["a", "b", "c"],
        ["1", "", "2024-01-02"],
        ["TRUE", "", "2.5"],
        ["", "", "x"],
    ]


# --- CSV ----------------------------------------------------------------------------------------

CSV_TEXT = (
    "2024年VIP客户名单,,\r\n姓名,手机号码,编号\r\n"
    "张三,13900210021,007\r\n,,\r\n李四,1.39002E+10,010\r\n"
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"])
def test_csv_encodings_title_row_and_text_cells(tmp_path, encoding):
    path = write_csv(tmp_path / "list.csv", CSV_TEXT, encoding)
    contacts = read_contacts([path])
    assert contacts.columns == ["姓名", "手机号码", "编号"]
    assert column(contacts, "姓名") == ["张三", "李四"]
    assert column(contacts, "手机号码") == ["13900210021", "1.39002E+10"]
    assert column(contacts, "编号") == ["007", "010"]  # never numbers: leading zeros stay
    assert column(contacts, "_source") == ["list.csv", "list.csv"]
    assert column(contacts, "_source_row") == [3, 5]
    assert contacts.files == [FileSummary("list.csv", 2, 1, "手机号码", str(path))]


def test_ragged_csv_title_line_empty_lines_and_quoted_newlines(tmp_path):
    text = '会员名单\n\n姓名,手机,地址\n张三,13900210021,"上海市\n浦东新区"\n\n李四,13900210022\n'
    contacts = read_contacts([write_csv(tmp_path / "r.csv", text)])
    assert column(contacts, "地址") == ["上海市\n浦东新区", ""]
    assert column(contacts, "_source_row") == [4, 6]
    assert contacts.files[0].blank_rows == 1


def test_tab_separated_and_headerless(tmp_path):
    tsv = read_contacts([write_csv(tmp_path / "a.tsv", "手机\t姓名\n13900210021\t张三\n")])
    assert column(tsv, "姓名") == ["张三"]
    headerless = read_contacts(
        [write_csv(tmp_path / "b.csv", "13900210021,张三\n139 0021 0022,李四\n")]
    )
    assert headerless.columns == ["column_A", "column_B"]
    assert column(headerless, "_mobile_raw") == ["13900210021", "139 0021 0022"]
    assert column(headerless, "_source_row") == [1, 2]


def test_large_csv_keeps_every_value_as_text(tmp_path):
    lines = ["手机号码,编号"] + [f"1390021{i:04d},{i:06d}" for i in range(5000)]
    contacts = read_contacts([write_csv(tmp_path / "big.csv", "\n".join(lines) + "\n")])
    assert len(contacts.frame) == 5000
    assert column(contacts, "编号")[:2] == ["000000", "000001"]
    assert column(contacts, "_source_row")[-1] == 5001


# --- the mobile column ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("电话,手机号码,联系电话", "手机号码"),
        ("Phone,Mobile Number,tel", "Mobile Number"),
        ("联系方式,电话", "电话"),
        ("Ｍｏｂｉｌｅ,name,x", "Ｍｏｂｉｌｅ"),
        ("客户手机(必填),备注,x", "客户手机(必填)"),
        ("MSISDN,b,c", "MSISDN"),
    ],
)
def test_mobile_column_by_header_prefers_the_most_specific(tmp_path, header, expected):
    path = write_csv(tmp_path / "c.csv", f"{header}\n13900210021,13900210022,13900210023\n")
    assert read_contacts([path]).files[0].mobile_column == expected


def test_mobile_column_by_content_when_no_header_says_so(tmp_path):
    text = "客户,备注,联系\n张三,老客户,13900210021\n李四,13900210022,139 0021 0023\n王五,x,\n"
    contacts = read_contacts([write_csv(tmp_path / "c.csv", text)])
    assert contacts.files[0].mobile_column == "联系"
    assert column(contacts, "_mobile_raw") == ["13900210021", "139 0021 0023", ""]


def test_mobile_column_option_overrides(tmp_path):
    path = write_csv(tmp_path / "c.csv", "手机,备用号码\n13900210021,13900210022\n")
    assert read_contacts([path], mobile_column="备用号码").files[0].mobile_column == "备用号码"
    with pytest.raises(ContactsError) as error:
        read_contacts([path], mobile_column="电话")
    message = str(error.value)
    assert "'电话'" in message and "c.csv" in message and "手机, 备用号码" in message


def test_no_mobile_column_lists_the_columns():
    with pytest.raises(ContactsError) as error:
        read_contacts([DATA / "no_mobile.csv"])
    assert str(error.value) == (
        f"no mobile column in {DATA / 'no_mobile.csv'}; columns found: 姓名, 城市, 备注; "
        "use --mobile-column"
    )


# --- several files ------------------------------------------------------------------------------


def test_several_files_union_of_columns_in_first_seen_order(tmp_path):
    a = write_csv(tmp_path / "a.csv", "姓名,手机号码\n张三,13900210021\n", "gbk")
    b = write_xlsx(
        tmp_path / "b.xlsx", {"S": [["phone", "城市", "姓名"], [13900210022, "上海", "李四"]]}
    )
    contacts = read_contacts([a, str(b)])
    assert contacts.columns == ["姓名", "手机号码", "phone", "城市"]
    assert column(contacts, "手机号码") == ["13900210021", ""]
    assert column(contacts, "phone") == ["", "13900210022"]
    assert column(contacts, "_mobile_raw") == ["13900210021", "13900210022"]
    assert column(contacts, "_source") == ["a.csv", "b.xlsx:S"]
    assert [f.path for f in contacts.files] == [str(a), str(b)]
    assert list(contacts.frame.index) == [0, 1]
    assert contacts.frame["_source_row"].dtype == "int64"


def test_sample_data():
    contacts = read_contacts([SAMPLES / "contacts.xlsx", SAMPLES / "contacts.csv"])
    xlsx, csv = contacts.files
    assert xlsx.source == "contacts.xlsx:Sheet1" and csv.source == "contacts.csv"
    assert xlsx.rows >= 250 and xlsx.blank_rows >= 2 and csv.rows >= 90
    assert xlsx.mobile_column == csv.mobile_column == "手机号码"
    assert contacts.columns == HEADERS
    first = contacts.frame.iloc[0]
    assert first["_source_row"] == 3  # title row 1, header row 2
    raw = contacts.frame["_mobile_raw"]
    assert raw.str.fullmatch(r"1[3-9]\d{9}").sum() > 200
    assert not raw.str.endswith(".0").any()
    assert raw.str.contains("E+10", regex=False).any()
    assert (contacts.frame["姓名"] == "").any()


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("not_really.xlsx", "not an Excel workbook"),
        ("truncated.xlsx", "damaged or truncated"),
        ("web_export.xls", "HTML"),
        ("empty.csv", "is empty"),
        ("header_only.csv", "no contact rows"),
        ("contacts.json", "unsupported file type '.json'"),
        ("binary.csv", "binary file, not CSV text"),
        ("missing.csv", "not found"),
    ],
)
def test_bad_files_raise_contacts_error_naming_the_file(name, words):
    with pytest.raises(ContactsError) as error:
        read_contacts([DATA / name])
    assert str(DATA / name) in str(error.value)
    assert words in str(error.value)
    assert error.value.exit_code == ExitCode.BAD_INPUT


def test_text_in_no_known_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"name,phone\n\xff\xfe\xff,13900210021\n")
    with pytest.raises(ContactsError, match=r"latin\.csv: it is neither UTF-8 nor GBK"):
        read_contacts([path])


def test_a_folder_and_an_unreadable_file(tmp_path, monkeypatch):
    with pytest.raises(ContactsError, match="is a folder"):
        read_contacts([tmp_path])
    locked = write_csv(tmp_path / "locked.csv", "手机\n13900210021\n")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: make the OS say no

        def deny(self):
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(ContactsError, match=r"locked\.csv: permission denied"):
        read_contacts([locked])


def test_no_files_and_bad_header_row():
    with pytest.raises(ContactsError, match="no contact files"):
        read_contacts([])
    with pytest.raises(ContactsError, match="header row"):
        read_contacts([SAMPLES / "contacts.csv"], header_row=0)


def test_cli_reports_bad_contact_files_with_exit_code_3(tmp_path, monkeypatch, sqlite_url):
    monkeypatch.setenv("CAMPAIGN_ACCOUNT", "demo")
    monkeypatch.setenv("CAMPAIGN_PASSWORD", "demo-secret")
    runner = CliRunner()
    cases = [
        (["plan", str(DATA / "nope.csv")], "not found"),
        (["plan", str(DATA / "truncated.xlsx")], "damaged or truncated"),
        (["plan", str(DATA / "no_mobile.csv")], "no mobile column"),
        (["plan", str(SAMPLES / "contacts.xlsx"), "--sheet", "Nope"], "no sheet 'Nope'"),
        (["plan", str(SAMPLES / "contacts.xlsx"), "--mobile-column", "电话"], "no column '电话'"),
        (["send", str(DATA / "no_mobile.csv"), "--gateway", "simulator", "--yes"], "no mobile"),
    ]
    for args, words in cases:
        result = runner.invoke(app, [*args, "--text", "hi", "--db", sqlite_url])
        assert result.exit_code == ExitCode.BAD_INPUT, (args, result.output)
        assert words in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_cli_plan_reads_every_file_and_counts_blank_rows(tmp_path, sqlite_url):
    result = CliRunner().invoke(
        app,
        ["plan", str(SAMPLES / "contacts.xlsx"), str(SAMPLES / "contacts.csv"), "--text",
         "{姓名|会员}您好", "--db", sqlite_url, "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    contacts = read_contacts([SAMPLES / "contacts.xlsx", SAMPLES / "contacts.csv"])
    assert summary["rows"] == len(contacts.frame)
    assert summary["blank_rows"] == sum(f.blank_rows for f in contacts.files) > 0
    assert [f["source"] for f in summary["files"]] == ["contacts.xlsx:Sheet1", "contacts.csv"]
    assert summary["outcomes"]["invalid"] > 0 and summary["outcomes"]["duplicate"] > 0


def test_frame_columns_are_pandas_strings(tmp_path):
    path = write_csv(tmp_path / "c.csv", "手机,名\n13900210021,a\n")
    frame = read_contacts([path]).frame
    assert frame["手机"].dtype == pd.StringDtype("pyarrow", na_value=float("nan"))
    assert frame["_source"].dtype == frame["手机"].dtype


@pytest.mark.parametrize(
    "text",
    [
        "张三,1390021002\n李四,13900210022\n王五,13900210023\n",  # first mobile a digit short
        "张三,021-12345678\n李四,13900210022\n",  # first number a landline
        "13900210021,\n13900210022,李四\n",  # first row sparser than the rest
    ],
)
def test_a_headerless_first_row_is_data_not_lost(tmp_path, text):
    contacts = read_contacts([write_csv(tmp_path / "c.csv", text)])
    assert contacts.columns == ["column_A", "column_B"]
    assert column(contacts, "_source_row") == list(range(1, text.count("\n") + 1))


def test_a_date_caption_above_a_loose_header_is_not_data(tmp_path):
    rows = [["2024-11-11"], ["客户", "客户手机(必填)"], ["a", "13900210021"]]
    contacts = read_contacts([write_xlsx(tmp_path / "c.xlsx", {"S": rows})])
    assert contacts.columns == ["客户", "客户手机(必填)"]
    assert column(contacts, "_source_row") == [3]
