"""The push receiver, served for real by uvicorn on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from campaign.config import GatewaySettings, ReceiverSettings, Settings
from campaign.gateway.client import GatewayClient
from campaign.gateway.protocol import Accepted
from campaign.gateway.simulator import Simulator
from campaign.receiver import Receiver, mask_mobile
from campaign.receiver_writer import StoreWriter, Work
from campaign.store import open_store
from campaign.store.inbound import inbound_messages
from campaign.store.results import unmatched_reports
from campaign.store.schema import inbound_parts, reports, suppression
from tests.support.plans import accepted_batch

DLR = {"msgid": "1234567890100", "reportTime": "2611251002", "mobile": "13900210021"}


def _settings(url: str, **receiver: object) -> Settings:
    return Settings(store_url=url, receiver=replace(ReceiverSettings(), **receiver))


@pytest.fixture
def rx(sqlite_url) -> Iterator[Receiver]:
    with Receiver(_settings(sqlite_url)) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def refusing(tmp_path_factory) -> Iterator[Receiver]:
    """One receiver for the tests of pushes it must refuse (they all leave the store empty)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('refusing') / 'campaign.db'}"
    with Receiver(_settings(url)) as receiver:
        yield receiver


def _rows(engine: sa.Engine, table: sa.Table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(table.c[0]))]


def test_pushed_report_is_stored_then_ok(store_url):
    with Receiver(_settings(store_url)) as rx:
        answer = httpx.get(rx.dlr_url, params={**DLR, "status": "DELIVRD"})
        assert (answer.status_code, answer.text) == (200, "OK")
        stored = _rows(rx.engine, reports)
    assert len(stored) == 1
    row = stored[0]
    assert (row["msgid"], row["mobile"], row["status"]) == (DLR["msgid"], DLR["mobile"], "DELIVRD")
    assert row["report_time"] == "2026-11-25T10:02:00+08:00"
    assert (row["raw_time"], row["origin"]) == ("2611251002", "push")


def test_post_form_and_batched_form_with_encoded_values(store_url):
    with Receiver(_settings(store_url)) as rx:
        single = httpx.post(rx.dlr_url, data={**DLR, "status": "MBBLACK"})
        batched = httpx.post(
            rx.dlr_url,
            content=b"report=1001%2C2611251003%2C13900210022%2CJA%253A0009"
            b"%7C%7C1002%2C2611251004%2C13900210023%2CDELIVRD",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        query = httpx.get(rx.dlr_url, params={"report": "1003,2611251005,13900210024,DB:0141"})
        assert [single.status_code, batched.status_code, query.status_code] == [200, 200, 200]
        stored = {(r["msgid"], r["status"]) for r in _rows(rx.engine, reports)}
    assert stored == {
        (DLR["msgid"], "MBBLACK"),
        ("1001", "JA:0009"),
        ("1002", "DELIVRD"),
        ("1003", "DB:0141"),
    }


def test_repeated_push_is_stored_once(rx):
    for _ in range(3):
        assert httpx.get(rx.dlr_url, params={**DLR, "status": "DELIVRD"}).status_code == 200
    # the same report with the time in another (equal) form is the same report
    same = {
        **DLR,
        "status": "DELIVRD",
        "report": f"{DLR['msgid']},2611251002,{DLR['mobile']},DELIVRD",
    }
    assert httpx.get(rx.dlr_url, params=same).status_code == 200
    # another status for the same recipient is another report
    assert httpx.get(rx.dlr_url, params={**DLR, "status": "UNDELIV"}).status_code == 200
    assert len(_rows(rx.engine, reports)) == 2


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"reportTime": "2611251002", "mobile": "13900210021", "status": "X"}, "msgid"),
        ({**DLR}, "status"),
        ({**DLR, "status": ""}, "status"),
        ({**DLR, "status": "   "}, "status"),
        ({**DLR, "msgid": "12ab", "status": "DELIVRD"}, "msgid is not a number"),
        ({**DLR, "msgid": "１２３", "status": "DELIVRD"}, "msgid is not a number"),
        ({**DLR, "reportTime": "2613251002", "status": "DELIVRD"}, "not a real time"),
        ({**DLR, "reportTime": "2611312400", "status": "DELIVRD"}, "not a real time"),
        ({**DLR, "reportTime": "yesterday", "status": "DELIVRD"}, "not a real time"),
        ({**DLR, "reportTime": "0001-01-01 00:00+14:00", "status": "X"}, "not a real time"),
        ({**DLR, "mobile": "139-abc", "status": "DELIVRD"}, "mobile is not a number"),
        ({**DLR, "status": "S" * 65}, "too long"),
        ({"report": "1,2611251002,13900210021"}, "4 fields"),
        ({"report": "x,2611251002,13900210021,D||2,2611251002,13900210021"}, "no valid report"),
        ({"report": ""}, "report"),
    ],
)
def test_bad_push_is_400_and_nothing_stored(refusing, params, reason, caplog):
    with caplog.at_level(logging.WARNING, logger="campaign.receiver"):
        answer = httpx.get(refusing.dlr_url, params=params)
    assert answer.status_code == 400
    assert reason in answer.text
    assert _rows(refusing.engine, reports) == []
    assert any(reason.split()[0] in record.getMessage() for record in caplog.records)


def test_bad_inbound_push_is_400(refusing):
    base = {"moTime": "2611251002", "mobile": "13900210021", "msg": "hi", "destcode": "106"}
    for bad in (
        {k: v for k, v in base.items() if k != "msg"},
        {**base, "moTime": "2602301000"},
        {**base, "isems": "1", "emshead": "7,2"},
        {**base, "isems": "1", "emshead": "7,2,3"},
        {**base, "isems": "2"},
        {**base, "mobile": ""},
    ):
        assert httpx.get(refusing.mo_url, params=bad).status_code == 400
    assert _rows(refusing.engine, inbound_parts) == []


def test_oversized_body_is_413(refusing):
    body = "report=" + "||".join(f"{i},2611251002,13900210021,DELIVRD" for i in range(150_000))
    answer = httpx.post(
        refusing.dlr_url,
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413
    assert _rows(refusing.engine, reports) == []


def test_body_that_is_neither_utf8_nor_gbk_is_400(refusing):
    for msg in (b"\xff\xfe", b"%FF%FF"):
        body = b"mobile=13900210021&moTime=2611251002&msg=" + msg
        assert httpx.post(refusing.mo_url, content=body).status_code == 400


def test_gbk_encoded_reply_is_understood(rx):
    body = b"mobile=13900210021&moTime=2611251002&msg=" + quote("退订".encode("gbk")).encode()
    assert httpx.post(rx.mo_url, content=body).status_code == 200
    assert [r["mobile"] for r in _rows(rx.engine, suppression)] == ["13900210021"]


def test_healthz_and_other_paths(refusing):
    assert httpx.get(f"{refusing.url}/healthz").text == "OK"
    assert httpx.get(f"{refusing.url}/nope").status_code == 404
    assert httpx.get(f"{refusing.url}/").status_code == 404
    assert httpx.get(f"{refusing.url}/sms/healthz/").text == "OK"  # behind a path prefix
    assert httpx.put(refusing.dlr_url, params={**DLR, "status": "DELIVRD"}).status_code == 405


def test_wrong_credentials_are_403_and_nothing_stored(store_url, caplog):
    settings = _settings(store_url, receiver="admin", pswd="s3cret-push")
    push = {**DLR, "status": "DELIVRD"}
    mo = {"moTime": "2611251002", "mobile": "13900210021", "msg": "TD"}
    with caplog.at_level(logging.INFO), Receiver(settings) as rx:
        for creds in ({}, {"receiver": "admin"}, {"receiver": "admin", "pswd": "wrong"},
                      {"receiver": "root", "pswd": "s3cret-push"}):  # fmt: skip
            assert httpx.get(rx.dlr_url, params={**push, **creds}).status_code == 403
            assert httpx.post(rx.mo_url, data={**mo, **creds}).status_code == 403
        assert _rows(rx.engine, reports) == []
        assert _rows(rx.engine, inbound_parts) == []
        assert _rows(rx.engine, suppression) == []
        good = {"receiver": "admin", "pswd": "s3cret-push"}
        assert httpx.get(rx.dlr_url, params={**push, **good}).status_code == 200
        assert len(_rows(rx.engine, reports)) == 1
    server_log = " ".join(r.getMessage() for r in caplog.records if r.name != "httpx")
    assert "wrong push credentials" in server_log
    assert "s3cret" not in server_log
    assert "13900210021" not in server_log


@pytest.mark.parametrize(
    ("configured", "allowed", "refused"),
    [
        ({"pswd": "s3cret-push"}, {"receiver": "admin", "pswd": "s3cret-push"}, {"pswd": "x"}),
        ({"receiver": "admin"}, {"receiver": "admin", "pswd": "any"}, {"receiver": "root"}),
    ],
)
def test_only_the_configured_credential_is_checked(store_url, configured, allowed, refused):
    push = {**DLR, "status": "DELIVRD"}
    with Receiver(_settings(store_url, **configured)) as rx:
        assert httpx.get(rx.dlr_url, params={**push, **refused}).status_code == 403
        assert httpx.get(rx.dlr_url, params={**push, **allowed}).status_code == 200
        assert len(_rows(rx.engine, reports)) == 1


def test_mask_mobile():
    assert mask_mobile("13900210021") == "139****0021"
    assert mask_mobile("123") == "****"


def test_report_before_its_msgid_is_matched_once_the_batch_is_recorded(store_url):
    with Receiver(_settings(store_url)) as rx:
        assert httpx.get(rx.dlr_url, params={**DLR, "status": "DELIVRD"}).status_code == 200
        assert unmatched_reports(rx.engine) == 1  # kept, not yet matched
        accepted_batch(rx.engine, DLR["msgid"], [DLR["mobile"], "13900210022"])
        assert unmatched_reports(rx.engine) == 0
        # a msgid this system never issued is kept and counted unmatched
        other = {**DLR, "msgid": "999", "status": "DELIVRD"}
        assert httpx.get(rx.dlr_url, params=other).status_code == 200
        assert unmatched_reports(rx.engine) == 1


def test_reports_pushed_by_the_simulator_after_a_real_send(store_url):
    mobiles = [f"139002100{i:02d}" for i in range(40)]
    with (
        Receiver(_settings(store_url)) as rx,
        Simulator(push_url=rx.dlr_url, duplicate_rate=0.5, report_delay=0.0) as sim,
    ):
        gateway = GatewaySettings(url=sim.url, account=sim.account, password=sim.password)
        with GatewayClient(gateway) as client:
            long_text = "【品牌】" + "长" * 100  # two parts: one report per part
            result = client.send_batch(mobiles, long_text)
        assert isinstance(result, Accepted)
        accepted_batch(rx.engine, result.msgid, mobiles)
        assert sim.wait_reports_pushed(timeout=20)
        assert sim.pusher.given_up == 0
        stored = _rows(rx.engine, reports)
        assert unmatched_reports(rx.engine) == 0
    assert {r["mobile"] for r in stored} == set(mobiles)
    assert all(r["msgid"] == result.msgid for r in stored)
    assert len(stored) == len(mobiles)  # parts and duplicates are exact repeats


def test_long_inbound_message_reassembled_out_of_order(store_url):
    with Receiver(_settings(store_url)) as rx, Simulator(push_url=rx.dlr_url, seed=3) as sim:
        text = "您好，我想了解一下这个活动的详细规则以及参加的方式，谢谢。" * 3
        sim.push_mo("13900210021", text, parts=4, shuffle=True)
        sim.push_mo("13900210022", "hello")
        assert sim.wait_reports_pushed(timeout=20)
        with rx.engine.connect() as conn:
            messages = inbound_messages(conn)
        parts = _rows(rx.engine, inbound_parts)
    assert len(parts) == 5
    assert sorted((m["mobile"], m["msg"]) for m in messages) == [
        ("13900210021", text),
        ("13900210022", "hello"),
    ]


def test_long_inbound_parts_duplicated_and_any_order(rx):
    base = {"moTime": "2611251002", "mobile": "13900210021", "destcode": "106", "isems": "1"}
    order = [(3, "C"), (1, "A"), (3, "C"), (2, "B"), (1, "A")]
    for n, chunk in order:
        answer = httpx.get(rx.mo_url, params={**base, "msg": chunk, "emshead": f"42,3,{n}"})
        assert answer.status_code == 200
    with rx.engine.connect() as conn:
        messages = inbound_messages(conn)
    assert [m["msg"] for m in messages] == ["ABC"]
    assert len(_rows(rx.engine, inbound_parts)) == 3


REPLIES = ["退订", " td。", "ＴＤ", "退订！", "t", "取消"]


def test_optout_reply_puts_the_number_on_the_suppression_list(store_url):
    with Receiver(_settings(store_url)) as rx:
        for n, reply in enumerate(REPLIES):
            mo = {"moTime": "2611251002", "mobile": f"+86139002100{n:02d}", "msg": reply}
            assert httpx.post(rx.mo_url, data=mo).status_code == 200
        listed = _rows(rx.engine, suppression)
        with rx.engine.connect() as conn:
            assert [m["is_optout"] for m in inbound_messages(conn)] == [True] * len(REPLIES)
    assert sorted((r["mobile"], r["reason"]) for r in listed) == [
        (f"139002100{n:02d}", "optout reply") for n in range(len(REPLIES))
    ]
    details = {r["mobile"]: r["detail"] for r in listed}
    assert details["13900210001"] == "td。 (2026-11-25T10:02:00+08:00)"


def test_a_message_that_merely_contains_a_keyword_is_no_optout(rx):
    mo = {"moTime": "2611251002", "mobile": "13900210021", "msg": "TD please call me"}
    assert httpx.get(rx.mo_url, params=mo).status_code == 200
    assert _rows(rx.engine, suppression) == []


def test_blacklist_status_suppresses_when_configured(sqlite_url):
    with Receiver(_settings(sqlite_url, suppress_blacklisted=True)) as rx:
        for status, mobile in (("MBBLACK", "13900210021"), ("DELIVRD", "13900210022")):
            params = {**DLR, "mobile": mobile, "status": status}
            assert httpx.get(rx.dlr_url, params=params).status_code == 200
        listed = _rows(rx.engine, suppression)
    assert [(r["mobile"], r["reason"]) for r in listed] == [("13900210021", "blacklist status")]
    with Receiver(_settings(sqlite_url)) as rx:  # off by default
        params = {**DLR, "mobile": "13900210023", "status": "DB:0141"}
        assert httpx.get(rx.dlr_url, params=params).status_code == 200
        assert len(_rows(rx.engine, suppression)) == 1


def test_concurrent_pushes_all_stored_with_group_commits(store_url):
    with Receiver(_settings(store_url)) as rx:

        def push(worker: int) -> None:
            with httpx.Client() as client:
                for i in range(50):
                    params = {**DLR, "msgid": f"{worker}{i:04d}", "status": "DELIVRD"}
                    assert client.get(rx.dlr_url, params=params).status_code == 200

        threads = [threading.Thread(target=push, args=(w,)) for w in range(1, 9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert rx.app.writer is not None and rx.app.writer.committed == 400
        assert len(_rows(rx.engine, reports)) == 400


def test_store_failure_answers_503_not_ok(sqlite_url):
    with Receiver(_settings(sqlite_url)) as rx:
        with rx.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE reports"))
        answer = httpx.get(rx.dlr_url, params={**DLR, "status": "DELIVRD"})
    assert answer.status_code == 503


def test_receiver_with_a_given_engine_leaves_it_open(sqlite_url):
    engine = open_store(sqlite_url)
    try:
        with Receiver(_settings(sqlite_url), engine=engine) as rx:
            assert httpx.get(rx.dlr_url, params={**DLR, "status": "DELIVRD"}).status_code == 200
        assert len(_rows(engine, reports)) == 1
    finally:
        engine.dispose()


def test_overlong_request_line_is_refused_and_too_many_fields_400(refusing):
    line = f"GET /dlr?report={'1' * 70_000} HTTP/1.1\r\nHost: x\r\n"
    with socket.create_connection((refusing.host, refusing.port), timeout=5) as sock:
        sock.sendall(line.encode())  # unfinished: over max_header_bytes (64 KiB) without an end
        assert sock.recv(100)[:12] == b"HTTP/1.1 431"
    with socket.create_connection((refusing.host, refusing.port), timeout=5) as sock:
        sock.sendall(f"{line}\r\n".encode())
        status = sock.recv(100)[:12]
    # Whole, the request is refused before the app in one of two ways, both by design: the
    # HTTP parser answers 400 when the request arrives in one read (a request line over 64 KiB
    # is invalid to it), the header cap 431 when a read leaves it unfinished past 64 KiB; which
    # one depends on how the kernel hands over the bytes.
    assert status in (b"HTTP/1.1 400", b"HTTP/1.1 431")
    many = "&".join(f"f{i}=1" for i in range(100))
    assert httpx.get(f"{refusing.dlr_url}?{many}").status_code == 400
    assert _rows(refusing.engine, reports) == []


def test_an_optout_from_a_number_that_is_no_mobile_is_kept_but_not_listed(store_url):
    with Receiver(_settings(store_url)) as rx:
        mo = {"moTime": "2611251002", "mobile": "852912345678901234", "msg": "TD"}
        assert httpx.get(rx.mo_url, params=mo).status_code == 200
        with rx.engine.connect() as conn:
            assert [m["is_optout"] for m in inbound_messages(conn)] == [True]
        assert _rows(rx.engine, suppression) == []


def _failing_group(sqlite_url: str, monkeypatch, error: Exception) -> tuple[list[int], list]:
    """Commit a group of 5 pushes whose writes all raise `error`: the sizes of the writes
    tried, and what each push's future got."""
    engine = open_store(sqlite_url)
    writer = StoreWriter(engine, _settings(sqlite_url))
    tried: list[int] = []

    def failing(group: list[Work]) -> None:
        tried.append(len(group))
        raise error

    monkeypatch.setattr(writer, "_write", failing)
    loop = asyncio.new_event_loop()
    try:
        group = [Work([], None, loop.create_future()) for _ in range(5)]
        writer._commit_group(group)
        loop.run_until_complete(asyncio.sleep(0))  # run the settling callbacks
        return tried, [work.future.exception() for work in group]
    finally:
        loop.close()
        engine.dispose()


def test_a_locked_store_fails_the_group_once_not_push_by_push(sqlite_url, monkeypatch):
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    error = sa.exc.OperationalError("INSERT", {}, locked)
    tried, outcomes = _failing_group(sqlite_url, monkeypatch, error)
    assert tried == [5]  # not 5 more waits of the busy timeout, one per push
    assert all(outcome is error for outcome in outcomes)


def test_a_bad_push_in_a_group_is_retried_alone(sqlite_url, monkeypatch):
    error = sa.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("constraint"))
    tried, outcomes = _failing_group(sqlite_url, monkeypatch, error)
    assert tried == [5, 1, 1, 1, 1, 1]
    assert all(outcome is error for outcome in outcomes)
