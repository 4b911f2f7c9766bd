"""Small text rules more than one module applies, each written once (no dependencies: the
store may import this module).

- `VALID_MOBILE`: a mainland China mobile number in its normalized form.
- `header_key`: the form in which a column header is compared with a wanted name (contacts'
  template placeholders, report files' columns): width, case and spaces do not count.
- `FORMULA_PREFIXES` / `neutralise_formula`: a cell a spreadsheet would take for a formula
  gets a leading `'` (OWASP's advice on CSV injection); `campaign.export` has the Arrow form.
- `first_line`: the first line of an error's message (the driver's, for a store error).
"""

from __future__ import annotations

import re
import unicodedata

#: A mainland China mobile number in its normalized form (11 digits, 1[3-9]...).
VALID_MOBILE = r"^1[3-9][0-9]{9}$"

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_SPACES = re.compile(r"\s+")


def header_key(name: str) -> str:
    """A header compared without width, case or spaces: " Ｍobile No " ~ "mobileno"."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", name).casefold())


def neutralise_formula(text: str) -> str:
    """Text starting like a formula (=, +, -, @, tab, CR) gets a leading `'`."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (of the driver's error under a SQLAlchemy one),
    or the error's type name when it has no message."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(exc).__name__
