"""Issue 15, real-browser test 6: `<script>`, `"><img src=x onerror=…>`, `{{7*7}}` and
`=HYPERLINK(…)` in cells, file names and sheet names show as text on every page that shows
them: no dialog opens, no element is injected; the exports keep them as text.

The pages are opened with the Content-Security-Policy bypassed, so that what is checked is
the escaping itself (the CSP is a second wall, checked in test_browser_security)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from tests.browser.flow import upload_and_preview
from tests.browser.kit import (
    Console,
    api_token,
    has_route,
    http_client,
    mobile,
    screenshot,
    seed_campaign,
    seed_folder,
    write_csv,
    write_xlsx,
)

SCRIPT = "<script>alert('xss-script')</script>"
IMG = '"><img src=x onerror=alert("xss-img")>'
BRACES = "{{7*7}}"
FORMULA = '=HYPERLINK("http://evil.example/x","点我")'
HOSTILE = (SCRIPT, IMG, BRACES, FORMULA)
CSV_NAME = '"><img src=x onerror=alert(1)>名单.csv'
XLSX_NAME = "{{7*7}}<script>alert(2).xlsx"
SHEET_NAME = '"><img src=x onerror=alert(3)>'  # 30 characters: a legal sheet name
NAMED = "<script>alert(5)</script>{{7*7}}"

INJECTED = """() => ({
  dialogs: window.__dialogs || 0,
  images: document.querySelectorAll('img[src="x"], img[onerror]').length,
  inline_scripts: [...document.scripts].filter(s => !s.src).length,
  foreign_scripts: [...document.scripts].filter(s => !s.src.startsWith(location.origin)).length,
  handlers: [...document.querySelectorAll('*')]
    .filter(e => [...e.attributes].some(a => a.name.toLowerCase().startsWith('on'))).length,
})"""


def hostile_rows(first: int) -> list[dict[str, str]]:
    rows = [
        {"姓名": text, "手机号": mobile(first + n), "备注": FORMULA}
        for n, text in enumerate(HOSTILE)
    ]
    rows.append({"姓名": "坏号码", "手机号": IMG, "备注": SCRIPT})  # invalid: its cell is shown
    return rows


@pytest.fixture(scope="module")
def hostile(console: Console) -> dict[str, int]:
    """Two sent campaigns: one named after its hostile files (a CSV, and an xlsx with a
    hostile sheet name), one with a hostile name given."""
    folder = seed_folder(console)
    files = [
        write_csv(folder / CSV_NAME, hostile_rows(100)),
        write_xlsx(folder / XLSX_NAME, {SHEET_NAME: hostile_rows(200)}),
    ]
    by_files = seed_campaign(console, files, "{姓名}您好", send=True)
    other = seed_folder(console)
    named = seed_campaign(
        console,
        [write_csv(other / "名单.csv", hostile_rows(300))],
        "{姓名}您好 {备注}",
        name=NAMED,
        send=True,
    )
    return {"files": by_files, "named": named}


def open_inert(pages: Any, signed_in: Any, lang: str = "zh") -> Any:
    """A signed-in page without the CSP, counting every dialog that would open."""
    page = pages(lang, bypass_csp=True)
    page.on("dialog", lambda dialog: dialog.dismiss())
    page.add_init_script(
        "window.__dialogs = 0; for (const f of ['alert', 'confirm', 'prompt'])"
        " { const o = window[f]; window[f] = (...a) => { window.__dialogs++; return o(...a); }; }"
    )
    return signed_in(page, "sender")


def assert_inert(page: Any, path: str, shown: tuple[str, ...]) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    answer = page.goto(path)
    assert answer is not None and answer.status == 200, path
    page.wait_for_timeout(300)  # htmx swaps and the first server-sent events
    found = page.evaluate(INJECTED)
    assert dialogs == [] and found == dict.fromkeys(found, 0), (path, dialogs, found)
    text = page.inner_text("body")
    for value in shown:
        assert value in text, f"{value!r} is not shown as text on {path}"


def test_hostile_names_show_as_text_in_the_campaign_list(
    new_page: Any, signed_in: Any, hostile: dict[str, int]
) -> None:
    page = open_inert(new_page, signed_in)
    assert_inert(page, "/", (NAMED, BRACES))
    screenshot(page, "xss-campaigns")


@pytest.mark.parametrize("which", ["files", "named"])
def test_hostile_cells_file_and_sheet_names_show_as_text_on_the_campaign_page(
    new_page: Any, signed_in: Any, hostile: dict[str, int], which: str
) -> None:
    page = open_inert(new_page, signed_in, "en")
    shown = (NAMED,) if which == "named" else (CSV_NAME.removesuffix(".csv"),)
    assert_inert(page, f"/campaigns/{hostile[which]}", shown)
    screenshot(page, f"xss-campaign-{which}")


def test_hostile_values_stay_text_in_the_exports(console: Console, hostile: dict[str, int]) -> None:
    from openpyxl import load_workbook

    campaign = hostile["named"]
    path = f"/api/v1/campaigns/{campaign}/results.xlsx"
    if not has_route(console.app, "GET", path):
        pytest.fail("no results.xlsx route in the API")
    bearer = {"Authorization": f"Bearer {api_token(console, 'viewer')}"}
    with http_client(console) as client:
        got = client.get(path, headers=bearer)
        assert got.status_code == 200, got.status_code
        csv_text = client.get(path.replace(".xlsx", ".csv"), headers=bearer).text
    sheet = load_workbook(io.BytesIO(got.content))["results"]
    values = [cell for row in sheet.iter_rows(min_row=2) for cell in row]
    formulas = [cell for cell in values if str(cell.value or "").startswith("=")]
    assert formulas, "the formula-like cells are missing from the export"
    assert all(cell.data_type == "s" for cell in formulas), "a formula-like cell became a formula"
    cells = [cell for row in csv.reader(io.StringIO(csv_text.lstrip("\ufeff"))) for cell in row]
    assert not [cell for cell in cells if cell.startswith("=")], "a CSV cell would be a formula"
    for text in HOSTILE:
        assert any(cell.value == text for cell in values), text
        assert text in cells or "'" + text in cells, text


def test_hostile_upload_shows_as_text_in_the_new_campaign_flow(
    new_page: Any, signed_in: Any, tmp_path: Path
) -> None:
    """Upload the hostile files through the page: the preview shows names, sheet names and
    cells as text."""
    files = [
        write_csv(tmp_path / CSV_NAME, hostile_rows(400)),
        write_xlsx(tmp_path / XLSX_NAME, {SHEET_NAME: hostile_rows(500)}),
    ]
    page = open_inert(new_page, signed_in, "en")
    upload_and_preview(page, files, "{姓名}您好")
    screenshot(page, "xss-preview")
    found = page.evaluate(INJECTED)
    assert found == dict.fromkeys(found, 0), found
    text = page.inner_text("body")
    for value in (XLSX_NAME, SHEET_NAME, SCRIPT):  # names, and a cell in the sample
        assert value in text, value
    # Chromium sends a file name's `"` as %22 (HTML's multipart encoding): shown as such
    assert CSV_NAME in text or CSV_NAME.replace('"', "%22") in text
