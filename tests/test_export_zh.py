"""`export --lang zh` is Chinese through and through; `--lang en` keeps SPEC's names.

The campaigns come from the real pipeline (the demo; a plan of a list made to hit every plan
reason, sent to the simulator until its quota runs out; a list planned with a frequency cap
that an earlier send reached). No code writes the `cancelled` outcome yet. Every cell outside
the original contact columns is checked for English words: those the English export of the
same campaign uses.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import requests

from campaign import plan as plan_module
from campaign.config import ComplianceSettings, GatewaySettings, Settings, parse_window
from campaign.contacts import read_contacts
from campaign.demo import run_demo
from campaign.export import export_campaign
from campaign.gateway.client import GatewayClient, classify_exception
from campaign.gateway.protocol import Refused, parse_submit_response, submit_code_info
from campaign.gateway.simulator import Simulator
from campaign.messages import SensitiveWords, describe_length
from campaign.outcomes import BatchState, CampaignState, Outcome
from campaign.phones import normalize_mobiles
from campaign.plan import SUPPRESSED_REASON, PlanOptions, batch_id, make_plan
from campaign.sender import (
    DAILY_LIMIT,
    INTERRUPTED,
    SendPolicy,
    outside_window_message,
    send_campaign,
)
from campaign.store import open_store
from campaign.store.batches import BatchResult
from campaign.store.campaigns import create_campaign, get_campaign, set_state, settings_snapshot
from campaign.store.results import RESULT_COLUMNS
from campaign.timeutil import CHINA
from campaign.zh import (
    CARRIERS_ZH,
    OUTCOMES_ZH,
    RESULT_COLUMNS_ZH,
    SHEETS_ZH,
    reason_zh,
)
from tests.support.plans import (
    accepted_batch,
    answer,
    contact_file,
    planned_campaign,
    push_reports,
)

WORD = re.compile(r"[A-Za-z][A-Za-z']+")
#: ASCII words a Chinese export may hold: names of things, not English prose
ALLOWED = {"msgid", "excel", "html", "http", "tls", "id", "sheet1", "xlsx", "csv"}
#: English words a reason could be left in, whether or not the English export shows them
COMMON = set(
    re.findall(
        r"\w+",
        "the a an of to in on is are was not no and or for with by from at this that it may "
        "have been sent send number mobile message gateway delivered failed pending rejected "
        "unknown invalid duplicate suppressed capped cancelled unsent report reports status "
        "reason rows row outcome carrier source segments batch time china yet run stopped",
    )
)


def english_words(texts: Iterable[str]) -> set[str]:
    """The words of English texts that are prose (not codes like DELIVRD or ID:0101)."""
    words = {w for text in texts for w in _words(text) if _prose(w)}
    return {w.lower() for w in words} - ALLOWED


def leftover_english(text: str, vocabulary: set[str]) -> list[str]:
    return [w for w in _words(text) if _prose(w) and w.lower() in vocabulary]


def _words(text: str) -> list[str]:
    """ASCII words, less command-line options (`--force` is typed as it is)."""
    return WORD.findall(re.sub(r"--[a-z-]+", "", text))


def _prose(word: str) -> bool:
    """Not a code (DELIVRD, MBBLACK) nor an identifier (ConnectionError, InvalidURL)."""
    return not word.isupper() and not re.search(r"[a-z][A-Z]", word)


def read_book(path: Path) -> dict[str, list[list[object]]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return {s.title: [list(r) for r in s.iter_rows(values_only=True)] for s in book.worksheets}
    finally:
        book.close()


def tool_cells(sheets: dict[str, list[list[object]]], n_columns: int, first: str) -> list[str]:
    """Text cells the tool wrote: every sheet, less the original columns of the result sheets."""
    cells = []
    for name, rows in sheets.items():
        skip = n_columns if name.startswith(first) else 0
        cells += [str(v) for row in rows for v in row[skip:] if isinstance(v, str)]
    return cells


# ---------------------------------------------------------------------------------------------
# Campaigns.


def plan_reasons_list(folder: Path) -> Path:
    """A contact list whose rows hit every reason the plan gives (with the options below)."""
    rows = [
        ("甲", "13800000001", "金卡"),  # ready (金卡 x3)
        ("乙", "13800000002", "金卡"),
        ("丙", "13800000003", "金卡"),
        ("丙", "13800000004", "金卡"),
        ("丁", "13800000001", "金卡"),  # duplicate
        ("戊", "13800000009", "金卡"),  # suppressed
        ("己", "13900000006", "银卡"),  # unsent: below the minimum group size
        ("庚", "13900000007", ""),  # invalid: empty value in column
        ("辛", "13900000008", "赌博"),  # invalid: sensitive word
        ("壬", "13900000010", "长" * 600),  # invalid: too long
        ("癸", "", "金卡"),  # invalid: empty mobile
        ("子", "abc", "金卡"),  # contains letters
        ("丑", "1380000000", "金卡"),  # wrong length
        ("寅", "+44 7700 900123", "金卡"),  # foreign
        ("卯", "1.38E+10", "金卡"),  # scientific notation
        ("辰", "13800000011/13800000012", "金卡"),  # several numbers
        ("巳", "10800000011", "金卡"),  # not a mainland mobile
        ("午", "138-0000#0013", "金卡"),  # characters other than digits
    ]
    path = folder / "名单.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["姓名", "手机号码", "等级"])
        writer.writerows(rows)
    return path


def stopped_campaign(engine, folder: Path) -> int:
    """The list above, planned and sent to the simulator until its quota runs out (code 109):
    rejected, unknown, pending (no reports pushed), unsent with the stop reason."""
    (folder / "words.txt").write_text("赌博\n", encoding="utf-8")
    contacts = read_contacts([plan_reasons_list(folder)])
    options = PlanOptions(
        signature="【示例】",
        optout_text="回T退订",
        sensitive_words=SensitiveWords.load(folder / "words.txt"),
        max_batch=1,
        min_batch=2,
    )
    plan = make_plan(contacts, "{等级}会员您好", options, {"13800000009"})
    settings = Settings(
        gateway=GatewaySettings(url="simulator", rate=0.0, timeout=5.0),
        compliance=ComplianceSettings(signature="【示例】", optout_text="回T退订"),
        store_url=str(engine.url),
    )
    cid = create_campaign(
        engine, plan, name="停止的活动", settings_snapshot=settings_snapshot(settings)
    )
    with Simulator(report_delay=0.0, seed=7) as simulator:
        simulator.inject_code("115", 1)
        simulator.inject_drop(1)
        simulator.set_quota(simulator.settings.accounts[0].default, 2)
        gateway = replace(
            settings.gateway,
            url=simulator.url,
            account=simulator.account,
            password=simulator.password,
        )
        client = GatewayClient(gateway)
        try:
            send_campaign(
                engine, cid, client, settings, policy=SendPolicy(concurrency=1), force=True
            )
        finally:
            client.close()
    return cid


def capped_campaign(engine, folder: Path) -> int:
    """甲 got two messages today (two earlier sends): planned with max_per_recipient = 2 he is
    `capped`; 乙 (a China Broadnet number) is sent and delivered."""
    for msgid in ("9301", "9302"):
        accepted_batch(engine, msgid, ["13800000001"])
    rows = [["甲", "13800000001"], ["乙", "19200000002"]]
    path = contact_file(folder / "上限.csv", ["姓名", "手机号码"], rows)
    options = PlanOptions(signature="【示例】", max_per_recipient=2)
    cid = planned_campaign(engine, [path], "{姓名}您好", options, name="上限")
    set_state(engine, cid, CampaignState.SENDING)
    answer(engine, cid, [BatchResult(batch_id(1), BatchState.ACCEPTED, "9303", "0")])
    push_reports(engine, "9303,2611251000,19200000002,DELIVRD")
    set_state(engine, cid, CampaignState.FINISHED)
    return cid


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory) -> tuple[object, list[int]]:
    folder = tmp_path_factory.mktemp("zh")
    demo = run_demo(folder / "demo")
    engine = open_store(demo.store_url)
    ids = [demo.campaign_id, stopped_campaign(engine, folder), capped_campaign(engine, folder)]
    yield engine, ids
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# The exports.


def test_every_outcome_is_covered(campaigns):
    engine, ids = campaigns
    from campaign.store.results import outcome_counts

    seen = {o for cid in ids for o, n in outcome_counts(engine, cid).items() if n}
    assert seen >= set(OUTCOMES_ZH) - {"ready", Outcome.CANCELLED}  # no code writes cancelled


@pytest.mark.parametrize("index", [0, 1, 2])
def test_zh_workbook_is_chinese_outside_the_contact_columns(campaigns, tmp_path, index):
    engine, ids = campaigns
    cid = ids[index]
    record = get_campaign(engine, cid)
    n = len(record.columns)
    en = read_book(_export(engine, cid, tmp_path / "en.xlsx", "en"))
    zh = read_book(_export(engine, cid, tmp_path / "zh.xlsx", "zh"))

    assert list(zh) == [SHEETS_ZH[name] for name in en if name in SHEETS_ZH]
    assert all(not re.search(r"[A-Za-z]", name) for name in zh)
    header = zh["结果"][0]
    assert header[:n] == record.columns  # the original columns are untouched
    assert header[n:] == [RESULT_COLUMNS_ZH[c] for c in RESULT_COLUMNS]
    assert en["results"][0][n:] == list(RESULT_COLUMNS)
    for en_row, zh_row in zip(en["results"][1:], zh["结果"][1:], strict=True):
        assert zh_row[:n] == en_row[:n]
        outcome = RESULT_COLUMNS.index("outcome") + n
        assert zh_row[outcome] == OUTCOMES_ZH[en_row[outcome]]
        carrier = RESULT_COLUMNS.index("carrier") + n
        assert zh_row[carrier] == (CARRIERS_ZH[en_row[carrier]] if en_row[carrier] else None)

    vocabulary = english_words(tool_cells(en, n, "results")) | COMMON
    vocabulary -= english_words(_user_texts(record, en["results"][1:], n))
    cells = [c for c in tool_cells(zh, n, "结果") if "://" not in c]  # the store URL: a path
    leftovers = {cell: leftover_english(cell, vocabulary) for cell in cells}
    assert {cell: words for cell, words in leftovers.items() if words} == {}


def test_zh_csv_has_chinese_headers_and_values(campaigns, tmp_path):
    engine, ids = campaigns
    record = get_campaign(engine, ids[1])
    n = len(record.columns)
    path = _export(engine, ids[1], tmp_path / "zh.csv", "zh")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == [*record.columns, *(RESULT_COLUMNS_ZH[c] for c in RESULT_COLUMNS)]
    outcomes = {row[n + RESULT_COLUMNS.index("outcome")] for row in rows}
    assert outcomes <= set(OUTCOMES_ZH.values())
    assert {"被拒绝", "结果未知", "等待回执", "未发送", "无效", "重复"} <= outcomes
    with (_export(engine, ids[1], tmp_path / "en.csv", "en")).open(encoding="utf-8-sig") as f:
        en_rows = list(csv.reader(f))
    assert en_rows[0][n:] == list(RESULT_COLUMNS)
    vocabulary = english_words(c for row in en_rows[1:] for c in row[n:]) | COMMON
    vocabulary -= english_words(_user_texts(record, en_rows[1:], n))
    cells = [c for row in rows for c in row[n:]]
    assert {
        c: leftover_english(c, vocabulary) for c in cells if leftover_english(c, vocabulary)
    } == {}


def test_zh_reasons_keep_the_figures(campaigns, tmp_path):
    engine, ids = campaigns
    n = len(get_campaign(engine, ids[1]).columns)
    sheets = read_book(_export(engine, ids[1], tmp_path / "zh.xlsx", "zh"))
    reasons = {row[n + RESULT_COLUMNS.index("reason")] for row in sheets["结果"][1:]}
    assert "短信过长：612 个字符，超过一条短信最多的 536 个字符（8 条）" in reasons
    assert "此内容只有 1 个号码，少于最小群发数 2（网关会以代码 108 拒绝）" in reasons
    assert "短信含有敏感词“赌博”" in reasons
    assert "“等级”列的值为空" in reasons
    assert "与 名单.csv 第 2 行的号码相同" in reasons
    summary = {row[0]: row[1] for row in sheets["汇总"] if row and row[0]}
    assert summary["状态"] == "已停止"
    assert summary["停止原因"].startswith("网关代码 ")


def _export(engine, cid: int, out: Path, lang: str) -> Path:
    export_campaign(engine, cid, out, lang=lang)
    return out


def _user_texts(record, en_rows: list[list[object]], n: int) -> set[str]:
    """What the user wrote (campaign name, template, file names, texts): not the tool's words."""
    columns = [n + RESULT_COLUMNS.index(c) for c in ("source", "message")]
    return {record.name, record.template} | {str(r[c]) for r in en_rows for c in columns}


# ---------------------------------------------------------------------------------------------
# Every reason the tool makes has Chinese.


def tool_reasons() -> list[str]:
    """Reasons as the code makes them (the real functions, where they are functions)."""
    bad = ["", "abc", "1380000000", "+44 7700 900123", "1.38E+10", "13800000011/13800000012"]
    bad += ["10800000011", "138-0000#0013"]
    reasons = list(normalize_mobiles(pd.Series(bad))["reason"])
    window = parse_window("08:00-21:00")
    refused = [Refused(code, submit_code_info(code)).reason for code in ("109", "115", "999")]
    gateway = [
        parse_submit_response(500, "#500#", True).reason,
        parse_submit_response(502, "<html>bad</html>", True).reason,
        parse_submit_response(200, "", True).reason,
        parse_submit_response(200, "<html></html>", True).reason,
        parse_submit_response(200, "@@", True).reason,
        parse_submit_response(200, "20260101120000,109\nmore", True).reason,
        parse_submit_response(200, "20260101120000,0\n1234\nmore", True).reason,
        parse_submit_response(200, "20260101120000,0\n#?!", True).reason,
        parse_submit_response(200, "20260101120000,0", True).reason,
    ]
    errors = [
        requests.ConnectTimeout("x"),
        requests.ReadTimeout("x"),
        requests.ConnectionError("Connection aborted"),
        requests.exceptions.InvalidURL("x"),
    ]
    client = [classify_exception(exc).reason for exc in errors]
    details = [f"not sent: {r}" for r in client] + [f"retried after {r}" for r in refused]
    stops = [
        DAILY_LIMIT,
        INTERRUPTED,
        outside_window_message(window, datetime(2026, 12, 3, 22, 0, tzinfo=CHINA))
        + "; resume then",
        f"gateway unreachable: {client[0]}",
        f"{refused[0]}; resume later",
        f"the gateway kept refusing for 301 s (12 times in a row; last: {refused[0]})",
        "not started by not_after 20:00 China time; left unsent",
        "not_after 20:00 (China time) passed during the run: no more batches claimed; "
        "the rest waits for tomorrow's send_at 09:00",
        "not_after 20:00 (China time) has passed; "
        "the rest waits for tomorrow (from 00:00 China time)",
        "found after not_after 20:00 (China time); waits for tomorrow's send_at 09:00",
        "waits for send_at 09:00 (China time)",
        "the send failed unexpectedly (KeyError); it may have been sent",
        "the balance of product 1001 is 1 segments, but 4 billed segments are still to send; "
        "top up the account, or use --force",
        f"the gateway refused the balance query: {refused[0]}",
    ]
    plan = [
        SUPPRESSED_REASON,
        describe_length(612),
        "message is empty",
        "message contains the sensitive word 赌博",
        "empty value in column 姓名",
        "same number as 名单.xlsx:表1 row 12",
        plan_module._below_minimum(1, 5),
        plan_module._below_minimum(3, 5),
    ]
    if hasattr(plan_module, "cap_reason"):
        plan.append(plan_module.cap_reason(1, 1, 24))
    return [*reasons, *refused, *gateway, *client, *details, *stops, *plan]


def test_every_reason_the_tool_makes_has_chinese():
    reasons = [r for r in tool_reasons() if r]
    vocabulary = english_words(reasons) | COMMON
    untranslated = {r: reason_zh(r) for r in reasons if leftover_english(reason_zh(r), vocabulary)}
    assert untranslated == {}


def test_reason_figures_are_kept():
    assert reason_zh(describe_length(612)) == (
        "短信过长：612 个字符，超过一条短信最多的 536 个字符（8 条）"
    )
    assert reason_zh("wrong length: 10 digits") == "位数不对：10 位"
    assert reason_zh("not sent: gateway code 109: x (y)").startswith("未发出：网关代码 109：")
    assert reason_zh("some text nobody wrote") == "some text nobody wrote"  # never lost
