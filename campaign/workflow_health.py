"""The facade's part for the console's health page (/health): is everything that sends,
receives and stores there?

    health(settings, engine)   the store (answers, schema version), the `campaign worker`
                               processes alive, the workers of each campaign sending now,
                               the receiver of [receiver] (does its /healthz answer?)

Reads only; never raises for what it finds broken: that is what it reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from campaign.config import ReceiverSettings, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from campaign.store.workers import ProcessInfo, WorkerInfo


@dataclass(frozen=True)
class StoreHealth:
    answers: bool
    kind: str  # the database: "sqlite" or "postgresql" (never the URL: it may hold secrets)
    schema_version: int | None  # as the store says; None when it cannot be read
    known_version: int  # what this version of campaign writes


@dataclass(frozen=True)
class CampaignWorker:
    """A process sending a campaign now (a `send`, `resume`, or a worker's campaign)."""

    campaign_id: int
    campaign_name: str
    worker: WorkerInfo


@dataclass(frozen=True)
class ReceiverHealth:
    base_url: str  # http://HOST:PORT, as a client on this machine reaches it
    configured: bool  # [receiver] differs from the defaults
    credentials: bool  # pushes must carry receiver/pswd (never shown)
    answers: bool  # its /healthz answered OK just now


@dataclass(frozen=True)
class Health:
    store: StoreHealth
    processes: list[ProcessInfo]
    campaign_workers: list[CampaignWorker]
    receiver: ReceiverHealth


def store_health(engine: Engine) -> StoreHealth:
    from campaign.store.engine import SCHEMA_VERSION, store_answers, stored_schema_version

    answers = store_answers(engine)
    version = stored_schema_version(engine) if answers else None
    return StoreHealth(answers, engine.dialect.name, version, SCHEMA_VERSION)


def receiver_health(receiver: ReceiverSettings) -> ReceiverHealth:
    """The configured receiver, and whether its /healthz answers within a second."""
    from campaign.gateway.runtime import report_route

    route = report_route(receiver)
    return ReceiverHealth(
        route.base_url,
        configured=receiver != ReceiverSettings(),
        credentials=bool(receiver.receiver or receiver.pswd),
        answers=route.answering,
    )


def campaign_workers(engine: Engine) -> list[CampaignWorker]:
    from campaign.store.campaigns import list_campaigns
    from campaign.store.workers import all_live_workers

    found = all_live_workers(engine)
    if not found:
        return []
    names = {record.id: record.name for record in list_campaigns(engine)}
    return [CampaignWorker(c, str(names.get(c, "")), w) for c, w in found]


def health(settings: Settings, engine: Engine) -> Health:
    """See the module docstring. The store failing is reported, not raised."""
    from campaign.store.workers import live_processes

    store = store_health(engine)
    processes: list[ProcessInfo] = []
    workers: list[CampaignWorker] = []
    if store.answers:
        try:
            processes = live_processes(engine)
            workers = campaign_workers(engine)
        except Exception:  # the store went away between the two looks: it says so above
            store = StoreHealth(False, store.kind, store.schema_version, store.known_version)
    return Health(store, processes, workers, receiver_health(settings.receiver))


__all__ = [
    "CampaignWorker",
    "Health",
    "ReceiverHealth",
    "StoreHealth",
    "campaign_workers",
    "health",
    "receiver_health",
    "store_health",
]
