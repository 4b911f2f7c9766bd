"""`campaign demo`: the whole pipeline on sample_data/ against the built-in simulator.

Starts the receiver and the simulator in-process on free loopback ports, takes an opt-out
reply through the receiver, plans and sends the sample lists, waits for the pushed
delivery reports, and exports the result spreadsheet. A few faults are injected on
purpose so that the spreadsheet shows what the tool does with them: one request is
refused by the gateway's review (`rejected`) and one connection drops after the
request was read (`unknown`: never resent by itself).

The demo only ever touches its own files in `out_dir`: the store `campaign-demo.db`
(with its SQLite -wal/-shm/-journal files) and the workbook `demo-results.xlsx`. Whatever
`--db`, `CAMPAIGN_DB`, `CAMPAIGN_CONFIG` or the current folder hold is never opened. A
re-run replaces the demo's own previous store and workbook; a file at one of those names
that the demo did not make (a store without the demo's SQLite application id, a workbook
without the result sheets) is never replaced: the demo refuses (InputError, exit 3).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from campaign import workflow
from campaign.config import ComplianceSettings, GatewaySettings, Settings
from campaign.contacts import read_contacts
from campaign.errors import InputError
from campaign.gateway.simulator import Simulator
from campaign.messages import load_template
from campaign.receiver import Receiver
from campaign.sender import ProgressEvent, SendPolicy
from campaign.store import open_store

DEMO_SIGNATURE = "【示例商城】"
DEMO_OPTOUT_TEXT = "回T退订"
DEMO_CAMPAIGN_NAME = "demo 双十一会员积分提醒"
DEMO_WORKBOOK = "demo-results.xlsx"
DEMO_STORE = "campaign-demo.db"
# SQLite's header field `application_id` ("CDMO"): marks a store file as the demo's own,
# readable from the first 100 bytes without opening the file as a database.
DEMO_APPLICATION_ID = 0x43444D4F
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
DEMO_WORKBOOK_SHEETS = ("xl/workbook.xml", b'name="results"', b'name="summary"')
SAMPLE_FILES = ("contacts.xlsx", "contacts.csv")
TEMPLATE_FILE = "marketing.txt"
OPTOUT_REPLY = "退订"
REPORT_WAIT_SECONDS = 60.0

Notify = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    workbook: Path
    store_url: str
    campaign_id: int
    rows: int
    recipients: int
    requests: int
    segments: int
    outcomes: dict[str, int]
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "workbook": str(self.workbook),
            "store": self.store_url,
            "rows": self.rows,
            "recipients": self.recipients,
            "requests": self.requests,
            "segments": self.segments,
            "outcomes": self.outcomes,
            "seconds": round(self.seconds, 2),
        }


def find_project_dir(start: Path | None = None) -> Path:
    """The folder holding sample_data/ and templates/: the current one, or the source tree's."""
    candidates = [start or Path.cwd(), Path(__file__).resolve().parent.parent]
    for folder in candidates:
        if (folder / "sample_data" / SAMPLE_FILES[0]).is_file():
            return folder
    raise InputError(
        "the demo needs sample_data/ and templates/: run it from the project folder "
        f"(looked in {', '.join(str(c) for c in candidates)})"
    )


def run_demo(
    out_dir: Path, *, project_dir: Path | None = None, notify: Notify | None = None
) -> DemoResult:
    """Run the whole pipeline once into `out_dir` (a fresh demo store each time).

    InputError (exit 3, nothing changed) when `out_dir` holds a file at one of the demo's
    names that the demo did not make.
    """
    say = notify or (lambda _line: None)
    started = time.monotonic()
    project = find_project_dir(project_dir)
    store_path = prepare_out_dir(out_dir)
    settings = _demo_settings(f"sqlite:///{store_path.resolve()}")
    engine = open_store(settings.store_url)
    try:
        with (
            Receiver(settings, engine=engine) as receiver,
            Simulator(push_url=receiver.dlr_url, report_delay=0.0, seed=7) as simulator,
        ):
            say(f"simulator on {simulator.url}, receiver on {receiver.url}")
            files = [project / "sample_data" / n for n in SAMPLE_FILES]
            contacts = read_contacts(files, limits=settings.limits)
            _take_optout_reply(simulator, engine, _first_mobile(contacts), say)
            template = load_template(str(project / "templates" / TEMPLATE_FILE))
            planned = workflow.plan_from_files(
                settings, files, template, engine_or_url=engine, with_sample=False
            )
            campaign_id = workflow.create_campaign(
                settings, engine, planned, name=DEMO_CAMPAIGN_NAME
            ).campaign_id
            say(f"campaign {campaign_id}: {len(planned.plan.batches)} requests planned")
            # Two faults, so the results show how they are handled.
            simulator.inject_code("115", 1)  # refused by the gateway's review -> rejected
            simulator.inject_drop(1)  # answer lost after the request was read -> unknown
            gateway = replace(
                settings.gateway,
                url=simulator.url,
                account=simulator.account,
                password=simulator.password,
            )
            report = workflow.send(
                settings,
                engine,
                campaign_id,
                gateway=gateway,
                on_progress=_progress_to(say),
                # one request at a time: the faults above go to the first two batches, so
                # every demo shows the same results (with requests racing, whichever came
                # first took them; 340 requests take a tenth of a second either way)
                policy=SendPolicy(concurrency=1),
            ).report
            say(f"sent {report.requests_sent} requests; waiting for delivery reports")
            if not simulator.wait_reports_pushed(timeout=REPORT_WAIT_SECONDS):
                say("some delivery reports did not arrive in time; they stay pending")
        workbook = out_dir / DEMO_WORKBOOK
        workflow.export(settings, str(campaign_id), workbook, engine=engine)
        outcomes = workflow.campaign_status(engine, str(campaign_id)).data["outcomes"]
        return DemoResult(
            out_dir=out_dir,
            workbook=workbook,
            store_url=settings.store_url,
            campaign_id=campaign_id,
            rows=len(planned.plan.rows),
            recipients=report.recipients,
            requests=report.requests,
            segments=report.segments,
            outcomes={k: v for k, v in outcomes.items() if v},
            seconds=time.monotonic() - started,
        )
    finally:
        engine.dispose()


def _demo_settings(store_url: str) -> Settings:
    return Settings(
        gateway=GatewaySettings(url="simulator", rate=0.0, timeout=5.0),
        compliance=ComplianceSettings(signature=DEMO_SIGNATURE, optout_text=DEMO_OPTOUT_TEXT),
        store_url=store_url,
    )


def _first_mobile(contacts: Any) -> str:
    from campaign.phones import normalize_mobiles

    normalized = normalize_mobiles(contacts.frame["_mobile_raw"])
    valid = normalized.loc[normalized["valid"], "mobile"]
    if valid.empty:
        raise InputError("the sample lists hold no valid mobile")
    return str(valid.iloc[0])


def _take_optout_reply(simulator: Simulator, engine: Any, mobile: str, say: Notify) -> None:
    """A customer replies 退订 before the campaign: the receiver puts them on the list."""
    simulator.push_mo(mobile, OPTOUT_REPLY)
    deadline = time.monotonic() + 10
    while mobile not in workflow.suppressed(engine):
        if time.monotonic() > deadline:
            raise RuntimeError("the opt-out reply did not reach the suppression list")
        time.sleep(0.02)
    say(f"{mobile[:3]}****{mobile[-4:]} replied {OPTOUT_REPLY}: on the suppression list")


def _progress_to(say: Notify) -> Callable[[ProgressEvent], None]:
    last = [0.0]
    lock = threading.Lock()

    def on_progress(event: ProgressEvent) -> None:
        if event.kind != "progress":
            say(event.message)
            return
        with lock:
            now = time.monotonic()
            if now - last[0] < 1.0 and event.requests_done < event.requests_total:
                return
            last[0] = now
        say(f"sent {event.requests_done}/{event.requests_total} requests")

    return on_progress


def prepare_out_dir(out_dir: Path) -> Path:
    """Make `out_dir` ready for a run: refuse foreign files, remove the demo's own previous
    store, create an empty marked store file. Returns the store's path."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a folder; nothing was changed")
    store = out_dir / DEMO_STORE
    foreign = foreign_files(out_dir)
    if foreign:
        names = ", ".join(p.name for p in foreign)
        raise InputError(
            f"{out_dir} already holds {names}, not made by `campaign demo`; nothing was "
            "changed: give the demo another folder with --out, or move those files away"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in _store_files(store):
        path.unlink(missing_ok=True)
    _create_marked_store(store)
    return store


def foreign_files(out_dir: Path) -> list[Path]:
    """Files at the demo's names in `out_dir` that the demo did not make."""
    store = out_dir / DEMO_STORE
    own_store = is_demo_store(store)
    found = [p for p in _store_files(store) if p.exists() or p.is_symlink()]
    foreign = [] if own_store else found
    workbook = out_dir / DEMO_WORKBOOK
    if (workbook.exists() or workbook.is_symlink()) and not is_demo_workbook(workbook):
        foreign.append(workbook)
    return foreign


def is_demo_store(path: Path) -> bool:
    """True for a regular SQLite file carrying the demo's application id (header only)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError:
        return False
    marked = int.from_bytes(header[68:72], "big") == DEMO_APPLICATION_ID
    return header.startswith(SQLITE_HEADER) and marked


def is_demo_workbook(path: Path) -> bool:
    """True for a workbook with the `results` and `summary` sheets of a result export."""
    if path.is_symlink() or not path.is_file():
        return False
    member, *sheets = DEMO_WORKBOOK_SHEETS
    try:
        with zipfile.ZipFile(path) as archive:
            listing = archive.read(member)
    except (OSError, KeyError, zipfile.BadZipFile):
        return False
    return all(sheet in listing for sheet in sheets)


def _store_files(store: Path) -> list[Path]:
    return [store, *(store.with_name(store.name + suffix) for suffix in SQLITE_SIDE_FILES)]


def _create_marked_store(path: Path) -> None:
    """An empty SQLite file whose header carries the demo's application id; written in
    rollback-journal mode, so the mark is in the main file before the store turns to WAL."""
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
        connection.commit()
    finally:
        connection.close()


__all__ = [
    "DEMO_STORE",
    "DEMO_WORKBOOK",
    "DemoResult",
    "find_project_dir",
    "foreign_files",
    "is_demo_store",
    "prepare_out_dir",
    "run_demo",
]
