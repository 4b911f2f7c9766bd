"""Issue 15, real-browser tests 2-5: a marketer's whole job in the browser, against the
simulator and the receiver on loopback, with the console's own worker sending.

2. upload sample_data/ -> the counts on screen are `campaign plan --json`'s; the template's
   sample re-renders as it is edited; send; progress reaches the end and delivered counts
   rise without a reload; the downloaded xlsx has the rows of `campaign export`.
3. a dropped connection: the `unknown` request is shown as not resent; it is resent only
   after a second confirmation (the box ticked).
4. the tab closed mid-send: the send goes on; a double-click on confirm, or going back and
   confirming again, makes exactly one campaign.
5. an opt-out added in the console is `suppressed` in the next preview; a 退订 reply
   pushed to /mo shows in the opt-out list.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.flow import (
    add_optout,
    campaign_id_of,
    cli_export,
    cli_plan,
    confirm_button,
    figures_on,
    optout_rows,
    preview_figures,
    sample_texts,
    sheet_rows,
    tab_to,
    to_confirm,
    to_preview,
    upload,
    upload_and_preview,
    write_template,
)
from tests.browser.kit import ROOT, SIGN_IN_PATH, Console, mobile, path_of, screenshot, write_csv

SAMPLES = [ROOT / "sample_data" / "contacts.xlsx", ROOT / "sample_data" / "contacts.csv"]
MARKETING = (ROOT / "templates" / "marketing.txt").read_text(encoding="utf-8").strip()
TIMEOUT = 60.0  # seconds for a send and its reports on a loaded 2-core machine


def campaign_count(console: Console) -> int:
    from campaign import workflow

    return len(workflow.campaign_list(console.engine).to_json()["campaigns"])


def store_outcomes(console: Console, campaign_id: int) -> dict[str, int]:
    from campaign import workflow

    return dict(workflow.campaign_status(console.engine, str(campaign_id)).to_json()["outcomes"])


def watch(page: Any, until: Any, timeout: float = TIMEOUT) -> list[dict[str, int]]:
    """The campaign page's figures every 0.2 s until `until(figures)`: all that was seen."""
    seen: list[dict[str, int]] = []
    deadline = time.monotonic() + timeout
    while True:
        seen.append(figures_on(page))
        if until(seen[-1]):
            return seen
        assert time.monotonic() < deadline, f"the page stopped at {seen[-1]}"
        page.wait_for_timeout(200)


def main_frame_navigations(page: Any) -> list[str]:
    found: list[str] = []
    page.on("framenavigated", lambda f: found.append(f.url) if f == page.main_frame else None)
    return found


def few_rows(first: int, count: int, name: str = "客户") -> list[dict[str, str]]:
    return [{"姓名": f"{name}{n}", "手机号": mobile(first + n)} for n in range(count)]


# --------------------------------------------------------------------------- 2


def test_upload_plan_send_progress_reports_and_download(
    new_page: Any, signed_in: Any, console: Console, tmp_path: Path
) -> None:
    console.simulator.configure(report_delay=1.5)  # reports come in after the sending
    page = signed_in(new_page("en"), "sender")
    with page.expect_navigation():
        page.locator("#main").get_by_role("link", name="New campaign").click()
    screenshot(page, "new")
    plan_id = upload(page, SAMPLES)

    write_template(page, "{姓名}您好")
    page.locator("#sample td.message").first.filter(has_text="您好").wait_for()
    first = sample_texts(page)
    write_template(page, MARKETING)
    page.locator("#sample td.message").first.filter(has_text="积分").wait_for()
    rendered = [text for text in sample_texts(page) if text]  # an invalid row has no text
    assert sample_texts(page) != first and all("积分" in text for text in rendered)
    screenshot(page, "new_template")

    to_preview(page, plan_id)
    screenshot(page, "new_preview")
    expected = cli_plan(console, SAMPLES, MARKETING)
    shown = preview_figures(page)
    assert shown["outcomes"] == expected["outcomes"]
    for key in ("rows", "recipients", "requests", "segments"):
        assert shown[key] == expected[key], key

    to_confirm(page, plan_id)
    screenshot(page, "new_confirm")
    assert str(expected["recipients"]) in page.locator("#confirm-recipients").inner_text()
    with page.expect_navigation():
        confirm_button(page).click()
    campaign_id = campaign_id_of(page)
    reloads = main_frame_navigations(page)

    total = expected["recipients"]
    sending = watch(page, lambda f: f["sent"] == total and f["state"] == "finished")
    assert console.simulator.wait_reports_pushed(TIMEOUT)
    final = store_outcomes(console, campaign_id)
    assert final.get("delivered", 0) > 0
    # the reports come 0.2 s after each request: the page showed fewer delivered while
    # it watched the send (at its start at least), then all of them, without a reload
    seen = sending + watch(page, lambda f: f.get("delivered", 0) == final["delivered"])
    assert min(f.get("delivered", 0) for f in seen) < final["delivered"], "no rise was seen"
    assert reloads == [], "the page was reloaded"
    screenshot(page, "campaign_sent")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download results (xlsx, English)").click()
    downloaded = tmp_path / "downloaded.xlsx"
    download.value.save_as(downloaded)
    exported = cli_export(console, campaign_id, tmp_path / "exported.xlsx")
    assert sheet_rows(downloaded) == sheet_rows(exported)
    assert len(sheet_rows(downloaded)) == expected["rows"] + 1  # the header row


# --------------------------------------------------------------------------- 3


def test_an_unknown_request_is_shown_and_resent_only_after_a_second_confirmation(
    new_page: Any, signed_in: Any, console: Console, tmp_path: Path
) -> None:
    files = [write_csv(tmp_path / "掉线名单.csv", few_rows(600, 5))]
    page = signed_in(new_page("en"), "sender")
    plan_id = upload_and_preview(page, files, "会员日全场8折")  # one text: one request
    to_confirm(page, plan_id)
    before = len(console.simulator.received())
    console.simulator.inject_drop(1)
    with page.expect_navigation():
        confirm_button(page).click()
    campaign_id = campaign_id_of(page)

    unknown = page.locator("#campaign-progress .unknown")
    unknown.wait_for(timeout=TIMEOUT * 1000)
    assert "never sent again by themselves" in unknown.inner_text()
    screenshot(page, "campaign_unknown")
    page.wait_for_timeout(2500)  # more than the worker's poll: nothing goes out by itself
    assert len(console.simulator.received()) == before + 1

    with page.expect_navigation():
        unknown.get_by_role("button", name="Resend unknown requests…").click()
    assert path_of(page) == f"/campaigns/{campaign_id}/resend"
    screenshot(page, "campaign_resend")
    resend = page.get_by_role("button", name="Resend them now")
    resend.click()  # the box is not ticked: the browser does not even send the form
    assert path_of(page) == f"/campaigns/{campaign_id}/resend"
    page.locator("input[name=understood]").evaluate("box => box.required = false")
    with page.expect_navigation():
        resend.click()  # the server refuses it too
    assert "Tick the box first" in page.inner_text("main")
    page.wait_for_timeout(1500)
    assert len(console.simulator.received()) == before + 1, "resent without a confirmation"

    page.get_by_label("I understand that these recipients may get the message twice").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Resend them now").click()
    assert path_of(page) == f"/campaigns/{campaign_id}"
    watch(page, lambda f: f["sent"] == 5 and "unknown" not in f and f["state"] == "finished")
    assert len(console.simulator.received()) == before + 2


# --------------------------------------------------------------------------- 4


def test_closing_the_tab_mid_send_does_not_stop_it(
    new_page: Any, signed_in: Any, console: Console, tmp_path: Path
) -> None:
    files = [write_csv(tmp_path / "关页名单.csv", few_rows(700, 40))]
    page = signed_in(new_page("en"), "sender")
    plan_id = upload_and_preview(page, files, "{姓名}您好，会员日全场8折")  # 40 requests
    to_confirm(page, plan_id)
    console.simulator.configure(latency=2.0)  # 16 requests at a time: three waves, 6 s
    try:
        with page.expect_navigation():
            confirm_button(page).click()
        campaign_id = campaign_id_of(page)
        at_close = watch(page, lambda f: f["sent"] > 0)[-1]
        page.close()
        time.sleep(1.0)
        again = new_page.contexts[-1].new_page()
        again.goto(f"/campaigns/{campaign_id}")
        seen = watch(again, lambda f: f["state"] == "finished")
    finally:
        console.simulator.configure(latency=0.0)
    assert at_close["sent"] < 40, "the send ended before the tab was closed: nothing shown"
    assert seen[-1]["sent"] == 40 == seen[-1]["total"]


@pytest.mark.parametrize("how", ["double-click", "back", "a stale confirm page"])
def test_confirming_twice_makes_one_campaign(
    new_page: Any, signed_in: Any, console: Console, tmp_path: Path, how: str
) -> None:
    first_mobile = {"double-click": 800, "back": 830, "a stale confirm page": 860}[how]
    files = [write_csv(tmp_path / "重复确认.csv", few_rows(first_mobile, 3))]
    page = signed_in(new_page("en"), "sender")
    plan_id = upload_and_preview(page, files, "{姓名}您好")
    to_confirm(page, plan_id)
    stale = page.context.new_page()  # the same confirmation, open in a second tab
    stale.goto(page.url)
    before = campaign_count(console)
    if how == "double-click":  # two submissions: the second aborts the first's navigation
        confirm_button(page).dblclick()
    else:
        confirm_button(page).click()
    page.wait_for_url(re.compile(r"/campaigns/\d+$"))
    first = campaign_id_of(page)
    if how == "back":
        page.go_back()  # the confirmation again, or (no-store) straight to the campaign
        if path_of(page) == f"/new/{plan_id}/confirm":
            with page.expect_navigation():
                confirm_button(page).click()
        assert campaign_id_of(page) == first
    if how == "a stale confirm page":
        with stale.expect_navigation():
            confirm_button(stale).click()
        assert campaign_id_of(stale) == first
    page.wait_for_timeout(500)
    assert campaign_count(console) == before + 1


def choose_by_keyboard(page: Any, files: list[str]) -> None:
    """Enter on the focused file input opens the chooser, which picks `files`. The input is
    the browser's own: when headless Chromium shows no chooser (it happens with several
    tabs about), the files are given to the focused input itself."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.bring_to_front()
    try:
        with page.expect_file_chooser(timeout=3000) as chooser:
            page.keyboard.press("Enter")
        chooser.value.set_files(files)
    except PlaywrightTimeout:
        page.locator("input[type=file]:focus").set_input_files(files)


def test_the_whole_flow_works_from_the_keyboard(
    new_page: Any, console: Console, tmp_path: Path
) -> None:
    """Sign in, upload, write the template, preview, confirm: Tab, Enter, Space and typing."""
    files = [write_csv(tmp_path / "键盘名单.csv", few_rows(880, 3))]
    page = new_page("en")
    page.goto(SIGN_IN_PATH)
    tab_to(page, "input[autocomplete=username]")
    page.keyboard.type(console.user("sender"))
    page.keyboard.press("Tab")
    page.keyboard.type(console.password)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    tab_to(page, "#main a[href='/new']")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    tab_to(page, "input[type=file]")
    choose_by_keyboard(page, [str(f) for f in files])
    tab_to(page, "form.new-upload button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    tab_to(page, "textarea[name=template]")
    page.keyboard.type("{姓名}您好，会员日全场8折")
    page.locator("#sample td.message").first.filter(has_text="会员日").wait_for()
    tab_to(page, "form.new-template button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert path_of(page).endswith("/preview")
    tab_to(page, "form.schedule button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert path_of(page).endswith("/confirm")
    tab_to(page, "form.send button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    campaign_id_of(page)
    watch(page, lambda f: f["sent"] == 3 and f["state"] == "finished")


# --------------------------------------------------------------------------- 5


def test_an_opt_out_added_in_the_console_is_suppressed_in_the_next_preview(
    new_page: Any, signed_in: Any, console: Console, tmp_path: Path
) -> None:
    rows = few_rows(900, 4)
    page = signed_in(new_page("en"), "sender")
    add_optout(page, rows[1]["手机号"])
    files = [write_csv(tmp_path / "退订后.csv", rows)]
    upload_and_preview(page, files, "{姓名}您好")
    figures = preview_figures(page)
    assert figures["outcomes"]["suppressed"] == 1 and figures["recipients"] == 3


def test_an_unsubscribe_reply_shows_in_the_opt_out_list(
    new_page: Any, signed_in: Any, console: Console
) -> None:
    number = mobile(950)
    console.simulator.push_mo(number, "退订")
    assert console.simulator.wait_reports_pushed(10)
    page = signed_in(new_page("en"), "viewer")
    page.goto("/optouts")
    listed = optout_rows(page, number)
    assert listed, f"{number} is not in the opt-out list"
    assert "退订" in listed[0] and "reply" in listed[0], listed  # where it came from
    screenshot(page, "optouts")
