"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.llm_server import LLMServer


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """A real OpenAI / Azure / Anthropic wire-format server on 127.0.0.1, stopped afterwards."""
    with LLMServer() as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in the main
    thread until the session ends, and asyncio.run() refuses to start inside it."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
