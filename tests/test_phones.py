"""phones: normalization rules, reasons, carriers; property tests for "never guess a digit"."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign import phones
from campaign.phones import (
    carriers,
    check_mobile,
    is_valid_mobile,
    normalize_mobile,
    normalize_mobiles,
)

MOBILE = "13900210021"


@pytest.mark.parametrize(
    "raw",
    [
        "13900210021",
        " 13900210021 ",
        "139 0021 0021",
        "139-0021-0021",
        "139.0021.0021",
        "(139)0021-0021",
        "+86 139 0021 0021",
        "+86-139-0021-0021",
        "(+86)13900210021",
        "+8613900210021",
        "0086 13900210021",
        "008613900210021",
        "8613900210021",
        "１３９００２１００２１",
        "＋８６ １３９－００２１－００２１",
        "（139）0021－0021",
        "139\u00a00021\u00a00021",
        "\u300013900210021\u3000",
        "\t13900210021\n",
        "\u200b13900210021\ufeff",
        "13900210021.0",
        "13900210021.00",
        "+8613900210021.0",
        "1.3900210021E+10",  # scientific notation that still carries every digit
        "139—0021—0021",
        '="13900210021"',  # back-office CSV exports forcing text in Excel
        '"13900210021"',
        "'13900210021",
    ],
)
def test_formats_of_a_valid_mobile_normalize_to_it(raw):
    assert normalize_mobile(raw) == MOBILE
    assert check_mobile(raw) == (MOBILE, "")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty mobile"),
        ("   ", "empty mobile"),
        ("\u3000\u00a0", "empty mobile"),
        (None, "empty mobile"),
        ("-", "empty mobile"),
        ("1.39002E+10", "mobile in scientific notation lost digits in Excel (1.39002E+10)"),
        ("1.39002e+10", "mobile in scientific notation lost digits in Excel (1.39002e+10)"),
        ("13812abc345", "contains letters"),
        ("1381234567a", "contains letters"),
        ("无", "contains letters"),
        ("1390021002", "wrong length: 10 digits"),
        ("139002100211", "wrong length: 12 digits"),
        ("013900210021", "wrong length: 12 digits"),
        ("+86 1390021002", "wrong length: 10 digits"),
        ("+86 12900210021", "not a mainland China mobile (must start 13-19)"),
        ("12900210021", "not a mainland China mobile (must start 13-19)"),
        ("01012345678", "not a mainland China mobile (must start 13-19)"),
        ("86123456789", "not a mainland China mobile (must start 13-19)"),
        ("+1 650 555 1234", "not a mainland China number (foreign country code)"),
        ("+852 9123 4567", "not a mainland China number (foreign country code)"),
        ("139/0021/0021", "contains characters other than digits (/)"),
        ('13900210021"', 'contains characters other than digits (")'),
        ("=13900210021", "contains characters other than digits (=)"),
        ("13900210021 / 13800138000", "contains several numbers"),
        ("13900210021，13800138000", "contains several numbers"),
    ],
)
def test_invalid_mobiles_say_why(raw, reason):
    assert check_mobile(raw) == (None, reason)
    assert normalize_mobile(raw) is None
    assert not is_valid_mobile(raw)


def test_a_lone_trailing_dot_zero_is_excel_decimals_not_a_separator():
    # "1 400000000.0" could be dot grouping, but is read as a 10-digit number: never guess
    assert check_mobile("1 400000000.0") == (None, "wrong length: 10 digits")
    assert normalize_mobile("140.0000.0000") == "14000000000"  # two dots: grouping


def test_vector_result_keeps_index_and_types():
    raw = pd.Series(["139 0021 0021", "", "abc", None, 13900210021.0], index=[10, 20, 30, 40, 50])
    result = normalize_mobiles(raw)
    assert list(result.columns) == ["mobile", "valid", "reason"]
    assert list(result.index) == [10, 20, 30, 40, 50]
    assert result["mobile"].tolist() == [MOBILE, "", "", "", MOBILE]
    assert result["valid"].tolist() == [True, False, False, False, True]
    assert result["valid"].dtype == bool
    assert result["reason"].tolist()[1:4] == ["empty mobile", "contains letters", "empty mobile"]


def test_rules_apply_to_each_row_wherever_it_is():
    raw = pd.Series(["x", "1.3900210021E+10", "139 0021 0021", "1.39002E+10", "13900210021\n"])
    result = normalize_mobiles(raw)
    assert result["mobile"].tolist() == ["", MOBILE, MOBILE, "", MOBILE]
    assert result["valid"].tolist() == [False, True, True, False, True]
    assert not result.isna().any().any()
    assert check_mobile("13900210021\n") == (MOBILE, "")


def test_all_clean_and_empty_columns():
    assert normalize_mobiles(pd.Series([MOBILE, "13800138000"]))["valid"].all()
    empty = normalize_mobiles(pd.Series([], dtype="str"))
    assert len(empty) == 0 and list(empty.columns) == ["mobile", "valid", "reason"]


# --- properties ---------------------------------------------------------------------------------

valid_mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
SEPARATORS = [" ", "-", ".", "\u00a0", "\u3000", "\t", "\u200b", "－", " - "]
SPACES = [" ", "\u00a0", "\u3000", "\t", "\u200b", "\ufeff"]
WIDE = str.maketrans("0123456789", "０１２３４５６７８９")


@st.composite
def formatted(draw, mobile: str) -> str:
    """Any formatting marketing people (or Excel) give a valid mobile."""
    digits = list(mobile)
    if draw(st.booleans()):
        digits = [d.translate(WIDE) if draw(st.booleans()) else d for d in digits]
    decimals = draw(st.booleans())
    gaps = SPACES if decimals else SEPARATORS
    text = ""
    for i, digit in enumerate(digits):
        if i and draw(st.integers(0, 3)) == 0:
            text += draw(st.sampled_from(gaps))
        text += digit
    if not decimals and re.fullmatch(r"[^.]*\.[0０\s\u200b\ufeff]+", text):
        text = text[: text.rindex(".")] + "-" + text[text.rindex(".") + 1 :]  # else: Excel ".0"
    if not decimals and draw(st.booleans()):
        text = f"({text[:3]}){text[3:]}" if text[:3].isdigit() else text
    if decimals:
        text += draw(st.sampled_from([".0", ".00"]))
    prefix = draw(st.sampled_from(["", "+86", "+86 ", "0086", "0086 ", "86", "＋８６", "(+86)"]))
    if decimals and prefix.endswith(")"):
        prefix = "+86"
    outer = draw(st.sampled_from(["", " ", "\u00a0", "\u3000", "\ufeff"]))
    return outer + prefix + text + outer


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_any_formatting_of_a_valid_mobile_normalizes_to_it(data):
    mobile = data.draw(valid_mobiles)
    raw = data.draw(formatted(mobile))
    assert normalize_mobile(raw) == mobile, repr(raw)


@given(st.lists(st.from_regex(r"[0-9]{0,16}", fullmatch=True), min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_digit_strings_pass_exactly_when_they_are_a_mobile_with_optional_86(values):
    result = normalize_mobiles(pd.Series(values))
    for value, mobile, valid in zip(values, result["mobile"], result["valid"], strict=True):
        match = re.fullmatch(r"(?:86|0086)?(1[3-9][0-9]{9})", value)
        assert valid == bool(match), value
        assert mobile == (match.group(1) if match else "")


@given(st.text(max_size=20))
@settings(max_examples=300, deadline=None)
def test_nothing_invalid_passes_and_nothing_is_guessed(raw):
    mobile, reason = check_mobile(raw)
    if mobile is None:
        assert reason
        return
    assert re.fullmatch(r"1[3-9][0-9]{9}", mobile) and reason == ""
    # the input's digits are the mobile's, after an allowed prefix, before ".0"s or "E+10"
    digits = "".join(ch for ch in raw.translate(WIDE_BACK) if "0" <= ch <= "9")
    assert re.fullmatch(rf"(?:86|0086)?{mobile}(?:0*|10)", digits), repr(raw)


@given(st.from_regex(r"[ +0-9.eE-]{0,18}", fullmatch=True))
@settings(max_examples=300, deadline=None)
def test_number_like_text_is_never_guessed(raw):
    mobile = normalize_mobile(raw)
    if mobile is not None:
        digits = "".join(ch for ch in raw if ch.isdigit())
        assert re.fullmatch(rf"(?:86|0086)?{mobile}(?:0*|10)", digits), repr(raw)


WIDE_BACK = str.maketrans("０１２３４５６７８９", "0123456789")


@given(
    valid_mobiles,
    st.integers(0, 11),
    st.text(alphabet=st.characters(categories=["Lu", "Ll", "Lo"]), min_size=1, max_size=3),
)
@settings(max_examples=200, deadline=None)
def test_letters_never_pass(mobile, at, letters):
    raw = mobile[:at] + letters + mobile[at:]
    mobile_found, reason = check_mobile(raw)
    # never scientific notation: that is one digit, an optional fraction, e and 1-2 digits
    assert (mobile_found, reason) == (None, "contains letters"), repr(raw)


cells = st.one_of(
    st.none(),
    st.text(max_size=15),
    valid_mobiles,
    valid_mobiles.flatmap(formatted),
    st.sampled_from(["1.3900210021E+10", "1.39002E+10", "13900210021.0", "", " ", "abc"]),
)


@given(st.lists(cells, max_size=20))
@settings(max_examples=100, deadline=None)
def test_single_value_form_agrees_with_the_column_form(values):
    column = normalize_mobiles(pd.Series(values, dtype=object))
    for value, mobile, valid, reason in zip(
        values, column["mobile"], column["valid"], column["reason"], strict=True
    ):
        assert check_mobile(value) == ((mobile if valid else None), reason)


# --- carriers -------------------------------------------------------------------------------


def test_carriers_name_the_four_networks():
    mobiles = pd.Series(
        ["13900210021", "13012345678", "13312345678", "19212345678", "", "12345", "19012345678"],
        index=list("abcdefg"),
    )
    result = carriers(mobiles)
    assert list(result.index) == list("abcdefg")
    assert result.tolist() == [
        "China Mobile",
        "China Unicom",
        "China Telecom",
        "China Broadnet",
        "",
        "",
        "China Telecom",
    ]
    assert set(result) <= {*phones.CARRIER_LABELS, ""}


def test_carriers_are_looked_up_once_per_distinct_prefix():
    phones._carrier_for_prefix.cache_clear()
    mobiles = pd.Series([f"1390021{i:04d}" for i in range(5000)] + ["13012345678"] * 5000)
    result = carriers(mobiles)
    assert result.value_counts().to_dict() == {"China Mobile": 5000, "China Unicom": 5000}
    assert phones._carrier_for_prefix.cache_info().misses == 2


def test_carrier_names_of_the_library_map_onto_our_labels():
    assert phones._carrier_label("China Broadcast Network") == "China Broadnet"
    assert phones._carrier_label("China Mobile") == "China Mobile"
    assert phones._carrier_label("Something Else") == ""
    assert phones._known_prefix_carrier("1920000") == "China Broadnet"
    assert phones._known_prefix_carrier("1410000") == ""
