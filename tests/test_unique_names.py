"""Campaign names are unique in the store: nightly files with one name, default `send`
names in the same minute, old stores with duplicates (schema 3 upgrade), all-digit names.
Real SQLite files and PostgreSQL, the built-in simulator over loopback."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import JobSettings
from campaign.errors import InputError, NotFoundError
from campaign.jobs import campaign_names, export_name, glob_root, run_jobs
from campaign.store import open_store
from campaign.store.campaigns import create_campaign, get_campaign, usable_name
from campaign.store.schema import SCHEMA_VERSION, campaigns, meta
from tests.support.plans import small_plan
from tests.support.simulator import running_simulator
from tests.test_jobs import write_config, write_contacts
from tests.test_jobs_safety import DAY1, DAY2, DAY3, at, settings_for

runner = CliRunner()


def nightly_config(tmp_path: Path, sim_url: str, pattern: str) -> Path:
    config = write_config(tmp_path, sim_url)
    text = config.read_text(encoding="utf-8").replace("incoming/*.csv", pattern)
    config.write_text(text, encoding="utf-8")
    return config


def names_by_id(url: str) -> dict[int, str]:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(campaigns.c.id, campaigns.c.name)).all()
        return {int(r.id): r.name for r in rows}
    finally:
        engine.dispose()


def export_cli(url: str, ref: str, out: Path):
    return runner.invoke(app, ["export", ref, "-o", str(out), "--db", url, "--json"])


def exported_mobiles(path: Path) -> set[str]:
    import pandas as pd

    frame = pd.read_csv(path, dtype=str)
    return set(frame["手机号码"])


# ---------------------------------------------------------------------------- campaign run


@pytest.mark.parametrize("pattern", ["incoming/*/list.csv", "incoming/**/*.csv"])
def test_two_nightly_files_with_one_name_are_two_names_and_two_exports(
    tmp_path, store_url, pattern
):
    with running_simulator() as sim:
        config = nightly_config(tmp_path, sim.url, pattern)
        write_contacts(tmp_path / "incoming" / "a" / "list.csv", 0, 3)
        write_contacts(tmp_path / "incoming" / "b" / "list.csv", 100, 2)
        report = run_jobs(settings_for(config, store_url), clock=at(DAY1, 10))
        assert report.exit_code == 0, report.summary()
        first, second = report.jobs[0].created
        assert names_by_id(store_url) == {first: "weekly list.csv", second: "weekly b/list.csv"}

        exports = sorted(p.name for p in (tmp_path / "exports").iterdir())
        assert exports == ["weekly b_list.xlsx", "weekly list.xlsx"]  # none overwritten
        assert sorted(Path(p).name for p in report.jobs[0].exported) == exports

        # each name finds its own campaign (and its own rows)
        for name, mobiles in (
            ("weekly list.csv", {f"139{i:08d}" for i in range(3)}),
            ("weekly b/list.csv", {f"139{i:08d}" for i in (100, 101)}),
        ):
            out = tmp_path / f"{export_name(name)}.csv"
            result = export_cli(store_url, name, out)
            assert result.exit_code == 0, result.output
            assert exported_mobiles(out) == mobiles


def test_a_redelivered_file_with_new_content_gets_a_path_then_a_date_then_a_counter(
    tmp_path, store_url
):
    with running_simulator() as sim:
        config = nightly_config(tmp_path, sim.url, "incoming/*/list.csv")
        settings = settings_for(config, store_url)
        path = tmp_path / "incoming" / "a" / "list.csv"
        created: list[int] = []
        for first, clock in (
            (0, at(DAY1, 10)),
            (10, at(DAY2, 10)),
            (20, at(DAY3, 10)),
            (30, at(DAY3, 11)),
        ):
            write_contacts(path, first, 2)  # same path, new content
            report = run_jobs(settings, clock=clock)
            assert report.exit_code == 0, report.summary()
            created += report.jobs[0].created
        again = run_jobs(settings, clock=at(DAY3, 12))  # nothing new: nothing created
        assert again.jobs[0].created == []
        names = names_by_id(store_url)
        assert [names[i] for i in created] == [
            "weekly list.csv",
            "weekly a/list.csv",
            f"weekly list.csv {DAY3:%Y-%m-%d}",
            f"weekly list.csv {DAY3:%Y-%m-%d} (2)",
        ]
        exports = {p.name for p in (tmp_path / "exports").iterdir()}
        assert len(exports) == 4  # one file per campaign


def test_export_names_that_only_differ_in_case_get_the_campaign_id(tmp_path, sqlite_url):
    with running_simulator() as sim:
        config = nightly_config(tmp_path, sim.url, "incoming/*.csv")
        write_contacts(tmp_path / "incoming" / "list.csv", 0, 2)
        write_contacts(tmp_path / "incoming" / "LIST.csv", 10, 2)
        report = run_jobs(settings_for(config, sqlite_url), clock=at(DAY1, 10))
        assert report.exit_code == 0
        ids = report.jobs[0].created
        names = names_by_id(sqlite_url)
        assert sorted(names[i] for i in ids) == ["weekly LIST.csv", "weekly list.csv"]
        exports = sorted(p.name.lower() for p in (tmp_path / "exports").iterdir())
        assert len(exports) == 2 and f"weekly list (campaign {ids[1]}).xlsx" in exports


@pytest.mark.parametrize(
    ("pattern", "root"),
    [
        ("/srv/in/*/list.csv", "/srv/in"),
        ("/srv/in/**/*.csv", "/srv/in"),
        ("/srv/in/list.csv", "/srv/in"),
        ("/srv/in/[ab]/x.csv", "/srv/in"),
        ("*.csv", "."),
    ],
)
def test_glob_root(pattern, root):
    assert glob_root(pattern) == Path(root)


def test_campaign_names_of_a_job_file():
    job = JobSettings(name="nightly", contacts="/srv/in/*/list.csv", template="t.txt")
    assert campaign_names(job, Path("/srv/in/a/list.csv"), DAY1) == [
        "nightly list.csv",
        "nightly a/list.csv",
        f"nightly list.csv {DAY1:%Y-%m-%d}",
    ]
    outside = campaign_names(job, Path("/elsewhere/list.csv"), DAY1)
    assert outside[1] == "nightly list.csv"


@pytest.mark.parametrize(
    "name", ["nightly a/list.csv", "nightly a\\list.csv", "n a:b*?<>|.csv", "n \x01x.csv"]
)
def test_export_names_have_no_path_separator(name):
    file_name = export_name(name)
    assert not set(file_name) & set('/\\:*?"<>|\x00\x01') and file_name.endswith(".xlsx")


# ---------------------------------------------------------------------------- send


@pytest.fixture
def sim():
    with running_simulator() as sim:
        yield sim


def _send(sim, url: str, contacts: Path, *extra: str):
    args = ["send", str(contacts), "--text", "{name}您好，春季特惠", "--db", url]
    env = {"CAMPAIGN_ACCOUNT": sim.account, "CAMPAIGN_PASSWORD": sim.password}
    return runner.invoke(app, [*args, "--gateway", sim.url, "--yes", *extra], env=env)


def _list(path: Path, first: int, count: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"客户{i},139{i:08d}" for i in range(first, first + count)]
    path.write_text("name,mobile\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_default_send_names_in_one_minute_do_not_collide(store_url, tmp_path, sim, monkeypatch):
    moment = datetime(2026, 3, 2, 1, 5, 30, tzinfo=UTC)  # 09:05 China time
    monkeypatch.setattr("campaign.store.campaigns.utcnow", lambda: moment)
    ids = []
    for folder, first in (("a", 0), ("b", 10), ("c", 20)):
        result = _send(sim, store_url, _list(tmp_path / folder / "vip.csv", first, 2), "--json")
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.stdout)["campaign_id"])
    assert [names_by_id(store_url)[i] for i in ids] == [
        "vip 2026-03-02 09:05",
        "vip 2026-03-02 09:05 (2)",
        "vip 2026-03-02 09:05 (3)",
    ]
    status = runner.invoke(app, ["status", "vip 2026-03-02 09:05 (2)", "--db", store_url, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["campaign_id"] == ids[1]


def test_a_given_name_is_still_refused_not_suffixed(store_url, tmp_path, sim):
    assert _send(sim, store_url, _list(tmp_path / "a.csv", 0, 2), "--name", "spring").exit_code == 0
    refused = _send(sim, store_url, _list(tmp_path / "b.csv", 10, 2), "--name", " spring ")
    assert refused.exit_code == 3 and "named 'spring' already exists" in refused.stderr
    assert list(names_by_id(store_url).values()) == ["spring"]


@pytest.mark.parametrize("name", ["2025", " 17 ", "２０２５", "   ", ""])
def test_all_digit_or_empty_names_are_refused_at_send(sqlite_url, tmp_path, sim, name):
    result = _send(sim, sqlite_url, _list(tmp_path / "a.csv", 0, 2), "--name", name)
    assert result.exit_code == 3, result.output
    assert "--name" in result.stderr
    assert sim.received() == []
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # nothing stored


def test_usable_name():
    assert usable_name("  双十一 2025 ") == "双十一 2025"
    assert usable_name("2025a") == "2025a"
    with pytest.raises(InputError, match="all digits"):
        usable_name("2025")


def test_ids_win_over_an_all_digit_name_of_an_old_store(store_url):
    engine = open_store(store_url)
    try:
        one = create_campaign(engine, small_plan(), name="first", settings_snapshot={})
        two = create_campaign(engine, small_plan(), name="second", settings_snapshot={})
        with engine.begin() as conn:  # written before all-digit names were refused
            conn.execute(sa.update(campaigns).where(campaigns.c.id == two).values(name=str(one)))
            conn.execute(sa.update(campaigns).where(campaigns.c.id == one).values(name="77"))
        assert get_campaign(engine, str(one)).id == one  # the id, not the name
        assert get_campaign(engine, "77").id == one  # no campaign 77: the name
        with pytest.raises(NotFoundError):
            get_campaign(engine, "9" * 30)  # no id that long, no such name: not a crash
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- the store


def test_create_campaign_never_reuses_a_name(store_url):
    engine = open_store(store_url)
    try:
        ids = [
            create_campaign(engine, small_plan(), name="x", settings_snapshot={}) for _ in range(3)
        ]
        other = create_campaign(
            engine, small_plan(), name="x", other_names=["x y", "x z"], settings_snapshot={}
        )
        names = names_by_id(store_url)
        assert [names[i] for i in ids] == ["x", "x (2)", "x (3)"]
        assert names[other] == "x y"
        with pytest.raises(IntegrityError), engine.begin() as conn:  # and the index says so
            conn.execute(sa.update(campaigns).where(campaigns.c.id == ids[1]).values(name="x"))
    finally:
        engine.dispose()


def test_concurrent_creators_get_different_names(store_url):
    engine = open_store(store_url)
    errors: list[BaseException] = []

    def create() -> None:
        try:
            create_campaign(engine, small_plan(), name="same", settings_snapshot={})
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=create) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sorted(names_by_id(store_url).values()) == sorted(
            ["same"] + [f"same ({n})" for n in range(2, 7)]
        )
    finally:
        engine.dispose()


def _make_schema_2_store(url: str) -> dict[str, int]:
    """A store as schema 2 wrote it: ix_campaigns_name not unique, "x" named twice."""
    engine = open_store(url)
    try:
        ids = {
            name: create_campaign(engine, small_plan(), name=name, settings_snapshot={})
            for name in ("x", "x-later", "y", "z")
        }
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_campaigns_name")
            conn.exec_driver_sql("CREATE INDEX ix_campaigns_name ON campaigns (name)")
            later = campaigns.c.id == ids["x-later"]
            conn.execute(sa.update(campaigns).where(later).values(name="x"))
            conn.execute(meta.update().values(value="2"))
        return ids
    finally:
        engine.dispose()


def test_schema_2_store_with_shared_names_is_upgraded(store_url, tmp_path):
    ids = _make_schema_2_store(store_url)
    engine = open_store(store_url)  # upgrades to schema 3
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(meta.c.value)).scalar() == str(SCHEMA_VERSION)
            indexes = {i["name"]: i for i in sa.inspect(conn).get_indexes("campaigns")}
        assert indexes["ix_campaigns_name"]["unique"]
        assert names_by_id(store_url) == {
            ids["x"]: f"x (#{ids['x']})",  # neither keeps the shared name
            ids["x-later"]: f"x (#{ids['x-later']})",
            ids["y"]: "y",
            ids["z"]: "z",
        }
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(sa.update(campaigns).where(campaigns.c.id == ids["z"]).values(name="y"))
    finally:
        engine.dispose()
    # the shared name finds none of them silently: not found, the new names shown
    result = export_cli(store_url, "x", tmp_path / "x.csv")
    assert result.exit_code == 3, result.output
    assert "no campaign 'x'" in result.stderr
    assert f"'x (#{ids['x']})', 'x (#{ids['x-later']})'" in result.stderr
    by_new_name = export_cli(store_url, f"x (#{ids['x-later']})", tmp_path / "x.csv")
    assert by_new_name.exit_code == 0, by_new_name.output


def test_the_upgrade_never_renames_onto_a_taken_name(sqlite_url):
    engine = open_store(sqlite_url)
    try:
        a = create_campaign(engine, small_plan(), name="a", settings_snapshot={})
        b = create_campaign(engine, small_plan(), name=f"a (#{a + 2})", settings_snapshot={})
        c = create_campaign(engine, small_plan(), name="c", settings_snapshot={})
        assert (b, c) == (a + 1, a + 2)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_campaigns_name")
            conn.exec_driver_sql("CREATE INDEX ix_campaigns_name ON campaigns (name)")
            conn.execute(sa.update(campaigns).where(campaigns.c.id == c).values(name="a"))
            conn.execute(meta.update().values(value="2"))
    finally:
        engine.dispose()
    open_store(sqlite_url).dispose()
    assert names_by_id(sqlite_url) == {a: f"a (#{a})", b: f"a (#{c})", c: f"a (#{c}) (#{c})"}


def test_a_name_several_campaigns_have_is_exit_3_listing_ids(store_url, tmp_path):
    """A store whose names are not unique, read as it is (its index lost: schema 3 recorded,
    no upgrade runs): a name lookup never picks one of them."""
    engine = open_store(store_url)
    try:
        ids = [create_campaign(engine, small_plan(), name=n, settings_snapshot={}) for n in "xyx"]
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_campaigns_name")
            conn.execute(sa.update(campaigns).where(campaigns.c.id == ids[2]).values(name="x"))
        message = f"2 campaigns are named 'x': {ids[0]}, {ids[2]}; give the id"
        with pytest.raises(InputError, match="2 campaigns are named 'x'") as caught:
            get_campaign(engine, "x")
        assert str(caught.value) == message
        assert get_campaign(engine, str(ids[2])).id == ids[2]
    finally:
        engine.dispose()
    for args in (
        ["export", "x", "-o", str(tmp_path / "x.csv")],
        ["status", "x"],
        ["status", "--name", "x"],
        ["resume", "x"],
    ):
        result = runner.invoke(app, [*args, "--db", store_url])
        assert result.exit_code == 3, (args, result.output)
        assert message in result.stderr
    assert not (tmp_path / "x.csv").exists()
