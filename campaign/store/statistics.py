"""Planner statistics on PostgreSQL: fresh before the big reads of a campaign's results.

A campaign's tables grow from nothing to millions of rows in minutes; autovacuum analyzes
them some time later. Until it does, the planner believes they hold a row or two and joins
the results query (store/results.py) in nested loops: an export of 20,000 rows right after
its send ran for more than five minutes instead of a second. `refresh_statistics` runs
ANALYZE on the tables whose statistics are missing or stale (more than a tenth of the rows
changed since), at most once every CHECK_EVERY seconds per store. ANALYZE samples a fixed
number of rows (well under a second on millions); where the store's user does not own a
table PostgreSQL skips it with a warning, and the read goes on as before. SQLite plans
these queries by its indexes, not by statistics: nothing to do there.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine, text
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

_checked: dict[str, float] = {}
_lock = threading.Lock()


def refresh_statistics(engine: Engine, *, now: float | None = None) -> list[str]:
    """ANALYZE the campaign tables of a PostgreSQL store whose statistics are stale; the
    tables analyzed (none on SQLite, when checked less than CHECK_EVERY ago, or on failure)."""
    if engine.dialect.name != "postgresql":
        return []
    moment = time.monotonic() if now is None else now
    key = engine.url.render_as_string(hide_password=True)
    with _lock:
        if moment - _checked.get(key, float("-inf")) < CHECK_EVERY:
            return []
        _checked[key] = moment
    try:
        with engine.connect() as conn:
            oids = [conn.execute(_OIDS, {"name": name}).scalar() for name in TABLES]
            query = _STALE.bindparams(share=STALE_SHARE, least=STALE_MIN)
            stale = list(conn.execute(query, {"oids": [o for o in oids if o]}).scalars())
            for table in stale:
                conn.execute(text(f'ANALYZE "{table}"'))
            conn.commit()
    except SQLAlchemyError as exc:  # statistics are an optimization: the read goes on
        log.warning("could not refresh the planner's statistics: %s", first_line(exc))
        return []
    if stale:
        log.info("analyzed %s (statistics stale after a large change)", ", ".join(stale))
    return stale


def forget_checks() -> None:
    """Check every store again at the next call (tests)."""
    with _lock:
        _checked.clear()
