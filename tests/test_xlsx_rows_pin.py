"""xlsx_rows.write_rows_xml uses xlsxwriter internals (its constant_memory row file): xlsxwriter
is pinned to the minor version that was tested (pyproject.toml). These tests fail loudly on
another version, or when an internal the fast path relies on is gone or changed shape."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path

import xlsxwriter
from xlsxwriter.sharedstrings import SharedStringTable
from xlsxwriter.worksheet import Worksheet

from campaign.xlsx_rows import fast_path_available

TESTED = (3, 3)  # the minor version xlsx_rows.py was written and measured against
RECHECK = (
    "campaign/xlsx_rows.py writes rows straight into xlsxwriter's constant_memory row file "
    "(Worksheet.row_data_fh, previous_row, dim_rowmin/dim_rowmax/dim_colmin/dim_colmax, "
    "_write_single_row, str_table and SharedStringTable._get_shared_string_index/count/"
    "unique_count). Before widening the xlsxwriter pin in pyproject.toml, read how the new "
    "version writes a row in Worksheet._write_single_row/_write_cell, run tests/test_export.py "
    "(which compares the fast path with the public cell API cell by cell) and "
    "bench/bench_export.py, then update TESTED here."
)


def _minor(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def test_xlsxwriter_is_the_tested_minor_version():
    installed = version("xlsxwriter")
    assert _minor(installed) == TESTED, f"xlsxwriter {installed} is not {TESTED}: {RECHECK}"


def test_the_pin_in_pyproject_is_the_tested_minor_version():
    text = (Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    upper = f"<{TESTED[0]}.{TESTED[1] + 1}"
    assert f'"xlsxwriter>={TESTED[0]}.{TESTED[1]}' in text and upper in text, RECHECK


def test_internals_used_by_the_fast_path_still_exist(tmp_path):
    book = xlsxwriter.Workbook(str(tmp_path / "x.xlsx"), {"constant_memory": True})
    sheet = book.add_worksheet()
    try:
        assert fast_path_available(sheet), RECHECK
        for name in ("dim_rowmin", "dim_rowmax", "dim_colmin", "dim_colmax", "previous_row"):
            assert hasattr(sheet, name), f"Worksheet.{name} is gone: {RECHECK}"
        assert hasattr(sheet.row_data_fh, "buffer"), f"the row file is not text: {RECHECK}"
        params = list(inspect.signature(Worksheet._write_single_row).parameters)
        assert params == ["self", "current_row_num"], f"_write_single_row{params}: {RECHECK}"
        assert isinstance(sheet.str_table, SharedStringTable), RECHECK
        params = list(inspect.signature(SharedStringTable._get_shared_string_index).parameters)
        assert params == ["self", "string"], f"_get_shared_string_index{params}: {RECHECK}"
        for name in ("count", "unique_count"):
            assert isinstance(getattr(sheet.str_table, name, None), int), f"{name}: {RECHECK}"
    finally:
        book.close()


def test_fast_path_is_refused_without_constant_memory(tmp_path):
    book = xlsxwriter.Workbook(str(tmp_path / "x.xlsx"))
    try:
        assert not fast_path_available(book.add_worksheet())
    finally:
        book.close()
