"""Real plans and campaigns on small inputs: `make_plan` and `create_campaign`, as a send has."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from campaign.contacts import read_contacts
from campaign.plan import Plan, PlanOptions, make_plan
from campaign.store.batches import BatchResult, claim_batches, record_results
from campaign.store.campaigns import create_campaign
from campaign.store.workers import register_worker, unregister_worker


def plan_of(mobiles: Sequence[str], text: str = "hi", max_batch: int | None = None) -> Plan:
    """`make_plan` on a list.csv of these mobiles (one text: the batches are the rows in order,
    `max_batch` mobiles a batch, all of them in one by default)."""
    lines = ["mobile", *mobiles]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "list.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        contacts = read_contacts([path])
    return make_plan(contacts, text, PlanOptions(max_batch=max_batch or max(1, len(mobiles))))


def small_plan(n: int = 10, per_batch: int = 3) -> Plan:
    """`make_plan` on an n-row list.csv (name, mobile): row 1 invalid, the others ready,
    `per_batch` mobiles a batch (one text, "hello": the batches are the ready rows in order)."""
    lines = ["name,mobile"]
    lines += [f"名{i},{'12345' if i == 1 else f'139{i:08d}'}" for i in range(n)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "list.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        contacts = read_contacts([path])
    return make_plan(contacts, "hello", PlanOptions(max_batch=per_batch))


def accepted_batch(engine: Engine, msgid: str, mobiles: Sequence[str]) -> int:
    """What a send leaves after the gateway accepted one request for these mobiles with this
    msgid: a campaign whose one batch is `accepted`. Returns the campaign id."""
    campaign_id = create_campaign(
        engine, plan_of(mobiles), name=f"msgid {msgid}", settings_snapshot={}
    )
    worker = register_worker(engine, campaign_id)
    try:
        [batch] = claim_batches(engine, campaign_id, worker, 1)
        record_results(
            engine, campaign_id, worker, [BatchResult(batch.batch_id, "accepted", msgid, "0")]
        )
    finally:
        unregister_worker(engine, worker)
    return campaign_id
