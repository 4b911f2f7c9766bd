"""The send loop's parts, each alone on injected clocks (no test here sleeps), then
composed by `send_campaign` with a fake clock: pacing, the daily budget, the window gate,
the interruption path."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from campaign.config import ComplianceSettings, GatewaySettings, SendWindow, Settings
from campaign.contacts import read_contacts
from campaign.errors import ExitCode
from campaign.gateway.protocol import Accepted, NotSent
from campaign.outcomes import StopCause
from campaign.plan import PlanOptions, make_plan
from campaign.send.budget import SendBudget, china_day_start, daily_budget
from campaign.send.interrupt import Interruption
from campaign.send.pacing import RateLimiter, initial_burst
from campaign.send.policy import DAILY_LIMIT, INTERRUPTED, SendPolicy
from campaign.send.window import GateDecision, WindowGate, next_opening
from campaign.sender import send_campaign
from campaign.store.batches import batch_state_counts
from campaign.store.campaigns import create_campaign, get_campaign
from campaign.timeutil import CHINA


class FakeClock:
    """A monotonic clock that moves only when slept on, with China time `start` + elapsed."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = 0.0
        self.start = start or datetime(2026, 3, 2, 10, 0, tzinfo=CHINA)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def china(self) -> datetime:
        return self.start + timedelta(seconds=self.now)


# ------------------------------------------------------------------------------- pacing


def test_pacing_at_10_per_second_over_100_requests_is_exactly_on_schedule():
    clock = FakeClock()
    limiter = RateLimiter(10.0, initial_burst(10.0, 16), clock=clock)
    times = []
    for _ in range(100):
        clock.sleep(limiter.wait_time())
        assert limiter.available() == 1
        limiter.take()
        times.append(clock())
    assert times == pytest.approx([k / 10 for k in range(100)], abs=1e-9)
    assert limiter.wait_time() == pytest.approx(0.1)


def test_pacing_saves_up_at_most_the_burst_and_starts_without_one():
    clock = FakeClock()
    limiter = RateLimiter(100.0, initial_burst(100.0, 16), clock=clock)
    assert limiter.burst == 10 and limiter.available() == 1  # no burst at the start
    clock.sleep(60)
    assert limiter.available() == 10  # an idle minute saves up a tenth of a second's worth
    for _ in range(10):
        limiter.take()
    assert limiter.available() == 0 and limiter.wait_time() == pytest.approx(0.01)


def test_pacing_rate_change_keeps_the_tokens_earned_at_the_old_rate():
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock)
    limiter.take()
    clock.sleep(0.05)  # half a token at 10/s
    limiter.set_rate(1.0)
    assert limiter.wait_time() == pytest.approx(0.5)  # the other half at 1/s


def test_no_rate_limit_never_waits():
    limiter = RateLimiter(0.0, clock=FakeClock())
    for _ in range(1000):
        limiter.take()
    assert limiter.wait_time() == 0.0 and limiter.available() > 1000


# ------------------------------------------------------------------------------- budget


def test_budget_claims_whole_batches_and_gets_back_what_was_not_sent():
    budget = SendBudget(10)
    assert budget.limit(16) == 10 and not budget.exhausted
    assert budget.spend(3) and budget.spend(3) and budget.spend(3)
    assert budget.remaining == 1 and budget.limit(16) == 1
    assert not budget.spend(3)  # does not fit: released untouched
    assert budget.remaining == 1
    budget.refund(3)  # a batch came back pending
    assert budget.remaining == 4
    assert budget.spend(4) and budget.exhausted and budget.limit(16) == 0


def test_no_budget_limits_nothing():
    budget = SendBudget(None)
    assert budget.limit(16) == 16 and budget.spend(10**9) and not budget.exhausted
    assert budget.remaining is None


@pytest.mark.parametrize(
    ("now", "day_start"),
    [
        # 23:59:59 China is still March 1st; 00:00:00 China is March 2nd
        (datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=CHINA)),
        (datetime(2026, 3, 1, 16, 0, 0, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=CHINA)),
        (datetime(2026, 3, 2, 0, 0, 0, tzinfo=CHINA), datetime(2026, 3, 2, tzinfo=CHINA)),
        (datetime(2026, 3, 1, 23, 59, 59, tzinfo=CHINA), datetime(2026, 3, 1, tzinfo=CHINA)),
        # 08:00 UTC on March 2nd is 16:00 China, still March 2nd
        (datetime(2026, 3, 2, 8, 0, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=CHINA)),
    ],
)
def test_the_daily_budget_counts_from_the_china_day_start(now, day_start):
    asked = []

    def submitted_since(start: datetime) -> int:
        asked.append(start)
        return 70

    assert china_day_start(now) == day_start
    assert daily_budget(100, submitted_since, now) == 30
    assert asked == [day_start] and asked[0].utcoffset() == timedelta(hours=8)
    assert daily_budget(None, submitted_since, now) is None and len(asked) == 1


# ------------------------------------------------------------------------------- window


def _at(hour: int, minute: int = 0, second: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=CHINA)


def _gate(window: SendWindow | None, moment: datetime, no_wait: bool = False) -> GateDecision:
    return WindowGate(window, lambda: moment, no_wait=no_wait).check()


DAY = SendWindow(time(8), time(21))
NIGHT = SendWindow(time(21), time(8))  # overnight


@pytest.mark.parametrize(
    ("window", "moment", "opens"),
    [
        (DAY, _at(7, 59, 59), _at(8)),
        (DAY, _at(8), None),  # start: in
        (DAY, _at(20, 59, 59), None),
        (DAY, _at(21), _at(8, day=3)),  # end: out, opens tomorrow
        (DAY, _at(0), _at(8)),
        (NIGHT, _at(21), None),
        (NIGHT, _at(23, 59, 59), None),
        (NIGHT, _at(0), None),
        (NIGHT, _at(7, 59, 59), None),
        (NIGHT, _at(8), _at(21)),  # end: out, opens tonight
        (NIGHT, _at(20, 59, 59), _at(21)),
        (None, _at(3), None),
    ],
)
def test_the_window_gate_at_its_edges(window, moment, opens):
    decision = _gate(window, moment)
    assert decision.wait_until == opens and decision.stop_reason is None
    assert decision.is_open is (opens is None)
    if window is not None and opens is not None:
        assert next_opening(window, moment) == opens


def test_a_closed_window_with_no_wait_stops_with_when_it_opens():
    decision = _gate(DAY, _at(22, 30), no_wait=True)
    assert decision.wait_until is None and not decision.is_open
    assert decision.stop_reason == (
        "outside the send window 08:00-21:00 (China time); it opens at 2026-03-03 08:00 "
        "(in 9 h 30 min); resume then"
    )
    assert _gate(DAY, _at(9), no_wait=True).is_open


def test_the_window_gate_announces_a_closed_spell_once():
    moments = iter([_at(7, 58), _at(7, 59), _at(8), _at(21), _at(21, 1)])
    gate = WindowGate(DAY, lambda: next(moments), no_wait=False)
    assert [gate.check().announce for _ in range(5)] == [True, False, False, True, False]


# ------------------------------------------------------------------------- interruption


def test_a_stop_request_from_anywhere_is_noticed_and_not_reraised():
    event = threading.Event()
    interruption = Interruption(event)
    assert not interruption.requested
    event.set()  # the CLI's SIGTERM handler, another thread
    assert interruption.requested and not interruption.keyboard
    interruption.reraise()  # nothing to raise


def test_ctrl_c_while_waiting_is_the_same_stop_request_then_goes_on():
    def ctrl_c(_seconds: float) -> None:
        raise KeyboardInterrupt

    event = threading.Event()
    interruption = Interruption(event, sleep=ctrl_c)
    interruption.wait(None, 1.0)  # caught here
    assert interruption.requested and event.is_set() and interruption.keyboard
    with pytest.raises(KeyboardInterrupt):
        interruption.reraise()


def test_waiting_uses_the_injected_sleep_when_nothing_is_in_flight():
    clock = FakeClock()
    Interruption(sleep=clock.sleep).wait(None, 0.25)
    assert clock() == 0.25


# ------------------------------------------------------------------- the loop, composed


class Client:
    """Accepts every request, noting the fake clock's time when it left."""

    def __init__(self, clock: FakeClock, on_send=None) -> None:
        self.clock, self.on_send = clock, on_send
        self.sent: list[tuple[float, tuple[str, ...]]] = []

    def query_balance(self):
        return NotSent("no balance here")

    def send_batch(self, mobiles, text):
        self.sent.append((self.clock(), tuple(mobiles)))
        if self.on_send:
            self.on_send(len(self.sent))
        return Accepted(str(len(self.sent)), "20260101000000")


def _campaign(engine, tmp_path: Path, n: int) -> int:
    """n recipients, one request each (a personalized text)."""
    path = tmp_path / "list.csv"
    rows = "".join(f"客户{i},139{i:08d}\n" for i in range(n))
    path.write_text("name,mobile\n" + rows, encoding="utf-8")
    plan = make_plan(read_contacts([path]), "{name}，您好，本周会员日全场八折", PlanOptions())
    return create_campaign(engine, plan, name="spring", settings_snapshot={})


def _settings(rate: float = 0.0, window: SendWindow | None = None) -> Settings:
    return Settings(
        gateway=GatewaySettings(url="http://127.0.0.1:9/msg", account="a", password="p", rate=rate),
        compliance=ComplianceSettings(send_window=window),
    )


def _policy(clock: FakeClock, **changes) -> SendPolicy:
    knobs = {"clock": clock.china, "monotonic": clock, "sleep": clock.sleep, **changes}
    knobs.setdefault("shared_pace", False)  # the store's pace runs on the real clock
    return SendPolicy(concurrency=4, wait_step=0.05, heartbeat=0.5, **knobs)


def test_the_loop_waits_for_the_window_on_the_fake_clock_then_sends(engine, tmp_path):
    clock = FakeClock(start=_at(7, 59, 30))
    client = Client(clock)
    cid = _campaign(engine, tmp_path, 5)
    events = []
    report = send_campaign(
        engine, cid, client, _settings(window=DAY), policy=_policy(clock), on_progress=events.append
    )
    assert report.state == "finished" and report.count("accepted") == 5
    assert all(at == pytest.approx(30.0, abs=0.051) for at, _ in client.sent)
    waiting = [e.message for e in events if e.message.startswith("waiting: ")]
    assert waiting == [
        "waiting: outside the send window 08:00-21:00 (China time); it opens at "
        "2026-03-02 08:00 (in 0 h 0 min)"
    ]


def test_the_loop_stops_at_the_window_end_with_no_wait(engine, tmp_path):
    clock = FakeClock(start=_at(20, 59, 59))  # one request a second: 1 before 21:00
    client = Client(clock)
    cid = _campaign(engine, tmp_path, 5)
    report = send_campaign(
        engine, cid, client, _settings(rate=1.0, window=DAY), policy=_policy(clock), no_wait=True
    )
    assert report.state == "stopped" and report.exit_code is ExitCode.GATEWAY_STOP
    assert len(client.sent) == 1 and report.count("pending") == 4
    assert report.stop_reason is not None and report.stop_reason.endswith("; resume then")
    assert report.stop_cause is StopCause.WINDOW


def test_the_loop_spends_the_budget_in_whole_requests(engine, tmp_path):
    clock = FakeClock()
    client = Client(clock)
    cid = _campaign(engine, tmp_path, 6)
    report = send_campaign(
        engine, cid, client, _settings(), policy=_policy(clock), max_recipients=4
    )
    assert len(client.sent) == 4 and report.count("pending") == 2
    assert report.state == "stopped" and report.stop_reason == DAILY_LIMIT
    assert report.stop_cause is StopCause.DAILY_LIMIT


def test_a_stop_request_mid_run_ends_it_after_the_requests_in_flight(engine, tmp_path):
    clock = FakeClock()
    stop = threading.Event()
    client = Client(clock, on_send=lambda n: stop.set() if n == 3 else None)
    cid = _campaign(engine, tmp_path, 20)
    report = send_campaign(
        engine, cid, client, _settings(rate=10.0), policy=_policy(clock), stop=stop
    )
    assert len(client.sent) == 3  # paced one by one: nothing else was in flight
    assert report.interrupted and report.stop_reason == INTERRUPTED
    assert report.stop_cause is StopCause.INTERRUPTED
    assert report.exit_code is ExitCode.INTERRUPTED and report.state == "stopped"
    counts = batch_state_counts(engine, cid)
    assert counts["accepted"] == 3 and counts["sending"] == 0 and counts["pending"] == 17


def test_ctrl_c_in_the_loop_is_recorded_then_raised(engine, tmp_path):
    clock = FakeClock()
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise KeyboardInterrupt
        clock.sleep(seconds)

    client = Client(clock)
    cid = _campaign(engine, tmp_path, 20)
    with pytest.raises(KeyboardInterrupt):
        send_campaign(engine, cid, client, _settings(rate=10.0), policy=_policy(clock, sleep=sleep))
    counts = batch_state_counts(engine, cid)
    assert counts["sending"] == 0 and counts["unknown"] == 0
    assert counts["accepted"] == len(client.sent) > 0
    record = get_campaign(engine, cid)
    assert record.state == "stopped" and record.stop_reason == INTERRUPTED
