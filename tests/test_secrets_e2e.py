"""End to end: a gateway (or proxy) that echoes the request body never gets the password
(or a piece of it, or the credentials of a gateway URL) into an output, a log, the store or
an export."""

from __future__ import annotations

import http.server
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from campaign.cli import app
from campaign.redact import forget_secrets
from campaign.store import open_store
from campaign.store.schema import metadata

runner = CliRunner()
PASSWORDS = {
    2: "&%",
    16: "Zq9#Pw&x!SEC+ %z",
    50: "Lg7#k&!+ %" + "Tq2vXr8mNw" + "Hs5#Jd&Kp!" + "Yc4+Bf %Ge" + "Wu6Ra9Zm3Q",
}
URL_USER, URL_PASSWORD = "gq7zxk", "Ur1P@ss-Kx7v"  # no word a schema holds ("user")


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every POST with its own body: `mode` 200 (malformed), 500, or `bare` (200 with
    the form's values only, no field names: nothing to hold on to but the password)."""

    mode = "200"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if self.mode == "bare":
            values = [value for _key, value in parse_qsl(body)]
            answer = " ".join(quote_plus(v) for v in values[1:2] + values)
            status = 200
        else:
            answer = f"Bad request, you sent: {body}"
            status = int(self.mode)
        data = answer.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def echo_gateway(mode: str) -> Iterator[int]:
    handler = type("Echo", (_Echo,), {"mode": mode})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def forbidden(password: str) -> set[str]:
    """Every 4-character piece of the password, raw and URL-encoded, and of the URL creds."""
    found: set[str] = set()
    for text in (
        password,
        quote(password, safe=""),
        quote_plus(password, safe=""),
        URL_PASSWORD,
        quote(URL_PASSWORD, safe=""),
        f"{URL_USER}:",
    ):
        found |= {text[i : i + 4] for i in range(len(text) - 3)}
    return found


def assert_clean(where: str, text: str, password: str) -> None:
    normal = re.sub(r"%[0-9a-fA-F]{2}", lambda m: m.group(0).upper(), text)
    for piece in forbidden(password):
        assert piece not in text and piece not in normal, f"{piece!r} in {where}: {text[:2000]}"
    assert not re.search(r"pswd(=|%3D)(?!\*\*\*)", text, re.IGNORECASE), f"pswd= in {where}"


def store_text(url: str, tmp_path: Path) -> str:
    """The store as text: SQLite file bytes (and its WAL), or every PostgreSQL row."""
    if url.startswith("sqlite"):
        db = Path(url.removeprefix("sqlite:///"))
        parts = [p.read_bytes() for p in db.parent.glob(db.name + "*")]
        return b"\n".join(parts).decode("utf-8", errors="replace")
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            rows = [repr(conn.execute(select(t)).all()) for t in metadata.sorted_tables]
    finally:
        engine.dispose()
    return "\n".join(rows)


def xlsx_text(path: Path) -> str:
    with zipfile.ZipFile(path) as book:
        return "\n".join(book.read(name).decode("utf-8") for name in book.namelist())


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("name,mobile\nA,13900000001\nB,13900000002\n", encoding="utf-8")
    template = tmp_path / "t.txt"
    template.write_text("您好{name}", encoding="utf-8")
    return contacts, template


@pytest.mark.parametrize("length", sorted(PASSWORDS))
@pytest.mark.parametrize("mode", ["200", "500", "bare"])
def test_an_echoing_gateway_never_gets_the_password_anywhere(store_url, tmp_path, length, mode):
    password = PASSWORDS[length]
    assert len(password) == length
    contacts, template = write_inputs(tmp_path)
    env = {"CAMPAIGN_ACCOUNT": "acct", "CAMPAIGN_PASSWORD": password}
    outputs: dict[str, str] = {}
    with echo_gateway(mode) as port:
        gateway = f"http://{URL_USER}:{quote(URL_PASSWORD, safe='')}@127.0.0.1:{port}/msg"
        args = ["send", str(contacts), "-t", str(template), "--gateway", gateway]
        args += ["--db", store_url, "--yes", "--name", "echo"]
        sent = runner.invoke(app, args, env=env)
        outputs["send"] = sent.output
        assert sent.exit_code == 5, sent.output  # the batch is unknown: it may have been sent
        balance = runner.invoke(app, ["balance", "--gateway", gateway, "--json"], env=env)
        outputs["balance"] = balance.output
    for args in (["status", "echo"], ["status", "echo", "--json"], ["status"]):
        shown = runner.invoke(app, [*args, "--db", store_url], env=env)
        assert shown.exit_code == 0, shown.output
        outputs[" ".join(args)] = shown.output
    status = json.loads(outputs["status echo --json"])
    assert status["outcomes"]["unknown"] == 2
    for suffix in ("xlsx", "csv"):
        out = tmp_path / f"x.{suffix}"
        done = runner.invoke(app, ["export", "echo", "-o", str(out), "--db", store_url], env=env)
        assert done.exit_code == 0, done.output
        outputs[f"export {suffix}"] = done.output
        outputs[f"file {suffix}"] = xlsx_text(out) if suffix == "xlsx" else out.read_text("utf-8")
    outputs["store"] = store_text(store_url, tmp_path)
    for where, text in outputs.items():
        assert_clean(where, text, password)
    assert "may have been sent" in outputs["file csv"]  # the reason is there, without secrets
    if mode != "bare":
        assert "the answer echoed the request; not shown" in outputs["file csv"]


def test_the_nightly_run_log_holds_no_password(tmp_path, monkeypatch):
    password = PASSWORDS[16]
    contacts, template = write_inputs(tmp_path)
    (tmp_path / "incoming").mkdir()
    contacts.rename(tmp_path / "incoming" / "a.csv")
    with echo_gateway("500") as port:
        config = tmp_path / "c.toml"
        config.write_text(
            f'[gateway]\nurl = "http://{URL_USER}:{quote(URL_PASSWORD, safe="")}'
            f'@127.0.0.1:{port}/msg"\naccount = "acct"\ntimeout = 5\n\n'
            '[run]\nlog = "logs/campaign.log"\n\n'
            '[[job]]\nname = "nightly"\ncontacts = "incoming/*.csv"\n'
            f'template = "{template.name}"\nexport = "exports"\n',
            encoding="utf-8",
        )
        result = runner.invoke(app, ["run", str(config)], env={"CAMPAIGN_PASSWORD": password})
    assert result.exit_code == 5, result.output  # HTTP 500: may have been sent, `unknown`
    log = (tmp_path / "logs" / "campaign.log").read_text("utf-8")
    assert log
    exports = [xlsx_text(p) for p in (tmp_path / "exports").glob("*.xlsx")]
    store = store_text(f"sqlite:///{tmp_path / 'campaign.db'}", tmp_path)
    for where, text in {"output": result.output, "log": log, "store": store}.items():
        assert_clean(where, text, password)
    for text in exports:
        assert_clean("export", text, password)
