"""Planner statistics on PostgreSQL: fresh before the big reads of a campaign's results.

A campaign's tables grow from nothing to millions of rows in minutes; autovacuum analyzes
them some time later. Until it does, the planner believes they hold a row or two and joins
the results query (store/results.py) in nested loops: an export of 20,000 rows right after
its send ran for more than five minutes instead of a second. `refresh_statistics` runs
ANALYZE on the tables whose statistics are missing or stale (more than a tenth of the rows
changed since), at most once every CHECK_EVERY seconds per store, and on all three when
the planner does not know the campaign being read (its rows came after the last ANALYZE:
it estimates a handful where there are thousands; the change counters alone missed it, as
a backend reports its counts to pg_stat up to seconds after its commit). ANALYZE samples a fixed
number of rows (well under a second on millions); where the store's user does not own a
table PostgreSQL skips it with a warning, and the read goes on as before. SQLite plans
these queries by its indexes, not by statistics: nothing to do there.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from campaign.patterns import first_line

log = logging.getLogger(__name__)

TABLES = ("recipients", "batches", "reports")
STALE_SHARE = 0.1  # of a table's rows changed since its last ANALYZE: stale
STALE_MIN = 1_000  # rows changed that never make a table stale by themselves
CHECK_EVERY = 30.0  # seconds between two checks of one store

_STALE = text(
    """
    SELECT c.relname
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.relid = ANY(CAST(:oids AS oid[]))
      AND (COALESCE(s.last_analyze, s.last_autoanalyze) IS NULL
           OR s.n_mod_since_analyze > :share * GREATEST(s.n_live_tup, c.reltuples) + :least)
    """
)
_OIDS = text("SELECT CAST(to_regclass(:name) AS oid)")
_TOP_ROW = text("SELECT max(row_no) FROM recipients WHERE campaign_id = :cid")
UNKNOWN_MIN = 500  # rows of a campaign below which nested loops cost nothing to speak of

_checked: dict[tuple[str, int | None], float] = {}
_lock = threading.Lock()


def refresh_statistics(
    engine: Engine, campaign_id: int | None = None, *, now: float | None = None
) -> list[str]:
    """ANALYZE the campaign tables of a PostgreSQL store whose statistics are stale, or all
    of them when the planner does not know `campaign_id`; the tables analyzed (none on
    SQLite, when checked less than CHECK_EVERY ago, or on failure)."""
    if engine.dialect.name != "postgresql":
        return []
    moment = time.monotonic() if now is None else now
    key = engine.url.render_as_string(hide_password=True)
    with _lock:
        if moment - _checked.get((key, campaign_id), float("-inf")) < CHECK_EVERY:
            return []
        _checked[(key, campaign_id)] = moment
    try:
        with engine.connect() as conn:
            oids = [conn.execute(_OIDS, {"name": name}).scalar() for name in TABLES]
            query = _STALE.bindparams(share=STALE_SHARE, least=STALE_MIN)
            stale = list(conn.execute(query, {"oids": [o for o in oids if o]}).scalars())
            if campaign_id is not None and unknown_to_planner(conn, campaign_id):
                stale = list(TABLES)
            for table in stale:
                conn.execute(text(f'ANALYZE "{table}"'))
            conn.commit()
    except SQLAlchemyError as exc:  # statistics are an optimization: the read goes on
        log.warning("could not refresh the planner's statistics: %s", first_line(exc))
        return []
    if stale:
        log.info("analyzed %s (statistics stale after a large change)", ", ".join(stale))
    return stale


def unknown_to_planner(conn: Connection, campaign_id: int) -> bool:
    """Whether the planner estimates fewer than half the campaign's recipients rows (a
    campaign of at least UNKNOWN_MIN rows; row_no counts them from 0, read by the index)."""
    top = conn.execute(_TOP_ROW, {"cid": campaign_id}).scalar()
    if top is None or top + 1 < UNKNOWN_MIN:
        return False
    # EXPLAIN takes no bound parameters: the id is an int, written as one
    explain = "EXPLAIN (FORMAT JSON) SELECT 1 FROM recipients WHERE campaign_id = "
    plan = conn.execute(text(f"{explain}{int(campaign_id)}")).scalar()
    document = json.loads(plan) if isinstance(plan, str) else plan
    if not document:
        return False
    estimate = float(document[0]["Plan"]["Plan Rows"])
    return estimate < (top + 1) / 2


def forget_checks() -> None:
    """Check every store again at the next call (tests)."""
    with _lock:
        _checked.clear()
