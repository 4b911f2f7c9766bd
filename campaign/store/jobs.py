"""Queries of `campaign run`: campaigns of a job, the daily budget, what has news to export."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, func, or_, select, update

from campaign.outcomes import SUBMITTED_STATES, BatchState
from campaign.outcomes import UNFINISHED_STATES as UNFINISHED_STATES
from campaign.store.engine import write
from campaign.store.schema import batches, campaigns, reports
from campaign.timeutil import utcnow


def find_job_campaign(engine: Engine, job: str, content_key: str) -> int | None:
    """The campaign this job already made from a file with this content, if any."""
    query = (
        select(campaigns.c.id)
        .where(campaigns.c.job == job, campaigns.c.content_key == content_key)
        .order_by(campaigns.c.id)
        .limit(1)
    )
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def job_campaigns(
    engine: Engine, job: str, states: Sequence[str] | None = None, *, queued: bool | None = None
) -> list[int]:
    """Ids of the job's campaigns (in creation order), optionally only in these states and
    only those handed to the workers (`queued=True`) or not (`queued=False`)."""
    query = select(campaigns.c.id).where(campaigns.c.job == job).order_by(campaigns.c.id)
    if states is not None:
        query = query.where(campaigns.c.state.in_(states))
    if queued is not None:
        query = query.where(campaigns.c.queued.is_(queued))
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(query).scalars()]


def recipients_submitted_since(engine: Engine, job: str, since: datetime) -> int:
    """Recipients of the job's campaigns whose request left (or may have) since `since`."""
    query = (
        select(func.coalesce(func.sum(batches.c.size), 0))
        .select_from(batches.join(campaigns, campaigns.c.id == batches.c.campaign_id))
        .where(
            campaigns.c.job == job,
            batches.c.state.in_(SUBMITTED_STATES),
            batches.c.submitted_at >= since.astimezone(UTC),  # stored as UTC
        )
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def has_started(engine: Engine, campaign_id: int) -> bool:
    """Whether any request of the campaign has left (or may have)."""
    query = select(func.count()).where(
        batches.c.campaign_id == campaign_id,
        or_(batches.c.state != BatchState.PENDING, batches.c.attempts > 0),
    )
    with engine.connect() as conn:
        return bool(conn.execute(query).scalar())


def needs_export(engine: Engine, campaign_id: int) -> bool:
    """Never exported, sent since the last export, or reports received since."""
    with engine.connect() as conn:
        exported = conn.execute(
            select(campaigns.c.exported_at).where(campaigns.c.id == campaign_id)
        ).scalar()
        if exported is None:
            return True
        newer_batch = select(func.count()).where(
            batches.c.campaign_id == campaign_id,
            or_(batches.c.answered_at > exported, batches.c.submitted_at > exported),
        )
        if conn.execute(newer_batch).scalar():
            return True
        newer_report = (
            select(func.count())
            .select_from(
                reports.join(
                    batches,
                    and_(batches.c.msgid == reports.c.msgid, batches.c.campaign_id == campaign_id),
                )
            )
            .where(reports.c.received_at > exported)
        )
        return bool(conn.execute(newer_report).scalar())


def mark_exported(engine: Engine, campaign_id: int, at: datetime | None = None) -> None:
    with write(engine) as conn:
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(exported_at=at or utcnow())
        )


def stamp_found(engine: Engine, campaign_id: int, at: datetime) -> None:
    """Record when the run found the campaign's file (the run's clock, which decides on which
    China day the campaign may start: one found after `not_after` waits for the next day)."""
    with write(engine) as conn:
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(created_at=at.astimezone(UTC))
        )
