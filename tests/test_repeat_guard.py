"""`campaign send` refuses a list (or a --name) that the store already holds as a campaign."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from campaign.cli import app
from campaign.contacts import read_contacts
from campaign.plan import make_plan
from campaign.store import open_store
from campaign.store.schema import batches, campaigns
from tests.support.simulator import running_simulator

runner = CliRunner()
MOBILES = [f"1390000{i:04d}" for i in range(8)]


@pytest.fixture
def sim():
    with running_simulator() as sim:
        yield sim


def _env(sim) -> dict[str, str]:
    return {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}


def _contacts(tmp_path, mobiles=MOBILES, name: str = "vip.csv") -> str:
    path = tmp_path / name
    lines = ["name,mobile"] + [f"客户{m[-2:]},{m}" for m in mobiles]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _template(tmp_path, text: str = "{name}您好，春季特惠") -> str:
    path = tmp_path / f"t{abs(hash(text))}.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _send(sim, url: str, contacts: str, template: str, *extra: str):
    args = ["send", contacts, "-t", template, "--db", url, "--gateway", sim.url, "--yes"]
    return runner.invoke(app, [*args, *extra], env=_env(sim))


def _sent_numbers(sim) -> Counter[str]:
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def _campaigns(url: str) -> list[tuple[int, str, str]]:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            query = sa.select(campaigns.c.id, campaigns.c.name, campaigns.c.state)
            return [tuple(r) for r in conn.execute(query.order_by(campaigns.c.id))]
    finally:
        engine.dispose()


def test_the_same_list_twice_is_refused(store_url, tmp_path, sim):
    contacts, template = _contacts(tmp_path), _template(tmp_path)
    first = _send(sim, store_url, contacts, template, "--name", "spring")
    assert first.exit_code == 0, first.output
    [(cid, _, _)] = _campaigns(store_url)
    again = _send(sim, store_url, contacts, template)
    assert again.exit_code == 3, again.output
    message = again.stderr.strip()
    assert len(message.splitlines()) == 1
    assert f"campaign {cid} 'spring'" in message
    assert f"campaign resume {cid}" in message and "--again" in message
    assert _sent_numbers(sim) == Counter(MOBILES)  # each number once
    assert len(_campaigns(store_url)) == 1  # nothing stored


def test_again_sends_the_list_once_more(store_url, tmp_path, sim):
    contacts, template = _contacts(tmp_path), _template(tmp_path)
    assert _send(sim, store_url, contacts, template).exit_code == 0
    again = _send(sim, store_url, contacts, template, "--again", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["recipients"] == len(MOBILES)
    assert _sent_numbers(sim) == Counter({m: 2 for m in MOBILES})
    assert len(_campaigns(store_url)) == 2


def test_a_stopped_campaign_sent_again_points_at_resume(store_url, tmp_path, sim):
    """A run stopped half way (here: out of quota; Ctrl-C leaves the same state)."""
    contacts, template = _contacts(tmp_path), _template(tmp_path)
    sim.set_quota(sim.settings.accounts[0].default, 3)
    stopped = _send(sim, store_url, contacts, template, "--force")
    assert stopped.exit_code == 4, stopped.output
    [(cid, _, state)] = _campaigns(store_url)
    assert state == "stopped"
    sim.top_up(sim.settings.accounts[0].default, 100)
    again = _send(sim, store_url, contacts, template, "--force")
    assert again.exit_code == 3, again.output
    assert f"campaign {cid}" in again.stderr and "(stopped)" in again.stderr
    assert f"campaign resume {cid}" in again.stderr
    assert sum(_sent_numbers(sim).values()) == 3
    resumed = runner.invoke(
        app, ["resume", str(cid), "--db", store_url, "--gateway", sim.url], env=_env(sim)
    )
    assert resumed.exit_code == 0, resumed.output
    assert _sent_numbers(sim) == Counter(MOBILES)


def test_an_interrupted_send_is_refused_too(sqlite_url, tmp_path, sim, monkeypatch):
    """Ctrl-C during the send: the campaign is stopped, a second send is a repeat."""
    from campaign.send import interrupt

    def interrupted(work, stop, announce, *, name):
        stop.set()  # what Ctrl-C does: stop after the requests in flight
        return work(), True

    monkeypatch.setattr(interrupt, "in_thread", interrupted)
    contacts, template = _contacts(tmp_path), _template(tmp_path)
    first = _send(sim, sqlite_url, contacts, template)
    [(cid, _, state)] = _campaigns(sqlite_url)
    assert (first.exit_code, state) == (130, "stopped"), first.output
    monkeypatch.undo()
    again = _send(sim, sqlite_url, contacts, template)
    assert again.exit_code == 3, again.output
    assert f"campaign resume {cid}" in again.stderr


def test_an_existing_name_is_refused_even_with_again(store_url, tmp_path, sim):
    template = _template(tmp_path)
    first = _send(sim, store_url, _contacts(tmp_path), template, "--name", "vip")
    assert first.exit_code == 0, first.output
    other = _contacts(tmp_path, [f"1370000{i:04d}" for i in range(3)], "other.csv")
    for extra in ((), ("--again",)):
        refused = _send(sim, store_url, other, template, "--name", "vip", *extra)
        assert refused.exit_code == 3, refused.output
        assert "named 'vip'" in refused.stderr and "campaign 1" in refused.stderr
        assert "another --name" in refused.stderr
    assert len(_campaigns(store_url)) == 1
    renamed = _send(sim, store_url, other, template, "--name", "vip 2")
    assert renamed.exit_code == 0, renamed.output
    assert _sent_numbers(sim)["13700000001"] == 1


def test_another_text_or_other_numbers_are_no_repeat(sqlite_url, tmp_path, sim):
    contacts = _contacts(tmp_path)
    assert _send(sim, sqlite_url, contacts, _template(tmp_path)).exit_code == 0
    other_text = _send(sim, sqlite_url, contacts, _template(tmp_path, "{name}，周末特惠"))
    assert other_text.exit_code == 0, other_text.output
    fewer = _contacts(tmp_path, MOBILES[:-1], "fewer.csv")
    assert _send(sim, sqlite_url, fewer, _template(tmp_path)).exit_code == 0
    assert len(_campaigns(sqlite_url)) == 3


def test_reordered_rows_and_a_new_optout_are_still_the_same_list(store_url, tmp_path, sim):
    template = _template(tmp_path)
    assert _send(sim, store_url, _contacts(tmp_path), template).exit_code == 0
    added = runner.invoke(app, ["optout", "add", MOBILES[0], "--db", store_url])
    assert added.exit_code == 0, added.output
    shuffled = [*MOBILES[::-1], MOBILES[2]]  # another order, and a duplicate row
    again = _send(sim, store_url, _contacts(tmp_path, shuffled, "shuffled.csv"), template)
    assert again.exit_code == 3, again.output
    assert "campaign resume 1" in again.stderr
    assert _sent_numbers(sim) == Counter(MOBILES)


def test_a_cancelled_campaign_is_a_repeat_only_when_it_sent_something(store_url, tmp_path, sim):
    contacts, template = _contacts(tmp_path), _template(tmp_path)
    assert _send(sim, store_url, contacts, template).exit_code == 0
    engine = open_store(store_url)
    try:
        with engine.begin() as conn:  # cancelled after its requests left
            conn.execute(sa.update(campaigns).values(state="cancelled"))
        refused = _send(sim, store_url, contacts, template)
        assert refused.exit_code == 3, refused.output
        assert "cancelled after part of it was sent" in refused.stderr
        assert "--again" in refused.stderr
        with engine.begin() as conn:  # as if cancelled before any request left
            conn.execute(sa.update(batches).values(state="cancelled"))
    finally:
        engine.dispose()
    again = _send(sim, store_url, contacts, template)
    assert again.exit_code == 0, again.output
    assert _sent_numbers(sim) == Counter({m: 2 for m in MOBILES})


def test_refused_before_asking(sqlite_url, tmp_path, sim, monkeypatch):
    contacts, template = _contacts(tmp_path), _template(tmp_path)
    assert _send(sim, sqlite_url, contacts, template).exit_code == 0
    from campaign.cli import send as send_module

    monkeypatch.setattr(send_module, "is_terminal", lambda: True)
    args = ["send", contacts, "-t", template, "--db", sqlite_url, "--gateway", sim.url]
    refused = runner.invoke(app, args, input="y\n", env=_env(sim))
    assert refused.exit_code == 3, refused.output
    assert "Send " not in refused.stderr  # no question before the refusal
    assert "campaign resume 1" in refused.stderr
    assert len(_campaigns(sqlite_url)) == 1


def test_the_fingerprint_is_the_set_of_pairs(tmp_path):
    rows = [(f"客户{i}", f"1390000{i:04d}") for i in range(50)]

    def fingerprint(rows, text="{name}您好", name="l.csv"):
        path = tmp_path / name
        path.write_text("name,mobile\n" + "".join(f"{n},{m}\n" for n, m in rows), "utf-8")
        return make_plan(read_contacts([path]), text).fingerprint

    base = fingerprint(rows)
    assert base is not None and len(base) == 64
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    assert fingerprint(shuffled, name="s.csv") == base
    assert fingerprint(rows, "{name}你好") != base
    assert fingerprint(rows[1:]) != base
    swapped = [(rows[1][0], rows[0][1]), (rows[0][0], rows[1][1]), *rows[2:]]
    assert fingerprint(swapped) != base  # same texts, same numbers, other pairs
    fingerprint(rows)  # before the store's lists rule numbers out:
    path = tmp_path / "l.csv"
    fewer = make_plan(read_contacts([path]), "{name}您好", suppressed={rows[0][1]})
    assert fewer.summary()["outcomes"]["suppressed"] == 1 and fewer.fingerprint == base
