"""The console's plan cache (campaign/web/plans.py) and the web facade (workflow_web):
uploaded files planned under their own names, a plan sent exactly once, opt-out search,
progress figures; on a real SQLite store."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from campaign import workflow
from campaign.config import load_settings
from campaign.errors import NotFoundError, RepeatError
from campaign.outcomes import CampaignState
from campaign.store import open_store
from campaign.store.campaigns import list_campaigns
from campaign.web.plans import (
    PlanCache,
    PlanChangedError,
    PlanChoices,
    PlanUsedError,
    harmless_name,
    problem_rows,
)
from campaign.workflow_web import (
    add_optouts,
    campaign_detail,
    campaign_rows,
    list_snapshots,
    progress_of,
    remove_optouts,
    search_optouts,
    send_at_time,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
TEMPLATE = "【测试】{姓名|会员}您好，春季会员日全场八折"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'campaign.db'}"
    settings = load_settings(db=url, gateway="simulator", env={})
    engine = open_store(url)
    yield settings, engine, tmp_path
    engine.dispose()


def _upload(tmp_path: Path, *names: str) -> list[tuple[Path, str]]:
    """Copies of sample files under random-looking names, as uploads.py leaves them."""
    found = []
    for index, name in enumerate(names):
        target = tmp_path / "uploads" / f"u{index}" / f"part{index}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLES / Path(name).name, target)
        found.append((target, name))
    return found


def test_harmless_names():
    assert harmless_name("contacts.xlsx", 1) == "contacts.xlsx"
    assert harmless_name("../../etc/passwd", 1) == "passwd"
    assert harmless_name("C:\\Users\\me\\名单.csv", 2) == "名单.csv"
    assert harmless_name("..", 3) == "file3"
    assert harmless_name(".hidden.csv", 1) == "hidden.csv"
    assert harmless_name("a\x00b\nc.csv", 1) == "abc.csv"
    assert harmless_name("<script>x</script>.csv", 1) == "script>.csv"  # after the last slash
    assert (
        harmless_name("<img src=x onerror=alert(1)>.csv", 1) == "<img src=x onerror=alert(1)>.csv"
    )
    long = harmless_name("x" * 300 + ".xlsx", 1)
    assert len(long) <= 120 and long.endswith(".xlsx")


def test_a_plan_equals_the_plan_command_and_keeps_the_uploaded_names(env):
    settings, engine, tmp_path = env
    cache = PlanCache(tmp_path / "plans")
    entry = cache.add(
        settings,
        engine,
        _upload(tmp_path, "contacts.xlsx", "contacts.csv"),
        PlanChoices(TEMPLATE, name="spring"),
        "ann",
    )
    direct = workflow.plan_from_files(
        settings, [SAMPLES / "contacts.xlsx", SAMPLES / "contacts.csv"], TEMPLATE
    )
    data = entry.to_json()
    for key in ("rows", "outcomes", "recipients", "requests", "segments", "files", "sample"):
        assert data[key] == direct.figures()[key], key
    assert data["name"] == "spring" and data["revision"] == 1 and data["campaign_id"] is None
    assert [f["source"] for f in data["files"]] == ["contacts.xlsx:Sheet1", "contacts.csv"]
    not_ready = sum(n for outcome, n in data["outcomes"].items() if outcome != "ready")
    assert 0 < len(data["problems"]) == min(not_ready, 200)
    problem = data["problems"][0]
    assert set(problem) == {"source", "source_row", "mobile", "outcome", "reason"}
    assert problem["outcome"] != "ready" and problem["reason"]
    total, invalid = problem_rows(entry.planned, outcome="invalid", limit=5)
    assert total == data["outcomes"]["invalid"] and len(invalid) == min(total, 5)
    assert {p["outcome"] for p in invalid} == {"invalid"}
    assert not (tmp_path / "uploads" / "u0" / "part0").exists()  # moved into the plan
    assert entry.files[0].name == "contacts.xlsx" and entry.files[0].is_relative_to(
        tmp_path / "plans" / entry.plan_id
    )
    preview = cache.preview_file(entry.plan_id, "ann")
    assert preview.suffix == ".xlsx" and preview.stat().st_size > 0


def test_a_new_template_plans_the_contacts_read_at_upload(env, monkeypatch):
    import campaign.contacts

    settings, engine, tmp_path = env
    read = campaign.contacts.read_contacts
    reads: list[object] = []

    def counted(*args, **kwargs):
        reads.append(args[0])
        return read(*args, **kwargs)

    monkeypatch.setattr(campaign.contacts, "read_contacts", counted)
    cache = PlanCache(tmp_path / "plans")
    uploads = _upload(tmp_path, "contacts.xlsx", "contacts.csv")
    entry = cache.add(settings, engine, uploads, PlanChoices(TEMPLATE), "ann")
    assert len(reads) == 1
    entry_outcomes = dict(entry.planned.summary["outcomes"])
    ready = entry.planned.plan.rows
    first_ready = ready.loc[ready["outcome"] == "ready", "normalized_mobile"].iloc[0]
    add_optouts(engine, [first_ready], added_by="ann")  # since the upload
    template = "{姓名|会员}，{城市}会员日全场八折"
    revised = cache.revise(settings, engine, entry.plan_id, "ann", template=template)
    assert len(reads) == 1, "the template page read the files again"
    assert revised.revision == 2 and revised.choices.template == template
    direct = workflow.plan_from_files(
        settings, [SAMPLES / "contacts.xlsx", SAMPLES / "contacts.csv"], template,
        engine_or_url=engine,
    )  # fmt: skip
    data = revised.to_json()
    for key in ("rows", "outcomes", "recipients", "requests", "segments", "files", "sample"):
        assert data[key] == direct.figures()[key], key
    assert data["outcomes"]["suppressed"] == entry_outcomes["suppressed"] + 1
    reads.clear()
    cache.revise(settings, engine, entry.plan_id, "ann", mobile_column="手机号码")
    assert len(reads) == 1  # another way to read them: read again, once
    assert cache.get(entry.plan_id, "ann").rows == data["rows"]


def test_a_plan_belongs_to_its_user_and_bad_files_leave_nothing(env):
    settings, engine, tmp_path = env
    cache = PlanCache(tmp_path / "plans")
    entry = cache.add(
        settings, engine, _upload(tmp_path, "contacts.csv"), PlanChoices(TEMPLATE), "ann"
    )
    with pytest.raises(NotFoundError):
        cache.get(entry.plan_id, "bob")
    with pytest.raises(NotFoundError):
        cache.get("nope", "ann")
    bad = tmp_path / "bad.csv"
    bad.write_text("no,mobile\n1,2\n", encoding="utf-8")
    with pytest.raises(workflow.InputError):
        cache.add(settings, engine, [(bad, "bad.csv")], PlanChoices(TEMPLATE), "ann")
    assert [p.name for p in (tmp_path / "plans").iterdir()] == [entry.plan_id]


def test_a_plan_makes_one_campaign_however_often_it_is_confirmed(env):
    settings, engine, tmp_path = env
    cache = PlanCache(tmp_path / "plans")
    entry = cache.add(
        settings, engine, _upload(tmp_path, "contacts.csv"), PlanChoices(TEMPLATE), "ann"
    )
    results = []

    def confirm() -> None:
        results.append(cache.create_campaign(settings, engine, entry.plan_id, "ann"))

    threads = [threading.Thread(target=confirm) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.campaign_id for r in results}) == 1
    assert sorted(r.created for r in results) == [False, False, False, True]
    [record] = list_campaigns(engine)
    assert record.state == CampaignState.QUEUED and record.queued
    assert record.name.startswith("contacts ")  # the uploaded name, not the stored one
    with pytest.raises(PlanUsedError):
        cache.revise(settings, engine, entry.plan_id, "ann", template="x{姓名}")
    cache.close()  # the plan is gone, its campaign is remembered
    again = cache.create_campaign(settings, engine, entry.plan_id, "ann")
    assert (again.campaign_id, again.created) == (record.id, False)


def test_the_same_list_again_is_a_repeat_and_revisions_are_checked(env):
    settings, engine, tmp_path = env
    cache = PlanCache(tmp_path / "plans")
    first = cache.add(
        settings, engine, _upload(tmp_path, "contacts.csv"), PlanChoices(TEMPLATE), "ann"
    )
    cache.create_campaign(settings, engine, first.plan_id, "ann")
    second = cache.add(
        settings, engine, _upload(tmp_path, "contacts.csv"), PlanChoices(TEMPLATE), "ann"
    )
    with pytest.raises(RepeatError):
        cache.create_campaign(settings, engine, second.plan_id, "ann")
    revised = cache.revise(settings, engine, second.plan_id, "ann", template=TEMPLATE + "!")
    assert revised.revision == 2
    with pytest.raises(PlanChangedError):
        cache.create_campaign(settings, engine, second.plan_id, "ann", revision=1)
    made = cache.create_campaign(settings, engine, second.plan_id, "ann", revision=2)
    assert made.created and len(list_campaigns(engine)) == 2


def test_old_plans_leave_with_their_files(env):
    settings, engine, tmp_path = env
    cache = PlanCache(tmp_path / "plans", capacity=2)
    entries = [
        cache.add(settings, engine, _upload(tmp_path, "contacts.csv"), PlanChoices(TEMPLATE), "a")
        for _ in range(3)
    ]
    assert len(cache) == 2
    assert not entries[0].folder.exists() and entries[2].folder.exists()
    with pytest.raises(NotFoundError):
        cache.get(entries[0].plan_id, "a")


def test_optouts_search_add_remove(env):
    _, engine, _ = env
    change = add_optouts(engine, ["13800138000", "+86 139 0013 9000"], added_by="ann")
    assert change.to_json() == {"added": 2, "already": 0}
    assert add_optouts(engine, ["13800138000"], added_by="ann").to_json() == {
        "added": 0,
        "already": 1,
    }
    found = search_optouts(engine, "+86 138 0013")
    assert found["total"] == 1 and found["optouts"][0]["mobile"] == "13800138000"
    assert found["optouts"][0]["added_by"] == "ann"
    assert search_optouts(engine, "ANN")["total"] == 2
    assert search_optouts(engine, "%")["total"] == 0
    assert search_optouts(engine)["total"] == 2
    assert remove_optouts(engine, ["13800138000", "13700137000"]).to_json() == {
        "removed": 1,
        "not_listed": 1,
    }
    with pytest.raises(workflow.InputError):
        add_optouts(engine, ["12"], added_by="ann")


def test_progress_and_status(env):
    settings, engine, tmp_path = env
    figures = {
        "pending": {"batches": 1, "recipients": 10, "segments": 10},
        "sending": {"batches": 1, "recipients": 5, "segments": 5},
        "accepted": {"batches": 2, "recipients": 20, "segments": 20},
        "unknown": {"batches": 1, "recipients": 5, "segments": 5},
    }
    assert progress_of(figures).to_json() == {"sent": 20, "done": 25, "total": 40}
    cache = PlanCache(tmp_path / "plans")
    entry = cache.add(
        settings, engine, _upload(tmp_path, "contacts.csv"), PlanChoices(TEMPLATE), "ann"
    )
    made = cache.create_campaign(settings, engine, entry.plan_id, "ann")
    detail = campaign_detail(engine, str(made.campaign_id))
    assert detail["state"] == "queued"
    assert detail["progress"] == {"sent": 0, "done": 0, "total": entry.planned.recipients}
    [row] = campaign_rows(engine)["campaigns"]
    assert row["progress"]["total"] == entry.planned.recipients
    [snapshot] = list_snapshots(engine)
    assert snapshot.state == "queued" and snapshot.progress.total == entry.planned.recipients


def test_send_at(env):
    settings, _, _ = env
    assert send_at_time(settings, None) is None and send_at_time(settings, " ") is None
    later = send_at_time(settings, "2099-01-02T03:04:00+00:00")
    assert later is not None and (later.hour, later.minute) == (11, 4)
    with pytest.raises(workflow.InputError):
        send_at_time(settings, "2000-01-01 10:00")
    with pytest.raises(workflow.InputError):
        send_at_time(settings, "tomorrow")
