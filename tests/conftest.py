"""Shared fixtures: real SQLite files, the real PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine

from campaign.config import normalize_store_url
from campaign.store import open_store
from tests.support.cli_env import CAMPAIGN_ENV

PG_URL = os.environ.get("CAMPAIGN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def isolated_cli(tmp_path, monkeypatch) -> None:
    """Run in an empty folder without the campaign environment variables: the default
    store is ./campaign.db there."""
    monkeypatch.chdir(tmp_path)
    for name in CAMPAIGN_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """URL of a fresh SQLite store file in the test's folder."""
    return f"sqlite:///{tmp_path / 'campaign.db'}"


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh schema in the test PostgreSQL; dropped afterwards.

    Skips only outside CI: in CI (CI set) an unreachable PostgreSQL fails the test.
    """
    problem = _pg_reachable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} is not reachable in CI: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    yield normalize_store_url(f"{PG_URL}{sep}options=-csearch_path%3D{schema}", os.getcwd())
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request) -> str:
    """Both stores, one after the other: the same code must work on each."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(store_url) -> Iterator[Engine]:
    """An open store on each of `store_url`'s stores, disposed of afterwards."""
    engine = open_store(store_url)
    yield engine
    engine.dispose()


# Files whose tests measure time (rates, "within 2 s", time bounds of hostile files) or
# signal subprocesses: `make test` runs them after the others, alone, so that the
# parallel part (pytest-xdist, one file per worker) cannot skew what they measure. The
# browser tests run last on their own: Playwright's sync API keeps an asyncio loop running
# in the main thread for the session, which breaks later tests that call asyncio.run.
SERIAL_FILES = frozenset(
    {
        "test_workers_pg.py",
        "test_pause_cancel.py",
        "test_worker.py",
        "test_kill_resume.py",
        "test_cli_conventions.py",
        "test_hostile_input.py",
        "test_receiver_limits.py",
        "test_receiver_durability.py",
        "test_send_parts.py",
        "test_sender.py",
        "test_jobs.py",
        "test_simulator.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
