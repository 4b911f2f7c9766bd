"""The checks of `campaign run CONFIG` (and `--check`): everything that can be wrong with a
config before anything happens.

Per job: the template file exists, reads and parses (and renders a sample row); the
`contacts` glob matches at least one file (a warning when it does not: the file may come
later); `send_at` is before `not_after`; both are inside the job's `send_window` (or the
`[compliance]` one); `inbox` and `export` are folders that can be used. Also the `[run]`
log and lock files, and `[compliance] sensitive_words`. Nothing here writes anything: no
store, no lock, no log, no folder is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from campaign.config import JobSettings, SendWindow, Settings
from campaign.errors import CampaignError, ConfigError

DEFAULT_LOCK = "campaign.lock"
END_OF_DAY = time(23, 59, 59, 999999)


@dataclass
class JobCheck:
    """What was checked of one job (key -> what was found), and what is wrong."""

    name: str
    base: Path = Path()  # the config file's folder: paths are shown relative to it
    checked: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def ok(self, key: str, found: str) -> None:
        self.checked[key] = found

    def error(self, key: str, message: str) -> None:
        self.checked[key] = f"error: {message}"
        self.errors.append(f"job {self.name!r}: {key}: {message}")

    def warn(self, key: str, message: str) -> None:
        self.checked[key] = f"warning: {message}"
        self.warnings.append(f"job {self.name!r}: {key}: {message}")

    def show(self, path: Path | str) -> str:
        """`path` as the config file gives it: relative to the config folder when inside."""
        try:
            return str(Path(path).relative_to(self.base))
        except ValueError:
            return str(path)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checked": self.checked,
            "warnings": self.warnings,
            "errors": self.errors,
        }


@dataclass
class CheckReport:
    jobs: list[JobCheck] = field(default_factory=list)
    general_errors: list[str] = field(default_factory=list)  # [run], [compliance]

    @property
    def warnings(self) -> list[str]:
        return [w for job in self.jobs for w in job.warnings]

    @property
    def errors(self) -> list[str]:
        return self.general_errors + [e for job in self.jobs for e in job.errors]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "jobs": [job.summary() for job in self.jobs],
            "warnings": self.warnings,
            "errors": self.errors,
        }

    def raise_if_invalid(self, listed: bool = False) -> None:
        """ConfigError (exit 3) naming the first problem (and how many more there are:
        `listed` when they were shown already, else `--check` lists them)."""
        if self.ok:
            return
        first, more = self.errors[0], len(self.errors) - 1
        where = "listed above" if listed else "`campaign run CONFIG --check` lists them"
        raise ConfigError(first + (f" (and {more} more problem(s), {where})" if more else ""))


def lock_path(settings: Settings) -> Path:
    return settings.run.lock or settings.base_dir / DEFAULT_LOCK


def check_config(settings: Settings) -> CheckReport:
    """Check the whole config and every job; write nothing."""
    report = CheckReport()
    if not settings.jobs:
        where = settings.config_path or "the config"
        report.general_errors.append(f"{where} has no [[job]] table: nothing to run")
    if settings.run.log is not None:
        _general_file(report, "[run] log", settings.run.log)
    _general_file(report, "[run] lock", lock_path(settings))
    words = settings.compliance.sensitive_words
    if words is not None and not words.is_file():
        report.general_errors.append(f"[compliance] sensitive_words: no file {words}")
    for job in settings.jobs:
        report.jobs.append(check_job(settings, job))
    return report


def check_job(settings: Settings, job: JobSettings) -> JobCheck:
    check = JobCheck(job.name, settings.base_dir)
    _check_template(check, settings, job)
    _check_contacts(check, job)
    _check_times(check, job, job.send_window or settings.compliance.send_window)
    for key, folder in (("inbox", job.inbox), ("export", job.export)):
        if folder is not None:
            _check_folder(check, key, folder)
    if job.queue:
        _check_queue(check, job)
    return check


def _check_queue(check: JobCheck, job: JobSettings) -> None:
    """`queue = true`: the run hands the campaigns over at send_at; the workers send them
    in their own [compliance] send_window and know nothing of the job's other limits."""
    ignored = {
        "not_after": "stop at not_after",
        "max_per_day": "count max_per_day",
        "send_window": "keep the job's send_window (only their own [compliance] one)",
    }
    kept = [what for key, what in ignored.items() if getattr(job, key)]
    if kept:
        check.warn("queue", f"with queue = true the workers send it; they do not {', '.join(kept)}")
    else:
        check.ok("queue", "new campaigns are handed to `campaign worker`s")


# ---------------------------------------------------------------------------- template


def _check_template(check: JobCheck, settings: Settings, job: JobSettings) -> None:
    try:
        template = parse_template_file(check.show(job.template), check.base)
        _render_sample(template, settings)
    except CampaignError as exc:
        check.error("template", str(exc))
        return
    columns = ", ".join(template.columns) or "none"
    check.ok("template", f"{check.show(job.template)} parses (placeholders: {columns})")


def parse_template_file(name: str, base: Path) -> Any:
    """The template file `name` (relative to `base`), read and parsed (TemplateError when
    it cannot be)."""
    from campaign.messages import Template, load_template

    return Template.parse(load_template(name, base))


def _render_sample(template: Any, settings: Settings) -> None:
    """Render one row with every placeholder filled: what the template can do without a file
    (its columns are checked against each contact file when that file is planned)."""
    import pandas as pd

    row = pd.DataFrame({column: ["x"] for column in template.columns} or {"_": ["x"]})
    compliance = settings.compliance
    template.render(row, compliance.signature, compliance.optout_text)


# ---------------------------------------------------------------------------- contacts


def _check_contacts(check: JobCheck, job: JobSettings) -> None:
    from campaign.job_files import contact_files

    files = contact_files(job.contacts)
    if not files:
        check.warn("contacts", f"{check.show(job.contacts)} matches no contact file (yet)")
    else:
        check.ok("contacts", f"{len(files)} file(s) match {check.show(job.contacts)}")


# ---------------------------------------------------------------------------- times


def _check_times(check: JobCheck, job: JobSettings, window: SendWindow | None) -> None:
    send_at, not_after = job.send_at, job.not_after
    if send_at is not None and not_after is not None and send_at >= not_after:
        check.error(
            "send_at",
            f"send_at {clock_text(send_at)} is not before not_after {clock_text(not_after)} "
            "(China time, the same day)",
        )
        return
    if window is not None:
        where = f"the send window {window} (China time)"
        if send_at is not None and not window.contains(send_at):
            check.error("send_at", f"send_at {clock_text(send_at)} is outside {where}")
            return
        if not_after is not None and not _closes_inside(window, not_after):
            check.error("not_after", f"not_after {clock_text(not_after)} is outside {where}")
            return
    if send_at is not None or not_after is not None:
        check.ok("times", f"sends {job_window(job, window)} (China time)")


def _closes_inside(window: SendWindow, moment: time) -> bool:
    """`moment` ends a sending period inside `window` (its end itself is inside)."""
    return moment == window.end or (window.contains(moment) and moment != window.start)


def job_window(job: JobSettings, window: SendWindow | None) -> SendWindow | None:
    """The daily window this job sends in: [send_at, not_after) within the send window."""
    if job.send_at is None and job.not_after is None:
        return window
    start = job.send_at or (window.start if window else time(0, 0))
    end = job.not_after or (window.end if window else END_OF_DAY)
    return SendWindow(start, end)


def clock_text(moment: time) -> str:
    return "24:00" if moment == END_OF_DAY else moment.strftime("%H:%M")


# ---------------------------------------------------------------------------- folders


def _check_folder(check: JobCheck, key: str, folder: Path) -> None:
    problem = folder_problem(folder)
    if problem:
        check.error(key, problem)
    elif folder.is_dir():
        check.ok(key, f"{check.show(folder)} is a usable folder")
    else:
        check.ok(key, f"{check.show(folder)} does not exist yet (made when needed)")


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be used to read and write files (None when it can)."""
    if folder.exists():
        if not folder.is_dir():
            return f"{folder} is not a folder"
        if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            return f"{folder} cannot be written"
        return None
    parent = _existing_parent(folder)
    if not parent.is_dir():
        return f"{folder} cannot be made: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{folder} cannot be made: {parent} cannot be written"
    return None


def _general_file(report: CheckReport, key: str, path: Path) -> None:
    if path.is_dir():
        report.general_errors.append(f"{key}: {path} cannot be written: it is a folder")
        return
    if path.exists():
        if not os.access(path, os.W_OK):
            report.general_errors.append(f"{key}: {path} cannot be written")
        return
    problem = folder_problem(path.parent)
    if problem:
        report.general_errors.append(f"{key}: {path} cannot be written: {problem}")


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor or ".")
