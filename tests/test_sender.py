"""The send loop against the real simulator over loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from datetime import datetime, time

import pytest
import sqlalchemy as sa

from campaign.config import ComplianceSettings, SendWindow, Settings
from campaign.errors import ExitCode
from campaign.gateway.client import GatewayClient
from campaign.gateway.protocol import Accepted, NotSent
from campaign.outcomes import StopCause
from campaign.sender import ProgressEvent, RateLimiter, SendPolicy, send_campaign
from campaign.store import open_store
from campaign.store.batches import batch_state_counts
from campaign.store.campaigns import create_campaign, get_campaign
from campaign.store.schema import batches
from campaign.timeutil import CHINA
from tests.support.simulator import gateway_settings, running_simulator
from tests.test_store_campaigns import fake_plan

QUICK = SendPolicy(
    concurrency=4,
    retry_base=0.01,
    retry_cap=0.05,
    busy_base=0.01,
    busy_cap=0.05,
    wait_step=0.05,
    heartbeat=0.5,
)


@pytest.fixture
def sim():
    with running_simulator() as sim:
        yield sim


def _settings(sim, **gateway) -> Settings:
    gateway.setdefault("rate", 0.0)
    return Settings(gateway=gateway_settings(sim, **gateway))


def _campaign(engine, n=31, per_batch=3, name="spring") -> int:
    return create_campaign(engine, fake_plan(n, per_batch), name=name, settings_snapshot={})


def _send(engine, cid, sim, settings=None, **kwargs):
    settings = settings or _settings(sim)
    kwargs.setdefault("policy", QUICK)
    with GatewayClient(settings.gateway) as client:
        return send_campaign(engine, cid, client, settings, **kwargs)


class FakeClock:
    """A monotonic clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class _AcceptingClient:
    """Accepts every request, noting the fake clock's time when it left."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent_at: list[float] = []

    def query_balance(self):
        return NotSent("no balance here")

    def send_batch(self, mobiles, text):
        self.sent_at.append(self.clock())
        return Accepted(str(len(self.sent_at)), "20260101000000")


def _taken(sim) -> Counter[str]:
    """How many times the simulator took each mobile (code 0)."""
    return Counter(m for r in sim.received() if r.sent for m in r.mobiles)


def _all_mobiles(n=31) -> set[str]:
    return {f"139{i:08d}" for i in range(n) if i != 1}


def test_everything_is_sent_exactly_once(engine, sim):
    cid = _campaign(engine)
    events: list[ProgressEvent] = []
    report = _send(engine, cid, sim, on_progress=events.append)
    assert report.state == "finished" and report.exit_code is ExitCode.OK
    assert report.count("accepted") == 10 and report.requests_sent == 10
    assert (report.recipients, report.requests, report.segments) == (30, 10, 30)
    taken = _taken(sim)
    assert set(taken) == _all_mobiles() and set(taken.values()) == {1}
    assert get_campaign(engine, str(cid)).state == "finished"
    last = [e for e in events if e.kind == "progress"][-1]
    assert (last.requests_done, last.requests_total, last.recipients_sent) == (10, 10, 30)


def test_busy_and_too_fast_storms_end_with_everyone_once(engine, sim):
    cid = _campaign(engine)
    sim.inject_busy(4)
    sim.inject_too_fast(4)
    events: list[ProgressEvent] = []
    report = _send(engine, cid, sim, _settings(sim, rate=200.0), on_progress=events.append)
    assert report.state == "finished" and report.exit_code is ExitCode.OK
    assert set(_taken(sim).values()) == {1} and set(_taken(sim)) == _all_mobiles()
    assert any("backing off, rate now" in e.message for e in events)  # the rate adapted


def test_quota_exhausted_half_way_then_resume(engine, sim):
    cid = _campaign(engine)
    product = sim.settings.accounts[0].default
    sim.set_quota(product, 15)
    report = _send(engine, cid, sim, force=True)
    assert report.state == "stopped" and report.exit_code is ExitCode.GATEWAY_STOP
    assert "no quota left" in (report.stop_reason or "")
    assert report.stop_cause is StopCause.GATEWAY
    assert report.count("accepted") == 5 and report.count("pending") == 5
    assert get_campaign(engine, str(cid)).stop_reason == report.stop_reason
    sim.top_up(product, 1000)
    again = _send(engine, cid, sim)
    assert again.state == "finished" and again.exit_code is ExitCode.OK
    assert set(_taken(sim).values()) == {1} and set(_taken(sim)) == _all_mobiles()


def test_a_refusal_that_ends_the_run_holds_the_requests_claimed_ahead(engine, sim):
    """Requests queued behind one answered 109 (no quota left) never leave: they go back
    to pending as they were, not one more request reaches the gateway."""
    cid = _campaign(engine, n=41, per_batch=1)  # 40 requests
    sim.set_quota(sim.settings.accounts[0].default, 10)
    policy = replace(QUICK, concurrency=1, claim_group=16)
    report = _send(engine, cid, sim, force=True, policy=policy)
    assert report.stop_cause is StopCause.GATEWAY and report.exit_code is ExitCode.GATEWAY_STOP
    assert [r.code for r in sim.received()] == ["0"] * 10 + ["109"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(batches.c.state, batches.c.attempts)).all()
    assert Counter(state for state, _ in rows) == {"accepted": 10, "pending": 30}
    assert Counter(attempts for state, attempts in rows if state == "pending") == {0: 29, 1: 1}


def test_low_balance_stops_before_sending_unless_forced(engine, sim):
    cid = _campaign(engine)
    sim.set_quota(sim.settings.accounts[0].default, 10)
    report = _send(engine, cid, sim)
    assert report.state == "stopped" and report.exit_code is ExitCode.GATEWAY_STOP
    assert "is 10 segments, but 30 billed segments" in (report.stop_reason or "")
    assert report.stop_cause is StopCause.BALANCE
    assert sim.received() == []


def test_dropped_connection_is_unknown_and_resent_only_on_request(engine, sim):
    cid = _campaign(engine, n=7, per_batch=2)  # 3 batches
    sim.inject_drop(1)
    report = _send(engine, cid, sim, policy=replace(QUICK, concurrency=1))
    assert report.state == "finished" and report.exit_code is ExitCode.PARTIAL
    assert report.count("unknown") == 1
    first = sim.received()[0].mobiles
    assert _taken(sim)[first[0]] == 1
    again = _send(engine, cid, sim)  # a plain resume does not resend it
    assert again.count("unknown") == 1 and len(sim.received()) == 3
    resent = _send(engine, cid, sim, resend_unknown=True)
    assert resent.exit_code is ExitCode.OK and resent.count("accepted") == 3
    assert _taken(sim)[first[0]] == 2  # sent once more, as asked
    assert len(sim.received()) == 4


def test_stop_code_stops_the_run_and_rejection_is_data(engine, sim):
    cid = _campaign(engine)
    sim.inject_code("107")
    sim.inject_code("117")
    report = _send(engine, cid, sim, policy=replace(QUICK, concurrency=1))
    assert report.state == "stopped" and report.exit_code is ExitCode.GATEWAY_STOP
    assert "IP authentication failed" in (report.stop_reason or "")
    assert report.count("rejected") == 1 and report.count("pending") == 9
    final = _send(engine, cid, sim)
    assert final.state == "finished" and final.exit_code is ExitCode.PARTIAL
    assert final.count("rejected") == 1 and final.count("accepted") == 9


def test_unreachable_gateway_stops_with_nothing_sent(engine):
    cid = _campaign(engine)
    settings = Settings(
        gateway=replace(
            Settings().gateway, url="http://127.0.0.1:9/msg", account="a", password="p", rate=0.0
        )
    )
    with GatewayClient(settings.gateway) as client:
        report = send_campaign(engine, cid, client, settings, policy=QUICK)
    assert report.state == "stopped" and report.exit_code is ExitCode.GATEWAY_STOP
    assert "gateway unreachable" in (report.stop_reason or "")
    assert report.stop_cause is StopCause.GATEWAY
    assert batch_state_counts(engine, cid)["pending"] == 10


def test_outside_the_window_with_no_wait_stops_at_once(engine, sim):
    cid = _campaign(engine)
    settings = replace(
        _settings(sim),
        compliance=ComplianceSettings(send_window=SendWindow(time(8), time(21))),
    )
    late = SendPolicy(clock=lambda: datetime(2026, 3, 1, 22, 30, tzinfo=CHINA))
    report = _send(engine, cid, sim, settings, no_wait=True, policy=late)
    assert report.state == "stopped" and report.exit_code is ExitCode.GATEWAY_STOP
    assert "opens at 2026-03-02 08:00" in (report.stop_reason or "")
    assert report.stop_cause is StopCause.WINDOW
    assert sim.received() == []


def test_waiting_for_the_window_honours_stop(engine, sim):
    cid = _campaign(engine)
    settings = replace(
        _settings(sim),
        compliance=ComplianceSettings(send_window=SendWindow(time(8), time(21))),
    )
    stop = threading.Event()
    events: list[ProgressEvent] = []

    def on_progress(event: ProgressEvent) -> None:
        events.append(event)
        if event.message.startswith("waiting"):
            stop.set()

    late = replace(QUICK, clock=lambda: datetime(2026, 3, 1, 22, 30, tzinfo=CHINA))
    report = _send(engine, cid, sim, settings, policy=late, stop=stop, on_progress=on_progress)
    assert report.state == "stopped" and report.interrupted
    assert sim.received() == []


def test_rate_limit_paces_requests(engine):
    """At 10/s, 100 requests leave exactly 0.1 s apart on the run's (fake) clock."""
    clock = FakeClock()
    client = _AcceptingClient(clock)
    cid = _campaign(engine, n=101, per_batch=1)  # 100 requests
    settings = replace(Settings(), gateway=replace(Settings().gateway, rate=10.0))
    policy = replace(QUICK, monotonic=clock, sleep=clock.sleep, shared_pace=False)
    report = send_campaign(engine, cid, client, settings, policy=policy)
    assert report.state == "finished" and report.requests_sent == 100
    assert client.sent_at == pytest.approx([k / 10 for k in range(100)], abs=1e-9)
    # the run ends when the next token finds nothing left to claim
    assert report.elapsed == pytest.approx(10.0, abs=1e-9)


def test_two_workers_share_a_campaign_without_double_sends(store_url, sim):
    setup = open_store(store_url)
    cid = _campaign(setup, n=121, per_batch=2)
    setup.dispose()
    reports = []

    def worker() -> None:
        engine = open_store(store_url)
        try:
            reports.append(_send(engine, cid, sim, _settings(sim, rate=50.0)))
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = _taken(sim)
    assert set(taken) == _all_mobiles(121) and set(taken.values()) == {1}
    assert sum(r.requests_sent for r in reports) == 60
    assert all(r.requests_sent > 0 for r in reports)


def test_unreadable_balance_is_a_warning(engine):
    class Client:
        def __init__(self) -> None:
            self.sent: list[tuple[str, ...]] = []

        def query_balance(self):
            return NotSent("no route")

        def send_batch(self, mobiles, text):
            from campaign.gateway.protocol import Accepted

            self.sent.append(tuple(mobiles))
            return Accepted(str(len(self.sent)), "20260101000000")

    cid = _campaign(engine)
    client = Client()
    report = send_campaign(engine, cid, client, Settings(), policy=QUICK)
    assert report.state == "finished" and len(client.sent) == 10
    assert any("balance could not be read" in w for w in report.warnings)


def test_gateway_without_balance_interface_still_sends(engine):
    """A 404 on QueryBalance (a send-only reseller gateway) is a warning, not a stop."""
    from campaign.gateway.protocol import Accepted, Refused, no_such_interface

    class Client:
        def __init__(self) -> None:
            self.sent: list[tuple[str, ...]] = []

        def query_balance(self):
            return Refused("HTTP 404", no_such_interface(404))

        def send_batch(self, mobiles, text):
            self.sent.append(tuple(mobiles))
            return Accepted(str(len(self.sent)), "20260101000000")

    cid = _campaign(engine)
    client = Client()
    report = send_campaign(engine, cid, client, Settings(), policy=QUICK)
    assert report.state == "finished" and len(client.sent) == 10
    assert any("balance could not be read" in w for w in report.warnings)


def test_rate_limiter_tokens():
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock)
    assert limiter.wait_time() == 0 and limiter.available() > 1000
    limiter = RateLimiter(10, burst=2, clock=clock)
    assert limiter.available() == 1  # no burst at the start
    limiter.take()
    assert limiter.wait_time() == pytest.approx(0.1)
    clock.sleep(0.35)
    assert limiter.available() == 2  # at most `burst` saved up


def test_waits_for_the_window_to_open_then_sends(engine, sim):
    cid = _campaign(engine)
    settings = replace(
        _settings(sim),
        compliance=ComplianceSettings(send_window=SendWindow(time(8), time(21))),
    )
    calls = iter(range(1_000_000))

    def clock() -> datetime:  # before 08:00 for the first few looks, then open
        minute = 59 if next(calls) < 4 else 0
        hour = 7 if minute == 59 else 8
        return datetime(2026, 3, 2, hour, minute, tzinfo=CHINA)

    events: list[ProgressEvent] = []
    report = _send(
        engine, cid, sim, settings, policy=replace(QUICK, clock=clock), on_progress=events.append
    )
    assert report.state == "finished" and report.exit_code is ExitCode.OK
    assert any(e.message.startswith("waiting: outside the send window") for e in events)
    assert set(_taken(sim).values()) == {1}


def test_gateway_outside_its_hours_waits_or_stops(engine, sim):
    cid = _campaign(engine)
    sim.inject_code("110")
    stopped = _send(engine, cid, sim, no_wait=True, policy=replace(QUICK, concurrency=1))
    assert stopped.state == "stopped" and stopped.exit_code is ExitCode.GATEWAY_STOP
    assert "outside the allowed send time" in (stopped.stop_reason or "")
    sim.inject_code("110")
    waited = _send(engine, cid, sim, policy=replace(QUICK, concurrency=1, window_retry=0.05))
    assert waited.state == "finished" and waited.exit_code is ExitCode.OK
    assert set(_taken(sim).values()) == {1} and set(_taken(sim)) == _all_mobiles()


def test_max_recipients_sends_whole_batches_within_the_budget(engine, sim):
    cid = _campaign(engine)  # 10 batches of 3
    first = _send(engine, cid, sim, max_recipients=10)
    assert first.state == "stopped" and "max_per_day" in (first.stop_reason or "")
    assert first.stop_cause is StopCause.DAILY_LIMIT
    assert first.count("accepted") == 3 and first.count("sending") == 0
    assert sum(_taken(sim).values()) == 9  # a fourth batch of 3 would not fit in 10
    rest = _send(engine, cid, sim)
    assert rest.state == "finished" and set(_taken(sim).values()) == {1}


def test_a_storm_refusing_every_request_in_flight_counts_once(engine, sim):
    cid = _campaign(engine, n=33, per_batch=1)  # 32 requests, the first 16 at once
    sim.inject_busy(16)
    policy = replace(QUICK, concurrency=16, busy_base=0.2, busy_cap=2.0)
    report = _send(engine, cid, sim, policy=policy)
    assert report.state == "finished" and report.exit_code is ExitCode.OK, report.stop_reason
    assert set(_taken(sim).values()) == {1} and set(_taken(sim)) == _all_mobiles(33)
    # one back-off of ~0.2 s, not 16 growing ones (0.2 + 0.4 + 0.8 + 1.6 + 2 + ... s)
    assert report.elapsed < 4


def test_a_long_count_storm_is_waited_out(engine, sim):
    cid = _campaign(engine, n=21, per_batch=1)
    sim.inject_busy(30)
    sim.inject_too_fast(30)
    report = _send(engine, cid, sim, policy=replace(QUICK, concurrency=16))
    assert report.state == "finished" and report.exit_code is ExitCode.OK, report.stop_reason
    assert set(_taken(sim).values()) == {1} and set(_taken(sim)) == _all_mobiles(21)


def test_gateway_flow_limit_is_met_by_adapting_the_rate(engine, sim):
    sim.configure(rate_limit=40)  # 103 beyond 40 requests in a second
    cid = _campaign(engine, n=121, per_batch=1)  # 120 requests, no rate limit of ours
    events: list[ProgressEvent] = []
    policy = replace(QUICK, concurrency=16, busy_base=0.05, busy_cap=0.5)
    report = _send(engine, cid, sim, policy=policy, on_progress=events.append)
    assert report.state == "finished" and report.exit_code is ExitCode.OK, report.stop_reason
    assert set(_taken(sim).values()) == {1} and set(_taken(sim)) == _all_mobiles(121)
    cuts = [e.message for e in events if "backing off, rate now" in e.message]
    assert cuts and "submitting too fast" in cuts[0]


def _failing_settle(monkeypatch, fail_when):
    """settle_and_claim raising 'database is locked' when fail_when(calls, results) says so."""
    from sqlalchemy.exc import OperationalError

    import campaign.send.loop as loop_module

    real = loop_module.settle_and_claim
    calls = []

    def settle(engine, cid, worker, results, limit, **kwargs):
        calls.append(len(results))
        if fail_when(len(calls), results):
            raise OperationalError("UPDATE batches", {}, Exception("database is locked"))
        return real(engine, cid, worker, results, limit, **kwargs)

    monkeypatch.setattr(loop_module, "settle_and_claim", settle)
    return calls


def test_a_store_failure_mid_run_keeps_the_answers_and_stops_resumably(engine, sim, monkeypatch):
    cid = _campaign(engine)
    failed = []

    def once_with_answers(_n, results):
        if results and not failed:
            failed.append(len(results))
            return True
        return False

    _failing_settle(monkeypatch, once_with_answers)
    # claims only for free slots: the failure comes while batches are left to claim
    report = _send(engine, cid, sim, policy=replace(QUICK, claim_group=0))
    assert failed, "the failure was injected"
    assert report.state == "stopped" and "database is locked" in (report.stop_reason or "")
    assert report.stop_cause is StopCause.STORE
    counts = batch_state_counts(engine, cid)
    assert counts["sending"] == 0 and counts["unknown"] == 0  # every answer was written
    assert counts["accepted"] == report.requests_sent
    monkeypatch.undo()
    again = _send(engine, cid, sim)
    assert again.state == "finished" and again.count("accepted") == 10
    assert all(count == 1 for count in _taken(sim).values())


def test_a_store_that_keeps_failing_is_a_store_error_not_a_traceback(engine, sim, monkeypatch):
    from campaign.errors import StoreError

    cid = _campaign(engine)
    _failing_settle(monkeypatch, lambda n, _results: n > 1)
    with pytest.raises(StoreError, match="database is locked"):
        _send(engine, cid, sim, policy=replace(QUICK, claim_group=0))  # 4 claimed at first
    monkeypatch.undo()
    assert batch_state_counts(engine, cid)["accepted"] == 0  # nothing claimed twice, nothing lost
    again = _send(engine, cid, sim)  # the worker is gone: its requests count as unknown
    assert again.count("unknown") == 4 and again.count("accepted") == 6
    assert all(count == 1 for count in _taken(sim).values())


def test_a_store_failure_takes_back_the_requests_claimed_ahead(engine, sim, monkeypatch):
    """Claimed ahead of the free slots and not sent when the store fails: back to pending
    as they were (no attempt counted), the answers of those sent written; resumable."""
    cid = _campaign(engine, n=41, per_batch=1)  # 40 requests
    sim.inject_delay(10_000, seconds=0.02)
    failed = []

    def once_with_answers(_n, results):
        if results and not failed:
            failed.append(len(results))
            return True
        return False

    _failing_settle(monkeypatch, once_with_answers)
    policy = replace(QUICK, concurrency=2, claim_group=16)
    report = _send(engine, cid, sim, policy=policy)
    assert failed and report.stop_cause is StopCause.STORE
    sent = len(sim.received())
    assert sent == report.requests_sent < 40
    with engine.connect() as conn:
        rows = conn.execute(sa.select(batches.c.state, batches.c.attempts)).all()
    states = Counter(state for state, _ in rows)
    assert states["accepted"] == sent and states["pending"] == 40 - sent
    assert states["sending"] == 0 and states["unknown"] == 0
    assert {attempts for state, attempts in rows if state == "pending"} == {0}
    monkeypatch.undo()
    sim.clear_faults()
    again = _send(engine, cid, sim, policy=policy)
    assert again.state == "finished" and again.count("accepted") == 40
    assert all(count == 1 for count in _taken(sim).values())


def test_a_failing_progress_display_does_not_break_the_run(engine, sim):
    """on_progress runs between a committed claim and its request: stderr gone (a broken
    pipe) must not leave batches `sending` nor end the run."""
    cid = _campaign(engine)

    def broken(_event: ProgressEvent) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    report = _send(engine, cid, sim, on_progress=broken)
    assert report.state == "finished" and report.count("accepted") == 10
    assert all(count == 1 for count in _taken(sim).values())


def test_ctrl_c_on_the_main_thread_records_the_answers_in_flight(engine, sim, monkeypatch):
    """`campaign run` sends on the main thread: Ctrl-C while waiting for answers stops the
    run after the requests in flight, their answers recorded (not left to become unknown),
    and then goes on as a KeyboardInterrupt."""
    import time as time_module

    import campaign.send.interrupt as interrupt_module

    real_wait = interrupt_module.wait_for_answers
    calls = []

    def interrupted_wait(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            # once a request has reached the gateway (else Ctrl-C takes them all back)
            deadline = time_module.monotonic() + 5
            while not sim.received() and time_module.monotonic() < deadline:
                time_module.sleep(0.001)
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(interrupt_module, "wait_for_answers", interrupted_wait)
    cid = _campaign(engine)
    with pytest.raises(KeyboardInterrupt):
        _send(engine, cid, sim)
    counts = batch_state_counts(engine, cid)
    assert counts["sending"] == 0 and counts["unknown"] == 0
    assert counts["accepted"] == len(sim.received()) > 0
    assert get_campaign(engine, cid).state == ("stopped" if counts["pending"] else "finished")


def test_the_loops_store_connection_killed_mid_run_is_replaced(pg_url, sim, monkeypatch):
    """The loop holds its store connections for its rounds (no checkout or ping per round;
    on PostgreSQL a second one in autocommit mode for rounds of one statement). PostgreSQL
    ends them mid-run: that round fails, the run stops resumably on fresh connections with
    every answer written, and the resume sends each batch once."""
    import psycopg

    import campaign.send.loop as loop_module
    from tests.conftest import PG_URL

    engine = open_store(pg_url)
    try:
        cid = _campaign(engine, n=41, per_batch=1)  # 40 requests
        sim.inject_delay(10_000, seconds=0.01)
        real = loop_module.settle_and_claim
        seen: list[object] = []

        def settle(bind, *args, **kwargs):
            seen.append(bind)
            auto = kwargs.get("autocommit")
            assert auto is not None and auto is not bind  # one-statement rounds: autocommit
            if len(seen) == 3:  # PostgreSQL ends the loop's connections
                pids = [
                    c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for c in (bind, auto)
                ]
                bind.rollback()
                with psycopg.connect(PG_URL, autocommit=True) as admin:
                    for pid in pids:
                        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            return real(bind, *args, **kwargs)

        monkeypatch.setattr(loop_module, "settle_and_claim", settle)
        policy = replace(QUICK, concurrency=2, claim_group=4)
        report = _send(engine, cid, sim, policy=policy)
        assert report.stop_cause is StopCause.STORE, report
        assert isinstance(seen[0], sa.Connection) and seen[1] is seen[0]
        assert seen[-1] is not seen[0]  # a fresh connection after the failure
        counts = batch_state_counts(engine, cid)
        assert counts["sending"] == 0 and counts["unknown"] == 0  # every answer written
        assert counts["accepted"] == report.requests_sent == len(sim.received()) < 40
        monkeypatch.undo()
        again = _send(engine, cid, sim, policy=policy)
        assert again.state == "finished" and again.count("accepted") == 40
        assert all(count == 1 for count in _taken(sim).values())
    finally:
        engine.dispose()


def test_a_send_on_postgresql_analyzes_a_new_campaign_before_its_first_round(
    pg_url, sim, monkeypatch
):
    """The rounds' statements are planned once per connection: the planner must know the
    campaign before the first (its answers find their batches by primary key only when it
    knows how many batches the campaign holds; tests/test_claim_plan.py)."""
    import campaign.send.loop as loop_module
    from campaign.store.statistics import forget_checks

    engine = open_store(pg_url)
    try:
        cid = _campaign(engine, n=601, per_batch=1)  # 600 requests: the planner must know
        order: list[object] = []
        refresh, rounds = loop_module.refresh_statistics, loop_module.settle_and_claim

        def refreshed(*args, **kwargs):
            order.append(refresh(*args, **kwargs))
            return order[-1]

        def claimed(*args, **kwargs):
            order.append("round")
            return rounds(*args, **kwargs)

        monkeypatch.setattr(loop_module, "refresh_statistics", refreshed)
        monkeypatch.setattr(loop_module, "settle_and_claim", claimed)
        forget_checks()
        report = _send(engine, cid, sim)
        assert report.state == "finished" and report.count("accepted") == 600
        assert "batches" in order[0] and set(order[1:]) == {"round"}, order[:3]
    finally:
        engine.dispose()
