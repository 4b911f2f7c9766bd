"""The plan: every contact row gets an outcome, every recipient a message and a batch.

Pure and vectorized. The checks, in order of precedence (a row gets the first that applies):

1. `invalid`    the mobile cannot be normalized (reason from `phones`)
2. `duplicate`  the same number on an earlier row (of any file); the first one is kept
3. `suppressed` the number is on the suppression list
4. `capped`     the number already got `max_per_recipient` messages in the cap window
                (the counts come from the store: `store.caps`)
5. `invalid`    an empty cell without fallback, an empty or too long text, a sensitive word
6. `unsent`     fewer recipients with this text than the account's minimum group size
7. `ready`      everything else: grouped by identical text into requests of <= max_batch

`Plan.fingerprint` identifies the (mobile, text) pairs the list sends, taken before the
suppression list and the cap rule them out (those change between two sends of one list):
`campaign send` refuses a list whose fingerprint a stored campaign already has. It is
hashed when first asked for (a plan without a store never needs it). Likewise the per-row
frame `Plan.rows` is built from the decided arrays (`PlanColumns`) when first read: the
summary and the sample of `plan --json` come from the arrays.

Batches are numbered "b000001", ... in sending order: groups in order of their first row,
each group split into equal chunks (sizes differ by at most one) of at most max_batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from campaign.config import (
    DEFAULT_CAP_WINDOW_HOURS,
    DEFAULT_MAX_BATCH,
    DEFAULT_MIN_BATCH,
    LimitSettings,
    Settings,
)
from campaign.contacts import ContactList, control_character_rows
from campaign.errors import ConfigError, InputError
from campaign.messages import (
    MAX_LENGTH,
    SCAN_CHUNK,
    SensitiveWords,
    Template,
    describe_length,
    first_occurrences,
    segments_for_lengths,
    text_scalar,
    to_arrow,
    to_series,
    utf16_lengths,
)
from campaign.outcomes import PLAN_OUTCOMES, RESULT_COLUMNS, Outcome
from campaign.phones import carriers, normalize_mobiles

#: The columns of the result that a plan decides: normalized_mobile .. batch_id.
ROW_COLUMNS = RESULT_COLUMNS[
    RESULT_COLUMNS.index("normalized_mobile") : RESULT_COLUMNS.index("batch_id") + 1
]
SUPPRESSED_REASON = "on the suppression list"
_FINGERPRINT_TAG = b"campaign fingerprint v1\0"  # change it when the hashed data changes
ITER_CHUNK = 10_000  # batches converted to Python objects at a time when iterating


@dataclass(frozen=True)
class PlanOptions:
    signature: str = ""
    optout_text: str = ""
    sensitive_words: SensitiveWords | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    min_batch: int = DEFAULT_MIN_BATCH
    max_per_recipient: int | None = None  # messages per number in the cap window; None: no cap
    cap_window_hours: float = DEFAULT_CAP_WINDOW_HOURS
    limits: LimitSettings = field(default_factory=LimitSettings)  # template size ([limits])


def plan_options(settings: Settings) -> PlanOptions:
    """The plan options that the settings describe (reads the sensitive-word file)."""
    compliance, gateway = settings.compliance, settings.gateway
    if gateway.min_batch > max(1, gateway.max_batch):
        raise ConfigError(
            f"gateway.min_batch ({gateway.min_batch}) is larger than gateway.max_batch "
            f"({gateway.max_batch}): no request could be sent"
        )
    words = compliance.sensitive_words
    return PlanOptions(
        signature=compliance.signature,
        optout_text=compliance.optout_text,
        sensitive_words=SensitiveWords.load(words) if words else None,
        max_batch=max(1, gateway.max_batch),
        min_batch=max(1, gateway.min_batch),
        max_per_recipient=compliance.max_per_recipient,
        cap_window_hours=compliance.cap_window_hours,
        limits=settings.limits,
    )


@dataclass(frozen=True)
class Batch:
    batch_id: str  # deterministic: "b000001", "b000002", ... in sending order
    seq: int
    text: str
    segments: int  # per mobile
    mobiles: tuple[str, ...]
    rows: tuple[int, ...]  # row_no of each mobile, same order


class Batches(Sequence[Batch]):
    """The plan's batches, built on demand from arrays (cheap for a million of them).

    Index, slice or iterate it for `Batch` objects; `frame()` gives the same batches as
    columns (for bulk inserts), `sizes()` the number of mobiles of each.
    """

    def __init__(
        self,
        order: np.ndarray,
        starts: np.ndarray,
        group_of: np.ndarray,
        texts: pa.Array,
        group_text: np.ndarray,
        segments: np.ndarray,
        mobiles: pa.Array,
    ) -> None:
        self._order = order  # row numbers of all ready recipients, batch after batch
        self._starts = starts  # len(batches) + 1 offsets into `_order`
        self._group_of = group_of  # batch -> text group
        self._texts = texts  # the texts that `group_text` indexes
        self._group_text = group_text  # text group -> index into `_texts`
        self._segments = segments  # text group -> segments
        self._mobiles = mobiles  # row number -> normalized mobile

    def __len__(self) -> int:
        return len(self._starts) - 1

    @overload
    def __getitem__(self, index: int) -> Batch: ...
    @overload
    def __getitem__(self, index: slice) -> list[Batch]: ...
    def __getitem__(self, index: int | slice) -> Batch | list[Batch]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return list(self._build(start, max(start, stop)))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("batch index out of range")
        return next(self._build(index, index + 1))

    def __iter__(self) -> Iterator[Batch]:
        for start in range(0, len(self), ITER_CHUNK):
            yield from self._build(start, min(start + ITER_CHUNK, len(self)))

    def _build(self, start: int, stop: int) -> Iterator[Batch]:
        """Batches start..stop-1, from column slices converted to Python once."""
        offsets = self._starts[start : stop + 1]
        rows = self._order[offsets[0] : offsets[-1]] if len(offsets) else self._order[:0]
        mobiles, row_list = self._mobiles.take(pa.array(rows)).to_pylist(), rows.tolist()
        groups = self._group_of[start:stop]
        texts = self._texts.take(pa.array(self._group_text[groups])).to_pylist()
        segments = self._segments[groups].tolist()
        ids = batch_ids(stop, first=start + 1).tolist()
        edges = (offsets - offsets[0]).tolist() if len(offsets) else []
        for k in range(stop - start):
            lo, hi = edges[k], edges[k + 1]
            yield Batch(
                ids[k],
                start + k + 1,
                texts[k],
                segments[k],
                tuple(mobiles[lo:hi]),
                tuple(row_list[lo:hi]),
            )

    def frame(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Batches start..stop-1 as columns: batch_id, seq, text, segments, size, and
        mobiles (comma-separated, as sent), built without a Python loop per batch."""
        stop = len(self) if stop is None else min(stop, len(self))
        start = min(start, stop)
        offsets = self._starts[start : stop + 1]
        rows = self._order[offsets[0] : offsets[-1]] if stop > start else self._order[:0]
        listed = pa.LargeListArray.from_arrays(
            pa.array(offsets - (offsets[0] if len(offsets) else 0), pa.int64())
            if stop > start
            else pa.array([0], pa.int64()),
            self._mobiles.take(pa.array(rows)),
        )
        groups = self._group_of[start:stop]
        return pd.DataFrame(
            {
                "batch_id": batch_ids(stop, first=start + 1),
                "seq": np.arange(start + 1, stop + 1, dtype=np.int64),
                "text": to_series(
                    self._texts.take(pa.array(self._group_text[groups])).cast(pa.large_string())
                ),
                "segments": self._segments[groups].astype(np.int64),
                "size": np.diff(offsets).astype(np.int64) if len(offsets) else [],
                "mobiles": to_series(pc.binary_join(listed, text_scalar(","))),
            }
        )

    def sizes(self) -> np.ndarray:
        """Number of mobiles of each batch."""
        return np.diff(self._starts)

    def __repr__(self) -> str:
        return f"<Batches: {len(self)} requests>"


def batch_id(seq: int) -> str:
    return f"b{seq:06d}"


def _batch_id_column(seq: np.ndarray, index: pd.Index) -> pd.Series:
    """batch_id(seq) of each row, "" where seq is 0 (built in Arrow: no Python strings)."""
    ids = _batch_id_array(pa.array(seq))
    return to_series(pc.if_else(pa.array(seq > 0), ids, text_scalar("")), index)


def batch_ids(count: int, first: int = 1) -> np.ndarray:
    """batch_id(first), ..., batch_id(count) as an object array (built in Arrow, not per item)."""
    ids = _batch_id_array(pa.array(np.arange(first, count + 1, dtype=np.int64)))
    return ids.to_numpy(zero_copy_only=False)


def _batch_id_array(seq: pa.Array) -> pa.Array:
    """batch_id of each number, as Arrow strings."""
    padded = pc.utf8_lpad(pc.cast(seq, pa.large_string()), width=6, padding="0")
    return pc.binary_join_element_wise(text_scalar("b"), padded, text_scalar(""))


@dataclass(frozen=True)
class Plan:
    contacts: ContactList
    columns: PlanColumns = field(repr=False)  # the per-row results; `rows` is their frame
    batches: Batches
    template: str
    options: PlanOptions = field(default_factory=PlanOptions)
    sent_pairs: _SentPairs | None = field(default=None, repr=False, compare=False)

    @cached_property
    def rows(self) -> pd.DataFrame:
        """One row per contact row, aligned with contacts.frame; columns ROW_COLUMNS.

        Built on first use: `plan --json` (summary and sample only) never builds it."""
        return self.columns.frame()

    @cached_property
    def fingerprint(self) -> str | None:
        """See the module docstring; None when nothing would be sent."""
        return self.sent_pairs.fingerprint() if self.sent_pairs is not None else None

    def outcome_counts(self) -> dict[str, int]:
        return self.columns.outcome_counts()

    def summary(self) -> dict[str, Any]:
        """The `plan --json` object of SPEC."""
        ready = self.columns.ready()
        sizes = self.batches.sizes()
        return {
            "rows": len(ready),
            "blank_rows": sum(f.blank_rows for f in self.contacts.files),
            "outcomes": self.outcome_counts(),
            "recipients": int(ready.sum()),
            "requests": len(self.batches),
            "segments": int(self.columns.segments[ready].sum()),
            "files": [
                {"source": f.source, "rows": f.rows, "blank_rows": f.blank_rows}
                for f in self.contacts.files
            ],
            "largest_batch": int(sizes.max()) if len(sizes) else 0,
            "smallest_batch": int(sizes.min()) if len(sizes) else 0,
        }


class PlanColumns:
    """A plan's per-row results as arrays (what make_plan decided), and their frame."""

    def __init__(self, index: pd.Index, mobiles: pd.Series, state: _RowState) -> None:
        self._index, self._mobiles, self._state = index, mobiles, state

    @property
    def segments(self) -> np.ndarray:
        return self._state.segments

    def ready(self) -> np.ndarray:
        return self._state.ready()

    def outcome_counts(self) -> dict[str, int]:
        """Rows per outcome, every outcome of PLAN_OUTCOMES present."""
        counts = np.bincount(self._state.outcome_code, minlength=len(_OUTCOME_VALUES))
        return {str(o): int(counts[_OUTCOME_CODE[str(o)]]) for o in PLAN_OUTCOMES}

    def first_ready(self) -> tuple[str, str, int] | None:
        """(normalized mobile, message, segments) of the first ready row; None if none is."""
        ready = np.flatnonzero(self._state.ready())
        if not len(ready):
            return None
        row, state = ready[:1], self._state
        text = state.message_texts().take(pa.array(state.message_index(row)))[0].as_py()
        return str(self._mobiles.iloc[int(row[0])]), text, int(state.segments[row[0]])

    def refuse_if_nothing_valid(self) -> None:
        _refuse_if_nothing_valid(self._state)

    def frame(self) -> pd.DataFrame:
        state, mobiles, index = self._state, self._mobiles, self._index
        return pd.DataFrame(
            {
                "normalized_mobile": mobiles,
                "carrier": carriers(mobiles),  # "" where a number is not valid (mobile "")
                "outcome": to_series(state.outcome_column(), index),
                "reason": to_series(state.reason_column(), index),
                "message": _messages(state, index),
                "segments": state.segments,
                "batch_id": _batch_id_column(state.batch_seq, index),
            },
            index=index,
        )


def make_plan(
    contacts: ContactList,
    template_text: str,
    options: PlanOptions | None = None,
    suppressed: AbstractSet[str] = frozenset(),
    *,
    capped: Mapping[str, int] | None = None,
    allow_nothing_valid: bool = False,
) -> Plan:
    """Decide every row's outcome and build the batches (see the module docstring).

    `capped`: mobile -> messages it already got in the cap window, for the numbers at the
    cap (`store.caps.capped_mobiles`); used only when `options.max_per_recipient` is set.
    A list whose every row is invalid is an InputError, unless `allow_nothing_valid` (for a
    preview that shows why; `refuse_if_nothing_valid` raises the same error afterwards)."""
    options = options or PlanOptions()
    template = Template.parse(template_text, options.limits).resolved(contacts.columns)
    template.check_columns(contacts.columns)
    frame = contacts.frame
    if len(frame) == 0:
        raise InputError("no rows to plan: the contact list has no rows")
    state = _RowState(len(frame))
    mobiles = _check_mobiles(frame, state)
    _check_duplicates(frame, mobiles, state)
    candidates = np.flatnonzero(state.ready())  # what the store's lists may still rule out
    _render(frame, template, options, state)
    sent_pairs = _SentPairs.of(to_arrow(mobiles), state)
    _check_suppressed(mobiles, suppressed, state, candidates)
    _check_capped(mobiles, capped or {}, options, state, candidates)
    if not allow_nothing_valid:
        _refuse_if_nothing_valid(state)
    batches = _batch(state, to_arrow(mobiles), options)
    columns = PlanColumns(frame.index, mobiles, state)
    return Plan(contacts, columns, batches, template_text, options, sent_pairs)


_OUTCOME_VALUES = tuple(o.value for o in Outcome)  # outcome code -> outcome
_OUTCOME_CODE = {value: code for code, value in enumerate(_OUTCOME_VALUES)}
_READY = _OUTCOME_CODE[Outcome.READY.value]


class _RowState:
    """Per-row columns under construction (filled by masks). Outcomes and reasons are kept
    as small integer codes (a reason's code is its place in `reason_texts`) and become text
    columns once, in `outcome_column` and `reason_column`."""

    def __init__(self, n: int) -> None:
        self.outcome_code = np.full(n, _READY, dtype=np.int8)
        self.reason_code = np.zeros(n, dtype=np.int32)
        self.reason_texts: list[str] = [""]
        self._reason_codes = {"": 0}
        self.segments = np.zeros(n, dtype=np.int64)
        self.batch_seq = np.zeros(n, dtype=np.int64)  # row -> its batch's number, 0: none
        self.text_group = np.full(n, -1, dtype=np.int64)  # row -> its text group, -1: none
        self.combos: np.ndarray | None = None  # row -> its index in `distinct` (once rendered)
        self.distinct: pa.Array = pa.array([], pa.large_string())  # the rendered texts
        self.group_text = np.zeros(0, dtype=np.int64)  # text group -> its index in `distinct`
        self.text_segments = np.zeros(0, dtype=np.int64)  # text group -> segments

    def set(self, mask: np.ndarray, outcome: str, reason: str | np.ndarray) -> None:
        """`reason`: one text for every row of `mask`, or one text per row."""
        self.outcome_code[mask] = _OUTCOME_CODE[outcome]
        if isinstance(reason, str):
            self.reason_code[mask] = self._reason(reason)
            return
        codes, texts = pd.factorize(np.asarray(reason, dtype=object), use_na_sentinel=False)
        table = np.array([self._reason(t if isinstance(t, str) else "") for t in texts], np.int32)
        self.reason_code[mask] = table[codes] if len(codes) else codes

    def _reason(self, text: str) -> int:
        code = self._reason_codes.get(text)
        if code is None:
            code = self._reason_codes[text] = len(self.reason_texts)
            self.reason_texts.append(text)
        return code

    def ready(self) -> np.ndarray:
        return self.outcome_code == _READY

    def has(self, rows: np.ndarray, outcome: str) -> np.ndarray:
        """Which of `rows` have `outcome`."""
        return self.outcome_code[rows] == _OUTCOME_CODE[outcome]

    def all_invalid(self) -> bool:
        return bool((self.outcome_code == _OUTCOME_CODE[Outcome.INVALID.value]).all())

    def message_texts(self) -> pa.Array:
        """The rendered texts, then "" (the message of a row without one)."""
        return pa.concat_arrays([self.distinct, pa.array([""], pa.large_string())])

    def message_index(self, rows: np.ndarray | slice) -> np.ndarray:
        """Each of `rows`' message as an index into `message_texts()` (every row has a text
        but those ruled out before rendering)."""
        if self.combos is None:
            return np.zeros(len(self.text_group[rows]), dtype=np.int64)  # "" (no text at all)
        return np.where(self.text_group[rows] >= 0, self.combos[rows], len(self.distinct))

    def outcome_column(self) -> pa.Array:
        return pa.array(_OUTCOME_VALUES, pa.large_string()).take(pa.array(self.outcome_code))

    def reason_column(self) -> pa.Array:
        return pa.array(self.reason_texts, pa.large_string()).take(pa.array(self.reason_code))

    def rule_out(self, rows: np.ndarray, outcome: str, reason: str | np.ndarray) -> None:
        """Rows rendered as candidates that are not sent after all: no message, no group."""
        self.set(rows, outcome, reason)
        self.text_group[rows] = -1
        self.segments[rows] = 0


def _check_mobiles(frame: pd.DataFrame, state: _RowState) -> pd.Series:
    normalized = normalize_mobiles(frame["_mobile_raw"])
    valid = normalized["valid"].to_numpy(dtype=bool)
    if not valid.all():
        state.set(
            ~valid, Outcome.INVALID.value, normalized["reason"].to_numpy(dtype=object)[~valid]
        )
    return normalized["mobile"]


def _check_duplicates(frame: pd.DataFrame, mobiles: pd.Series, state: _RowState) -> None:
    valid = np.flatnonzero(state.ready())
    if not len(valid):
        return
    # valid mobiles are 11 digits: as integers they hash much faster than as text
    numbers = pc.cast(to_arrow(mobiles).take(pa.array(valid)), pa.int64())
    codes = pd.factorize(numbers.to_numpy(zero_copy_only=False), sort=False)[0].astype(np.int64)
    is_first = np.zeros(len(codes), dtype=bool)
    is_first[first_occurrences(codes)] = True
    if is_first.all():
        return
    first_row = valid[is_first][codes]  # row of the first occurrence of each row's number
    is_dup = ~is_first
    dup_rows, original = valid[is_dup], first_row[is_dup]
    taken = pa.array(original)
    sources = to_arrow(frame["_source"]).take(taken)
    lines = pc.cast(pa.array(frame["_source_row"].to_numpy()).take(taken), pa.large_string())
    reasons = pc.binary_join_element_wise(
        text_scalar("same number as "), sources, text_scalar(" row "), lines, text_scalar("")
    )
    state.set(dup_rows, Outcome.DUPLICATE.value, reasons.to_numpy(zero_copy_only=False))


def _check_suppressed(
    mobiles: pd.Series, suppressed: AbstractSet[str], state: _RowState, candidates: np.ndarray
) -> None:
    """Candidates (valid, first of their number) on the list; before any text problem."""
    if not suppressed or not len(candidates):
        return
    listed = pa.array(list(suppressed), pa.large_string())
    hit = pc.is_in(to_arrow(mobiles).take(pa.array(candidates)), value_set=listed)
    state.rule_out(
        candidates[hit.to_numpy(zero_copy_only=False)], Outcome.SUPPRESSED.value, SUPPRESSED_REASON
    )


def _check_capped(
    mobiles: pd.Series,
    capped: Mapping[str, int],
    options: PlanOptions,
    state: _RowState,
    candidates: np.ndarray,
) -> None:
    """Candidates not suppressed whose number is at the cap; reason per distinct count."""
    limit = options.max_per_recipient
    if limit is None or not capped or not len(candidates):
        return
    candidates = candidates[~state.has(candidates, Outcome.SUPPRESSED.value)]
    numbers = pa.array(list(capped), pa.large_string())
    counts = np.fromiter(capped.values(), dtype=np.int64, count=len(capped))
    found = pc.index_in(to_arrow(mobiles).take(pa.array(candidates)), value_set=numbers)
    hit = found.is_valid().to_numpy(zero_copy_only=False)
    sent = counts[pc.drop_null(found).to_numpy()]
    keep = sent >= limit
    rows, sent = candidates[hit][keep], sent[keep]
    reasons = np.empty(len(rows), dtype=object)
    for n in np.unique(sent):  # one reason per distinct count, not per row
        reasons[sent == n] = cap_reason(int(n), limit, options.cap_window_hours)
    state.rule_out(rows, Outcome.CAPPED.value, reasons)


def cap_reason(sent: int, limit: int, window_hours: float) -> str:
    """Why a number is `capped`, e.g. "already sent 2 messages in the last 24 h (...)"."""
    plural = "s" if sent != 1 else ""
    return (
        f"already sent {sent} message{plural} in the last {window_hours:g} h "
        f"(max_per_recipient = {limit})"
    )


def _render(
    frame: pd.DataFrame, template: Template, options: PlanOptions, state: _RowState
) -> None:
    ready = state.ready()
    if not ready.any():
        return
    # Every row is rendered: cheaper than first copying out the rows still in the running.
    rendered = template.render(frame[template.columns], options.signature, options.optout_text)
    combos = rendered.combos
    has_hole = ready & pc.not_equal(rendered.combo_missing, "").to_numpy(False)[combos]
    if has_hole.any():
        holes = rendered.combo_missing.take(pa.array(combos[has_hole]))
        reasons = pc.binary_join_element_wise(
            text_scalar("empty value in column "), holes, text_scalar("")
        )
        state.set(has_hole, Outcome.INVALID.value, reasons.to_numpy(zero_copy_only=False))
        ready &= ~has_hole
    # a NUL or other control character never goes out (nor into the store): no text either
    control_rows, control_reasons = control_character_rows(frame, template.columns)
    still = ready[control_rows]
    if still.any():
        state.set(control_rows[still], Outcome.INVALID.value, control_reasons[still])
        ready[control_rows] = False
    rows = np.flatnonzero(ready)
    # text groups: equal texts, numbered by first appearance among the rows still running
    codes = pd.factorize(rendered.combo_codes[combos[rows]], sort=False)[0].astype(np.int64)
    first_combos = combos[rows[first_occurrences(codes)]]  # group -> a combination with its text
    state.combos = combos
    state.distinct = rendered.combo_text
    state.group_text = first_combos
    if rendered.bmp_only:
        lengths = pc.utf8_length(state.distinct).to_numpy(zero_copy_only=False)
        lengths = lengths.astype(np.int64)[first_combos]
    else:
        lengths = utf16_lengths(state.distinct.take(pa.array(first_combos)))
    state.text_segments = segments_for_lengths(lengths)
    state.text_group[rows] = codes
    state.segments[rows] = state.text_segments[codes]
    problems = _text_problems(state.distinct, first_combos, lengths, options.sensitive_words)
    bad = problems[codes] != ""
    state.set(rows[bad], Outcome.INVALID.value, problems[codes][bad])


@dataclass(frozen=True)
class _SentPairs:
    """The (mobile, text) pairs of the rows ready before the suppression list and the cap
    had their say, kept to hash them when asked (`Plan.fingerprint`)."""

    mobiles: pa.Array  # of the rows below
    groups: np.ndarray  # their text groups
    group_text: np.ndarray  # text group -> its index in `texts`
    texts: pa.Array  # the rendered texts

    @classmethod
    def of(cls, mobiles: pa.Array, state: _RowState) -> _SentPairs | None:
        rows = np.flatnonzero(state.ready())
        if not len(rows) or state.combos is None:
            return None
        return cls(
            mobiles.take(pa.array(rows)), state.text_group[rows], state.group_text, state.distinct
        )

    def fingerprint(self) -> str:
        """sha256 of the pairs in an order that does not depend on the input order: the
        distinct texts sorted, then (mobile, rank of its text) by mobile (a mobile appears
        once: duplicates are out)."""
        groups, group_text = self.groups, self.group_text
        used = np.flatnonzero(np.bincount(groups, minlength=len(group_text)))  # sorted
        texts = self.texts.take(pa.array(group_text[used]))
        order = pc.sort_indices(texts).to_numpy()
        rank_of_group = np.zeros(len(group_text), dtype=np.int64)
        rank_of_group[used[order]] = np.arange(len(used), dtype=np.int64)
        numbers = pc.cast(self.mobiles, pa.int64()).to_numpy(zero_copy_only=False)
        by_mobile = np.argsort(numbers, kind="stable")
        pairs = np.column_stack([numbers[by_mobile], rank_of_group[groups][by_mobile]])
        digest = hashlib.sha256(_FINGERPRINT_TAG)
        _hash_texts(digest, texts.take(pa.array(order)))
        digest.update(pairs.astype("<i8").tobytes())
        return digest.hexdigest()


def _hash_texts(digest: Any, texts: pa.Array) -> None:
    """Feed the texts (large_string) to `digest`: their UTF-8 lengths, then their bytes."""
    lengths = pc.binary_length(texts).to_numpy(zero_copy_only=False).astype("<i8")
    digest.update(len(texts).to_bytes(8, "little"))
    digest.update(lengths.tobytes())
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)
    first, last = offsets[texts.offset], offsets[texts.offset + len(texts)]
    if last > first:
        digest.update(memoryview(texts.buffers()[2])[first:last])


def _text_problems(
    texts: pa.Array, first_rows: np.ndarray, lengths: np.ndarray, words: SensitiveWords | None
) -> np.ndarray:
    """Per text group (its text: texts[first_rows]): why it cannot be sent, or ""."""
    problems = np.full(len(lengths), "", dtype=object)
    if words is not None and len(words):
        found = np.empty(len(first_rows), dtype=object)
        for start in range(0, len(first_rows), SCAN_CHUNK):  # a copy of a chunk at a time
            chunk = texts.take(pa.array(first_rows[start : start + SCAN_CHUNK]))
            found[start : start + SCAN_CHUNK] = words.first_matches(chunk)
        has = found != None  # noqa: E711 (element-wise)
        problems[has] = "message contains the sensitive word " + found[has]
    too_long = lengths > MAX_LENGTH
    for length in np.unique(lengths[too_long]):  # one reason per distinct length, not per text
        problems[lengths == length] = describe_length(int(length))
    problems[lengths == 0] = "message is empty"
    return problems


def _messages(state: _RowState, index: pd.Index) -> pd.Series:
    """Each row's text where it has one (every row but those ruled out before rendering)."""
    if state.combos is None:
        return pd.Series("", index=index, dtype="str")
    which = state.message_index(slice(None))
    return to_series(state.message_texts().take(pa.array(which)), index)


def refuse_if_nothing_valid(plan: Plan) -> None:
    """The InputError of a plan whose every row is invalid (see make_plan)."""
    plan.columns.refuse_if_nothing_valid()


def _refuse_if_nothing_valid(state: _RowState) -> None:
    """InputError naming the five most frequent reasons (ties in order of first appearance)
    when no row is anything but invalid."""
    if not state.all_invalid():
        return
    codes, first, counts = np.unique(state.reason_code, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    shown = [f"{counts[i]} {state.reason_texts[codes[i]]}" for i in order[:5]]
    more = f", and {len(codes) - 5} other reasons" if len(codes) > 5 else ""
    raise InputError(
        f"no valid recipients: all {len(state.reason_code)} rows are invalid "
        f"({'; '.join(shown)}{more})"
    )


def _batch(state: _RowState, mobiles: pa.Array, options: PlanOptions) -> Batches:
    ready = np.flatnonzero(state.ready())
    groups = state.text_group[ready]
    # stable sort: groups in order of first appearance (factorize order), rows in input order
    order = np.argsort(groups, kind="stable")
    ready, groups = ready[order], groups[order]
    sizes = np.bincount(groups, minlength=len(state.group_text))
    too_small = sizes < options.min_batch
    if too_small.any():
        small_rows = too_small[groups]
        reason_of = np.full(len(sizes), "", dtype=object)
        for n in np.unique(sizes[too_small & (sizes > 0)]):  # one reason per distinct size
            reason_of[sizes == n] = _below_minimum(int(n), options.min_batch)
        state.set(ready[small_rows], Outcome.UNSENT.value, reason_of[groups[small_rows]])
        ready, groups = ready[~small_rows], groups[~small_rows]
        sizes = np.where(too_small, 0, sizes)
    starts, group_of = _chunk_offsets(sizes, options.max_batch)
    batch_of_row = np.repeat(np.arange(len(group_of)), np.diff(starts))
    state.batch_seq[ready] = batch_of_row + 1
    return Batches(
        ready, starts, group_of, state.distinct, state.group_text, state.text_segments, mobiles
    )


def _below_minimum(count: int, min_batch: int) -> str:
    return (
        f"only {count} recipient{'s' if count != 1 else ''} with this text, below the minimum "
        f"group size {min_batch} (the gateway would refuse it with 108)"
    )


def _chunk_offsets(sizes: np.ndarray, max_batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Split each group into ceil(size / max_batch) equal chunks; offsets and group per chunk."""
    if sizes.max(initial=0) <= max_batch:  # no group needs splitting: one chunk per group
        group_of = np.flatnonzero(sizes > 0)
        return np.concatenate([[0], np.cumsum(sizes[group_of])]).astype(np.int64), group_of
    chunks = -(-sizes // max_batch)
    group_of = np.repeat(np.arange(len(sizes)), chunks)
    # chunk k (0-based) of a group of size s split in c: size s // c, +1 for the first s % c
    first_chunk = np.cumsum(chunks) - chunks
    k = np.arange(len(group_of)) - first_chunk[group_of]
    c = chunks[group_of]
    s = sizes[group_of]
    chunk_sizes = s // np.maximum(c, 1) + (k < s % np.maximum(c, 1))
    starts = np.concatenate([[0], np.cumsum(chunk_sizes)]).astype(np.int64)
    return starts, group_of
