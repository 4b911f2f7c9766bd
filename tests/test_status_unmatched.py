"""`campaign status CAMPAIGN` counts reports nobody could match, foreign msgids included."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import Settings
from campaign.receiver import Receiver
from tests.support.simulator import running_simulator


def test_unknown_msgid_and_wrong_mobile_reports_show_as_unmatched(tmp_path, sqlite_url):
    contacts = tmp_path / "c.csv"
    contacts.write_text("name,mobile\nA,13900000001\n", encoding="utf-8")
    runner = CliRunner()
    with running_simulator() as sim:
        env = {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}
        sent = runner.invoke(
            app,
            [
                "send",
                str(contacts),
                "--text",
                "hi {name}",
                "--gateway",
                sim.url,
                "--db",
                sqlite_url,
                "--yes",
                "--json",
            ],
            env=env,
        )
        assert sent.exit_code == 0, sent.output
        (request,) = sim.received()
    with Receiver(Settings(store_url=sqlite_url)) as rx:
        for msgid, mobile in (
            (request.msgid, "13900000001"),
            (request.msgid, "13900000009"),
            ("999000111", "13900000001"),
        ):
            answer = httpx.get(
                rx.dlr_url,
                params={
                    "msgid": msgid,
                    "mobile": mobile,
                    "reportTime": "2611251002",
                    "status": "DELIVRD",
                },
            )
            assert answer.status_code == 200 and answer.text == "OK"
    shown = json.loads(runner.invoke(app, ["status", "1", "--db", sqlite_url, "--json"]).stdout)
    assert shown["reports"] == {"DELIVRD": 1}
    assert shown["unmatched_reports"] == 2
    assert shown["unmatched_in_campaign"] == 1 and shown["unmatched_unknown_msgid"] == 1
    assert shown["outcomes"]["delivered"] == 1
