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
