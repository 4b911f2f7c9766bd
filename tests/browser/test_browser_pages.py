"""Issue 15, real-browser test 8 (the axe part) and the screenshots: every page of the
console, in Chinese and in English, has no serious or critical accessibility finding, asks
no other host for anything, and is photographed for a person to look at."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.kit import (
    SIGN_IN_PATH,
    Console,
    app_routes,
    axe_findings,
    mobile,
    page_lang,
    path_of,
    screenshot,
    seed_campaign,
    seed_folder,
    write_csv,
    write_xlsx,
)

# Not pages: the API, assets, the health probe, sign-out, event streams, downloads; the
# new-campaign steps after the upload need a plan (test_the_new_campaign_steps_pass_axe).
NOT_PAGES = re.compile(r"^/(api|static|healthz|logout)\b|/events$|\.[a-z]+$|\{plan_id")


@pytest.fixture(scope="module")
def campaigns(console: Console) -> dict[str, int]:
    """A sent campaign with its reports in, and one scheduled for tomorrow."""
    from campaign.store.queue import schedule

    rows = [{"姓名": f"客户{n}", "手机号": mobile(n), "城市": "杭州"} for n in range(20)]
    rows.append({"姓名": "坏号码", "手机号": "12345", "城市": "上海"})
    sent = seed_campaign(
        console, [write_csv(seed_folder(console) / "会员名单.csv", rows)], send=True
    )
    console.simulator.wait_reports_pushed(10)
    later = seed_campaign(console, [write_csv(seed_folder(console) / "新客.csv", rows[:5])])
    schedule(console.engine, later, datetime.now(UTC) + timedelta(days=1))
    return {"sent": sent, "scheduled": later}


def page_paths(console: Console, campaign_id: int) -> list[str]:
    """Every page of the console (GET routes that are pages), parameters filled in."""
    found = []
    for path, methods in app_routes(console.app):
        if "GET" in methods and not NOT_PAGES.search(path) and path != SIGN_IN_PATH:
            found.append(re.sub(r"\{[^}]+\}", str(campaign_id), path))
    return sorted(set(found))


def shot_name(path: str) -> str:
    return re.sub(r"\d+", "n", path.strip("/").replace("/", "_")) or "campaigns"


def is_document(answer: Any) -> bool:
    kind = answer.headers.get("content-type", "")
    return kind.startswith("text/html") and answer.text().lstrip()[:15].lower() == "<!doctype html>"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_page_passes_axe_in_both_languages(
    new_page: Any, signed_in: Any, console: Console, campaigns: dict[str, int], lang: str
) -> None:
    page = new_page(lang)
    page.goto(SIGN_IN_PATH)
    findings = {SIGN_IN_PATH: axe_findings(page)}
    assert page_lang(page) == lang
    screenshot(page, "login")
    signed_in(page, "admin")
    paths = page_paths(console, campaigns["sent"])
    assert "/" in paths
    for path in paths:
        answer = page.goto(path)
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        if not is_document(answer):
            continue  # a fragment for htmx
        page.wait_for_timeout(200)  # the first server-sent events land
        assert page_lang(page) == lang, path
        findings[path] = axe_findings(page)
        screenshot(page, shot_name(path))
    page.goto(f"/campaigns/{campaigns['scheduled']}")
    findings["scheduled campaign"] = axe_findings(page)
    screenshot(page, "campaign_scheduled")
    bad = {path: found for path, found in findings.items() if found}
    assert bad == {}, "\n".join(f"{path}:\n  " + "\n  ".join(f) for path, f in bad.items())
    assert new_page.foreign.seen == [], "a page asked another host"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_top_bar_is_one_line_at_1280_pixels(new_page: Any, signed_in: Any, lang: str) -> None:
    page = signed_in(new_page(lang), "admin")  # 1280x800; an admin has the most links
    page.goto("/health")  # its link is the current one: bold, at its widest
    boxes = page.evaluate(
        """() => Object.fromEntries(['.brand', '.nav', '.account'].map(s => {
            const r = document.querySelector('.topbar ' + s).getBoundingClientRect();
            return [s, [r.top, r.bottom]];
        }))"""
    )
    nav_top, nav_bottom = boxes[".nav"]
    for part in (".brand", ".account"):
        top, bottom = boxes[part]
        assert top < nav_bottom and bottom > nav_top, (lang, boxes)  # the same row
    tops = page.locator(".nav li").evaluate_all("lis => lis.map(li => li.offsetTop)")
    assert len(set(tops)) == 1, (lang, tops)  # no link on a second line
    screenshot(page, "topbar")


def test_the_lang_parameter_switches_the_language_and_is_remembered(
    new_page: Any, signed_in: Any
) -> None:
    page = signed_in(new_page("zh"), "viewer")
    assert page_lang(page) == "zh"
    page.goto("/?lang=en")
    assert page_lang(page) == "en"
    page.goto("/")
    assert page_lang(page) == "en" and path_of(page) == "/"
    page.goto("/?lang=zh")
    assert page_lang(page) == "zh"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_new_campaign_steps_pass_axe_in_both_languages(
    new_page: Any, signed_in: Any, console: Console, lang: str
) -> None:
    """Upload (a workbook of two sheets: the reading step is asked), reading, template with
    its sample, preview with problem rows, confirmation."""
    rows = [{"姓名": f"客户{n}", "手机号": mobile(500 + n)} for n in range(30)]
    rows += [{"姓名": "坏号码", "手机号": "12345"}] * 3
    book = write_xlsx(seed_folder(console) / "两个表.xlsx", {"会员": rows, "备用": rows[:3]})
    page = signed_in(new_page(lang), "sender")
    findings: dict[str, list[str]] = {}

    def check(step: str) -> None:
        assert page_lang(page) == lang, step
        findings[step] = axe_findings(page)
        screenshot(page, f"new_{step}")

    page.goto("/new")
    check("upload")
    page.locator("#new-files").set_input_files([str(book)])
    with page.expect_navigation():
        page.locator("form.new-upload button[type=submit]").click()
    assert path_of(page).endswith("/map"), page.url
    check("map")
    page.locator("#map-sheet").select_option("会员")
    with page.expect_navigation():
        page.locator("button[name=action][value=apply]").click()
    assert path_of(page).endswith("/template"), page.url
    page.locator("textarea[name=template]").fill("{姓名}您好，会员日全场8折")
    page.locator("#sample td.message").first.filter(has_text="会员日").wait_for()
    check("template")
    with page.expect_navigation():
        page.locator("form.new-template button[type=submit]").click()
    assert path_of(page).endswith("/preview"), page.url
    check("preview")
    with page.expect_navigation():
        page.locator("form.schedule button[type=submit]").click()
    assert path_of(page).endswith("/confirm"), page.url
    check("confirm")
    bad = {step: found for step, found in findings.items() if found}
    assert bad == {}, "\n".join(f"{step}:\n  " + "\n  ".join(f) for step, f in bad.items())


def test_a_request_to_another_host_is_caught(new_page: Any, signed_in: Any) -> None:
    """The guard every page test relies on: the console's CSP stops a request elsewhere
    before it is made; without the CSP, the guard aborts it and lists it."""
    fetch = "() => fetch('http://cdn.example.invalid/x.js').then(() => 'fetched', () => 'failed')"
    page = signed_in(new_page("en"), "viewer")
    assert page.evaluate(fetch) == "failed"
    assert new_page.foreign.seen == []  # connect-src 'self': never asked
    page = signed_in(new_page("en", bypass_csp=True), "viewer")
    assert page.evaluate(fetch) == "failed"
    assert new_page.foreign.seen == ["http://cdn.example.invalid/x.js"]
    new_page.foreign.seen.clear()  # seen on purpose: the fixture checks for no other
