"""Black-box acceptance: the real CLI (subprocesses) against a strict gateway stub.

Written from SPEC.md and PROTOCOL.md only: the stub (tests/support/strict_gateway.py)
shares no code with the product, and the assertions are about what those pages promise:
the form fields on the wire, exit codes, JSON keys, pushes, report files and the
result spreadsheet.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.support.simulator import free_port
from tests.support.strict_gateway import (
    StrictGateway,
    batched_report_query,
    mo_params,
    push,
    push_raw_query,
    report_params,
)

ACCOUNT, PASSWORD = "003547", "Sd-123456-secret"
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
SEND_KEYS = {"campaign_id", "outcomes", "recipients", "requests", "segments"}
STATUS_KEYS = {"campaign_id", "name", "state", "outcomes", "reports", "unmatched_reports"}


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def gw() -> Iterator[StrictGateway]:
    with StrictGateway(account=ACCOUNT, password=PASSWORD) as gateway:
        yield gateway
        assert gateway.violations == []


def _env(tmp_path: Path, *, credentials: bool = True, db: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env["CAMPAIGN_DB"] = db or f"sqlite:///{tmp_path / 'store.db'}"
    if credentials:
        env["CAMPAIGN_ACCOUNT"], env["CAMPAIGN_PASSWORD"] = ACCOUNT, PASSWORD
    return env


def cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "campaign", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env if env is not None else _env(tmp_path),
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    return result


def as_json(result: subprocess.CompletedProcess) -> dict[str, Any]:
    return json.loads(result.stdout)


def contacts(tmp_path: Path, mobiles: list[str], *, names: list[str] | None = None) -> str:
    path = tmp_path / "contacts.csv"
    names = names or [f"客户{i}" for i in range(len(mobiles))]
    rows = ["姓名,手机号"] + [f"{n},{m}" for n, m in zip(names, mobiles, strict=True)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def mobiles(n: int, start: int = 0) -> list[str]:
    return [f"1390021{i:04d}" for i in range(start, start + n)]


def write_config(tmp_path: Path, gateway: str = "", receiver: str = "", rate: int = 1000) -> str:
    path = tmp_path / "campaign.toml"
    path.write_text(f"[gateway]\nrate = {rate}\n{gateway}\n[receiver]\n{receiver}\n", "utf-8")
    return str(path)


def send(tmp_path: Path, gw: StrictGateway, files: str, template: str, *extra: str) -> Any:
    return cli(
        tmp_path, "send", files, "--text", template, "--gateway", gw.url, "--yes", "--json", *extra
    )


def export_rows(tmp_path: Path, campaign: str, suffix: str = "csv") -> list[dict[str, str]]:
    out = tmp_path / f"result.{suffix}"
    result = cli(tmp_path, "export", campaign, "-o", str(out))
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- sending


def test_send_posts_exact_form_fields(tmp_path, gw):
    config = write_config(
        tmp_path,
        'product = "1234567"\nextno = "0021"\n[compliance]\nsignature = "【品牌】"\n'
        'optout_text = "回T退订"',
    )
    numbers = mobiles(3)
    result = send(
        tmp_path, gw, contacts(tmp_path, numbers), "您好，您的验证码：1234", "--config", config
    )
    assert result.returncode == 0, result.stderr
    summary = as_json(result)
    assert summary.keys() >= SEND_KEYS
    assert summary["recipients"] == 3 and summary["requests"] == 1 and summary["segments"] == 3
    [request] = gw.sends()
    assert request.method == "POST" and PASSWORD not in request.query
    assert request.form == {
        "account": ACCOUNT,
        "pswd": PASSWORD,
        "mobile": ",".join(numbers),
        "msg": "【品牌】您好，您的验证码：1234回T退订",
        "needstatus": "true",
        "product": "1234567",
        "extno": "0021",
    }
    # UTF-8 percent-encoding of the Chinese text on the wire
    assert "%E5%93%81%E7%89%8C".lower() in request.body.decode("ascii").lower()


def test_personalized_texts_one_request_per_distinct_text(tmp_path, gw):
    numbers = mobiles(5)
    names = ["张三", "李四", "张三", "王五", "张三"]
    result = send(tmp_path, gw, contacts(tmp_path, numbers, names=names), "{姓名}您好")
    assert result.returncode == 0, result.stderr
    by_text = {r.form["msg"]: sorted(r.mobiles) for r in gw.sends()}
    assert by_text == {
        "张三您好": sorted([numbers[0], numbers[2], numbers[4]]),
        "李四您好": [numbers[1]],
        "王五您好": [numbers[3]],
    }
    assert as_json(result)["requests"] == 3


def test_identical_texts_chunked_by_max_batch_and_min_batch_respected(tmp_path, gw):
    config = write_config(tmp_path, "max_batch = 2\nmin_batch = 2")
    numbers = mobiles(5)
    names = ["甲", "甲", "甲", "甲", "乙"]
    result = send(
        tmp_path, gw, contacts(tmp_path, numbers, names=names), "{姓名}好", "--config", config
    )
    assert result.returncode == 0, result.stderr
    sizes = sorted(len(r.mobiles) for r in gw.sends())
    assert sizes == [2, 2]  # 乙 alone is below the minimum group size: never sent
    summary = as_json(result)
    assert summary["outcomes"]["unsent"] == 1
    rows = export_rows(tmp_path, str(summary["campaign_id"]))
    assert [r["outcome"] for r in rows] == ["pending"] * 4 + ["unsent"]
    assert rows[4]["reason"]


def test_one_msgid_per_request_matched_to_every_mobile(tmp_path, gw):
    config = write_config(tmp_path, "max_batch = 2")
    result = send(tmp_path, gw, contacts(tmp_path, mobiles(3)), "hello", "--config", config)
    assert result.returncode == 0, result.stderr
    msgid_of = {m: r.msgid for r in gw.accepted() for m in r.mobiles}
    rows = export_rows(tmp_path, str(as_json(result)["campaign_id"]))
    assert {r["normalized_mobile"]: r["msgid"] for r in rows} == msgid_of
    assert all(r["submit_code"] == "0" and r["outcome"] == "pending" for r in rows)
    assert len({r["batch_id"] for r in rows}) == 2


def test_needstatus_false_and_plain_output_names_the_campaign(tmp_path, gw):
    config = write_config(tmp_path, "needstatus = false")
    files = contacts(tmp_path, mobiles(2))
    result = cli(
        tmp_path, "send", files, "--text", "hi", "--gateway", gw.url, "--yes", "--config", config
    )
    assert result.returncode == 0, result.stderr
    [request] = gw.sends()
    assert request.form["needstatus"] == "false" and request.answer == "0"
    listed = as_json(cli(tmp_path, "status", "--json"))["campaigns"]
    assert str(listed[0]["campaign_id"]) in result.stdout


def test_gateway_without_balance_interface_still_sends(tmp_path, gw):
    gw.without_balance = True  # PROTOCOL's send interface is all a send needs
    result = send(tmp_path, gw, contacts(tmp_path, mobiles(2)), "hi")
    assert result.returncode == 0, result.stderr
    assert len(gw.accepted()) == 1 and as_json(result)["outcomes"]["pending"] == 2


def test_missing_credentials_and_bad_input_exit_3_sending_nothing(tmp_path, gw):
    files = contacts(tmp_path, mobiles(2))
    no_creds = _env(tmp_path, credentials=False)
    result = cli(
        tmp_path, "send", files, "--text", "hi", "--gateway", gw.url, "--yes", env=no_creds
    )
    assert result.returncode == 3 and "Error" in result.stderr
    missing = send(tmp_path, gw, str(tmp_path / "nope.csv"), "hi")
    assert missing.returncode == 3
    hole = send(tmp_path, gw, files, "hi {nosuchcolumn}")
    assert hole.returncode == 3
    assert gw.requests == []


@pytest.mark.parametrize("code", ["102", "109"])
def test_account_stop_exits_4_rest_unsent_and_resumable(tmp_path, gw, code):
    config = write_config(tmp_path, "max_batch = 1", rate=5)
    numbers = mobiles(4)
    gw.script("0")
    gw.default_code = code
    result = send(tmp_path, gw, contacts(tmp_path, numbers), "hi", "--config", config)
    assert result.returncode == 4, result.stderr
    summary = as_json(result)
    assert summary["outcomes"]["pending"] == 1
    assert summary["outcomes"]["unsent"] == 3
    assert summary["outcomes"]["rejected"] == 0
    if code != "109":
        return  # one resume is enough
    gw.default_code = "0"
    resumed = cli(tmp_path, "resume", str(summary["campaign_id"]), "--gateway", gw.url, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert as_json(resumed).keys() >= SEND_KEYS
    assert sorted(gw.mobiles_accepted()) == numbers  # each exactly once
    assert as_json(resumed)["outcomes"]["pending"] == 4


def test_outside_send_time_110_with_no_wait_exits_4_resumable(tmp_path, gw):
    gw.script("110")
    numbers = mobiles(2)
    result = send(tmp_path, gw, contacts(tmp_path, numbers), "hi", "--no-wait")
    assert result.returncode == 4, result.stderr
    assert as_json(result)["outcomes"]["unsent"] == 2
    resumed = cli(tmp_path, "resume", str(as_json(result)["campaign_id"]), "--gateway", gw.url)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(gw.mobiles_accepted()) == numbers


@pytest.mark.parametrize("fault", ["drop", "garbage"])
def test_ambiguous_request_is_unknown_and_resent_only_on_request(tmp_path, gw, fault):
    config = write_config(tmp_path, "max_batch = 1", rate=5)
    numbers = mobiles(3)
    gw.script("0", fault)
    result = send(tmp_path, gw, contacts(tmp_path, numbers), "hi", "--config", config)
    assert result.returncode == 5, result.stderr
    summary = as_json(result)
    assert summary["outcomes"]["unknown"] == 1 and summary["outcomes"]["pending"] == 2
    cid = str(summary["campaign_id"])
    assert len(gw.sends()) == 3
    if fault == "garbage":
        return  # the resumes below: once is enough
    again = cli(tmp_path, "resume", cid, "--gateway", gw.url)
    assert again.returncode == 5 and len(gw.sends()) == 3  # nothing resent by itself
    resent = cli(tmp_path, "resume", cid, "--gateway", gw.url, "--resend-unknown", "--json")
    assert resent.returncode == 0, resent.stderr
    assert len(gw.sends()) == 4 and sorted(gw.mobiles_accepted()) == numbers
    assert as_json(resent)["outcomes"]["pending"] == 3
    once_more = cli(tmp_path, "resume", cid, "--gateway", gw.url, "--resend-unknown")
    assert once_more.returncode == 0 and len(gw.sends()) == 4


def test_busy_and_too_fast_are_retried_everything_sent_once(tmp_path, gw):
    config = write_config(tmp_path, "max_batch = 1")
    numbers = mobiles(4)
    gw.script("103", "104", "103", "104")
    result = send(tmp_path, gw, contacts(tmp_path, numbers), "hi", "--config", config)
    assert result.returncode == 0, result.stderr
    assert sorted(gw.mobiles_accepted()) == numbers
    assert as_json(result)["outcomes"]["pending"] == 4


def test_refused_batch_is_rejected_with_code_exit_5(tmp_path, gw):
    config = write_config(tmp_path, "max_batch = 1", rate=5)
    gw.script("0", "105")
    result = send(tmp_path, gw, contacts(tmp_path, mobiles(2)), "hi", "--config", config)
    assert result.returncode == 5, result.stderr
    rows = export_rows(tmp_path, str(as_json(result)["campaign_id"]))
    assert [r["outcome"] for r in rows] == ["pending", "rejected"]
    assert rows[1]["submit_code"] == "105" and rows[1]["reason"]


def test_status_json_by_id_and_by_name(tmp_path, gw):
    result = send(tmp_path, gw, contacts(tmp_path, mobiles(2)), "hi", "--name", "春季促销")
    cid = as_json(result)["campaign_id"]
    by_id = as_json(cli(tmp_path, "status", str(cid), "--json"))
    by_name = as_json(cli(tmp_path, "status", "春季促销", "--json"))
    by_option = as_json(cli(tmp_path, "status", "--name", "春季促销", "--json"))
    assert by_option["campaign_id"] == cid
    assert by_id.keys() >= STATUS_KEYS
    assert by_id["campaign_id"] == by_name["campaign_id"] == cid
    assert by_id["name"] == "春季促销" and by_id["outcomes"]["pending"] == 2
    assert by_id["unmatched_reports"] == 0


def test_balance_json(tmp_path):
    with StrictGateway(
        account=ACCOUNT, password=PASSWORD, products={"1234567": 1000, "1234531": 2000}
    ) as gw:
        result = cli(tmp_path, "balance", "--gateway", gw.url, "--json")
        assert result.returncode == 0, result.stderr
        data = as_json(result)
        assert json.dumps(data).count("1234531") == 1 and "2000" in json.dumps(data)
        [request] = gw.requests
        assert request.form == {"account": ACCOUNT, "pswd": PASSWORD}
        env = _env(tmp_path)
        env["CAMPAIGN_PASSWORD"] = "wrong"
        refused = cli(tmp_path, "balance", "--gateway", gw.url, "--json", env=env)
        assert refused.returncode == 4
        assert gw.violations == []


def test_balance_too_fast_is_asked_again_after_the_interval(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from campaign.cli import app

    monkeypatch.setattr("campaign.workflow.BALANCE_RETRY_SECONDS", 0.4)
    env = _env(tmp_path)
    with StrictGateway(account=ACCOUNT, password=PASSWORD) as gw:
        gw.balance_interval = 0.3
        for _ in range(2):  # the second comes too soon: 103, then asked again
            result = CliRunner().invoke(app, ["balance", "--gateway", gw.url, "--json"], env=env)
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout) == {"products": {"1234567": 1000}}
        assert len(gw.requests) == 3 and gw.violations == []


# --------------------------------------------------------------------------- receiver


class Served:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process, self.port = process, port
        self.base = f"http://127.0.0.1:{port}"
        self.dlr, self.mo = f"{self.base}/dlr", f"{self.base}/mo"


@contextmanager
def serving(tmp_path: Path, env: dict[str, str]) -> Iterator[Served]:
    """`campaign serve` as a subprocess with push credentials configured."""
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text('[receiver]\nreceiver = "admin"\npswd = "push-secret"\n', "utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "serve", "--port", str(port), "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    running = Served(process, port)
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{running.base}/healthz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.1)
    try:
        yield running
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    assert b"Traceback" not in err and b"push-secret" not in err


@pytest.fixture
def served(tmp_path) -> Iterator[Served]:
    with serving(tmp_path, _env(tmp_path)) as running:
        yield running


CREDS = {"receiver": "admin", "pswd": "push-secret"}


def test_serve_reports_get_post_batched_and_refusals(tmp_path, gw, served):
    numbers = mobiles(5)
    # a report for the first msgid arrives before the send has recorded it
    early = push(served.dlr, report_params("2026112500000001", numbers[0], **CREDS))
    assert (early.status, early.body.strip()) == (200, "OK")
    result = send(tmp_path, gw, contacts(tmp_path, numbers), "hi")
    cid = str(as_json(result)["campaign_id"])
    [request] = gw.accepted()
    msgid = request.msgid
    assert msgid == "2026112500000001"
    answer = push(served.dlr, report_params(msgid, numbers[1], "MBBLACK", **CREDS), method="POST")
    assert (answer.status, answer.body.strip()) == (200, "OK")
    # repeated push: counted once
    assert push(served.dlr, report_params(msgid, numbers[1], "MBBLACK", **CREDS)).status == 200
    query = batched_report_query(
        [
            (msgid, "2611251003", numbers[2], "JA:0009"),
            (msgid, "2611251004", numbers[3], "DELIVRD"),
        ],
        **CREDS,
    )
    batched = push_raw_query(served.dlr, query)
    assert (batched.status, batched.body.strip()) == (200, "OK")
    # a value still URL-encoded after the query is decoded (arrives as JA%3A0009)
    encoded = {**CREDS, "report": f"{msgid},2611251003,{numbers[4]},JA%3A0009"}
    assert push(served.dlr, encoded, method="POST").status == 200
    # refused and malformed pushes store nothing
    wrong = push(
        served.dlr, report_params(msgid, numbers[3], "UNDELIV", pswd="bad", receiver="admin")
    )
    assert wrong.status == 403
    none = push(served.dlr, report_params(msgid, numbers[3], "UNDELIV"))
    assert none.status == 403
    bad_time = push(served.dlr, report_params(msgid, numbers[3], "UNDELIV", "99999999", **CREDS))
    assert bad_time.status == 400
    no_mobile = push(served.dlr, {**report_params(msgid, "", "UNDELIV"), **CREDS})
    assert no_mobile.status == 400
    status = as_json(cli(tmp_path, "status", cid, "--json"))
    assert status["reports"] == {"DELIVRD": 2, "MBBLACK": 1, "JA:0009": 2}
    assert status["outcomes"]["delivered"] == 2 and status["outcomes"]["failed"] == 3
    rows = export_rows(tmp_path, cid)
    statuses = [r["dlr_status"] for r in rows]
    assert statuses == ["DELIVRD", "MBBLACK", "JA:0009", "DELIVRD", "JA:0009"]
    assert rows[0]["report_time"].startswith("2026-11-25T10:02")
    assert rows[0]["report_time"].endswith("+08:00")


def test_long_sms_one_report_per_part(tmp_path, gw, served):
    numbers = mobiles(3)
    text = "长" * 150  # 3 parts
    result = send(tmp_path, gw, contacts(tmp_path, numbers), text)
    assert as_json(result)["segments"] == 9
    msgid = gw.accepted()[0].msgid
    parts = {
        numbers[0]: [
            ("DELIVRD", "2611251002"),
            ("DELIVRD", "2611251005"),
            ("DELIVRD", "2611251004"),
        ],
        numbers[1]: [
            ("DELIVRD", "2611251002"),
            ("UNDELIV", "2611251007"),
            ("EMSERR", "2611251003"),
        ],
        numbers[2]: [("DELIVRD", "2611251002")],
    }
    for mobile, reports in parts.items():
        for status, when in reports:
            assert (
                push(served.dlr, report_params(msgid, mobile, status, when, **CREDS)).status == 200
            )
    rows = export_rows(tmp_path, str(as_json(result)["campaign_id"]))
    assert [r["outcome"] for r in rows] == ["delivered", "failed", "delivered"]
    assert rows[0]["report_time"] == "2026-11-25T10:05:00+08:00"
    assert rows[1]["dlr_status"] == "EMSERR"
    assert rows[1]["report_time"] == "2026-11-25T10:07:00+08:00"
    assert rows[0]["segments"] == "3"


def test_mo_optout_suppresses_next_plan(tmp_path, served):
    replies = ["退订", "TD", "ｔｄ", " 退订。", "t", "你好", "退订了吗"]
    numbers = mobiles(len(replies))
    for n, (number, reply) in enumerate(zip(numbers, replies, strict=True)):
        answer = push(
            served.mo, mo_params(number, reply, **CREDS), method="POST" if n % 2 else "GET"
        )
        assert (answer.status, answer.body.strip()) == (200, "OK")
    plan = cli(
        tmp_path, "plan", contacts(tmp_path, numbers), "--text", "hi", "--json", "--out", "p.csv"
    )
    assert as_json(plan)["outcomes"]["suppressed"] == 5
    with (tmp_path / "p.csv").open(encoding="utf-8-sig") as handle:
        outcomes = [row["outcome"] for row in csv.DictReader(handle)]
    assert outcomes == ["suppressed"] * 5 + ["ready"] * 2


def test_mo_long_message_parts_and_refusals(tmp_path, served):
    number = mobiles(1)[0]
    first = push(served.mo, mo_params(number, "退", ems=("234", 2, 1), **CREDS))
    second = push(served.mo, mo_params(number, "订", ems=("234", 2, 2), **CREDS), method="POST")
    assert first.status == second.status == 200
    assert push(served.mo, mo_params(number, "TD")).status == 403
    bad = push(served.mo, mo_params(number, "TD", **CREDS) | {"isems": "1", "emshead": "x"})
    assert bad.status == 400
    listed = cli(tmp_path, "optout", "list", "--json")
    assert json.loads(listed.stdout) == [number]
    health = urllib.request.urlopen(f"{served.base}/healthz", timeout=5)
    assert health.status == 200


# --------------------------------------------------------------------------- report files


def _sent_campaign(tmp_path: Path, gw: StrictGateway, n: int) -> tuple[str, list[str], str]:
    numbers = mobiles(n)
    result = send(tmp_path, gw, contacts(tmp_path, numbers), "hi")
    assert result.returncode == 0, result.stderr
    return str(as_json(result)["campaign_id"]), numbers, gw.accepted()[0].msgid


CSV_FORMS = [
    ("utf-8", "msgid,mobile,status,reportTime"),
    ("utf-8-sig", "消息ID,手机号,状态,状态报告时间"),
    ("gbk", "消息编号,手机号码,状态码,时间"),
    ("utf-8", "MsgID,Mobile,Status,report_time"),
]


def test_reports_import_csv_encodings_aliases_and_time_forms(tmp_path, gw):
    config = write_config(tmp_path, "max_batch = 4")
    numbers = mobiles(16)
    result = send(tmp_path, gw, contacts(tmp_path, numbers), "hi", "--config", config)
    assert result.returncode == 0, result.stderr
    cid = str(as_json(result)["campaign_id"])
    times = ["2611251002", "20261125100300", "2026-11-25 10:04", "2026-11-25 10:05:30"]
    statuses = ["DELIVRD", "MBBLACK", "DELIVRD", "UNDELIV"]
    paths = []
    for n, ((encoding, header), request) in enumerate(zip(CSV_FORMS, gw.accepted(), strict=True)):
        lines = [header] + [
            f"{request.msgid},{m},{s},{t}"
            for m, s, t in zip(request.mobiles, statuses, times, strict=True)
        ]
        lines.append("999999,13900000000,DELIVRD,2611251002")  # a msgid never issued
        path = tmp_path / f"reports{n}.csv"
        path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
        paths.append(str(path))
    first = cli(tmp_path, "reports", "import", *paths, "--json")
    assert first.returncode == 0, first.stderr
    summaries = as_json(first)["files"]
    assert [s["source"] for s in summaries] == [f"reports{n}.csv" for n in range(4)]
    for summary in summaries:
        assert {k: summary[k] for k in ("imported", "repeated", "malformed", "unmatched")} == {
            "imported": 5 if summary is summaries[0] else 4,  # the foreign report is stored once
            "repeated": 0 if summary is summaries[0] else 1,
            "malformed": 0,
            "unmatched": 1,
        }
    again = as_json(cli(tmp_path, "reports", "import", *paths, "--json"))["files"]
    assert [(s["imported"], s["repeated"]) for s in again] == [(0, 5)] * 4
    by_mobile = {r["normalized_mobile"]: r for r in export_rows(tmp_path, cid)}
    for request in gw.accepted():
        rows = [by_mobile[m] for m in request.mobiles]
        assert [r["outcome"] for r in rows] == ["delivered", "failed", "delivered", "failed"]
        assert [r["report_time"] for r in rows] == [
            "2026-11-25T10:02:00+08:00",
            "2026-11-25T10:03:00+08:00",
            "2026-11-25T10:04:00+08:00",
            "2026-11-25T10:05:30+08:00",
        ]
    status = as_json(cli(tmp_path, "status", cid, "--json"))
    assert status["reports"] == {"DELIVRD": 8, "MBBLACK": 4, "UNDELIV": 4}


def test_reports_import_xlsx_with_date_cells_and_push_counted_once(tmp_path, gw, served):
    cid, numbers, msgid = _sent_campaign(tmp_path, gw, 3)
    assert (
        push(served.dlr, report_params(msgid, numbers[0], "DELIVRD", "2611251002", **CREDS)).status
        == 200
    )
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["消息ID", "手机号码", "状态", "时间"])
    sheet.append([msgid, numbers[0], "DELIVRD", "2611251002"])  # the pushed one again
    sheet.append([int(msgid), int(numbers[1]), "DELIVRD", datetime(2026, 11, 25, 10, 3)])
    sheet.append([msgid, numbers[2], "ID:0101", "2026-11-25 10:04:05"])
    sheet.append([msgid, numbers[2], "", ""])  # malformed
    path = tmp_path / "平台导出.xlsx"
    book.save(path)
    result = cli(tmp_path, "reports", "import", str(path), "--json")
    assert result.returncode == 0, result.stderr
    [summary] = as_json(result)["files"]
    assert (summary["imported"], summary["repeated"], summary["malformed"]) == (2, 1, 1)
    rows = export_rows(tmp_path, cid, "csv")
    assert [r["outcome"] for r in rows] == ["delivered", "delivered", "failed"]
    assert rows[1]["report_time"] == "2026-11-25T10:03:00+08:00"
    assert rows[2]["dlr_status"] == "ID:0101" and rows[2]["dlr_description"]


# --------------------------------------------------------------------------- export


def test_export_columns_and_every_sent_outcome(tmp_path, gw, served):
    config = write_config(tmp_path, "max_batch = 3", rate=5)
    numbers = mobiles(9)
    path = tmp_path / "list.csv"
    rows = ["编号,手机号,备注"] + [f"{i},{m},=1+1" for i, m in enumerate(numbers)] + ["9,12345,x"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    gw.script("0", "105", "drop")
    result = send(tmp_path, gw, str(path), "hi", "--config", config)
    assert result.returncode == 5, result.stderr
    cid = str(as_json(result)["campaign_id"])
    msgid = gw.accepted()[0].msgid
    first = gw.accepted()[0].mobiles
    push(served.dlr, report_params(msgid, first[0], "DELIVRD", **CREDS))
    push(served.dlr, report_params(msgid, first[1], "NOROUTE", **CREDS))
    out = tmp_path / "result.xlsx"
    assert cli(tmp_path, "export", cid, "-o", str(out)).returncode == 0
    book = openpyxl.load_workbook(out, read_only=True)
    sheet = book["results"]
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0] == ["编号", "手机号", "备注", *RESULT_COLUMNS]
    outcome = {str(r[1]): r[3 + RESULT_COLUMNS.index("outcome")] for r in table[1:]}
    assert Counter(outcome.values()) == Counter(
        {"delivered": 1, "failed": 1, "pending": 1, "rejected": 3, "unknown": 3, "invalid": 1}
    )
    assert all(r[2] == "=1+1" for r in table[1:-1])  # formula-like text stays text
    assert "summary" in book.sheetnames
    assert [r[3 + RESULT_COLUMNS.index("source_row")] for r in table[1:]] == list(range(2, 12))


# --------------------------------------------------------------------------- PostgreSQL


def test_whole_flow_on_postgresql(tmp_path, gw, pg_url):
    env = _env(tmp_path, db=pg_url)
    numbers = mobiles(4)
    config = write_config(tmp_path, "needstatus = true")
    with serving(tmp_path, env) as served:
        files = contacts(tmp_path, numbers)
        sent = cli(
            tmp_path,
            "send",
            files,
            "--text",
            "hi",
            "--gateway",
            gw.url,
            "--yes",
            "--json",
            "--config",
            config,
            "--name",
            "pg",
            env=env,
        )
        assert sent.returncode == 0, sent.stderr
        msgid = gw.accepted()[0].msgid
        assert push(served.dlr, report_params(msgid, numbers[0], **CREDS)).status == 200
        query = batched_report_query(
            [
                (msgid, "2611251003", numbers[1], "UNDELIV"),
                (msgid, "2611251003", numbers[1], "UNDELIV"),
            ],
            **CREDS,
        )
        assert push_raw_query(served.dlr, query).status == 200
        assert push(served.mo, mo_params(numbers[3], "退订", **CREDS), method="POST").status == 200
    path = tmp_path / "reports.csv"
    path.write_text(
        f"msgid,mobile,status,reportTime\n{msgid},{numbers[0]},DELIVRD,20261125100200\n"
        f"{msgid},{numbers[2]},DELIVRD,2026-11-25 10:09\n",
        "utf-8",
    )
    imported = as_json(cli(tmp_path, "reports", "import", str(path), "--json", env=env))
    assert [(f["imported"], f["repeated"]) for f in imported["files"]] == [(1, 1)]
    status = as_json(cli(tmp_path, "status", "--name", "pg", "--json", env=env))
    assert status["outcomes"]["delivered"] == 2 and status["outcomes"]["failed"] == 1
    assert status["reports"] == {"DELIVRD": 2, "UNDELIV": 1}
    plan = cli(tmp_path, "plan", files, "--text", "hi", "--json", env=env)
    assert as_json(plan)["outcomes"]["suppressed"] == 1
