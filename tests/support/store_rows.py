"""Write store rows directly (SQLAlchemy inserts), for tests of the read side and the export."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from campaign.store.schema import batches, campaigns, recipients, reports
from campaign.timeutil import utcnow


def add_campaign(
    engine: Engine,
    columns: Sequence[str],
    *,
    name: str = "spring sale",
    state: str = "finished",
    stop_reason: str | None = None,
    template: str = "{name}, spring sale!",
    settings: dict[str, Any] | None = None,
    files: list[dict[str, Any]] | None = None,
) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            campaigns.insert().values(
                name=name,
                state=state,
                stop_reason=stop_reason,
                template=template,
                settings=json.dumps(settings or {"signature": "【品牌】"}, ensure_ascii=False),
                columns=json.dumps(list(columns), ensure_ascii=False),
                files=json.dumps(files or [], ensure_ascii=False),
                created_at=utcnow(),
                started_at=utcnow(),
            )
        )
        return int(result.inserted_primary_key[0])


@dataclass
class Row:
    cells: list[str]
    outcome: str = "ready"
    mobile: str | None = None
    batch_id: str | None = None
    reason: str | None = None
    carrier: str | None = "China Mobile"
    message: str | None = "【品牌】hello"
    segments: int | None = 1
    source: str = "contacts.xlsx:Sheet1"
    source_row: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def add_recipients(engine: Engine, campaign_id: int, rows: Sequence[Row], start: int = 0) -> None:
    values = [
        {
            "campaign_id": campaign_id,
            "row_no": start + i,
            "source": row.source,
            "source_row": row.source_row if row.source_row is not None else start + i + 2,
            "cells": json.dumps(row.cells, ensure_ascii=False),
            "mobile": row.mobile,
            "carrier": row.carrier if row.mobile else None,
            "outcome": row.outcome,
            "reason": row.reason,
            "message": row.message,
            "segments": row.segments,
            "batch_id": row.batch_id,
        }
        for i, row in enumerate(rows)
    ]
    with engine.begin() as conn:
        conn.execute(recipients.insert(), values)


def add_batch(
    engine: Engine,
    campaign_id: int,
    batch_id: str,
    state: str,
    mobiles: Sequence[str],
    *,
    seq: int = 1,
    msgid: str | None = None,
    submit_code: str | None = None,
    detail: str | None = None,
    segments: int = 1,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            batches.insert().values(
                campaign_id=campaign_id,
                batch_id=batch_id,
                seq=seq,
                text="【品牌】hello",
                segments=segments,
                size=len(mobiles),
                mobiles=",".join(mobiles),
                state=state,
                attempts=1 if state != "pending" else 0,
                msgid=msgid,
                submit_code=submit_code,
                detail=detail,
            )
        )


def add_reports(engine: Engine, rows: Sequence[tuple[str, str, str, str]]) -> None:
    """rows: (msgid, mobile, status, report_time ISO China time)."""
    values = [
        {
            "msgid": msgid,
            "mobile": mobile,
            "status": status,
            "report_time": when,
            "origin": "push",
            "received_at": utcnow(),
        }
        for msgid, mobile, status, when in rows
    ]
    with engine.begin() as conn:
        conn.execute(reports.insert(), values)


COLUMNS = ["name", "phone", "note"]


def every_outcome_campaign(engine: Engine, *, name: str = "spring sale") -> int:
    """A campaign of 10 input rows, one per outcome (two `unsent` rows: plan and run)."""
    cid = add_campaign(engine, COLUMNS, name=name, state="stopped", stop_reason="quota exhausted")
    rows = [
        Row(["=SUM(A1)", "13800000001", "vip"], mobile="13800000001", batch_id="b000001"),
        Row(["+86 luck", "13800000002", ""], mobile="13800000002", batch_id="b000001"),
        Row(["@x", "13800000003", "-1"], mobile="13800000003", batch_id="b000001"),
        Row(
            ["-1", "13900000004", ""],
            mobile="13900000004",
            batch_id="b000002",
            carrier="China Unicom",
        ),
        Row(
            ["张三", "13900000005", ""],
            mobile="13900000005",
            batch_id="b000003",
            carrier="China Unicom",
        ),
        Row(
            ["李四", "13300000006", ""],
            mobile="13300000006",
            batch_id="b000004",
            carrier="China Telecom",
            source="more.csv",
        ),
        Row(
            ["王五", "12345", ""],
            outcome="invalid",
            reason="not a mobile number: 12345",
            segments=0,
            message="",
        ),
        Row(
            ["赵六", "13800000001", ""],
            outcome="duplicate",
            mobile="13800000001",
            reason="the same number as row 2 of contacts.xlsx:Sheet1",
        ),
        Row(
            ["钱七", "13800000008", ""],
            outcome="suppressed",
            mobile="13800000008",
            reason="opted out",
        ),
        Row(
            ["孙八", "13800000009", ""],
            outcome="unsent",
            mobile="13800000009",
            reason="below the minimum group size",
            source="more.csv",
        ),
    ]
    add_recipients(engine, cid, rows)
    add_batch(
        engine,
        cid,
        "b000001",
        "accepted",
        ["13800000001", "13800000002", "13800000003"],
        msgid="M1",
        submit_code="0",
        segments=2,
    )
    add_batch(
        engine,
        cid,
        "b000002",
        "rejected",
        ["13900000004"],
        seq=2,
        submit_code="105",
        detail="sensitive content",
    )
    add_batch(
        engine, cid, "b000003", "unknown", ["13900000005"], seq=3, detail="no answer: ReadTimeout"
    )
    add_batch(engine, cid, "b000004", "pending", ["13300000006"], seq=4)
    add_reports(
        engine,
        [
            ("M1", "13800000001", "DELIVRD", "2026-11-25T10:00:00+08:00"),
            ("M1", "13800000001", "DELIVRD", "2026-11-25T10:05:00+08:00"),
            ("M1", "13800000002", "DELIVRD", "2026-11-25T10:01:00+08:00"),
            ("M1", "13800000002", "MBBLACK", "2026-11-25T11:03:00+08:00"),
            ("M1", "13800000002", "UNDELIV", "2026-11-25T10:02:00+08:00"),
            ("M1", "13999999999", "DELIVRD", "2026-11-25T10:00:00+08:00"),  # not in the batch
            ("NOBODY", "13800000001", "DELIVRD", "2026-11-25T10:00:00+08:00"),  # foreign msgid
        ],
    )
    return cid
