"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.llm_server import LLMServer
from tests.postgres import PostgresServer

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """A real OpenAI / Azure / Anthropic wire-format server on 127.0.0.1, stopped afterwards."""
    with LLMServer() as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session: the browser tests of tests/e2e and
    tests/test_start.py share it (two sync Playwrights cannot run in one thread)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required for the browser tests: apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in the main
    thread until the session ends, and asyncio.run() refuses to start inside it."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session (a temp cluster), stopped at the end."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives, once per engine: a SQLite file, or a fresh PostgreSQL database.
    A test that takes it runs on both."""
    if request.param == "sqlite":
        return str(tmp_path / "home" / "promptdeck.sqlite")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
