"""`campaign run CONFIG`: the night's work of every `[[job]]`, idempotently.

For each job, in order:
1. report files in `inbox` are imported, then moved to `inbox/done/` (or `inbox/failed/`);
2. each contact file matching `contacts` whose content (SHA-256) this job has not seen
   becomes one campaign named "<job> <file name>" — a re-run, or the same file delivered
   again under another name, creates nothing;
3. unfinished campaigns of the job are sent or resumed, within `send_at`, `not_after`,
   the send window and `max_per_day` (recipients per China calendar day, across runs);
   a campaign that could not start by `not_after` is closed, its recipients `unsent`;
4. campaigns with news (sent or reported since their last export) are exported to
   `export/<campaign name>.xlsx`.

A lock file (flock) keeps a second overlapping run out: it returns at once with
`already_running`. Nothing here prints: lines go to the `campaign.jobs` logger.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine

from campaign.config import JobSettings, Settings
from campaign.errors import CampaignError, ConfigError, ExitCode
from campaign.timeutil import CHINA, china_now

log = logging.getLogger("campaign.jobs")

REPORT_SUFFIXES = (".csv", ".xlsx", ".xls")
CONTACT_SUFFIXES = (".csv", ".xlsx", ".xls")
DEFAULT_LOCK = "campaign.lock"
HASH_CHUNK = 1 << 20

Clock = Callable[[], datetime]


@dataclass
class JobReport:
    name: str
    imported: list[dict[str, Any]] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    exported: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.OK

    def worse(self, code: ExitCode) -> None:
        if _severity(code) > _severity(self.exit_code):
            self.exit_code = code

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "imported": self.imported,
            "created": self.created,
            "sent": self.sent,
            "expired": self.expired,
            "exported": self.exported,
            "problems": self.problems,
            "exit_code": int(self.exit_code),
        }


@dataclass
class RunReport:
    already_running: bool = False
    jobs: list[JobReport] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        code = ExitCode.OK
        for job in self.jobs:
            if _severity(job.exit_code) > _severity(code):
                code = job.exit_code
        return code

    def summary(self) -> dict[str, Any]:
        return {
            "already_running": self.already_running,
            "exit_code": int(self.exit_code),
            "jobs": [j.summary() for j in self.jobs],
        }


def _severity(code: ExitCode) -> int:
    order = [ExitCode.OK, ExitCode.PARTIAL, ExitCode.GATEWAY_STOP, ExitCode.BAD_INPUT]
    return order.index(code) if code in order else len(order)


class AlreadyRunning(Exception):
    pass


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking flock on `path` (released if the process dies)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = path.open("a+")
    except OSError as exc:
        raise ConfigError(f"the run lock {path} cannot be written: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(str(path)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def lock_path(settings: Settings) -> Path:
    return settings.run.lock or settings.base_dir / DEFAULT_LOCK


def run_jobs(settings: Settings, *, clock: Clock = china_now) -> RunReport:
    """Do every job of the config once; return what happened (see the module docstring)."""
    report = RunReport()
    try:
        with run_lock(lock_path(settings)):
            from campaign.store import open_store

            engine = open_store(settings.store_url)
            try:
                for job in settings.jobs:
                    report.jobs.append(_run_job(engine, settings, job, clock))
            finally:
                engine.dispose()
    except AlreadyRunning as exc:
        log.info("another campaign run holds %s: already running, nothing to do", exc)
        report.already_running = True
    return report


def _run_job(engine: Engine, settings: Settings, job: JobSettings, clock: Clock) -> JobReport:
    result = JobReport(job.name)
    log.info("job %s: start", job.name)
    if job.inbox:
        _import_inbox(engine, settings, job.inbox, result)
    _create_new_campaigns(engine, settings, job, result)
    _send_unfinished(engine, settings, job, clock, result)
    if job.export:
        _export_news(engine, job, result)
    log.info("job %s: done (exit %d)", job.name, int(result.exit_code))
    return result


# ---------------------------------------------------------------------------- reports


def _import_inbox(engine: Engine, settings: Settings, inbox: Path, result: JobReport) -> None:
    from campaign.reports import import_report_file

    files = sorted(
        p
        for p in inbox.glob("*")
        if p.is_file() and p.suffix.lower() in REPORT_SUFFIXES and not is_lock_or_hidden(p)
    )
    for path in files:
        try:
            summary = import_report_file(
                engine, path, suppress_blacklisted=settings.receiver.suppress_blacklisted
            )
        except CampaignError as exc:
            log.error("job %s: report file %s not imported: %s", result.name, path, exc)
            result.problems.append(f"{path.name}: {exc}")
            result.worse(exc.exit_code)
            _move(path, inbox / "failed")
            continue
        info = summary.to_json()
        result.imported.append(info)
        log.info("job %s: imported %s: %s", result.name, path.name, info)
        _move(path, inbox / "done")


def _move(path: Path, folder: Path) -> Path | None:
    """Move a handled report file aside; a failure only logs (importing again is harmless)."""
    try:
        return _move_into(path, folder)
    except OSError as exc:
        log.warning("%s could not be moved to %s: %s", path, folder, exc.strerror)
        return None


def _move_into(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(str(path), str(target))
    return target


# ---------------------------------------------------------------------------- campaigns


def content_key(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def contact_files(pattern: str) -> list[Path]:
    paths = [Path(p) for p in sorted(glob.glob(pattern))]
    return [
        p
        for p in paths
        if p.is_file() and p.suffix.lower() in CONTACT_SUFFIXES and not is_lock_or_hidden(p)
    ]


def is_lock_or_hidden(path: Path) -> bool:
    """Excel/WPS owner files ("~$list.xlsx", present while the list is open) and hidden files
    are not lists: never planned, imported or moved."""
    return path.name.startswith(("~$", "."))


def _create_new_campaigns(
    engine: Engine, settings: Settings, job: JobSettings, result: JobReport
) -> None:
    from campaign.store.jobs import find_job_campaign

    for path in contact_files(job.contacts):
        try:
            key = content_key(path)
        except OSError as exc:
            log.error("job %s: %s cannot be read: %s", job.name, path, exc.strerror)
            result.problems.append(f"{path.name}: cannot be read ({exc.strerror})")
            result.worse(ExitCode.BAD_INPUT)
            continue
        if find_job_campaign(engine, job.name, key) is not None:
            continue
        try:
            campaign_id = _create_campaign(engine, settings, job, path, key)
        except CampaignError as exc:
            log.error("job %s: %s not planned: %s", job.name, path, exc)
            result.problems.append(f"{path.name}: {exc}")
            result.worse(exc.exit_code)
            continue
        result.created.append(campaign_id)
        log.info("job %s: campaign %d created from %s", job.name, campaign_id, path.name)


def _create_campaign(
    engine: Engine, settings: Settings, job: JobSettings, path: Path, key: str
) -> int:
    from campaign.contacts import read_contacts
    from campaign.messages import load_template
    from campaign.plan import make_plan, plan_options
    from campaign.store.campaigns import create_campaign, settings_snapshot
    from campaign.store.caps import capped_mobiles
    from campaign.store.suppression import suppressed_set

    contacts = read_contacts([path])
    template = load_template(job.template)
    options = plan_options(settings)
    capped = capped_mobiles(engine, options.max_per_recipient, options.cap_window_hours)
    plan = make_plan(contacts, template, options, suppressed_set(engine), capped=capped)
    return create_campaign(
        engine,
        plan,
        name=f"{job.name} {path.name}",
        settings_snapshot=settings_snapshot(_job_settings(settings, job)),
        content_key=key,
        job=job.name,
    )


def _job_settings(settings: Settings, job: JobSettings) -> Settings:
    if job.send_window is None:
        return settings
    return replace(settings, compliance=replace(settings.compliance, send_window=job.send_window))


# ---------------------------------------------------------------------------- sending


def _send_unfinished(
    engine: Engine, settings: Settings, job: JobSettings, clock: Clock, result: JobReport
) -> None:
    from campaign.store.jobs import UNFINISHED_STATES, job_campaigns

    pending = job_campaigns(engine, job.name, UNFINISHED_STATES)
    if not pending:
        return
    now = clock().astimezone(CHINA)
    if job.send_at and now.time() < job.send_at:
        log.info("job %s: before send_at %s, nothing sent", job.name, _clock_text(job.send_at))
        return
    pending = [c for c in pending if not _expire_if_stale(engine, job, c, now, result)]
    for campaign_id in pending:
        budget = _daily_budget(engine, job, now)
        if budget is not None and budget <= 0:
            log.info("job %s: max_per_day %s reached today", job.name, job.max_per_day)
            return
        _send_one(engine, _job_settings(settings, job), campaign_id, budget, result)


def _expire_if_stale(
    engine: Engine, job: JobSettings, campaign_id: int, now: datetime, result: JobReport
) -> bool:
    from campaign.store.campaigns import get_campaign, set_state
    from campaign.store.jobs import has_started

    if job.not_after is None or now.time() < job.not_after:
        return False
    if has_started(engine, campaign_id):
        return False
    created = get_campaign(engine, str(campaign_id)).created_at.astimezone(CHINA)
    if created.date() == now.date() and created.time() >= job.not_after:
        # arrived after not_after today: it waits for tomorrow's send_at instead
        return False
    reason = f"not started by not_after {_clock_text(job.not_after)} China time; left unsent"
    set_state(engine, campaign_id, "finished", reason=reason)
    result.expired.append(campaign_id)
    log.warning("job %s: campaign %d %s", job.name, campaign_id, reason)
    return True


def _daily_budget(engine: Engine, job: JobSettings, now: datetime) -> int | None:
    from campaign.store.jobs import recipients_submitted_since

    if job.max_per_day is None:
        return None
    day_start = datetime.combine(now.date(), time(0, 0), tzinfo=CHINA)
    return job.max_per_day - recipients_submitted_since(engine, job.name, day_start)


def _send_one(
    engine: Engine, settings: Settings, campaign_id: int, budget: int | None, result: JobReport
) -> None:
    from campaign.gateway.client import GatewayClient
    from campaign.gateway.runtime import open_gateway
    from campaign.sender import send_campaign

    def progress(event: Any) -> None:
        if event.kind != "progress":
            level = logging.WARNING if event.kind == "warning" else logging.INFO
            log.log(level, "campaign %d: %s", campaign_id, event.message)

    try:
        with open_gateway(settings.gateway) as gateway:
            client = GatewayClient(gateway)
            try:
                sent = send_campaign(
                    engine,
                    campaign_id,
                    client,
                    replace(settings, gateway=gateway),
                    on_progress=progress,
                    no_wait=True,
                    max_recipients=budget,
                )
            finally:
                client.close()
    except CampaignError as exc:
        log.error("campaign %d: %s", campaign_id, exc)
        result.problems.append(f"campaign {campaign_id}: {exc}")
        result.worse(exc.exit_code)
        return
    summary = sent.summary()
    result.sent.append(summary)
    log.info(
        "campaign %d: %s, %d requests sent this run%s",
        campaign_id,
        sent.state,
        sent.requests_sent,
        f" ({sent.stop_reason})" if sent.stop_reason else "",
    )
    if sent.exit_code in (ExitCode.GATEWAY_STOP, ExitCode.PARTIAL) and not _daily_stop(sent):
        result.worse(sent.exit_code)


def _daily_stop(sent: Any) -> bool:
    return bool(sent.stop_reason) and "max_per_day" in str(sent.stop_reason)


# ---------------------------------------------------------------------------- exports


def export_name(campaign_name: str) -> str:
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", campaign_name).strip(" .")
    return f"{cleaned or 'campaign'}.xlsx"


def _export_news(engine: Engine, job: JobSettings, result: JobReport) -> None:
    from campaign.export import export_campaign
    from campaign.store.campaigns import get_campaign
    from campaign.store.jobs import job_campaigns, mark_exported, needs_export
    from campaign.timeutil import utcnow

    assert job.export is not None
    for campaign_id in job_campaigns(engine, job.name):
        if not needs_export(engine, campaign_id):
            continue
        started = utcnow()
        target = job.export / export_name(get_campaign(engine, str(campaign_id)).name)
        try:
            job.export.mkdir(parents=True, exist_ok=True)
            export_campaign(engine, campaign_id, target)
        except (CampaignError, OSError) as exc:
            log.error("campaign %d: export to %s failed: %s", campaign_id, target, exc)
            result.problems.append(f"export of campaign {campaign_id}: {exc}")
            result.worse(ExitCode.BAD_INPUT)
            continue
        mark_exported(engine, campaign_id, started)
        result.exported.append(str(target))
        log.info("campaign %d: exported to %s", campaign_id, target)


def _clock_text(moment: time) -> str:
    return moment.strftime("%H:%M")


__all__ = ["RunReport", "content_key", "export_name", "run_jobs"]
