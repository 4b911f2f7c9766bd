"""Web console: the performance targets of issue 15, each against a real `campaign web`.

    .venv/bin/python bench/bench_web.py [--rows 100000] [--csv-rows 1000000] [--changes 10]
        [--recipients 3000] [--pages 10] [--rounds 2] [--only upload,events,bytes,send]
    quick (about a minute): --rows 20000 --csv-rows 100000 --recipients 1000

Every process is real: `campaign web` (a SQLite store, sending with its own worker thread;
one console for parts 1-4, a fresh one for part 5), `campaign simulator --log` (the
gateway), `campaign serve` (the receiver) and the CLI. This script talks to the console
over loopback HTTP as a browser does: it signs in through /login with the form's CSRF
token and keeps the session cookie (httpx; one client per tab); campaigns are made
through the JSON API (POST /api/v1/plans, /api/v1/campaigns) with a token of
`campaign user token`.

1-2. upload, a `--rows`-row .xlsx and a `--csv-rows`-row CSV (bench_plan's generated list,
   cached under bench/out/web/): from the start of the upload (POST /new, the request of
   the new-campaign form) to the preview page with its counts fully received: upload +
   plan -> 303, the template page, POST of the template (planned again with it) -> 303,
   the preview page; each page asked for as soon as the last arrived (no human time).
   In the same run: `campaign plan FILE --text T --json` (a subprocess: the CLI's wall
   time) and the API's one request (POST /api/v1/plans: one plan); the counts of the
   three must agree. Targets: 5 s (xlsx), 15 s (CSV).
3. events: pages open on two campaigns' SSE streams (/campaigns/{id}/events); changes
   made by other processes: this one pauses a scheduled campaign and schedules it again,
   in turn (the store calls of `campaign pause` and `send --at`), while delivery reports
   are pushed one at a time to `campaign serve` for the other campaign (`--report-rows`
   recipients, default one request each for `--changes`). The time from just before the
   change to the event on the stream; random pauses between changes sample every phase
   of the streams' 0.5 s poll and of the hub's 2 s outcome counts. Target: 2 s.
4. bytes: a new browser's first visit (Accept-Encoding: gzip): / -> /login, the sign-in
   page and its CSS/JS, the sign-in, the campaigns page (its CSS/JS: the same URLs,
   cached); bytes on the wire (status line, headers, body as sent); the same without
   compression; references to other hosts in the pages (src, href, action, hx-*,
   sse-connect; CSS url() and @import). Targets: 100 KB, no other host.
5. send: `--recipients` personalized recipients (one request each) sent by the console's
   worker to the simulator, no rate limit (the CPU bounds it), with no page open and with
   `--pages` campaign pages open, each as htmx drives it (templates/campaign.html: its
   SSE stream, and the parts its events fetch), alternating A B B A ... (`--rounds`).
   Requests/s from the simulator's log (first to last accepted), the console's CPU per
   request (/proc) and this process's (the emulated browsers: they share the 2 cores).
   Then what a page costs the console: CPU per part fetched, and per second of open SSE
   streams. Target: the pages cost < 5 % of the throughput. Diagnostics: `--worker
   process` (`campaign web --no-worker` and a `campaign worker` process), `--no-parts`
   (the pages hold their SSE stream only).

The machine is shared: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from statistics import mean, median
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_plan import TEMPLATE, generate  # noqa: E402
from bench_workers import cpu_seconds  # noqa: E402

from campaign.store import open_store  # noqa: E402
from campaign.store.campaigns import get_campaign  # noqa: E402
from campaign.store.queue import pause, schedule  # noqa: E402
from campaign.timeutil import CHINA  # noqa: E402
from tests.support.console import csrf_of, session_csrf, sign_in  # noqa: E402
from tests.support.simulator import free_port, simulator_process  # noqa: E402
from tests.support.workers import TEMPLATE as SEND_TEMPLATE  # noqa: E402
from tests.support.workers import (  # noqa: E402
    WorkerPool,
    campaign_env,
    measured_rate,
    read_log,
    write_config,
    write_contacts,
    write_simulator_config,
)

OUT = ROOT / "bench" / "out" / "web"
USER, PASSWORD = "bench", "bench-password-1"
PARTS = ("upload", "events", "bytes", "send")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --------------------------------------------------------------------------- processes


@dataclass
class Stack:
    """The simulator, the config and the SQLite store every process of a run shares."""

    folder: Path
    sim_log: Path
    db: str
    config: Path
    token: str = ""  # an API token of USER

    @property
    def env(self) -> dict[str, str]:
        return campaign_env(self.db, self.config)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`campaign ARGS` on this store and config."""
        done = subprocess.run(
            [sys.executable, "-m", "campaign", *args],
            env={**self.env, "CAMPAIGN_USER_PASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"campaign {' '.join(args[:2])} failed:\n{done.stderr}")
        return done


@contextmanager
def stack(folder: Path) -> Iterator[Stack]:
    sim_config = write_simulator_config(folder / "sim.toml")
    log = folder / "sim.jsonl"
    with simulator_process("--config", str(sim_config), "--log", str(log), start_timeout=60) as sim:
        config = write_config(folder / "campaign.toml", sim.url, rate=0)
        made = Stack(folder, log, f"sqlite:///{folder / 'campaign.db'}", config)
        made.cli("user", "add", USER, "--role", "admin")  # also creates the store
        made.token = made.cli("user", "token", USER).stdout.strip().splitlines()[-1]
        yield made


@dataclass
class Web:
    url: str
    pid: int
    worker: int | None = None  # a `campaign worker` of its own (web --no-worker)

    def cpu(self) -> float:
        """CPU seconds of the console (and of its worker process) so far."""
        return sum(cpu_seconds(pid) for pid in (self.pid, self.worker) if pid is not None)

    def signed_in(self) -> httpx.Client:
        """A browser tab signed in through the form (GET /login, POST with its token)."""
        client = httpx.Client(base_url=self.url, timeout=120, follow_redirects=False)
        answer = sign_in(client, USER, PASSWORD)
        if answer.status_code != 303:
            raise RuntimeError(f"sign-in failed: {answer.status_code}")
        return client


@contextmanager
def web_process(run: Stack, name: str, *args: str) -> Iterator[Web]:
    """`campaign web --port P ARGS` (with its worker unless --no-worker) until the block
    ends (SIGTERM)."""
    port = free_port()
    errors = (run.folder / f"web-{name}.stderr").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "web", "--port", str(port), *args],
        env=run.env,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"campaign web did not start (see {errors.name})")
            time.sleep(0.1)
        yield Web(url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        errors.close()


@contextmanager
def receiver_process(run: Stack) -> Iterator[str]:
    """`campaign serve --port P`; its /dlr URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "serve", "--port", str(port)],
        env=run.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("campaign serve did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/dlr"
    finally:
        process.terminate()
        process.wait(30)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --------------------------------------------------------------------------- 1, 2: upload


def contact_files(rows: int, csv_rows: int) -> tuple[Path, Path]:
    """The inputs (cached under bench/out/web/): bench_plan's generated list (5 columns,
    ~10 % messy numbers, ~5 % repeated, a few empty cells), as .xlsx (half the clean
    mobiles numeric cells) and as CSV."""
    csv_path = OUT / f"contacts_{csv_rows}.csv"
    if not csv_path.exists():
        print(f"generating {csv_path} ...", flush=True)
        generate(csv_path, csv_rows)
    xlsx_path = OUT / f"contacts_{rows}.xlsx"
    if not xlsx_path.exists():
        print(f"generating {xlsx_path} ...", flush=True)
        make_xlsx(xlsx_path, rows)
    return xlsx_path, csv_path


def make_xlsx(path: Path, rows: int) -> None:
    import csv

    import xlsxwriter

    source = OUT / f"contacts_{rows}.csv"
    if not source.exists():
        generate(source, rows)
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("名单")
    with source.open(encoding="utf-8", newline="") as handle:
        for i, cells in enumerate(csv.reader(handle)):
            row: list[str | int] = list(cells)
            if i % 2 and cells[1].isdigit():
                row[1] = int(cells[1])  # a numeric cell, as exported lists often hold
            sheet.write_row(i, 0, row)
    workbook.close()


@dataclass
class Flow:
    seconds: float  # upload start -> preview page received
    steps: dict[str, float]  # each step's seconds
    counts: dict[str, int]  # read back from the preview page


_FIGURE = re.compile(r'data-(figure|outcome)="([a-z_]+)">(\d+)<')


def console_flow(client: httpx.Client, path: Path) -> Flow:
    """The new-campaign flow of the pages, timed from the upload's first byte."""
    token = session_csrf(client)  # the browser has the upload form already
    mime = XLSX if path.suffix == ".xlsx" else "text/csv"
    steps: dict[str, float] = {}
    start = last = time.perf_counter()

    def step(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps[name] = now - last
        last = now

    with path.open("rb") as handle:
        answer = client.post(
            "/new", data={"csrf_token": token}, files={"files": (path.name, handle, mime)}
        )
    if answer.status_code != 303 or not answer.headers["location"].endswith("/template"):
        raise RuntimeError(f"upload: {answer.status_code} {answer.headers.get('location')}")
    step("upload + plan")
    page = client.get(answer.headers["location"])
    step("template page")
    plan_url = answer.headers["location"].rsplit("/", 1)[0]
    form = {"csrf_token": csrf_of(page.text), "template": TEMPLATE}
    answer = client.post(f"{plan_url}/template", data=form)
    if answer.status_code != 303:
        raise RuntimeError(f"template: {answer.status_code}")
    step("template -> plan again")
    preview = client.get(answer.headers["location"])
    if preview.status_code != 200:
        raise RuntimeError(f"preview: {preview.status_code}")
    step("preview page")
    seconds = time.perf_counter() - start
    counts = {name: int(n) for _, name, n in _FIGURE.findall(preview.text)}
    return Flow(seconds, steps, counts)


def cli_plan(run: Stack, path: Path) -> tuple[float, dict[str, Any]]:
    """`campaign plan FILE --text T --json` in a subprocess: wall seconds, its JSON."""
    start = time.perf_counter()
    done = run.cli("plan", str(path), "--text", TEMPLATE, "--json")
    return time.perf_counter() - start, json.loads(done.stdout)


def api_plan(web: Web, token: str, path: Path, template: str) -> tuple[float, dict[str, Any]]:
    """POST /api/v1/plans (files + template): one request, one plan."""
    mime = XLSX if path.suffix == ".xlsx" else "text/csv"
    headers = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter()
    with path.open("rb") as handle:
        answer = httpx.post(
            f"{web.url}/api/v1/plans",
            headers=headers,
            data={"template": template},
            files={"files": (path.name, handle, mime)},
            timeout=120,
        )
    seconds = time.perf_counter() - start
    if answer.status_code != 201:
        raise RuntimeError(f"API plan: {answer.status_code} {answer.text[:200]}")
    return seconds, answer.json()


def bench_upload(run: Stack, web: Web, files: list[tuple[str, Path, float]], repeat: int) -> None:
    print("\n## 1-2. Upload to the preview page with its counts")
    print(
        "\n| file | rows | console: upload -> preview received | target | its steps "
        "| `campaign plan --json` (CLI) | console / CLI | API POST /api/v1/plans |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for label, path, target in files:
        for _ in range(repeat):
            cli_seconds, figures = cli_plan(run, path)
            with closing(web.signed_in()) as tab:
                flow = console_flow(tab, path)
            api_seconds, api = api_plan(web, run.token, path, TEMPLATE)
            for key in ("rows", "recipients", "requests", "segments"):
                same = flow.counts.get(key) == figures[key] == api[key]
                assert same, (key, flow.counts.get(key), figures[key], api[key])
            steps = " + ".join(f"{s:.2f}" for s in flow.steps.values())
            met = "met" if flow.seconds <= target else "**missed**"
            print(
                f"| {label} | {figures['rows']:,} | **{flow.seconds:.2f} s** | {target:g} s: "
                f"{met} | {steps} | {cli_seconds:.2f} s | {flow.seconds / cli_seconds:.2f}x "
                f"| {api_seconds:.2f} s |",
                flush=True,
            )
    print(f"\nsteps: {' + '.join(flow.steps)}; counts equal in the three (rows, recipients, ...)")


# --------------------------------------------------------------------------- 3: events


class EventStream:
    """A page's SSE stream read in a thread (http.client, so that `close` can end a read
    that waits: a read timeout would make it reconnect, and a reconnection is new events
    and a new request): (perf_counter, event, data) in `events`, data the JSON read, or
    the text (`progress-html`: the page's progress part, a `data:` line per line)."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        url = urlsplit(str(client.base_url))
        self.conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
        cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        self.conn.request("GET", path, headers={"Cookie": cookies, "Accept": "text/event-stream"})
        self.answer = self.conn.getresponse()
        if self.answer.status != 200:
            raise RuntimeError(f"{path}: {self.answer.status}")
        self.events: queue.Queue[tuple[float, str, dict[str, Any]]] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event, data = "", []
        try:
            for raw in self.answer:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and event:  # the event ends
                    text = "\n".join(data)
                    value = text if event.endswith("-html") else json.loads(text)
                    self.events.put((time.perf_counter(), event, value))
                    event, data = "", []
                elif not line:
                    data = []
        except OSError:
            pass  # closed
        if not self.stop.is_set():
            raise RuntimeError("the event stream ended")

    def wait(
        self, wanted: Callable[[str, dict[str, Any]], bool], timeout: float = 30
    ) -> tuple[float, str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            at, event, data = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if wanted(event, data):
                return at, event, data

    def close(self) -> None:
        self.stop.set()
        if self.conn.sock is not None:
            self.conn.sock.shutdown(socket.SHUT_RDWR)  # ends the read that waits
        self.thread.join(10)
        self.conn.close()


def state_is(state: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda event, data: event == "state" and data["state"] == state


def tomorrow_noon() -> str:
    return (datetime.now(CHINA) + timedelta(days=1)).strftime("%Y-%m-%d 12:00")


def queue_list(
    run: Stack, web: Web, path: Path, at: str | None = None, template: str = SEND_TEMPLATE
) -> int:
    """A campaign of the list made through the API (as `send --queue`, or `--at AT`), for
    the workers: its id."""
    _, plan = api_plan(web, run.token, path, template)
    body = {"plan_id": plan["plan_id"], "name": path.stem, "send_at": at}
    answer = httpx.post(
        f"{web.url}/api/v1/campaigns",
        json={k: v for k, v in body.items() if v is not None},
        headers={"Authorization": f"Bearer {run.token}"},
        timeout=60,
    )
    if answer.status_code != 201:
        raise RuntimeError(f"API campaign: {answer.status_code} {answer.text[:200]}")
    return int(answer.json()["campaign_id"])


def wait_state(engine: Any, campaign_id: int, state: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while get_campaign(engine, campaign_id).state != state:
        if time.monotonic() > deadline:
            raise TimeoutError(f"campaign {campaign_id} not {state} within {timeout:g} s")
        time.sleep(0.2)


def sent_mobiles(run: Stack, campaign_id: int, n: int) -> list[tuple[str, str]]:
    """(msgid, mobile) of `n` recipients of the campaign's accepted requests."""
    path = run.db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        query = "SELECT msgid, mobiles FROM batches WHERE campaign_id = ? AND state = 'accepted'"
        found = [
            (str(m), mobile)
            for m, ms in conn.execute(query, (campaign_id,))
            for mobile in ms.split(",")
        ]
    return found[:n]


def state_changes(engine: Any, stream: EventStream, held: int, changes: int) -> list[float]:
    """Pause the scheduled campaign, schedule it again, in turn (as `campaign pause` and
    `send --at` do, in this process); seconds from just before each to its `state` event."""
    rng, latencies = random.Random(15), []
    stream.wait(lambda event, _: event == "state")
    for i in range(changes):
        time.sleep(rng.uniform(0.0, 0.5))  # any phase of the streams' 0.5 s poll
        start = time.perf_counter()
        if i % 2 == 0:
            pause(engine, str(held), "bench")
        else:
            schedule(engine, held, datetime.now(CHINA) + timedelta(days=1))
        at, _, _ = stream.wait(state_is("paused" if i % 2 == 0 else "scheduled"))
        latencies.append(at - start)
    return latencies


def report_pushes(dlr: str, stream: EventStream, reports: list[tuple[str, str]]) -> list[float]:
    """Push one DELIVRD report at a time to `campaign serve`; seconds from just before each
    push to the `progress` event counting it."""
    rng, latencies = random.Random(16), []
    _, _, first = stream.wait(lambda event, _: event == "progress")
    delivered = int((first["outcomes"] or {}).get("delivered", 0))
    for msgid, mobile in reports:
        time.sleep(rng.uniform(0.0, 2.0))  # any phase of the hub's 2 s outcome counts
        when = datetime.now(CHINA).strftime("%y%m%d%H%M")
        params = {"msgid": msgid, "mobile": mobile, "status": "DELIVRD", "reportTime": when}
        start = time.perf_counter()
        answer = httpx.get(dlr, params=params, timeout=10)
        if answer.text != "OK":
            raise RuntimeError(f"the receiver answered {answer.status_code} {answer.text!r}")
        delivered += 1

        def counted(event: str, data: dict[str, Any], want: int = delivered) -> bool:
            return event == "progress" and (data.get("outcomes") or {}).get("delivered", 0) >= want

        at, _, _ = stream.wait(counted)
        latencies.append(at - start)
    return latencies


def bench_events(run: Stack, web: Web, changes: int, report_rows: int) -> None:
    """Both kinds of change at once, each on a page (an SSE stream) of its own campaign.
    The reports go to a campaign of `changes` recipients (one request each), or of
    `report_rows` (one text: requests of 50,000): the hub counts a campaign's outcomes
    every 2 s, or every 10 times what the last count took when that is longer."""
    rows = report_rows or changes
    print(
        f"\n## 3. A store change reaches an open page ({changes} changes of each kind; "
        f"reports to a campaign of {rows:,} recipients)"
    )
    engine = open_store(run.db)
    sent_list, held_list = run.folder / "sent.csv", run.folder / "held.csv"
    write_contacts(sent_list, rows, first=9_000_000)
    write_contacts(held_list, 5, first=9_100_000)
    results: dict[str, list[float]] = {}
    try:
        template = "本周会员日全场八折" if report_rows else SEND_TEMPLATE
        sent = queue_list(run, web, sent_list, template=template)  # the console's worker sends it
        held = queue_list(run, web, held_list, tomorrow_noon())
        wait_state(engine, sent, "finished")
        reports = sent_mobiles(run, sent, changes)
        with (
            receiver_process(run) as dlr,
            closing(web.signed_in()) as tab,
            ThreadPoolExecutor(2) as pool,
        ):
            streams = [EventStream(tab, f"/campaigns/{c}/events") for c in (held, sent)]
            try:
                states = pool.submit(state_changes, engine, streams[0], held, changes)
                pushes = pool.submit(report_pushes, dlr, streams[1], reports)
                results["state (pause / schedule again)"] = states.result()
                results["delivery report pushed to `campaign serve`"] = pushes.result()
            finally:
                for stream in streams:
                    stream.close()
    finally:
        engine.dispose()
    print("\n| change | n | median | max | target 2 s |\n|---|---:|---:|---:|---|")
    for what, seconds in results.items():
        met = "met" if max(seconds) <= 2.0 else "**missed**"
        print(
            f"| {what} | {len(seconds)} | {median(seconds):.2f} s | {max(seconds):.2f} s | {met} |"
        )
    for what, seconds in results.items():
        print(f"  {what}: {', '.join(f'{s:.2f}' for s in seconds)}")


# --------------------------------------------------------------------------- 4: bytes


class Links(HTMLParser):
    """Every URL-valued attribute of a page, and its stylesheets and scripts."""

    ATTRS = frozenset({"src", "href", "action", "formaction", "poster", "data", "srcset"})
    ATTRS |= {"sse-connect", "hx-get", "hx-post", "hx-put", "hx-delete", "hx-patch"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name, value in attrs:
            if name in self.ATTRS and value:
                self.urls.extend(v.split()[0] for v in value.split(",") if v.strip())
        if tag == "script" and found.get("src"):
            self.assets.append(str(found["src"]))
        if tag == "link" and found.get("rel") == "stylesheet" and found.get("href"):
            self.assets.append(str(found["href"]))


_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")


@dataclass
class Visit:
    wire: dict[str, int] = field(default_factory=dict)  # what -> bytes on the wire
    other_hosts: list[str] = field(default_factory=list)


def _wire(answer: httpx.Response) -> int:
    """Bytes of a response on the wire: status line, headers, body as sent."""
    head = sum(len(k) + len(v) + 4 for k, v in answer.headers.raw) + 17
    return head + answer.num_bytes_downloaded


def first_visit(web: Web, encoding: str) -> Visit:
    """A new browser: / (-> /login), the sign-in page and its assets, sign-in, then the
    campaigns page (its assets: the same URLs, already cached)."""
    visit, host = Visit(), urlsplit(web.url).netloc
    headers = {"Accept-Encoding": encoding}
    with httpx.Client(base_url=web.url, headers=headers, timeout=30) as client:

        def get(what: str, url: str, **headers: str) -> httpx.Response:
            answer = client.get(url, headers=headers)
            if answer.status_code not in (200, 303, 304):
                raise RuntimeError(f"{url}: {answer.status_code}")
            visit.wire[what] = visit.wire.get(what, 0) + _wire(answer)
            return answer

        def check(base: str, urls: list[str]) -> None:
            for url in urls:
                target = urlsplit(urljoin(f"{web.url}{base}", url))
                if target.scheme in ("http", "https") and target.netloc != host:
                    visit.other_hosts.append(url)
                elif target.scheme not in ("http", "https", "data", "mailto", "tel"):
                    visit.other_hosts.append(url)  # javascript:, ftp:, ...

        get("redirect / -> /login", "/")
        login = get("sign-in page (HTML)", "/login?next=%2F")
        parsed = Links()
        parsed.feed(login.text)
        check("/login", parsed.urls)
        etags = {}
        for asset in parsed.assets:
            answer = get("sign-in page: CSS and JS", asset)
            etags[asset] = answer.headers.get("etag", "")
            if asset.endswith(".css"):
                check(asset, [a or b for a, b in _CSS_URL.findall(answer.text)])
        form = {"csrf_token": csrf_of(login.text), "name": USER, "password": PASSWORD, "next": "/"}
        signed = client.post("/login", data=form)
        if signed.status_code != 303:
            raise RuntimeError(f"sign-in: {signed.status_code}")
        visit.wire["sign-in POST -> 303"] = _wire(signed)
        page = get("campaigns page (HTML)", "/")
        parsed = Links()
        parsed.feed(page.text)
        check("/", parsed.urls)
        for asset in parsed.assets:  # in the browser's cache: asked again only if unchanged
            what = "campaigns page: CSS and JS (revalidated)"
            answer = get(what, asset, **({"If-None-Match": etags[asset]} if asset in etags else {}))
    return visit


def bench_bytes(web: Web) -> None:
    print("\n## 4. First visit: sign-in page, sign-in, campaigns page, with CSS/JS")
    packed, plain = first_visit(web, "gzip"), first_visit(web, "identity")
    print("\n| what | gzip | no compression |\n|---|---:|---:|")
    for what in plain.wire:
        print(f"| {what} | {packed.wire[what]:,} B | {plain.wire[what]:,} B |")
    total, total_plain = sum(packed.wire.values()), sum(plain.wire.values())
    met = "met" if total <= 100_000 else "**missed**"
    print(f"| **total** (target 100 KB: {met}) | **{total:,} B** | {total_plain:,} B |")
    hosts = sorted(set(packed.other_hosts))
    print(f"\nreferences to other hosts in the pages: {len(hosts)} {hosts or ''}")
    assets = packed.wire.get("sign-in page: CSS and JS", 0)
    print(f"(the campaigns page uses the same CSS/JS URLs; uncached they would be {assets:,} B)")


# --------------------------------------------------------------------------- 5: send


class Page:
    """One open campaign page as htmx drives it (templates/campaign.html): the page, its
    SSE stream, and the parts its events fetch: `state` -> parts/state after 200 ms,
    `progress` -> parts/charts after 1 s, each delay restarted by a new event of its kind
    (htmx's `delay:`); the progress part comes in the stream (`progress-html`, swapped in:
    no fetch). `--old-parts`: as the page did before (`progress` -> parts/progress after
    250 ms too)."""

    DELAYS: ClassVar[dict[str, tuple[tuple[str, float], ...]]] = {
        "state": (("state", 0.2),),
        "progress": (("charts", 1.0),),
    }
    OLD_DELAYS: ClassVar[dict[str, tuple[tuple[str, float], ...]]] = {
        "state": (("state", 0.2),),
        "progress": (("progress", 0.25), ("charts", 1.0)),
    }
    old = False  # fetch parts/progress as the page did before (set by --old-parts)

    def __init__(self, client: httpx.Client, campaign_id: int, *, parts: bool = True) -> None:
        self.client, self.id, self.parts = client, campaign_id, parts
        self.events = 0
        self.fragments: Counter[str] = Counter()  # parts fetched, by name
        self._due: dict[str, float] = {}
        page = client.get(f"/campaigns/{campaign_id}")
        if page.status_code != 200:
            raise RuntimeError(f"campaign page: {page.status_code}")
        self.stream = EventStream(client, f"/campaigns/{campaign_id}/events")
        self.thread = threading.Thread(target=self._fetch, daemon=True)
        self.thread.start()

    def _fetch(self) -> None:
        """Waits for the next event or the next part due, whichever comes first (a thread
        that woke every few ms would take the console's cores from it: the browser's cost,
        not the console's, and a real browser runs on another machine)."""
        while not self.stream.stop.is_set():
            now = time.monotonic()
            wait = min((at - now for at in self._due.values()), default=0.2)
            try:
                _, event, _ = self.stream.events.get(timeout=max(0.001, min(wait, 0.2)))
                self.events += 1
                delays = self.OLD_DELAYS if self.old else self.DELAYS
                for part, delay in delays.get(event, ()) if self.parts else ():
                    self._due[part] = time.monotonic() + delay
            except queue.Empty:
                pass
            now = time.monotonic()
            for part in [p for p, at in self._due.items() if at <= now]:
                del self._due[part]
                answer = self.client.get(f"/campaigns/{self.id}/parts/{part}")
                assert answer.status_code == 200, (part, answer.status_code)
                self.fragments[part] += 1

    def close(self) -> None:
        self.stream.stop.set()

    def join(self) -> None:
        self.stream.close()
        self.thread.join(10)


@dataclass(frozen=True)
class SendRun:
    campaign_id: int
    pages: int
    rate: float  # accepted requests/s (the simulator's log, first to last)
    seconds: float  # queued -> finished
    web_cpu_ms: float  # the console's CPU per request
    bench_cpu_ms: float  # this process's CPU per request (the emulated browsers)
    events: int
    fragments: Counter[str]  # parts fetched by the pages, by name


def one_send(
    run: Stack, web: Web, tabs: list[httpx.Client], n: int, first: int, *, parts: bool
) -> SendRun:
    contacts = run.folder / f"send_{first}.csv"
    mobiles = set(write_contacts(contacts, n, first=first))
    campaign_id = queue_list(run, web, contacts, tomorrow_noon())
    pages = [Page(tab, campaign_id, parts=parts) for tab in tabs]
    engine = open_store(run.db)
    try:
        time.sleep(0.5)  # the pages are open and quiet
        web_cpu, bench_cpu = web.cpu(), time.process_time()
        start = time.perf_counter()
        schedule(engine, campaign_id, None)  # due now: the console's worker takes it
        wait_state(engine, campaign_id, "finished")
        seconds = time.perf_counter() - start
        web_cpu, bench_cpu = web.cpu() - web_cpu, time.process_time() - bench_cpu
    finally:
        engine.dispose()
        for page in pages:
            page.close()
        for page in pages:
            page.join()
    log = [entry for entry in read_log(run.sim_log) if set(entry.mobiles) <= mobiles]
    assert sum(1 for e in log if e.accepted) == n, "not every recipient was sent once"
    return SendRun(
        campaign_id=campaign_id,
        pages=len(tabs),
        rate=measured_rate(log),
        seconds=seconds,
        web_cpu_ms=1000 * web_cpu / n,
        bench_cpu_ms=1000 * bench_cpu / n,
        events=sum(p.events for p in pages),
        fragments=sum((p.fragments for p in pages), Counter()),
    )


def parts_text(parts: Counter[str]) -> str:
    return (
        " ".join(f"{name} {parts[name]}" for name in ("progress", "state", "charts"))
        if parts
        else "-"
    )


@contextmanager
def console_and_worker(run: Stack, separate: bool) -> Iterator[Web]:
    """`campaign web` sending with its own worker thread, or (`separate`) `campaign web
    --no-worker` and one `campaign worker` process."""
    if not separate:
        with web_process(run, "send") as web:
            yield web
        return
    with (
        web_process(run, "send", "--no-worker") as web,
        WorkerPool(1, db=run.db, config=run.config, folder=run.folder) as pool,
    ):
        web.worker = pool.pids[0]
        yield web


def bench_send(
    run: Stack, recipients: int, pages: int, rounds: int, *, parts: bool, separate: bool
) -> None:
    print(
        f"\n## 5. Send {recipients:,} recipients (one request each, no rate limit) with "
        f"0 and {pages} campaign pages open"
    )
    runs: list[SendRun] = []
    print(
        "\n| run | pages open | req/s | wall s | console CPU ms/req | browsers' CPU ms/req "
        "| events | parts fetched |\n|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    with console_and_worker(run, separate) as web:
        tabs = [web.signed_in() for _ in range(pages)]
        try:
            for r in range(rounds):
                for open_pages in (0, pages) if r % 2 == 0 else (pages, 0):
                    first = 1_000_000 * (len(runs) + 1)
                    done = one_send(run, web, tabs[:open_pages], recipients, first, parts=parts)
                    runs.append(done)
                    print(
                        f"| {len(runs)} | {done.pages} | {done.rate:,.0f} | {done.seconds:.1f} "
                        f"| {done.web_cpu_ms:.2f} | {done.bench_cpu_ms:.2f} | {done.events} "
                        f"| {parts_text(done.fragments)} |",
                        flush=True,
                    )
            if tabs:
                page_costs(web, tabs, runs[-1].campaign_id)
        finally:
            for tab in tabs:
                tab.close()
    quiet = mean(r.rate for r in runs if r.pages == 0)
    watched = mean(r.rate for r in runs if r.pages)
    cost = (1 - watched / quiet) * 100
    met = "met" if cost < 5 else "**missed**"
    print(
        f"\nmean req/s: {quiet:,.0f} with no page, {watched:,.0f} with {pages} pages: "
        f"ratio {watched / quiet:.3f}, cost {cost:+.1f} % (target < 5 %: {met}); console CPU "
        f"{mean(r.web_cpu_ms for r in runs if r.pages == 0):.2f} -> "
        f"{mean(r.web_cpu_ms for r in runs if r.pages):.2f} ms/req"
    )


def page_costs(web: Web, tabs: list[httpx.Client], campaign_id: int, n: int = 20) -> None:
    """What an open page costs the console, on the last (finished) campaign: CPU per part
    fetched, and per second of open SSE streams with nothing changing."""
    print(f"\nthe console's CPU per part fetched (finished campaign, one tab, {n} fetches each):")
    tab = tabs[0]
    for part in ("progress", "state", "charts"):
        tab.get(f"/campaigns/{campaign_id}/parts/{part}")
        cpu = web.cpu()
        for _ in range(n):
            tab.get(f"/campaigns/{campaign_id}/parts/{part}")
        shared = (
            " (shared: the first fetch's rendering, CHARTS_SECONDS)" if part == "charts" else ""
        )
        print(f"  parts/{part}: {1000 * (web.cpu() - cpu) / n:.1f} ms{shared}")
    seconds = 2.0
    cpu = web.cpu()
    time.sleep(seconds)
    idle = web.cpu() - cpu
    streams = [EventStream(tab, f"/campaigns/{campaign_id}/events") for tab in tabs]
    try:
        time.sleep(0.5)
        cpu = web.cpu()
        time.sleep(seconds)
        held = web.cpu() - cpu
    finally:
        for stream in streams:
            stream.stop.set()
        for stream in streams:
            stream.close()
    print(
        f"  {len(tabs)} SSE streams open, nothing changing: {1000 * (held - idle) / seconds:.0f} "
        f"ms/s (the console alone: {1000 * idle / seconds:.0f} ms/s)"
    )


# --------------------------------------------------------------------------- main


def timed(part: Callable[..., None], *args: Any, **options: Any) -> None:
    start = time.perf_counter()
    part(*args, **options)
    print(f"\n({part.__name__}: {time.perf_counter() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the .xlsx upload")
    parser.add_argument("--csv-rows", type=int, default=1_000_000, help="rows of the CSV upload")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each upload")
    parser.add_argument("--changes", type=int, default=10, help="store changes of each kind")
    parser.add_argument(
        "--report-rows",
        type=int,
        default=0,
        help="recipients of the campaign the reports go to (default: --changes)",
    )
    parser.add_argument("--recipients", type=int, default=3_000, help="recipients a send")
    parser.add_argument("--pages", type=int, default=10, help="campaign pages open")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of sends (A B, B A, ...)")
    parser.add_argument(
        "--worker",
        choices=("thread", "process"),
        default="thread",
        help="send with the console's own worker (thread) or a `campaign worker` (process)",
    )
    parser.add_argument(
        "--no-parts", action="store_true", help="the pages hold their SSE stream only"
    )
    parser.add_argument(
        "--old-parts",
        action="store_true",
        help="the pages also fetch parts/progress on each progress event (before issue 15's fix)",
    )
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only - set(PARTS):
        parser.error(f"--only: unknown {sorted(only - set(PARTS))}")
    Page.old = args.old_parts
    now, started = datetime.now(UTC), time.perf_counter()
    print(f"{now:%Y-%m-%d %H:%M} UTC; load average at start: {load()}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp)) as run:
        print(f"(simulator, store and user ready: {time.perf_counter() - started:.0f} s)")
        if only & {"upload", "events", "bytes"}:
            with web_process(run, "console") as web:
                if "upload" in only:
                    xlsx, csv = contact_files(args.rows, args.csv_rows)
                    files = [("xlsx", xlsx, 5.0), ("CSV", csv, 15.0)]
                    timed(bench_upload, run, web, files, args.repeat)
                if "events" in only:
                    timed(bench_events, run, web, args.changes, args.report_rows)
                if "bytes" in only:
                    timed(bench_bytes, web)
        if "send" in only:  # a console of its own
            separate = args.worker == "process"
            parts = not args.no_parts
            timed(
                bench_send,
                run,
                args.recipients,
                args.pages,
                args.rounds,
                parts=parts,
                separate=separate,
            )
    took = time.perf_counter() - started
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average at end: {load()}; {took:.0f} s")


if __name__ == "__main__":
    main()
