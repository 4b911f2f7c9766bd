"""`campaign run CONFIG`: the unattended (cron) form of everything a config file describes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from campaign.cli.app import app
from campaign.cli.common import DbOption, JsonOption, handle_errors, print_json
from campaign.config import load_settings
from campaign.errors import ConfigError, ExitCode
from campaign.timeutil import ChinaTimeFormatter

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
        logger.addHandler(handler)
    return handlers


@app.command("run")
@handle_errors
def run_command(
    config: Annotated[
        Path, typer.Argument(help="TOML config with one job table per recurring campaign.")
    ],
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Do the night's work of every job table in CONFIG, idempotently (for cron).

    Imports report files from each job's inbox, creates one campaign per new contact file
    (by content hash), sends or resumes unfinished campaigns, exports campaigns with news.
    A second run while one is running exits 0 at once.
    """
    from campaign.jobs import run_jobs

    settings = load_settings(config, db=db, store_beside_config=True)
    if not settings.jobs:
        raise ConfigError(f"{config} has no [[job]] table: nothing to run")
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
                + (f"; problems: {'; '.join(job.problems)}" if job.problems else "")
            )
    if report.exit_code != ExitCode.OK:
        raise typer.Exit(int(report.exit_code))
