"""What the console leaves when it stops (the lifespan's shutdown), end to end: a real
uvicorn on a loopback port serving `create_app` on a real SQLite store, httpx signed in
through the login form, and the server stopped as `campaign web` stops on Ctrl-C.

    files     uploads waiting at the map step (drafts), plans, scratch folders: gone
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from campaign.config import Settings
from campaign.outcomes import Role
from campaign.web.scratch import scratch_of
from tests.support.console import Console, csrf_of, running_console, sign_in


@contextmanager
def signed_in(console: Console, name: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client signed in as `name` (password pw-<name>) and its session's CSRF token."""
    with console.client() as client:
        assert sign_in(client, name, f"pw-{name}").status_code == 303
        yield client, csrf_of(client.get("/new").text)


def upload(client: httpx.Client, token: str, name: str, body: bytes) -> str:
    """POST /new with one file: where the console sends the browser next."""
    files = [("files", (name, body, "text/csv"))]
    answer = client.post("/new", data={"csrf_token": token}, files=files)
    assert answer.status_code == 303, answer.text[:2000]
    return str(answer.headers["location"])


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_stopping_removes_the_drafts_plans_and_scratch_files_it_made(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'campaign.db'}")
    data_dir = tmp_path / "web"
    other = data_dir / "uploads" / "another-console" / "upload-1.csv"  # a console beside it
    other.parent.mkdir(parents=True)
    other.write_text("姓名,手机号\n", encoding="utf-8")
    with running_console(settings, data_dir=data_dir) as console:
        console.add_user("ann", "pw-ann", Role.SENDER)
        with signed_in(console, "ann") as (client, token):
            unclear = upload(client, token, "名单.csv", "客户,联系\n客户1,x13900000001\n".encode())
            assert unclear.endswith("/map"), unclear  # kept as a draft until mapped
            planned = upload(client, token, "好.csv", "姓名,手机号\n张三,13900000002\n".encode())
            assert planned.endswith("/template"), planned
        assert files_under(data_dir / "drafts"), "the upload waits at the map step"
        assert files_under(data_dir / "plans")
        left = scratch_of(console.app.state).folder("work")  # a download's client gone
        (left / "results.xlsx").write_bytes(b"PK")
    assert files_under(data_dir) == [other], "only the other console's upload is left"
    assert not (data_dir / "drafts").exists() and not (data_dir / "work").exists()
