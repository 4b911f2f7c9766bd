"""`campaign run CONFIG` is safe by default: never sent after `not_after` (by an injected
clock), config problems stop it before anything happens, `run --check` does nothing else."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import load_settings
from campaign.jobs import export_name, run_jobs
from campaign.store import open_store
from campaign.store.campaigns import get_campaign
from campaign.store.results import outcome_counts
from campaign.timeutil import CHINA
from tests.support.simulator import running_simulator
from tests.test_jobs import write_config, write_contacts

DAY1 = date(2026, 3, 2)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY2 + timedelta(days=1)


def at(day: date, hour: int, minute: int = 0, second: int = 0):
    moment = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=CHINA)
    return lambda: moment


def sent_mobiles(sim) -> Counter[str]:
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def invoke(*args: str):
    return CliRunner().invoke(app, ["run", *map(str, args)])


def settings_for(config: Path, store_url: str):
    return load_settings(config, db=store_url, store_beside_config=True)


# ---------------------------------------------------------------------------- not_after


def test_file_found_after_not_after_waits_for_the_next_days_send_at(
    tmp_path, store_url, monkeypatch
):
    """The user's case: send_at 00:00, not_after a minute ago, a new file: nothing is sent
    that night; the first run after the next day's send_at sends it, once."""
    with running_simulator() as sim:
        config = write_config(tmp_path, sim.url, extra='send_at = "00:00"\nnot_after = "20:00"')
        write_contacts(tmp_path / "incoming" / "list.csv", 0, 12)
        monkeypatch.setattr("campaign.jobs.china_now", at(DAY1, 20, 1))
        result = invoke(config, "--db", store_url, "--json")
        assert result.exit_code == 0, result.output
        (job,) = json.loads(result.stdout)["jobs"]
        assert len(job["created"]) == 1 and job["sent"] == [] and job["expired"] == []
        (waiting,) = job["waiting"]
        assert waiting["reason"] == (
            "found after not_after 20:00 (China time); waits for tomorrow's send_at 00:00"
        )
        assert waiting["until"] == "2026-03-03T00:00:00+08:00"
        assert sim.received() == []
        log_text = (tmp_path / "logs" / "campaign.log").read_text(encoding="utf-8")
        assert "weekly list.csv: found after not_after 20:00 (China time); waits for" in log_text

        settings = settings_for(config, store_url)
        late = run_jobs(settings, clock=at(DAY1, 23, 59))
        assert late.jobs[0].waiting and sim.received() == []

        next_day = run_jobs(settings, clock=at(DAY2, 0, 5))
        assert next_day.exit_code == 0 and next_day.jobs[0].waiting == []
        assert next_day.jobs[0].sent and sum(sent_mobiles(sim).values()) == 12
        again = run_jobs(settings, clock=at(DAY2, 9))
        assert again.jobs[0].sent == [] and sum(sent_mobiles(sim).values()) == 12
        assert max(sent_mobiles(sim).values()) == 1


def test_campaign_not_started_by_not_after_of_its_day_is_left_unsent(tmp_path, sqlite_url):
    with running_simulator() as sim:
        config = write_config(tmp_path, sim.url, extra='send_at = "09:00"\nnot_after = "20:00"')
        write_contacts(tmp_path / "incoming" / "list.csv", 0, 5)
        settings = settings_for(config, sqlite_url)
        found = run_jobs(settings, clock=at(DAY1, 21))
        assert found.jobs[0].waiting  # found after not_after: its day is DAY2
        missed = run_jobs(settings, clock=at(DAY2, 20, 30))  # no run in DAY2's window
        (campaign_id,) = missed.jobs[0].expired
        assert missed.exit_code == 0 and sim.received() == []
        run_jobs(settings, clock=at(DAY3, 10))
        assert sim.received() == []
        engine = open_store(settings.store_url)
        try:
            assert outcome_counts(engine, campaign_id)["unsent"] == 5
            record = get_campaign(engine, str(campaign_id))
            assert (record.state, record.stop_reason) == (
                "finished",
                "not started by not_after 20:00 China time; left unsent",
            )
        finally:
            engine.dispose()


def test_run_passing_not_after_stops_claiming_and_the_rest_waits(tmp_path, store_url, caplog):
    with running_simulator() as sim:
        config = write_config(
            tmp_path,
            sim.url,
            rate=20,
            extra='send_at = "09:00"\nnot_after = "20:00"',
        )
        text = config.read_text(encoding="utf-8").replace(
            "timeout = 5", "timeout = 5\nmax_batch = 1"
        )
        config.write_text(text, encoding="utf-8")
        write_contacts(tmp_path / "incoming" / "list.csv", 0, 40)
        settings = settings_for(config, store_url)

        def clock() -> datetime:  # not_after passes once five requests have left
            minute, second = (59, 0) if len(sim.received()) < 5 else (60, 30)
            return datetime(2026, 3, 2, 19, 0, tzinfo=CHINA) + timedelta(
                minutes=minute, seconds=second
            )

        with caplog.at_level(logging.INFO, logger="campaign.jobs"):
            night = run_jobs(settings, clock=clock)
        assert night.exit_code == 0
        first = sum(sent_mobiles(sim).values())
        assert 5 <= first < 40
        (job,) = night.jobs
        (waiting,) = job.waiting
        assert "passed during the run" in waiting["reason"]
        assert "tomorrow's send_at 09:00" in waiting["reason"]
        assert "passed during the run" in caplog.text
        engine = open_store(settings.store_url)
        try:
            campaign_id = job.created[0]
            assert get_campaign(engine, str(campaign_id)).state == "stopped"
            assert outcome_counts(engine, campaign_id)["unsent"] == 40 - first
        finally:
            engine.dispose()

        later = run_jobs(settings, clock=at(DAY1, 22))
        assert later.jobs[0].waiting and sum(sent_mobiles(sim).values()) == first
        early = run_jobs(settings, clock=at(DAY2, 8, 59))
        assert "send_at 09:00" in early.jobs[0].waiting[0]["reason"]
        assert sum(sent_mobiles(sim).values()) == first

        morning = run_jobs(settings, clock=at(DAY2, 9, 1))
        assert morning.exit_code == 0
        counts = sent_mobiles(sim)
        assert sum(counts.values()) == 40 and max(counts.values()) == 1


# ---------------------------------------------------------------------------- config checks


TIMES = 'send_at = "09:00"\nnot_after = "20:00"'


def break_config(config: Path, mistake: str) -> None:
    text = config.read_text(encoding="utf-8")
    if mistake == "missing template":
        text = text.replace("templates/weekly.txt", "templates/missing.txt")
    elif mistake == "template does not parse":
        (config.parent / "templates" / "broken.txt").write_text("您好{姓名", encoding="utf-8")
        text = text.replace("templates/weekly.txt", "templates/broken.txt")
    elif mistake == "send_at not before not_after":
        text = text.replace(TIMES, 'send_at = "20:00"\nnot_after = "20:00"')
    elif mistake == "not_after outside the send window":
        text = text.replace("[compliance]", '[compliance]\nsend_window = "08:00-21:00"')
        text = text.replace(TIMES, 'send_at = "09:00"\nnot_after = "22:00"')
    elif mistake == "send_at outside the job's send window":
        text = text.replace(TIMES, 'send_window = "10:00-18:00"\n' + TIMES)
    elif mistake == "export is a file":
        (config.parent / "exports").write_text("not a folder", encoding="utf-8")
    else:
        raise AssertionError(mistake)
    config.write_text(text, encoding="utf-8")


MISTAKES = {
    "missing template": "job 'weekly': template: no template file",
    "template does not parse": "job 'weekly': template:",
    "send_at not before not_after": "job 'weekly': send_at: send_at 20:00 is not before",
    "not_after outside the send window": "job 'weekly': not_after: not_after 22:00 is outside "
    "the send window 08:00-21:00",
    "send_at outside the job's send window": "job 'weekly': send_at: send_at 09:00 is outside "
    "the send window 10:00-18:00",
    "export is a file": "job 'weekly': export:",
}


def good_folder(tmp_path: Path, sim_url: str = "simulator") -> Path:
    config = write_config(tmp_path, sim_url, extra=TIMES)
    write_contacts(tmp_path / "incoming" / "list.csv", 0, 3)
    inbox = tmp_path / "reports" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "report.csv").write_text("msgid,mobile,status,reportTime\n", encoding="utf-8")
    return config


def test_check_of_a_good_config_exits_0_and_creates_nothing(tmp_path):
    config = good_folder(tmp_path)
    before = listing(tmp_path)
    result = invoke(config, "--check", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["errors"] == [] and summary["warnings"] == []
    (job,) = summary["jobs"]
    assert set(job["checked"]) == {"template", "contacts", "times", "inbox", "export"}
    assert "09:00-20:00" in job["checked"]["times"]
    assert listing(tmp_path) == before  # no store, lock, log, export; nothing moved

    text = invoke(config, "--check")
    assert text.exit_code == 0 and "config OK: 1 job(s), 0 warning(s)" in text.stdout
    assert listing(tmp_path) == before


def test_check_warns_about_a_glob_matching_nothing(tmp_path):
    config = good_folder(tmp_path)
    (tmp_path / "incoming" / "list.csv").unlink()
    before = listing(tmp_path)
    result = invoke(config, "--check", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    (warning,) = summary["warnings"]
    assert warning.startswith("job 'weekly': contacts:") and "matches no contact file" in warning
    assert listing(tmp_path) == before


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_check_finds_each_mistake_and_creates_nothing(tmp_path, mistake):
    config = good_folder(tmp_path)
    break_config(config, mistake)
    before = listing(tmp_path)
    result = invoke(config, "--check", "--json")
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)  # exactly one object
    assert summary["ok"] is False
    assert summary["errors"][0].startswith(MISTAKES[mistake]), summary["errors"]
    assert listing(tmp_path) == before
    text = invoke(config, "--check")
    assert text.exit_code == 3 and MISTAKES[mistake] in text.stderr
    assert listing(tmp_path) == before


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_stops_a_normal_run_before_anything_happens(tmp_path, mistake):
    with running_simulator() as sim:
        config = good_folder(tmp_path, sim.url)
        # a first run made the campaign: the failing run has no new file to look at
        assert invoke(config, "--json").exit_code == 0
        sent = sum(sent_mobiles(sim).values())
        inbox = tmp_path / "reports" / "inbox"
        (inbox / "report2.csv").write_text("msgid,mobile,status,reportTime\n", encoding="utf-8")
        if mistake == "export is a file":
            shutil.rmtree(tmp_path / "exports")
        break_config(config, mistake)
        before = listing(tmp_path)
        db_before = (tmp_path / "campaign.db").read_bytes()
        result = invoke(config, "--json")
        assert result.exit_code == 3, result.output
        error = json.loads(result.stdout)["error"]
        assert error.startswith(MISTAKES[mistake]) and "\n" not in error
        assert f"Error: {error}" in result.stderr
        assert (inbox / "report2.csv").is_file()  # not imported, not moved
        assert listing(tmp_path) == before  # nothing new, nothing moved ...
        assert (tmp_path / "campaign.db").read_bytes() == db_before  # ... nothing stored
        assert sum(sent_mobiles(sim).values()) == sent


def test_normal_run_reports_the_glob_warning_in_json_and_log(tmp_path):
    with running_simulator() as sim:
        config = write_config(tmp_path, sim.url)
        result = invoke(config, "--json")
        assert result.exit_code == 0, result.output
        (warning,) = json.loads(result.stdout)["warnings"]
        assert "matches no contact file" in warning
        log_text = (tmp_path / "logs" / "campaign.log").read_text(encoding="utf-8")
        assert "WARNING job 'weekly': contacts:" in log_text


# ---------------------------------------------------------------------------- exports


@pytest.mark.parametrize(
    ("campaign_name", "file_name"),
    [
        ("weekly list.csv", "weekly list.xlsx"),
        ("weekly list.xlsx", "weekly list.xlsx"),
        ("weekly LIST.XLS", "weekly LIST.xlsx"),
        ("weekly 名单.2026.csv", "weekly 名单.2026.xlsx"),
        ("weekly a/b:c*?.csv", "weekly a_b_c_.xlsx"),
    ],
)
def test_export_names_use_the_file_stem(campaign_name, file_name):
    assert export_name(campaign_name) == file_name


def test_exports_are_named_job_and_stem_and_never_overwrite_each_other(tmp_path, sqlite_url):
    with running_simulator() as sim:
        config = write_config(tmp_path, sim.url)
        text = config.read_text(encoding="utf-8").replace("incoming/*.csv", "incoming/*/*.csv")
        config.write_text(text, encoding="utf-8")
        write_contacts(tmp_path / "incoming" / "north" / "list.csv", 0, 2)
        write_contacts(tmp_path / "incoming" / "south" / "list.csv", 10, 2)
        report = run_jobs(settings_for(config, sqlite_url), clock=at(DAY1, 10))
        assert report.exit_code == 0
        names = sorted(p.name for p in (tmp_path / "exports").iterdir())
        # the second list.csv's campaign is "weekly south/list.csv" (names are unique)
        assert names == ["weekly list.xlsx", "weekly south_list.xlsx"]
        assert not any(".csv" in name for name in names)
