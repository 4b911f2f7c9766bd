"""What the console leaves when it stops (the lifespan's shutdown), end to end: a real
uvicorn on a loopback port serving `create_app` on a real SQLite store, httpx signed in
through the login form, and the server stopped as `campaign web` stops on Ctrl-C.

    files     uploads waiting at the map step (drafts), plans, scratch folders: gone
    resends   a resend of `unknown` requests running at shutdown (no worker): stopped and
              waited for; nothing sent after, every request sent recorded once
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx

from campaign import workflow
from campaign.config import GatewaySettings, Settings
from campaign.outcomes import Role
from campaign.store import open_store
from campaign.store.batches import batch_figures
from campaign.web.resends import resends_of
from campaign.web.scratch import scratch_of
from tests.support.console import Console, csrf_of, running_console, sign_in
from tests.support.simulator import running_simulator

REQUESTS = 20  # one request per recipient: the template is personalised
ANSWER_SECONDS = 0.3  # how long the gateway takes to answer each resent request


@contextmanager
def signed_in(console: Console, name: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client signed in as `name` (password pw-<name>) and its session's CSRF token."""
    with console.client() as client:
        assert sign_in(client, name, f"pw-{name}").status_code == 303
        yield client, csrf_of(client.get("/new").text)


def upload(client: httpx.Client, token: str, name: str, body: bytes) -> str:
    """POST /new with one file: where the console sends the browser next."""
    files = [("files", (name, body, "text/csv"))]
    answer = client.post("/new", data={"csrf_token": token}, files=files)
    assert answer.status_code == 303, answer.text[:2000]
    return str(answer.headers["location"])


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_stopping_removes_the_drafts_plans_and_scratch_files_it_made(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'campaign.db'}")
    data_dir = tmp_path / "web"
    other = data_dir / "uploads" / "another-console" / "upload-1.csv"  # a console beside it
    other.parent.mkdir(parents=True)
    other.write_text("姓名,手机号\n", encoding="utf-8")
    with running_console(settings, data_dir=data_dir) as console:
        console.add_user("ann", "pw-ann", Role.SENDER)
        with signed_in(console, "ann") as (client, token):
            unclear = upload(client, token, "名单.csv", "客户,联系\n客户1,x13900000001\n".encode())
            assert unclear.endswith("/map"), unclear  # kept as a draft until mapped
            planned = upload(client, token, "好.csv", "姓名,手机号\n张三,13900000002\n".encode())
            assert planned.endswith("/template"), planned
        assert files_under(data_dir / "drafts"), "the upload waits at the map step"
        assert files_under(data_dir / "plans")
        left = scratch_of(console.app.state).folder("work")  # a download's client gone
        (left / "results.xlsx").write_bytes(b"PK")
    assert files_under(data_dir) == [other], "only the other console's upload is left"
    assert not (data_dir / "drafts").exists() and not (data_dir / "work").exists()


def unknown_campaign(settings: Settings, folder: Path, sim: object) -> int:
    """A campaign of REQUESTS requests whose every answer was lost: all `unknown`."""
    contacts = folder / "名单.csv"
    rows = "".join(f"客户{i},139{i:08d}\n" for i in range(REQUESTS))
    contacts.write_text("姓名,手机号\n" + rows, encoding="utf-8")
    engine = open_store(settings.store_url)
    try:
        planned = workflow.plan_from_files(settings, [contacts], "{姓名}您好，会员日八折",
                                           engine_or_url=engine)  # fmt: skip
        campaign_id = int(workflow.create_campaign(settings, engine, planned).campaign_id)
        sim.inject_drop(REQUESTS)  # type: ignore[attr-defined]
        workflow.send(settings, engine, campaign_id)
        assert batch_figures(engine, campaign_id)["unknown"]["batches"] == REQUESTS
    finally:
        engine.dispose()
    return campaign_id


def resend_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("console-resend-")]


def test_stopping_stops_a_resend_and_waits_for_its_request_in_flight(tmp_path: Path) -> None:
    with running_simulator() as sim:
        gateway = GatewaySettings(url=sim.url, account=sim.account, password=sim.password,
                                  timeout=5.0, rate=4)  # fmt: skip
        settings = Settings(gateway=gateway, store_url=f"sqlite:///{tmp_path / 'campaign.db'}")
        unlimited = replace(settings, gateway=replace(gateway, rate=0))
        campaign_id = unknown_campaign(unlimited, tmp_path, sim)  # resent at 4/s: ~5 s for 20
        before = len(sim.received())
        sim.inject_delay(REQUESTS, seconds=ANSWER_SECONDS)  # a slow gateway
        with running_console(settings, data_dir=tmp_path / "web") as console:  # no worker
            console.add_user("ann", "pw-ann", Role.SENDER)
            with console.client() as client:
                assert sign_in(client, "ann", "pw-ann").status_code == 303
                token = csrf_of(client.get(f"/campaigns/{campaign_id}").text)
                fields = {"csrf_token": token, "confirm": "yes", "understood": "yes"}
                asked = client.post(f"/campaigns/{campaign_id}/resend", data=fields)
                assert asked.status_code == 303, asked.text[:2000]
            resends = resends_of(console.app.state)
            deadline = time.monotonic() + 20
            while len(sim.received()) < before + 2:  # the resend is under way
                assert time.monotonic() < deadline, "the resend did not start"
                time.sleep(0.02)
        stopped_at = len(sim.received())
        assert not resend_threads(), "the resend goes on after the console stopped"
        time.sleep(4 * ANSWER_SECONDS)
        assert len(sim.received()) == stopped_at, "requests sent after the console stopped"
        resent = stopped_at - before
        assert 2 <= resent < REQUESTS
        engine = open_store(settings.store_url)
        try:
            figures = {k: v["batches"] for k, v in batch_figures(engine, campaign_id).items()}
        finally:
            engine.dispose()
        assert figures["sending"] == 0 and figures["unknown"] == 0, figures  # all answered
        assert figures["accepted"] == resent, figures  # each request recorded, once
        assert figures["pending"] == REQUESTS - resent, figures  # the rest: resumable
        assert resends.start(settings, console.engine, campaign_id) is False  # none after
        assert not resend_threads()


def test_ctrl_c_ends_the_open_event_streams_and_stops_at_once(tmp_path: Path) -> None:
    """`campaign web` (a real process) with two pages' streams open, a campaign page's and
    the list's: Ctrl-C ends both streams and the process exits with 0 within a few
    seconds, not after uvicorn's 10 s of waiting for them (and not by cancelling them)."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    from campaign.passwords import hash_password
    from campaign.store.campaigns import create_campaign
    from campaign.store.users import add_user
    from tests.support.plans import small_plan

    url = f"sqlite:///{tmp_path / 'campaign.db'}"
    engine = open_store(url)
    add_user(engine, "ann", Role.VIEWER, hash_password("pw-ann"))
    campaign_id = create_campaign(engine, small_plan(5, 2), name="autumn", settings_snapshot={})
    engine.dispose()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "campaign", "web", "--port", str(port), "--db", url]
    web = subprocess.Popen(
        [*command, "--no-worker"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and web.poll() is None, "the console did not start"
            time.sleep(0.2)
        ended: list[str] = []

        def watch(client: httpx.Client, path: str) -> None:
            with client.stream("GET", path, timeout=30) as stream:
                for line in stream.iter_lines():
                    if line.startswith("event: progress") and not ended:
                        opened.set()
            ended.append(path)  # the server ended the stream (no error, no timeout)

        with httpx.Client(base_url=base) as client:
            assert sign_in(client, "ann", "pw-ann").status_code == 303
            opened = threading.Event()
            readers = [
                threading.Thread(target=watch, args=(client, path), daemon=True)
                for path in (f"/campaigns/{campaign_id}/events", "/campaigns/events")
            ]
            for reader in readers:
                reader.start()
            assert opened.wait(30), "no event came"
            time.sleep(0.5)  # both streams are open
            stopped = time.monotonic()
            web.send_signal(signal.SIGINT)
            code = web.wait(timeout=30)
            took = time.monotonic() - stopped
            for reader in readers:
                reader.join(10)
        assert code == 0, (code, web.stderr.read() if web.stderr else "")
        assert took < 5, f"stopped after {took:.1f} s"
        assert sorted(ended) == sorted([f"/campaigns/{campaign_id}/events", "/campaigns/events"])
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()
        if web.stderr is not None:
            web.stderr.close()
