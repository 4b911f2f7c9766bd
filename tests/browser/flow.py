"""The new-campaign flow of the console, step by step, as a person does it in the browser
(English pages: the controls carry SPEC's accessible names there), and what the command
line says about the same files and campaigns."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.browser.kit import Console, path_of

PLAN_FIGURES = ("rows", "recipients", "requests", "segments")


def upload(page: Any, files: list[Path]) -> str:
    """Upload `files` on /new; past the reading step when it is asked: the plan id."""
    page.goto("/new")
    page.get_by_label("Contact files").set_input_files([str(f) for f in files])
    with page.expect_navigation():
        page.locator("form.new-upload button[type=submit]").click()
    match = re.fullmatch(r"/new/([^/]+)/(map|template)", path_of(page))
    assert match, f"the upload went to {page.url}: {page.inner_text('main')[:500]}"
    if match.group(2) == "map":
        with page.expect_navigation():
            page.locator("button[name=action][value=apply]").click()
        assert path_of(page) == f"/new/{match.group(1)}/template", page.url
    return match.group(1)


def write_template(page: Any, text: str) -> None:
    """Replace the template editor's text (an `input` event: htmx renders the sample)."""
    page.get_by_label("Template", exact=True).fill(text)


def sample_texts(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#sample td.message").all_inner_texts()]


def to_preview(page: Any, plan_id: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Preview", exact=True).click()
    assert path_of(page) == f"/new/{plan_id}/preview", page.url


def upload_and_preview(page: Any, files: list[Path], template: str) -> str:
    """Upload, write the template, open the preview: the plan id."""
    plan_id = upload(page, files)
    write_template(page, template)
    to_preview(page, plan_id)
    return plan_id


def preview_figures(page: Any) -> dict[str, Any]:
    """The preview's numbers in the shape of `campaign plan --json`."""
    outcomes = {
        cell.get_attribute("data-outcome"): int(cell.inner_text())
        for cell in page.locator("#plan-counts td[data-outcome]").all()
    }
    figures: dict[str, Any] = {"outcomes": outcomes}
    for key in PLAN_FIGURES:
        figures[key] = int(page.locator(f"[data-figure={key}]").inner_text())
    return figures


def to_confirm(page: Any, plan_id: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile(r"^Send…$")).click()
    assert path_of(page) == f"/new/{plan_id}/confirm", page.url


def confirm_button(page: Any) -> Any:
    return page.locator("form.send").get_by_role("button", name="Send", exact=True)


def campaign_id_of(page: Any) -> int:
    match = re.fullmatch(r"/campaigns/(\d+)", path_of(page))
    assert match, f"not on a campaign page: {page.url}"
    return int(match.group(1))


def figures_on(page: Any) -> dict[str, int]:
    """The campaign page's live figures: sent, done, total, and recipients by outcome."""
    found = page.evaluate(
        """() => {
          const f = document.querySelector('#campaign-progress .figures');
          const out = {sent: +f.dataset.sent, done: +f.dataset.done, total: +f.dataset.total};
          for (const row of document.querySelectorAll('#campaign-progress tr[data-outcome]'))
            out[row.dataset.outcome] = +row.querySelector('td').innerText;
          out.state = document.querySelector('[data-state]').dataset.state;
          return out;
        }"""
    )
    return dict(found)


# --------------------------------------------------------------------------- command line


def cli(*args: str) -> str:
    """`campaign ARGS` (typer's CliRunner, in this process: a new Python would take seconds
    on a loaded machine): its stdout; fails on a non-zero exit."""
    from typer.testing import CliRunner

    from campaign.cli import app

    unset: dict[str, str | None] = {"CAMPAIGN_CONFIG": None, "CAMPAIGN_GATEWAY": None}
    done = CliRunner().invoke(app, list(args), env=unset)
    assert done.exit_code == 0, (args, done.exit_code, done.output[-2000:])
    return str(done.stdout)


def cli_plan(console: Console, files: list[Path], template: str) -> dict[str, Any]:
    """`campaign plan FILES --text TEMPLATE --json` on the console's store."""
    out = cli("plan", *map(str, files), "--text", template, "--json",
              "--db", console.settings.store_url)  # fmt: skip
    return dict(json.loads(out))


def cli_export(console: Console, campaign_id: int, out: Path, lang: str = "en") -> Path:
    cli("export", str(campaign_id), "-o", str(out), "--lang", lang,
        "--db", console.settings.store_url)  # fmt: skip
    return out


def sheet_rows(path: Path, sheet: str = "results") -> list[tuple[Any, ...]]:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    try:
        return [tuple(row) for row in book[sheet].iter_rows(values_only=True)]
    finally:
        book.close()


# --------------------------------------------------------------------------- opt-outs


def masked(number: str) -> str:
    """A mobile as lists show it: 138****0001."""
    return f"{number[:3]}****{number[-4:]}"


def add_optout(page: Any, number: str, note: str = "客户来电要求退订") -> None:
    """Add `number` to the suppression list on /optouts, as a sender does."""
    page.goto("/optouts")
    form = page.locator("form[action='/optouts/add']")
    form.locator("textarea[name=mobiles]").fill(number)
    form.locator("input[name=note]").fill(note)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert path_of(page) == "/optouts", page.url


def optout_rows(page: Any, number: str) -> list[str]:
    """The rows of /optouts?q=NUMBER that show `number` (masked): their texts."""
    page.goto(f"/optouts?q={number}")
    return list(page.locator(f"tr[data-mobile='{masked(number)}']").all_inner_texts())


# --------------------------------------------------------------------------- keyboard


def tab_to(page: Any, selector: str, most: int = 80) -> None:
    """Press Tab until the focused element matches `selector` (fails past `most` presses)."""
    for _ in range(most):
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reaches {selector} on {page.url}")
