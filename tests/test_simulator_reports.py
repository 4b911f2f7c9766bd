"""`send --gateway simulator`: the built-in simulator pushes its delivery reports to the
configured receiver when one answers, and says where they go (or that none are pushed)."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import ReceiverSettings, Settings
from campaign.gateway.runtime import receiver_base_url
from campaign.receiver import Receiver

runner = CliRunner()
MOBILES = ("13800138000", "13900139000", "13700137000")


def _contacts(folder: Path) -> Path:
    path = folder / "list.csv"
    path.write_text("mobile,name\n" + "".join(f"{m},n{m[-2:]}\n" for m in MOBILES), "utf-8")
    return path


def _config(folder: Path, port: int, pswd: str = "pw") -> Path:
    path = folder / "campaign.toml"
    path.write_text(
        f'[receiver]\nhost = "127.0.0.1"\nport = {port}\nreceiver = "rx"\npswd = "{pswd}"\n',
        "utf-8",
    )
    return path


def _send(folder: Path, config: Path, url: str):
    args = ["send", str(_contacts(folder)), "--text", "【店】hi {name}", "--yes", "--json"]
    args += ["--gateway", "simulator", "--config", str(config), "--db", url]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_reports_reach_the_running_receiver(tmp_path, store_url):
    settings = Settings(
        store_url=store_url, receiver=replace(ReceiverSettings(), receiver="rx", pswd="pw")
    )
    with Receiver(settings) as rx:
        port = int(rx.url.rsplit(":", 1)[1])
        summary, stderr = _send(tmp_path, _config(tmp_path, port), store_url)
        assert f"delivery reports are pushed to http://127.0.0.1:{port}/dlr" in stderr
    # the send waited until the receiver answered OK (= stored) for every report
    assert summary["outcomes"]["pending"] == 0
    status = runner.invoke(
        app, ["status", str(summary["campaign_id"]), "--db", store_url, "--json"]
    )
    assert status.exit_code == 0, status.output
    figures = json.loads(status.stdout)
    delivered = figures["outcomes"]["delivered"] + figures["outcomes"]["failed"]
    assert delivered == len(MOBILES)
    assert sum(figures["reports"].values()) == len(MOBILES)


def test_without_a_receiver_it_says_so(tmp_path, sqlite_url):
    port = _free_port()
    summary, stderr = _send(tmp_path, _config(tmp_path, port), sqlite_url)
    assert f"no receiver answers at http://127.0.0.1:{port}" in stderr
    assert "no delivery reports are pushed" in stderr and "campaign serve" in stderr
    assert summary["outcomes"]["pending"] == len(MOBILES)


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("::1", "http://[::1]:8080"),
        ("receiver.local", "http://receiver.local:8080"),
    ],
)
def test_receiver_base_url(host, base):
    assert receiver_base_url(ReceiverSettings(host=host, port=8080)) == base
