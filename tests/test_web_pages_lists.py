"""The console's opt-out list, report import and health pages (web/pages_lists.py), end to
end: a real uvicorn on a loopback port serving `create_app` on a real SQLite store, the
receiver (campaign.receiver) on loopback taking a 退订 reply, the built-in simulator as
the gateway for the balance, httpx signed in through the sign-in form.

What the pages change is checked where it matters: in the next plan of a contact list
(workflow.plan_from_files, as `campaign plan` makes it), the store, the audit log.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from campaign import workflow
from campaign.config import GatewaySettings, ReceiverSettings, Settings
from campaign.outcomes import AuditAction, Role
from campaign.receiver import Receiver
from campaign.store import open_store
from campaign.store.users import audit_entries
from campaign.store.workers import (
    register_process,
    register_worker,
    unregister_process,
    unregister_worker,
)
from campaign.web.pages_lists import mobiles_of
from tests.support.console import Console, csrf_of, running_console, sign_in
from tests.support.plans import accepted_batch

PASSWORD = "correct horse battery"
TEMPLATE = "{姓名}您好，会员日全场8折"
RX_USER, RX_PSWD = "rx-user", "rx-secret"
RECEIVER_CREDENTIALS = {"receiver": RX_USER, "pswd": RX_PSWD}
UPLOAD_LIMIT_MB = 1


@dataclass
class Setup:
    console: Console
    receiver: Receiver
    folder: Path

    @property
    def engine(self) -> Any:
        return self.console.engine


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("lists")
    store_url = f"sqlite:///{folder / 'campaign.db'}"
    engine = open_store(store_url)
    receiving = replace(ReceiverSettings(), receiver=RX_USER, pswd=RX_PSWD)
    with Receiver(Settings(store_url=store_url, receiver=receiving), engine=engine) as rx:
        settings = Settings(
            store_url=store_url,
            gateway=GatewaySettings(url="simulator", timeout=5.0),
            receiver=replace(receiving, host="127.0.0.1", port=rx.port),
        )
        settings = replace(settings, web=replace(settings.web, max_upload_mb=UPLOAD_LIMIT_MB))
        with running_console(settings, data_dir=folder / "web", engine=engine) as console:
            console.add_user("ann", PASSWORD, Role.ADMIN)
            console.add_user("sam", PASSWORD, Role.SENDER)
            console.add_user("vic", PASSWORD, Role.VIEWER)
            yield Setup(console, rx, folder)
    engine.dispose()


@pytest.fixture(scope="module")
def sender(setup: Setup) -> Iterator[httpx.Client]:
    yield from _signed_in(setup, "sam")


@pytest.fixture(scope="module")
def viewer(setup: Setup) -> Iterator[httpx.Client]:
    yield from _signed_in(setup, "vic")


def _signed_in(setup: Setup, name: str) -> Iterator[httpx.Client]:
    with setup.console.client() as client:
        assert sign_in(client, name, PASSWORD).status_code == 303
        client.headers["Accept-Language"] = "en"
        yield client


def token_of(client: httpx.Client) -> str:
    return csrf_of(client.get("/optouts").text)


def post(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": token_of(client), **fields})


def upload(
    client: httpx.Client, path: str, files: list[tuple[str, bytes]], **fields: str
) -> httpx.Response:
    """A multipart POST as a browser sends the page's form: the CSRF token first."""
    parts: list[tuple[str, Any]] = [("csrf_token", (None, token_of(client)))]
    parts += [(key, (None, value)) for key, value in fields.items()]
    parts += [("files", (name, body, "text/csv")) for name, body in files]
    return client.post(path, files=parts)


def contacts(setup: Setup, name: str, mobiles: list[str]) -> Path:
    path = setup.folder / name
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["姓名", "手机号"])
        writer.writerows([f"客户{n}", m] for n, m in enumerate(mobiles))
    return path


def planned_outcomes(setup: Setup, mobiles: list[str], name: str) -> dict[str, int]:
    """The outcome counts of the next plan of a list of these numbers."""
    planned = workflow.plan_from_files(
        setup.console.settings, [contacts(setup, name, mobiles)], TEMPLATE,
        engine_or_url=setup.engine,
    )  # fmt: skip
    outcomes: dict[str, int] = planned.summary["outcomes"]
    return outcomes


def rows_of(html: str) -> list[list[str]]:
    """The cells (tags stripped, whitespace collapsed) of the opt-out table's body rows."""
    table = re.search(r'<table class="optouts">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert table, "no opt-out table"
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(1), re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        rows.append([" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells])
    return rows


def last_audit(setup: Setup, action: AuditAction) -> Any:
    found = [e for e in audit_entries(setup.engine, 200) if e.action == action]
    assert found, f"no {action} in the audit log"
    return found[0]


# --------------------------------------------------------------------------- opt-outs


def test_mobiles_of_takes_any_separator() -> None:
    assert mobiles_of("13800138000\n13800138001, 13800138002；13800138003 ") == [
        "13800138000", "13800138001", "13800138002", "13800138003",
    ]  # fmt: skip
    grouped = "+86 138 0013 8000\r\n139 1234 5678"
    assert mobiles_of(grouped) == ["+86 138 0013 8000", "139 1234 5678"]
    assert mobiles_of("13800138000 13800138001") == ["13800138000", "13800138001"]
    assert mobiles_of(" \n ") == []


def test_an_optout_added_on_the_page_is_suppressed_in_the_next_plan(
    setup: Setup, sender: httpx.Client, viewer: httpx.Client
) -> None:
    numbers = ["13800138101", "13800138102"]
    before = planned_outcomes(setup, [*numbers, "13800138103"], "before.csv")
    assert before["suppressed"] == 0 and before["ready"] == 3
    added = post(sender, "/optouts/add", mobiles=f"{numbers[0]}\n+86 {numbers[1]}", note="电话要求")
    assert added.status_code == 303 and added.headers["location"] == "/optouts"
    page = sender.get("/optouts")
    assert "Added 2 numbers; 0 were on the list already." in page.text
    assert "Added 2" not in sender.get("/optouts").text  # said once
    after = planned_outcomes(setup, [*numbers, "13800138103"], "after.csv")
    assert after["suppressed"] == 2 and after["ready"] == 1
    listed = viewer.get("/optouts", params={"q": "电话"})
    rows = rows_of(listed.text)
    assert sorted(r[0] for r in rows) == ["138****8101", "138****8102"]
    assert all(r[2:5] == ["added by hand", "电话要求", "sam"] for r in rows)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows[0][1])
    assert numbers[0] not in listed.text  # masked, and a viewer gets no remove form
    entry = last_audit(setup, AuditAction.OPTOUT_ADD)
    assert entry.user_name == "sam" and entry.detail["added"] == 2
    assert entry.detail["mobiles"] == [numbers[0], f"+86 {numbers[1]}"]


def test_adding_again_counts_the_numbers_already_listed(setup: Setup, sender: httpx.Client) -> None:
    post(sender, "/optouts/add", mobiles="13800138111")
    again = post(sender, "/optouts/add", mobiles="13800138111 13800138112")
    assert again.status_code == 303
    assert "Added 1 number; 1 was on the list already." in sender.get("/optouts").text


def test_a_bad_number_adds_nothing_and_says_why(setup: Setup, sender: httpx.Client) -> None:
    refused = post(sender, "/optouts/add", mobiles="13800138121 12345", note="x")
    assert refused.status_code == 422
    assert "Nothing was added" in refused.text and "&#39;12345&#39;" in refused.text
    assert ">13800138121 12345</textarea>" in refused.text  # what was typed is kept
    assert planned_outcomes(setup, ["13800138121"], "bad.csv")["suppressed"] == 0
    assert post(sender, "/optouts/add", mobiles=" ").status_code == 422


def test_search_finds_by_a_part_of_the_number(setup: Setup, sender: httpx.Client) -> None:
    post(sender, "/optouts/add", mobiles="13912345678 13987654321")
    found = rows_of(sender.get("/optouts", params={"q": "2345678"}).text)
    assert [r[0] for r in found] == ["139****5678"]
    page = sender.get("/optouts", params={"q": "+86 139 8765"}).text
    assert [r[0] for r in rows_of(page)] == ["139****4321"]
    assert "1 entry matches “+86 139 8765”" in page  # English counts: 1 entry, 2 entries
    page = sender.get("/optouts", params={"q": "139"}).text
    many = len(rows_of(page))
    assert many > 1 and f"{many} entries match “139”" in page
    nothing = sender.get("/optouts", params={"q": "00000000"})
    assert "No entry matches." in nothing.text


def test_remove_asks_first_then_removes(setup: Setup, sender: httpx.Client) -> None:
    number = "13800138131"
    post(sender, "/optouts/add", mobiles=number)
    asked = post(sender, "/optouts/remove", mobiles=number)
    assert asked.status_code == 200
    assert "Remove 1 number from the opt-out list?" in asked.text
    assert rows_of(asked.text)[0][0] == "138****8131"
    assert 'name="confirm" value="yes"' in asked.text
    assert planned_outcomes(setup, [number], "asked.csv")["suppressed"] == 1  # not yet
    fields = dict(re.findall(r'name="(mobiles|confirm)" value="([^"]*)"', asked.text))
    done = post(sender, "/optouts/remove", **fields)
    assert done.status_code == 303
    assert "Removed 1 number; 0 were not on the list." in sender.get("/optouts").text
    after = planned_outcomes(setup, [number], "removed.csv")
    assert (after["suppressed"], after["ready"]) == (0, 1)
    entry = last_audit(setup, AuditAction.OPTOUT_REMOVE)
    assert entry.user_name == "sam" and entry.detail["removed"] == 1


def test_the_row_button_removes_that_number(setup: Setup, sender: httpx.Client) -> None:
    number = "13800138141"
    post(sender, "/optouts/add", mobiles=number)
    page = sender.get("/optouts", params={"q": number})
    form = re.search(r'<form class="inline" method="post" action="/optouts/remove">(.*?)</form>',
                     page.text, re.S)  # fmt: skip
    assert form and f'name="mobiles" value="{number}"' in form.group(1)
    asked = post(sender, "/optouts/remove", mobiles=number)
    assert asked.status_code == 200
    post(sender, "/optouts/remove", mobiles=number, confirm="yes")
    assert "No entry matches." in sender.get("/optouts", params={"q": number}).text


def test_import_of_a_file_adds_its_numbers(setup: Setup, sender: httpx.Client) -> None:
    body = "客户,手机\n甲,13800138151\n乙,not-a-number\n丙,13800138152\n丁,13800138151\n"
    done = upload(sender, "/optouts/import", [("退订名单.csv", body.encode())])
    assert done.status_code == 200, done.text[:500]
    figures = dict(re.findall(r'data-key="(\w+)">(\d+)<', done.text))
    assert figures == {"rows": "4", "added": "2", "already": "0", "repeated": "1",
                       "invalid": "1"}  # fmt: skip
    assert planned_outcomes(setup, ["13800138151", "13800138152"], "imp.csv")["suppressed"] == 2
    rows = {r[0]: r for r in rows_of(sender.get("/optouts", params={"q": "1380013815"}).text)}
    assert rows["138****8151"][2:5] == ["imported from a file", "退订名单.csv row 2", "sam"]
    assert rows["138****8152"][3] == "退订名单.csv row 4"
    entry = last_audit(setup, AuditAction.OPTOUT_IMPORT)
    assert entry.user_name == "sam" and entry.detail["added"] == 2
    assert not any((setup.console.data_dir / "work").iterdir())  # nothing left behind


def test_import_without_a_file_or_of_an_unreadable_one_says_why(
    setup: Setup, sender: httpx.Client
) -> None:
    none = upload(sender, "/optouts/import", [])
    assert none.status_code == 422 and "Choose at least one file." in none.text
    bad = upload(sender, "/optouts/import", [("x.xlsx", b"not a workbook")])
    assert bad.status_code == 422 and "The file could not be imported" in bad.text


def test_imports_over_the_upload_limit_show_their_page_saying_so(
    setup: Setup, sender: httpx.Client
) -> None:
    limit = UPLOAD_LIMIT_MB
    big = b"13800138000\n" * (limit * 1024 * 1024 // 12 + 10)
    for path, form in (("/optouts/import", 'id="optouts-error"'), ("/reports/import", "reports")):
        answer = upload(sender, path, [("big.csv", big)])
        assert answer.status_code == 413, (path, answer.text[:500])
        assert f"an upload may be at most {limit} MB" in answer.text, path
        assert form in answer.text and 'enctype="multipart/form-data"' in answer.text, path
    assert not [p for p in (setup.console.data_dir / "uploads").rglob("*") if p.is_file()]


def test_a_reply_pushed_to_the_receiver_shows_with_its_provenance(
    setup: Setup, viewer: httpx.Client
) -> None:
    number = "13900210061"
    mo = {**RECEIVER_CREDENTIALS, "moTime": "2611251002", "mobile": number, "msg": "退订"}
    assert httpx.post(setup.receiver.mo_url, data=mo, timeout=10).text == "OK"
    rows = rows_of(viewer.get("/optouts", params={"q": number}).text)
    assert len(rows) == 1
    mobile, _when, source, detail, by = rows[0]
    assert (mobile, source, by) == ("139****0061", "opt-out reply", "receiver")
    assert detail == "退订 (2026-11-25T10:02:00+08:00)"
    zh = viewer.get("/optouts", params={"q": number, "lang": "zh"})
    assert rows_of(zh.text)[0][2] == "回复退订"
    viewer.get("/optouts", params={"lang": "en"})


def test_cells_are_escaped(setup: Setup, sender: httpx.Client) -> None:
    post(sender, "/optouts/add", mobiles="13800138161", note='<script>alert("x")</script>')
    page = sender.get("/optouts", params={"q": "13800138161"})
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    searched = sender.get("/optouts", params={"q": '"><img src=x>'})
    assert "<img src=x>" not in searched.text and "&lt;img src=x&gt;" in searched.text


def test_the_list_is_paged(setup: Setup, sender: httpx.Client) -> None:
    numbers = [f"1370000{n:04d}" for n in range(60)]
    post(sender, "/optouts/add", mobiles=" ".join(numbers), note="paged")
    first = sender.get("/optouts", params={"q": "paged"})
    assert len(rows_of(first.text)) == 50 and "Page 1 of 2" in first.text
    link = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert link and "q=paged" in link.group(1)
    second = sender.get(link.group(1).replace("&amp;", "&"))
    assert len(rows_of(second.text)) == 10 and 'rel="prev"' in second.text
    shown = {r[0] for r in rows_of(first.text)} | {r[0] for r in rows_of(second.text)}
    assert len(shown) == 60


def test_the_export_link_gives_the_list_with_provenance(
    setup: Setup, sender: httpx.Client, viewer: httpx.Client
) -> None:
    post(sender, "/optouts/add", mobiles="13800138171", note="export me")
    got = viewer.get("/optouts/export.csv")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert 'filename="optouts.csv"' in got.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows[0] == ["mobile", "added_at", "reason", "detail", "added_by"]
    [row] = [r for r in rows if r[0] == "13800138171"]
    assert row[2:] == ["manual", "export me", "sam"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+08:00", row[1])
    xlsx = viewer.get("/optouts/export.xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


def test_a_viewer_reads_but_may_not_change(setup: Setup, viewer: httpx.Client) -> None:
    page = viewer.get("/optouts")
    assert page.status_code == 200
    assert 'action="/optouts/add"' not in page.text and 'action="/optouts/import"' not in page.text
    assert post(viewer, "/optouts/add", mobiles="13800138181").status_code == 403
    assert post(viewer, "/optouts/remove", mobiles="13800138101").status_code == 403
    assert post(viewer, "/optouts/remove", mobiles="13800138101", confirm="yes").status_code == 403
    assert upload(viewer, "/optouts/import", [("a.csv", b"m\n13800138182\n")]).status_code == 403
    assert viewer.get("/reports/import").status_code == 403
    assert upload(viewer, "/reports/import", [("r.csv", b"msgid\n1\n")]).status_code == 403
    assert planned_outcomes(setup, ["13800138181", "13800138182"], "v.csv")["suppressed"] == 0


def test_changes_need_the_csrf_token_and_a_session(setup: Setup, sender: httpx.Client) -> None:
    bare = sender.post("/optouts/add", data={"mobiles": "13800138191"})
    assert bare.status_code == 403
    with setup.console.client() as anonymous:
        assert anonymous.get("/optouts").status_code == 303
        assert anonymous.get("/health").status_code == 303
    assert planned_outcomes(setup, ["13800138191"], "csrf.csv")["suppressed"] == 0


# --------------------------------------------------------------------------- reports


def test_reports_import_shows_the_counts_of_each_file(setup: Setup, sender: httpx.Client) -> None:
    msgid = "202611251002123456780"
    accepted_batch(setup.engine, msgid, ["13900210071", "13900210072"])
    first = (
        "msgid,mobile,status,reportTime\n"
        f"{msgid},13900210071,DELIVRD,2611251002\n"
        f"{msgid},13900210072,UNDELIV,2611251003\n"
        "12x,13900210073,DELIVRD,2611251002\n"  # malformed: row 4
        "202611251002999999999,13900210074,DELIVRD,2611251002\n"  # no such recipient
    )
    second = f"msgid,mobile,status,reportTime\n{msgid},13900210071,DELIVRD,2611251002\n"
    page = sender.get("/reports/import")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    done = upload(sender, "/reports/import", [("回执1.csv", first.encode()),
                                              ("回执2.csv", second.encode())])  # fmt: skip
    assert done.status_code == 200, done.text[:500]
    table = {
        name: dict(re.findall(r'data-key="(\w+)">(\d+)<', row))
        for name, row in re.findall(r'<tr data-file="([^"]+)">(.*?)</tr>', done.text, re.S)
    }
    assert table == {
        "回执1.csv": {"imported": "3", "repeated": "0", "malformed": "1", "unmatched": "1"},
        "回执2.csv": {"imported": "0", "repeated": "1", "malformed": "0", "unmatched": "0"},
    }
    assert "Row 4" in done.text
    entry = last_audit(setup, AuditAction.REPORTS_IMPORT)
    assert entry.user_name == "sam" and len(entry.detail["files"]) == 2
    again = upload(sender, "/reports/import", [("回执1.csv", first.encode())])
    assert dict(re.findall(r'data-key="(\w+)">(\d+)<', again.text)) == {
        "imported": "0", "repeated": "3", "malformed": "1", "unmatched": "1",
    }  # fmt: skip
    none = upload(sender, "/reports/import", [])
    assert none.status_code == 422 and "Choose at least one report file." in none.text


# --------------------------------------------------------------------------- health


def test_health_shows_balance_workers_receiver_and_store(
    setup: Setup, viewer: httpx.Client
) -> None:
    campaign_id = accepted_batch(setup.engine, "202611251002123456781", ["13900210081"])
    process = register_process(setup.engine)
    worker = register_worker(setup.engine, campaign_id)
    try:
        page = viewer.get("/health")
    finally:
        unregister_worker(setup.engine, worker)
        unregister_process(setup.engine, process)
    assert page.status_code == 200
    balance = re.search(r'<table class="figures" id="balance">(.*?)</table>', page.text, re.S)
    assert balance, page.text[:2000]
    products = re.findall(r'<tr data-product="([^"]+)">\s*<th scope="row">[^<]*</th>\s*'
                          r'<td class="num">(\d+)</td>', balance.group(1))  # fmt: skip
    assert products and all(int(left) > 0 for _, left in products)
    assert "This console runs no worker (--no-worker)." in page.text
    processes = re.search(r'<table id="processes">(.*?)</table>', page.text, re.S)
    assert processes and "campaign worker processes alive: 1" in processes.group(1)
    workers = re.search(r'<table id="campaign-workers">(.*?)</table>', page.text, re.S)
    assert workers and f'data-campaign="{campaign_id}"' in workers.group(1)
    assert re.search(r'data-answers="yes"', page.text)
    assert f"http://127.0.0.1:{setup.receiver.port}" in page.text
    assert re.search(r'data-schema="\d+"', page.text)
    assert RECEIVER_CREDENTIALS["pswd"] not in page.text
    later = viewer.get("/health")
    assert "No campaign worker process is alive." in later.text
    assert "No campaign is being sent now." in later.text


def test_health_says_why_when_the_gateway_and_receiver_do_not_answer(tmp_path: Path) -> None:
    from campaign.receiver import listen

    closed = listen("127.0.0.1", 0)  # a port nobody answers on (bound, never served)
    port = int(closed.getsockname()[1])
    closed.close()
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'campaign.db'}",
        gateway=GatewaySettings(
            url=f"http://127.0.0.1:{port}/msg", account="acct", password="gw-secret-9",
            timeout=2.0,
        ),
        receiver=replace(ReceiverSettings(), port=port),
    )  # fmt: skip
    with running_console(settings, data_dir=tmp_path / "web") as console:
        console.add_user("vic", PASSWORD, Role.VIEWER)
        with console.client() as client:
            sign_in(client, "vic", PASSWORD)
            page = client.get("/health", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    note = re.search(r'<p class="notice" role="status" id="balance-note">(.*?)</p>', page.text,
                     re.S)  # fmt: skip
    assert note and "The balance cannot be had now:" in note.group(1)
    assert "cannot reach the gateway" in note.group(1)
    assert "gw-secret-9" not in page.text
    assert 'data-answers="no"' in page.text
