"""Planning benchmark: a 1,000,000-row contact CSV planned end to end, against a naive baseline.

    .venv/bin/python bench/bench_plan.py [--rows N] [--naive-rows N] [--words N] [--repeat N]

Measured: read (campaign.contacts) + normalize + carriers + dedupe + render + compliance +
segments + batching (campaign.plan.make_plan), then the same work done naively, row by row
(pandas read_csv with the default engine, phonenumbers.parse and str.format per row, a Python
set for dedupe). The input is generated once into bench/out/ (5 columns, ~10% messy numbers,
~5% duplicates). Peak memory is the process's maxrss after the fast path (it runs first).
The speedup compares the first fast run (a fresh process, like `campaign plan`) with the
naive run (scaled linearly when --naive-rows is smaller than --rows).
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# campaign first, as in the `campaign` command: it chooses Arrow's memory pool
# (campaign/__init__.py), which only counts before pyarrow loads.
# ARROW_DEFAULT_MEMORY_POOL=mimalloc in the environment measures with Arrow's default pool.
import campaign  # noqa: E402, F401, I001
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402

from campaign.contacts import read_contacts  # noqa: E402
from campaign.messages import SensitiveWords  # noqa: E402
from campaign.plan import PlanOptions, make_plan  # noqa: E402

OUT = ROOT / "bench" / "out"
TEMPLATE = (
    "{姓名|尊敬的会员}您好，您的{会员等级|会员}积分{积分}分将于11月30日到期，"
    "双十一{城市|全国}门店积分可抵现，详询官网。"
)
SIGNATURE = "【优选商城】"
OPTOUT = "回T退订"
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英")
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", ""]
LEVELS = ["金卡", "银卡", "钻石", "普通", ""]
PREFIXES = ["138", "139", "135", "186", "187", "133", "153", "177", "199", "192", "150", "158"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    mobiles = np.char.add(
        rng.choice(PREFIXES, rows), np.char.zfill(rng.integers(0, 10**8, rows).astype(str), 8)
    ).astype(object)
    duplicate = rng.random(rows) < 0.05  # repeat an earlier row's number
    sources = (np.arange(rows) * rng.random(rows)).astype(np.int64)
    mobiles[duplicate] = mobiles[sources[duplicate]]
    messy = np.flatnonzero(rng.random(rows) < 0.10)
    kinds = rng.integers(0, 6, len(messy))
    for i, kind in zip(messy, kinds, strict=True):  # generating input, not the measured code
        m = mobiles[i]
        mobiles[i] = (
            f"+86 {m}",
            f"{m[:3]}-{m[3:7]}-{m[7:]}",
            f" {m} ",
            f"{m}.0",
            m[:10],  # too short: invalid
            "".join(chr(0xFF10 + int(d)) for d in m),  # full-width digits
        )[kind]
    write_list(path, rng, mobiles, _points)


def _points(rng: np.random.Generator, rows: int) -> np.ndarray:
    points = rng.integers(0, 20000, rows).astype(str).astype(object)
    points[rng.random(rows) < 0.01] = ""
    return points


def write_list(
    path: Path,
    rng: np.random.Generator,
    mobiles: Sequence[str] | np.ndarray,
    points: Callable[[np.random.Generator, int], Any],
) -> None:
    """The list around `mobiles` as CSV: 姓名 (3 % empty), 手机号码, 城市, 会员等级 and
    积分 (`points(rng, rows)`), drawn from `rng` in that order."""
    rows = len(mobiles)
    names = np.char.add(rng.choice(SURNAMES, rows), rng.choice(GIVEN, rows)).astype(object)
    names[rng.random(rows) < 0.03] = ""
    drawn = points(rng, rows)
    table = pa.table(
        {
            "姓名": pa.array(names, pa.string()),
            "手机号码": pa.array(mobiles, pa.string()),
            "城市": pa.array(rng.choice(CITIES, rows), pa.string()),
            "会员等级": pa.array(rng.choice(LEVELS, rows), pa.string()),
            "积分": pa.array(drawn, pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pa_csv.write_csv(table, path)


def fast(path: Path, words: SensitiveWords | None) -> tuple[float, float, dict]:
    start, cpu = time.perf_counter(), time.process_time()
    contacts = read_contacts([path])
    read = time.perf_counter() - start
    options = PlanOptions(signature=SIGNATURE, optout_text=OPTOUT, sensitive_words=words)
    plan = make_plan(contacts, TEMPLATE, options)
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu
    summary = plan.summary()
    print(f"  read {read:.2f} s, plan {total - read:.2f} s (wall); CPU time {cpu:.2f} s")
    return total, cpu, summary


def naive(path: Path, rows: int | None) -> tuple[float, float, int]:
    import pandas as pd
    import phonenumbers

    start, cpu = time.perf_counter(), time.process_time()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=rows)
    fmt = (
        TEMPLATE.replace("{姓名|尊敬的会员}", "{name}")
        .replace("{会员等级|会员}", "{level}")
        .replace("{积分}", "{points}")
        .replace("{城市|全国}", "{city}")
    )
    seen: set[str] = set()
    groups: dict[str, list[str]] = {}
    for row in frame.itertuples(index=False):
        try:
            number = phonenumbers.parse(row[1].strip(), "CN")
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(number):
            continue
        mobile = str(number.national_number)
        if len(mobile) != 11 or mobile in seen:
            continue
        seen.add(mobile)
        if not row[4].strip():
            continue
        text = fmt.format(
            name=row[0].strip() or "尊敬的会员",
            level=row[3].strip() or "会员",
            points=row[4].strip(),
            city=row[2].strip() or "全国",
        )
        text = SIGNATURE + text + OPTOUT
        length = len(text.encode("utf-16-le")) // 2
        _segments = 1 if length <= 70 else math.ceil(length / 67)
        groups.setdefault(text, []).append(mobile)
    requests = sum(math.ceil(len(m) / 50000) for m in groups.values())
    return time.perf_counter() - start, time.process_time() - cpu, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=None, help="default: all rows")
    parser.add_argument("--words", type=int, default=0, help="sensitive words to check against")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the fast path (best kept)")
    args = parser.parse_args()
    path = OUT / f"plan_{args.rows}.csv"
    if not path.exists():
        print(f"generating {path} ...")
        generate(path, args.rows)
    words = None
    if args.words:
        words = SensitiveWords(f"违禁{i:05d}" for i in range(args.words))
    print(f"fast path: {args.rows:,} rows, template with 4 placeholders, {args.words} words")
    runs, cpus = [], []
    for _ in range(args.repeat):
        seconds, cpu, summary = fast(path, words)
        runs.append(seconds)
        cpus.append(cpu)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = runs[0]  # a fresh process, as `campaign plan` always is: the figure that counts
    print(f"  total: first run {seconds:.2f} s; later runs (warm allocator) best {min(runs):.2f} s")
    print(f"  peak memory {peak_mb:.0f} MB (maxrss)")
    print(f"  outcomes {summary['outcomes']}")
    print(f"  recipients {summary['recipients']:,}, requests {summary['requests']:,}")
    naive_rows = args.naive_rows or args.rows
    print(f"naive baseline: {naive_rows:,} rows")
    naive_seconds, naive_cpu, requests = naive(path, naive_rows)
    scale = args.rows / naive_rows
    scaled, scaled_cpu = naive_seconds * scale, naive_cpu * scale
    print(f"  {naive_seconds:.2f} s wall, {naive_cpu:.2f} s CPU ({requests:,} requests)")
    if naive_rows != args.rows:
        print(f"  scaled to {args.rows:,} rows: {scaled:.1f} s wall, {scaled_cpu:.1f} s CPU")
    print(
        f"speedup (first fast run): {scaled / seconds:.1f}x wall, {scaled_cpu / cpus[0]:.1f}x CPU"
    )


if __name__ == "__main__":
    main()
