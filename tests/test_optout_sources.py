"""Every way onto the suppression list keeps its source, date and who: a reply pushed to
a real receiver, a blacklist report (pushed and imported), `optout import`, `optout add`;
shown by `optout list --details` (table and JSON) and `optout export` (read back)."""

from __future__ import annotations

import csv
import getpass
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import openpyxl
import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import ReceiverSettings, Settings
from campaign.receiver import Receiver

runner = CliRunner()
REPLY, PUSHED_BLACK, IMPORTED, ADDED, FILE_BLACK = (
    "13900210001",
    "13900210002",
    "13900210003",
    "13900210004",
    "13900210005",
)
FIELDS = ["mobile", "added_at", "reason", "detail", "added_by"]


def _user() -> str:
    return getpass.getuser()


def _cli(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def filled(tmp_path, store_url) -> str:
    """A store that got one entry each way; returns its URL."""
    settings = Settings(
        store_url=store_url,
        receiver=replace(ReceiverSettings(), receiver="rx", pswd="pw", suppress_blacklisted=True),
    )
    with Receiver(settings) as rx:
        mo = {"receiver": "rx", "pswd": "pw", "moTime": "2611251002", "mobile": REPLY}
        assert httpx.post(rx.mo_url, data={**mo, "msg": "退订"}).text == "OK"
        dlr = {"receiver": "rx", "pswd": "pw", "msgid": "9001", "reportTime": "2611251003"}
        black = {**dlr, "mobile": PUSHED_BLACK, "status": "MBBLACK"}
        assert httpx.get(rx.dlr_url, params=black).text == "OK"
    optouts = tmp_path / "optouts.csv"
    optouts.write_text(f"客户,手机\n甲,bad\n乙,{IMPORTED}\n", encoding="utf-8")
    _cli("optout", "import", str(optouts), "--db", store_url)
    _cli("optout", "add", ADDED, "--note", "asked on the phone", "--db", store_url)
    reports = tmp_path / "platform-1125.csv"
    reports.write_text(
        f"msgid,mobile,status,reportTime\n9002,{FILE_BLACK},DB:0141,2611251004\n", "utf-8"
    )
    config = tmp_path / "c.toml"
    config.write_text("[receiver]\nsuppress_blacklisted = true\n", "utf-8")
    _cli("reports", "import", str(reports), "--config", str(config), "--db", store_url)
    return store_url


def _expected() -> dict[str, tuple[str, str, str]]:
    """mobile -> (reason, detail, added_by)."""
    return {
        REPLY: ("optout reply", "退订 (2026-11-25T10:02:00+08:00)", "receiver"),
        PUSHED_BLACK: ("blacklist status", "report status MBBLACK", "receiver"),
        IMPORTED: ("import", "optouts.csv row 3", _user()),
        ADDED: ("manual", "asked on the phone", _user()),
        FILE_BLACK: (
            "blacklist status",
            "report status DB:0141 (platform-1125.csv)",
            "reports import",
        ),
    }


def _recent(text: str) -> bool:
    """A China-time stamp with its offset, taken within the last few minutes."""
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(hours=8), text
    return timedelta(0) <= datetime.now(UTC) - moment < timedelta(minutes=5)


def test_list_details_json_has_source_date_and_who(filled):
    entries = json.loads(_cli("optout", "list", "--details", "--json", "--db", filled).stdout)
    assert [e["mobile"] for e in entries] == sorted(_expected())
    for entry in entries:
        assert list(entry) == FIELDS
        assert (entry["reason"], entry["detail"], entry["added_by"]) == _expected()[entry["mobile"]]
        assert "T" in entry["added_at"] and _recent(entry["added_at"])


def test_list_stays_one_number_a_line_and_json_a_list(filled):
    assert _cli("optout", "list", "--db", filled).stdout.splitlines() == sorted(_expected())
    assert json.loads(_cli("optout", "list", "--json", "--db", filled).stdout) == sorted(
        _expected()
    )


def test_list_details_table(filled):
    lines = _cli("optout", "list", "-l", "--db", filled).stdout.splitlines()
    assert lines[0].split("  ")[0] == "mobile"
    assert "added (China time)" in lines[0] and "reason" in lines[0] and "by" in lines[0]
    assert len(lines) == 1 + len(_expected())
    for line in lines[1:]:
        mobile = line.split()[0]
        reason, detail, who = _expected()[mobile]
        assert reason in line and detail in line and line.rstrip().endswith(who)
        stamp = " ".join(line.split()[1:3])
        assert _recent(f"{stamp}+08:00")


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_export_reads_back(filled, tmp_path, suffix):
    out = tmp_path / f"optouts-out{suffix}"
    result = _cli("optout", "export", "-o", str(out), "--db", filled, "--json")
    assert json.loads(result.stdout) == {"path": str(out), "rows": len(_expected())}
    if suffix == ".csv":
        with out.open(encoding="utf-8-sig", newline="") as file:
            rows = list(csv.reader(file))
    else:
        book = openpyxl.load_workbook(out, read_only=True)
        try:
            rows = [list(r) for r in book["optouts"].iter_rows(values_only=True)]
        finally:
            book.close()
    assert rows[0] == FIELDS
    assert [r[0] for r in rows[1:]] == sorted(_expected())  # mobiles stay text
    for mobile, added_at, reason, detail, who in rows[1:]:
        assert (reason, detail, who) == _expected()[mobile]
        assert " " in added_at and _recent(added_at)


def test_export_of_an_empty_or_missing_store(tmp_path):
    out = tmp_path / "none.csv"
    url = f"sqlite:///{tmp_path / 'nothing.db'}"
    _cli("optout", "export", "-o", str(out), "--db", url)
    assert out.read_text("utf-8-sig").splitlines() == [",".join(FIELDS)]
    assert not (tmp_path / "nothing.db").exists()


def test_export_refuses_other_extensions(tmp_path, sqlite_url):
    result = runner.invoke(
        app, ["optout", "export", "-o", str(tmp_path / "x.txt"), "--db", sqlite_url]
    )
    assert result.exit_code == 3
    assert ".xlsx or .csv" in result.stderr
    assert not (tmp_path / "x.txt").exists()


def test_export_writes_formula_looking_text_as_text(tmp_path, sqlite_url):
    _cli("optout", "add", ADDED, "--note", "=HYPERLINK(1)", "--db", sqlite_url)
    out = tmp_path / "o.csv"
    _cli("optout", "export", "-o", str(out), "--db", sqlite_url)
    with out.open(encoding="utf-8-sig", newline="") as file:
        row = list(csv.reader(file))[1]
    assert row[3] == "'=HYPERLINK(1)"


def test_list_details_of_a_schema_1_store_reads_without_upgrading(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    _cli("optout", "add", ADDED, "--db", url)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE suppression DROP COLUMN added_by")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()
    [entry] = json.loads(_cli("optout", "list", "--details", "--json", "--db", url).stdout)
    assert (entry["mobile"], entry["reason"], entry["added_by"]) == (ADDED, "manual", None)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            "1",
        )
    conn.close()
