"""Hostile input (SPEC "Hostile input and secrets"): small files that would explode a reader
are bad input (exit 3, the limit named) in bounded memory and time; NUL and other control
characters never go out inside an SMS nor reach the store, on SQLite and PostgreSQL alike.

The explosive files run through the real CLI in a child process: its own peak RSS and CPU
time are read with os.wait4 (the child's rusage), so other work on the machine does not count.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import LimitSettings
from campaign.contacts import control_character_rows, read_contacts
from campaign.errors import ContactsError, TemplateError
from campaign.input_limits import check_csv_lines
from campaign.messages import Template
from campaign.report_files import read_report_file
from tests.support import hostile_files as hostile

ROOT = Path(__file__).resolve().parent.parent
MAX_RSS_MB = 500
MAX_CPU_SECONDS = 5.0
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("isolated_cli")  # empty folder, no campaign env


def run_cli(*args: object, cwd: Path) -> tuple[int, str, float, float]:
    """(exit code, stderr, peak RSS in MB, CPU seconds) of `campaign ARGS` in a child."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CAMPAIGN_DEBUG", None)
    log = cwd / "stderr.txt"
    with log.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "campaign", *map(str, args)],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        deadline = time.monotonic() + 60
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                child.kill()
                child.wait()
                pytest.fail(f"campaign {args} still running after 60 s")
            time.sleep(0.02)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
    return child.returncode, log.read_text(), rss_mb, usage.ru_utime + usage.ru_stime


def assert_refused(path: Path, *needles: str, extra: tuple[object, ...] = ()) -> str:
    code, stderr, rss, cpu = run_cli("plan", path, "--text", "hi {name|x}", *extra, cwd=path.parent)
    assert code == 3, (code, stderr)
    assert stderr.startswith("Error: ") and "Traceback" not in stderr, stderr
    assert path.name in stderr, stderr
    for needle in needles:
        assert needle in stderr, stderr
    assert rss < MAX_RSS_MB, f"peak RSS {rss:.0f} MB: {stderr}"
    assert cpu < MAX_CPU_SECONDS, f"CPU {cpu:.1f} s: {stderr}"
    return stderr


# --- workbooks --------------------------------------------------------------------------------


def test_one_cell_at_the_last_cell_of_a_sheet(tmp_path):
    path = hostile.far_cell(tmp_path / "contacts.xlsx")
    stderr = assert_refused(path, "sheet 'Sheet1'", "column XFD", "[limits] max_columns")
    assert "16,384 columns" in stderr


def test_a_declared_dimension_far_beyond_the_data(tmp_path):
    path = hostile.declared_dimension(tmp_path / "dim.xlsx")
    assert_refused(path, "<dimension>", "column XFD", "max_columns")


def test_a_cell_far_below_the_data(tmp_path):
    path = hostile.far_cell(tmp_path / "deep.xlsx", ref="B9999999")
    assert_refused(path, "row 9,999,999", "max_rows")


@pytest.mark.parametrize("with_refs", [True, False], ids=["refs", "no-refs"])
def test_ten_thousand_columns_without_a_mobile_header(tmp_path, with_refs):
    path = hostile.wide_rows(tmp_path / "wide.xlsx", 10_000, with_refs=with_refs)
    assert_refused(path, "10,000 columns", "max_columns")


def test_eleven_million_rows_in_a_small_workbook(tmp_path):
    path = hostile.many_rows(tmp_path / "rows.xlsx", 11_000_000)
    assert path.stat().st_size < 2_000_000
    assert_refused(path, "sheet 'Sheet1'", "max_rows")


def test_one_huge_cell(tmp_path):
    path = hostile.huge_cell(tmp_path / "cell.xlsx", 200_000_000)
    assert_refused(path, "32,767 characters", "max_cell_chars")


def test_a_part_inflating_past_max_part_bytes(tmp_path):
    path = hostile.zip_bomb(tmp_path / "bomb.xlsx", 60_000_000)
    (tmp_path / "limits.toml").write_text("[limits]\nmax_part_bytes = 10000000\n")
    assert_refused(path, "max_part_bytes", extra=("--config", tmp_path / "limits.toml"))


def test_a_part_whose_zip_header_lies_about_its_size(tmp_path):
    """The headers claim 1,000 bytes; the stream inflates to 60 MB: counted, not trusted."""
    path = hostile.zip_bomb(tmp_path / "liar.xlsx", 60_000_000, declared=1000)
    assert_refused(path, "more than the 1,000 bytes its zip header claims")


def test_a_legit_workbook_passes(tmp_path):
    path = hostile.write_workbook(
        tmp_path / "ok.xlsx", hostile.sheet_xml(hostile.HEADER_ROW + hostile.DATA_ROW, "A1:B2")
    )
    contacts = read_contacts([path])
    assert contacts.frame["mobile"].tolist() == ["13900210021"]


# --- CSV and templates ------------------------------------------------------------------------


def test_a_csv_line_of_fifty_million_commas(tmp_path):
    path = hostile.csv_long_line(tmp_path / "line.csv", 50_000_000)
    assert_refused(path, "line 2", "max_line_bytes")


def test_a_csv_of_ten_thousand_columns(tmp_path):
    path = hostile.csv_wide(tmp_path / "wide.csv", 10_000)
    assert_refused(path, "10,000 columns", "max_columns")


def test_a_twelve_megabyte_template_file(tmp_path):
    contacts = tmp_path / "c.csv"
    contacts.write_text("name,mobile\nLi,13900210021\n", encoding="utf-8")
    template = tmp_path / "big.txt"
    template.write_text("您好{name}" * 1_500_000, encoding="utf-8")
    code, stderr, rss, cpu = run_cli("plan", contacts, "-t", template, cwd=tmp_path)
    assert code == 3 and "big.txt" in stderr, stderr
    assert rss < MAX_RSS_MB and cpu < MAX_CPU_SECONDS


def test_template_limits_and_control_characters():
    with pytest.raises(TemplateError, match="max_template_chars"):
        Template.parse("x" * 10_001)
    with pytest.raises(TemplateError, match=r"101 placeholders.*max_placeholders"):
        Template.parse("{a}" * 101)
    with pytest.raises(TemplateError, match=r"control character \(NUL\) at position 3"):
        Template.parse("hi\x00{a}")
    Template.parse("{{literal}} {a}\n\tline two")  # tab, newline and escaped braces are fine
    assert len(Template.parse("{a}" * 5, LimitSettings(max_placeholders=5)).placeholders) == 5


def test_csv_line_check_finds_exactly_the_long_lines():
    limits = LimitSettings(max_line_bytes=100)
    check_csv_lines(b"a,b\n" + (b"x" * 100 + b"\n") * 50, "ok.csv", limits)
    check_csv_lines(b"a,b\r" + b"x" * 100, "cr.csv", limits)  # old Mac line ends count
    with pytest.raises(ContactsError, match="line 3 is 101 bytes"):
        check_csv_lines(b"a,b\nc\n" + b"x" * 101 + b"\n", "long.csv", limits)


def test_a_thousand_columns_without_a_mobile_header_are_quick(tmp_path):
    """Finding the mobile column by content is one vectorized pass, not a call per column."""
    header = ",".join(f"c{i}" for i in range(999)) + ",x"
    rows = [",".join(["abc"] * 999 + [f"1390021{r:04d}"]) for r in range(200)]
    path = tmp_path / "wide.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    started = time.process_time()
    contacts = read_contacts([path])
    assert time.process_time() - started < 3.0
    assert contacts.files[0].mobile_column == "x"


def test_limits_are_configurable(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("name,mobile,a,b\nLi,13900210021,1,2\n", encoding="utf-8")
    (tmp_path / "limits.toml").write_text("[limits]\nmax_columns = 3\n")
    result = runner.invoke(
        app, ["plan", str(path), "--text", "hi", "--config", str(tmp_path / "limits.toml")]
    )
    assert result.exit_code == 3
    assert "c.csv has 4 columns (the limit is 3: [limits] max_columns)" in result.stderr
    (tmp_path / "bad.toml").write_text("[limits]\nmax_rows = 0\n")
    result = runner.invoke(app, ["plan", str(path), "--text", "hi", "--config", "bad.toml"])
    assert result.exit_code == 3 and "limits.max_rows" in result.stderr


# --- control characters -----------------------------------------------------------------------


def nul_csv(path: Path) -> Path:
    """A NUL (and an ESC) in the name column far past the first 64 KB, one clean row."""
    filler = "".join(f"张三,139{i:08d},x\n" for i in range(5000))  # ~100 KB, one text
    rows = "李\x00四,13900210021,x\n王\x1b五,13900210022,x\n赵六,13900210023,x\n"
    path.write_text("姓名,手机号码,备注\n" + filler + rows, encoding="utf-8")
    return path


def test_control_character_rows_name_the_column_and_the_character(tmp_path):
    contacts = read_contacts([nul_csv(tmp_path / "c.csv")])
    rows, reasons = control_character_rows(contacts.frame, ["备注", "姓名"])
    assert rows.tolist() == [len(contacts.frame) - 3, len(contacts.frame) - 2]
    assert reasons.tolist() == [
        "column 姓名 holds a control character (NUL)",
        "column 姓名 holds a control character (ESC)",
    ]
    assert not len(control_character_rows(contacts.frame, ["备注"])[0])


def test_c1_controls_and_del_count_but_tab_and_no_break_space_do_not(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        'name,mobile\nx\x85y,13900210021\n"a\tb",13900210022\na\u00a0b,13900210023\n'
        "c\x7f,13900210024\n",
        encoding="utf-8",
    )
    rows, reasons = control_character_rows(read_contacts([path]).frame, ["name"])
    assert rows.tolist() == [0, 3]
    assert [r.rsplit(" ", 1)[-1] for r in reasons] == ["(U+0085)", "(DEL)"]


def test_plan_marks_rows_with_control_characters_invalid(tmp_path):
    path = nul_csv(tmp_path / "c.csv")
    result = runner.invoke(app, ["plan", str(path), "--text", "{姓名}您好", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcomes"]["invalid"] == 2
    # a column that does not go into the text may hold anything
    result = runner.invoke(app, ["plan", str(path), "--text", "您好", "--json"])
    assert json.loads(result.stdout)["outcomes"]["invalid"] == 0


def test_control_characters_in_a_later_file_of_several_make_its_row_invalid(tmp_path):
    first = tmp_path / "a.csv"
    first.write_text("name,phone\na,13800000001\n", encoding="utf-8")
    second = tmp_path / "b.csv"
    second.write_text("name,phone\nb\x01,13800000002\nc,13800000003\n", encoding="utf-8")
    result = runner.invoke(app, ["plan", str(first), str(second), "--text", "{name}您好", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcomes"] == {
        "ready": 2,
        "invalid": 1,
        "duplicate": 0,
        "suppressed": 0,
        "capped": 0,
        "unsent": 0,
    }


def test_a_control_character_in_a_header_becomes_a_replacement_character(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("na\x01me,mobile\nLi,13900210021\n", encoding="utf-8")
    assert read_contacts([path]).columns == ["na\ufffdme", "mobile"]


def test_a_nul_in_a_template_is_bad_input(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("name,mobile\nLi,13900210021\n", encoding="utf-8")
    (tmp_path / "t.txt").write_bytes("您好\x00{name}".encode())
    result = runner.invoke(app, ["plan", str(path), "-t", "t.txt"])
    assert result.exit_code == 3 and "control character (NUL)" in result.stderr


def test_report_rows_with_control_characters_are_malformed(tmp_path):
    filler = "".join(f"{1000 + i},13900210021,DELIVRD,2511251002\n" for i in range(3000))
    path = tmp_path / "reports.csv"
    path.write_text(
        "msgid,mobile,status,reportTime\n"
        + filler
        + "123,13900210021,DELIV\x00RD,2511251002\n"
        + "124,13900210021,DELIVRD,2511251002\n",
        encoding="utf-8",
    )
    read = read_report_file(path)
    assert len(read.valid) == 3001
    assert read.malformed["reason"].tolist() == ["a cell holds a control character (NUL, ...)"]


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_send_and_import_never_carry_a_nul(tmp_path, monkeypatch, request, store):
    """The same outcome on both stores: the NUL rows are invalid and never sent, nothing
    stored holds a NUL, and a report file with a NUL imports (the row malformed)."""
    from tests.support.simulator import running_simulator

    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "pg_url")
    path = nul_csv(tmp_path / "c.csv")
    monkeypatch.setenv("CAMPAIGN_ACCOUNT", "demo")
    monkeypatch.setenv("CAMPAIGN_PASSWORD", "demo-secret")
    with running_simulator() as sim:
        result = runner.invoke(
            app,
            [
                "send",
                str(path),
                "--text",
                "{姓名}您好",
                "--db",
                url,
                "--gateway",
                sim.url,
                "--yes",
                "--json",
            ],
        )
        sent = [r for r in sim.received() if r.sent]
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcomes"]["invalid"] == 2
    assert sent and not any(_has_control(r.msg) for r in sent)
    assert "13900210021" not in {m for r in sent for m in r.mobiles}
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT reason, message, cells FROM recipients")).all()
    engine.dispose()
    assert not any("\x00" in (value or "") for row in rows for value in row)
    reasons = {row.reason for row in rows if row.reason}
    assert "column 姓名 holds a control character (NUL)" in reasons
    reports = tmp_path / "reports.csv"
    reports.write_text(
        "msgid,mobile,status,reportTime\n" + "1,13900210021,DEL\x00IVRD,2511251002\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["reports", "import", str(reports), "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"][0]["malformed"] == 1


def _has_control(text: str) -> bool:
    return any((ord(c) < 32 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F for c in text)


def test_peak_memory_is_measured_per_child():
    """The measure itself: a child that allocates 300 MB reports about that much."""
    code = "b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    child = subprocess.Popen([sys.executable, "-c", code])
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert 290 < usage.ru_maxrss / 1024 < 450
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
