"""The console's new-campaign pages (campaign/web/pages_new.py), end to end: a real uvicorn
on a loopback port serving `create_app` (its in-process worker sending the queued
campaigns), the built-in simulator as the gateway (its log is the truth of what was
sent), a real SQLite store, and httpx signed in through the login form (CSRF token and
all), as a browser without JavaScript would use the pages.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import time as dt_time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from typer.testing import CliRunner

from campaign.cli import app as cli
from campaign.config import ComplianceSettings, GatewaySettings, SendWindow, Settings
from campaign.outcomes import AuditAction, Role
from campaign.store.users import audit_entries
from campaign.timeutil import china_now
from tests.support.console import Console, csrf_of, running_console, sign_in
from tests.support.simulator import running_simulator

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"
MARKETING = ROOT / "templates" / "marketing.txt"
UPLOAD_LIMIT_MB = 1
runner = CliRunner()


@contextmanager
def console_of(
    tmp_path: Path, *, gateway_url: str | None = None, **compliance: Any
) -> Iterator[Console]:
    """The console on a fresh SQLite store with the simulator as its gateway, its worker
    running; users ann (sender), vic (viewer), bob (sender)."""
    with running_simulator() as sim:
        gateway = GatewaySettings(
            url=gateway_url or sim.url, account=sim.account, password=sim.password,
            timeout=5.0, rate=0,
        )  # fmt: skip
        settings = Settings(
            gateway=gateway,
            compliance=ComplianceSettings(**compliance),
            store_url=f"sqlite:///{tmp_path / 'campaign.db'}",
        )
        settings = replace(settings, web=replace(settings.web, max_upload_mb=UPLOAD_LIMIT_MB))
        with running_console(settings, data_dir=tmp_path / "web", run_worker=True) as console:
            console.add_user("ann", "pw-ann", Role.SENDER)
            console.add_user("bob", "pw-bob", Role.SENDER)
            console.add_user("vic", "pw-vic", Role.VIEWER)
            console.sim = sim  # type: ignore[attr-defined]
            yield console


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One console for the tests that need no settings of their own (each uses its own
    numbers and names: the store, the simulator and the worker are shared)."""
    with console_of(tmp_path_factory.mktemp("console")) as running:
        yield running


class Browser:
    """A signed-in user of the pages (no JavaScript): forms posted as a browser posts them."""

    def __init__(self, console: Console, name: str) -> None:
        self.console = console
        self.http = console.client()
        assert sign_in(self.http, name, f"pw-{name}").status_code == 303
        self.token = csrf_of(self.http.get("/new" if name != "vic" else "/").text)

    def close(self) -> None:
        self.http.close()

    def upload(self, *files: Path | tuple[str, bytes]) -> httpx.Response:
        parts = []
        for item in files:
            name, body = (item.name, item.read_bytes()) if isinstance(item, Path) else item
            parts.append(("files", (name, body, "application/octet-stream")))
        return self.http.post("/new", data={"csrf_token": self.token}, files=parts)

    def post(self, path: str, **fields: str) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": self.token, **fields})

    def plan(self, *files: Path | tuple[str, bytes], template: str) -> str:
        """Upload, write the template: the plan_id (its preview is next)."""
        answer = self.upload(*files)
        assert answer.status_code == 303, answer.text[:2000]
        location = answer.headers["location"]
        assert re.fullmatch(r"/new/[\w-]+/template", location), location
        plan_id = location.split("/")[2]
        answer = self.post(f"/new/{plan_id}/template", template=template)
        assert answer.status_code == 303, answer.text[:2000]
        assert answer.headers["location"] == f"/new/{plan_id}/preview"
        return plan_id

    def preview(self, plan_id: str, **params: str) -> str:
        answer = self.http.get(f"/new/{plan_id}/preview", params=params)
        assert answer.status_code == 200, answer.text[:2000]
        return answer.text

    def confirm(self, plan_id: str, **params: str) -> httpx.Response:
        revision = re.search(r'name="revision" value="(\d+)"', self.preview(plan_id))
        assert revision is not None
        return self.http.get(
            f"/new/{plan_id}/confirm",
            params={"revision": revision.group(1), "when": "now", "name": "", **params},
        )

    def send_form(self, page: str) -> dict[str, str]:
        """The hidden fields of the confirmation's send form."""
        form = page[page.index('action="/new/') :]
        return dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.split("</form>")[0]))


@contextmanager
def browser(console: Console, name: str = "ann") -> Iterator[Browser]:
    user = Browser(console, name)
    try:
        yield user
    finally:
        user.close()


def cli_plan(console: Console, *args: str) -> dict[str, Any]:
    result = runner.invoke(cli, ["plan", *args, "--json", "--db", console.settings.store_url])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def figures_of(page: str) -> dict[str, Any]:
    """The counts a preview page shows (data-outcome / data-figure cells)."""
    outcomes = {k: int(v) for k, v in re.findall(r'data-outcome="(\w+)">(\d+)<', page)}
    figures = {k: int(v) for k, v in re.findall(r'data-figure="(\w+)">(\d+)<', page)}
    return {"outcomes": outcomes, **figures}


def write_list(path: Path, mobiles: list[str], extra: list[list[str]] = ()) -> Path:  # type: ignore[assignment]
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["姓名", "手机号码"])
        out.writerows([f"客户{i}", m] for i, m in enumerate(mobiles))
        out.writerows(extra)
    return path


def mobiles(first: int, count: int) -> list[str]:
    return [f"139{first + i:08d}" for i in range(count)]


def taken(sim: Any) -> Counter[str]:
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def wait_finished(console: Console, campaign_id: int, timeout: float = 60) -> None:
    from campaign.workflow_web import campaign_brief

    deadline = time.monotonic() + timeout
    while campaign_brief(console.engine, campaign_id)["state"] != "finished":
        assert time.monotonic() < deadline, campaign_brief(console.engine, campaign_id)
        time.sleep(0.2)


def files_in(console: Console) -> set[Path]:
    return {p for p in console.data_dir.rglob("*") if p.is_file()}


def campaigns(console: Console) -> list[int]:
    from campaign.workflow_web import campaign_rows

    return [c["campaign_id"] for c in campaign_rows(console.engine)["campaigns"]]


# --------------------------------------------------------------------------- access


def test_only_senders_reach_the_pages(console: Console) -> None:
    with console.client() as anonymous:
        answer = anonymous.get("/new")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    with browser(console, "vic") as viewer:
        for path in ("/new", "/new/x/map", "/new/x/template", "/new/x/preview",
                     "/new/x/confirm", "/new/x/preview.xlsx"):  # fmt: skip
            assert viewer.http.get(path).status_code == 403, path
        for path in ("/new", "/new/x/map", "/new/x/template", "/new/x/sample", "/new/x/send"):
            assert viewer.post(path).status_code == 403, path
        got = viewer.upload(SAMPLES / "contacts.csv")
        assert got.status_code == 403
    with browser(console) as ann:
        page = ann.http.get("/new")
        assert page.status_code == 200
        assert 'type="file"' in page.text and 'name="files"' in page.text
        assert page.text.index('name="csrf_token"') < page.text.index('name="files"')
        assert ann.http.get("/new/nope/preview").status_code == 404


def test_a_plan_is_its_makers_own(console: Console) -> None:
    before = campaigns(console)
    with browser(console) as ann, browser(console, "bob") as bob:
        plan_id = ann.plan(SAMPLES / "contacts.csv", template="{姓名}您好")
        for path in ("template", "preview", "map", "preview.xlsx"):
            assert bob.http.get(f"/new/{plan_id}/{path}").status_code == 404, path
        assert bob.post(f"/new/{plan_id}/send", revision="2").status_code == 404
    assert campaigns(console) == before


# --------------------------------------------------------------------------- preview


def test_the_preview_counts_are_those_of_the_plan_command(console: Console) -> None:
    files = [SAMPLES / "contacts.xlsx", SAMPLES / "contacts.csv"]
    template = MARKETING.read_text(encoding="utf-8")
    with browser(console) as ann:
        plan_id = ann.plan(*files, template=template)
        page = ann.preview(plan_id)
        download = ann.http.get(f"/new/{plan_id}/preview.xlsx")
    expected = cli_plan(console, *map(str, files), "-t", str(MARKETING))
    shown = figures_of(page)
    assert shown["outcomes"] == expected["outcomes"]
    for key in ("rows", "recipients", "requests", "segments", "blank_rows"):
        assert shown[key] == expected[key], key
    for each in expected["files"]:
        assert f'<td>{each["source"]}</td><td class="num">{each["rows"]}</td>' in page
    assert html.escape(expected["sample"]["text"], quote=False) in page
    assert download.status_code == 200 and download.content[:2] == b"PK"
    assert "attachment" in download.headers["content-disposition"]
    plans = [e for e in audit_entries(console.engine) if e.action == AuditAction.PLAN]
    mine = [e.detail["why"] for e in reversed(plans) if e.detail["plan_id"] == plan_id]
    assert mine == ["upload", "template"]
    assert any(e.action == AuditAction.UPLOAD for e in audit_entries(console.engine))


def test_the_sample_re_renders_for_a_new_template(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("抵现\n", encoding="utf-8")
    with (
        console_of(
            tmp_path, signature="【品牌】", optout_text="回T退订", sensitive_words=words
        ) as console,
        browser(console) as ann,
    ):
        answer = ann.upload(SAMPLES / "contacts.xlsx")
        plan_id = answer.headers["location"].split("/")[2]
        editor = ann.http.get(f"/new/{plan_id}/template").text
        for column in ("姓名", "手机号码", "城市", "会员等级", "积分"):
            assert f'<li data-insert="{{{column}}}"><code>{{{column}}}</code></li>' in editor
        assert 'hx-trigger="input changed delay:300ms"' in editor
        assert 'hx-target="#sample-body"' in editor and 'aria-live="polite"' in editor
        assert f'hx-post="/new/{plan_id}/sample"' in editor

        first = ann.post(f"/new/{plan_id}/sample", template="{姓名|会员}您好，春季会员日")
        assert first.status_code == 200 and "<html" not in first.text
        assert "示例短信" not in first.text  # the inside of the live region only
        assert "【品牌】肖杰您好，春季会员日回T退订" in first.text  # as the send would add them
        assert "【品牌】" in first.text and "回T退订" in first.text

        longer = "{姓名|会员}您好，" + "春季会员日全场八折，" * 8
        second = ann.post(f"/new/{plan_id}/sample", template=longer)
        assert "【品牌】肖杰您好，春季会员日全场八折" in second.text
        assert second.text != first.text
        assert re.search(r"data-segments>2<", second.text)  # 98 characters: 2 billed parts

        hit = ann.post(f"/new/{plan_id}/sample", template="{姓名}您好，积分可抵现").text
        assert "抵现" in hit and 'class="warn"' in hit

        bad = ann.post(f"/new/{plan_id}/sample", template="{没有这列}您好").text
        assert "没有这列" in bad and 'class="error"' in bad

        refused = ann.post(f"/new/{plan_id}/template", template="{没有这列}您好")
        assert refused.status_code == 422 and "没有这列" in refused.text


def test_the_problem_rows_filter_by_outcome_and_page(console: Console, tmp_path: Path) -> None:
    good = mobiles(0, 20)
    bad = [[f"坏{i}", f"12{i:05d}"] for i in range(120)]  # invalid: too short
    twice = [[f"又{i}", good[i]] for i in range(15)]  # duplicates of the first rows
    path = write_list(tmp_path / "list.csv", good, bad + twice)
    with browser(console) as ann:
        plan_id = ann.plan(path, template="{姓名}您好")
        page = ann.preview(plan_id)
        assert figures_of(page)["outcomes"]["invalid"] == 120
        assert figures_of(page)["outcomes"]["duplicate"] == 15
        assert page.count('<tr data-outcome="invalid">') == 50  # the first page, all kinds
        assert "good[0]" not in page and good[0] not in page  # mobiles masked
        assert f"{good[0][:3]}****{good[0][-4:]}" in page

        def shown(**params: str) -> list[str]:
            answer = ann.http.get(
                f"/new/{plan_id}/preview", params=params,
                headers={"HX-Request": "true", "HX-Target": "problems"},
            )  # fmt: skip
            assert answer.status_code == 200
            assert answer.text.lstrip().startswith('<section id="problems"')
            return re.findall(r'<tr data-outcome="(\w+)">', answer.text)

        assert shown(outcome="duplicate") == ["duplicate"] * 15
        assert shown(outcome="invalid") == ["invalid"] * 50
        assert shown(outcome="invalid", page="3") == ["invalid"] * 20
        assert shown(outcome="invalid", page="99") == ["invalid"] * 20  # the last page
        assert shown(page="3") == ["invalid"] * 20 + ["duplicate"] * 15
        assert len(shown(outcome="nonsense")) == 50  # an unknown outcome: all of them
        third = ann.preview(plan_id, outcome="invalid", page="3")
        assert "<html" in third and "第 101–120 行，共 120 行" in third


def test_a_gateway_that_does_not_answer_is_a_note_on_the_preview(tmp_path: Path) -> None:
    from tests.support.simulator import free_port

    closed = f"http://127.0.0.1:{free_port()}/msg"
    with console_of(tmp_path, gateway_url=closed) as console, browser(console) as ann:
        plan_id = ann.plan(SAMPLES / "contacts.csv", template="{姓名}您好")
        page = ann.preview(plan_id)
        assert "暂时无法查询余额" in page and 'data-figure="segments"' in page


# --------------------------------------------------------------------------- map


def _workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_a_workbook_of_two_sheets_leads_to_the_map_step(console: Console, tmp_path: Path) -> None:
    vip = [["姓名", "手机号"], *([f"客户{i}", m] for i, m in enumerate(mobiles(0, 12)))]
    staff = [["员工", "电话"], *([f"员工{i}", m] for i, m in enumerate(mobiles(500, 5)))]
    book = _workbook(tmp_path / "名单.xlsx", {"VIP客户": vip, "内部员工": staff})
    with browser(console) as ann:
        answer = ann.upload(book)
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location.endswith("/map"), location
        plan_id = location.split("/")[2]
        page = ann.http.get(location).text
        assert "VIP客户" in page and "内部员工" in page and "名单.xlsx" in page
        assert '<option value="VIP客户">' in page and "手机号" in page

        tried = ann.post(location, action="show", sheet="VIP客户", header_row="", mobile_column="")
        assert tried.status_code == 200 and "未读取：已选择其他工作表。" in tried.text
        bad = ann.post(location, action="apply", sheet="", header_row="x", mobile_column="")
        assert bad.status_code == 422

        applied = ann.post(location, action="apply", sheet="VIP客户", header_row="",
                           mobile_column="")  # fmt: skip
        assert applied.status_code == 303
        assert applied.headers["location"] == f"/new/{plan_id}/template"
        ann.post(f"/new/{plan_id}/template", template="{姓名}您好")
        shown = figures_of(ann.preview(plan_id))
    expected = cli_plan(console, str(book), "--sheet", "VIP客户", "--text", "{姓名}您好")
    assert shown["outcomes"] == expected["outcomes"] and shown["rows"] == 12


def test_a_file_without_a_mobile_column_is_mapped_by_hand(console: Console) -> None:
    body = "客户,联系\n" + "".join(f"客户{i},x{m}\n" for i, m in enumerate(mobiles(0, 5)))
    with browser(console) as ann:
        answer = ann.upload(("名单.csv", body.encode()))
        assert answer.status_code == 303 and answer.headers["location"].endswith("/map")
        location = answer.headers["location"]
        page = ann.http.get(location)
        assert page.status_code == 200
        assert "名单.csv" in page.text and '<option value="联系">' in page.text
        assert str(console.data_dir) not in page.text  # no folder of the console
        assert ann.http.get(location.replace("/map", "/preview")).status_code == 404
        applied = ann.post(location, action="apply", sheet="", header_row="1",
                           mobile_column="联系")  # fmt: skip
        assert applied.status_code == 303, applied.text[:2000]
        plan_id = applied.headers["location"].split("/")[2]
        ann.post(f"/new/{plan_id}/template", template="{客户}您好")
        assert figures_of(ann.preview(plan_id))["outcomes"]["invalid"] == 5  # "x139...": bad
    assert not list((console.data_dir / "drafts").rglob("名单.csv"))  # it became a plan


def test_the_map_step_masks_mobile_numbers(console: Console, tmp_path: Path) -> None:
    numbers = mobiles(7100, 3)
    spare = "+86 139-7100-9999"  # another column, a mobile all the same
    path = write_list(tmp_path / "masked.csv", numbers, [["客户x", "13971000003", spare]])
    with browser(console) as ann:
        answer = ann.upload(path)
        assert answer.status_code == 303, answer.text[:1000]
        location = answer.headers["location"].replace("/template", "/map")
        page = ann.http.get(location).text
        for number in [*numbers, "13971000003"]:
            assert number not in page and f"{number[:3]}****{number[-4:]}" in page, number
        assert spare not in page and "+86****9999" in page
        assert "手机号码" in page and "客户0" in page  # the header and other cells as they are
        shown = ann.post(location, action="show", sheet="", header_row="", mobile_column="姓名")
        assert shown.status_code == 200
        assert "客户0" not in shown.text and "手机号码" in shown.text  # the column now chosen
        assert not any(number in shown.text for number in numbers)


def test_a_file_nothing_can_read_is_refused_on_the_upload_page(console: Console) -> None:
    before = files_in(console)
    with browser(console) as ann:
        answer = ann.upload(("名单.pdf", b"%PDF-1.4 not a list"))
        assert answer.status_code == 422
        assert "名单.pdf" in answer.text and str(console.data_dir) not in answer.text
    assert files_in(console) == before


# --------------------------------------------------------------------------- send


def test_confirming_twice_gives_one_campaign_sent_once(console: Console, tmp_path: Path) -> None:
    numbers = mobiles(1000, 30)
    path = write_list(tmp_path / "spring.csv", numbers)
    sim = console.sim  # type: ignore[attr-defined]
    before = campaigns(console)
    with browser(console) as ann:
        plan_id = ann.plan(path, template="{姓名}您好，春季会员日")
        page = ann.confirm(plan_id, name="spring")
        assert page.status_code == 200 and "将向 30 位收件人发送短信。" in page.text
        fields = ann.send_form(page.text)
        assert set(fields) == {"csrf_token", "revision", "name", "send_at"}

        answers: list[httpx.Response] = []

        def click() -> None:
            with console.client(cookies=ann.http.cookies) as again:
                answers.append(again.post(f"/new/{plan_id}/send", data=fields))

        clicks = [threading.Thread(target=click) for _ in range(3)]
        for thread in clicks:
            thread.start()
        for thread in clicks:
            thread.join()
        later = ann.http.post(f"/new/{plan_id}/send", data=fields)  # back, and submit again
        past = {**fields, "send_at": "2000-01-01T10:00"}  # a time passed since: no matter
        late = ann.http.post(f"/new/{plan_id}/send", data=past)
        locations = {a.headers.get("location") for a in [*answers, later, late]}
        assert [a.status_code for a in [*answers, later, late]] == [303] * 5
        assert len(locations) == 1
        campaign_id = int(locations.pop().rsplit("/", 1)[-1])
        assert campaigns(console) == [*before, campaign_id]
        wait_finished(console, campaign_id)
        assert {m: n for m, n in taken(sim).items() if m in numbers} == dict.fromkeys(numbers, 1)
        sends = [
            e for e in audit_entries(console.engine)
            if e.action == AuditAction.SEND and e.detail["plan_id"] == plan_id
        ]  # fmt: skip
        assert len(sends) == 1 and sends[0].detail["campaign_id"] == campaign_id
        assert sends[0].user_name == "ann" and sends[0].detail["recipients"] == 30
        assert ann.http.get(f"/new/{plan_id}/template").status_code == 409  # sent: no edits

        # the same list again: refused, naming that campaign, until sent again on purpose
        second = ann.plan(path, template="{姓名}您好，春季会员日")
        page = ann.confirm(second)
        refused = ann.http.post(f"/new/{second}/send", data=ann.send_form(page.text))
        assert refused.status_code == 409
        assert f'href="/campaigns/{campaign_id}"' in refused.text and "spring" in refused.text
        assert 'name="again" value="1"' in refused.text and "data-confirm=" in refused.text
        assert campaigns(console) == [*before, campaign_id]
        again = ann.http.post(
            f"/new/{second}/send", data={**ann.send_form(page.text), "again": "1", "sure": "1"}
        )
        assert again.status_code == 303
        assert again.headers["location"] != f"/campaigns/{campaign_id}"
        assert len(campaigns(console)) == len(before) + 2


def test_a_taken_name_is_refused_without_send_again(console: Console, tmp_path: Path) -> None:
    with browser(console) as ann:
        first = ann.plan(write_list(tmp_path / "a.csv", mobiles(2000, 3)), template="{姓名}您好")
        page = ann.confirm(first, name="summer")
        assert ann.http.post(f"/new/{first}/send", data=ann.send_form(page.text)).status_code == 303
        other = ann.plan(write_list(tmp_path / "b.csv", mobiles(2100, 3)), template="{姓名}您好")
        page = ann.confirm(other, name="summer")
        refused = ann.http.post(f"/new/{other}/send", data=ann.send_form(page.text))
        assert refused.status_code == 409 and "换一个名称" in refused.text
        assert 'name="again"' not in refused.text


def test_a_time_is_checked_like_send_at(tmp_path: Path) -> None:
    with console_of(tmp_path, send_window=SendWindow(dt_time(8, 0), dt_time(21, 0))) as console:
        path = write_list(tmp_path / "later.csv", mobiles(0, 4))
        with browser(console) as ann:
            plan_id = ann.plan(path, template="{姓名}您好")
            past = (china_now() - timedelta(days=1)).strftime("%Y-%m-%dT10:00")
            answer = ann.confirm(plan_id, when="at", send_at=past)
            assert answer.status_code == 422 and "is in the past" in answer.text
            night = (china_now() + timedelta(days=1)).strftime("%Y-%m-%dT23:30")
            answer = ann.confirm(plan_id, when="at", send_at=night)
            assert answer.status_code == 422 and "outside the send window" in answer.text
            answer = ann.confirm(plan_id, when="at", send_at="soon")
            assert answer.status_code == 422
            due = (china_now() + timedelta(days=1)).strftime("%Y-%m-%dT10:00")
            answer = ann.confirm(plan_id, when="at", send_at=due)
            assert answer.status_code == 200 and due.replace("T", " ") in answer.text
            sent = ann.http.post(f"/new/{plan_id}/send", data=ann.send_form(answer.text))
            assert sent.status_code == 303
        from campaign.workflow_web import campaign_brief

        campaign_id = int(sent.headers["location"].rsplit("/", 1)[-1])
        assert campaign_brief(console.engine, campaign_id)["state"] == "scheduled"


def test_a_stale_confirmation_is_refused(console: Console, tmp_path: Path) -> None:
    path = write_list(tmp_path / "a.csv", mobiles(3000, 3))
    before = campaigns(console)
    with browser(console) as ann:
        plan_id = ann.plan(path, template="{姓名}您好")
        page = ann.confirm(plan_id)
        ann.post(f"/new/{plan_id}/template", template="{姓名}您好！")  # edited in another tab
        stale = ann.http.post(f"/new/{plan_id}/send", data=ann.send_form(page.text))
        assert stale.status_code == 409
    assert campaigns(console) == before


# --------------------------------------------------------------------------- hostile input


def test_an_upload_over_the_limit_shows_the_upload_page_saying_so(console: Console) -> None:
    big = b"mobile\n" + b"13800138000\n" * (UPLOAD_LIMIT_MB * 1024 * 1024 // 12 + 10)
    with browser(console) as ann:
        answer = ann.upload(("big.csv", big))  # no language asked for: Chinese
        assert answer.status_code == 413
        assert f"一次上传合计不能超过 {UPLOAD_LIMIT_MB} MB" in answer.text
        assert 'class="new-upload"' in answer.text and 'id="upload-error"' in answer.text
        ann.http.cookies.set("campaign_lang", "en")
        answer = ann.upload(("big.csv", big))
        assert answer.status_code == 413
        assert f"an upload may be at most {UPLOAD_LIMIT_MB} MB" in answer.text
        assert 'class="new-upload"' in answer.text  # the form again: the way back
        parts = [("files", ("big.csv", big, "text/csv"))]
        fragment = ann.http.post(
            "/new", data={"csrf_token": ann.token}, files=parts, headers={"HX-Request": "true"}
        )
        assert fragment.status_code == 413 and "<html" not in fragment.text
        assert f"at most {UPLOAD_LIMIT_MB} MB" in fragment.text and 'role="alert"' in fragment.text
        api = ann.http.post("/api/v1/plans", data={"csrf_token": ann.token}, files=parts)
        assert api.status_code == 413 and "error" in api.json()


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(console: Console) -> None:
    big = b"mobile\n" + b"13800138000\n" * (UPLOAD_LIMIT_MB * 1024 * 1024 // 12 + 10)
    before = files_in(console)
    with browser(console) as ann:
        answer = ann.upload(("big.csv", big))
        assert answer.status_code == 413
    assert files_in(console) == before


def test_a_file_name_with_quotes_shows_as_given(console: Console, tmp_path: Path) -> None:
    name = '春季"VIP"名单.csv'  # sent as 春季%22VIP%22名单.csv, as browsers send it
    body = write_list(tmp_path / "q.csv", mobiles(7200, 2)).read_bytes()
    with browser(console) as ann:
        answer = ann.upload((name, body))
        assert answer.status_code == 303, answer.text[:1000]
        plan_id = answer.headers["location"].split("/")[2]
        for path in ("template", "map"):
            page = ann.http.get(f"/new/{plan_id}/{path}").text
            assert "春季&#34;VIP&#34;名单.csv" in page and "%22" not in page, path
    entry = console.app.state.plans.get(plan_id, "ann")
    assert entry.uploaded_names == (name,)


def test_names_and_cells_show_as_text(console: Console, tmp_path: Path) -> None:
    name = "<script>x.csv"
    hostile = '"><img src=x onerror=alert(1)>'
    rows = [["姓名", "手机号码"], [hostile, "13900000001"], ["{{7*7}}", "13900000002"]]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([*rows, ["", "12345"]])
    body = buffer.getvalue()
    with browser(console) as ann:
        answer = ann.upload((name, body.encode()))
        assert answer.status_code == 303, answer.text[:1000]
        plan_id = answer.headers["location"].split("/")[2]
        editor = ann.http.get(f"/new/{plan_id}/template").text
        assert "&lt;script&gt;x.csv" in editor and "<script>x" not in editor
        sample = ann.post(f"/new/{plan_id}/sample", template="{姓名}您好").text
        assert "&lt;img src=x onerror=alert(1)&gt;" in sample and "<img" not in sample
        assert "{{7*7}}您好" in sample and "49您好" not in sample
        ann.post(f"/new/{plan_id}/template", template="{姓名}您好")
        page = ann.preview(plan_id)
        assert "&lt;script&gt;x.csv" in page and "<script>x" not in page
        assert "<img" not in page
        mapped = ann.http.get(f"/new/{plan_id}/map").text
        assert "&lt;script&gt;x.csv" in mapped and "<img" not in mapped
