"""The queue of the `campaign worker`s: scheduling, picking what is due, pause, cancel.

A campaign with `queued` set belongs to the workers; they only ever pick those:

    planned | stopped | paused --schedule--> scheduled (due_at given) | queued (due now)
    sending --schedule(from_states=(SENDING,))--> scheduled   (a worker's window stop)
    scheduled | queued (due) --pick_due--> sending        (any number of workers join it)
    sending, nothing pending or in flight --sweep--> finished
    any but finished/cancelled --pause--> paused           (no new batch is claimed)
    any but finished/cancelled --cancel--> cancelled       (pending batches: cancelled)

Every move is a compare-and-set on the state (`UPDATE ... WHERE state IN (...)`), so two
processes racing never both win a move that only one may make; the send loop's claims read
the state in their own transaction (store/batches.py), so a pause or a cancel stops them at
their next claim. Times are the store's clock (`workers.store_clock`: the PostgreSQL
server's, shared by every host).
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, or_, select, true, update

from campaign.errors import InputError, NotFoundError
from campaign.outcomes import BatchState, CampaignState
from campaign.redact import redact
from campaign.store.campaigns import CampaignRecord, get_campaign
from campaign.store.engine import write
from campaign.store.schema import batches, campaigns
from campaign.store.workers import STALE_AFTER_SECONDS, recover_orphans, store_clock, this_host
from campaign.timeutil import in_china, utcnow

#: States a campaign may be handed to the workers from (`schedule`).
SCHEDULABLE: tuple[CampaignState, ...] = (
    CampaignState.PLANNED,
    CampaignState.SCHEDULED,
    CampaignState.QUEUED,
    CampaignState.STOPPED,
    CampaignState.PAUSED,
)
#: States `pause` moves to paused.
PAUSABLE: tuple[CampaignState, ...] = (
    CampaignState.PLANNED,
    CampaignState.SCHEDULED,
    CampaignState.QUEUED,
    CampaignState.SENDING,
    CampaignState.STOPPED,
)
#: States nothing moves a campaign out of.
ENDED: tuple[CampaignState, ...] = (CampaignState.FINISHED, CampaignState.CANCELLED)
#: States of a queued campaign that waits for its due time.
WAITING: tuple[CampaignState, ...] = (CampaignState.SCHEDULED, CampaignState.QUEUED)


@dataclass(frozen=True)
class CancelResult:
    """The cancelled campaign, and how many of its batches (and their recipients) were
    still pending and are now `cancelled`; those in flight finish and are recorded."""

    record: CampaignRecord
    cancelled_batches: int
    cancelled_recipients: int


def who_am_i() -> str:
    """USER@HOST of this process, for "paused by ..." and "cancelled by ..."."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        user = "unknown"
    return f"{user}@{this_host()}"


def schedule(
    engine: Engine,
    campaign_id: int,
    due_at: datetime | None,
    *,
    from_states: Sequence[str] = SCHEDULABLE,
) -> CampaignRecord:
    """Hand the campaign to the workers: `scheduled` for `due_at` (aware), or `queued`,
    due now, when it is None. From `from_states` (planned, scheduled, queued, stopped or
    paused; a worker whose send window closed passes `(SENDING,)`: its campaign goes straight
    from `sending` to `scheduled`, never through `stopped`); any other state is an
    InputError naming it, and nothing changes (compare-and-set)."""
    if due_at is not None and due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    unknown = set(from_states) - {*SCHEDULABLE, CampaignState.SENDING}
    if unknown:
        raise ValueError(f"a campaign is never scheduled from {sorted(unknown)}")
    with write(engine) as conn:
        when = due_at.astimezone(UTC) if due_at is not None else store_clock(conn)
        state = CampaignState.SCHEDULED if due_at is not None else CampaignState.QUEUED
        moved = (
            _move(
                conn,
                campaign_id,
                from_states,
                state=state,
                queued=True,
                due_at=when,
                stop_reason=None,
            )
            if from_states
            else False
        )
        if not moved:
            current = _state(conn, campaign_id)
            raise InputError(
                f"campaign {campaign_id} is {current}: only a {_or_list(from_states)} "
                "campaign can be handed to the workers"
            )
    return get_campaign(engine, campaign_id)


def next_due(engine: Engine, now: datetime | None = None) -> int | None:
    """The id `pick_due` picks, or None."""
    picked = pick_due(engine, now)
    return picked[0] if picked is not None else None


def pick_due(engine: Engine, now: datetime | None = None) -> tuple[int, str] | None:
    """The campaign a worker should work on now, oldest due first, and the state it was in
    before the pick ("scheduled", "queued", or "sending" when joining); None when nothing is
    due:

    - a queued campaign `scheduled`/`queued` whose due_at has come: set `sending` here
      (started_at stamped once); two workers racing for it both get it and share it (the
      one whose compare-and-set lost joins: "sending");
    - a queued campaign already `sending` with a pending batch left: join the others.
    """
    with engine.connect() as conn:
        moment = _utc(now) if now is not None else store_clock(conn)
        rows = conn.execute(_due_query(moment)).all()
    for row in rows:
        if row.state == CampaignState.SENDING:
            return int(row.id), CampaignState.SENDING.value
        with write(engine) as conn:
            started = _move(
                conn,
                row.id,
                WAITING,
                state=CampaignState.SENDING,
                started_at=func.coalesce(campaigns.c.started_at, moment),
                stop_reason=None,
                extra=(campaigns.c.queued == true(), campaigns.c.due_at <= moment),
            )
            if started:
                return int(row.id), str(row.state)
            if _state(conn, row.id) == CampaignState.SENDING:
                return int(row.id), CampaignState.SENDING.value  # another worker started it
    return None


def _due_query(moment: datetime) -> Any:
    has_pending = exists(
        select(1).where(
            batches.c.campaign_id == campaigns.c.id, batches.c.state == BatchState.PENDING
        )
    )
    due = and_(campaigns.c.state.in_(WAITING), campaigns.c.due_at <= moment)
    joining = and_(campaigns.c.state == CampaignState.SENDING, has_pending)
    return (
        select(campaigns.c.id, campaigns.c.state)
        .where(campaigns.c.queued == true(), or_(due, joining))
        .order_by(func.coalesce(campaigns.c.due_at, campaigns.c.created_at), campaigns.c.id)
        .limit(10)
    )


def pause(engine: Engine, ref: str, who: str) -> CampaignRecord:
    """Pause the campaign named by id or name: no new batch is claimed (requests in flight
    finish and are recorded). A paused campaign stays as it is; a finished or cancelled one
    is an InputError naming its state, and nothing changes."""
    record = get_campaign(engine, ref)
    reason = redact(f"paused by {who} at {_china_moment()} (China time)")
    with write(engine) as conn:
        if not _move(conn, record.id, PAUSABLE, state=CampaignState.PAUSED, stop_reason=reason):
            current = _state(conn, record.id)
            if current != CampaignState.PAUSED:
                raise InputError(_ended(record, current, "pause"))
    return get_campaign(engine, record.id)


def cancel(engine: Engine, ref: str, who: str) -> CancelResult:
    """Cancel the campaign named by id or name, in one transaction: state `cancelled`, and
    every batch still `pending` becomes `cancelled` (never sent). Batches in flight finish
    and are recorded. A finished or cancelled campaign is an InputError, nothing changes."""
    record = get_campaign(engine, ref)
    reason = redact(f"cancelled by {who} at {_china_moment()} (China time)")
    with write(engine) as conn:
        if not _move(
            conn,
            record.id,
            (),
            state=CampaignState.CANCELLED,
            stop_reason=reason,
            extra=(campaigns.c.state.not_in(ENDED),),
        ):
            raise InputError(_ended(record, _state(conn, record.id), "cancel"))
        sizes = (
            conn.execute(
                update(batches)
                .where(batches.c.campaign_id == record.id, batches.c.state == BatchState.PENDING)
                .values(
                    state=BatchState.CANCELLED, claimed_by=None, detail=f"the campaign was {reason}"
                )
                .returning(batches.c.size)
            )
            .scalars()
            .all()
        )
    return CancelResult(get_campaign(engine, record.id), len(sizes), sum(int(s) for s in sizes))


def resume_paused(engine: Engine, ref: str, *, queue: bool) -> CampaignRecord:
    """`campaign resume` of a paused (or stopped, scheduled, ...) campaign.

    queue=True: hand it to the workers: `queued`, due now (a campaign still `sending` keeps
    its state and the workers join it). queue=False: this process's send loop goes on with
    it (the normal resume sets it `sending`): the workers leave it alone from now on
    (`queued` cleared), its state stays. A cancelled campaign is an InputError; so is a
    finished one with queue=True (nothing is left to send).
    """
    record = get_campaign(engine, ref)
    with write(engine) as conn:
        current = _state(conn, record.id)
        if current == CampaignState.CANCELLED or (queue and current == CampaignState.FINISHED):
            raise InputError(_ended(record, current, "resume"))
        if queue and current in SCHEDULABLE:
            moved = _move(
                conn,
                record.id,
                (current,),
                state=CampaignState.QUEUED,
                queued=True,
                due_at=store_clock(conn),
                stop_reason=None,
            )
        else:
            moved = _move(conn, record.id, (current,), queued=queue)
        if not moved:  # the state changed under us (SQLite: never; PostgreSQL: a race)
            raise InputError(
                f"campaign {record.id} {record.name!r} changed state while it was resumed "
                f"(now {_state(conn, record.id)}): try again"
            )
    return get_campaign(engine, record.id)


def sweep(engine: Engine, *, stale_after: float = STALE_AFTER_SECONDS) -> list[int]:
    """Tidy the queued campaigns that are `sending`: batches left in flight by dead workers
    become `unknown` (`recover_orphans`); a campaign with nothing pending and nothing in
    flight left is `finished`. Returns the ids finished by this call."""
    with engine.connect() as conn:
        ids = conn.execute(
            select(campaigns.c.id)
            .where(campaigns.c.queued == true(), campaigns.c.state == CampaignState.SENDING)
            .order_by(campaigns.c.id)
        ).scalars()
        sending = [int(i) for i in ids]
    finished = []
    for campaign_id in sending:
        recover_orphans(engine, campaign_id, stale_after=stale_after)
        left = exists(
            select(1).where(
                batches.c.campaign_id == campaign_id,
                batches.c.state.in_((BatchState.PENDING, BatchState.SENDING)),
            )
        )
        with write(engine) as conn:
            done = _move(
                conn,
                campaign_id,
                (CampaignState.SENDING,),
                state=CampaignState.FINISHED,
                finished_at=store_clock(conn),
                stop_reason=None,
                extra=(~left,),
            )
        if done:
            finished.append(campaign_id)
    return finished


# ---------------------------------------------------------------------------------------------


def _move(
    conn: Connection,
    campaign_id: int,
    from_states: Sequence[str],
    *,
    extra: Sequence[Any] = (),
    **values: Any,
) -> bool:
    """Compare-and-set: apply `values` when the campaign is in one of `from_states` (any
    state when empty) and `extra` holds; whether it was."""
    where = [campaigns.c.id == campaign_id, *extra]
    if from_states:
        where.append(campaigns.c.state.in_(tuple(from_states)))
    statement = update(campaigns).where(*where).values(**values)
    return bool(conn.execute(statement).rowcount)


def _state(conn: Connection, campaign_id: int) -> str:
    state = conn.execute(select(campaigns.c.state).where(campaigns.c.id == campaign_id)).scalar()
    if state is None:
        raise NotFoundError(f"no campaign {campaign_id} in the store")
    return str(state)


def _ended(record: CampaignRecord, state: str, verb: str) -> str:
    what = {
        "pause": "there is nothing left to pause",
        "cancel": "there is nothing left to cancel",
        "resume": "nothing more is sent",
    }[verb]
    if state == CampaignState.CANCELLED and verb != "cancel":
        what = f"a cancelled campaign is never sent again; {what}"
    return f"campaign {record.id} {record.name!r} is {state}: {what}"


def _or_list(states: Sequence[str]) -> str:
    """("planned", "stopped", "paused") -> "planned, stopped or paused"."""
    names = [str(s) for s in states] or ["(no)"]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _china_moment() -> str:
    return in_china(utcnow()).strftime("%Y-%m-%d %H:%M:%S")
