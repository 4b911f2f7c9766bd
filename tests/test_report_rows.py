"""report_rows: one rule of a valid report, row-wise (pushes) and a column at a time (files).

The two forms agree: whatever a push accepts, a file accepts alike (same number, same time);
on text without control characters and with a mobile in a push's form, both find the same
problems. Where the file form is kinder to spreadsheet cells, the difference is pinned here.
Each surface names a row's first problem in its own order and words.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from campaign.push_params import PushRefused, parse_reports
from campaign.report_files import REASONS as FILE_REASONS
from campaign.report_rows import (
    MAX_STATUS,
    CheckedColumns,
    Malformed,
    Problem,
    Report,
    check_report,
    check_report_columns,
    report_number,
    trimmed,
)

ROW = ("20261125100000001", "2611251002", "13900000021", "DELIVRD")
PIECES = ["0", "1", "3", "9", " ", "-", "+", ":", "/", "a", "é", "\u3000", "\x00", "\x1c",
          "\x85", "\t", "\n", "2026-11-25 10:02", "2611251002", "13900000021", "+86"]  # fmt: skip


Row = tuple[str, str, str, str]


def _columns(rows: list[Row]) -> CheckedColumns:
    cells = [trimmed(pa.array(column, pa.string())) for column in zip(*rows, strict=True)]
    return check_report_columns(*cells)


def _column_problems(checked: CheckedColumns, index: int) -> set[Problem]:
    return {problem for problem, rows in checked.problems.items() if rows[index].as_py()}


def _texts(pieces: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), max_size=5).map("".join)


def _field(*good: str) -> st.SearchStrategy[str]:
    """A well-formed value (padded or not) half the time, else any text of PIECES."""
    padded = st.tuples(_texts([" ", "\t", "\u3000"]), st.sampled_from(good), _texts([" ", "\n"]))
    return st.one_of(padded.map("".join), _texts(PIECES))


fields = st.tuples(
    _field("1", "20261125100000001", "1" * 64),
    _field("2611251002", "2026-11-25 10:02", "2026/11/25T10:02:00Z", "45000.5"),
    _field("13900000021", "+8613900000021", "139 0000-0021", "+1 415 555 0100", "12345"),
    _field("DELIVRD", "成功", "x" * MAX_STATUS),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(fields, min_size=1, max_size=20))
def test_what_a_push_accepts_a_file_accepts_alike(rows: list[Row]) -> None:
    checked = _columns(rows)
    for index, row in enumerate(rows):
        one = check_report(*row)
        event("accepted" if isinstance(one, Report) else "malformed")
        if isinstance(one, Report):
            assert not _column_problems(checked, index), row
            got = (checked.mobile[index].as_py(), checked.report_time[index].as_py())
            assert got == (one.mobile, one.report_time)
            assert checked.raw_time[index].as_py() == one.raw_time


PLAIN = ["0", "1", "3", "9", " ", ":", "/", "a", "é", "2026-11-25 10:02", "2611251002"]
push_mobiles = st.tuples(
    st.sampled_from(["", "+", "+86 ", "0086-"]), _texts(["1", "3", "9", "0", " ", "-", "a"])
).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_texts(PLAIN), _texts(PLAIN), push_mobiles, _texts(PLAIN)), min_size=1))
def test_on_plain_text_both_forms_find_the_same_problems(rows: list[Row]) -> None:
    checked = _columns(rows)
    for index, row in enumerate(rows):
        one = check_report(*row)
        found = set(one.problems) if isinstance(one, Malformed) else set()
        assert found == _column_problems(checked, index), row


@pytest.mark.parametrize(
    ("row", "problems"),
    [
        (ROW, set()),
        ((" 1 ", " 2026-11-25 10:02:00 ", " +86 139-0000-0021 ", " DELIVRD "), set()),
        (("1a", *ROW[1:]), {Problem.MSGID}),
        (("1" * 65, *ROW[1:]), {Problem.MSGID}),
        ((ROW[0], "2026-13-01", *ROW[2:]), {Problem.TIME}),
        ((*ROW[:2], "1234", ROW[3]), {Problem.MOBILE}),
        ((*ROW[:3], ""), {Problem.STATUS_EMPTY}),
        ((*ROW[:3], "x" * (MAX_STATUS + 1)), {Problem.STATUS_LONG}),
        ((*ROW[:3], "DEL\x00"), {Problem.CONTROL}),
        (("x", "x", "x", ""), {Problem.MSGID, Problem.TIME, Problem.MOBILE, Problem.STATUS_EMPTY}),
    ],
)
def test_the_problems_of_a_report(row: Row, problems: set[Problem]) -> None:
    one = check_report(*row)
    assert (set(one.problems) if isinstance(one, Malformed) else set()) == problems
    assert _column_problems(_columns([row]), 0) == problems


def test_a_number_keeps_its_digits_and_a_mobile_its_eleven() -> None:
    assert report_number("+86 139-0000-0021") == "13900000021"
    assert report_number("+1 415 555 0100") == "14155550100"
    assert report_number("++12345") is None and report_number("1234") is None
    assert _columns([(*ROW[:2], "+1 415 555 0100", ROW[3])]).mobile.to_pylist() == ["14155550100"]


@pytest.mark.parametrize(
    ("row", "push_problems", "file_problems"),
    [  # the file form is kinder to what spreadsheets do to a cell
        ((*ROW[:2], "（139）0000-0021", ROW[3]), {Problem.MOBILE}, set()),
        ((*ROW[:2], "'13900000021", ROW[3]), {Problem.MOBILE}, set()),
        ((*ROW[:2], "139\t0000\t0021", ROW[3]), {Problem.MOBILE}, set()),
        ((*ROW[:2], "++12345", ROW[3]), {Problem.MOBILE}, set()),
        ((*ROW[:3], "DEL\tIVRD"), {Problem.CONTROL}, set()),  # tab, CR, LF pass in a cell
        (("1\x002", *ROW[1:]), {Problem.MSGID}, {Problem.CONTROL, Problem.MSGID}),
    ],
)
def test_where_the_two_forms_differ(
    row: Row, push_problems: set[Problem], file_problems: set[Problem]
) -> None:
    one = check_report(*row)
    assert (set(one.problems) if isinstance(one, Malformed) else set()) == push_problems
    assert _column_problems(_columns([row]), 0) == file_problems


def test_each_surface_names_the_first_problem_in_its_own_words() -> None:
    row = ("1a", ROW[1], "x", ROW[3])  # msgid and mobile both wrong
    with pytest.raises(PushRefused) as refused:
        parse_reports(dict(zip(("msgid", "reportTime", "mobile", "status"), row, strict=True)))
    assert refused.value.reason == "mobile is not a number"
    assert list(FILE_REASONS)[:3] == [Problem.CONTROL, Problem.MSGID, Problem.MOBILE]
    batch = parse_reports(
        {"report": f"1,2026-13-01,{ROW[2]},D||1,{ROW[1]},{ROW[2]},||{','.join(ROW)}"}
    )
    assert len(batch.rows) == 1 and batch.malformed == [
        "report #1: reportTime '2026-13-01' is not a real time (mobile 139****0021)",
        "report #2: status is empty (mobile 139****0021)",
    ]
