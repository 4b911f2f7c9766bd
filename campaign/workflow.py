"""The library facade every entry point calls: one door to plan, create, send, status,
export, report import, the gateway balance and the suppression list.

A command, the nightly run (`jobs.py`), the demo (and later a console page or a worker)
parses its input, makes one call here and renders the typed result: each function takes
the `Settings` and an SQLAlchemy `Engine` (or, where no engine is given, opens the store at
`settings.store_url` for the call), returns a frozen dataclass whose `to_json()` gives the
JSON object of SPEC, and never prints. Lines for people go to an injected `notify`.

    plan_from_files ─► check_repeat ─► create_campaign ─► send / resume ─► campaign_status
                                                                      └─► export

Sending runs in a worker thread when the caller hands in a `stop` event: the caller's
thread waits, and Ctrl-C there (KeyboardInterrupt) or `stop.set()` from anywhere (a
SIGTERM handler, a console button) asks the send loop to stop after the requests in flight.
"""

from __future__ import annotations

import getpass
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign.config import GatewaySettings, Settings
from campaign.errors import ExitCode, InputError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from campaign.contacts import ContactList
    from campaign.plan import Plan
    from campaign.sender import ProgressEvent, SendPolicy, SendReport
    from campaign.store.campaigns import CampaignRecord
    from campaign.store.repeats import RepeatGuard

Notify = Callable[[str], None]
OnProgress = Callable[["ProgressEvent"], None]
PLAN_KEYS = ("outcomes", "recipients", "requests", "segments")
STOPPING = "stopping after the requests in flight ..."


def _quiet(_line: str) -> None:
    return None


@contextmanager
def opened(
    settings: Settings, engine: Engine | None = None, *, create: bool = True
) -> Iterator[Engine]:
    """`engine` as given, or the store at `settings.store_url` opened for this block."""
    if engine is not None:
        yield engine
        return
    from campaign.store import open_store

    own = open_store(settings.store_url, create=create)
    try:
        yield own
    finally:
        own.dispose()


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class PlanResult:
    """A plan built from files, with what a sender sees before sending."""

    plan: Plan
    summary: dict[str, Any]
    sample: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def recipients(self) -> int:
        return int(self.summary["recipients"])

    def figures(self) -> dict[str, Any]:
        """The plan's summary with `sample` and `warnings` (the JSON of `campaign plan`)."""
        return {**self.summary, "sample": self.sample, "warnings": self.warnings}

    def to_json(self) -> dict[str, Any]:
        return self.figures()


def plan_from_files(
    settings: Settings,
    paths: Sequence[Path | str],
    template_text: str,
    *,
    sheet: str | None = None,
    header_row: int | None = None,
    mobile_column: str | None = None,
    engine_or_url: Engine | str | None = None,
    allow_nothing_valid: bool = False,
    with_sample: bool = True,
) -> PlanResult:
    """Read the contact files, render and batch (sends and stores nothing).

    The suppression list and the per-recipient cap are read from `engine_or_url` (default
    `settings.store_url`, read without creating a store). The template's limits are checked
    before a long list is read."""
    from campaign.contacts import read_contacts
    from campaign.messages import check_template_limits

    check_template_limits(template_text, settings.limits)  # before a long list is read
    contacts = read_contacts(
        [Path(p) for p in paths],
        sheet=sheet,
        header_row=header_row,
        mobile_column=mobile_column,
        limits=settings.limits,
    )
    return plan_contacts(
        settings,
        contacts,
        template_text,
        engine_or_url=engine_or_url,
        allow_nothing_valid=allow_nothing_valid,
        with_sample=with_sample,
    )


def plan_contacts(
    settings: Settings,
    contacts: ContactList,
    template_text: str,
    *,
    engine_or_url: Engine | str | None = None,
    allow_nothing_valid: bool = False,
    with_sample: bool = True,
) -> PlanResult:
    """`plan_from_files` on contacts read already (the console's plan with another
    template: its files are not read again). The suppression list and the caps are read
    now, as there."""
    from campaign.messages import check_template_limits
    from campaign.plan import make_plan, plan_options

    options = plan_options(settings)
    check_template_limits(template_text, settings.limits)
    suppressed, capped = _suppressed_and_capped(settings, engine_or_url)
    plan = make_plan(
        contacts,
        template_text,
        options,
        suppressed,
        capped=capped,
        allow_nothing_valid=allow_nothing_valid,
    )
    if not with_sample:
        return PlanResult(plan, plan.summary())
    from campaign.plan_sample import plan_warnings, sample_message

    sample = sample_message(plan)
    return PlanResult(plan, plan.summary(), sample, plan_warnings(plan, sample))


def _suppressed_and_capped(
    settings: Settings, engine_or_url: Engine | str | None
) -> tuple[set[str], Mapping[str, int]]:
    compliance = settings.compliance
    limit, hours = compliance.max_per_recipient, compliance.cap_window_hours
    if engine_or_url is not None and not isinstance(engine_or_url, str):  # an Engine
        from campaign.store.caps import capped_mobiles
        from campaign.store.suppression import suppressed_set

        return suppressed_set(engine_or_url), capped_mobiles(engine_or_url, limit, hours)
    url = engine_or_url or settings.store_url
    if _no_store_file(url):  # nothing to read: nobody suppressed or capped
        return set(), {}
    from campaign.store.caps import read_capped_mobiles
    from campaign.store.suppression import read_suppressed

    return read_suppressed(url), read_capped_mobiles(url, limit, hours)


def _no_store_file(url: str) -> bool:
    """True for a plain `sqlite:///PATH` whose file does not exist, decided without loading
    SQLAlchemy (a first `campaign plan` in a folder saves its import). Any other URL (a
    query, an escape, another database) goes the long way: `store.readonly.store_exists`."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url or "%" in url:
        return False
    path = url[len(prefix) :]
    try:
        return path not in ("", ":memory:") and not Path(path).exists()
    except (OSError, ValueError):  # a name no file can have: the long way says why
        return False


def refuse_if_nothing_valid(planned: PlanResult, preview: Path) -> None:
    """InputError when no row is valid, naming the preview that shows each row's reason."""
    from campaign.plan import refuse_if_nothing_valid as refuse

    try:
        refuse(planned.plan)
    except InputError as exc:
        raise InputError(f"{exc}; every row and its reason: {preview}") from None


def write_preview(planned: PlanResult, out: Path) -> None:
    """The per-row preview of `campaign plan --out` (.xlsx or .csv)."""
    from campaign.plan_preview import write_preview as write

    write(planned.plan, out)


# --------------------------------------------------------------------------- create


@dataclass(frozen=True)
class CreateResult:
    campaign_id: int
    name: str | None
    figures: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, **{k: self.figures[k] for k in PLAN_KEYS}}


def usable_name(name: str | None) -> str | None:
    """A `--name` that can name a campaign (all digits: InputError, it reads as an id)."""
    from campaign.store.campaigns import usable_name as usable

    return usable(name) if name is not None else None


def check_repeat(
    settings: Settings, planned: PlanResult, *, name: str | None, again: bool
) -> RepeatGuard:
    """The repeat guard of a send, checked now without writing (RepeatError, exit 3): a
    list the store already holds (unless `again`), a name already taken. Nothing to send:
    no list guard."""
    from campaign.store.repeats import RepeatGuard, read_repeat

    guard = RepeatGuard(name=name, allow_repeat=again or not planned.recipients)
    read_repeat(settings.store_url, guard, planned.plan.fingerprint)
    return guard


def create_campaign(
    settings: Settings,
    engine: Engine,
    planned: PlanResult,
    *,
    name: str | None = None,
    paths: Sequence[Path | str] = (),
    guard: RepeatGuard | None = None,
    other_names: Sequence[str] = (),
    content_key: str | None = None,
    job: str | None = None,
) -> CreateResult:
    """Store the planned campaign (state "planned"); its name is `name`, else the default
    name of `paths`. With a `guard` a repeat is refused in the creating transaction."""
    from campaign.store.campaigns import create_campaign as create
    from campaign.store.campaigns import default_campaign_name, settings_snapshot

    chosen = name or default_campaign_name(list(paths))
    campaign_id = create(
        engine,
        planned.plan,
        name=chosen,
        other_names=other_names,
        settings_snapshot=settings_snapshot(settings),
        content_key=content_key,
        job=job,
        guard=guard,
    )
    return CreateResult(campaign_id, name, planned.figures())


# --------------------------------------------------------------------------- send


@dataclass(frozen=True)
class PreparedSend:
    """A plan checked for sending: an account to send with, and no repeat (exit 3)."""

    planned: PlanResult
    guard: RepeatGuard
    name: str | None
    paths: tuple[Path, ...]


def prepare_send(
    settings: Settings,
    paths: Sequence[Path],
    template_text: str,
    *,
    name: str | None = None,
    again: bool = False,
    sheet: str | None = None,
    header_row: int | None = None,
    mobile_column: str | None = None,
) -> PreparedSend:
    """What `send` does before asking: the account is there, the plan is made, the repeat
    guard passes. Nothing is stored (a missing store is not created)."""
    from campaign.gateway.runtime import require_account

    require_account(settings.gateway)
    planned = plan_from_files(
        settings,
        paths,
        template_text,
        sheet=sheet,
        header_row=header_row,
        mobile_column=mobile_column,
    )
    guard = check_repeat(settings, planned, name=name, again=again)  # before showing or asking
    return PreparedSend(planned, guard, name, tuple(paths))


def send_new(settings: Settings, prepared: PreparedSend, **options: Any) -> SendResult:
    """Store the prepared campaign and send it (`send`'s options); `notify` hears the new
    campaign's id and figures. The store is created only now."""
    say = options.get("notify") or _quiet
    figures = prepared.planned.figures()
    with opened(settings) as engine:
        created = create_campaign(
            settings,
            engine,
            prepared.planned,
            name=prepared.name,
            paths=prepared.paths,
            guard=prepared.guard,
        )
        say(
            f"campaign {created.campaign_id}: {figures['recipients']} recipients in "
            f"{figures['requests']} requests, {figures['segments']} billed segments"
        )
        extra = {k: figures[k] for k in ("sample", "warnings")}
        return send(settings, engine, created.campaign_id, extra=extra, **options)


def _stopped_by_others(report: SendReport) -> str | None:
    """The message of a run that another process ended (paused, cancelled, halted)."""
    from campaign.outcomes import StopCause

    cid, cause = report.campaign_id, report.stop_cause
    reason = report.stop_reason or f"campaign {cid} is {report.state}"
    if cause is StopCause.PAUSED:
        return f"campaign {cid} was {reason}; `campaign resume {cid}` sends the rest"
    if cause is StopCause.CANCELLED:
        return f"campaign {cid} was {reason}; nothing more is sent"
    if cause is StopCause.HALTED:
        return (
            f"campaign {cid} is {report.state} ({reason}): another process stopped it; "
            "this run sent nothing more"
        )
    return None


@dataclass(frozen=True)
class SendResult:
    """What a send or resume run did: the sender's report and the outcome counts after it."""

    report: SendReport
    outcomes: dict[str, int]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def campaign_id(self) -> int:
        return self.report.campaign_id

    @property
    def exit_code(self) -> ExitCode:
        return self.report.exit_code

    @property
    def warnings(self) -> list[str]:
        return list(self.report.warnings)

    def to_json(self) -> dict[str, Any]:
        summary = {"campaign_id": self.campaign_id, "outcomes": self.outcomes}
        return {**summary, **self.report.summary(), **self.extra}

    def failure(self) -> str | None:
        """The message of a run that did not finish cleanly (exit 4, 130 or 1), else None."""
        report, cid = self.report, self.campaign_id
        code = report.exit_code
        stopped_by = _stopped_by_others(report)
        if stopped_by is not None:
            return stopped_by
        if code is ExitCode.GATEWAY_STOP:
            return (
                f"{report.stop_reason}; campaign {cid} stopped: "
                f"`campaign resume {cid}` sends the rest"
            )
        if code is ExitCode.INTERRUPTED:
            return f"interrupted; campaign {cid} stopped: `campaign resume {cid}` sends the rest"
        if code is ExitCode.PARTIAL:
            return (
                f"campaign {cid} finished, but {report.count('unknown')} request(s) have an "
                f"unknown result and {report.count('rejected')} were rejected (see `campaign "
                f"export {cid}`; `campaign resume {cid} --resend-unknown` sends the unknown "
                "ones again)"
            )
        return None


def send(
    settings: Settings,
    engine: Engine,
    campaign_id: int,
    *,
    stop: threading.Event | None = None,
    no_wait: bool = False,
    force: bool = False,
    resend_unknown: bool = False,
    on_progress: OnProgress | None = None,
    progress: Callable[[], AbstractContextManager[OnProgress]] | None = None,
    notify: Notify | None = None,
    gateway: GatewaySettings | None = None,
    push_reports: bool = True,
    policy: SendPolicy | None = None,
    max_recipients: int | None = None,
    extra: Mapping[str, Any] | None = None,
    worker: bool = False,
) -> SendResult:
    """Send what is pending of a stored campaign through the gateway of `settings` (the
    simulator started when it names one; with `push_reports` its reports go to the
    receiver) or through `gateway` when given (already running).

    With a `stop` event the loop runs in a worker thread while this one waits: Ctrl-C here
    or `stop.set()` anywhere stops it after the requests in flight (exit 130, resumable)."""
    from campaign.gateway.client import GatewayClient
    from campaign.gateway.runtime import open_gateway
    from campaign.send.interrupt import in_thread
    from campaign.sender import send_campaign
    from campaign.store.results import outcome_counts

    say = notify or _quiet
    receiver = settings.receiver if push_reports else None
    reached = _given(gateway) if gateway is not None else None
    with (
        reached or open_gateway(settings.gateway, receiver=receiver, notify=notify) as resolved,
        GatewayClient(resolved) as client,
        progress() if progress is not None else nullcontext(on_progress) as on_progress,
    ):
        run_settings = replace(settings, gateway=resolved)

        def work() -> SendReport:
            return send_campaign(
                engine,
                campaign_id,
                client,
                run_settings,
                on_progress=on_progress,
                stop=stop,
                no_wait=no_wait,
                resend_unknown=resend_unknown,
                force=force,
                policy=policy,
                max_recipients=max_recipients,
                worker=worker,
            )

        report = (
            work()
            if stop is None
            else in_thread(work, stop, lambda: say(STOPPING), name="campaign-send")[0]
        )
    return SendResult(report, outcome_counts(engine, report.campaign_id), dict(extra or {}))


@contextmanager
def _given(gateway: GatewaySettings) -> Iterator[GatewaySettings]:
    yield gateway


def resume(
    settings: Settings,
    ref: str,
    *,
    engine: Engine | None = None,
    given_gateway: str | None = None,
    **options: Any,
) -> SendResult:
    """`send` for a stored campaign named by id or name, through the gateway it was sent
    through unless `given_gateway` (--gateway, CAMPAIGN_GATEWAY) or the config names one.
    Without `engine`, the store must exist already. A cancelled campaign is never sent
    again (InputError); a paused one, or one handed to the workers, is taken back from
    them: this process sends it."""
    from campaign.gateway.runtime import require_account
    from campaign.outcomes import CampaignState
    from campaign.store.campaigns import get_campaign
    from campaign.store.queue import resume_paused

    with opened(settings, engine, create=False) as store:
        record = get_campaign(store, ref)
        if record.queued or record.state in (CampaignState.PAUSED, CampaignState.CANCELLED):
            record = resume_paused(store, str(record.id), queue=False)
        settings = resume_gateway(settings, given_gateway, record)
        require_account(settings.gateway)
        return send(settings, store, record.id, **options)


def resume_gateway(settings: Settings, given: str | None, record: Any) -> Settings:
    """`resume`: the gateway the campaign was sent through, unless `given` (--gateway or
    CAMPAIGN_GATEWAY) or the config file names one."""
    from campaign.config import read_toml
    from campaign.store.campaigns import sent_gateway_url

    stored = sent_gateway_url(record)
    if given or stored is None or _config_names_gateway(settings.config_path, read_toml):
        return settings
    return replace(settings, gateway=replace(settings.gateway, url=stored))


def _config_names_gateway(path: Path | None, read_toml: Callable[[Path], Any]) -> bool:
    if path is None:
        return False
    gateway = read_toml(path).get("gateway")
    return isinstance(gateway, dict) and bool(gateway.get("url"))


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class StatusResult:
    """Progress and delivery figures of one campaign (`campaign status ID`)."""

    record: CampaignRecord
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True)
class StatusList:
    """Every campaign with its request counts by state (`campaign status`)."""

    records: list[CampaignRecord]
    rows: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"campaigns": self.rows}


def campaign_status(engine: Engine, ref: str) -> StatusResult:
    from campaign.store import workers
    from campaign.store.batches import batch_figures
    from campaign.store.campaigns import get_campaign
    from campaign.store.results import (
        outcome_counts,
        report_status_counts,
        unknown_msgid_reports,
        unmatched_reports,
    )
    from campaign.timeutil import china_iso

    record = get_campaign(engine, ref)
    figures = batch_figures(engine, record.id)
    in_campaign, unknown_msgid = unmatched_reports(engine, record.id), unknown_msgid_reports(engine)
    data = {
        **record.brief(),
        "workers": [
            {"id": w.id, "host": w.host, "pid": w.pid, "heartbeat_at": china_iso(w.heartbeat_at)}
            for w in workers.live_workers(engine, record.id)
        ],
        "outcomes": outcome_counts(engine, record.id),
        "reports": report_status_counts(engine, record.id),
        # reports nobody could match: this campaign's msgids with a mobile not in that
        # request, plus reports whose msgid no campaign issued (kept, never dropped)
        "unmatched_reports": in_campaign + unknown_msgid,
        "unmatched_in_campaign": in_campaign,
        "unmatched_unknown_msgid": unknown_msgid,
        "batches": {state: f["batches"] for state, f in figures.items()},
        "recipients": sum(f["recipients"] for f in figures.values()),
        "requests": sum(f["batches"] for f in figures.values()),
        "segments": sum(f["segments"] for f in figures.values()),
    }
    return StatusResult(record, data)


def campaign_list(engine: Engine) -> StatusList:
    from campaign.store.batches import batch_state_counts
    from campaign.store.campaigns import list_campaigns

    records = list_campaigns(engine)
    rows = [{**r.brief(), "batches": batch_state_counts(engine, r.id)} for r in records]
    return StatusList(records, rows)


# --------------------------------------------------------------------------- export, reports


@dataclass(frozen=True)
class ExportResult:
    campaign_id: int
    name: str
    summary: Any  # export.ExportSummary

    def to_json(self) -> dict[str, Any]:
        return dict(self.summary.to_json())


def export(
    settings: Settings, ref: str, out: Path, *, lang: str = "en", engine: Engine | None = None
) -> ExportResult:
    """Write the result spreadsheet of the campaign `ref` (id or name) to `out`; a wrong
    file extension is refused before the store is opened."""
    from campaign.export import export_campaign, output_format
    from campaign.store.campaigns import get_campaign

    output_format(out)
    with opened(settings, engine, create=False) as store:
        record = get_campaign(store, ref)
        summary = export_campaign(store, record.id, out, lang=lang)
    return ExportResult(record.id, record.name, summary)


@dataclass(frozen=True)
class ImportResult:
    files: list[Any]  # reports.ImportSummary, one per file

    def to_json(self) -> dict[str, Any]:
        return {"files": [s.to_json() for s in self.files]}


def import_reports(
    settings: Settings, paths: Sequence[Path], *, engine: Engine | None = None
) -> ImportResult:
    """Import delivery-report files (idempotent)."""
    from campaign.reports import import_report_files

    with opened(settings, engine) as store:
        summaries = import_report_files(
            store, paths, suppress_blacklisted=settings.receiver.suppress_blacklisted
        )
    return ImportResult(list(summaries))


# --------------------------------------------------------------------------- balance

#: PROTOCOL: QueryBalance at most once every 10 s (else 103); asked once more after that.
BALANCE_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class BalanceResult:
    products: dict[str, int]  # product id -> remaining billed messages

    def to_json(self) -> dict[str, Any]:
        return {"products": self.products}


def balance(settings: Settings, *, notify: Notify | None = None) -> BalanceResult:
    """The gateway balance per product; GatewayStop (exit 4) when it cannot be had. After
    a 103 (querying too fast, e.g. just after a send's own balance check) it is asked once
    more when the protocol's interval has passed (`notify` hears the wait)."""
    import time

    from campaign.errors import GatewayStop
    from campaign.gateway.client import GatewayClient
    from campaign.gateway.protocol import Action, Balances, NotSent, Refused
    from campaign.gateway.runtime import open_gateway

    gateway = settings.gateway
    with open_gateway(gateway) as resolved, GatewayClient(resolved) as client:
        result = client.query_balance()
        if isinstance(result, Refused) and result.action is Action.RETRY_LATER:
            (notify or _quiet)(f"{result.reason}; asking again in {BALANCE_RETRY_SECONDS:.0f} s")
            time.sleep(BALANCE_RETRY_SECONDS)
            result = client.query_balance()
    if isinstance(result, Refused):
        raise GatewayStop(f"the gateway refused the balance query: {result.reason}")
    if isinstance(result, NotSent):
        raise GatewayStop(f"cannot reach the gateway at {gateway.url}: {result.reason}")
    if not isinstance(result, Balances):
        raise GatewayStop(f"no valid balance from the gateway at {gateway.url}: {result.reason}")
    return BalanceResult(dict(result.products))


# --------------------------------------------------------------------------- opt-outs


@dataclass(frozen=True)
class OptoutChange:
    """`optout add` (added, already) or `optout remove` (removed, not_listed)."""

    changed: int
    unchanged: int
    keys: tuple[str, str]

    def to_json(self) -> dict[str, Any]:
        return {self.keys[0]: self.changed, self.keys[1]: self.unchanged}


@dataclass(frozen=True)
class OptoutImport:
    figures: dict[str, Any]
    invalid: list[tuple[str, int, str]]  # (source, row, reason) of the rows skipped

    def to_json(self) -> dict[str, Any]:
        return dict(self.figures)


@dataclass(frozen=True)
class OptoutExport:
    path: Path
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "rows": self.rows}


def os_user(fallback: str) -> str:
    """Who runs this, for added_by: the OS user name, or `fallback` if unknown."""
    try:
        return getpass.getuser() or fallback
    except Exception:  # no user name in the environment or the password database
        return fallback


def normalized_mobiles(mobiles: list[str]) -> list[str]:
    """The numbers normalized, or InputError naming every one that is not a mobile."""
    import pandas as pd

    from campaign.phones import normalize_mobiles

    result = normalize_mobiles(pd.Series(mobiles, dtype="str"))
    bad = [f"{raw!r} ({why})" for raw, why in zip(mobiles, result["reason"], strict=True) if why]
    if bad:
        raise InputError(f"not a mobile number: {', '.join(bad)}; nothing changed")
    return list(dict.fromkeys(result["mobile"].tolist()))


def add_optouts(settings: Settings, mobiles: list[str], note: str | None = None) -> OptoutChange:
    from campaign.store import suppression

    numbers = normalized_mobiles(mobiles)
    with opened(settings) as engine:
        added = suppression.add(engine, numbers, "manual", note or None, added_by=os_user("manual"))
    return OptoutChange(added, len(numbers) - added, ("added", "already"))


def remove_optouts(settings: Settings, mobiles: list[str]) -> OptoutChange:
    """Take numbers off the list; a missing store is not created (nothing was listed)."""
    from campaign.store.readonly import store_exists
    from campaign.store.suppression import remove

    numbers = normalized_mobiles(mobiles)
    removed = 0
    if store_exists(settings.store_url):
        with opened(settings) as engine:
            removed = remove(engine, numbers)
    return OptoutChange(removed, len(numbers) - removed, ("removed", "not_listed"))


def suppressed(engine: Engine) -> set[str]:
    """The numbers on the suppression list of an open store."""
    from campaign.store.suppression import suppressed_set

    return suppressed_set(engine)


def optout_numbers(settings: Settings) -> list[str]:
    from campaign.store.suppression import read_suppressed

    return sorted(read_suppressed(settings.store_url))


def optout_entries(settings: Settings) -> list[dict[str, object]]:
    from campaign.store.suppression import read_entries

    return read_entries(settings.store_url)


def export_optouts(settings: Settings, out: Path) -> OptoutExport:
    from campaign.optout_export import write_optouts

    return OptoutExport(out, write_optouts(optout_entries(settings), out))


def import_optouts(
    settings: Settings,
    path: Path,
    *,
    sheet: str | None = None,
    header_row: int | None = None,
    mobile_column: str | None = None,
    engine: Engine | None = None,
    added_by: str | None = None,
) -> OptoutImport:
    """Add every valid number of a file's mobile column (each with its file and row);
    invalid rows are skipped and returned. `added_by`: who (default the OS user)."""
    from campaign.contacts import read_contacts
    from campaign.phones import normalize_mobiles
    from campaign.store import suppression

    contacts = read_contacts(
        [path],
        sheet=sheet,
        header_row=header_row,
        mobile_column=mobile_column,
        what="opt-out file",
        limits=settings.limits,
    )
    frame = contacts.frame
    normalized = normalize_mobiles(frame["_mobile_raw"])
    valid = normalized["valid"].to_numpy(dtype=bool)
    numbers = normalized["mobile"][valid]
    first = ~numbers.duplicated()
    unique = numbers[first].tolist()
    where = _rows_of(frame[valid][first.to_numpy()])
    with opened(settings, engine) as store:
        added = suppression.add(
            store,
            unique,
            "import",
            added_by=added_by or os_user("import"),
            details=dict(zip(unique, where, strict=True)),
        )
    figures = {
        "source": ", ".join(f.source for f in contacts.files),
        "rows": len(frame),
        "added": added,
        "already": len(unique) - added,
        "repeated": int(len(numbers) - len(unique)),
        "invalid": int((~valid).sum()),
    }
    skipped = frame[~valid]
    invalid = list(
        zip(
            skipped["_source"].tolist(),
            skipped["_source_row"].tolist(),
            normalized["reason"][~valid].tolist(),
            strict=True,
        )
    )
    return OptoutImport(figures, invalid)


def _rows_of(rows: Any) -> list[str]:
    """Where each row came from, as a detail: "optouts.xlsx:Sheet1 row 5"."""
    return [
        f"{source} row {row}"
        for source, row in zip(rows["_source"].tolist(), rows["_source_row"].tolist(), strict=True)
    ]


# --------------------------------------------------------------------------- argument checks


def check_export_path(out: Path) -> None:
    """InputError (exit 3) for a file `export` cannot write by its extension (.xlsx and
    .csv only): a command checks it before it loads the config, as `export` does."""
    from campaign.export import output_format

    output_format(out)


__all__ = [
    "BalanceResult",
    "CreateResult",
    "ExportResult",
    "ImportResult",
    "OptoutChange",
    "OptoutExport",
    "OptoutImport",
    "PlanResult",
    "PreparedSend",
    "SendResult",
    "StatusList",
    "StatusResult",
    "add_optouts",
    "balance",
    "campaign_list",
    "campaign_status",
    "check_export_path",
    "check_repeat",
    "create_campaign",
    "export",
    "export_optouts",
    "import_optouts",
    "import_reports",
    "normalized_mobiles",
    "opened",
    "optout_entries",
    "optout_numbers",
    "plan_contacts",
    "plan_from_files",
    "prepare_send",
    "remove_optouts",
    "resume",
    "send",
    "send_new",
    "suppressed",
]
