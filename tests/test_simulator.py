"""The built-in simulator: report and MO pushes, settings, and the two CLI commands."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.errors import ConfigError
from campaign.gateway.client import Accepted, GatewayClient
from campaign.gateway.simconfig import load_simulator_settings
from campaign.gateway.simpush import StatusPicker
from campaign.gateway.simulator import Simulator
from tests.support.simulator import (
    PushReceiver,
    gateway_settings,
    running_simulator,
    simulator_process,
)

A, B = "13800138000", "13900210021"
RUNNER = CliRunner()
ALL_DELIVERED = {"DELIVRD": 1}


@pytest.fixture
def receiver() -> PushReceiver:
    with PushReceiver() as push_receiver:
        yield push_receiver


def send(sim: Simulator, mobiles: list[str], text: str, **changes: object) -> Accepted:
    with GatewayClient(gateway_settings(sim, **changes)) as client:
        result = client.send_batch(mobiles, text)
    assert isinstance(result, Accepted), result
    return result


# --------------------------------------------------------------------------- report pushes


def test_reports_are_pushed_one_per_mobile(receiver: PushReceiver) -> None:
    with running_simulator(
        push_url=receiver.dlr_url,
        push_receiver="admin",
        push_pswd="12345",
        report_mix=ALL_DELIVERED,
    ) as sim:
        accepted = send(sim, [A, B], "您好")
        assert sim.wait_reports_pushed(5)
    reports = receiver.reports()
    assert sorted(r["mobile"] for r in reports) == [A, B]
    for report in reports:
        assert report["msgid"] == accepted.msgid
        assert report["status"] == "DELIVRD"
        assert report["receiver"] == "admin" and report["pswd"] == "12345"
        assert re.fullmatch(r"\d{10}", report["reportTime"])
    assert all(r["method"] == "GET" for r in receiver.requests())


def test_long_text_gives_one_report_per_part(receiver: PushReceiver) -> None:
    with running_simulator(push_url=receiver.dlr_url, push_method="POST") as sim:
        send(sim, [A, B], "长" * 140)  # 3 parts
        assert sim.wait_reports_pushed(5)
    reports = receiver.reports()
    assert sorted(r["mobile"] for r in reports) == [A, A, A, B, B, B]
    assert all(r["method"] == "POST" for r in receiver.requests())


def test_duplicates_are_pushed_twice(receiver: PushReceiver) -> None:
    with running_simulator(push_url=receiver.dlr_url, duplicate_rate=1.0) as sim:
        send(sim, [A, B], "hi")
        assert sim.wait_reports_pushed(5)
    assert sorted(r["mobile"] for r in receiver.reports()) == [A, A, B, B]


def test_pushes_are_retried_until_the_receiver_answers_200(receiver: PushReceiver) -> None:
    receiver.fail_next(2, status=500)
    with running_simulator(push_url=receiver.dlr_url, push_backoff=0.01, push_concurrency=1) as sim:
        send(sim, [A], "hi")
        assert sim.wait_reports_pushed(5)
        assert sim.pusher.pushed == 1 and sim.pusher.attempts == 3
    assert [r["status"] for r in receiver.requests()] == [500, 500, 200]
    assert len(receiver.reports()) == 1


def test_pushes_are_given_up_after_the_last_retry() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/dlr"
    with running_simulator(push_url=dead, push_retries=2, push_backoff=0.01) as sim:
        send(sim, [A], "hi")
        assert sim.wait_reports_pushed(5)
        assert sim.pusher.given_up == 1 and sim.pusher.pushed == 0


def test_batched_report_form(receiver: PushReceiver) -> None:
    mobiles = [f"139{n:08d}" for n in range(5)]
    with running_simulator(
        push_url=receiver.dlr_url, push_batch=2, push_receiver="admin", report_mix=ALL_DELIVERED
    ) as sim:
        accepted = send(sim, mobiles, "hi")
        assert sim.wait_reports_pushed(5)
        assert sim.pusher.pushed == 5
    pushes = receiver.reports()
    assert sorted(len(p["report"].split("||")) for p in pushes) == [1, 2, 2]
    assert all(p["receiver"] == "admin" for p in pushes)
    items = [item.split(",") for p in pushes for item in p["report"].split("||")]
    assert sorted(i[2] for i in items) == mobiles
    assert {(i[0], i[3]) for i in items} == {(accepted.msgid, "DELIVRD")}
    assert all(re.fullmatch(r"\d{10}", i[1]) for i in items)


def test_lost_reports_and_hand_made_reports(receiver: PushReceiver) -> None:
    mobiles = [f"139{n:08d}" for n in range(100)]
    with running_simulator(push_url=receiver.dlr_url, lost_rate=0.3) as sim:
        send(sim, mobiles, "hi")
        assert sim.wait_reports_pushed(5)
        assert 10 < sim.pusher.lost < 50
        assert len(receiver.reports()) == 100 - sim.pusher.lost
        sim.push_report("999", A, "JA:0009", report_time="2611250930")
        assert sim.wait_reports_pushed(5)
    assert receiver.reports()[-1] == {
        "receiver": "",
        "pswd": "",
        "msgid": "999",
        "reportTime": "2611250930",
        "mobile": A,
        "status": "JA:0009",
    }


def test_no_reports_without_needstatus(receiver: PushReceiver) -> None:
    with running_simulator(push_url=receiver.dlr_url) as sim:
        accepted = send(sim, [A], "hi", needstatus=False)
        assert accepted.msgid == ""
        assert sim.received()[-1].msgid  # the simulator still issued one
        assert sim.wait_reports_pushed(5)
    assert receiver.reports() == []


def test_report_delay_and_waiting(receiver: PushReceiver) -> None:
    with running_simulator(push_url=receiver.dlr_url, report_delay=0.2) as sim:
        send(sim, [A], "hi")
        assert receiver.reports() == []
        assert sim.pusher.pending == 1
        assert sim.wait_reports_pushed(5)
    assert len(receiver.reports()) == 1


def test_status_mix_is_deterministic_and_overridable() -> None:
    mobiles = [f"138{n:08d}" for n in range(2000)]
    with running_simulator(seed=7) as first, running_simulator(seed=7) as second:
        one = StatusPicker(first.settings)
        two = StatusPicker(second.settings)
        statuses = [one.status(m) for m in mobiles]
        assert statuses == [two.status(m) for m in mobiles]
    delivered = statuses.count("DELIVRD") / len(statuses)
    assert 0.85 < delivered < 0.95
    assert {"MBBLACK", "ID:0101", "NOROUTE", "DB:0141"} <= set(statuses)
    with running_simulator(report_mix=ALL_DELIVERED, report_overrides={A: "MBBLACK"}) as sim:
        picker = StatusPicker(sim.settings)
        assert picker.status(A) == "MBBLACK" and picker.status(B) == "DELIVRD"


def test_mixed_statuses_reach_the_receiver(receiver: PushReceiver) -> None:
    mobiles = [f"139{n:08d}" for n in range(200)]
    with running_simulator(push_url=receiver.dlr_url, report_overrides={A: "ID:0101"}) as sim:
        send(sim, [*mobiles, A], "hi")
        assert sim.wait_reports_pushed(10)
        expected = StatusPicker(sim.settings)
    reports = receiver.reports()
    assert len(reports) == 201
    assert all(r["status"] == expected.status(r["mobile"]) for r in reports)
    assert {r["status"] for r in reports} > {"DELIVRD", "ID:0101"}


# --------------------------------------------------------------------------- MO pushes


def test_inbound_message(receiver: PushReceiver) -> None:
    with running_simulator(push_url=receiver.dlr_url, push_receiver="admin") as sim:
        sim.push_mo(A, "退订", destcode="1065751600001")
        assert sim.wait_reports_pushed(5)
    (mo,) = receiver.inbound()
    assert mo["mobile"] == A and mo["msg"] == "退订" and mo["destcode"] == "1065751600001"
    assert mo["receiver"] == "admin" and re.fullmatch(r"\d{10}", mo["moTime"])
    assert "isems" not in mo


def test_long_inbound_message_in_parts(receiver: PushReceiver) -> None:
    with running_simulator(mo_url=receiver.mo_url, push_concurrency=1) as sim:
        sim.push_mo(B, "abcdefghij", parts=3, shuffle=True)
        assert sim.wait_reports_pushed(5)
    parts = receiver.inbound()
    assert len(parts) == 3
    heads = [p["emshead"].split(",") for p in parts]
    assert {h[0] for h in heads} == {heads[0][0]} and {h[1] for h in heads} == {"3"}
    assert all(p["isems"] == "1" for p in parts)
    ordered = sorted(parts, key=lambda p: int(p["emshead"].split(",")[2]))
    assert "".join(p["msg"] for p in ordered) == "abcdefghij"


def test_push_mo_without_an_address_is_an_error() -> None:
    with running_simulator() as sim, pytest.raises(ValueError, match="mo_url"):
        sim.push_mo(A, "T")


# --------------------------------------------------------------------------- HTTP details


def test_get_like_the_original_example_and_unknown_paths() -> None:
    with running_simulator() as sim:
        conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
        query = "account=demo&pswd=demo-secret&mobile=15924188183&needstatus=true&extno="
        conn.request("GET", f"/msg/HttpBatchSendSM?{query}&msg=%E6%82%A8%E5%A5%BD")
        body = conn.getresponse().read().decode()
        assert re.fullmatch(r"\d{14},0\n\d+", body)
        conn.request("GET", "/nothing")
        assert conn.getresponse().status == 404
        conn.close()
        assert sim.received()[-1].msg == "您好"


def test_log_file_has_one_json_line_per_request(tmp_path: Path) -> None:
    log = tmp_path / "sent.jsonl"
    with running_simulator(log_path=log) as sim:
        send(sim, [A, B], "hi")
    (line,) = log.read_text(encoding="utf-8").splitlines()
    entry = json.loads(line)
    assert entry["mobiles"] == [A, B] and entry["code"] == "0" and "pswd" not in line
    assert "demo-secret" not in line


def test_settings_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        """
        push_url = "http://127.0.0.1:9/dlr"
        sensitive_words = ["赌博"]
        send_window = "08:00-21:00"
        [report_mix]
        DELIVRD = 3
        MBBLACK = 1
        [[account]]
        name = "003547"
        password = "pw"
        products = { "1234567" = 1000, "1234531" = 2000 }
        min_batch = 2
        """,
        encoding="utf-8",
    )
    settings = load_simulator_settings(path)
    assert settings.mo_target == "http://127.0.0.1:9/mo"
    assert settings.report_mix == (("DELIVRD", 3.0), ("MBBLACK", 1.0))
    (account,) = settings.accounts
    assert account.products == (("1234567", 1000), ("1234531", 2000))
    assert account.default == "1234567" and account.min_batch == 2
    assert "pw" not in repr(settings)
    path.write_text("nonsense = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="nonsense"):
        load_simulator_settings(path)
    path.write_text('report_delay = "soon"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="report_delay"):
        load_simulator_settings(path)
    path.write_text(
        "[simulator]\nrate_limit = 5\nkeep_log = false\nlatency = 0.05\n", encoding="utf-8"
    )
    settings = load_simulator_settings(path)
    assert settings.rate_limit == 5.0 and settings.keep_log is False
    assert settings.latency == 0.05


def test_keep_log_off_keeps_nothing_in_memory(tmp_path: Path) -> None:
    with running_simulator(keep_log=False, log_path=tmp_path / "log.jsonl") as sim:
        send(sim, [A], "hi")
        assert sim.received() == []
    assert len((tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_empty_product_bills_the_default_product() -> None:
    accounts = [
        {
            "name": "demo",
            "password": "demo-secret",
            "products": {"1": 10, "2": 10},
            "default_product": "2",
        }
    ]
    with running_simulator(accounts=accounts) as sim:
        send(sim, [A], "hi")
        send(sim, [A], "hi", product="1")
        assert (sim.quota("1"), sim.quota("2")) == (9, 9)
        assert [r.product for r in sim.received()] == ["2", "1"]


def test_rate_limit_counts_each_account_apart() -> None:
    accounts = [{"name": "a", "password": "pa"}, {"name": "b", "password": "pb"}]
    with running_simulator(accounts=accounts, rate_limit=3) as sim:
        while time.monotonic() % 1 > 0.5:  # the fixed 1-second windows: start early in one
            time.sleep(0.01)
        with (
            GatewayClient(gateway_settings(sim, account="a", password="pa")) as a,
            GatewayClient(gateway_settings(sim, account="b", password="pb")) as b,
        ):
            codes_a = [getattr(a.send_batch([A], "hi"), "code", "0") for _ in range(4)]
            codes_b = [getattr(b.send_batch([A], "hi"), "code", "0") for _ in range(3)]
    assert codes_a == ["0", "0", "0", "103"]
    assert codes_b == ["0", "0", "0"]  # b's own 3 a second, whatever a did


def test_latency_delays_every_answer_without_blocking_the_others() -> None:
    latency = 0.4
    with running_simulator(latency=latency) as sim:

        def one(_: int) -> float:
            started = time.monotonic()
            send(sim, [A], "hi")
            return time.monotonic() - started

        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            times = list(pool.map(one, range(4)))
        elapsed = time.monotonic() - started
    assert min(times) >= latency
    assert elapsed < 2 * latency  # answered side by side, not one after another
    assert len(sim.received()) == 4


# --------------------------------------------------------------------------- CLI: balance


def test_balance_against_the_built_in_simulator() -> None:
    result = RUNNER.invoke(app, ["balance", "--gateway", "simulator"])
    assert result.exit_code == 0, result.output
    assert "1001" in result.stdout


def test_balance_simulator_knows_the_configured_account() -> None:
    env = {"CAMPAIGN_ACCOUNT": "003547", "CAMPAIGN_PASSWORD": "real-secret"}
    result = RUNNER.invoke(app, ["balance", "--gateway", "simulator", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"products": {"1001": 10_000_000}}
    env = {"CAMPAIGN_ACCOUNT": "demo", "CAMPAIGN_PASSWORD": "not-the-demo-one"}
    result = RUNNER.invoke(app, ["balance", "--gateway", "simulator"], env=env)
    assert result.exit_code == 4 and "102" in result.stderr


def test_balance_json() -> None:
    with running_simulator() as sim:
        sim.set_quota("1001", 12345)
        env = {"CAMPAIGN_ACCOUNT": "demo", "CAMPAIGN_PASSWORD": "demo-secret"}
        result = RUNNER.invoke(app, ["balance", "--gateway", sim.url, "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"products": {"1001": 12345}}


def test_balance_without_credentials_is_exit_3() -> None:
    env = {"CAMPAIGN_ACCOUNT": "", "CAMPAIGN_PASSWORD": ""}
    result = RUNNER.invoke(app, ["balance", "--gateway", "http://127.0.0.1:9/msg"], env=env)
    assert result.exit_code == 3
    assert "no gateway account: set CAMPAIGN_ACCOUNT and CAMPAIGN_PASSWORD" in result.stderr


def test_balance_refused_is_exit_4() -> None:
    with running_simulator() as sim:
        env = {"CAMPAIGN_ACCOUNT": "demo", "CAMPAIGN_PASSWORD": "Bad-Pw-7"}
        result = RUNNER.invoke(app, ["balance", "--gateway", sim.url], env=env)
    assert result.exit_code == 4
    assert "102" in result.stderr and "wrong password" in result.stderr
    assert "Bad-Pw-7" not in result.output


def test_balance_from_config_file(tmp_path: Path) -> None:
    with running_simulator() as sim:
        config = tmp_path / "campaign.toml"
        config.write_text(
            f'[gateway]\nurl = "{sim.url}"\naccount = "demo"\npassword = "demo-secret"\n',
            encoding="utf-8",
        )
        result = RUNNER.invoke(app, ["balance", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["products"]["1001"] == 10_000_000


def test_balance_unreachable_and_garbage_are_exit_4() -> None:
    env = {"CAMPAIGN_ACCOUNT": "demo", "CAMPAIGN_PASSWORD": "secret-pw"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/msg"
    result = RUNNER.invoke(app, ["balance", "--gateway", closed], env=env)
    assert result.exit_code == 4
    assert "cannot reach the gateway" in result.stderr
    with PushReceiver() as not_a_gateway:  # answers "OK" to everything
        result = RUNNER.invoke(app, ["balance", "--gateway", not_a_gateway.url], env=env)
    assert result.exit_code == 4
    assert "no valid balance" in result.stderr and "Traceback" not in result.output


# --------------------------------------------------------------------------- CLI: simulator


def test_simulator_command_as_a_subprocess(tmp_path: Path) -> None:
    log = tmp_path / "sent.jsonl"
    with simulator_process("--log", str(log)) as running:
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
        body = "account=demo&pswd=demo-secret&mobile=15924188183&msg=hi&needstatus=true&extno="
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/msg/HttpBatchSendSM", body=body, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        conn.request("POST", "/msg/HttpBatchSendSM", body="account=demo&pswd=x&mobile=1")
        refused = conn.getresponse().read()
        conn.close()
        stderr = running.stop()
    assert response.status == 200
    assert re.fullmatch(rb"\d{14},0\n\d+", answer), answer
    assert re.fullmatch(rb"\d{14},102", refused), refused
    assert f"{running.url} (account demo" in stderr
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [e["code"] for e in entries] == ["0", "102"]
    assert entries[0]["msgid"] == answer.split(b"\n")[1].decode()


def test_simulator_command_with_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "sim.toml"
    bad.write_text("this is not toml", encoding="utf-8")
    result = RUNNER.invoke(app, ["simulator", "--config", str(bad)])
    assert result.exit_code == 3
    assert "not valid TOML" in result.stderr


def test_simulator_command_on_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = RUNNER.invoke(app, ["simulator", "--port", str(port)])
    assert result.exit_code == 3
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
