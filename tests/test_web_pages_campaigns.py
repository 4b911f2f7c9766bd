"""The console's campaigns list and campaign page (pages_campaigns.py, charts.py), end to
end: a real uvicorn on a loopback port serving `create_app` on a real SQLite store, the
built-in simulator as the gateway pushing its delivery reports to the receiver (both on
loopback), and httpx signed in through the sign-in form with the session's CSRF token.

The console runs no worker here (run_worker=False): a campaign handed to the workers
stays `queued`, so the states the tests look at do not move under them. Campaigns are
made the way the CLI makes them (workflow.plan_from_files, create_campaign, send).
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from campaign import workflow, workflow_web
from campaign.outcomes import AuditAction, CampaignState
from campaign.store.campaigns import get_campaign
from campaign.store.users import audit_entries
from campaign.web import charts
from campaign.web.pages_campaigns import download_name
from tests.browser.kit import (
    Console,
    http_signed_in,
    mobile,
    seed_campaign,
    seed_folder,
    write_csv,
)
from tests.support.console import simulated_console

TEMPLATE = "{姓名}您好，会员日全场8折"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("pages")
    with simulated_console(folder, report_delay=0.0, run_worker=False) as console:
        yield console


@pytest.fixture(scope="module")
def sender(console: Console) -> Iterator[tuple[httpx.Client, str]]:
    with http_signed_in(console, "sender") as signed:
        yield signed


@pytest.fixture(scope="module")
def viewer(console: Console) -> Iterator[tuple[httpx.Client, str]]:
    with http_signed_in(console, "viewer") as signed:
        yield signed


@pytest.fixture(autouse=True)
def chinese_first(request: pytest.FixtureRequest) -> None:
    """Each test starts in the default language (a `?lang=` of another is remembered)."""
    for name in ("sender", "viewer"):
        if name in request.fixturenames:
            request.getfixturevalue(name)[0].cookies.delete("campaign_lang")


def contacts(console: Console, name: str, count: int, start: int = 0) -> list[Path]:
    rows = [{"姓名": f"客户{n}", "手机号": mobile(start + n)} for n in range(count)]
    rows.append({"姓名": "坏号码", "手机号": "12345"})
    return [write_csv(seed_folder(console) / f"{name}.csv", rows)]


def wait_until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def sent(console: Console) -> int:
    """A campaign sent through the simulator with every report in (the CLI path)."""
    campaign_id = seed_campaign(console, contacts(console, "会员名单", 12), TEMPLATE, send=True)
    assert console.simulator.wait_reports_pushed(10)
    engine = console.engine
    wait_until(lambda: workflow_web.campaign_outcomes(engine, campaign_id)["pending"] == 0)
    return campaign_id


def scheduled(console: Console, name: str, start: int) -> int:
    """A new campaign handed to the workers for tomorrow (pausable, cancellable)."""
    from datetime import UTC, datetime, timedelta

    from campaign.store.queue import schedule

    campaign_id = seed_campaign(console, contacts(console, name, 3, start), TEMPLATE)
    schedule(console.engine, campaign_id, datetime.now(UTC) + timedelta(days=1))
    return campaign_id


def state_of(console: Console, campaign_id: int) -> str:
    return str(get_campaign(console.engine, str(campaign_id)).state)


def post(client: httpx.Client, token: str, path: str, **fields: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": token, **fields})


# --------------------------------------------------------------------------- reading HTML


class Tables(HTMLParser):
    """Each <tr>'s attributes and cell texts; every element's attributes by tag."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[dict[str, str], list[str]]] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.tags.append((tag, found))
        if tag == "tr":
            self.rows.append((found, []))
        elif tag in ("td", "th") and self.rows:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def with_attr(self, name: str) -> dict[str, list[str]]:
        return {attrs[name]: cells for attrs, cells in self.rows if name in attrs}

    def elements(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        return [
            attrs for t, attrs in self.tags
            if t == tag and all(attrs.get(k) == v for k, v in wanted.items())
        ]  # fmt: skip


def parsed(html: str) -> Tables:
    tables = Tables()
    tables.feed(html)
    return tables


def page_outcomes(html: str) -> dict[str, int]:
    return {k: int(cells[-1]) for k, cells in parsed(html).with_attr("data-outcome").items()}


def forms(html: str) -> list[str]:
    return [a.get("action", "") for a in parsed(html).elements("form")]


# --------------------------------------------------------------------------- the list


def test_the_list_shows_a_campaign_made_by_the_cli_path(
    console: Console, viewer: tuple[httpx.Client, str], sent: int
) -> None:
    client, _ = viewer
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert " style=" not in page.text, "no inline style (CSP)"
    record = get_campaign(console.engine, str(sent))
    row = parsed(page.text).with_attr("data-campaign")[str(sent)]
    assert row[0] == str(sent) and row[1] == record.name
    assert row[2] == "已完成"  # the state in Chinese (the default)
    assert row[3] == record.created_at.astimezone(_china()).strftime("%Y-%m-%d %H:%M")
    progress = workflow_web.campaign_progress(console.engine, sent)
    assert progress.sent == progress.total == 12
    assert f"已发送 {progress.sent} / {progress.total}" in row[5]
    assert f'href="/campaigns/{sent}"' in page.text
    assert 'sse-connect="/campaigns/events"' in page.text  # live progress (SSE)
    english = client.get("/?lang=en")
    assert parsed(english.text).with_attr("data-campaign")[str(sent)][2] == "finished"
    assert f"{progress.sent} of {progress.total} sent" in english.text
    rows = client.get("/campaigns/rows", params={"lang": "zh"})  # the htmx part
    assert rows.status_code == 200 and "<title" not in rows.text
    assert parsed(rows.text).with_attr("data-campaign")[str(sent)][1] == record.name


def _china() -> Any:
    from campaign.timeutil import CHINA

    return CHINA


def test_the_events_route_streams_progress(viewer: tuple[httpx.Client, str], sent: int) -> None:
    client, _ = viewer
    with client.stream("GET", f"/campaigns/{sent}/events", timeout=10) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        seen = ""
        for chunk in answer.iter_text():
            seen += chunk
            if "event: state" in seen and "event: progress" in seen:
                break
    assert "event: progress" in seen and '"sent": 12' in seen and '"total": 12' in seen


def sse_events(answer: httpx.Response, wanted: str) -> dict[str, str]:
    """(event -> data) of a stream until its `wanted` event, read as EventSource does:
    events end at a blank line, their `data:` lines joined with "\n"."""
    found: dict[str, str] = {}
    buffer = ""
    for chunk in answer.iter_text():
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event, data = "message", []
            for line in block.split("\n"):
                field, _, value = line.partition(":")
                if field == "event":
                    event = value.removeprefix(" ")
                elif field == "data":
                    data.append(value.removeprefix(" "))
            found[event] = "\n".join(data)
            if event == wanted:
                return found
    raise AssertionError(f"the stream ended before {wanted}: {found}")


@pytest.fixture(scope="module")
def quiet(console: Console) -> int:
    """A planned campaign nobody sends: its readings do not move."""
    return seed_campaign(console, contacts(console, "静候名单", 3, 300), TEMPLATE)


def test_the_page_stream_carries_the_progress_part_rendered_once(
    console: Console, quiet: int, sender: tuple[httpx.Client, str], monkeypatch: Any
) -> None:
    """Issue 15: ten open pages must not cost the send. The campaign page's stream sends
    the progress part itself (`progress-html`, after `progress`): three viewers' streams
    get one rendering, a sender's (other buttons) one more; no page fetches it."""
    from campaign.web import pages_campaigns

    renders: list[str] = []
    real = pages_campaigns.shared_text

    def counted(template: str, lang: str, /, **ctx: Any) -> str:
        renders.append(template)
        return real(template, lang, **ctx)

    monkeypatch.setattr(pages_campaigns, "shared_text", counted)

    viewers = threading.Barrier(3)

    def stream(client: httpx.Client, together: threading.Barrier | None = None) -> dict[str, str]:
        with client.stream("GET", f"/campaigns/{quiet}/events", timeout=20) as answer:
            assert answer.status_code == 200
            if together is not None:  # every viewer watches before the first one leaves
                together.wait(20)
            return sse_events(answer, "progress-html")

    with (
        http_signed_in(console, "viewer") as (a, _),
        http_signed_in(console, "viewer") as (b, _),
        http_signed_in(console, "viewer") as (c, _),
        ThreadPoolExecutor(3) as pool,
    ):
        seen = list(pool.map(lambda client: stream(client, viewers), [a, b, c]))
        part = a.get(f"/campaigns/{quiet}/parts/progress").text  # what a fetch would get
    assert renders == ["partials/campaign_progress.html"]
    html = seen[0]["progress-html"]
    assert all(s["progress-html"] == html for s in seen)
    assert '"state": "planned"' in seen[0]["progress"]  # the JSON event stays as it was
    assert "\n" in html and html.startswith('<h2 id="campaign-progress-title">')
    assert page_outcomes(html) == page_outcomes(part) == {"unsent": 3, "invalid": 1}
    figures = parsed(html).elements("p", **{"class": "figures"})[0]
    assert (figures["data-sent"], figures["data-total"]) == ("0", "3")
    sender_html = stream(sender[0])["progress-html"]
    assert len(renders) == 2 and page_outcomes(sender_html) == page_outcomes(html)


def test_the_charts_part_is_shared_by_the_pages(
    console: Console, quiet: int, viewer: tuple[httpx.Client, str], monkeypatch: Any
) -> None:
    """The charts (~60 ms each) are made once for the pages of one language while the
    figures stay the same (CHARTS_SECONDS at most)."""
    calls: list[int] = []
    real = workflow_web.campaign_breakdowns

    def counted(engine: Any, campaign_id: int) -> dict[str, Any]:
        calls.append(campaign_id)
        return real(engine, campaign_id)

    monkeypatch.setattr(workflow_web, "campaign_breakdowns", counted)
    client, _ = viewer
    with http_signed_in(console, "sender") as (other, _):
        first = client.get(f"/campaigns/{quiet}/parts/charts", params={"lang": "en"})
        again = other.get(f"/campaigns/{quiet}/parts/charts", params={"lang": "en"})
        chinese = other.get(f"/campaigns/{quiet}/parts/charts", params={"lang": "zh"})
    assert first.status_code == again.status_code == chinese.status_code == 200
    assert first.text == again.text and "Delivery" in first.text
    assert chinese.text != first.text and calls == [quiet, quiet]
    assert "csrf" not in first.text.lower()
    assert client.get("/campaigns/999999/parts/charts").status_code == 404


# --------------------------------------------------------------------------- the page


def test_the_page_shows_progress_without_javascript(
    viewer: tuple[httpx.Client, str], quiet: int
) -> None:
    """JavaScript off: the page as served holds the progress part (figures, outcomes); the
    stream only replaces it (sse-swap), nothing is fetched to fill it."""
    client, _ = viewer
    page = client.get(f"/campaigns/{quiet}").text
    section = re.search(r'<section id="campaign-progress"([^>]*)>(.*?)</section>', page, re.S)
    assert section, page[:500]
    assert 'sse-swap="progress-html"' in section.group(1) and "hx-get" not in section.group(1)
    assert page_outcomes(section.group(2)) == {"unsent": 3, "invalid": 1}
    figures = parsed(section.group(2)).elements("p", **{"class": "figures"})[0]
    assert (figures["data-sent"], figures["data-total"]) == ("0", "3")


def test_the_campaign_page_shows_its_outcome_figures(
    console: Console, viewer: tuple[httpx.Client, str], sent: int
) -> None:
    client, _ = viewer
    page = client.get(f"/campaigns/{sent}")
    assert page.status_code == 200 and " style=" not in page.text
    status = workflow.campaign_status(console.engine, str(sent)).to_json()
    wanted = {k: v for k, v in status["outcomes"].items() if v}
    assert page_outcomes(page.text) == wanted
    assert wanted == {"delivered": 12, "invalid": 1} or wanted["delivered"] > 0
    assert f'sse-connect="/campaigns/{sent}/events"' in page.text
    figures = parsed(page.text).elements("p", **{"class": "figures"})[0]
    assert (figures["data-sent"], figures["data-total"]) == ("12", "12")
    part = client.get(f"/campaigns/{sent}/parts/progress")
    assert part.status_code == 200 and page_outcomes(part.text) == wanted


def test_delivered_counts_rise_as_reports_arrive(
    console: Console, viewer: tuple[httpx.Client, str]
) -> None:
    client, _ = viewer
    console.simulator.configure(report_delay=2.0)
    try:
        campaign_id = seed_campaign(console, contacts(console, "慢回执", 4, 200), TEMPLATE,
                                    send=True)  # fmt: skip
        first = page_outcomes(client.get(f"/campaigns/{campaign_id}/parts/progress").text)
        assert first.get("delivered", 0) < 4 and first.get("pending", 0) > 0
        assert console.simulator.wait_reports_pushed(15)

        def delivered() -> bool:
            part = client.get(f"/campaigns/{campaign_id}/parts/progress").text
            return page_outcomes(part).get("delivered") == 4

        wait_until(delivered)  # the events' hub reads the outcome counts every 2 s
    finally:
        console.simulator.configure(report_delay=0.0)


def test_the_charts_draw_the_right_numbers(
    console: Console, viewer: tuple[httpx.Client, str], sent: int
) -> None:
    client, _ = viewer
    part = client.get(f"/campaigns/{sent}/parts/charts", params={"lang": "en"})
    assert part.status_code == 200 and " style=" not in part.text
    found = parsed(part.text)
    svgs = found.elements("svg")
    assert [s["class"] for s in svgs] == ["chart chart-outcomes", "chart chart-carriers",
                                          "chart chart-hours"]  # fmt: skip
    assert all(s["role"] == "img" for s in svgs)
    outcomes = workflow_web.campaign_outcomes(console.engine, sent)
    figures = workflow_web.campaign_breakdowns(console.engine, sent)
    drawn = [parsed(svg) for svg in part.text.split("<svg")[1:]]

    def bars(chart: Tables) -> dict[str, int]:
        return {g["data-label"]: int(g["data-total"]) for g in chart.elements("g")
                if "data-total" in g}  # fmt: skip

    def values(chart: Tables, kind: str) -> list[int]:
        return [int(r["data-value"]) for r in chart.elements("rect", **{"data-kind": kind})]

    assert bars(drawn[0]) == {k: v for k, v in outcomes.items() if v}
    assert bars(drawn[1]) == {
        (row["carrier"] or "no carrier"): row["rows"] for row in figures["carriers"]
    }
    assert sum(values(drawn[1], "delivered")) == outcomes["delivered"] == 12
    assert values(drawn[2], "reports") == [h["reports"] for h in figures["hours"]]
    assert values(drawn[2], "delivered") == [h["delivered"] for h in figures["hours"]]
    assert sum(values(drawn[2], "reports")) == 12  # one report per delivered recipient
    assert figures["carriers"][0]["delivery_rate"] == 1.0 and "100.0%" in part.text


def test_a_chart_escapes_its_labels() -> None:
    svg = charts.carrier_chart(
        [{"carrier": '<script>alert(1)</script>"', "rows": 3, "delivered": 2, "failed": 1,
          "pending": 0, "delivery_rate": 2 / 3}],
        title="<b>t</b>", word=str, empty="none",
    )  # fmt: skip
    assert "<script>" not in svg and "<b>" not in svg and "&lt;script&gt;" in svg
    assert "66.7%" in svg and " style=" not in svg
    assert "none" in charts.outcome_chart({}, title="x", word=str, empty="none")


def test_pages_in_chinese_and_english(sender: tuple[httpx.Client, str], sent: int) -> None:
    client, _ = sender
    zh = client.get(f"/campaigns/{sent}", params={"lang": "zh"})
    assert '<html lang="zh-CN">' in zh.text
    assert "下载结果" in zh.text and "各结果人数" in zh.text and "送达" in zh.text
    en = client.get(f"/campaigns/{sent}", params={"lang": "en"})
    assert '<html lang="en">' in en.text
    assert "Download results (xlsx, Chinese)" in en.text and "Recipients by outcome" in en.text
    assert "delivered" in en.text and "已完成" not in en.text


# --------------------------------------------------------------------------- actions


def test_pause_and_cancel_from_the_page_change_the_state(
    console: Console, sender: tuple[httpx.Client, str]
) -> None:
    client, token = sender
    campaign_id = scheduled(console, "暂停取消", 300)
    page = client.get(f"/campaigns/{campaign_id}", params={"lang": "en"})
    actions = forms(page.text)
    assert f"/campaigns/{campaign_id}/pause" in actions
    assert f"/campaigns/{campaign_id}/cancel" in actions
    paused = post(client, token, f"/campaigns/{campaign_id}/pause")
    assert paused.status_code == 303 and paused.headers["location"] == f"/campaigns/{campaign_id}"
    assert state_of(console, campaign_id) == CampaignState.PAUSED
    after = client.get(f"/campaigns/{campaign_id}")
    assert "The campaign is paused" in after.text  # said once, on the next page
    assert "The campaign is paused" not in client.get(f"/campaigns/{campaign_id}").text
    assert f"/campaigns/{campaign_id}/resume" in forms(after.text)
    # cancel: asked first (nothing done), then done with confirm=yes
    ask = client.get(f"/campaigns/{campaign_id}/cancel")
    assert ask.status_code == 200 and "Cancel the campaign" in ask.text
    assert "The 3 recipients not sent yet will never be sent" in ask.text
    unconfirmed = post(client, token, f"/campaigns/{campaign_id}/cancel")
    assert unconfirmed.status_code == 200 and state_of(console, campaign_id) == "paused"
    done = post(client, token, f"/campaigns/{campaign_id}/cancel", confirm="yes")
    assert done.status_code == 303
    assert state_of(console, campaign_id) == CampaignState.CANCELLED
    said = client.get(f"/campaigns/{campaign_id}").text
    assert "The campaign is cancelled: 3 recipients will not be sent." in said
    assert f"/campaigns/{campaign_id}/pause" not in forms(said)
    actions_done = [
        (e.action, e.detail) for e in audit_entries(console.engine, 20)
        if e.detail and e.detail.get("campaign_id") == campaign_id
    ]  # fmt: skip
    assert [a for a, _ in actions_done] == [AuditAction.CANCEL, AuditAction.PAUSE]
    assert actions_done[0][1]["cancelled_recipients"] == 3


def test_resume_asks_first_then_hands_the_campaign_to_the_workers(
    console: Console, sender: tuple[httpx.Client, str]
) -> None:
    client, token = sender
    campaign_id = scheduled(console, "继续发送", 400)
    assert post(client, token, f"/campaigns/{campaign_id}/pause").status_code == 303
    ask = client.get(f"/campaigns/{campaign_id}/resume")
    assert ask.status_code == 200 and 'name="confirm"' in ask.text
    assert "本控制台没有运行发送进程" in ask.text  # this console runs no worker
    done = post(client, token, f"/campaigns/{campaign_id}/resume", confirm="yes")
    assert done.status_code == 303
    assert state_of(console, campaign_id) == CampaignState.QUEUED
    assert audit_entries(console.engine, 1)[0].action == AuditAction.RESUME


def test_a_finished_campaign_refuses_with_a_message(
    console: Console, sender: tuple[httpx.Client, str], sent: int
) -> None:
    client, token = sender
    page = client.get(f"/campaigns/{sent}")
    assert not [a for a in forms(page.text) if a.endswith(("/pause", "/cancel", "/resume"))]
    for action, words in (("pause", "无法暂停"), ("cancel", "无法取消"), ("resume", "无法继续")):
        fields = {} if action == "pause" else {"confirm": "yes"}
        refused = post(client, token, f"/campaigns/{sent}/{action}", **fields)
        assert refused.status_code == 409, action
        assert words in refused.text and "已完成" in refused.text
        assert 'role="alert"' in refused.text
        if action != "pause":
            ask = client.get(f"/campaigns/{sent}/{action}")  # the confirmation says so too
            assert ask.status_code == 200 and words in ask.text
            assert 'name="confirm"' not in ask.text
    assert state_of(console, sent) == CampaignState.FINISHED


def test_a_viewer_sees_no_buttons_and_gets_403_on_post(
    console: Console, viewer: tuple[httpx.Client, str]
) -> None:
    client, token = viewer
    campaign_id = scheduled(console, "查看者", 500)
    page = client.get(f"/campaigns/{campaign_id}", params={"lang": "en"})
    assert page.status_code == 200
    assert parsed(page.text).elements("button") == [
        b for b in parsed(page.text).elements("button") if b.get("class") == "linkbutton"
    ], "a viewer sees only the sign-out button"
    assert not re.search(r">\s*(Pause|Resume|Cancel|New campaign)\s*<", page.text)
    assert "/results.xlsx?lang=en" in page.text  # downloads are for viewers too
    for action in ("pause", "resume", "cancel", "resend"):
        refused = post(client, token, f"/campaigns/{campaign_id}/{action}", confirm="yes",
                       understood="yes")  # fmt: skip
        assert refused.status_code == 403, action
        if action != "pause":
            assert client.get(f"/campaigns/{campaign_id}/{action}").status_code == 403
    assert state_of(console, campaign_id) == CampaignState.SCHEDULED


def test_a_post_without_the_csrf_token_is_refused(
    console: Console, sender: tuple[httpx.Client, str]
) -> None:
    client, _ = sender
    campaign_id = scheduled(console, "无令牌", 600)
    refused = client.post(f"/campaigns/{campaign_id}/pause", data={"csrf_token": "wrong"})
    assert refused.status_code == 403
    assert state_of(console, campaign_id) == CampaignState.SCHEDULED


# --------------------------------------------------------------------------- unknown, resend


def test_unknown_requests_are_explained_and_resent_only_on_purpose(
    console: Console, sender: tuple[httpx.Client, str], viewer: tuple[httpx.Client, str]
) -> None:
    client, token = sender
    sim = console.simulator
    files = contacts(console, "断线", 3, 700)
    planned = workflow.plan_from_files(
        console.settings, files, "会员日全场8折", engine_or_url=console.engine
    )  # fmt: skip (one request)
    created = workflow.create_campaign(console.settings, console.engine, planned, paths=files)
    campaign_id = int(created.campaign_id)
    sim.inject_drop(1)  # the gateway takes the request, the answer never comes
    workflow.send(console.settings, console.engine, campaign_id)
    sim.clear_faults()
    before = len(sim.received())
    page = client.get(f"/campaigns/{campaign_id}", params={"lang": "en"}).text
    assert "Requests with an unknown result" in page
    assert "may or may not have been sent" in page
    assert "They are never sent again by themselves" in page
    assert f"/campaigns/{campaign_id}/resend" in forms(page)
    viewer_page = viewer[0].get(f"/campaigns/{campaign_id}").text
    assert "结果未知的请求" in viewer_page and f"/campaigns/{campaign_id}/resend" not in forms(
        viewer_page
    )
    ask = client.get(f"/campaigns/{campaign_id}/resend")  # the first confirmation
    assert ask.status_code == 200 and "may get the message twice" in ask.text
    assert 'name="understood"' in ask.text and "required" in ask.text
    unticked = post(client, token, f"/campaigns/{campaign_id}/resend", confirm="yes")
    assert unticked.status_code == 422 and "Tick the box first" in unticked.text
    unconfirmed = post(client, token, f"/campaigns/{campaign_id}/resend", understood="yes")
    assert unconfirmed.status_code == 200  # the question again
    time.sleep(0.5)
    assert len(sim.received()) == before, "nothing resent without both confirmations"
    assert workflow_web.campaign_outcomes(console.engine, campaign_id)["unknown"] == 3
    done = post(client, token, f"/campaigns/{campaign_id}/resend", confirm="yes",
                understood="yes")  # fmt: skip
    assert done.status_code == 303
    from campaign.web.resends import resends_of

    resends_of(console.app.state).join(campaign_id, timeout=30)
    assert len(sim.received()) == before + 1, "the unknown request sent again, once"
    assert workflow_web.campaign_outcomes(console.engine, campaign_id)["unknown"] == 0
    entry = audit_entries(console.engine, 1)[0]
    assert entry.action == AuditAction.RESEND and entry.user_name == "sender"
    assert entry.detail == {
        "campaign_id": campaign_id, "state": "finished", "unknown_requests": 1,
        "unknown_recipients": 3, "by": "sender",
    }  # fmt: skip
    said = client.get(f"/campaigns/{campaign_id}").text
    assert "Resending 1 request with an unknown result" in said
    again = post(client, token, f"/campaigns/{campaign_id}/resend", confirm="yes",
                 understood="yes")  # fmt: skip
    assert again.status_code == 409 and "nothing to resend" in again.text
    assert len(sim.received()) == before + 1


# --------------------------------------------------------------------------- downloads


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_downloads_hold_the_rows_of_export(
    console: Console, viewer: tuple[httpx.Client, str], sent: int, lang: str, tmp_path: Path
) -> None:
    client, _ = viewer
    record = get_campaign(console.engine, str(sent))
    for suffix in (".csv", ".xlsx"):
        answer = client.get(f"/campaigns/{sent}/results{suffix}", params={"lang": lang})
        assert answer.status_code == 200, answer.text[:300]
        assert answer.headers["cache-control"] == "no-store"
        assert "attachment" in answer.headers["content-disposition"]
        reference = tmp_path / f"reference{suffix}"
        workflow.export(console.settings, str(sent), reference, lang=lang, engine=console.engine)
        if suffix == ".csv":
            assert answer.headers["content-type"].startswith("text/csv")
            mine = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
            theirs = list(csv.reader(io.StringIO(reference.read_text("utf-8-sig"))))
        else:
            mine = _first_sheet(answer.content)
            theirs = _first_sheet(reference.read_bytes())
        assert mine == theirs and len(mine) == 14  # the header, 12 sent, 1 invalid
    assert download_name(record.name, lang, ".csv").endswith(f"-{lang}.csv")
    assert not any((console.data_dir / "work").rglob("*.*")), "downloads are removed after"


def test_the_lang_of_a_download_leaves_the_page_language_alone(
    viewer: tuple[httpx.Client, str], sent: int
) -> None:
    client, _ = viewer
    for path in (f"/campaigns/{sent}/results.xlsx", f"/campaigns/{sent}/results.csv",
                 f"/api/v1/campaigns/{sent}/results.csv"):  # fmt: skip
        answer = client.get(path, params={"lang": "en"})
        assert answer.status_code == 200, (path, answer.text[:300])
        assert "campaign_lang" not in answer.headers.get("set-cookie", ""), path
        assert "campaign_lang" not in client.cookies
    assert '<html lang="zh-CN">' in client.get("/").text
    switched = client.get("/", params={"lang": "en"})  # a page: the choice is remembered
    assert "campaign_lang=en" in switched.headers["set-cookie"]
    assert '<html lang="en">' in client.get("/").text


def _first_sheet(data: bytes) -> list[list[Any]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        return [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()


def test_a_download_of_no_campaign_or_a_bad_lang(
    viewer: tuple[httpx.Client, str], sent: int
) -> None:
    client, _ = viewer
    assert client.get("/campaigns/99999/results.csv").status_code == 404
    assert client.get(f"/campaigns/{sent}/results.csv", params={"lang": "fr"}).status_code == 400
    assert client.get("/campaigns/99999").status_code == 404


def test_pages_need_a_session(console: Console) -> None:
    with httpx.Client(base_url=console.url, follow_redirects=False) as anonymous:
        for path in ("/", "/campaigns/1", "/campaigns/rows", "/campaigns/1/parts/charts",
                     "/campaigns/1/results.csv"):  # fmt: skip
            answer = anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=")
