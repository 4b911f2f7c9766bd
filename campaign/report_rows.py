"""What a valid delivery report is: the one rule behind pushed reports (`push_params`, one
row at a time) and report files (`report_files`, a column at a time). Pure: no I/O.

A report is four fields, each trimmed of surrounding whitespace:

- msgid: 1 to 64 ASCII digits (`MSGID_PATTERN`);
- mobile: a Chinese mobile (kept as its 11 digits, `campaign.phones`), else any other
  number of 5 to 20 digits (`NUMBER_PATTERN`, kept as its digits: a report for it is
  stored and just matches no recipient);
- status: 1 to MAX_STATUS characters;
- time: a real time in a form of `campaign.report_times` (kept canonical, and as given cut
  to RAW_TIME_CHARS characters);
- and no control character (NUL, ...): such text cannot be stored alike on SQLite and
  PostgreSQL (which refuses NUL).

`check_report` finds the problems of one report, `check_report_columns` those of each row
of four columns. Which problem a surface names when a row has several, and in which words,
is that surface's (`push_params`, `report_files`). Whatever a push accepts, a file accepts
alike; the column form is, as it has always been, kinder to what spreadsheets do to a cell
(both pinned in tests/test_report_rows.py):

- mobile: a pushed mobile may hold spaces, hyphens and one leading `+` around its digits;
  a cell may be in any form `campaign.phones` cleans (full-width digits, Excel's text
  markers, brackets, any whitespace, ...);
- control characters: in a push, any C0/C1 control character in the status or the time is
  a CONTROL problem (one in the msgid or mobile makes it not a number); in a file, one in
  any cell is, except tab, line feed and carriage return (`CONTROL_CHARS_RE2`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from campaign.input_limits import CONTROL_CHARS_RE2
from campaign.patterns import VALID_MOBILE
from campaign.phones import normalize_mobile, normalize_mobiles
from campaign.report_times import parse_report_time, parse_report_times_arrow

MSGID_PATTERN = r"^[0-9]{1,64}$"  # Python re and RE2 alike
NUMBER_PATTERN = r"^[0-9]{5,20}$"  # a number that is not a Chinese mobile: its digits
MAX_STATUS = 64
RAW_TIME_CHARS = 32

_MSGID = re.compile(MSGID_PATTERN)
_NUMBER = re.compile(NUMBER_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1


class Problem(Enum):
    """One way a report is malformed."""

    CONTROL = "control"
    MSGID = "msgid"
    MOBILE = "mobile"
    STATUS_EMPTY = "status_empty"
    STATUS_LONG = "status_long"
    TIME = "time"


class Report(NamedTuple):
    """A valid report, its fields trimmed: `mobile` normalized, `report_time` canonical,
    `raw_time` as given (cut to RAW_TIME_CHARS)."""

    msgid: str
    mobile: str
    status: str
    report_time: str
    raw_time: str


class Malformed(NamedTuple):
    """A malformed report: every problem it has (in Problem order), its number ("" when the
    mobile is not one) and its time as given (trimmed, cut to RAW_TIME_CHARS)."""

    problems: tuple[Problem, ...]
    mobile: str
    raw_time: str


def check_report(msgid: str, report_time: str, mobile: str, status: str) -> Report | Malformed:
    """One pushed report, checked."""
    msgid, report_time, status = msgid.strip(), report_time.strip(), status.strip()
    number = report_number(mobile)
    canonical = parse_report_time(report_time)
    control = _CONTROL.search(status) or _CONTROL.search(report_time)
    msgid_ok = _MSGID.fullmatch(msgid)
    raw_time = report_time[:RAW_TIME_CHARS]
    if number and canonical and msgid_ok and not control and 0 < len(status) <= MAX_STATUS:
        return Report(msgid, number, status, canonical, raw_time)
    found = {
        Problem.CONTROL: control,
        Problem.MSGID: not msgid_ok,
        Problem.MOBILE: number is None,
        Problem.STATUS_EMPTY: not status,
        Problem.STATUS_LONG: len(status) > MAX_STATUS,
        Problem.TIME: canonical is None,
    }
    problems = tuple(problem for problem, hit in found.items() if hit)
    return Malformed(problems, number or "", raw_time)


def report_number(raw: str) -> str | None:
    """The number of a push's mobile (spaces, hyphens and one leading `+` allowed): the
    11-digit form where it is a Chinese mobile, else its digits; None when not a number."""
    text = raw.strip().replace(" ", "").replace("-", "")
    digits = text.removeprefix("+")
    if not _NUMBER.fullmatch(digits):
        return None
    return normalize_number(text)


def normalize_number(text: str) -> str:
    """The 11-digit form where the number is a Chinese mobile, else its digits as pushed
    (a report for any number is kept: it just matches no recipient)."""
    return normalize_mobile(text) or text.lstrip("+")


@dataclass(frozen=True)
class CheckedColumns:
    """The reports of four columns, checked: per Problem, which rows have it; the mobile
    normalized (null where not a number), the time canonical (null where not a real time)
    and as given (cut to RAW_TIME_CHARS)."""

    problems: dict[Problem, pa.Array]
    mobile: pa.Array
    report_time: pa.Array
    raw_time: pa.Array


def trimmed(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column of cells without their surrounding whitespace, as one array."""
    trimmed = pc.utf8_trim_whitespace(column)
    return trimmed.combine_chunks() if isinstance(trimmed, pa.ChunkedArray) else trimmed


def check_report_columns(
    msgid: pa.Array, report_time: pa.Array, mobile: pa.Array, status: pa.Array
) -> CheckedColumns:
    """The reports of a file, a column at a time (pyarrow): columns of text cells, never
    null, already `trimmed`."""
    numbers = report_numbers(mobile)
    times = parse_report_times_arrow(report_time)
    cells = (msgid, report_time, mobile, status)
    problems = {
        Problem.CONTROL: functools.reduce(
            pc.or_, [pc.match_substring_regex(c, CONTROL_CHARS_RE2) for c in cells]
        ),
        Problem.MSGID: pc.invert(pc.match_substring_regex(msgid, MSGID_PATTERN)),
        Problem.MOBILE: pc.is_null(numbers),
        Problem.STATUS_EMPTY: pc.equal(status, ""),
        Problem.STATUS_LONG: pc.greater(pc.utf8_length(status), MAX_STATUS),
        Problem.TIME: pc.is_null(times),
    }
    raw_time = pc.utf8_slice_codeunits(report_time, 0, RAW_TIME_CHARS)
    return CheckedColumns(problems, numbers, times, raw_time)


def report_numbers(raw: pa.Array) -> pa.Array:
    """The number of each mobile cell: the 11-digit mobile where it is one (in any form
    `campaign.phones` cleans), else the cell's digits (without spaces, hyphens and leading
    `+`); null when the cell is not a number at all."""
    clean = pc.match_substring_regex(raw, VALID_MOBILE)
    if pc.all(clean).as_py() is not False:
        return raw
    messy = pc.invert(clean)
    subset = raw.filter(messy)
    normalized = normalize_mobiles(subset.to_pandas())
    digits = pc.utf8_ltrim(pc.replace_substring_regex(subset, r"[\s\-]", ""), "+")
    plain = pc.if_else(pc.match_substring_regex(digits, NUMBER_PATTERN), digits, None)
    fixed = pc.if_else(
        pa.array(normalized["valid"].to_numpy(dtype=bool)),
        pa.array(normalized["mobile"].to_numpy(dtype=object), pa.string()),
        plain,
    )
    return pc.replace_with_mask(raw, messy, fixed)
