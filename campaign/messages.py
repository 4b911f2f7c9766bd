"""Message texts: template parsing and rendering, compliance, segments, sensitive words.

Pure and vectorized: a template is parsed once into literal parts and column references,
then rendered over whole DataFrame columns. Lengths, segments and sensitive words are
computed once per distinct text, never per row.

Template syntax (SPEC "Templates"): `{column}` inserts the cell of that column,
`{column|fallback}` uses the fallback when the cell is empty, `{{` and `}}` are literal
braces.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from campaign.config import LimitSettings
from campaign.errors import ConfigError, TemplateError
from campaign.input_limits import control_char_name, first_control_char
from campaign.patterns import header_key

MAX_LENGTH = 536  # UTF-16 code units one request may carry (8 parts of 67)
SINGLE_LENGTH = 70  # a text up to this long is one part
PART_LENGTH = 67  # longer texts are billed per part of this many units
SCAN_CHUNK = 100_000  # texts joined per pass of the sensitive-word automaton
MAX_TEMPLATE_BYTES = 64 * 1024  # a template file larger than this is not a message template
MAX_TEMPLATE_CHARS = MAX_TEMPLATE_BYTES  # nor is a --text this long

_SIGNATURE = r"^【[^【】]+】"
_ASTRAL = "[\U00010000-\U0010ffff]"  # characters outside the BMP: two UTF-16 units each
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Placeholder:
    column: str
    fallback: str | None  # None: an empty cell makes the row invalid
    position: int  # 1-based character position of its "{" in the template


@dataclass(frozen=True)
class RenderResult:
    """The texts of a frame's rows, kept once per combination of placeholder values."""

    combos: np.ndarray  # per row: its combination of values, numbered by first appearance
    combo_text: pa.Array  # per combination: its text (large_string; holes left empty)
    combo_missing: pa.Array  # per combination: the first empty column without fallback, or ""
    combo_codes: np.ndarray  # per combination: equal exactly where the texts are equal
    index: pd.Index
    bmp_only: bool = False  # True: no text has characters beyond the BMP (UTF-16 length = len)

    @property
    def text(self) -> pd.Series:
        """The rendered text of each row."""
        return to_series(self._per_row(self.combo_text), self.index)

    @property
    def missing(self) -> pd.Series:
        """Each row's first column whose cell is empty without fallback, "" if none."""
        return to_series(self._per_row(self.combo_missing), self.index)

    @property
    def codes(self) -> np.ndarray:
        """Per row: equal exactly where the texts are equal (numbered by first appearance)."""
        return self.combo_codes[self.combos]

    def _per_row(self, values: pa.Array) -> pa.Array:
        if len(values) == len(self.combos):  # every row its own combination, in order
            return values
        return values.take(pa.array(self.combos))


@dataclass(frozen=True)
class Template:
    """A parsed template: literal strings and placeholders, in order."""

    source: str
    parts: tuple[str | Placeholder, ...]

    @classmethod
    def parse(cls, text: str, limits: LimitSettings | None = None) -> Template:
        """TemplateError for unbalanced braces, or a text past `limits` (its length, its
        placeholders) or holding a control character (checked before parsing)."""
        check_template_limits(text, limits or LimitSettings())
        return cls(text, tuple(_parse_parts(text)))

    @property
    def placeholders(self) -> list[Placeholder]:
        return [part for part in self.parts if isinstance(part, Placeholder)]

    @property
    def columns(self) -> list[str]:
        """The columns the template uses, each once, in order of first use."""
        return list(dict.fromkeys(p.column for p in self.placeholders))

    def resolved(self, columns: Sequence[str]) -> Template:
        """This template with each placeholder that names no column exactly pointed at the
        one column whose name differs only in case, width or spaces ("{name}" for "Name",
        "{Customer  Name}" for the header "Customer Name"); others are left as they are."""
        available = set(columns)
        loose: dict[str, list[str]] = {}
        for column in columns:
            loose.setdefault(header_key(column), []).append(column)

        def resolve(part: str | Placeholder) -> str | Placeholder:
            if isinstance(part, str) or part.column in available:
                return part
            matches = loose.get(header_key(part.column), [])
            return replace(part, column=matches[0]) if len(matches) == 1 else part

        return Template(self.source, tuple(resolve(part) for part in self.parts))

    def check_columns(self, columns: Sequence[str]) -> None:
        """TemplateError when a placeholder names a column that `columns` lacks."""
        available = set(columns)
        unknown = [c for c in self.columns if c not in available]
        if unknown:
            names = ", ".join(unknown)
            word = "column" if len(unknown) == 1 else "columns"
            raise TemplateError(
                f"the template uses {word} {names} that the contact list does not have; "
                f"columns available: {', '.join(columns) or '(none)'}"
            )

    def render(
        self, frame: pd.DataFrame, signature: str = "", optout_text: str = ""
    ) -> RenderResult:
        """Render every row of `frame` at once (whole-column operations in Arrow).

        Each distinct combination of placeholder values is rendered once; the rows point at
        their combination (a list of a million rows often holds a few hundred thousand
        distinct texts). With `signature`/`optout_text`, the compliance rules of
        `apply_compliance` are applied in the same pass (one concatenation instead of three).
        """
        n = len(frame)
        cells: dict[str, pa.Array] = {}
        for part in self.placeholders:
            if part.column not in cells:
                values = to_arrow(frame[part.column])
                cells[part.column] = pc.utf8_trim_whitespace(pc.fill_null(values, text_scalar("")))
        combo = _combination_codes(list(cells.values()), n)
        first = first_occurrences(combo)  # one row of each combination, in order of appearance
        if len(first) < n:
            picked = pa.array(first)
            cells = {column: values.take(picked) for column, values in cells.items()}
        text, missing = self._render_rows(cells, len(first), signature, optout_text)
        bmp_only = not any(
            pc.any(pc.match_substring_regex(values, _ASTRAL)).as_py() for values in cells.values()
        ) and not re.search(_ASTRAL, self.source + signature + optout_text)
        # numbered by first appearance among the combinations: a text's first row is the
        # first row of its earliest combination, so per row they are numbered the same way
        return RenderResult(combo, text, missing, _codes(text), frame.index, bmp_only)

    def _render_rows(
        self, cells: dict[str, pa.Array], n: int, signature: str, optout_text: str
    ) -> tuple[pa.Array, pa.Array]:
        """The texts of `n` rows whose trimmed placeholder values are `cells`, and the
        first column of each row that is empty without a fallback ("" if none)."""
        pieces: list[pa.Array | str] = []
        missing: pa.Array = pa.nulls(n, pa.large_string())
        empties: dict[str, pa.Array] = {}
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            values = cells[part.column]
            if part.column not in empties:
                empties[part.column] = pc.equal(values, text_scalar(""))
            empty = empties[part.column]
            pieces.append(values)
            if part.fallback:  # values are "" where empty: the fallback goes there only
                pieces.append(pc.if_else(empty, text_scalar(part.fallback), text_scalar("")))
            elif part.fallback is None:
                missing = pc.if_else(
                    pc.and_(empty, pc.is_null(missing)), text_scalar(part.column), missing
                )
        if signature:
            signed = _edge_matches(pieces, n, "【", at_end=False, exact=_is_signed)
            pieces.insert(0, _unless(signed, signature))
        if optout_text:
            ending = _edge_matches(
                pieces,
                n,
                optout_text[-1],
                at_end=True,
                exact=lambda t: pc.ends_with(t, optout_text),
            )
            pieces.append(_unless(ending, optout_text))
        return _join(pieces, n), pc.fill_null(missing, text_scalar(""))


def _combination_codes(columns: list[pa.Array], n: int) -> np.ndarray:
    """Codes equal exactly where every column's values are equal, numbered by first
    appearance (all zero without columns)."""
    key = np.zeros(n, dtype=np.int64)
    for values in columns:
        encoded = pc.dictionary_encode(values.cast(pa.string()))  # 32-bit offsets hash faster
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        size = len(encoded.dictionary)
        if int(key.max(initial=0)) >= (1 << 62) // max(size, 1):
            key = pd.factorize(key)[0].astype(np.int64)
        key = key * size + codes
    return pd.factorize(key)[0].astype(np.int64)


def first_occurrences(codes: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each code, for codes numbered by first appearance
    (a first occurrence is exactly a code larger than every code before it)."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    is_first = np.ones(len(codes), dtype=bool)
    is_first[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return np.flatnonzero(is_first)


def _codes(text: pa.Array) -> np.ndarray:
    """Codes equal exactly where the texts are equal (numbered by first appearance)."""
    encoded = pc.dictionary_encode(text.cast(pa.string()))  # 32-bit offsets hash faster
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _join(pieces: Sequence[pa.Array | str], n: int) -> pa.Array:
    """Concatenate row by row; str pieces are the same in every row."""
    if all(isinstance(p, str) for p in pieces):
        return pa.array(["".join(pieces)] * n, pa.large_string())
    args = [text_scalar(p) if isinstance(p, str) else p for p in pieces]
    return pc.binary_join_element_wise(*args, text_scalar(""))


def _unless(mask: np.ndarray, text: str) -> pa.Array | str:
    """`text` in the rows where `mask` is False, "" where it is True."""
    if not mask.any():
        return text
    if mask.all():
        return ""
    return pc.if_else(pa.array(mask), text_scalar(""), text_scalar(text))


def _is_signed(texts: pa.Array) -> pa.Array:
    return pc.match_substring_regex(texts, _SIGNATURE)


def _edge_matches(
    pieces: Sequence[pa.Array | str], n: int, char: str, *, at_end: bool, exact: Any
) -> np.ndarray:
    """Rows whose text passes `exact` (a check of its start or end).

    Cheap: only rows whose first (last) character is `char`, found from the pieces without
    concatenating them, are concatenated and checked exactly.
    """
    candidate = np.zeros(n, dtype=bool)
    decided = np.zeros(n, dtype=bool)
    for piece in reversed(pieces) if at_end else pieces:
        if isinstance(piece, str):
            if piece:
                hit = piece.endswith(char) if at_end else piece.startswith(char)
                candidate[~decided] = hit
                break
            continue
        nonempty = pc.greater(pc.utf8_length(piece), 0).to_numpy(zero_copy_only=False)
        edge = pc.ends_with(piece, char) if at_end else pc.starts_with(piece, char)
        fresh = ~decided & nonempty
        candidate[fresh] = edge.to_numpy(zero_copy_only=False)[fresh]
        decided |= nonempty
        if decided.all():
            break
    if not candidate.any():
        return candidate
    keep = pa.array(candidate)
    subset = [p if isinstance(p, str) else p.filter(keep) for p in pieces]
    result = np.zeros(n, dtype=bool)
    result[candidate] = exact(_join(subset, int(candidate.sum()))).to_numpy(zero_copy_only=False)
    return result


def to_arrow(values: pd.Series | Sequence[str]) -> pa.Array:
    """A text column as an Arrow large_string array (no copy when it already is one)."""
    if isinstance(values, pd.Series) and not isinstance(values.dtype, pd.StringDtype):
        values = values.astype("str")
    array = pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string()) if array.type != pa.large_string() else array


def text_scalar(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def to_series(array: pa.Array, index: pd.Index | None = None) -> pd.Series:
    return pd.Series(array, dtype="str", index=index)


def _parse_parts(text: str) -> list[str | Placeholder]:
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "{}" and text.startswith(char * 2, i):
            literal.append(char)
            i += 2
        elif char == "{":
            end = _closing(text, i)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_placeholder(text[i + 1 : end], i + 1))
            i = end + 1
        elif char == "}":
            raise TemplateError(
                f"unbalanced brace in the template: '}}' at position {i + 1} has no opening "
                "'{' (write '}}' for a literal brace)"
            )
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


def check_template_limits(text: str, limits: LimitSettings) -> None:
    """TemplateError for a template longer than max_template_chars, with more than
    max_placeholders placeholders, or holding a control character (a NUL, ESC, ...; tab and
    line breaks are fine): what is refused here is never sent."""
    if len(text) > limits.max_template_chars:
        raise TemplateError(
            f"the template is {len(text):,} characters long (the limit is "
            f"{limits.max_template_chars:,}: [limits] max_template_chars)"
        )
    placeholders = text.count("{") - 2 * text.count("{{")
    if placeholders > limits.max_placeholders:
        raise TemplateError(
            f"the template has {placeholders:,} placeholders (the limit is "
            f"{limits.max_placeholders:,}: [limits] max_placeholders)"
        )
    char = first_control_char(text)
    if char is not None:
        raise TemplateError(
            f"the template holds a control character ({control_char_name(char)}) at position "
            f"{text.index(char) + 1}; it would go out inside every message"
        )


def _closing(text: str, start: int) -> int:
    end = text.find("}", start + 1)
    inner_open = text.find("{", start + 1)
    if end == -1 or (inner_open != -1 and inner_open < end):
        raise TemplateError(
            f"unbalanced brace in the template: '{{' at position {start + 1} is not closed "
            "(write '{{' for a literal brace)"
        )
    return end


def _placeholder(inner: str, position: int) -> Placeholder:
    name, bar, fallback = inner.partition("|")
    name = name.strip()
    if not name:
        raise TemplateError(
            f"empty placeholder at position {position} of the template: write {{column}}, "
            "or '{{' for a literal brace"
        )
    return Placeholder(name, fallback if bar else None, position)


def load_template(arg: str | Path, base: Path | None = None, *, hint: str = "") -> str:
    """The template text of the file `arg` names (relative to `base` when given).

    `arg` is always a file name, never the text itself: a name that is no file is a
    TemplateError ("no template file NAME", then `hint` when given), so a mistyped file
    name is never sent as the message. A folder, an unreadable, over-large or non-UTF-8
    file, or an empty one is a TemplateError naming it.
    """
    name = str(arg)
    path = Path(name).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if _is_dir(path):
        raise TemplateError(f"template {name} is a folder, not a file")
    if not _is_file(path):
        raise TemplateError(f"no template file {name}{'; ' + hint if hint else ''}")
    text = _read_template_file(path, name)
    text = text.replace("\r\n", "\n").strip()  # a file saved on Windows: CR is not billed
    if not text:
        raise TemplateError(f"the template file {name} is empty")
    return text


def check_template_text(text: str) -> str:
    """A template given as text (`--text`): the same rules as a file's content."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise TemplateError("the template text is empty")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"the template text is longer than {MAX_TEMPLATE_CHARS} characters "
            "(no SMS is that long)"
        )
    return text


def _read_template_file(path: Path, name: str) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as exc:
        raise TemplateError(f"template file {name} cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise TemplateError(
            f"template file {name} is larger than {MAX_TEMPLATE_BYTES // 1024} KiB "
            "(no SMS template is that long; is it the right file?)"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TemplateError(f"template file {name} is not UTF-8 text") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def apply_compliance(texts: pd.Series, signature: str = "", optout_text: str = "") -> pd.Series:
    """Prefix `signature` where a text carries no 【…】 signature yet; append `optout_text`
    where a text does not end with it. Empty settings add nothing."""
    if not signature and not optout_text:
        return texts
    result = to_arrow(texts)
    pieces = [result]
    if signature:  # string if_else of two scalars is cheap; of whole texts it is not
        signed = pc.match_substring_regex(result, _SIGNATURE)
        pieces.insert(0, pc.if_else(signed, text_scalar(""), text_scalar(signature)))
    if optout_text:
        ends = pc.ends_with(result, optout_text)
        pieces.append(pc.if_else(ends, text_scalar(""), text_scalar(optout_text)))
    return to_series(pc.binary_join_element_wise(*pieces, text_scalar("")), texts.index)


def utf16_length(text: str) -> int:
    """Length as the gateway counts it: UTF-16 code units (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def count_segments(text: str) -> int:
    """Billed parts: 1 up to 70 units, else ceil(n / 67); 0 for an empty text."""
    return int(segments_for_lengths(np.array([utf16_length(text)]))[0])


def utf16_lengths(texts: pd.Series | pa.Array) -> np.ndarray:
    """UTF-16 length of each text (vectorized: characters + astral characters)."""
    array = texts if isinstance(texts, pa.Array) else to_arrow(texts)
    units = pc.add(pc.utf8_length(array), pc.count_substring_regex(array, _ASTRAL))
    return units.to_numpy(zero_copy_only=False).astype(np.int64)


def segments_for_lengths(lengths: np.ndarray) -> np.ndarray:
    lengths = np.asarray(lengths, dtype=np.int64)
    parts = np.where(lengths <= SINGLE_LENGTH, 1, -(-lengths // PART_LENGTH))
    return np.where(lengths == 0, 0, parts).astype(np.int64)


def segment_counts(texts: pd.Series) -> pd.Series:
    """Billed parts of each text, computed once per distinct text."""
    codes, uniques = pd.factorize(texts.astype("str"), sort=False)
    per_text = segments_for_lengths(utf16_lengths(pd.Series(uniques, dtype="str")))
    return pd.Series(per_text[codes], index=texts.index, dtype=np.int64)


class SensitiveWords:
    """A list of words no message may contain, matched without regard to width or the case of
    ASCII letters (NFKC: "ＶＸ" is "vx")."""

    def __init__(self, words: Iterable[str]) -> None:
        import ahocorasick

        self._automaton = ahocorasick.Automaton()
        self.words: list[str] = []
        for raw in words:
            word = raw.strip()
            key = _fold(word)
            if word and key not in self._automaton:
                self._automaton.add_word(key, word)
                self.words.append(word)
        if self.words:
            self._automaton.make_automaton()

    @classmethod
    def load(cls, path: Path) -> SensitiveWords:
        """One word a line, UTF-8; blank lines and surrounding whitespace ignored."""
        try:
            text = Path(path).read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(f"sensitive words file {path} does not exist") from None
        except OSError as exc:
            raise ConfigError(
                f"sensitive words file {path} cannot be read: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"sensitive words file {path} is not UTF-8 text") from None
        return cls(text.splitlines())

    def __len__(self) -> int:
        return len(self.words)

    def first_match(self, text: str) -> str | None:
        """The word that ends first in `text`, or None."""
        if not self.words:
            return None
        for _end, word in self._automaton.iter(_fold(text)):  # short text
            return word
        return None

    def first_matches(self, texts: Sequence[str] | pd.Series | pa.Array) -> list[str | None]:
        """`first_match` of each text: the automaton runs over the texts joined, a chunk at
        a time (no Python work per text, bounded memory)."""
        array = texts if isinstance(texts, pa.Array) else to_arrow(pd.Series(texts, dtype="str"))
        if array.type != pa.large_string():
            array = array.cast(pa.large_string())
        result: list[str | None] = []
        for start in range(0, len(array), SCAN_CHUNK):
            result.extend(self._scan(array.slice(start, SCAN_CHUNK)))
        return result

    def _scan(self, array: pa.Array) -> list[str | None]:
        result: list[str | None] = [None] * len(array)
        if not self.words or not len(array):
            return result
        # Words are single lines, so none can match across the "\n" that joins the texts.
        folded = pc.utf8_normalize(array, "NFKC")
        lowered = pc.fill_null(pc.ascii_lower(folded), text_scalar(""))
        lengths = pc.utf8_length(lowered).to_numpy(zero_copy_only=False).astype(np.int64)
        ends = np.cumsum(lengths + 1) - 1  # index of the separator after each text
        offsets = pa.array([0, len(lowered)], pa.int64())
        listed = pa.LargeListArray.from_arrays(offsets, lowered)
        joined = pc.binary_join(listed, text_scalar("\n"))[0].as_py()
        for end, word in self._automaton.iter(joined):
            which = int(np.searchsorted(ends, end))
            if result[which] is None:
                result[which] = word
        return result


def _fold(text: str) -> str:
    """What sensitive words are compared on: NFKC, ASCII letters lowered."""
    return unicodedata.normalize("NFKC", text).translate(_ASCII_LOWER)


def describe_length(length: int) -> str:
    return (
        f"message too long: {length} characters, more than the {MAX_LENGTH} "
        f"({math.ceil(MAX_LENGTH / PART_LENGTH)} parts) one message may have"
    )
