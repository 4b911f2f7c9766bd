"""Real plans and campaigns on small inputs: `make_plan` and `create_campaign`, as a send has.

A campaign in any state is built the way the product builds it: a contact file written in a
folder (`contact_file`) -> `make_plan` with the store's suppression list and caps ->
`create_campaign` (`planned_campaign`) -> a worker claims batches and records the gateway's
answers (`answer`) -> delivery reports stored as the receiver stores a push (`push_reports`);
the campaign's state moves by `set_state`. `every_outcome_campaign` has one row per outcome.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import requests
import xlsxwriter
from sqlalchemy import Engine

from campaign.config import ComplianceSettings, GatewaySettings, Settings
from campaign.contacts import read_contacts
from campaign.gateway.client import classify_exception
from campaign.gateway.protocol import submit_code_info
from campaign.outcomes import BatchState, CampaignState
from campaign.plan import Plan, PlanOptions, batch_id, make_plan
from campaign.push_params import parse_reports
from campaign.store import suppression
from campaign.store.batches import BatchResult, claim_batches, record_results
from campaign.store.campaigns import create_campaign, set_state, settings_snapshot
from campaign.store.caps import capped_mobiles
from campaign.store.engine import write
from campaign.store.reports import insert_reports
from campaign.store.workers import register_worker, unregister_worker

Cell = str | int | float | None


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
    answer(engine, campaign_id, [BatchResult(batch_id(1), BatchState.ACCEPTED, msgid, "0")])
    return campaign_id


# ---------------------------------------------------------------------------------------------
# The steps of a send.


def contact_file(path: Path, columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> Path:
    """A contact list as a user hands it in, by `path`'s extension: .csv (UTF-8; a short row
    stays short) or .xlsx (sheet "Sheet1"; text cells stay text, "=SUM(A1)" too; numbers are
    numbers; None is an empty cell). Returns `path`."""
    if path.suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([columns, *rows])
        return path
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Sheet1")
    for r, row in enumerate([columns, *rows]):
        for c, value in enumerate(row):
            if isinstance(value, str):
                sheet.write_string(r, c, value)
            elif value is not None:
                sheet.write_number(r, c, value)
    book.close()
    return path


def planned_campaign(
    engine: Engine,
    files: Sequence[Path],
    template: str = "hello",
    options: PlanOptions | None = None,
    *,
    name: str = "list",
) -> int:
    """What `campaign send` stores before its first request: `make_plan` of `files` with the
    store's suppression list and caps, stored by `create_campaign` (state `planned`, with a
    snapshot of the settings these options come from). Returns its id."""
    options = options or PlanOptions()
    capped = capped_mobiles(engine, options.max_per_recipient, options.cap_window_hours)
    plan = make_plan(
        read_contacts(files), template, options, suppression.suppressed_set(engine), capped=capped
    )
    settings = Settings(
        gateway=GatewaySettings(max_batch=options.max_batch, min_batch=options.min_batch),
        compliance=ComplianceSettings(
            signature=options.signature,
            optout_text=options.optout_text,
            max_per_recipient=options.max_per_recipient,
            cap_window_hours=options.cap_window_hours,
        ),
    )
    return create_campaign(engine, plan, name=name, settings_snapshot=settings_snapshot(settings))


def answer(engine: Engine, campaign_id: int, results: Sequence[BatchResult]) -> None:
    """What a run records: a worker claims the campaign's next batches (lowest seq first),
    those `results` name in that order, and records the gateway's answers to them."""
    worker = register_worker(engine, campaign_id)
    try:
        claimed = claim_batches(engine, campaign_id, worker, len(results))
        assert [b.batch_id for b in claimed] == [r.batch_id for r in results]
        record_results(engine, campaign_id, worker, results)
    finally:
        unregister_worker(engine, worker)


def rejected(batch: str, code: str) -> BatchResult:
    """The gateway refused the request with `code`, as the send loop records it."""
    info = submit_code_info(code)
    return BatchResult(
        batch, BatchState.REJECTED, submit_code=code, detail=f"{info.en} ({info.zh})"
    )


def no_answer(batch: str) -> BatchResult:
    """The request timed out waiting for the answer (it may have been sent), as recorded."""
    reason = classify_exception(requests.ReadTimeout("read timed out")).reason
    return BatchResult(batch, BatchState.UNKNOWN, detail=reason)


def push_reports(engine: Engine, *items: str) -> None:
    """Store delivery reports as the receiver stores a batched /dlr push: each item is
    "msgid,reportTime,mobile,status", reportTime as the gateway writes it (YYMMDDhhmm)."""
    pushed = parse_reports({"report": "||".join(items)})
    assert not pushed.malformed, pushed.malformed
    with write(engine) as conn:
        insert_reports(conn, pushed.rows)


def campaign_without_rows(engine: Engine, columns: Sequence[str]) -> int:
    """A stored campaign with these columns and no row. No command stores one (`make_plan`
    refuses an empty list); the read side copes anyway: a real plan of a one-row list (its
    row invalid: no batch) stored without the row."""
    with tempfile.TemporaryDirectory() as folder:
        path = contact_file(Path(folder) / "list.csv", columns, [["x"] * len(columns)])
        contacts = read_contacts([path])
    plan = make_plan(contacts, "hello", allow_nothing_valid=True)
    contacts = replace(contacts, frame=contacts.frame.iloc[:0])
    empty = replace(plan, contacts=contacts)
    empty.__dict__["rows"] = plan.rows.iloc[:0]  # Plan.rows is a cached property: preset it
    return create_campaign(engine, empty, name="no rows", settings_snapshot={})


# ---------------------------------------------------------------------------------------------
# One campaign with every outcome.

COLUMNS = ["name", "phone", "note"]
#: contacts.xlsx (rows 1-8) and more.csv (rows 9-10); the outcome each row ends with
EVERY_OUTCOME_ROWS = [
    ["=SUM(A1)", "13800000001", ""],  # delivered (request b000001, msgid 9001)
    ["+86 luck", "13800000002", ""],  # failed (b000002, 9002)
    ["@x", "13800000003", ""],  # pending: accepted (b000003, 9003), no report
    ["-1", "13000000004", ""],  # rejected (b000004, code 105), China Unicom
    ["张三", "13000000005", ""],  # unknown (b000005, no answer), China Unicom
    ["李四", "13300000006", ""],  # unsent: b000006 never claimed, the run stopped
    ["王五", "12345", ""],  # invalid
    ["赵六", "13800000001", ""],  # duplicate of row 1
    ["钱七", "13800000008", ""],  # suppressed
    ["孙八", "13800000009", "-1"],  # unsent: the only one with its text (min_batch 2)
]
#: One request per row, and a text fewer than 2 rows have is below the minimum group size:
#: `make_plan` takes this pairing (settings cannot hold it: `plan_options` refuses
#: min_batch > max_batch); no product setting gives one request per row beside that row.
EVERY_OUTCOME_OPTIONS = PlanOptions(signature="【品牌】", max_batch=1, min_batch=2)
STOP_REASON = "quota exhausted"


def every_outcome_campaign(
    engine: Engine, *, name: str = "spring sale", more: Sequence[Path] = ()
) -> int:
    """The 10 rows above, planned (template "{note|}您好": one request per row), sent up to
    b000005, stopped ("quota exhausted"), and the reports of 9001 and 9002 pushed, with one
    for a number not in its request and one for a msgid nobody issued. `more`: contact files
    read after the two (their rows come after row 10)."""
    suppression.add(engine, ["13800000008"])
    with tempfile.TemporaryDirectory() as folder:
        files = [
            contact_file(Path(folder) / "contacts.xlsx", COLUMNS, EVERY_OUTCOME_ROWS[:8]),
            contact_file(Path(folder) / "more.csv", COLUMNS, EVERY_OUTCOME_ROWS[8:]),
            *more,
        ]
        cid = planned_campaign(engine, files, "{note|}您好", EVERY_OUTCOME_OPTIONS, name=name)
    set_state(engine, cid, CampaignState.SENDING)
    accepted = [BatchResult(batch_id(i), BatchState.ACCEPTED, f"900{i}", "0") for i in (1, 2, 3)]
    answer(engine, cid, [*accepted, rejected(batch_id(4), "105"), no_answer(batch_id(5))])
    set_state(engine, cid, CampaignState.STOPPED, reason=STOP_REASON)
    push_reports(
        engine,
        "9001,2611251000,13800000001,DELIVRD",
        "9001,2611251005,13800000001,DELIVRD",
        "9002,2611251001,13800000002,DELIVRD",
        "9002,2611251103,13800000002,MBBLACK",
        "9002,2611251002,13800000002,UNDELIV",
        "9001,2611251000,13999999999,DELIVRD",  # a number not in that request
        "8888,2611251000,13800000001,DELIVRD",  # a msgid this store never issued
    )
    return cid
