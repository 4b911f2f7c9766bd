"""`campaign run CONFIG`: the unattended (cron) form of everything a config file describes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from campaign.cli.app import app
from campaign.cli.common import DbOption, JsonOption, handle_errors, print_json
from campaign.errors import ConfigError, ExitCode
from campaign.redact import RedactingFilter
from campaign.timeutil import ChinaTimeFormatter

if TYPE_CHECKING:
    from campaign.config import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def _setup_logging(log_file: Path | None) -> list[logging.Handler]:
    logger = logging.getLogger("campaign")
    logger.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"run.log {log_file} cannot be written: {exc.strerror}") from None
    for handler in handlers:
        handler.setFormatter(ChinaTimeFormatter(LOG_FORMAT))  # China time, with +08:00
        handler.addFilter(RedactingFilter())  # no password in any form (campaign.redact)
        logger.addHandler(handler)
    return handlers


def _check_only(settings: Settings, json_output: bool) -> None:
    """`run --check`: the config check, printed; nothing created, sent or moved."""
    from campaign.jobs_check import check_config

    report = check_config(settings)
    if json_output:
        print_json(report.summary())
    else:
        for job in report.jobs:
            found = "; ".join(f"{key}: {what}" for key, what in job.checked.items())
            typer.echo(f"job {job.name!r}: {found}")
        for warning in report.warnings:
            typer.echo(f"warning: {warning}")
        for error in report.errors:
            typer.echo(f"error: {error}")
        if report.ok:
            typer.echo(f"config OK: {len(report.jobs)} job(s), {len(report.warnings)} warning(s)")
    report.raise_if_invalid(listed=True)


@app.command("run")
@handle_errors
def run_command(
    config: Annotated[
        Path,
        typer.Argument(
            metavar="CONFIG", help="TOML config with one job table per recurring campaign."
        ),
    ],
    db: DbOption = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only check the config and every job (templates, globs, send_at/not_after, "
            "folders); exit 0 or 3. Creates, sends and moves nothing.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Do the night's work of every job table in CONFIG, idempotently (for cron).

    Imports report files from each job's inbox, creates one campaign per new contact file
    (by content hash), sends or resumes unfinished campaigns, exports campaigns with news.
    A second run while one is running exits 0 at once. A config problem (no template file,
    send_at not before not_after, ...) stops a run before anything happens (exit 3);
    --check finds such problems and does nothing else.

    Example:
      campaign run /etc/campaign/nightly.toml --json
    """
    from campaign.config import load_settings
    from campaign.jobs import run_jobs

    settings = load_settings(config, db=db, store_beside_config=True)
    if not settings.jobs:
        raise ConfigError(f"{config} has no [[job]] table: nothing to run")
    if check:
        _check_only(settings, json_output)
        return
    handlers = _setup_logging(settings.run.log)
    try:
        report = run_jobs(settings)
    finally:
        logger = logging.getLogger("campaign")
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
    if json_output:
        print_json(report.summary())
    elif report.already_running:
        typer.echo("campaign run: already running (another run holds the lock); nothing done")
    else:
        for job in report.jobs:
            typer.echo(
                f"{job.name}: {len(job.imported)} report file(s) imported, "
                f"{len(job.created)} campaign(s) created, {len(job.sent)} sent or resumed, "
                f"{len(job.exported)} exported"
                + (f", {len(job.waiting)} waiting" if job.waiting else "")
                + (f", {len(job.expired)} left unsent (not_after)" if job.expired else "")
                + (f"; problems: {'; '.join(job.problems)}" if job.problems else "")
            )
    if report.exit_code != ExitCode.OK:
        raise typer.Exit(int(report.exit_code))
