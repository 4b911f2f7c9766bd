"""Planning a messy list as a user does: `campaign plan FILE --text T --json` in a fresh
process (imports included), against the naive per-row plan of bench_plan.py, same run.

    .venv/bin/python bench/bench_plan_messy.py [--rows 1000000] [--naive-rows 200000]
        [--runs 3]

The input (generated once into bench/out/, seed fixed): the columns of bench_plan.py
(姓名, 手机号码, 城市, 会员等级, 积分) and every way of writing a number that
tests/test_phones.py accepts (spaces, dashes, dots, brackets, +86 / 0086 / 86, full-width
digits and punctuation, no-break and ideographic spaces, zero-width characters, tabs and
line ends, Excel's ".0" and exact scientific notation, a leading apostrophe): 60 % of the
rows plain, 40 % in one of those forms; 3 % in a form it refuses (10 or 12 digits, letters,
lost digits "1.39002E+10", two numbers in a cell, a foreign code); 5 % repeat an earlier
row's number, written another way. The texts: a personalized template with fallbacks
whose values make ~30 % of the rows' texts distinct.

Printed per run: wall seconds of the `campaign plan` process, its peak memory (maxrss,
from wait4), the recipients and requests of its JSON; the naive plan's wall seconds on
`--naive-rows` rows, scaled to `--rows`; the ratio. Targets (issue 16): >= 10x, <= 2.5 s,
< 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from bench_plan import (  # noqa: E402
    OPTOUT,
    PREFIXES,
    SIGNATURE,
    naive,
    write_list,
)
from bench_plan import TEMPLATE as BODY  # noqa: E402

OUT = ROOT / "bench" / "out"
TEMPLATE = SIGNATURE + BODY + OPTOUT
POINTS = [str(p) for p in range(500, 7500, 500)]  # 14 values: ~30 % distinct texts at 1M
WIDE = str.maketrans("0123456789+-()", "０１２３４５６７８９＋－（）")

VALID_FORMS = (  # each a function of the 11 digits
    lambda m: f" {m} ",
    lambda m: f"{m[:3]} {m[3:7]} {m[7:]}",
    lambda m: f"{m[:3]}-{m[3:7]}-{m[7:]}",
    lambda m: f"{m[:3]}.{m[3:7]}.{m[7:]}",
    lambda m: f"({m[:3]}){m[3:7]}-{m[7:]}",
    lambda m: f"+86 {m[:3]} {m[3:7]} {m[7:]}",
    lambda m: f"+86-{m[:3]}-{m[3:7]}-{m[7:]}",
    lambda m: f"(+86){m}",
    lambda m: f"+86{m}",
    lambda m: f"0086 {m}",
    lambda m: f"0086{m}",
    lambda m: f"86{m}",
    lambda m: m.translate(WIDE),
    lambda m: f"+86 {m[:3]}-{m[3:7]}-{m[7:]}".translate(WIDE),
    lambda m: f"（{m[:3]}）{m[3:7]}－{m[7:]}",
    lambda m: f"{m[:3]}\u00a0{m[3:7]}\u00a0{m[7:]}",
    lambda m: f"\u3000{m}\u3000",
    lambda m: f"\t{m}\n",
    lambda m: f"\u200b{m}\ufeff",
    lambda m: f"{m}.0",
    lambda m: f"{m}.00",
    lambda m: f"+86{m}.0",
    lambda m: f"{m[0]}.{m[1:]}E+10",
    lambda m: f"{m[:3]}—{m[3:7]}—{m[7:]}",
    lambda m: f"'{m}",
)
INVALID_FORMS = (
    lambda m: m[:10],
    lambda m: m + "1",
    lambda m: f"{m[:5]}abc{m[8:]}",
    lambda m: f"{m[0]}.{m[1:6]}E+10",
    lambda m: f"{m} / 13800138000",
    lambda m: f"+852 {m[3:7]} {m[7:]}",
    lambda m: "",
)


def generate(path: Path, rows: int, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    digits = np.char.add(
        rng.choice(PREFIXES, rows), np.char.zfill(rng.integers(0, 10**8, rows).astype(str), 8)
    ).astype(object)
    repeat = rng.random(rows) < 0.05
    earlier = (np.arange(rows) * rng.random(rows)).astype(np.int64)
    digits[repeat] = digits[earlier[repeat]]
    kind = rng.random(rows)
    valid_form = rng.integers(0, len(VALID_FORMS), rows)
    invalid_form = rng.integers(0, len(INVALID_FORMS), rows)
    mobiles = [  # generating the input, not the measured code
        INVALID_FORMS[invalid_form[i]](m)
        if kind[i] < 0.03
        else (VALID_FORMS[valid_form[i]](m) if kind[i] < 0.43 else m)
        for i, m in enumerate(digits)
    ]
    write_list(path, rng, mobiles, lambda rng, rows: rng.choice(POINTS, rows))


def plan_process(path: Path, folder: Path) -> tuple[float, float, dict]:
    """Wall seconds and peak MB of `campaign plan PATH --text T --json`, and its JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "campaign", "plan", str(path), "--text", TEMPLATE, "--json"]
    start = time.perf_counter()
    child = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE)
    assert child.stdout is not None
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"campaign plan failed ({child.returncode})")
    return wall, usage.ru_maxrss / 1024, json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="`campaign plan` processes")
    args = parser.parse_args()
    path = OUT / f"plan_messy_{args.rows}.csv"
    if not path.exists():
        print(f"generating {path} ...")
        generate(path, args.rows)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average {os.getloadavg()[0]:.2f}")
    folder = OUT / "plan_messy_cwd"  # no campaign.db there: plan reads no store
    folder.mkdir(parents=True, exist_ok=True)
    walls, peaks = [], []
    for run in range(1, args.runs + 1):
        wall, peak, found = plan_process(path, folder)
        walls.append(wall)
        peaks.append(peak)
        texts = found.get("texts", found.get("distinct_texts"))
        print(
            f"  run {run}: campaign plan --json {wall:.2f} s wall, peak {peak:,.0f} MB; "
            f"recipients {found['recipients']:,}, requests {found['requests']:,}, "
            f"texts {texts}, outcomes {found['outcomes']}"
        )
    naive_seconds, _, requests = naive(path, args.naive_rows)
    scaled = naive_seconds * args.rows / args.naive_rows
    print(
        f"  naive per-row plan: {naive_seconds:.2f} s on {args.naive_rows:,} rows "
        f"({requests:,} requests), scaled to {args.rows:,}: {scaled:.1f} s"
    )
    best, median = min(walls), statistics.median(walls)
    print(
        f"campaign plan: best {best:.2f} s, median {median:.2f} s; ratio to naive "
        f"{scaled / median:.1f}x (median), peak {max(peaks):,.0f} MB; load average "
        f"{os.getloadavg()[0]:.2f}. Targets: >= 10x, <= 2.5 s, < 1 GB"
    )


if __name__ == "__main__":
    main()
