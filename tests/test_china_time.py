"""Every time a person reads is China time and carries its offset (+08:00); the store is UTC."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from typer.testing import CliRunner

from campaign.cli import app
from campaign.cli.run import _setup_logging
from campaign.cli.send_progress import _PlainReporter
from campaign.gateway.client import GatewayClient
from campaign.gateway.simulator import Simulator
from campaign.outcomes import CampaignState
from campaign.sender import ProgressEvent
from campaign.store import open_store
from campaign.store.campaigns import create_campaign, get_campaign, set_state
from campaign.timeutil import CHINA, ChinaTimeFormatter, china_iso, china_text
from tests.support.plans import small_plan
from tests.support.simulator import gateway_settings

EIGHT_HOURS = timedelta(hours=8)
STAMP = 25  # len("2026-12-03 16:05:01+08:00")


def assert_china_now(text: str) -> None:
    """`text` is an ISO time with +08:00 within a minute of now."""
    moment = datetime.fromisoformat(text)
    assert text.endswith("+08:00"), text
    assert moment.utcoffset() == EIGHT_HOURS
    assert abs(moment - datetime.now(CHINA)) < timedelta(minutes=1)


def test_helpers_render_china_time_with_the_offset():
    utc = datetime.fromisoformat("2026-12-03T08:05:01+00:00")
    assert china_text(utc) == "2026-12-03 16:05:01+08:00"
    assert china_text(utc, timespec="minutes") == "2026-12-03 16:05+08:00"
    assert china_iso(utc) == "2026-12-03T16:05:01+08:00"
    assert china_iso(utc.replace(tzinfo=None)) == "2026-12-03T16:05:01+08:00"  # naive: UTC
    assert china_iso(None) is None


def test_progress_lines_are_stamped_in_china_time(capsys):
    report = _PlainReporter()
    report(ProgressEvent("info", "waiting for the window"))
    report(ProgressEvent("progress", requests_done=1, requests_total=1, recipients_total=3))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert_china_now(line[:STAMP])
    assert lines[0].endswith("  waiting for the window")


def test_run_log_lines_are_china_time(tmp_path, capsys):
    log_file = tmp_path / "logs" / "campaign.log"
    handlers = _setup_logging(log_file)
    logger = logging.getLogger("campaign")
    try:
        logging.getLogger("campaign.jobs").info("job vip: start")
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
    line = log_file.read_text(encoding="utf-8").splitlines()[0]
    assert_china_now(line[:STAMP])
    assert line[STAMP:] == " INFO job vip: start"
    assert_china_now(capsys.readouterr().err[:STAMP])


def test_log_formatter_converts_to_china_time():
    record = logging.LogRecord("campaign.receiver", logging.INFO, "", 0, "stored", None, None)
    record.created = datetime.fromisoformat("2026-12-03T08:05:01+00:00").timestamp()
    line = ChinaTimeFormatter("%(asctime)s %(name)s %(message)s").format(record)
    assert line == "2026-12-03 16:05:01+08:00 campaign.receiver stored"


def test_status_json_times_carry_the_china_offset(sqlite_url):
    engine = open_store(sqlite_url)
    cid = create_campaign(engine, small_plan(), name="spring sale", settings_snapshot={})
    set_state(engine, cid, CampaignState.SENDING)  # stamps started_at
    set_state(engine, cid, CampaignState.FINISHED)
    stored = get_campaign(engine, cid).created_at
    engine.dispose()
    runner = CliRunner()
    result = runner.invoke(app, ["status", str(cid), "--json", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert_china_now(data["created_at"])
    assert_china_now(data["started_at"])
    assert datetime.fromisoformat(data["created_at"]) == stored.replace(microsecond=0)

    listing = runner.invoke(app, ["status", "--json", "--db", sqlite_url])
    assert_china_now(json.loads(listing.stdout)["campaigns"][0]["created_at"])
    text = runner.invoke(app, ["status", "--db", sqlite_url]).stdout
    assert china_text(stored, timespec="minutes") in text


def test_simulator_log_lines_are_china_time(tmp_path):
    log = tmp_path / "sim.jsonl"
    with Simulator(report_delay=0.0, log_path=log) as sim:
        client = GatewayClient(gateway_settings(sim))
        try:
            client.send_batch(["13800000001"], "【品牌】您好回T退订")
        finally:
            client.close()
    entry = json.loads(log.read_text(encoding="utf-8").splitlines()[0])
    assert_china_now(entry["time"])
