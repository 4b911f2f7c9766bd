"""The frequency cap across campaigns: messages each number got in the last hours.

A message counts when its request may have reached the phone: `accepted`, in flight
(`sending`) or `unknown`. Rejected requests and those not sent (`pending`, `unsent`) do
not. Its time is the request's `submitted_at` (stamped when it was claimed, just before it
left). One query groups the recipients of the requests in the window by mobile and keeps
the numbers at the cap; the plan marks them `capped`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, Select, and_, func, select

from campaign.outcomes import BatchState
from campaign.store.readonly import read_existing
from campaign.store.schema import batches, recipients
from campaign.timeutil import utcnow

COUNTED_STATES = (BatchState.ACCEPTED, BatchState.SENDING, BatchState.UNKNOWN)


def capped_mobiles(
    engine: Engine | Connection,
    max_per_recipient: int | None,
    window_hours: float,
    *,
    now: datetime | None = None,
) -> dict[str, int]:
    """mobile -> messages it got in the window, for the numbers that got `max_per_recipient`
    or more (no cap: empty)."""
    if max_per_recipient is None:
        return {}
    query = _capped_query(max_per_recipient, window_hours, now)
    if isinstance(engine, Connection):
        return _counts(engine, query)
    with engine.connect() as conn:
        return _counts(conn, query)


def read_capped_mobiles(
    url: str,
    max_per_recipient: int | None,
    window_hours: float,
    *,
    now: datetime | None = None,
) -> Mapping[str, int]:
    """`capped_mobiles` of the store at `url`, touching nothing (no store: nobody is capped)."""
    if max_per_recipient is None:
        return {}
    return read_existing(
        url,
        (batches.name, recipients.name),
        lambda conn: capped_mobiles(conn, max_per_recipient, window_hours, now=now),
        {},
    )


def _capped_query(max_per_recipient: int, window_hours: float, now: datetime | None) -> Select:
    since = (now or utcnow()).astimezone(UTC) - timedelta(hours=window_hours)
    sent = func.count().label("sent")
    joined = batches.join(
        recipients,
        and_(
            recipients.c.campaign_id == batches.c.campaign_id,
            recipients.c.batch_id == batches.c.batch_id,
        ),
    )
    return (
        select(recipients.c.mobile, sent)
        .select_from(joined)
        .where(
            batches.c.state.in_(COUNTED_STATES),
            batches.c.submitted_at >= since,  # stored as UTC
            recipients.c.mobile.is_not(None),
        )
        .group_by(recipients.c.mobile)
        .having(func.count() >= max_per_recipient)
    )


def _counts(conn: Connection, query: Select) -> dict[str, int]:
    return {str(mobile): int(n) for mobile, n in conn.execute(query)}
