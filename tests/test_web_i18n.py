"""The console's texts (campaign/web/i18n.py): counts in English take the right word."""

from __future__ import annotations

import re

import pytest

from campaign.web import i18n_en, i18n_zh
from campaign.web.i18n import t

_FIELD = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)(?::[^{}]*(?:\{[^{}]*\}[^{}]*)*)?\}(?!\})")


def test_a_count_takes_the_singular_for_one_and_the_plural_for_more() -> None:
    assert t("en", "optouts.found", total=1, q="139") == "1 entry matches “139”"
    assert t("en", "optouts.found", total=2, q="139") == "2 entries match “139”"
    assert t("en", "optouts.found", total=0, q="139") == "0 entries match “139”"
    assert t("en", "optouts.add.done", added=1, already=1) == (
        "Added 1 number; 1 was on the list already."
    )
    assert t("en", "optouts.add.done", added=3, already=0) == (
        "Added 3 numbers; 0 were on the list already."
    )
    assert t("en", "confirm.resend.warning", recipients=1).startswith("This recipient may")
    assert t("en", "confirm.resend.warning", recipients=4).startswith("Some of these 4 recipients")
    assert t("zh", "optouts.found", total=1, q="139") == i18n_zh.CATALOG["optouts.found"].format(
        total=1, q="139"
    )


def test_no_english_text_hedges_a_plural() -> None:
    assert not [k for k, text in i18n_en.CATALOG.items() if "(s)" in text]


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("count", [0, 1, 2])
def test_every_text_with_fields_fills_for_any_count(lang: str, count: int) -> None:
    for key, text in i18n_en.CATALOG.items():
        fields = {name: count for name in _FIELD.findall(text)}
        if not fields or re.search(r"\{[^}]*[^\x00-\x7f][^}]*\}|\{\w+\|", text):
            continue  # shown as written (an example of the template syntax)
        filled = t(lang, key, **fields)
        assert "|" not in filled and "{" not in filled, (lang, key, filled)
