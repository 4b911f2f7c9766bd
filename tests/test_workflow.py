"""The library facade called directly: plan -> create -> send -> status -> export, on both
stores, through the built-in simulator; typed results whose `to_json()` is the CLI's JSON."""

from __future__ import annotations

import threading
from dataclasses import FrozenInstanceError

import pytest

from campaign import workflow
from campaign.config import GatewaySettings, Settings
from campaign.errors import ExitCode, RepeatError

MOBILES = [f"1390000{i:04d}" for i in range(6)]


def _settings(url: str) -> Settings:
    return Settings(gateway=GatewaySettings(url="simulator", rate=0.0, timeout=5.0), store_url=url)


def _contacts(tmp_path, mobiles=MOBILES, name="vip.csv"):
    path = tmp_path / name
    lines = ["name,mobile", *(f"客户{m[-2:]},{m}" for m in mobiles), "坏号码,123"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_plan_create_send_status_export_round_trip(store_url, engine, tmp_path):
    settings = _settings(store_url)
    planned = workflow.plan_from_files(settings, [_contacts(tmp_path)], "{name}您好【店】")
    assert isinstance(planned, workflow.PlanResult)
    assert planned.recipients == 6
    assert planned.summary["outcomes"]["invalid"] == 1
    assert planned.sample is not None and planned.sample["mobile"].startswith("139")
    assert set(planned.to_json()) >= {"outcomes", "recipients", "requests", "sample", "warnings"}

    guard = workflow.check_repeat(settings, planned, name="spring", again=False)
    created = workflow.create_campaign(settings, engine, planned, name="spring", guard=guard)
    assert created.campaign_id == 1 and created.name == "spring"
    assert created.to_json() == {
        "campaign_id": 1,
        **{k: planned.summary[k] for k in ("outcomes", "recipients", "requests", "segments")},
    }

    sent = workflow.send(settings, engine, created.campaign_id)
    assert isinstance(sent, workflow.SendResult)
    assert sent.exit_code is ExitCode.OK and sent.failure() is None
    payload = sent.to_json()
    assert payload["campaign_id"] == 1 and payload["state"] == "finished"
    assert payload["recipients"] == 6 and payload["unknown"] == 0 and payload["rejected"] == 0
    assert payload["outcomes"]["invalid"] == 1
    assert payload["outcomes"]["unsent"] == 0

    status = workflow.campaign_status(engine, "spring")
    data = status.to_json()
    assert status.record.id == 1 and data["state"] == "finished"
    assert data["recipients"] == 6 and data["workers"] == []
    assert data["batches"] == sent.to_json()["batches"]
    assert (
        data["unmatched_reports"] == data["unmatched_in_campaign"] + data["unmatched_unknown_msgid"]
    )
    listed = workflow.campaign_list(engine).to_json()
    assert [row["campaign_id"] for row in listed["campaigns"]] == [1]

    out = tmp_path / "results.csv"
    exported = workflow.export(settings, "1", out, engine=engine)
    assert exported.campaign_id == 1 and exported.name == "spring"
    assert exported.to_json()["rows"] == 7 and out.is_file()
    with pytest.raises(FrozenInstanceError):
        exported.name = "other"  # type: ignore[misc]


def test_the_same_list_again_is_refused_by_the_guard(store_url, engine, tmp_path):
    settings = _settings(store_url)
    contacts = _contacts(tmp_path)
    first = workflow.prepare_send(settings, [contacts], "{name}您好【店】")
    workflow.send_new(settings, first)
    again = workflow.plan_from_files(settings, [contacts], "{name}您好【店】")
    with pytest.raises(RepeatError, match="campaign resume 1"):
        workflow.check_repeat(settings, again, name=None, again=False)
    assert workflow.check_repeat(settings, again, name=None, again=True).allow_repeat


def test_a_stop_request_stops_the_run_and_resume_sends_the_rest(store_url, engine, tmp_path):
    settings = _settings(store_url)
    planned = workflow.plan_from_files(settings, [_contacts(tmp_path)], "{name}您好【店】")
    campaign_id = workflow.create_campaign(settings, engine, planned, name="c").campaign_id
    stop = threading.Event()
    stop.set()  # asked before the first request: nothing leaves
    stopped = workflow.send(settings, engine, campaign_id, stop=stop)
    assert stopped.exit_code is ExitCode.INTERRUPTED
    assert stopped.to_json()["requests_sent"] == 0
    assert stopped.failure() == (
        f"interrupted; campaign {campaign_id} stopped: `campaign resume {campaign_id}` "
        "sends the rest"
    )
    resumed = workflow.resume(settings, "c", engine=engine, stop=threading.Event())
    assert resumed.exit_code is ExitCode.OK
    assert resumed.to_json()["requests_sent"] == stopped.to_json()["requests"]


def test_optouts_are_typed_and_keep_a_number_out_of_the_plan(store_url, tmp_path):
    settings = _settings(store_url)
    added = workflow.add_optouts(settings, [MOBILES[0], "+86 139 0000 0001"], "asked")
    assert added.to_json() == {"added": 2, "already": 0}
    assert workflow.add_optouts(settings, [MOBILES[0]]).to_json() == {"added": 0, "already": 1}
    assert workflow.optout_numbers(settings) == MOBILES[:2]
    removed = workflow.remove_optouts(settings, [MOBILES[1], MOBILES[2]])
    assert removed.to_json() == {"removed": 1, "not_listed": 1}
    planned = workflow.plan_from_files(settings, [_contacts(tmp_path)], "{name}您好【店】")
    assert planned.summary["outcomes"]["suppressed"] == 1
    assert planned.recipients == 5
