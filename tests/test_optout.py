"""The suppression list: the store module on SQLite and PostgreSQL, and `campaign optout`."""

from __future__ import annotations

import json

import openpyxl
import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.store import open_store
from campaign.store import suppression as sup


def test_add_counts_only_new_numbers(engine):
    assert sup.add(engine, ["13800138000", "13900139000"], "manual") == 2
    assert sup.add(engine, ["13800138000", "13700137000", "13700137000"], "import", "x.csv") == 1
    assert sup.list_all(engine) == ["13700137000", "13800138000", "13900139000"]
    assert sup.suppressed_set(engine) == {"13700137000", "13800138000", "13900139000"}
    assert sup.count(engine) == 3


def test_first_reason_is_kept(engine):
    sup.add(engine, ["13800138000"], "optout reply", "TD")
    sup.add(engine, ["13800138000"], "manual")
    [entry] = sup.entries(engine, ["13800138000"])
    assert entry["reason"] == "optout reply"
    assert entry["detail"] == "TD"
    assert entry["added_at"] is not None


def test_remove_and_is_suppressed(engine):
    sup.add(engine, ["13800138000", "13900139000"])
    assert sup.is_suppressed(engine, "13800138000")
    assert sup.remove(engine, ["13800138000", "13600136000"]) == 1
    assert not sup.is_suppressed(engine, "13800138000")
    assert sup.list_all(engine) == ["13900139000"]
    assert sup.remove(engine, []) == 0
    assert sup.add(engine, []) == 0


def test_many_numbers_in_chunks(engine):
    mobiles = [f"138{i:08d}" for i in range(5000)]
    assert sup.add(engine, mobiles, "import") == 5000
    assert sup.add(engine, [*mobiles[:10], "13900000000"], "import") == 1
    assert len(sup.suppressed_set(engine)) == 5001
    assert sup.remove(engine, mobiles) == 5000


def test_add_in_joins_the_callers_transaction(engine):
    with engine.begin() as conn:
        assert sup.add_in(conn, ["13800138000"], "optout reply", "退订") == 1
    assert sup.is_suppressed(engine, "13800138000")


# --- campaign optout ---------------------------------------------------------------------

runner = CliRunner()


def optout(store_url: str, *args: str):
    return runner.invoke(app, ["optout", *args, "--db", store_url])


def test_cli_add_list_remove(store_url):
    result = optout(store_url, "add", "13800138000", "+86 139-0013-9000", "13800138000")
    assert result.exit_code == 0, result.output
    assert "added 2" in result.stdout
    again = optout(store_url, "add", "13800138000", "--json")
    assert json.loads(again.stdout) == {"added": 0, "already": 1}
    listed = optout(store_url, "list")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == ["13800138000", "13900139000"]
    assert json.loads(optout(store_url, "list", "--json").stdout) == [
        "13800138000",
        "13900139000",
    ]
    removed = optout(store_url, "remove", "13800138000", "13700137000", "--json")
    assert json.loads(removed.stdout) == {"removed": 1, "not_listed": 1}
    assert optout(store_url, "list").stdout.splitlines() == ["13900139000"]


def test_cli_add_invalid_changes_nothing(store_url):
    result = optout(store_url, "add", "13800138000", "12345", "abc")
    assert result.exit_code == 3
    assert "'12345'" in result.stderr
    assert "'abc'" in result.stderr
    assert "nothing changed" in result.stderr
    assert json.loads(optout(store_url, "list", "--json").stdout) == []


def test_cli_import_file(tmp_path, store_url):
    path = tmp_path / "optouts.csv"
    path.write_text(
        "客户,手机\n甲,13800138000\n乙,12\n丙,138 0013 8000\n丁,13900139000\n,\n",
        encoding="utf-8",
    )
    result = optout(store_url, "import", str(path), "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures == {
        "source": "optouts.csv",
        "rows": 4,
        "added": 2,
        "already": 0,
        "repeated": 1,
        "invalid": 1,
    }
    assert "optouts.csv row 3" in result.stderr
    engine = open_store(store_url)
    [entry] = sup.entries(engine, ["13900139000"])
    engine.dispose()
    assert (entry["reason"], entry["detail"]) == ("import", "optouts.csv row 5")


def test_cli_import_xlsx_with_mobile_column(tmp_path, sqlite_url):
    book = openpyxl.Workbook()
    book.active.append(["姓名", "备用号码", "号码"])
    book.active.append(["甲", 13800138000, 13700137000])
    book.save(tmp_path / "o.xlsx")
    book.close()
    result = optout(sqlite_url, "import", str(tmp_path / "o.xlsx"), "--mobile-column", "备用号码")
    assert result.exit_code == 0, result.output
    assert optout(sqlite_url, "list").stdout.split() == ["13800138000"]


def test_cli_import_missing_file_exits_3(tmp_path, sqlite_url):
    result = optout(sqlite_url, "import", str(tmp_path / "none.csv"))
    assert result.exit_code == 3
    assert "none.csv" in result.stderr


def test_cli_list_and_remove_never_create_a_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'nothing.db'}"
    assert optout(url, "list").stdout == ""
    assert optout(url, "list", "--json").stdout.strip() == "[]"
    assert optout(url, "remove", "13800138000").exit_code == 0
    assert not (tmp_path / "nothing.db").exists()


def test_read_suppressed(tmp_path, store_url):
    assert sup.read_suppressed(f"sqlite:///{tmp_path / 'none.db'}") == set()
    engine = open_store(store_url)
    sup.add(engine, ["13800138000"])
    engine.dispose()
    assert sup.read_suppressed(store_url) == {"13800138000"}


@pytest.mark.parametrize("command", ["add", "remove"])
def test_optout_with_an_unparseable_store_url_is_a_usage_error(command):
    result = runner.invoke(app, ["optout", command, "13900139000", "--db", "://nothing"])
    assert result.exit_code == 2, result.output  # SPEC: a --db that cannot be parsed
    assert "Error: the store URL" in result.output
    assert "unexpected" not in result.output
