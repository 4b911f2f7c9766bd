"""Opt-out keywords: is a whole inbound message one of them (width-, case- and
punctuation-insensitive)? Pure: no I/O, no store.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable


def fold_text(text: str) -> str:
    """Width- and case-insensitive form, surrounding spaces and punctuation removed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    start, end = 0, len(folded)
    while start < end and _is_filler(folded[start]):
        start += 1
    while end > start and _is_filler(folded[end - 1]):
        end -= 1
    return folded[start:end]


def _is_filler(char: str) -> bool:
    return char.isspace() or unicodedata.category(char)[0] in "PZC"


class OptoutMatcher:
    """Tells whether a whole message is one of the opt-out keywords."""

    def __init__(self, keywords: Iterable[str]) -> None:
        self.keywords = frozenset(k for k in (fold_text(w) for w in keywords) if k)

    def __call__(self, message: str) -> bool:
        return fold_text(message) in self.keywords
