"""The Arrow form of the formula rule agrees with the one-cell rule on every kind of array."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from campaign.formula_cells import neutralise_formulas
from campaign.patterns import FORMULA_PREFIXES, neutralise_formula

CELLS = [
    "",
    "=1+1",
    "+8613800000000",
    "-5",
    "@SUM(A1)",
    "\tx",
    "\rx",
    "'=already",
    "a=b",
    " =spaced",
    "张三",
    "＝全角",  # a full-width sign is not a formula prefix
    "13800000000",
    "=",
    "-",
]


def _expected(cells: list[str]) -> list[str]:
    return [neutralise_formula(cell) for cell in cells]


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_each_cell_is_treated_as_the_one_cell_rule_does(kind: pa.DataType) -> None:
    array = pa.array(CELLS, kind)
    out = neutralise_formulas(array)
    assert out.type == kind
    assert out.to_pylist() == _expected(CELLS)


def test_sliced_and_chunked_arrays_read_their_own_cells() -> None:
    rng = random.Random(7)
    cells = [rng.choice(CELLS) + rng.choice(["", "x", "中"]) for _ in range(2_000)]
    array = pa.array(cells, pa.string())
    for lo, hi in [(0, 2_000), (1, 1_999), (997, 1_003), (1_999, 2_000), (500, 500)]:
        assert neutralise_formulas(array.slice(lo, hi - lo)).to_pylist() == _expected(cells[lo:hi])
    chunked = pa.chunked_array([array.slice(0, 3), array.slice(3, 0), array.slice(3)])
    out = neutralise_formulas(chunked)
    assert isinstance(out, pa.ChunkedArray)
    assert out.to_pylist() == _expected(cells)


def test_a_column_without_a_risky_cell_is_returned_as_it_is() -> None:
    array = pa.array(["a", "", "张三", "138"], pa.string())
    assert neutralise_formulas(array) is array
    empty = pa.array(["", "", ""], pa.string())  # no data buffer bytes at all
    assert neutralise_formulas(empty).to_pylist() == ["", "", ""]
    assert neutralise_formulas(pa.array([], pa.string())).to_pylist() == []


def test_every_prefix_is_a_single_ascii_byte() -> None:
    assert all(len(prefix.encode()) == 1 for prefix in FORMULA_PREFIXES)
