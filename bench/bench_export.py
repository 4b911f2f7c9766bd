"""Benchmark: export of a big campaign's results (issue 7).

Builds (once, cached under bench/out/export/) a SQLite store with one campaign of ROWS input
rows: 6 original columns (+14 result columns = 20), batches of 50,000, 90% accepted with
delivery reports (some failures, some long messages with two reports), the rest rejected,
unknown or unsent. Then runs each variant in its own subprocess and prints seconds and
peak memory (ru_maxrss):

  xlsx        export_campaign(... .xlsx)            rows written as vectorized XML, the zip
                                                    deflated by zlib-ng at level 4 (default)
  xlsx-zlib   export_campaign(... .xlsx, fast_deflate=False)  the same, deflated by zlib at
                                                    level 6 (xlsxwriter's own zip step, before
                                                    issue 16)
  xlsx-cells  export_campaign(... .xlsx, fast=False) xlsxwriter's public cell API
  csv         export_campaign(... .csv)
  read        iter_results only (the SQL join and the frames; no file)
  to_excel    baseline: every row read into one DataFrame, then
              DataFrame.to_excel(engine="xlsxwriter") (results sheet only)
  xlsx-before with --before COMMIT: `xlsx` run by COMMIT's package (git archive), on the
              same store, in the same run

"zip" is the time in xlsxwriter's Workbook._store_workbook (the sheet XML assembled from the
row file, then every part deflated into the zip): the step the deflate of xlsx_zip.py changes.

Usage: python bench/bench_export.py [--rows 1000000] [--baseline-rows 200000]
       [--only xlsx,xlsx-zlib,...] [--before COMMIT]
The slow variants (xlsx-cells, to_excel) run on --baseline-rows and are extrapolated
linearly to --rows (marked "extrapolated").
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trees import git_archive  # noqa: E402  (bench/, the script's folder)

DATA = ROOT / "bench" / "out" / "export"
BATCH = 50_000
BEFORE = "xlsx-before"  # the variant of --before
COLUMNS = ["姓名", "手机号", "城市", "会员等级", "备注", "注册日期"]


def store_path(rows: int) -> Path:
    return DATA / f"export_{rows}.db"


def build_store(rows: int) -> Path:
    path = store_path(rows)
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for leftover in DATA.glob(partial.name + "*"):
        leftover.unlink()
    from campaign.store import open_store
    from campaign.store.schema import batches, campaigns, recipients, reports
    from campaign.timeutil import utcnow

    rng = random.Random(7)
    engine = open_store(f"sqlite:///{partial}")
    with engine.begin() as conn:
        conn.execute(
            campaigns.insert().values(
                id=1,
                name="bench",
                state="finished",
                template="{姓名}您好，会员专享春季特卖今日开始，全场五折起，详情见 https://x.cn/s",
                settings=json.dumps({"compliance": {"signature": "【品牌】"}}),
                columns=json.dumps(COLUMNS, ensure_ascii=False),
                files=json.dumps([{"source": "big.xlsx:Sheet1", "rows": rows}]),
                created_at=utcnow(),
            )
        )
    cities = ["上海", "北京", "广州", "深圳", "=cmd|' /C calc'!A0", "杭州"]
    statuses = ["DELIVRD"] * 18 + ["UNDELIV", "MBBLACK", "ID:0101", "CMPP20ERR:13"]
    n_batches = (rows + BATCH - 1) // BATCH
    with engine.begin() as conn:
        for b in range(n_batches):
            state = "accepted" if b % 10 != 9 else ("rejected", "unknown", "pending")[b % 3]
            conn.execute(
                batches.insert().values(
                    campaign_id=1,
                    batch_id=f"b{b + 1:06d}",
                    seq=b + 1,
                    text="x",
                    segments=2 if b % 4 == 0 else 1,
                    size=BATCH,
                    mobiles="",
                    state=state,
                    attempts=1,
                    msgid=f"2026112510{b:08d}" if state == "accepted" else None,
                    submit_code={"accepted": "0", "rejected": "107"}.get(state),
                    detail="no answer: ReadTimeout" if state == "unknown" else None,
                )
            )
        for start in range(0, rows, 100_000):
            recipient_rows, report_rows = [], []
            for i in range(start, min(rows, start + 100_000)):
                b = i // BATCH
                mobile = f"138{i:08d}"
                cells = [f"客户{i}", mobile, cities[i % 6], str(i % 5), "", "2024-03-01"]
                invalid = i % 97 == 0
                recipient_rows.append(
                    {
                        "campaign_id": 1,
                        "row_no": i,
                        "source": "big.xlsx:Sheet1",
                        "source_row": i + 2,
                        "cells": json.dumps(cells, ensure_ascii=False),
                        "mobile": None if invalid else mobile,
                        "carrier": None if invalid else "China Mobile",
                        "outcome": "invalid" if invalid else "ready",
                        "reason": "not a mobile number" if invalid else None,
                        "message": f"【品牌】客户{i}您好，会员专享春季特卖今日开始，回T退订",
                        "segments": 2 if b % 4 == 0 else 1,
                        "batch_id": None if invalid else f"b{b + 1:06d}",
                    }
                )
                if not invalid and b % 10 != 9 and i % 13:
                    msgid = f"2026112510{b:08d}"
                    when = f"2026-11-25T{10 + (i % 8):02d}:{i % 60:02d}:00+08:00"
                    report_rows.append(_report(msgid, mobile, rng.choice(statuses), when))
                    if b % 4 == 0:  # a long message: a report per part
                        report_rows.append(
                            _report(msgid, mobile, "DELIVRD", when[:14] + "59:59" + when[19:])
                        )
            conn.execute(recipients.insert(), recipient_rows)
            conn.execute(reports.insert(), report_rows)
    engine.dispose()
    for suffix in ("-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    partial.rename(path)
    return path


def _report(msgid: str, mobile: str, status: str, when: str) -> dict[str, object]:
    from campaign.timeutil import utcnow

    return {
        "msgid": msgid,
        "mobile": mobile,
        "status": status,
        "report_time": when,
        "origin": "push",
        "received_at": utcnow(),
    }


# ------------------------------------------------------------------------------- variants


def run_variant(variant: str, db: Path, out: Path) -> dict[str, object]:
    import pandas as pd
    from xlsxwriter.workbook import Workbook

    import campaign.export as export_module
    from campaign.export import export_campaign
    from campaign.result_rows import iter_results
    from campaign.store import open_store

    engine = open_store(f"sqlite:///{db}", create=False)
    reading = [0.0]

    def timed_results(*args: object, **kwargs: object) -> Iterator[pd.DataFrame]:
        chunks = iter_results(*args, **kwargs)  # type: ignore[arg-type]
        while True:
            began = time.perf_counter()
            chunk = next(chunks, None)
            reading[0] += time.perf_counter() - began
            if chunk is None:
                return
            yield chunk

    export_module.iter_results = timed_results  # type: ignore[assignment]
    zipping = [0.0]
    store_workbook = Workbook._store_workbook

    def timed_store(book: Workbook) -> None:  # the zip step: parts assembled and deflated
        began = time.perf_counter()
        store_workbook(book)
        zipping[0] += time.perf_counter() - began

    Workbook._store_workbook = timed_store  # type: ignore[method-assign]
    started = time.perf_counter()
    extra: dict[str, object] = {}
    if variant == "xlsx":
        export_campaign(engine, 1, out.with_suffix(".xlsx"))
    elif variant == "xlsx-zlib":
        export_campaign(engine, 1, out.with_suffix(".xlsx"), fast_deflate=False)
    elif variant == "xlsx-cells":
        export_campaign(engine, 1, out.with_suffix(".xlsx"), fast=False)
    elif variant == "csv":
        export_campaign(engine, 1, out.with_suffix(".csv"))
    elif variant == "read":
        extra["rows"] = sum(len(chunk) for chunk in iter_results(engine, 1))
    elif variant == "to_excel":
        frame = pd.concat(list(iter_results(engine, 1)), ignore_index=True)
        extra["read_seconds"] = round(time.perf_counter() - started, 2)
        frame.to_excel(out.with_suffix(".xlsx"), engine="xlsxwriter", index=False)
    else:
        raise SystemExit(f"unknown variant {variant}")
    seconds = time.perf_counter() - started
    if reading[0]:
        extra["read_seconds"] = round(reading[0], 2)
        extra["write_seconds"] = round(seconds - reading[0], 2)
    if zipping[0]:
        extra["zip_seconds"] = round(zipping[0], 2)
    engine.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import campaign

    extra["code"] = str(Path(campaign.__file__).parent.parent)
    return {"variant": variant, "seconds": round(seconds, 2), "peak_mb": round(peak_mb), **extra}


def extract(commit: str) -> Path:
    """The package of `commit` (git archive), under bench/out/export/tree-COMMIT."""
    tree = DATA / f"tree-{commit}"
    if not tree.exists():
        partial = tree.with_name(tree.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        git_archive(commit, partial, "campaign").rename(tree)
    return tree


def child(variant: str, rows: int, before: Path | None = None) -> dict[str, object]:
    out = DATA / f"result_{'xlsx' if variant == BEFORE else variant}_{rows}"
    command = [sys.executable, __file__, "--child", variant, "--rows", str(rows)]
    if variant == BEFORE:  # the xlsx export of the --before commit's code
        command = [*command[:3], "xlsx", "--rows", str(rows), "--tree", str(before)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{variant} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["variant"] = variant
    for suffix in (".xlsx", ".csv"):
        path = out.with_suffix(suffix)
        if path.exists():
            result["file_mb"] = round(path.stat().st_size / 2**20, 1)
            path.unlink()
    result["rows"] = rows
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=200_000)
    parser.add_argument("--child")
    parser.add_argument("--only", help="comma-separated variants")
    parser.add_argument(
        "--before", metavar="COMMIT", help="also the xlsx export of this commit (xlsx-before)"
    )
    parser.add_argument("--tree", help=argparse.SUPPRESS)  # the child's code, if not this tree
    args = parser.parse_args()
    if args.tree:
        sys.path[0] = args.tree  # in place of ROOT
    if args.child:
        out = DATA / f"result_{args.child}_{args.rows}"
        print(json.dumps(run_variant(args.child, store_path(args.rows), out)))
        return

    for rows in {args.rows, args.baseline_rows}:
        began = time.perf_counter()
        fresh = not store_path(rows).exists()
        build_store(rows)
        if fresh:
            print(f"built the {rows:,}-row store in {time.perf_counter() - began:.0f} s")
    before = extract(args.before) if args.before else None
    plan = [
        ("xlsx", args.rows),
        *([(BEFORE, args.rows)] if before else []),
        ("xlsx-zlib", args.rows),
        ("csv", args.rows),
        ("read", args.rows),
        ("xlsx", args.baseline_rows),
        *([(BEFORE, args.baseline_rows)] if before else []),
        ("xlsx-zlib", args.baseline_rows),
        ("xlsx-cells", args.baseline_rows),
        ("to_excel", args.baseline_rows),
    ]
    if args.only:
        wanted = set(args.only.split(","))
        plan = [p for p in plan if p[0] in wanted]
    results = []
    for variant, rows in plan:
        result = child(variant, rows, before)
        results.append(result)
        print(json.dumps(result), flush=True)
    print()
    print(f"{'variant':<12}{'rows':>11}{'seconds':>10}{'peak MB':>9}{'file MB':>9}  note")
    for r in results:
        note = ""
        if "write_seconds" in r:
            note = f"read {r['read_seconds']} s + write {r['write_seconds']} s"
            if "zip_seconds" in r:
                note += f" (of which zip {r['zip_seconds']} s)"
        elif "read_seconds" in r:
            note = f"of which read {r['read_seconds']} s"
        size = r.get("file_mb", "")
        head = f"{r['variant']:<12}{r['rows']:>11,}{r['seconds']:>10}{r['peak_mb']:>9}"
        print(f"{head}{size:>9}  {note}")
    by = {(r["variant"], r["rows"]): r for r in results}
    for rows in sorted({args.rows, args.baseline_rows}):
        new, old = by.get(("xlsx", rows)), by.get(("xlsx-zlib", rows))
        if new and old:
            print(
                f"\nat {rows:,} rows: zlib-ng {new['seconds']} s vs zlib {old['seconds']} s -> "
                f"{float(old['seconds']) / float(new['seconds']):.2f}x faster; file "
                f"{new['file_mb']} MB vs {old['file_mb']} MB "
                f"({float(new['file_mb']) / float(old['file_mb']) * 100 - 100:+.1f} %); zip step "
                f"{new['zip_seconds']} s vs {old['zip_seconds']} s "
                f"({float(old['zip_seconds']) / float(new['zip_seconds']):.2f}x)"
            )
    for rows in sorted({args.rows, args.baseline_rows}):
        new, old = by.get(("xlsx", rows)), by.get((BEFORE, rows))
        if new and old:
            print(
                f"\nat {rows:,} rows: xlsx {new['seconds']} s vs {args.before} "
                f"{old['seconds']} s -> {float(old['seconds']) / float(new['seconds']):.2f}x "
                f"faster; file {new['file_mb']} MB vs {old['file_mb']} MB"
            )
    base = by.get(("to_excel", args.baseline_rows))
    mine = by.get(("xlsx", args.baseline_rows))
    old_mine = by.get(("xlsx-zlib", args.baseline_rows))
    if base and old_mine:
        print(
            f"\nat {args.baseline_rows:,} rows: zlib xlsx export {old_mine['seconds']} s vs "
            f"to_excel {base['seconds']} s -> "
            f"{float(base['seconds']) / float(old_mine['seconds']):.1f}x faster"
        )
    if base and mine:
        scale = args.rows / args.baseline_rows
        print(
            f"\nat {args.baseline_rows:,} rows: xlsx export {mine['seconds']} s vs to_excel "
            f"{base['seconds']} s -> {float(base['seconds']) / float(mine['seconds']):.1f}x faster"
        )
        print(
            f"to_excel extrapolated to {args.rows:,} rows: "
            f"~{float(base['seconds']) * scale:.0f} s (linear)"
        )


if __name__ == "__main__":
    main()
