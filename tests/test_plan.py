"""The plan: outcomes and their precedence, dedupe, suppression, batching (campaign.plan)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from campaign.config import ComplianceSettings, GatewaySettings, Settings
from campaign.contacts import read_contacts
from campaign.errors import ConfigError, InputError, TemplateError
from campaign.messages import SensitiveWords
from campaign.plan import (
    PLAN_OUTCOMES,
    Batch,
    PlanOptions,
    batch_id,
    make_plan,
    plan_options,
)

HEADER = ["姓名", "手机号码", "城市", "积分"]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def contacts_of(tmp_path: Path, rows: list[list[str]], name: str = "c.csv"):
    return read_contacts([write_csv(tmp_path / name, rows)])


def by_row(plan, column: str) -> list:
    return plan.rows[column].tolist()


def test_outcomes_and_precedence(tmp_path):
    contacts = contacts_of(
        tmp_path,
        [
            ["张三", "13800138000", "北京", "100"],  # ready
            ["李四", "12345", "上海", "200"],  # invalid mobile
            ["张三", "138 0013 8000", "北京", "100"],  # duplicate of row 2
            ["王五", "13900139000", "北京", "300"],  # suppressed
            ["赵六", "13700137000", "广州", ""],  # empty 积分 -> invalid
            ["", "13600136000", "", "50"],  # fallbacks
            ["钱七", "1234", "", ""],  # invalid mobile wins over empty value
            ["孙八", "13900139000", "", ""],  # duplicate wins over suppressed and empty value
        ],
    )
    plan = make_plan(
        contacts, "{姓名|会员}您好，积分{积分}分{城市|}", PlanOptions(), {"13900139000"}
    )
    assert by_row(plan, "outcome") == [
        "ready",
        "invalid",
        "duplicate",
        "suppressed",
        "invalid",
        "ready",
        "invalid",
        "duplicate",
    ]
    reasons = by_row(plan, "reason")
    assert reasons[0] == ""
    assert reasons[1] != ""
    assert reasons[2] == "same number as c.csv row 2"
    assert reasons[3] == "on the suppression list"
    assert reasons[4] == "empty value in column 积分"
    assert reasons[7] == "same number as c.csv row 5"
    assert by_row(plan, "message")[0] == "张三您好，积分100分北京"
    assert by_row(plan, "message")[5] == "会员您好，积分50分"
    assert by_row(plan, "normalized_mobile")[2] == "13800138000"
    assert by_row(plan, "normalized_mobile")[1] == ""
    assert by_row(plan, "carrier")[0] == "China Mobile"
    assert by_row(plan, "segments") == [1, 0, 0, 0, 0, 1, 0, 0]
    assert by_row(plan, "batch_id") == ["b000001", "", "", "", "", "b000002", "", ""]
    summary = plan.summary()
    assert summary["rows"] == 8
    assert summary["outcomes"] == {
        "ready": 2,
        "invalid": 3,
        "duplicate": 2,
        "suppressed": 1,
        "capped": 0,
        "unsent": 0,
    }
    assert set(summary["outcomes"]) == set(PLAN_OUTCOMES)
    assert summary["recipients"] == 2
    assert summary["requests"] == 2
    assert summary["segments"] == 2
    assert summary["files"] == [{"source": "c.csv", "rows": 8, "blank_rows": 0}]


def test_duplicates_across_files_name_the_first_row(tmp_path):
    first = write_csv(tmp_path / "a.csv", [["甲", "13800138000", "", "1"]])
    second = write_csv(
        tmp_path / "b.csv", [["乙", "13900139000", "", "1"], ["丙", "+86 13800138000", "", "1"]]
    )
    plan = make_plan(read_contacts([first, second]), "您好{姓名}")
    assert by_row(plan, "outcome") == ["ready", "ready", "duplicate"]
    assert by_row(plan, "reason")[2] == "same number as a.csv row 2"
    assert plan.summary()["files"] == [
        {"source": "a.csv", "rows": 1, "blank_rows": 0},
        {"source": "b.csv", "rows": 2, "blank_rows": 0},
    ]


def test_blank_rows_are_counted_not_planned(tmp_path):
    contacts = contacts_of(tmp_path, [["甲", "13800138000", "", "1"], ["", "", "", ""]])
    summary = make_plan(contacts, "通知").summary()
    assert summary["rows"] == 1
    assert summary["blank_rows"] == 1


def test_identical_texts_share_batches_in_order_of_first_row(tmp_path):
    rows = [
        [name, f"1380000{i:04d}", city, "1"]
        for i, (name, city) in enumerate(
            [("a", "北京"), ("b", "上海"), ("c", "北京"), ("d", "上海"), ("e", "北京")]
        )
    ]
    plan = make_plan(contacts_of(tmp_path, rows), "{城市}门店开业")
    assert [b.text for b in plan.batches] == ["北京门店开业", "上海门店开业"]
    assert plan.batches[0].mobiles == ("13800000000", "13800000002", "13800000004")
    assert plan.batches[0].rows == (0, 2, 4)
    assert plan.batches[1].rows == (1, 3)
    assert by_row(plan, "batch_id") == ["b000001", "b000002", "b000001", "b000002", "b000001"]


def test_max_batch_chunks_into_equal_requests(tmp_path):
    rows = [["x", f"1390000{i:04d}", "", "1"] for i in range(7)]
    plan = make_plan(contacts_of(tmp_path, rows), "通知", PlanOptions(max_batch=3))
    sizes = [len(b.mobiles) for b in plan.batches]
    assert sizes == [3, 2, 2]
    assert [b.batch_id for b in plan.batches] == ["b000001", "b000002", "b000003"]
    assert [b.seq for b in plan.batches] == [1, 2, 3]
    assert plan.batches[-1] == plan.batches[2]
    assert plan.batches[0] == Batch(
        "b000001", 1, "通知", 1, ("13900000000", "13900000001", "13900000002"), (0, 1, 2)
    )
    assert [b.rows for b in plan.batches[1:]] == [(3, 4), (5, 6)]
    summary = plan.summary()
    assert (summary["requests"], summary["largest_batch"], summary["smallest_batch"]) == (3, 3, 2)
    with pytest.raises(IndexError):
        plan.batches[3]


def test_min_batch_leaves_small_groups_unsent(tmp_path):
    rows = [["x", f"1390000{i:04d}", "北京" if i < 3 else "上海", "1"] for i in range(4)]
    plan = make_plan(contacts_of(tmp_path, rows), "{城市}", PlanOptions(min_batch=2))
    assert by_row(plan, "outcome") == ["ready", "ready", "ready", "unsent"]
    assert by_row(plan, "reason")[3] == (
        "only 1 recipient with this text, below the minimum group size 2 "
        "(the gateway would refuse it with 108)"
    )
    assert by_row(plan, "message")[3] == "上海"
    assert by_row(plan, "batch_id")[3] == ""
    assert len(plan.batches) == 1
    assert plan.summary()["outcomes"]["unsent"] == 1


def test_batches_are_deterministic(tmp_path):
    rows = [[f"n{i % 3}", f"1370000{i:04d}", "", "1"] for i in range(30)]
    contacts = contacts_of(tmp_path, rows)
    one = make_plan(contacts, "{姓名}", PlanOptions(max_batch=4))
    two = make_plan(contacts, "{姓名}", PlanOptions(max_batch=4))
    assert list(one.batches) == list(two.batches)
    assert one.rows.equals(two.rows)
    assert batch_id(12) == "b000012"


def test_compliance_segments_and_length(tmp_path):
    rows = [
        ["短", "13800000001", "", "1"],
        ["长" * 63, "13800000002", "", "1"],
        ["超" * 540, "13800000003", "", "1"],
        ["😀" * 30, "13800000004", "", "1"],
    ]
    options = PlanOptions(signature="【品牌】", optout_text="回T退订")
    plan = make_plan(contacts_of(tmp_path, rows), "{姓名}", options)
    messages = by_row(plan, "message")
    assert messages[0] == "【品牌】短回T退订"
    assert by_row(plan, "segments")[:2] == [1, 2]  # 4 + 63 + 4 = 71 units: 2 parts
    assert by_row(plan, "outcome") == ["ready", "ready", "invalid", "ready"]
    assert "too long: 548 characters" in by_row(plan, "reason")[2]
    assert by_row(plan, "segments")[3] == 1  # 4 + 30 * 2 + 4 = 68 UTF-16 units
    assert plan.summary()["segments"] == 1 + 2 + 1


def test_sensitive_words_make_rows_invalid(tmp_path):
    rows = [["代开发票", "13800000001", "", "1"], ["张三", "13800000002", "", "1"]]
    options = PlanOptions(sensitive_words=SensitiveWords(["发票", *map(str, range(3000))]))
    plan = make_plan(contacts_of(tmp_path, rows), "{姓名}您好", options)
    assert by_row(plan, "outcome") == ["invalid", "ready"]
    assert by_row(plan, "reason")[0] == "message contains the sensitive word 发票"
    assert by_row(plan, "message")[0] == "代开发票您好"


def test_template_naming_a_missing_column_is_an_error(tmp_path):
    contacts = contacts_of(tmp_path, [["甲", "13800138000", "", "1"]])
    with pytest.raises(TemplateError, match="columns available: 姓名, 手机号码, 城市, 积分"):
        make_plan(contacts, "{会员等级}您好")


def test_all_rows_invalid_is_an_error_with_counts(tmp_path):
    contacts = contacts_of(
        tmp_path,
        [["甲", "13800138000", "", ""], ["乙", "13800138001", "", ""], ["丙", "123", "", "1"]],
    )
    with pytest.raises(InputError, match="no valid recipients") as info:
        make_plan(contacts, "{积分}")
    assert "2 empty value in column 积分" in str(info.value)


def test_everyone_suppressed_is_not_an_error(tmp_path):
    contacts = contacts_of(tmp_path, [["甲", "13800138000", "", "1"]])
    plan = make_plan(contacts, "hi", suppressed={"13800138000"})
    assert plan.summary()["recipients"] == 0
    assert plan.summary()["requests"] == 0
    assert plan.summary()["largest_batch"] == 0


def test_plan_options_from_settings(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("发票\n\n  赌博 \n", encoding="utf-8")
    settings = Settings(
        gateway=GatewaySettings(max_batch=1000, min_batch=5),
        compliance=ComplianceSettings(
            signature="【品牌】", optout_text="回T退订", sensitive_words=words
        ),
    )
    options = plan_options(settings)
    assert (options.max_batch, options.min_batch) == (1000, 5)
    assert options.signature == "【品牌】"
    assert options.sensitive_words is not None
    assert options.sensitive_words.words == ["发票", "赌博"]
    missing = Settings(compliance=ComplianceSettings(sensitive_words=tmp_path / "none.txt"))
    with pytest.raises(ConfigError, match=r"none\.txt does not exist"):
        plan_options(missing)


def test_fallback_and_equal_value_share_a_batch(tmp_path):
    rows = [["甲", "13800000001", "", "1"], ["乙", "13800000002", "全国", "1"]]
    rows += [["丙", "13800000003", "北京", "1"]]
    plan = make_plan(contacts_of(tmp_path, rows), "{城市|全国}门店上新，积分{积分}倍")
    assert [b.text for b in plan.batches] == ["全国门店上新，积分1倍", "北京门店上新，积分1倍"]
    assert plan.batches[0].rows == (0, 1)


def test_batches_as_columns_and_slices(tmp_path):
    rows = [["x", f"1390000{i:04d}", "北京" if i % 3 else "上海", "1"] for i in range(8)]
    plan = make_plan(contacts_of(tmp_path, rows), "{城市}", PlanOptions(max_batch=2))
    batches = plan.batches
    table = batches.frame()
    assert table["batch_id"].tolist() == [b.batch_id for b in batches]
    assert table["seq"].tolist() == [b.seq for b in batches]
    assert table["text"].tolist() == [b.text for b in batches]
    assert table["segments"].tolist() == [b.segments for b in batches]
    assert table["size"].tolist() == [len(b.mobiles) for b in batches]
    assert table["mobiles"].tolist() == [",".join(b.mobiles) for b in batches]
    assert batches.frame(1, 3)["batch_id"].tolist() == ["b000002", "b000003"]
    assert batches[-1] == list(batches)[-1]
    assert batches[1:3] == list(batches)[1:3]
    assert batches[::2] == list(batches)[::2]
    assert batches[5:2] == []


def test_no_batches(tmp_path):
    plan = make_plan(
        contacts_of(tmp_path, [["x", "13800138000", "", "1"]]), "hi", suppressed={"13800138000"}
    )
    assert list(plan.batches) == []
    assert len(plan.batches.frame()) == 0
    assert list(plan.batches.frame().columns) == [
        "batch_id",
        "seq",
        "text",
        "segments",
        "size",
        "mobiles",
    ]


def test_iteration_in_chunks_matches_indexing(tmp_path, monkeypatch):
    import campaign.plan as plan_module

    monkeypatch.setattr(plan_module, "ITER_CHUNK", 3)
    rows = [[f"n{i % 4}", f"1380000{i:04d}", "", "1"] for i in range(20)]
    plan = make_plan(contacts_of(tmp_path, rows), "{姓名}", PlanOptions(max_batch=2))
    assert list(plan.batches) == [plan.batches[i] for i in range(len(plan.batches))]
    assert sum(len(b.mobiles) for b in plan.batches) == 20


def test_min_batch_above_max_batch_is_a_config_error():
    settings = Settings(gateway=GatewaySettings(max_batch=50, min_batch=100))
    with pytest.raises(ConfigError, match="min_batch"):
        plan_options(settings)


def test_each_too_long_text_names_its_own_length(tmp_path):
    rows = [
        ["超" * 540, "13800000001", "", "1"],
        ["超" * 600, "13800000002", "", "1"],
        ["超" * 540 + "甲", "13800000003", "", "1"],
        ["短", "13800000004", "", "1"],
    ]
    plan = make_plan(contacts_of(tmp_path, rows), "{姓名}")
    reasons = by_row(plan, "reason")
    assert [r.split(",")[0] for r in reasons[:3]] == [
        "message too long: 540 characters",
        "message too long: 600 characters",
        "message too long: 541 characters",
    ]
    assert by_row(plan, "outcome") == ["invalid", "invalid", "invalid", "ready"]
