"""A claim's UPDATE on SQLite with and without the state index in reach of the planner
(campaign/store/claim_sql.py), on a table of `--batches` pending batches:

    .venv/bin/python bench/bench_claim_plan.py [--batches 100000]

The table has the keys of the store's `batches` (primary key campaign_id + batch_id, the
index ix_batches_state on campaign_id, state, seq). The statement is the send loop's claim
(64 batch ids, compare-and-set on the state), rolled back after each of 50 runs: as written
before (`state = 'pending'`: without ANALYZE statistics SQLite searches ix_batches_state and
reads every pending batch) and now (`+state`: the 64 primary keys). Printed: milliseconds
per claim and SQLite's plan of each.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE batches (
    campaign_id INTEGER NOT NULL, batch_id TEXT NOT NULL, seq INTEGER NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL, claimed_by TEXT,
    PRIMARY KEY (campaign_id, batch_id)
);
CREATE INDEX ix_batches_state ON batches (campaign_id, state, seq);
"""
CLAIM = (
    "UPDATE batches SET state = 'sending', attempts = attempts + 1, claimed_by = 'w' "
    "WHERE campaign_id = 1 AND batch_id IN ({ids}) AND {state} = 'pending'"
)
RUNS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100_000)
    n = parser.parse_args().batches
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "claim.db")
        db.executescript(SCHEMA)
        rows = [(f"b{i:07d}", i) for i in range(n)]
        db.executemany("INSERT INTO batches VALUES (1, ?, ?, 'pending', 0, NULL)", rows)
        db.commit()
        ids = [f"b{i:07d}" for i in range(n // 2, n // 2 + 64)]
        for label, state in (("before: state", "state"), ("now: +state", "+state")):
            sql = CLAIM.format(ids=",".join("?" * len(ids)), state=state)
            start = time.perf_counter()
            for _ in range(RUNS):
                db.execute(sql, ids)
                db.rollback()
            ms = (time.perf_counter() - start) / RUNS * 1000
            plan = db.execute("EXPLAIN QUERY PLAN " + sql, ids).fetchall()[0][-1]
            print(f"{label:14s} {ms:8.2f} ms per claim of 64 among {n:,} pending; {plan}")
        db.close()


if __name__ == "__main__":
    main()
