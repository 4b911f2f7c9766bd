from __future__ import annotations

import pandas as pd
import pytest

from campaign.errors import NotFoundError
from campaign.outcomes import CampaignState
from campaign.result_rows import iter_results, report_status_breakdown
from campaign.store.batches import claim_batches
from campaign.store.breakdowns import outcome_breakdown, reports_per_hour
from campaign.store.campaigns import create_campaign, set_state
from campaign.store.results import (
    OUTCOMES,
    RESULT_COLUMNS,
    outcome_counts,
    report_status_counts,
    segment_totals,
    unmatched_reports,
)
from campaign.store.workers import register_worker
from tests.support.plans import (
    COLUMNS,
    accepted_batch,
    campaign_without_rows,
    contact_file,
    every_outcome_campaign,
    plan_of,
    planned_campaign,
    push_reports,
)


def all_results(engine, cid, **kw) -> pd.DataFrame:
    return pd.concat(list(iter_results(engine, cid, **kw)), ignore_index=True)


def test_every_outcome_row_by_row(engine):
    cid = every_outcome_campaign(engine)
    frame = all_results(engine, cid)
    assert list(frame.columns) == COLUMNS + list(RESULT_COLUMNS)
    assert frame["outcome"].tolist() == [
        "delivered", "failed", "pending", "rejected", "unknown", "unsent",
        "invalid", "duplicate", "suppressed", "unsent",
    ]  # fmt: skip
    assert frame["name"].tolist()[:3] == ["=SUM(A1)", "+86 luck", "@x"]
    assert frame["source_row"].tolist() == [*range(2, 10), 2, 3]  # contacts.xlsx, more.csv
    by = frame.set_index("name")

    delivered = by.loc["=SUM(A1)"]
    assert delivered["dlr_status"] == "DELIVRD"
    assert delivered["report_time"] == "2026-11-25T10:05:00+08:00"  # the latest report
    assert delivered["reason"] == ""
    assert delivered["msgid"] == "9001" and delivered["submit_code"] == "0"
    assert delivered["dlr_description"] == "delivered"

    failed = by.loc["+86 luck"]
    assert failed["dlr_status"] == "UNDELIV"  # first non-DELIVRD by time, not by arrival
    assert failed["report_time"] == "2026-11-25T11:03:00+08:00"
    assert "UNDELIV" in failed["reason"]

    pending = by.loc["@x"]
    assert pending["dlr_status"] == "" and pending["report_time"] == ""
    assert "no delivery report" in pending["reason"]

    rejected = by.loc["-1"]
    assert rejected["submit_code"] == "105" and "105" in rejected["reason"]
    assert "sensitive" in rejected["reason"]

    assert "no answer from the gateway before the timeout" in by.loc["张三", "reason"]
    assert by.loc["李四", "reason"] == "not sent: the run stopped (quota exhausted)"
    assert by.loc["李四", "msgid"] == ""
    assert by.loc["王五", "reason"] == "wrong length: 5 digits"
    assert by.loc["王五", "normalized_mobile"] == ""
    assert by.loc["孙八", "reason"] == (
        "only 1 recipient with this text, below the minimum group size 2 "
        "(the gateway would refuse it with 108)"
    )
    assert (frame.loc[frame["outcome"] != "delivered", "reason"] != "").all()


def test_chunks_keep_input_order_and_cover_every_row(engine):
    cid = every_outcome_campaign(engine)
    chunks = list(iter_results(engine, cid, chunk_rows=3))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    whole = pd.concat(chunks, ignore_index=True)
    assert whole.equals(all_results(engine, cid))


def test_chinese_reasons_keep_english_outcomes(engine):
    cid = every_outcome_campaign(engine)
    frame = all_results(engine, cid, lang="zh")
    assert frame.loc[2, "outcome"] == "pending"
    assert frame.loc[2, "reason"] == "网关已接收，尚无状态报告"
    assert frame.loc[0, "dlr_description"] == "成功"
    assert frame.loc[5, "reason"] == "未发送：运行已停止（quota exhausted）"


def test_counts(engine):
    cid = every_outcome_campaign(engine)
    counts = outcome_counts(engine, cid)
    assert list(counts) == list(OUTCOMES)
    assert counts == {
        "delivered": 1, "failed": 1, "pending": 1, "rejected": 1, "unknown": 1,
        "invalid": 1, "duplicate": 1, "suppressed": 1, "capped": 0, "cancelled": 0,
        "unsent": 2,
    }  # fmt: skip
    assert report_status_counts(engine, cid) == {"DELIVRD": 1, "UNDELIV": 1}
    assert unmatched_reports(engine, cid) == 1  # 9001 report for a number not in that batch
    assert unmatched_reports(engine) == 2  # ... plus the one with a msgid nobody issued


def test_figures_for_the_summary(engine):
    cid = every_outcome_campaign(engine)
    totals = segment_totals(engine, cid)
    assert (totals.billed, totals.accepted_rows) == (3, 3)
    assert totals.planned == 6  # rows in a request only (1 segment each)
    carriers = outcome_breakdown(engine, cid, "carrier").set_index("carrier")
    assert carriers.loc["China Mobile", "rows"] == 6
    assert carriers.loc["China Mobile", "delivery_rate"] == pytest.approx(1 / 3)
    assert carriers.loc["", "invalid"] == 1
    assert pd.isna(carriers.loc["China Unicom", "delivery_rate"])
    sources = outcome_breakdown(engine, cid, "source").set_index("source")
    assert sources["rows"].to_dict() == {"contacts.xlsx:Sheet1": 8, "more.csv": 2}
    statuses = report_status_breakdown(engine, cid)
    assert statuses["status"].tolist() == ["DELIVRD", "UNDELIV"]
    assert statuses["share"].sum() == pytest.approx(1.0)
    hours = reports_per_hour(engine, cid)
    assert hours.to_dict("records") == [
        {"hour": "2026-11-25 10:00", "reports": 4, "delivered": 3},
        {"hour": "2026-11-25 11:00", "reports": 1, "delivered": 0},
    ]


def test_campaigns_do_not_leak_into_each_other(engine):
    first = every_outcome_campaign(engine)
    second = accepted_batch(engine, "9101", ["13800000001"])  # the same number, sent again
    push_reports(engine, "9101,2611251200,13800000001,REJECT")
    assert outcome_counts(engine, second)["failed"] == 1
    assert outcome_counts(engine, first)["delivered"] == 1
    frame = all_results(engine, second)
    assert list(frame.columns) == ["mobile", *RESULT_COLUMNS]
    assert frame.loc[0, "dlr_status"] == "REJECT"


def test_unsent_batch_of_a_campaign_not_stopped(engine):
    cid = create_campaign(engine, plan_of(["13800000001"]), name="sending", settings_snapshot={})
    set_state(engine, cid, CampaignState.SENDING)
    claim_batches(engine, cid, register_worker(engine, cid), 1)  # its request is on its way
    frame = all_results(engine, cid)
    assert frame.loc[0, "outcome"] == "unsent"
    assert frame.loc[0, "reason"] == "not sent yet"


def test_original_column_named_like_a_result_column(engine, tmp_path):
    rows = [["vip", "1"], ["gold", "13800000001"]]
    cid = planned_campaign(
        engine, [contact_file(tmp_path / "list.csv", ["outcome", "phone"], rows)]
    )
    frame = all_results(engine, cid)
    assert list(frame.columns) == ["outcome", "phone", *RESULT_COLUMNS]
    assert frame.iloc[0, 0] == "vip"
    assert frame.iloc[0, 2 + RESULT_COLUMNS.index("outcome")] == "invalid"


def test_campaign_without_rows_and_missing_campaign(engine):
    cid = campaign_without_rows(engine, ["phone"])
    assert list(iter_results(engine, cid)) == []
    assert outcome_counts(engine, cid) == dict.fromkeys(OUTCOMES, 0)
    assert reports_per_hour(engine, cid).empty
    with pytest.raises(NotFoundError):
        list(iter_results(engine, 999))


def test_json_lines_read_equals_the_tuple_read(engine, tmp_path, monkeypatch):
    """SQLite reads a chunk as JSON lines parsed by Arrow; the DBAPI tuples give the same."""
    import campaign.store.json_transport as transport
    import campaign.store.result_chunks as results

    tricky = 'a "quoted"\\\ttab\n'
    rows = [["x", "13800000010", ""], [tricky, "13800000010", ""]]  # row 11: a duplicate
    more = contact_file(tmp_path / "x\u0001y.csv", COLUMNS, rows)
    cid = every_outcome_campaign(engine, more=[more])
    for lang in ("en", "zh"):
        fast = all_results(engine, cid, chunk_rows=4, lang=lang)
        monkeypatch.setattr(results, "_json_blob", lambda *args: None)
        slow = all_results(engine, cid, chunk_rows=4, lang=lang)
        monkeypatch.undo()
        pd.testing.assert_frame_equal(fast, slow)
        monkeypatch.setattr(results, "_json_columns", lambda blob: None)  # re-read as tuples
        pd.testing.assert_frame_equal(all_results(engine, cid, chunk_rows=4, lang=lang), slow)
        monkeypatch.undo()
        monkeypatch.setattr(transport, "_JSON_BLOCK", 64)  # lines longer than a block
        pd.testing.assert_frame_equal(all_results(engine, cid, chunk_rows=4, lang=lang), slow)
        monkeypatch.undo()
        assert fast.iloc[11, 0] == tricky
        assert fast.loc[11, "source"] == "x\u0001y.csv"  # "same number as x\u0001y.csv row 2"
        assert "x\u0001y.csv" in fast.loc[11, "reason"]


def test_cell_lists_of_other_lengths_are_padded(engine, tmp_path):
    rows = [["a", "13800000001", "x"], ["b"], ["c", "13800000003", "z"]]  # a short csv line
    cid = planned_campaign(
        engine, [contact_file(tmp_path / "list.csv", ["name", "phone", "city"], rows)]
    )
    frame = all_results(engine, cid)
    assert frame.iloc[:, :3].values.tolist() == [
        ["a", "13800000001", "x"],
        ["b", "", ""],
        ["c", "13800000003", "z"],
    ]


def test_stopping_early_ends_the_read_ahead(engine):
    import threading

    cid = every_outcome_campaign(engine)
    chunks = iter_results(engine, cid, chunk_rows=2, arrow=True)
    first = next(chunks)
    assert first.num_rows == 2
    reading = [t for t in threading.enumerate() if t.name.startswith("results-read-ahead")]
    assert reading  # the next chunks are being read
    chunks.close()
    assert not [t for t in reading if t.is_alive()]


def test_cells_that_are_not_text_come_out_as_text(engine, tmp_path):
    columns = ["name", "points", "city", "phone"]
    rows = [["a", 12, None, "13800000001"]]  # a number and an empty cell in the workbook
    cid = planned_campaign(engine, [contact_file(tmp_path / "list.xlsx", columns, rows)])
    frame = all_results(engine, cid)
    assert frame.iloc[0, :3].tolist() == ["a", "12", ""]
