"""A wrong gateway base URL stops the run with nothing sent and nothing marked unknown."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from typer.testing import CliRunner

from campaign.cli import app
from campaign.store import open_store
from campaign.store.batches import batch_state_counts


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body><h1>404 Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def not_found_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/wrong"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_wrong_base_url_stops_with_exit_4_and_leaves_everything_unsent(tmp_path, sqlite_url):
    contacts = tmp_path / "c.csv"
    contacts.write_text("name,mobile\nA,13900000001\nB,13900000002\n", encoding="utf-8")
    env = {"CAMPAIGN_ACCOUNT": "demo", "CAMPAIGN_PASSWORD": "demo-secret"}
    with not_found_server() as url:
        result = CliRunner().invoke(
            app,
            [
                "send",
                str(contacts),
                "--text",
                "您好{name}",
                "--gateway",
                url,
                "--db",
                sqlite_url,
                "--yes",
                "--json",
            ],
            env=env,
        )
    assert result.exit_code == 4, result.output
    assert "gateway base URL" in result.output
    assert json.loads(result.stdout)["outcomes"]["unknown"] == 0
    engine = open_store(sqlite_url)
    try:
        counts = batch_state_counts(engine, 1)
    finally:
        engine.dispose()
    assert counts.get("pending") == 2 and not counts.get("unknown")
