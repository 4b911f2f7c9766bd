"""`campaign run CONFIG`: the night's work of every `[[job]]`, idempotently.

For each job, in order:
1. report files in `inbox` are imported, then moved to `inbox/done/` (or `inbox/failed/`);
2. each contact file matching `contacts` whose content (SHA-256) this job has not seen
   becomes one campaign named "<job> <file name>" — a re-run, or the same file delivered
   again under another name, creates nothing. Names are unique in the store: when another
   file's campaign has that name, it is "<job> <path below the glob's folder>" ("nightly
   a/list.csv"), else "<job> <file name> <China date>", else that with " (2)", ...;
3. unfinished campaigns of the job are sent or resumed, within `send_at`, `not_after`,
   the send window and `max_per_day` (recipients per China calendar day, across runs);
   with `queue = true`, its new campaigns are handed to the `campaign worker`s instead:
   `scheduled` for the day's `send_at` (or `queued` when that has come), and the run
   sends nothing itself;
4. campaigns with news (sent or reported since their last export) are exported to
   `export/<campaign name without the file suffix>.xlsx` (`export_name`), never one file
   for two campaigns.

`not_after` (China time) is never passed. The China day a campaign may start is the day
its file was found, or the next day when it was found at or after `not_after`. A campaign
not started by `not_after` of that day is closed, its recipients `unsent` with that
reason. A campaign whose sending started goes on within [send_at, not_after) only: a run
stops claiming batches when `not_after` passes, and the rest waits for the next day's
`send_at`. The log says which, every time.

Before anything (lock, store, files), the config is checked (`jobs_check`): a problem is
a ConfigError (exit 3) and nothing happens. A lock file (flock) keeps a second
overlapping run out: it returns at once with `already_running`. Nothing here prints:
lines go to the `campaign.jobs` logger. Every decision about time uses the injected
`clock`.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine

from campaign import workflow
from campaign.config import JobSettings, Settings
from campaign.errors import CampaignError, ConfigError, ExitCode
from campaign.job_files import CONTACT_SUFFIXES, contact_files, is_lock_or_hidden
from campaign.jobs_check import CheckReport, check_config, clock_text, job_window, lock_path
from campaign.outcomes import CampaignState, StopCause
from campaign.timeutil import CHINA, china_iso, china_now

log = logging.getLogger("campaign.jobs")

REPORT_SUFFIXES = (".csv", ".xlsx", ".xls")
_WILDCARD = re.compile(r"[*?[]")
HASH_CHUNK = 1 << 20

Clock = Callable[[], datetime]


@dataclass
class JobReport:
    name: str
    imported: list[dict[str, Any]] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)  # campaign_id, until, reason
    queued: list[dict[str, Any]] = field(default_factory=list)  # handed to the workers
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
            "waiting": self.waiting,
            "queued": self.queued,
            "exported": self.exported,
            "problems": self.problems,
            "exit_code": int(self.exit_code),
        }


@dataclass
class RunReport:
    already_running: bool = False
    jobs: list[JobReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # of the config check

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
            "warnings": self.warnings,
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


def run_jobs(settings: Settings, *, clock: Clock | None = None) -> RunReport:
    """Do every job of the config once; return what happened (see the module docstring).

    `clock` (China time now; default the real one) decides everything about send_at and
    not_after. ConfigError (exit 3) before anything happens when the config check finds a
    problem."""
    clock = clock or china_now
    report = RunReport(warnings=checked_config(settings).warnings)
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


def checked_config(settings: Settings) -> CheckReport:
    """The config check; its warnings logged, its first error raised (ConfigError)."""
    check = check_config(settings)
    for warning in check.warnings:
        log.warning("%s", warning)
    for error in check.errors:
        log.error("%s", error)
    check.raise_if_invalid()
    return check


def _run_job(engine: Engine, settings: Settings, job: JobSettings, clock: Clock) -> JobReport:
    result = JobReport(job.name)
    log.info("job %s: start", job.name)
    if job.inbox:
        _import_inbox(engine, settings, job.inbox, result)
    _create_new_campaigns(engine, settings, job, clock, result)
    if job.queue:
        _hand_to_workers(engine, job, clock, result)
    else:
        _send_unfinished(engine, settings, job, clock, result)
    if job.export:
        _export_news(engine, settings, job, result)
    log.info("job %s: done (exit %d)", job.name, int(result.exit_code))
    return result


# ---------------------------------------------------------------------------- reports


def _import_inbox(engine: Engine, settings: Settings, inbox: Path, result: JobReport) -> None:
    files = sorted(
        p
        for p in inbox.glob("*")
        if p.is_file() and p.suffix.lower() in REPORT_SUFFIXES and not is_lock_or_hidden(p)
    )
    for path in files:
        try:
            [summary] = workflow.import_reports(settings, [path], engine=engine).files
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


def _create_new_campaigns(
    engine: Engine, settings: Settings, job: JobSettings, clock: Clock, result: JobReport
) -> None:
    from campaign.store.jobs import find_job_campaign, stamp_found

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
            day = clock().astimezone(CHINA).date()
            campaign_id = _create_campaign(engine, settings, job, path, key, day)
        except CampaignError as exc:
            log.error("job %s: %s not planned: %s", job.name, path, exc)
            result.problems.append(f"{path.name}: {exc}")
            result.worse(exc.exit_code)
            continue
        found = clock().astimezone(CHINA)
        stamp_found(engine, campaign_id, found)
        result.created.append(campaign_id)
        log.info("job %s: campaign %d created from %s", job.name, campaign_id, path.name)


def campaign_names(job: JobSettings, path: Path, day: date) -> list[str]:
    """The names a job campaign of `path` may get, in order (`create_campaign` takes the first
    one that is free, else the last with " (2)", ...): "<job> <file name>", "<job> <path
    below the glob's folder>", "<job> <file name> <China date>"."""
    first = f"{job.name} {path.name}"
    try:
        below = path.relative_to(glob_root(job.contacts)).as_posix()
    except ValueError:
        below = path.name
    return [first, f"{job.name} {below}", f"{first} {day:%Y-%m-%d}"]


def glob_root(pattern: str) -> Path:
    """The folder a glob searches from: its leading parts without a wildcard
    ("in/*/list.csv" -> "in"; a plain file path -> its folder)."""
    parts = Path(pattern).parts
    plain = list(itertools.takewhile(lambda part: not _WILDCARD.search(part), parts))
    if len(plain) == len(parts):
        plain = plain[:-1]
    return Path(*plain) if plain else Path()


def _create_campaign(
    engine: Engine, settings: Settings, job: JobSettings, path: Path, key: str, day: date
) -> int:
    from campaign.messages import load_template

    template = load_template(job.template)
    planned = workflow.plan_from_files(
        settings, [path], template, engine_or_url=engine, with_sample=False
    )
    first, *others = campaign_names(job, path, day)
    created = workflow.create_campaign(
        _job_settings(settings, job),
        engine,
        planned,
        name=first,
        other_names=others,
        content_key=key,
        job=job.name,
    )
    return created.campaign_id


# ---------------------------------------------------------------------------- sending


def _send_unfinished(
    engine: Engine, settings: Settings, job: JobSettings, clock: Clock, result: JobReport
) -> None:
    from campaign.store.jobs import job_campaigns

    sending_settings = _sending_settings(settings, job)
    # never a paused, scheduled or queued campaign, nor one the workers have: pause holds
    mine = (CampaignState.PLANNED, CampaignState.SENDING, CampaignState.STOPPED)
    for campaign_id in job_campaigns(engine, job.name, mine, queued=False):
        now = clock().astimezone(CHINA)
        if not _may_send(engine, job, campaign_id, now, result):
            continue
        budget = _daily_budget(engine, job, now)
        if budget is not None and budget <= 0:
            log.info("job %s: max_per_day %s reached today", job.name, job.max_per_day)
            return
        _send_one(engine, sending_settings, job, campaign_id, budget, clock, result)


def _hand_to_workers(engine: Engine, job: JobSettings, clock: Clock, result: JobReport) -> None:
    """`queue = true`: each planned campaign of the job goes to the workers, due at send_at
    of the day it may start (queued at once when that has come); one not started by
    not_after of that day is closed as the run would close it. A campaign the workers
    stopped (the gateway or the account refused) is handed to them again, as a run resumes
    its stopped campaigns."""
    from campaign.store.campaigns import get_campaign
    from campaign.store.jobs import job_campaigns
    from campaign.store.queue import schedule

    handed = (CampaignState.PLANNED, CampaignState.STOPPED)
    for campaign_id in job_campaigns(engine, job.name, handed):
        now = clock().astimezone(CHINA)
        record = get_campaign(engine, str(campaign_id))
        day = now.date()
        if record.state == CampaignState.PLANNED:
            day = _start_day(job, record.created_at.astimezone(CHINA))
            if job.not_after is not None and now >= _on(day, job.not_after):
                _expire(engine, job, campaign_id, result)
                continue
        due: datetime | None = _on(day, job.send_at)
        if due is not None and due <= now:
            due = None
        try:
            record = schedule(engine, campaign_id, due)
        except CampaignError as exc:
            log.error(
                "job %s: campaign %d not handed to the workers: %s", job.name, campaign_id, exc
            )
            result.problems.append(f"campaign {campaign_id}: {exc}")
            result.worse(exc.exit_code)
            continue
        result.queued.append(
            {"campaign_id": campaign_id, "state": record.state, "due_at": china_iso(record.due_at)}
        )
        when = f"scheduled for {due:%Y-%m-%d %H:%M} (China time)" if due else "queued"
        log.info("job %s: campaign %d %s for the workers", job.name, campaign_id, when)


def _may_send(
    engine: Engine, job: JobSettings, campaign_id: int, now: datetime, result: JobReport
) -> bool:
    """Whether the campaign may be sent now; else it is closed (not started by not_after of
    the day it would start) or waits (and the log and the report say until when)."""
    from campaign.store.campaigns import get_campaign
    from campaign.store.jobs import has_started

    record = get_campaign(engine, str(campaign_id))
    if not has_started(engine, campaign_id):
        day = _start_day(job, record.created_at.astimezone(CHINA))
        if job.not_after is not None and now >= _on(day, job.not_after):
            _expire(engine, job, campaign_id, result)
            return False
        if now.date() < day:
            reason = (
                f"found after not_after {clock_text(job.not_after or time(0, 0))} (China time); "
                f"waits for {_next_start_text(job)}"
            )
            _wait(job, campaign_id, record.name, _on(day, job.send_at), reason, result)
            return False
    if job.send_at is not None and now.time() < job.send_at:
        reason = f"waits for send_at {clock_text(job.send_at)} (China time)"
        _wait(job, campaign_id, record.name, _on(now.date(), job.send_at), reason, result)
        return False
    if job.not_after is not None and now.time() >= job.not_after:
        reason = (
            f"not_after {clock_text(job.not_after)} (China time) has passed; the rest waits "
            f"for {_next_start_text(job)}"
        )
        tomorrow = now.date() + timedelta(days=1)
        _wait(job, campaign_id, record.name, _on(tomorrow, job.send_at), reason, result)
        return False
    return True


def _start_day(job: JobSettings, found: datetime) -> date:
    """The China day a campaign found at `found` may start: that day, or the next one when
    it was found at or after not_after."""
    if job.not_after is not None and found.time() >= job.not_after:
        return found.date() + timedelta(days=1)
    return found.date()


def _on(day: date, moment: time | None) -> datetime:
    return datetime.combine(day, moment or time(0, 0), tzinfo=CHINA)


def _next_start_text(job: JobSettings) -> str:
    if job.send_at is None:
        return "tomorrow (from 00:00 China time)"
    return f"tomorrow's send_at {clock_text(job.send_at)}"


def _wait(
    job: JobSettings,
    campaign_id: int,
    name: str,
    until: datetime,
    reason: str,
    result: JobReport,
) -> None:
    result.waiting.append(
        {"campaign_id": campaign_id, "name": name, "until": china_iso(until), "reason": reason}
    )
    log.info("%s: %s", name, reason)


def _expire(engine: Engine, job: JobSettings, campaign_id: int, result: JobReport) -> None:
    from campaign.store.campaigns import set_state

    reason = f"not started by not_after {clock_text(job.not_after or time(0, 0))} China time"
    set_state(engine, campaign_id, "finished", reason=f"{reason}; left unsent")
    result.expired.append(campaign_id)
    log.warning("job %s: campaign %d %s; left unsent", job.name, campaign_id, reason)


def _job_settings(settings: Settings, job: JobSettings) -> Settings:
    if job.send_window is None:
        return settings
    return replace(settings, compliance=replace(settings.compliance, send_window=job.send_window))


def _sending_settings(settings: Settings, job: JobSettings) -> Settings:
    """The settings a run sends with: the send window narrowed to [send_at, not_after), so the
    sender stops claiming batches the moment not_after passes (by the run's clock)."""
    window = job_window(job, job.send_window or settings.compliance.send_window)
    return replace(settings, compliance=replace(settings.compliance, send_window=window))


def _daily_budget(engine: Engine, job: JobSettings, now: datetime) -> int | None:
    from campaign.send.budget import daily_budget
    from campaign.store.jobs import recipients_submitted_since

    def submitted_since(day_start: datetime) -> int:
        return recipients_submitted_since(engine, job.name, day_start)

    return daily_budget(job.max_per_day, submitted_since, now)


def _send_one(
    engine: Engine,
    settings: Settings,
    job: JobSettings,
    campaign_id: int,
    budget: int | None,
    clock: Clock,
    result: JobReport,
) -> None:
    from campaign.sender import SendPolicy

    def progress(event: Any) -> None:
        if event.kind != "progress":
            level = logging.WARNING if event.kind == "warning" else logging.INFO
            log.log(level, "campaign %d: %s", campaign_id, event.message)

    try:
        sent = workflow.send(
            settings,
            engine,
            campaign_id,
            on_progress=progress,
            no_wait=True,
            push_reports=False,
            policy=SendPolicy(clock=clock),
            max_recipients=budget,
        ).report
    except CampaignError as exc:
        log.error("campaign %d: %s", campaign_id, exc)
        result.problems.append(f"campaign {campaign_id}: {exc}")
        result.worse(exc.exit_code)
        return
    _record_sent(engine, job, sent, clock, result)


def _record_sent(
    engine: Engine, job: JobSettings, sent: Any, clock: Clock, result: JobReport
) -> None:
    if _stopped_at_not_after(job, sent, clock().astimezone(CHINA)):
        _stop_at_not_after(engine, job, sent, clock().astimezone(CHINA), result)
    result.sent.append(sent.summary())
    log.info(
        "campaign %d: %s, %d requests sent this run%s",
        sent.campaign_id,
        sent.state,
        sent.requests_sent,
        f" ({sent.stop_reason})" if sent.stop_reason else "",
    )
    if sent.exit_code in (ExitCode.GATEWAY_STOP, ExitCode.PARTIAL) and not _expected_stop(sent):
        result.worse(sent.exit_code)


def _stopped_at_not_after(job: JobSettings, sent: Any, now: datetime) -> bool:
    """The sender stopped because the job's window closed: not_after passed during the run."""
    return (
        job.not_after is not None
        and sent.state == CampaignState.STOPPED
        and sent.stop_cause is StopCause.WINDOW
        and now.time() >= job.not_after
    )


def _stop_at_not_after(
    engine: Engine, job: JobSettings, sent: Any, now: datetime, result: JobReport
) -> None:
    from campaign.store.campaigns import get_campaign, set_state

    reason = (
        f"not_after {clock_text(job.not_after or time(0, 0))} (China time) passed during the "
        f"run: no more batches claimed; the rest waits for {_next_start_text(job)}"
    )
    set_state(engine, sent.campaign_id, "stopped", reason=reason)
    sent.stop_reason, sent.stop_cause = reason, StopCause.NOT_AFTER
    name = get_campaign(engine, str(sent.campaign_id)).name
    tomorrow = _on(now.date() + timedelta(days=1), job.send_at)
    _wait(job, sent.campaign_id, name, tomorrow, reason, result)


def _expected_stop(sent: Any) -> bool:
    """Stops that are the job's rules, not a failure: max_per_day, not_after."""
    return sent.stop_cause in (StopCause.DAILY_LIMIT, StopCause.NOT_AFTER)


# ---------------------------------------------------------------------------- exports


def export_name(campaign_name: str) -> str:
    """The export file of a job campaign "<job> <file name>": "<job> <file stem>.xlsx"
    (never "list.csv.xlsx"), made safe as a file name ("nightly a/list.csv" ->
    "nightly a_list.xlsx": path separators and other characters a file name cannot
    have become "_")."""
    stem = campaign_name
    for suffix in CONTACT_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", stem).strip(" .")
    return f"{cleaned or 'campaign'}.xlsx"


def export_targets(engine: Engine, job: JobSettings, folder: Path) -> dict[int, Path]:
    """Each campaign of the job -> its export file; when two campaigns would share a name
    ("list.csv" and "list.xlsx"), the later one's carries its campaign id."""
    from campaign.store.campaigns import get_campaign
    from campaign.store.jobs import job_campaigns

    targets: dict[int, Path] = {}
    taken: set[str] = set()
    for campaign_id in job_campaigns(engine, job.name):
        name = export_name(get_campaign(engine, str(campaign_id)).name)
        if name.lower() in taken:
            name = f"{name[: -len('.xlsx')]} (campaign {campaign_id}).xlsx"
        taken.add(name.lower())
        targets[campaign_id] = folder / name
    return targets


def _export_news(engine: Engine, settings: Settings, job: JobSettings, result: JobReport) -> None:
    from campaign.store.jobs import mark_exported, needs_export
    from campaign.timeutil import utcnow

    assert job.export is not None
    for campaign_id, target in export_targets(engine, job, job.export).items():
        if not needs_export(engine, campaign_id):
            continue
        started = utcnow()
        try:
            job.export.mkdir(parents=True, exist_ok=True)
            workflow.export(settings, str(campaign_id), target, engine=engine)
        except (CampaignError, OSError) as exc:
            log.error("campaign %d: export to %s failed: %s", campaign_id, target, exc)
            result.problems.append(f"export of campaign {campaign_id}: {exc}")
            result.worse(ExitCode.BAD_INPUT)
            continue
        mark_exported(engine, campaign_id, started)
        result.exported.append(str(target))
        log.info("campaign %d: exported to %s", campaign_id, target)


__all__ = ["RunReport", "content_key", "export_name", "lock_path", "run_jobs"]
