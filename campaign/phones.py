"""Mainland China mobile numbers: normalize, validate and name the carrier, a column at a time.

Pure and vectorized: every rule is a pyarrow.compute operation over the whole column (RE2
regexes), and only the rows that are not already a clean 11-digit mobile go through the
cleanup steps. Nothing loops over rows in Python; carriers are looked up once per distinct
number prefix. The single-value forms run the very same code on a one-element column.

Cleanup, in order (never guessing a digit):
  1. full-width digits and signs (０-９ ＋ － （ ） ．) become ASCII; dash variants become "-";
  2. every kind of whitespace is removed (ASCII, NBSP, full-width and thin spaces,
     zero-width characters, BOM);
  3. Excel's keep-as-text markers go (="13900210021", "13900210021", '13900210021);
  4. Excel numeric text "13900210021.0" / ".00" loses its zero decimals; scientific notation
     is accepted only when it still carries every digit ("1.3900210021E+10"), otherwise the
     digits were lost in Excel ("1.39002E+10") and the number is invalid;
  5. separators - . ( ) are removed;
  6. a country prefix +86 / 0086 / 86 is removed when exactly 11 digits remain.
A mobile is valid when what remains matches ^1[3-9]\\d{9}$.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneNumber
from phonenumbers.carrier import name_for_valid_number

from campaign.patterns import VALID_MOBILE

CARRIER_LABELS = ("China Mobile", "China Unicom", "China Telecom", "China Broadnet")

REASON_EMPTY = "empty mobile"
REASON_LETTERS = "contains letters"
REASON_NOT_MAINLAND = "not a mainland China mobile (must start 13-19)"
REASON_FOREIGN = "not a mainland China number (foreign country code)"
REASON_SEVERAL = "contains several numbers"

_VALID_MOBILE_RE = re.compile(VALID_MOBILE.strip("^$"))  # with fullmatch: no "\n" slips by

_FULLWIDTH = {chr(0xFF10 + d): str(d) for d in range(10)} | {
    "＋": "+",
    "－": "-",
    "（": "(",
    "）": ")",
    "．": ".",
    "ｅ": "e",
    "Ｅ": "E",
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2212": "-",  # minus sign
}
# RE2 syntax: \p{Z} is every Unicode space separator (NBSP, U+3000, thin spaces, ...).
_WHITESPACE = r"[\s\p{Z}\x{200b}-\x{200d}\x{2060}\x{feff}]+"
_SCIENTIFIC = r"^\+?(?P<lead>[0-9])(?:\.(?P<fraction>[0-9]*))?[eE]\+?(?P<exponent>[0-9]{1,2})$"
_TEXT_MARKERS = r"^=?\"([^\"]*)\"$|^'([^']*)$"
_EXCEL_DECIMALS = r"^(\+?[0-9]+)\.0+$"
_SEPARATORS = r"[-.()]"
_COUNTRY_PREFIX = r"^(?:\+86|0086|86)([0-9]{11})$"
_SEVERAL = r"1[3-9][0-9]{9}[^0-9]+1[3-9][0-9]{9}"


def normalize_mobiles(raw: pd.Series) -> pd.DataFrame:
    """Normalize a column of mobile cells.

    Returns a frame on the same index with "mobile" (the 11 digits, "" when invalid),
    "valid" (bool) and "reason" ("" when valid, else why, in words).
    """
    text = _to_arrow(raw)
    fast = pc.fill_null(pc.match_substring_regex(text, VALID_MOBILE), False)
    if pc.all(fast).as_py() is not False:  # every cell already clean (or no cells)
        mobile, reason = text, pa.repeat("", len(text))
    else:
        messy = pc.invert(fast)
        sub_mobile, sub_reason = _clean(text.filter(messy))
        mobile = pc.replace_with_mask(text, messy, sub_mobile)
        reason = pc.replace_with_mask(pa.repeat("", len(text)), messy, sub_reason)
    valid = pc.equal(reason, "")
    return pd.DataFrame(
        {
            "mobile": _to_series(mobile, raw.index),
            "valid": pd.Series(valid.to_numpy(zero_copy_only=False), index=raw.index),
            "reason": _to_series(reason, raw.index),
        }
    )


def check_mobile(text: str | None) -> tuple[str | None, str]:
    """One value: (the 11-digit mobile or None, the reason it is invalid or "")."""
    if isinstance(text, str) and _VALID_MOBILE_RE.fullmatch(text):  # the vector fast path
        return text, ""
    result = normalize_mobiles(pd.Series([text], dtype=object))
    row = result.iloc[0]
    return (str(row["mobile"]) if row["valid"] else None), str(row["reason"])


def normalize_mobile(text: str | None) -> str | None:
    """One value: the 11-digit mobile, or None when it is not a valid mobile."""
    return check_mobile(text)[0]


def is_valid_mobile(text: str | None) -> bool:
    return normalize_mobile(text) is not None


def carriers(mobiles: pd.Series) -> pd.Series:
    """Carrier of each normalized mobile: one of CARRIER_LABELS, or "" (unknown / not a mobile).

    Looked up once per distinct prefix: the phonenumbers carrier data for +86 is keyed by
    prefixes of at most `_carrier_prefix_digits()` digits, so mobiles sharing that prefix share
    the answer.
    """
    text = _to_arrow(mobiles)
    valid = pc.fill_null(pc.match_substring_regex(text, VALID_MOBILE), False)
    digits = _carrier_prefix_digits()
    prefixes = pc.if_else(valid, pc.utf8_slice_codeunits(text, 0, digits), "")
    distinct = pc.unique(prefixes)
    labels = pa.array([_carrier_for_prefix(p) for p in distinct.to_pylist()], pa.string())
    return _to_series(pc.take(labels, pc.index_in(prefixes, distinct)), mobiles.index)


# --- the cleanup steps -----------------------------------------------------------------------


def _clean(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The slow path for cells that are not already clean: (mobile or "", reason or "")."""
    ascii_text = _ascii_forms(text)
    stripped = pc.replace_substring_regex(ascii_text, _WHITESPACE, "")
    stripped = pc.replace_substring_regex(stripped, _TEXT_MARKERS, r"\1\2")
    scientific, lost_digits = _scientific(stripped)
    candidate = pc.if_else(pc.is_valid(scientific), scientific, stripped)
    candidate = pc.replace_substring_regex(candidate, _EXCEL_DECIMALS, r"\1")
    candidate = pc.replace_substring_regex(candidate, _SEPARATORS, "")
    candidate = pc.replace_substring_regex(candidate, _COUNTRY_PREFIX, r"\1")
    several = pc.match_substring_regex(ascii_text, _SEVERAL)
    # a candidate of the 11 digits passes every rule but those two: only the others need
    # their reasons worked out (usually a few percent of the cells)
    suspect = pc.fill_null(
        pc.or_(
            pc.invert(pc.match_substring_regex(candidate, VALID_MOBILE)),
            pc.or_(lost_digits, several),
        ),
        True,
    )
    reason: pa.Array = pa.repeat("", len(candidate))
    if pc.any(suspect).as_py():
        picked = [a.filter(suspect) for a in (stripped, candidate, lost_digits, several)]
        reason = pc.replace_with_mask(reason, suspect, _reasons(*picked))
    mobile = pc.if_else(pc.equal(reason, ""), candidate, "")
    return mobile, reason


def _ascii_forms(text: pa.Array) -> pa.Array:
    """Full-width digits/signs and dash variants to ASCII (only where non-ASCII occurs)."""
    non_ascii = pc.invert(pc.string_is_ascii(text))
    if not pc.any(non_ascii).as_py():
        return text
    sub = text.filter(non_ascii)
    for wide, narrow in _FULLWIDTH.items():
        sub = pc.replace_substring(sub, wide, narrow)
    return pc.replace_with_mask(text, non_ascii, sub)


def _scientific(stripped: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Scientific notation: (the digits where all are present else null, digits-lost mask)."""
    parts = pc.extract_regex(stripped, _SCIENTIFIC)
    lead, fraction = pc.struct_field(parts, 0), pc.struct_field(parts, 1)
    exponent = pc.cast(pc.struct_field(parts, 2), pa.int32())
    complete = pc.equal(pc.utf8_length(fraction), exponent)  # null where not scientific
    digits = pc.if_else(complete, pc.binary_join_element_wise(lead, fraction, ""), None)
    lost = pc.fill_null(pc.invert(complete), False)
    return digits, lost


def _reasons(
    stripped: pa.Array, candidate: pa.Array, lost_digits: pa.Array, several: pa.Array
) -> pa.Array:
    """Why each candidate is not a valid mobile, first matching rule wins; "" when valid."""
    national = pc.replace_substring_regex(candidate, r"^(?:\+86|0086)", "")
    length = pc.cast(pc.utf8_length(national), pa.string())
    first_odd = pc.struct_field(pc.extract_regex(national, r"(?P<c>[^0-9])"), 0)
    rules = [
        (pc.equal(candidate, ""), REASON_EMPTY),
        (
            lost_digits,
            _concat("mobile in scientific notation lost digits in Excel (", stripped, ")"),
        ),
        (pc.match_substring_regex(candidate, r"\p{L}"), REASON_LETTERS),
        (several, REASON_SEVERAL),
        (pc.match_substring_regex(candidate, r"^(?:\+|00)(?:[1-7]|8[0-57-9]|9)"), REASON_FOREIGN),
        (
            pc.match_substring_regex(national, r"[^0-9]"),
            _concat("contains characters other than digits (", first_odd, ")"),
        ),
        (pc.invert(pc.equal(length, "11")), _concat("wrong length: ", length, " digits")),
        (pc.invert(pc.match_substring_regex(national, VALID_MOBILE)), REASON_NOT_MAINLAND),
    ]
    reason: pa.Array = pa.repeat("", len(candidate))
    for mask, text in reversed(rules):  # earlier rules overwrite later ones
        reason = pc.if_else(pc.fill_null(mask, False), text, reason)
    return reason


def _concat(*parts: str | pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


# --- carriers ----------------------------------------------------------------------------------

# Well-known allocations (3- and 4-digit prefixes), used only when the library has nothing.
_ALLOCATIONS = {
    "China Mobile": "134 135 136 137 138 139 147 148 150 151 152 157 158 159 172 178 182 183 "
    "184 187 188 195 197 198 1440 1703 1705 1706",
    "China Unicom": "130 131 132 145 146 155 156 166 167 171 175 176 185 186 196 1704 1707 "
    "1708 1709",
    "China Telecom": "133 149 153 173 177 180 181 189 190 191 193 199 1349 1700 1701 1702 1740",
    "China Broadnet": "192",
}
_KNOWN_PREFIXES = {
    prefix: carrier for carrier, prefixes in _ALLOCATIONS.items() for prefix in prefixes.split()
}


@functools.cache
def _carrier_prefix_digits() -> int:
    """How many leading digits decide the carrier in the library's +86 data (at most 7)."""
    try:
        from phonenumbers.carrierdata import CARRIER_DATA
    except ImportError:  # pragma: no cover - data layout of another library version
        return 7
    lengths = [len(key) - 2 for key in CARRIER_DATA if key.startswith("86")]
    return min(max(lengths, default=7), 7)


@functools.cache
def _carrier_for_prefix(prefix: str) -> str:
    if not prefix:
        return ""
    number = PhoneNumber(country_code=86, national_number=int(prefix.ljust(11, "0")))
    label = _carrier_label(name_for_valid_number(number, "en"))
    return label or _known_prefix_carrier(prefix)


def _carrier_label(name: str) -> str:
    """Map the library's English carrier names onto our four labels."""
    lowered = name.lower()
    for word, label in (
        ("mobile", "China Mobile"),
        ("unicom", "China Unicom"),
        ("telecom", "China Telecom"),
        ("broadnet", "China Broadnet"),
        ("broadcast", "China Broadnet"),
        ("radio", "China Broadnet"),
    ):
        if word in lowered:
            return label
    return ""


def _known_prefix_carrier(prefix: str) -> str:
    return _KNOWN_PREFIXES.get(prefix[:4]) or _KNOWN_PREFIXES.get(prefix[:3], "")


# --- pandas <-> arrow ---------------------------------------------------------------------------


def _to_arrow(values: pd.Series | Iterable[object]) -> pa.Array:
    """A column as a pyarrow string array with nulls as ""."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    array = pa.array(series.astype("str"), from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return pc.fill_null(pc.cast(array, pa.string()), "")


_STR = pd.StringDtype("pyarrow", na_value=float("nan"))


def _to_series(array: pa.Array, index: pd.Index) -> pd.Series:
    return pd.Series(pd.array(array, dtype=_STR), index=index)
