"""The tables of a campaign's summary sheet and charts (pandas): rows per carrier or source
and outcome, and reports per hour; from the SQL of `campaign.store.results`."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, case, func, select

from campaign.errors import UsageError
from campaign.outcomes import ACCEPTED_OUTCOMES, DELIVERED_STATUS
from campaign.outcomes import RESULT_OUTCOMES as OUTCOMES
from campaign.store.results import results_select, scoped_reports
from campaign.store.statistics import refresh_statistics

__all__ = ["BREAKDOWNS", "breakdown_frame", "outcome_breakdown", "reports_per_hour"]


BREAKDOWNS = ("carrier", "source")


def outcome_breakdown(engine: Engine, campaign_id: int, by: str) -> pd.DataFrame:
    """Rows per `by` value ("carrier" or "source") and outcome.

    Columns: `by`, rows, one column per outcome (SPEC order), delivery_rate (delivered over
    accepted, NaN when nothing was accepted). Sorted by rows, most first (ties by value); "" for no
    value.
    """
    if by not in BREAKDOWNS:
        raise UsageError(f"breakdown by {by!r}; use one of {', '.join(BREAKDOWNS)}")
    refresh_statistics(engine, campaign_id)
    sub = results_select(campaign_id).subquery()
    key = func.coalesce(sub.c[by], "")
    query = select(key.label(by), sub.c.outcome, func.count().label("n")).group_by(
        key, sub.c.outcome
    )
    with engine.connect() as conn:
        long = pd.DataFrame(conn.execute(query).fetchall(), columns=[by, "outcome", "n"])
    return breakdown_frame(long, by)


def breakdown_frame(long: pd.DataFrame, by: str) -> pd.DataFrame:
    """`outcome_breakdown`'s table from counts in long form (columns: by, outcome, n)."""
    if long.empty:
        columns = [by, "rows", *map(str, OUTCOMES), "delivery_rate"]
        return pd.DataFrame({c: pd.Series(dtype=object if c == by else "int64") for c in columns})
    long = long.astype({"n": "int64"})
    wide = long.pivot_table(index=by, columns="outcome", values="n", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=list(map(str, OUTCOMES)), fill_value=0).astype("int64")
    wide.insert(0, "rows", wide.sum(axis=1))
    accepted = wide[list(map(str, ACCEPTED_OUTCOMES))].sum(axis=1)
    wide["delivery_rate"] = (wide["delivered"] / accepted.where(accepted > 0)).astype("float64")
    wide = wide.sort_index().sort_values("rows", ascending=False, kind="stable")
    return wide.reset_index().rename_axis(columns=None)


def reports_per_hour(engine: Engine, campaign_id: int) -> pd.DataFrame:
    """Reports of the campaign's recipients per hour of report time (China time).

    Columns: hour ("YYYY-MM-DD HH:00"), reports, delivered (DELIVRD reports), in time order.
    """
    scoped = scoped_reports(campaign_id, None, None)
    hour = func.substr(scoped.c.report_time, 1, 13)
    query = (
        select(
            hour.label("hour"),
            func.count().label("reports"),
            func.sum(case((scoped.c.status == DELIVERED_STATUS, 1), else_=0)).label("delivered"),
        )
        .group_by(hour)
        .order_by(hour)
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(query).fetchall(), columns=["hour", "reports", "delivered"]
        )
    frame["hour"] = frame["hour"].astype(str).str.replace("T", " ", regex=False) + ":00"
    return frame.astype({"reports": "int64", "delivered": "int64"})
