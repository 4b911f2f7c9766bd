"""Settings of the built-in gateway simulator, from keyword arguments or a TOML file.

TOML keys (all optional; top level or under a `[simulator]` table):

```toml
push_url = "http://127.0.0.1:8080/dlr"  # where delivery reports are pushed [none: no pushes]
mo_url = "http://127.0.0.1:8080/mo"     # where inbound messages go [push_url with /dlr -> /mo]
push_receiver = "admin"                 # receiver= of every push [""]
push_pswd = "secret"                    # pswd= of every push [""]
push_method = "GET"                     # GET (query string, like the original) or POST (form)
report_delay = 0.05                     # seconds between acceptance and the reports [0.05]
seed = 0                                # makes the status mix deterministic per mobile [0]
duplicate_rate = 0.0                    # share of reports pushed twice [0]
lost_rate = 0.0                         # share of reports never pushed (import fills holes)
push_retries = 6                        # attempts per push when the receiver does not answer 200
push_backoff = 0.2                      # first retry delay, doubled each time (seconds)
push_concurrency = 8                    # pushes in flight at once
push_batch = 1                          # reports per push; > 1 uses report=m,t,mobile,s||...
max_mobiles = 50000                     # mobiles per request (108 above)
max_length = 536                        # message length in UTF-16 units (106 above)
extno_max_length = 6                    # extno: digits, at most this long (113)
sensitive_words = ["赌博", "发票"]        # 105 when the text contains one [none]
rate_limit = 0                          # send requests per second per account, 0 = off (103)
balance_interval = 0                    # seconds between balance queries, 0 = off (103)
send_window = "08:00-21:00"             # China time; outside it 110 [always open]
fault_delay = 2.0                       # seconds the "delay" fault holds an answer
latency = 0.0                           # seconds every send request's answer waits [0]
keep_log = true                         # keep every send request in memory (.received())

[report_mix]                            # status -> weight [90% DELIVRD, 10% failures]
DELIVRD = 95
MBBLACK = 5

[report_overrides]                      # mobile -> status, wins over the mix
"13800000001" = "ID:0101"

[[account]]                             # several allowed [one: demo / demo-secret]
name = "demo"
password = "demo-secret"
products = { "1001" = 10000000 }        # product id -> quota in billed segments
default_product = "1001"                # used when a request names no product [first listed]
min_batch = 1                           # the account's minimum group size (108 below)
require_signature = false               # 116 unless the text starts with 【...】
expired = false                         # 119 on every request
allowed_ips = []                        # 117 for other callers [any]
```

A request with an empty `product` is billed to the account's default product (like the
platform's old accounts), even when the account has several products.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from campaign.config import SendWindow, parse_window, read_toml
from campaign.errors import ConfigError

DEMO_ACCOUNT = "demo"
DEMO_PASSWORD = "demo-secret"  # the documented demo password (not a secret)
DEMO_PRODUCT = "1001"
DEMO_QUOTA = 10_000_000
DEFAULT_REPORT_MIX: tuple[tuple[str, float], ...] = (
    ("DELIVRD", 0.90),
    ("MBBLACK", 0.02),
    ("ID:0101", 0.02),
    ("601", 0.015),
    ("NOROUTE", 0.015),
    ("DB:0141", 0.01),
    ("ID:0102", 0.01),
    ("CMPP20ERR:8", 0.005),
    ("KEYWORD", 0.005),
)


@dataclass(frozen=True)
class SimAccount:
    name: str = DEMO_ACCOUNT
    password: str = field(default=DEMO_PASSWORD, repr=False)
    products: tuple[tuple[str, int], ...] = ((DEMO_PRODUCT, DEMO_QUOTA),)
    default_product: str = ""
    min_batch: int = 1
    require_signature: bool = False
    expired: bool = False
    allowed_ips: tuple[str, ...] = ()

    @property
    def default(self) -> str:
        return self.default_product or (self.products[0][0] if self.products else "")


@dataclass(frozen=True)
class SimulatorSettings:
    accounts: tuple[SimAccount, ...] = (SimAccount(),)
    push_url: str = ""
    mo_url: str = ""
    push_receiver: str = ""
    push_pswd: str = field(default="", repr=False)
    push_method: str = "GET"
    report_delay: float = 0.05
    report_mix: tuple[tuple[str, float], ...] = DEFAULT_REPORT_MIX
    report_overrides: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0
    duplicate_rate: float = 0.0
    lost_rate: float = 0.0
    push_retries: int = 6
    push_backoff: float = 0.2
    push_concurrency: int = 8
    push_batch: int = 1
    max_mobiles: int = 50_000
    max_length: int = 536
    extno_max_length: int = 6
    sensitive_words: tuple[str, ...] = ()
    rate_limit: float = 0.0
    balance_interval: float = 0.0
    send_window: SendWindow | None = None
    fault_delay: float = 2.0
    latency: float = 0.0
    keep_log: bool = True

    @property
    def mo_target(self) -> str:
        if self.mo_url:
            return self.mo_url
        if self.push_url.rstrip("/").endswith("/dlr"):
            return self.push_url.rstrip("/")[: -len("dlr")] + "mo"
        return self.push_url


def make_settings(base: SimulatorSettings | None = None, **changes: Any) -> SimulatorSettings:
    """Settings with keyword changes; accepts friendly forms (dicts, lists, "08:00-21:00")."""
    settings = base or SimulatorSettings()
    if "report_mix" in changes and isinstance(changes["report_mix"], Mapping):
        changes["report_mix"] = tuple((str(k), float(v)) for k, v in changes["report_mix"].items())
    if "sensitive_words" in changes:
        changes["sensitive_words"] = tuple(changes["sensitive_words"])
    if isinstance(changes.get("send_window"), str):
        text = changes["send_window"]
        changes["send_window"] = parse_window(text, "send_window") if text else None
    if "accounts" in changes:
        changes["accounts"] = tuple(_account(a) for a in changes["accounts"])
    if "report_overrides" in changes:
        changes["report_overrides"] = dict(changes["report_overrides"])
    return replace(settings, **changes)


def _account(value: SimAccount | Mapping[str, Any]) -> SimAccount:
    if isinstance(value, SimAccount):
        return value
    raw = dict(value)
    if isinstance(raw.get("products"), Mapping):
        raw["products"] = tuple((str(k), int(v)) for k, v in raw["products"].items())
    if "allowed_ips" in raw:
        raw["allowed_ips"] = tuple(raw["allowed_ips"])
    return SimAccount(**raw)


_SCALARS = {f.name for f in fields(SimulatorSettings)} - {"accounts", "report_mix"}


def load_simulator_settings(path: Path | str) -> SimulatorSettings:
    """Read a simulator TOML file (keys in the module docstring); ConfigError if unusable."""
    data = read_toml(Path(path))
    data = data.get("simulator", data)
    if not isinstance(data, dict):
        raise ConfigError("[simulator] must be a table")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "account":
            if not isinstance(value, list) or not value:
                raise ConfigError("[[account]] must be one or more tables")
            changes["accounts"] = [_checked_account(raw, i) for i, raw in enumerate(value, 1)]
        elif key == "report_mix":
            if not isinstance(value, dict) or not all(
                isinstance(v, int | float) and v >= 0 for v in value.values()
            ):
                raise ConfigError("report_mix must map statuses to weights >= 0")
            changes["report_mix"] = value
        elif key in _SCALARS:
            changes[key] = _checked_scalar(key, value)
        else:
            raise ConfigError(f"unknown key {key!r} in the simulator config {path}")
    try:
        return make_settings(**changes)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"simulator config {path}: {exc}") from None


def _checked_scalar(key: str, value: Any) -> Any:
    default = getattr(SimulatorSettings(), key)
    if key == "sensitive_words":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif key == "send_window":
        ok = isinstance(value, str)
    elif key == "report_overrides":
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int | float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        value = type(default)(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"simulator setting {key} has a wrong type or value: {value!r}")
    return value


def _checked_account(raw: Any, number: int) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw.get("name"):
        raise ConfigError(f"[[account]] #{number} needs a name")
    allowed = {f.name for f in fields(SimAccount)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"[[account]] #{number}: unknown key(s) {', '.join(unknown)}")
    products = raw.get("products", {DEMO_PRODUCT: DEMO_QUOTA})
    if not isinstance(products, dict):
        raise ConfigError(f"[[account]] #{number}: products must map product ids to quotas")
    return {
        **raw,
        "name": str(raw["name"]),
        "password": str(raw.get("password", "")),
        "products": products,
    }
