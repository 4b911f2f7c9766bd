"""Report times, opt-out keywords, and the report/inbound store modules."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from campaign.optout_keywords import OptoutMatcher, fold_text
from campaign.report_times import excel_serial_time, parse_report_time
from campaign.report_times import parse_report_times as parse_many
from campaign.store import open_store
from campaign.store.inbound import InboundPart, inbound_messages, store_inbound
from campaign.store.reports import count_reports, count_unmatched, insert_reports
from campaign.store.schema import inbound_parts, suppression
from tests.support.plans import accepted_batch

CANONICAL = "2026-11-25T10:02:00+08:00"


@pytest.mark.parametrize(
    "text",
    [
        "2611251002",
        "20261125100200",
        "202611251002",
        "2026-11-25 10:02",
        "2026-11-25 10:02:00",
        "2026/11/25 10:02",
        "2026/11/25 10:02:00",
        "2026-11-25T10:02:00",
        " 2026-11-25 10:02:00 ",
        "2026-11-25T10:02:00+08:00",
        "2026-11-25T02:02:00Z",
        "2026-11-25 03:02:00+01:00",
        "2026-11-25 10:02:00.000",
    ],
)
def test_every_form_of_one_time_is_the_same_canonical_string(text):
    assert parse_report_time(text) == CANONICAL


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2613251002", "2602301002", "2611252400", "2611251060", "261125100",
     "2026-11-31 10:00", "2026-11-25 10:02:00+25:00", "12345678901234567",
     "0001-01-01 00:00+14:00", "9999-12-31 23:59-10:00"],
)  # fmt: skip
def test_impossible_times_are_none(text):
    assert parse_report_time(text) is None


def test_excel_serial_dates():
    assert excel_serial_time(46351.41805555556) == datetime(2026, 11, 25, 10, 2)
    assert parse_report_time("46351.41805555556") == CANONICAL
    assert parse_report_time("2026-11-25") == "2026-11-25T00:00:00+08:00"


def test_vectorized_parse_keeps_index_and_marks_bad():
    values = pd.Series(["2611251002", None, "bad", "2026-11-25 10:02"], index=[5, 6, 7, 8])
    parsed = parse_many(values)
    assert list(parsed.index) == [5, 6, 7, 8]
    assert parsed.tolist() == [CANONICAL, None, None, CANONICAL]


@pytest.mark.parametrize(
    ("message", "optout"),
    [
        ("T", True), ("td", True), (" td。", True), ("ＴＤ", True), ("退订！", True),
        ("  退订  ", True), ("取消", True), ("r", True), ("【TD】", True),
        ("TD please call me", False),
        ("退订了吗？我想继续", False), ("", False), ("TDD", False), ("谢谢", False),
    ],
)  # fmt: skip
def test_optout_keywords(message, optout):
    matcher = OptoutMatcher(["T", "TD", "R", "退订", "取消"])
    assert matcher(message) is optout


def test_configured_keywords_replace_the_defaults():
    matcher = OptoutMatcher(["STOP", "ｕｎｓｕｂ"])
    assert matcher("stop!") and matcher("UNSUB") and not matcher("TD")
    assert fold_text("  Ｓｔｏｐ。 ") == "stop"


def _row(msgid: str, mobile: str, status: str = "DELIVRD", when: str = CANONICAL) -> tuple:
    return (msgid, mobile, status, when, "2611251002", "push")


def test_insert_reports_counts_new_and_ignores_exact_repeats(store_url):
    engine = open_store(store_url)
    try:
        rows = [_row("1", "13900210021"), _row("1", "13900210022"), _row("1", "13900210021")]
        with engine.begin() as conn:
            assert insert_reports(conn, rows) == 2
        with engine.begin() as conn:
            again = [_row("1", "13900210021"), _row("1", "13900210021", "UNDELIV")]
            assert insert_reports(conn, again) == 1
            assert insert_reports(conn, []) == 0
        with engine.connect() as conn:
            assert count_reports(conn) == 3
    finally:
        engine.dispose()


def test_unmatched_counts_by_msgid_and_mobile(store_url):
    engine = open_store(store_url)
    try:
        accepted_batch(engine, "77", ["13900210021", "13900210022"])
        msgids = pd.Series(["77", "77", "77", "78"])
        mobiles = pd.Series(["13900210021", "13900210022", "13900210099", "13900210021"])
        with engine.connect() as conn:
            assert count_unmatched(conn, msgids, mobiles) == 2
            assert count_unmatched(conn, msgids[:0], mobiles[:0]) == 0
    finally:
        engine.dispose()


def _part(msg: str, ems: tuple[str, int, int] | None = None, mobile: str = "13900210021"):
    if ems is None:
        return InboundPart(mobile, "106", CANONICAL, msg)
    return InboundPart(mobile, "106", CANONICAL, msg, *ems)


def test_inbound_store_reassembles_and_suppresses(store_url):
    engine = open_store(store_url)
    optout = OptoutMatcher(["TD", "退订"])
    try:
        with engine.begin() as conn:
            first = store_inbound(conn, _part("lo", ("9", 3, 2)), optout)
            assert (first.new_part, first.message) == (True, None)
            assert store_inbound(conn, _part("lo", ("9", 3, 2)), optout).new_part is False
            store_inbound(conn, _part("hel", ("9", 3, 1)), optout)
            done = store_inbound(conn, _part(" world", ("9", 3, 3)), optout)
            assert done.message == "hello world"
            reply = store_inbound(conn, _part("退订", mobile="13900210022"), optout)
            assert reply.is_optout and reply.message == "退订"
            repeat = store_inbound(conn, _part("退订", mobile="13900210022"), optout)
            assert repeat.new_part is False
        with engine.connect() as conn:
            messages = inbound_messages(conn)
            listed = conn.execute(sa.select(suppression)).all()
            parts = conn.execute(sa.select(sa.func.count()).select_from(inbound_parts)).scalar()
        assert [(m["mobile"], m["msg"], m["is_optout"]) for m in messages] == [
            ("13900210021", "hello world", False),
            ("13900210022", "退订", True),
        ]
        assert [(r.mobile, r.reason) for r in listed] == [("13900210022", "optout reply")]
        assert parts == 4
    finally:
        engine.dispose()


def test_a_long_message_can_be_an_optout(sqlite_url):
    engine = open_store(sqlite_url)
    try:
        with engine.begin() as conn:
            store_inbound(conn, _part("订", ("3", 2, 2)), OptoutMatcher(["退订"]))
            result = store_inbound(conn, _part("退", ("3", 2, 1)), OptoutMatcher(["退订"]))
        assert (result.message, result.is_optout) == ("退订", True)
    finally:
        engine.dispose()


def test_only_ascii_digits_make_a_time():
    assert parse_report_time("２６１１２５１００２") is None


def test_insert_reports_spanning_several_statements(store_url):
    engine = open_store(store_url)
    try:
        rows = [_row(str(i // 100), f"139{i:08d}") for i in range(2500)]
        with engine.begin() as conn:
            assert insert_reports(conn, rows) == 2500
            assert insert_reports(conn, rows[::-1]) == 0
            assert count_reports(conn) == 2500
    finally:
        engine.dispose()
