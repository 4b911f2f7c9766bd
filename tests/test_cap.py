"""The frequency cap across campaigns: `[compliance] max_per_recipient` in `cap_window_hours`."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import load_settings
from campaign.errors import ConfigError
from campaign.store import open_store
from campaign.store.campaigns import bulk_insert
from campaign.store.caps import capped_mobiles
from campaign.store.schema import batches, campaigns, recipients
from campaign.timeutil import utcnow
from tests.support.simulator import running_simulator
from tests.test_jobs import write_config, write_contacts

runner = CliRunner()
FIRST = [f"1390000{i:04d}" for i in range(6)]  # the first campaign's numbers
SECOND = FIRST[3:] + [f"1370000{i:04d}" for i in range(3)]  # three of them again, three new


@pytest.fixture
def sim():
    with running_simulator() as sim:
        yield sim


def _env(sim) -> dict[str, str]:
    return {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}


def _contacts(tmp_path: Path, mobiles: list[str], name: str) -> str:
    path = tmp_path / name
    rows = [f"客户{m[-3:]},{m}" for m in mobiles]
    path.write_text("name,mobile\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def _config(tmp_path: Path, cap: int | None = 1, hours: float | None = None) -> str:
    lines = ["[compliance]"]
    if cap is not None:
        lines.append(f"max_per_recipient = {cap}")
    if hours is not None:
        lines.append(f"cap_window_hours = {hours}")
    path = tmp_path / f"cap{cap}-{hours}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _template(tmp_path: Path, text: str = "{name}您好，会员日八折") -> str:
    path = tmp_path / "template.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _send(sim, url: str, contacts: str, template: str, *extra: str):
    args = ["send", contacts, "-t", template, "--db", url, "--gateway", sim.url, "--yes"]
    return runner.invoke(app, [*args, "--json", *extra], env=_env(sim))


def _plan(url: str, contacts: str, template: str, config: str) -> dict:
    args = ["plan", contacts, "-t", template, "--db", url, "--config", config, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _sent_numbers(sim) -> Counter[str]:
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def _set_batch_of(url: str, mobile: str, **values) -> None:
    """Change the request that carried `mobile` (state, submitted_at), as a run would have."""
    engine = open_store(url)
    try:
        with engine.begin() as conn:
            cid, bid = conn.execute(
                sa.select(recipients.c.campaign_id, recipients.c.batch_id).where(
                    recipients.c.mobile == mobile, recipients.c.batch_id.is_not(None)
                )
            ).one()
            conn.execute(
                sa.update(batches)
                .where(batches.c.campaign_id == cid, batches.c.batch_id == bid)
                .values(**values)
            )
    finally:
        engine.dispose()


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("max_per_recipient = 0", "compliance.max_per_recipient"),
        ("max_per_recipient = -2", "compliance.max_per_recipient"),
        ('max_per_recipient = "2"', "compliance.max_per_recipient"),
        ("max_per_recipient = 1.5", "compliance.max_per_recipient"),
        ("max_per_recipient = true", "compliance.max_per_recipient"),
        ("cap_window_hours = 0", "compliance.cap_window_hours"),
        ("cap_window_hours = -1", "compliance.cap_window_hours"),
        ('cap_window_hours = "24h"', "compliance.cap_window_hours"),
        ("cap_window_hours = inf", "compliance.cap_window_hours"),
    ],
)
def test_bad_cap_settings_are_config_errors(tmp_path, text, key):
    path = tmp_path / "c.toml"
    path.write_text(f"[compliance]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(path, env={})
    template = _template(tmp_path)
    result = runner.invoke(
        app, ["plan", _contacts(tmp_path, FIRST, "l.csv"), "-t", template, "--config", str(path)]
    )
    assert result.exit_code == 3 and key in result.stderr


def test_cap_defaults_and_values(tmp_path):
    default = load_settings(env={}).compliance
    assert default.max_per_recipient is None and default.cap_window_hours == 24.0
    set_ = load_settings(_config(tmp_path, 3, 1.5), env={}).compliance
    assert set_.max_per_recipient == 3 and set_.cap_window_hours == 1.5
    whole = load_settings(_config(tmp_path, 2, 48), env={}).compliance
    assert whole.cap_window_hours == 48.0


# ---------------------------------------------------------------- across campaigns


def test_cap_across_two_campaigns(store_url, tmp_path, sim):
    template, config = _template(tmp_path), _config(tmp_path, cap=1)
    first = _send(sim, store_url, _contacts(tmp_path, FIRST, "first.csv"), template)
    assert first.exit_code == 0, first.output
    second_list = _contacts(tmp_path, SECOND, "second.csv")
    planned = _plan(store_url, second_list, template, config)
    assert planned["outcomes"]["capped"] == 3 and planned["recipients"] == 3
    sent = _send(sim, store_url, second_list, template, "--config", config)
    assert sent.exit_code == 0, sent.output
    summary = json.loads(sent.stdout)
    assert summary["outcomes"]["capped"] == 3 and summary["recipients"] == 3
    assert _sent_numbers(sim) == Counter(FIRST + SECOND[3:])  # the capped ones once only
    cid = str(summary["campaign_id"])
    status = runner.invoke(app, ["status", cid, "--db", store_url, "--json"])
    assert json.loads(status.stdout)["outcomes"]["capped"] == 3
    out = tmp_path / "second.csv.out.csv"
    exported = runner.invoke(app, ["export", cid, "-o", str(out), "--db", store_url])
    assert exported.exit_code == 0, exported.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        rows = {row["normalized_mobile"]: row for row in csv.DictReader(handle)}
    for mobile in SECOND[:3]:
        assert rows[mobile]["outcome"] == "capped"
        assert rows[mobile]["reason"] == (
            "already sent 1 message in the last 24 h (max_per_recipient = 1)"
        )
        assert rows[mobile]["batch_id"] == ""
    assert {rows[m]["outcome"] for m in SECOND[3:]} == {"pending"}


def test_max_two_counts_both_campaigns(sqlite_url, tmp_path, sim):
    template, config = _template(tmp_path), _config(tmp_path, cap=2)
    assert _send(sim, sqlite_url, _contacts(tmp_path, FIRST, "a.csv"), template).exit_code == 0
    again = _send(sim, sqlite_url, _contacts(tmp_path, FIRST, "a.csv"), template, "--again")
    assert again.exit_code == 0, again.output
    rows = runner.invoke(
        app,
        ["plan", _contacts(tmp_path, SECOND, "b.csv"), "-t", template, "--db", sqlite_url,
         "--config", config, "--out", str(tmp_path / "preview.csv")],
    )  # fmt: skip
    assert rows.exit_code == 0, rows.output
    with (tmp_path / "preview.csv").open(encoding="utf-8-sig", newline="") as handle:
        reasons = {r["normalized_mobile"]: r["reason"] for r in csv.DictReader(handle)}
    assert reasons[SECOND[0]] == "already sent 2 messages in the last 24 h (max_per_recipient = 2)"


def test_unknown_and_in_flight_count_rejected_and_old_do_not(store_url, tmp_path, sim):
    template = _template(tmp_path, "{name}，专属优惠")  # one request per number
    assert _send(sim, store_url, _contacts(tmp_path, FIRST, "first.csv"), template).exit_code == 0
    long_ago = utcnow() - timedelta(hours=30)
    _set_batch_of(store_url, FIRST[0], state="unknown")
    _set_batch_of(store_url, FIRST[1], state="sending")
    _set_batch_of(store_url, FIRST[2], state="rejected", submit_code="115")
    _set_batch_of(store_url, FIRST[3], submitted_at=long_ago)  # accepted, outside 24 h
    _set_batch_of(store_url, FIRST[4], state="pending")  # released for a retry: not sent
    listed = _contacts(tmp_path, FIRST, "again.csv")
    day = _plan(store_url, listed, template, _config(tmp_path, cap=1))
    assert day["outcomes"]["capped"] == 3  # unknown, sending, and the accepted FIRST[5]
    assert day["recipients"] == 3
    two_days = _plan(store_url, listed, template, _config(tmp_path, cap=1, hours=48))
    assert two_days["outcomes"]["capped"] == 4  # ... and the one 30 hours ago
    no_cap = _plan(store_url, listed, template, _config(tmp_path, cap=None))
    assert no_cap["outcomes"]["capped"] == 0
    engine = open_store(store_url)
    try:
        counts = capped_mobiles(engine, 1, 24)
    finally:
        engine.dispose()
    assert counts == {FIRST[0]: 1, FIRST[1]: 1, FIRST[5]: 1}


def test_plan_reads_the_cap_without_making_a_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    contacts = _contacts(tmp_path, FIRST, "l.csv")
    planned = _plan(url, contacts, _template(tmp_path), _config(tmp_path, cap=1))
    assert planned["outcomes"]["capped"] == 0 and planned["recipients"] == len(FIRST)
    assert not (tmp_path / "none.db").exists()


def test_campaign_run_applies_the_cap(tmp_path, sim):
    folder = tmp_path / "nightly"
    config = write_config(folder, sim.url)
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "[compliance]\n", "[compliance]\nmax_per_recipient = 1\n"
        ),
        encoding="utf-8",
    )
    url = f"sqlite:///{folder / 'campaign.db'}"
    earlier = _contacts(tmp_path, ["13900000001", "13900000002"], "earlier.csv")
    assert _send(sim, url, earlier, _template(tmp_path)).exit_code == 0
    write_contacts(folder / "incoming" / "mon.csv", 0, 4)  # 13900000000 .. 13900000003
    result = runner.invoke(app, ["run", str(config), "--json"])
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            capped = conn.execute(
                sa.select(recipients.c.mobile)
                .join(campaigns, campaigns.c.id == recipients.c.campaign_id)
                .where(campaigns.c.job == "weekly", recipients.c.outcome == "capped")
            ).scalars()
            assert sorted(capped) == ["13900000001", "13900000002"]
    finally:
        engine.dispose()
    assert result.exit_code == 0, result.output
    assert _sent_numbers(sim) == Counter(
        {"13900000000": 1, "13900000001": 1, "13900000002": 1, "13900000003": 1}
    )


def test_the_count_stays_fast_on_a_big_store(store_url):
    """100,000 recipients sent in the window (1,000 requests of 100): one grouped query."""
    engine = open_store(store_url)
    now = utcnow()
    try:
        with engine.begin() as conn:
            cid = conn.execute(
                sa.insert(campaigns)
                .values(name="big", state="finished", template="t", settings="{}", columns="[]",
                        files="[]", created_at=now)
                .returning(campaigns.c.id)
            ).scalar_one()  # fmt: skip
            mobiles = [f"13{i:09d}" for i in range(100_000)]
            bulk_insert(
                conn,
                "batches",
                ("campaign_id", "batch_id", "seq", "text", "segments", "size", "mobiles",
                 "state", "attempts", "submitted_at"),
                [(cid, f"b{k:06d}", k, "t", 1, 100, "", "accepted", 1, now) for k in range(1000)],
            )  # fmt: skip
            bulk_insert(
                conn,
                "recipients",
                ("campaign_id", "row_no", "source", "source_row", "cells", "mobile", "outcome",
                 "batch_id"),
                [(cid, i, "l.csv", i + 2, "[]", m, "ready", f"b{i // 100:06d}")
                 for i, m in enumerate(mobiles)],
            )  # fmt: skip
        started = time.perf_counter()
        counts = capped_mobiles(engine, 1, 24)
        elapsed = time.perf_counter() - started
        assert len(counts) == 100_000
        assert capped_mobiles(engine, 2, 24) == {}
        assert elapsed < 5, elapsed
    finally:
        engine.dispose()
