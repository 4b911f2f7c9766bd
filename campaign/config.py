"""Settings: TOML file + environment + command line, in that order of precedence (lowest first).

`load_settings()` is the one way to build a `Settings`; everything below it is plain,
frozen data with named defaults. Secrets (gateway password, push password) never
appear in `repr()`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import time
from math import inf
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from campaign.config_names import (  # also read from here: campaign.config.SIMULATOR
    ENV_ACCOUNT,
    ENV_CONFIG,
    ENV_DB,
    ENV_GATEWAY,
    ENV_PASSWORD,
    SIMULATOR,
)
from campaign.errors import CampaignError, ConfigError, UsageError
from campaign.redact import redact_url, replace_secrets, url_secrets

DEFAULT_GATEWAY_URL = "http://send.18sms.com/msg"
DEFAULT_MAX_BATCH = 50_000
DEFAULT_MIN_BATCH = 1
DEFAULT_RATE = 20.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_DB_FILE = "campaign.db"
DEFAULT_RECEIVER_HOST = "127.0.0.1"
DEFAULT_RECEIVER_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # a batched push of 50,000 reports is ~2.3 MB
DEFAULT_MAX_HEADER_BYTES = 64 * 1024  # request line (query string included) and headers
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds from a request's first byte to its last header
DEFAULT_IDLE_TIMEOUT = 5.0  # seconds a kept-alive connection may wait for its next request
DEFAULT_MAX_CONNECTIONS = 1000  # over it, the oldest connection not in a push is closed
DEFAULT_CAP_WINDOW_HOURS = 24.0
# [limits]: what an input file or template may hold before it is refused (exit 3)
DEFAULT_MAX_ROWS = 10_000_000  # rows of one CSV file or sheet
DEFAULT_MAX_COLUMNS = 1_000  # columns of one CSV file or sheet
DEFAULT_MAX_CELLS = 50_000_000  # rows x columns of one sheet (a workbook reader fills the grid)
DEFAULT_MAX_CELL_CHARS = 32_767  # characters of one cell (Excel's own limit)
DEFAULT_MAX_LINE_BYTES = 1024 * 1024  # bytes of one CSV line
DEFAULT_MAX_PART_BYTES = 1024**3  # decompressed bytes of one part of an xlsx (zip) workbook
DEFAULT_MAX_TEMPLATE_CHARS = 10_000  # characters of a template
DEFAULT_MAX_PLACEHOLDERS = 100  # placeholders of a template
# [web]: the console (`campaign web`)
DEFAULT_WEB_HOST = "127.0.0.1"
DEFAULT_WEB_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 200  # one upload request (all its files) at most
MIN_SECRET_KEY_CHARS = 32  # a session signing key shorter than this is guessable
DEFAULT_OPTOUT_KEYWORDS: tuple[str, ...] = ("T", "TD", "R", "退订", "取消")
BLACKLIST_STATUSES: tuple[str, ...] = ("MBBLACK", "DB:0141", "MA:0001", "MX:0013")

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class SendWindow:
    """A daily window of China time; `end` may be before `start` (overnight)."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class GatewaySettings:
    url: str = DEFAULT_GATEWAY_URL
    account: str = ""
    password: str = field(default="", repr=False)
    product: str = ""
    extno: str = ""
    needstatus: bool = True
    max_batch: int = DEFAULT_MAX_BATCH
    min_batch: int = DEFAULT_MIN_BATCH
    rate: float = DEFAULT_RATE
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class ComplianceSettings:
    signature: str = ""
    optout_text: str = ""
    send_window: SendWindow | None = None
    sensitive_words: Path | None = None
    max_per_recipient: int | None = None  # messages per number in the window; None: no cap
    cap_window_hours: float = DEFAULT_CAP_WINDOW_HOURS


@dataclass(frozen=True)
class ReceiverSettings:
    host: str = DEFAULT_RECEIVER_HOST
    port: int = DEFAULT_RECEIVER_PORT
    receiver: str = ""
    pswd: str = field(default="", repr=False)
    optout_keywords: tuple[str, ...] = DEFAULT_OPTOUT_KEYWORDS
    suppress_blacklisted: bool = False  # blacklist report statuses put the number on the list
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS


@dataclass(frozen=True)
class LimitSettings:
    """Bounds on hostile input: each is checked before the reader allocates for it."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_columns: int = DEFAULT_MAX_COLUMNS
    max_cells: int = DEFAULT_MAX_CELLS
    max_cell_chars: int = DEFAULT_MAX_CELL_CHARS
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES
    max_template_chars: int = DEFAULT_MAX_TEMPLATE_CHARS
    max_placeholders: int = DEFAULT_MAX_PLACEHOLDERS


@dataclass(frozen=True)
class WebSettings:
    """[web]: the console. `secret_key` signs the session cookies (default: a random key
    made once and kept in the store); `trust_proxy` believes X-Forwarded-Proto/-For of
    a reverse proxy in front (HTTPS there: Secure cookies, the client's address)."""

    host: str = DEFAULT_WEB_HOST
    port: int = DEFAULT_WEB_PORT
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    secret_key: str = field(default="", repr=False)
    trust_proxy: bool = False

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


@dataclass(frozen=True)
class RunSettings:
    log: Path | None = None
    lock: Path | None = None


@dataclass(frozen=True)
class JobSettings:
    name: str
    contacts: str  # a path or a glob, resolved against the config folder
    template: str  # a file, resolved against the config folder (`campaign run --check`)
    inbox: Path | None = None
    export: Path | None = None
    send_at: time | None = None
    not_after: time | None = None
    max_per_day: int | None = None
    send_window: SendWindow | None = None
    queue: bool = False  # hand the job's campaigns to `campaign worker`s, not send in the run


@dataclass(frozen=True)
class Settings:
    gateway: GatewaySettings = GatewaySettings()
    compliance: ComplianceSettings = ComplianceSettings()
    receiver: ReceiverSettings = ReceiverSettings()
    store_url: str = f"sqlite:///{DEFAULT_DB_FILE}"
    run: RunSettings = RunSettings()
    jobs: tuple[JobSettings, ...] = ()
    config_path: Path | None = None
    limits: LimitSettings = LimitSettings()
    web: WebSettings = WebSettings()

    @property
    def secrets(self) -> tuple[str, ...]:
        """The passwords these settings hold, for `campaign.redact` (never shown)."""
        found = [self.gateway.password, self.receiver.pswd, self.web.secret_key]
        found += url_secrets(self.gateway.url) + url_secrets(self.store_url)
        return tuple(dict.fromkeys(s for s in found if s))

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths of the config file are relative to."""
        return self.config_path.parent if self.config_path else Path.cwd()


def parse_window(value: str, key: str = "send_window") -> SendWindow:
    match = _WINDOW.match(value)
    if not match:
        raise ConfigError(f"{key} must look like 08:00-21:00, not {value!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return SendWindow(_clock(h1, m1, key, value), _clock(h2, m2, key, value))


def parse_clock(value: str, key: str) -> time:
    match = _CLOCK.match(value)
    if not match:
        raise ConfigError(f"{key} must be a China time of day like 09:00, not {value!r}")
    return _clock(int(match.group(1)), int(match.group(2)), key, value)


def _clock(hour: int, minute: int, key: str, value: str) -> time:
    if hour == 24 and minute == 0:
        return time(23, 59, 59, 999999)
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ConfigError(f"{key}: {value!r} is not a time of day")
    return time(hour, minute)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text (TOML must be UTF-8)") from None


def load_settings(
    config: Path | str | None = None,
    *,
    db: str | None = None,
    gateway: str | None = None,
    env: Mapping[str, str] | None = None,
    store_beside_config: bool = False,
) -> Settings:
    """Build the settings: defaults < config file < environment < these arguments.

    The default store is `campaign.db` in the current folder, or beside the config file
    when `store_beside_config` (the `campaign run` form). A relative SQLite path is
    relative to the config file's folder only when the config file says it; given as
    `db` or in CAMPAIGN_DB it is relative to the current folder. A gateway or store URL
    given here or in the environment that cannot be used is a UsageError (exit 2), one in
    the config file a ConfigError. The passwords are registered with `campaign.redact`.
    """
    env = os.environ if env is None else env
    path = Path(config) if config else (Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None)
    data = read_toml(path) if path else {}
    base = path.resolve().parent if path else Path.cwd()
    settings = _from_toml(data, base, path.resolve() if path else None)
    gw_env = {
        "url": env.get(ENV_GATEWAY),
        "account": env.get(ENV_ACCOUNT),
        "password": env.get(ENV_PASSWORD),
    }
    gw_changes: dict[str, Any] = {k: v for k, v in gw_env.items() if v}  # field -> value
    if gateway:
        gw_changes["url"] = gateway
    if "url" in gw_changes:
        check_gateway_url(gw_changes["url"], UsageError)
    default_base = base if store_beside_config else Path.cwd()
    default_store = f"sqlite:///{(default_base / DEFAULT_DB_FILE).resolve()}"
    given = db or env.get(ENV_DB)  # command line or environment: relative to here
    if given:
        store_url = normalize_store_url(check_store_url(given, UsageError), Path.cwd())
    else:
        store_url = _file_store_url(data, base) or default_store
    result = replace(settings, gateway=replace(settings.gateway, **gw_changes), store_url=store_url)
    replace_secrets(*result.secrets)
    return result


def is_gateway_url(url: str) -> bool:
    """`simulator`, or an http(s) URL with a host that parses (brackets, port included)."""
    if url == SIMULATOR:
        return True
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def check_gateway_url(url: str, error: type[CampaignError] = ConfigError) -> str:
    """The URL, or `error` (UsageError for the command line, ConfigError for the file)."""
    if not is_gateway_url(url):
        raise error(
            f"the gateway URL {redact_url(url)!r} is neither an http(s) URL "
            f"(e.g. {DEFAULT_GATEWAY_URL}) nor '{SIMULATOR}'"
        )
    return url


_STORE_SCHEME = re.compile(r"^(?:sqlite|postgres|postgresql)(?:\+\w+)?$", re.IGNORECASE)


def check_store_url(url: str, error: type[CampaignError] = ConfigError) -> str:
    """A file path, sqlite:///FILE or postgresql://...; anything else is `error`."""
    if "://" not in url:
        return url  # a file path
    shown = redact_url(url)
    if not _STORE_SCHEME.match(url.split("://", 1)[0]):
        raise error(
            f"the store URL {shown!r} is neither a file path, sqlite:///FILE "
            "nor a postgresql:// URL"
        )
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError for brackets or a bad port
    except ValueError as exc:
        raise error(f"the store URL {shown!r} cannot be parsed: {exc}") from None
    return url


def normalize_store_url(url: str, base: Path) -> str:
    """Accept a SQLAlchemy URL or a bare file path; make relative SQLite paths absolute."""
    if "://" not in url:
        return f"sqlite:///{(base / url).resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rest = url[len("sqlite:///") :]
        if rest and rest != ":memory:":
            return f"sqlite:///{(base / rest).resolve()}"
    return url


def _from_toml(data: dict[str, Any], base: Path, path: Path | None) -> Settings:
    known = {"gateway", "compliance", "receiver", "store", "run", "job", "limits", "web"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown section(s) in the config file: {', '.join(unknown)}")
    gateway = _section(GatewaySettings, data.get("gateway", {}), "gateway")
    check_gateway_url(gateway.url)
    if gateway.max_batch < 1:  # 0 would silently send one mobile per request
        raise ConfigError("gateway.max_batch must be 1 or more (mobiles per request)")
    compliance_raw = dict(_table(data, "compliance"))
    window = compliance_raw.pop("send_window", None)
    words = compliance_raw.pop("sensitive_words", None)
    cap = _cap_settings(compliance_raw)
    compliance = _section(ComplianceSettings, compliance_raw, "compliance")
    compliance = replace(
        compliance,
        send_window=parse_window(_str(window, "compliance.send_window")) if window else None,
        sensitive_words=base / _str(words, "compliance.sensitive_words") if words else None,
        **cap,
    )
    receiver_raw = dict(_table(data, "receiver"))
    keywords = receiver_raw.pop("optout_keywords", None)
    receiver = _section(ReceiverSettings, receiver_raw, "receiver")
    if receiver.port > 65535:  # the socket would silently take the port modulo 65536
        raise ConfigError(f"receiver.port must be a port number 0-65535, not {receiver.port}")
    _check_receiver_limits(receiver)
    if keywords is not None:
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise ConfigError("receiver.optout_keywords must be a list of strings")
        receiver = replace(receiver, optout_keywords=tuple(keywords))
    store_url = _file_store_url(data, base) or f"sqlite:///{DEFAULT_DB_FILE}"
    run_raw = _table(data, "run")
    run = RunSettings(
        log=base / _str(run_raw["log"], "run.log") if run_raw.get("log") else None,
        lock=base / _str(run_raw["lock"], "run.lock") if run_raw.get("lock") else None,
    )
    jobs = tuple(_job(raw, base, i) for i, raw in enumerate(data.get("job", []), start=1))
    return Settings(
        gateway,
        compliance,
        receiver,
        normalize_store_url(store_url, base),
        run,
        jobs,
        path,
        limits=_limits(data),
        web=_web(data),
    )


def _web(data: dict[str, Any]) -> WebSettings:
    """[web]: a port 0-65535, an upload limit >= 1 MB, a secret key long enough."""
    web = _section(WebSettings, _table(data, "web"), "web")
    if web.port > 65535:
        raise ConfigError(f"web.port must be a port number 0-65535, not {web.port}")
    if web.max_upload_mb < 1:
        raise ConfigError("web.max_upload_mb must be a whole number >= 1 (megabytes)")
    if web.secret_key and len(web.secret_key) < MIN_SECRET_KEY_CHARS:
        raise ConfigError(
            f"web.secret_key must be at least {MIN_SECRET_KEY_CHARS} characters "
            "(or leave it out: a random key is made and kept in the store)"
        )
    return web


def _limits(data: dict[str, Any]) -> LimitSettings:
    """[limits]: whole numbers >= 1 (0 would refuse every file)."""
    limits = _section(LimitSettings, _table(data, "limits"), "limits")
    for key in fields(LimitSettings):
        if getattr(limits, key.name) < 1:
            raise ConfigError(f"limits.{key.name} must be a whole number >= 1")
    return limits


def _cap_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """Pop and check compliance.max_per_recipient (whole number >= 1) and cap_window_hours
    (a number > 0): the frequency cap across campaigns."""
    found: dict[str, Any] = {}
    limit = raw.pop("max_per_recipient", None)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(
                "compliance.max_per_recipient must be a whole number >= 1 (messages per number "
                f"in the window), not {limit!r}"
            )
        found["max_per_recipient"] = limit
    hours = raw.pop("cap_window_hours", None)
    if hours is not None:
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours < inf:
            raise ConfigError(f"compliance.cap_window_hours must be a number > 0, not {hours!r}")
        found["cap_window_hours"] = float(hours)
    return found


_RECEIVER_LIMITS = ("max_body_bytes", "max_header_bytes", "header_timeout", "idle_timeout",
                    "max_connections")  # fmt: skip


def _check_receiver_limits(receiver: ReceiverSettings) -> None:
    """0 would refuse every push or close every connection at once."""
    for key in _RECEIVER_LIMITS:
        if getattr(receiver, key) <= 0:
            raise ConfigError(f"receiver.{key} must be more than 0")


def _file_store_url(data: dict[str, Any], base: Path) -> str | None:
    store = _table(data, "store")
    unknown = sorted(set(store) - {"url"})
    if unknown:
        raise ConfigError(f"unknown key store.{unknown[0]} in the config file")
    if not store.get("url"):
        return None
    return normalize_store_url(check_store_url(_str(store["url"], "store.url")), base)


def _job(raw: Any, base: Path, number: int) -> JobSettings:
    where = f"[[job]] #{number}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    for key in ("name", "contacts", "template"):
        if not raw.get(key):
            raise ConfigError(f"{where} needs a {key!r}")
    allowed = {f.name for f in fields(JobSettings)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    template = _str(raw["template"], f"{where}.template")  # always a file (SPEC: Templates)
    max_per_day = raw.get("max_per_day")
    if max_per_day is not None and (
        isinstance(max_per_day, bool) or not isinstance(max_per_day, int) or max_per_day < 1
    ):
        raise ConfigError(f"{where}.max_per_day must be a positive whole number")
    queue = raw.get("queue", False)
    if not isinstance(queue, bool):
        raise ConfigError(f"{where}.queue must be true or false")
    return JobSettings(
        name=_str(raw["name"], f"{where}.name"),
        contacts=str(base / _str(raw["contacts"], f"{where}.contacts")),
        template=str(base / template),
        inbox=base / _str(raw["inbox"], f"{where}.inbox") if raw.get("inbox") else None,
        export=base / _str(raw["export"], f"{where}.export") if raw.get("export") else None,
        send_at=_job_clock(raw, "send_at", where),
        not_after=_job_clock(raw, "not_after", where),
        max_per_day=max_per_day,
        send_window=(
            parse_window(_str(raw["send_window"], f"{where}.send_window"), f"{where}.send_window")
            if raw.get("send_window")
            else None
        ),
        queue=queue,
    )


def _job_clock(raw: dict[str, Any], key: str, where: str) -> time | None:
    if not raw.get(key):
        return None
    return parse_clock(_str(raw[key], f"{where}.{key}"), f"{where}.{key}")


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _section(cls: type, raw: Any, name: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    allowed = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in allowed:
            raise ConfigError(f"unknown key {name}.{key} in the config file")
        default = getattr(cls(), key)
        values[key] = _coerce(value, default, f"{name}.{key}")
    return cls(**values)


def _coerce(value: Any, default: Any, key: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key} must be a whole number >= 0")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < inf:
            raise ConfigError(f"{key} must be a number >= 0")
        return float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # account = 003547 written without quotes loses nothing but zeros
    return _str(value, key)


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value
