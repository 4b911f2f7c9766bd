"""Benchmark: reading contact lists and normalizing mobiles (issue 3).

Generates (once, cached under bench/out/read/) a --xlsx-rows row workbook and a --csv-rows
row CSV, both 5 columns (姓名, 手机号码, 城市, 会员等级, 积分; half the xlsx mobiles are
numeric cells), then times, each against a naive baseline in the same run:

  (a) read_contacts(xlsx)              vs pandas.read_excel(engine="openpyxl")
  (b) read_contacts(csv)               vs pandas.read_csv (default C engine; and dtype=str)
  (c) normalize_mobiles(1M, ~10% messy) vs a per-row phonenumbers.parse loop on a sample,
      extrapolated linearly (marked "extrapolated"); plus carriers() on the same column.

Timings are the best of --repeat runs (baselines: of --baseline-repeat runs; the per-row
phonenumbers loop runs once). The machine is shared: compare figures of one run.

Usage: python bench/bench_read.py [--xlsx-rows 100000] [--csv-rows 1000000]
       [--mobiles 1000000] [--baseline-sample 20000] [--repeat 3] [--baseline-repeat 2]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import phonenumbers  # noqa: E402
import xlsxwriter  # noqa: E402

from campaign.contacts import read_contacts  # noqa: E402
from campaign.phones import carriers, normalize_mobiles  # noqa: E402

OUT = ROOT / "bench" / "out" / "read"
HEADERS = ["姓名", "手机号码", "城市", "会员等级", "积分"]
CITIES = ["上海", "北京", "广州", "深圳", "杭州", "成都"]
LEVELS = ["普通会员", "银卡会员", "金卡会员", "钻石会员"]


def mobiles(rng: random.Random, n: int) -> list[str]:
    return [str(rng.randrange(13_000_000_000, 20_000_000_000)) for _ in range(n)]


def make_xlsx(rows: int) -> Path:
    path = OUT / f"contacts_{rows}.xlsx"
    if path.exists():
        return path
    rng = random.Random(1)
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("名单")
    sheet.write_row(0, 0, HEADERS)
    for i, mobile in enumerate(mobiles(rng, rows), start=1):
        cell: str | int = int(mobile) if i % 2 else mobile
        sheet.write_row(i, 0, [f"客户{i}", cell, rng.choice(CITIES), rng.choice(LEVELS), i % 997])
    workbook.close()
    return path


def make_csv(rows: int) -> Path:
    path = OUT / f"contacts_{rows}.csv"
    if path.exists():
        return path
    rng = random.Random(2)
    lines = [",".join(HEADERS)]
    lines += [
        f"客户{i},{mobile},{CITIES[i % 6]},{LEVELS[i % 4]},{i % 997}"
        for i, mobile in enumerate(mobiles(rng, rows))
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def messy_mobiles(n: int) -> pd.Series:
    """~90% clean, ~10% written every which way (and a few invalid)."""
    rng = random.Random(3)
    forms: list[Callable[[str], str]] = [
        lambda m: f"{m[:3]} {m[3:7]} {m[7:]}",
        lambda m: f"+86 {m}",
        lambda m: f"0086{m}",
        lambda m: m.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        lambda m: f"{m}\u00a0",
        lambda m: f"{m[:3]}-{m[3:7]}-{m[7:]}",
        lambda m: f"{m}.0",
        lambda m: f"{int(m):.5E}",
        lambda m: m[:-1],
        lambda m: m[:5] + "abc" + m[8:],
    ]
    values = [rng.choice(forms)(m) if rng.random() < 0.1 else m for m in mobiles(rng, n)]
    return pd.Series(values, dtype="str")


def best_of(repeat: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def once(func: Callable[[], object]) -> float:
    return best_of(1, func)


def naive_normalize(values: list[str]) -> list[str]:
    """The per-row way: phonenumbers.parse each cell."""
    out = []
    for value in values:
        try:
            number = phonenumbers.parse(value, "CN")
        except phonenumbers.NumberParseException:
            out.append("")
            continue
        ok = phonenumbers.is_valid_number(number) and number.country_code == 86
        out.append(str(number.national_number) if ok else "")
    return out


def line(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<52} {seconds:8.3f} s  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--mobiles", type=int, default=1_000_000)
    parser.add_argument("--baseline-sample", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-repeat", type=int, default=2)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    xlsx = make_xlsx(args.xlsx_rows)
    print(f"(a) read a {args.xlsx_rows:,}-row 5-column .xlsx")
    ours = best_of(args.repeat, lambda: read_contacts([xlsx]))
    line("read_contacts (python-calamine)", ours)
    base = best_of(args.baseline_repeat, lambda: pd.read_excel(xlsx, engine="openpyxl"))
    line('pandas.read_excel(engine="openpyxl")', base, f"-> {base / ours:.1f}x faster")

    csv = make_csv(args.csv_rows)
    print(f"(b) read a {args.csv_rows:,}-row 5-column .csv")
    ours = best_of(args.repeat, lambda: read_contacts([csv]))
    line("read_contacts (pyarrow.csv, all text)", ours)
    base = best_of(args.baseline_repeat, lambda: pd.read_csv(csv))
    line("pandas.read_csv (default engine, types inferred)", base, f"-> {base / ours:.1f}x")
    base = best_of(args.baseline_repeat, lambda: pd.read_csv(csv, dtype=str, keep_default_na=False))
    line("pandas.read_csv(dtype=str, keep_default_na=False)", base, f"-> {base / ours:.1f}x")

    column = messy_mobiles(args.mobiles)
    print(f"(c) normalize {args.mobiles:,} mobiles (~10% messy)")
    result = normalize_mobiles(column)
    ours = best_of(args.repeat, lambda: normalize_mobiles(column))
    line(
        "normalize_mobiles (vectorized, pyarrow.compute)", ours, f"{result.valid.mean():.1%} valid"
    )
    sample = column.iloc[: args.baseline_sample].tolist()
    base = once(lambda: naive_normalize(sample)) * (args.mobiles / len(sample))
    line(
        f"per-row phonenumbers.parse ({len(sample):,} rows)",
        base,
        f"extrapolated -> {base / ours:.0f}x",
    )
    valid = result.mobile[result.valid]
    line("carriers (per distinct prefix)", best_of(args.repeat, lambda: carriers(valid)))


if __name__ == "__main__":
    main()
