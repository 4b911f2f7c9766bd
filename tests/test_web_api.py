"""The JSON API of the console (SPEC "Web console and HTTP API"), end to end: a real
uvicorn on a loopback port serving `create_app` (its in-process worker sending the queued
campaigns), the built-in simulator on loopback as the gateway (its log is the truth of
what was sent), a real SQLite store (and PostgreSQL for the send path), httpx with bearer
tokens from `store.users.new_token`.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from typer.testing import CliRunner

from campaign.cli import app as cli
from campaign.config import GatewaySettings, Settings
from campaign.outcomes import Role
from campaign.passwords import hash_password
from campaign.store import open_store, users
from campaign.web.app import create_app
from tests.support.simulator import running_simulator

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
TEMPLATE = "【测试】{姓名|会员}您好，春季会员日全场八折"
UPLOAD_LIMIT_MB = 1
runner = CliRunner()


class Server:
    """An ASGI app served by uvicorn in a thread on a free loopback port (lifespan on)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from campaign.receiver import listen

        self._sock = listen("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "no console"
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()


@dataclass
class Console:
    url: str
    store_url: str
    settings: Settings
    engine: Any
    sim: Any
    folder: Path
    data_dir: Path
    tokens: dict[str, str]

    def client(self, role: str | None = "sender") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=60)

    def cli(self, *args: str) -> Any:
        env = {"CAMPAIGN_ACCOUNT": self.sim.account, "CAMPAIGN_PASSWORD": self.sim.password}
        result = runner.invoke(cli, [*args, "--db", self.store_url], env=env)
        assert result.exit_code == 0, result.output
        return result


@contextmanager
def _console(store_url: str, folder: Path, **gateway: Any) -> Iterator[Console]:
    engine = open_store(store_url)
    tokens = {}
    for role in Role:
        users.add_user(engine, role.value, role, hash_password("pw-" + role.value))
        tokens[role.value] = users.new_token(engine, role.value)
    with running_simulator() as sim:
        base = GatewaySettings(
            url=sim.url, account=sim.account, password=sim.password, timeout=5.0, rate=0
        )
        settings = Settings(gateway=replace(base, **gateway), store_url=store_url)
        settings = replace(settings, web=replace(settings.web, max_upload_mb=UPLOAD_LIMIT_MB))
        data_dir = folder / "web"
        server = Server(create_app(settings, engine=engine, data_dir=data_dir))
        try:
            yield Console(server.url, store_url, settings, engine, sim, folder, data_dir, tokens)
        finally:
            server.stop()
    engine.dispose()


@pytest.fixture
def console(tmp_path, sqlite_url) -> Iterator[Console]:
    with _console(sqlite_url, tmp_path) as running:
        yield running


def write_list(path: Path, first: int, count: int) -> list[str]:
    """A contact CSV of `count` distinct mobiles (and one invalid row); the mobiles."""
    mobiles = [f"139{first + i:08d}" for i in range(count)]
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["姓名", "手机号码"])
        out.writerows([f"客户{i}", m] for i, m in enumerate(mobiles))
        out.writerow(["坏号码", "12345"])
    return mobiles


def post_plan(client: httpx.Client, *paths: Path, **fields: str) -> httpx.Response:
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    return client.post("/plans", files=files, data={"template": TEMPLATE, **fields})


def wait_for(client: httpx.Client, campaign_id: int, states: set[str], timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        data = client.get(f"/campaigns/{campaign_id}").json()
        if data["state"] in states:
            return data
        assert time.monotonic() < deadline, f"campaign {campaign_id} stayed {data['state']}"
        time.sleep(0.2)


def taken(sim: Any) -> Counter[str]:
    """How often the simulator took each mobile (accepted requests)."""
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def sheet_rows(path: Path) -> list[tuple[Any, ...]]:
    """Every row of every sheet, but the summary's export time (it differs by a second)."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        sheets = book.worksheets
        rows = [tuple(row) for sheet in sheets for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
    return [row for row in rows if not str(row[0]).startswith("Exported")]


def sse_events(console: Console, campaign_id: int, until: Any, timeout: float = 60) -> list:
    """(event, data) pairs of the campaign's stream until `until(event, data)` holds."""
    found: list[tuple[str, dict[str, Any]]] = []
    headers = {"Authorization": f"Bearer {console.tokens['viewer']}"}
    url = f"{console.url}/api/v1/campaigns/{campaign_id}/events"
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                found.append((event, json.loads(line[6:])))
                if until(event, found[-1][1]):
                    return found
    raise AssertionError(f"the stream ended early: {found}")


# --------------------------------------------------------------------------- access


def test_no_token_401_a_viewer_403_on_posts_reads_200(console):
    with console.client(None) as anonymous:
        response = anonymous.get("/campaigns")
        assert response.status_code == 401 and "error" in response.json()
        assert anonymous.post("/optouts", json={"mobiles": ["13800138000"]}).status_code == 401
        assert anonymous.get("/nothing-here").status_code == 401
    with httpx.Client(
        base_url=f"{console.url}/api/v1", headers={"Authorization": "Bearer cmp_wrong"}
    ) as wrong:
        assert wrong.get("/campaigns").status_code == 401
    with console.client("viewer") as viewer:
        assert viewer.get("/campaigns").json() == {"campaigns": []}
        assert viewer.get("/optouts").json() == {"total": 0, "optouts": []}
        for method, path, kwargs in [
            ("POST", "/optouts", {"json": {"mobiles": ["13800138000"]}}),
            ("DELETE", "/optouts", {"json": {"mobiles": ["13800138000"]}}),
            ("POST", "/campaigns", {"json": {"plan_id": "x"}}),
            ("POST", "/campaigns/1/pause", {}),
            ("POST", "/plans", {"files": [("files", ("a.csv", b"x"))]}),
            ("GET", "/audit", {}),
        ]:
            response = viewer.request(method, path, **kwargs)
            assert response.status_code == 403, (method, path, response.text)
            assert "error" in response.json()
        assert viewer.get("/nothing-here").status_code == 404
        assert viewer.get("/campaigns/99").status_code == 404
        assert viewer.get("/campaigns/99/events").status_code == 404
    with console.client("admin") as admin:
        assert admin.get("/audit").status_code == 200


# --------------------------------------------------------------------------- plans


def test_a_plan_has_the_counts_of_the_plan_command(console):
    files = [SAMPLES / "contacts.xlsx", SAMPLES / "contacts.csv"]
    with console.client() as client:
        response = post_plan(client, *files, name="spring")
    assert response.status_code == 201, response.text
    data = response.json()
    result = console.cli("plan", *map(str, files), "--text", TEMPLATE, "--json")
    expected = json.loads(result.stdout)
    for key in ("rows", "blank_rows", "outcomes", "recipients", "requests", "segments"):
        assert data[key] == expected[key], key
    assert data["files"] == expected["files"] and data["sample"] == expected["sample"]
    assert data["name"] == "spring" and data["plan_id"]
    not_ready = sum(n for outcome, n in data["outcomes"].items() if outcome != "ready")
    assert 0 < len(data["problems"]) == min(not_ready, 200)
    for problem in data["problems"]:
        assert set(problem) == {"source", "source_row", "mobile", "outcome", "reason"}
        assert problem["outcome"] != "ready" and problem["reason"]
    with console.client() as client:
        preview = client.get(f"/plans/{data['plan_id']}/preview.xlsx")
        assert preview.status_code == 200 and preview.content[:2] == b"PK"
        assert client.get("/plans/nope/preview.xlsx").status_code == 404
    with console.client("admin") as other:  # a plan is its maker's
        assert other.get(f"/plans/{data['plan_id']}/preview.xlsx").status_code == 404


def test_bad_plans_422_and_an_upload_over_the_limit_413(console):
    bad = console.folder / "bad.csv"
    bad.write_text("name,city\nann,x\n", encoding="utf-8")
    big = console.folder / "big.csv"
    big.write_bytes(b"x" * (UPLOAD_LIMIT_MB * 1024 * 1024 + 10))
    with console.client() as client:
        response = post_plan(client, bad)
        assert response.status_code == 422 and "mobile" in response.json()["error"]
        response = client.post("/plans", data={"template": TEMPLATE})
        assert response.status_code in (400, 422)
        response = post_plan(client, SAMPLES / "contacts.csv", header_row="x")
        assert response.status_code == 422
        response = client.post(
            "/plans",
            files=[("files", ("c.csv", (SAMPLES / "contacts.csv").read_bytes()))],
            data={"template": ""},
        )
        assert response.status_code == 422
        response = post_plan(client, big)
        assert response.status_code == 413 and "error" in response.json()
        invalid = console.folder / "invalid.csv"
        invalid.write_text("姓名,手机号码\nann,12345\nbob,abc\n", encoding="utf-8")
        plan = post_plan(client, invalid)
        assert plan.status_code == 201 and plan.json()["outcomes"]["invalid"] == 2
        assert [p["mobile"] for p in plan.json()["problems"]] == ["12345", "abc"]
        refused = client.post("/campaigns", json={"plan_id": plan.json()["plan_id"]})
        assert refused.status_code == 422 and "no valid recipients" in refused.json()["error"]
        response = client.post("/campaigns", content=b"not json")
        assert response.status_code == 400
        assert client.post("/campaigns", json={"plan_id": "nope"}).status_code == 404
    leftovers = [p for p in (console.data_dir / "uploads").rglob("*") if p.is_file()]
    assert leftovers == []


def test_plans_leave_no_files_behind_the_console(tmp_path, sqlite_url):
    with _console(sqlite_url, tmp_path) as console, console.client() as client:
        assert post_plan(client, SAMPLES / "contacts.csv").status_code == 201
        assert [p for p in (console.data_dir / "plans").rglob("*") if p.is_file()]
    assert not [p for p in (console.data_dir / "plans").rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- the send path


def _send_flow(console: Console) -> None:
    mobiles = write_list(console.folder / "spring.csv", 0, 40)
    with console.client() as client:
        plan = post_plan(client, console.folder / "spring.csv").json()
        assert plan["recipients"] == plan["requests"] == 40  # one text each
        first = client.post("/campaigns", json={"plan_id": plan["plan_id"], "name": "spring"})
        assert first.status_code == 201, first.text
        body = first.json()
        campaign_id = body["campaign_id"]
        assert body["state"] in ("queued", "sending", "finished") and body["name"] == "spring"
        second = client.post("/campaigns", json={"plan_id": plan["plan_id"], "name": "spring"})
        assert second.status_code == 200 and second.json()["campaign_id"] == campaign_id

        events = sse_events(
            console,
            campaign_id,
            lambda event, data: (
                event == "progress"
                and data["state"] == "finished"
                and data["done"] == data["total"]
            ),
        )
        progress = [data for event, data in events if event == "progress"]
        assert progress[-1]["sent"] == progress[-1]["total"] == 40
        assert [data["state"] for event, data in events if event == "state"][-1] == "finished"
        assert [p["sent"] for p in progress] == sorted(p["sent"] for p in progress)

        done = wait_for(client, campaign_id, {"finished"})
        assert done["progress"] == {"sent": 40, "done": 40, "total": 40}
        assert done["outcomes"]["pending"] + done["outcomes"]["delivered"] == 40
        assert done["outcomes"]["invalid"] == 1
        assert set(taken(console.sim)) == set(mobiles) and set(taken(console.sim).values()) == {1}
        assert [c["campaign_id"] for c in client.get("/campaigns").json()["campaigns"]] == [
            campaign_id
        ]

        again = post_plan(client, console.folder / "spring.csv").json()
        repeat = client.post("/campaigns", json={"plan_id": again["plan_id"]})
        assert repeat.status_code == 409 and "again" in repeat.json()["error"]
        taken_name = client.post("/campaigns", json={"plan_id": again["plan_id"], "again": True,
                                                     "name": "spring"})  # fmt: skip
        assert taken_name.status_code == 409
        assert len(client.get("/campaigns").json()["campaigns"]) == 1

        xlsx = client.get(f"/campaigns/{campaign_id}/results.xlsx")
        assert xlsx.status_code == 200 and "spring.xlsx" in xlsx.headers["content-disposition"]
        (console.folder / "api.xlsx").write_bytes(xlsx.content)
        console.cli("export", str(campaign_id), "-o", str(console.folder / "cli.xlsx"))
        assert sheet_rows(console.folder / "api.xlsx") == sheet_rows(console.folder / "cli.xlsx")
        zh = client.get(f"/campaigns/{campaign_id}/results.csv", params={"lang": "zh"})
        console.cli(
            "export", str(campaign_id), "-o", str(console.folder / "cli.csv"), "--lang", "zh"
        )
        assert zh.status_code == 200
        assert zh.content == (console.folder / "cli.csv").read_bytes()
        assert client.get(f"/campaigns/{campaign_id}/results.csv?lang=fr").status_code == 422
    assert not list((console.data_dir / "work").rglob("*.xlsx"))  # exports removed after


def test_a_campaign_is_sent_once_by_the_consoles_worker_sqlite(tmp_path, sqlite_url):
    with _console(sqlite_url, tmp_path, rate=20) as console:
        _send_flow(console)


@pytest.mark.postgres
def test_a_campaign_is_sent_once_by_the_consoles_worker_postgres(tmp_path, pg_url):
    with _console(pg_url, tmp_path, rate=20) as console:
        _send_flow(console)


def test_pause_resume_cancel(console):
    write_list(console.folder / "later.csv", 1000, 10)
    write_list(console.folder / "never.csv", 2000, 10)
    with console.client() as client:
        plan = post_plan(client, console.folder / "later.csv").json()
        made = client.post(
            "/campaigns", json={"plan_id": plan["plan_id"], "send_at": "2099-06-01 10:00"}
        )
        assert made.status_code == 201 and made.json()["state"] == "scheduled"
        later = made.json()["campaign_id"]
        paused = client.post(f"/campaigns/{later}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["state"] == "paused" and paused.json()["previous_state"] == "scheduled"
        assert "sender (console)" in paused.json()["stop_reason"]
        resumed = client.post(f"/campaigns/{later}/resume")
        assert resumed.status_code == 200 and resumed.json()["state"] in ("queued", "sending")
        wait_for(client, later, {"finished"})
        assert client.post(f"/campaigns/{later}/pause").status_code == 409
        assert client.post(f"/campaigns/{later}/cancel").status_code == 409

        plan = post_plan(client, console.folder / "never.csv").json()
        made = client.post(
            "/campaigns", json={"plan_id": plan["plan_id"], "send_at": "2099-06-01T02:00:00Z"}
        )
        never = made.json()["campaign_id"]
        assert made.json()["due_at"].startswith("2099-06-01T10:00")
        cancelled = client.post(f"/campaigns/{never}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert cancelled.json()["cancelled_recipients"] == 10
        assert client.post(f"/campaigns/{never}/resume").status_code == 409
        assert client.post("/campaigns/999/pause").status_code == 404
        bad = client.post("/campaigns", json={"plan_id": plan["plan_id"], "send_at": "soon"})
        assert bad.status_code == 200  # the plan made its campaign already: that one
    assert sum(taken(console.sim).values()) == 10
    with console.client("admin") as admin:
        log = admin.get("/audit").json()
    actions = [(e["action"], e["user"]) for e in log["entries"]]
    for action in ("send", "pause", "resume", "cancel"):
        assert (action, "sender") in actions
    assert log["total"] == len(log["entries"])


def test_send_at_in_the_past_is_422(console):
    write_list(console.folder / "past.csv", 3000, 3)
    with console.client() as client:
        plan = post_plan(client, console.folder / "past.csv").json()
        response = client.post(
            "/campaigns", json={"plan_id": plan["plan_id"], "send_at": "2001-01-01 10:00"}
        )
        assert response.status_code == 422 and "past" in response.json()["error"]
        assert client.get("/campaigns").json() == {"campaigns": []}


# --------------------------------------------------------------------------- opt-outs, imports


def test_optouts_add_list_remove_then_the_next_plan_suppresses(console):
    mobiles = write_list(console.folder / "list.csv", 5000, 6)
    with console.client() as client:
        added = client.post("/optouts", json={"mobiles": mobiles[:3], "note": "phoned"})
        assert added.status_code == 200 and added.json() == {"added": 3, "already": 0}
        assert client.post("/optouts", json={"mobiles": [mobiles[0]]}).json() == {
            "added": 0,
            "already": 1,
        }
        listed = client.get("/optouts", params={"q": mobiles[1][:9]}).json()
        assert listed["total"] == 3
        assert {e["mobile"] for e in listed["optouts"]} == set(mobiles[:3])
        assert listed["optouts"][0]["added_by"] == "sender"
        assert client.get("/optouts", params={"q": mobiles[2]}).json()["total"] == 1
        removed = client.request(
            "DELETE", "/optouts", json={"mobiles": [mobiles[2], "13700000000"]}
        )
        assert removed.json() == {"removed": 1, "not_listed": 1}
        bad = client.post("/optouts", json={"mobiles": ["12"]})
        assert bad.status_code == 422
        assert client.post("/optouts", json={"mobiles": []}).status_code == 400
        assert client.post("/optouts", json=["13800138000"]).status_code == 400
        plan = post_plan(client, console.folder / "list.csv").json()
        assert plan["outcomes"]["suppressed"] == 2 and plan["recipients"] == 4
        suppressed = [p for p in plan["problems"] if p["outcome"] == "suppressed"]
        assert {p["mobile"] for p in suppressed} == set(mobiles[:2])
    with console.client("admin") as admin:
        actions = [e["action"] for e in admin.get("/audit").json()["entries"]]
    assert actions.count("optout_add") == 2 and actions.count("optout_remove") == 1


def test_optout_and_report_imports(console):
    optouts = console.folder / "退订名单.csv"
    optouts.write_text("手机号码\n13800138000\n13800138001\nbad\n", encoding="utf-8")
    reports = console.folder / "reports.csv"
    reports.write_text(
        "msgid,mobile,status,reportTime\n987654321,13800138000,DELIVRD,2026-01-01 10:00:00\n",
        encoding="utf-8",
    )
    with console.client() as client:
        files = [("files", (optouts.name, optouts.read_bytes()))]
        imported = client.post("/optouts/import", files=files)
        assert imported.status_code == 200, imported.text
        data = imported.json()
        assert {k: data[k] for k in ("source", "rows", "added", "already", "invalid")} == {
            "source": "退订名单.csv",
            "rows": 3,
            "added": 2,
            "already": 0,
            "invalid": 1,
        }
        listed = client.get("/optouts").json()["optouts"]
        assert {e["detail"] for e in listed} == {"退订名单.csv row 2", "退订名单.csv row 3"}
        files = [("files", (reports.name, reports.read_bytes()))]
        result = client.post("/reports/import", files=files)
        assert result.status_code == 200, result.text
        [summary] = result.json()["files"]
        assert set(summary) == {"source", "imported", "repeated", "malformed", "unmatched"}
        assert summary["source"] == "reports.csv" and summary["imported"] == 1
        assert client.post("/reports/import", data={"x": "y"}, files=[]).status_code in (400, 422)
    with console.client("viewer") as viewer:
        files = [("files", (reports.name, reports.read_bytes()))]
        assert viewer.post("/reports/import", files=files).status_code == 403
    assert not [p for p in (console.data_dir / "work").rglob("*") if p.is_file()]


def test_balance(console):
    with console.client("viewer") as viewer:
        response = viewer.get("/balance")
    assert response.status_code == 200, response.text
    assert response.json()["products"]


def test_a_balance_the_gateway_does_not_give_is_409_with_the_reason(tmp_path, sqlite_url):
    from campaign.receiver import listen

    closed = listen("127.0.0.1", 0)  # a port nobody answers on
    port = int(closed.getsockname()[1])
    closed.close()
    url = f"http://gw-user:url-secret-77@127.0.0.1:{port}/msg"
    with _console(sqlite_url, tmp_path, url=url, timeout=2.0) as console:
        with console.client("viewer") as viewer:
            response = viewer.get("/balance")
        password = console.settings.gateway.password
    assert response.status_code == 409, response.text  # SPEC's codes: never 502
    reason = response.json()["error"]
    assert "cannot reach the gateway" in reason
    assert "url-secret-77" not in response.text and password not in response.text


# --------------------------------------------------------------------------- audit


def test_audit_pages_and_filters_as_the_audit_page(console):
    from campaign import workflow_users
    from campaign.outcomes import AuditAction

    for n in range(60):
        users.record_audit(console.engine, "alice", AuditAction.LOGIN, {"n": n}, "10.0.0.1")
    for n in range(5):
        users.record_audit(console.engine, "bob", AuditAction.OPTOUT_ADD, {"n": n})
    with console.client("admin") as admin:
        first = admin.get("/audit", params={"user": "alice"}).json()
        assert first["total"] == 60 and first["page"] == 1 and first["page_size"] == 50
        assert len(first["entries"]) == 50 and {e["user"] for e in first["entries"]} == {"alice"}
        assert [e["detail"]["n"] for e in first["entries"]] == list(range(59, 9, -1))
        second = admin.get("/audit", params={"user": " alice ", "page": 2}).json()
        expected = workflow_users.audit_page(console.engine, limit=50, offset=50, user_name="alice")
        assert [e["id"] for e in second["entries"]] == [e.id for e in expected.entries]
        assert len(second["entries"]) == 10 and second["entries"][-1]["ip"] == "10.0.0.1"
        assert admin.get("/audit", params={"user": "alice", "page": 3}).json()["entries"] == []
        optouts = admin.get("/audit", params={"action": "optout_add"}).json()
        assert optouts["total"] == 5 and {e["user"] for e in optouts["entries"]} == {"bob"}
        both = admin.get("/audit", params={"user": "bob", "action": "login"}).json()
        assert both == {"total": 0, "page": 1, "page_size": 50, "entries": []}
        everything = admin.get("/audit").json()
        assert everything["total"] >= 65 and len(everything["entries"]) == 50
        bad_action = admin.get("/audit", params={"action": "nonsense"})
        assert bad_action.status_code == 422 and "nonsense" in bad_action.json()["error"]
        for params in ({"page": "0"}, {"page": "x"}, {"limit": "10"}, {"offset": "50"}):
            refused = admin.get("/audit", params=params)
            assert refused.status_code == 400 and "error" in refused.json(), params
    for role in ("sender", "viewer"):
        with console.client(role) as other:
            response = other.get("/audit", params={"user": "alice"})
            assert response.status_code == 403 and "error" in response.json()
