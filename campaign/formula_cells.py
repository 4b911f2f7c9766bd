"""The Arrow form of `campaign.patterns.neutralise_formula`, for whole text columns.

A cell starting like a formula (=, +, -, @, tab, CR) gets a leading `'` (OWASP's advice on
CSV injection). The prefixes are single ASCII bytes, so a cell is risky when the first byte
of its UTF-8 text is one of them: read from the array's own offsets and data with numpy
(one gather and one table lookup a column, no Arrow array built), and only columns with a
risky cell are rewritten.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from campaign.patterns import FORMULA_PREFIXES

__all__ = ["neutralise_formulas"]

_RISKY_FIRST_BYTE = np.zeros(256, dtype=bool)
_RISKY_FIRST_BYTE[[ord(prefix) for prefix in FORMULA_PREFIXES]] = True  # all one ASCII byte
_OFFSET_TYPES = {pa.string(): np.int32, pa.large_string(): np.int64}


def neutralise_formulas(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`text` (no nulls) with a `'` before every cell that starts like a formula; string
    and large_string keep their type, other types come back as string."""
    if isinstance(text, pa.ChunkedArray):
        kind = text.type if text.type in _OFFSET_TYPES else pa.string()
        return pa.chunked_array([_neutralised(chunk) for chunk in text.chunks], kind)
    return _neutralised(text)


def _neutralised(text: pa.Array) -> pa.Array:
    if text.type not in _OFFSET_TYPES:  # another text type (none comes from the store)
        text = text.cast(pa.string())
    risky = _risky(text)
    if not risky.any():
        return text
    quote, joint = pa.scalar("'", text.type), pa.scalar("", text.type)
    return pc.if_else(pa.array(risky), pc.binary_join_element_wise(quote, text, joint), text)


def _risky(text: pa.Array) -> np.ndarray:
    """True where a cell's first byte is a formula prefix (`text`: string or large_string)."""
    _, offsets_buffer, data_buffer = text.buffers()
    if len(text) == 0 or data_buffer is None or data_buffer.size == 0:
        return np.zeros(len(text), dtype=bool)
    offset_type = _OFFSET_TYPES[text.type]
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(
        offsets_buffer, dtype=offset_type, count=len(text) + 1, offset=width * text.offset
    )
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    starts = offsets[:-1]
    filled = offsets[1:] > starts
    first = data[np.minimum(starts, data.size - 1)]
    return filled & _RISKY_FIRST_BYTE[first]
