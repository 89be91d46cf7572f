"""AzureProvider against a real local server speaking Azure OpenAI's wire format."""

from __future__ import annotations

from typing import Any

import pytest

from promptdeck.errors import AuthError, ProviderConnectionError, RateLimitError
from promptdeck.model.openai_compat import AzureProvider
from promptdeck.model.types import ChatRequest, Message, Usage
from tests.llm_server import LLMServer, Scenario, collect

KEY = "azure-key-0123456789"
REQUEST = ChatRequest("my deployment", (Message("user", "hello world"),), {"max_tokens": 50})
ECHO = ["Echo:", " hello", " world"]


def provider(server: LLMServer, **kwargs: Any) -> AzureProvider:
    options: dict[str, Any] = {"api_version": "2024-10-21", "api_key": KEY} | kwargs
    return AzureProvider("azure", server.url + "/", **options)


def test_streams_from_the_deployment_url_with_api_key_header(llm_server: LLMServer) -> None:
    # The server starts with Azure's content-filter chunk (choices: []), as Azure does.
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == [*ECHO, Usage(input_tokens=2, output_tokens=3)]
    [sent] = llm_server.requests
    assert sent.path == "/openai/deployments/my%20deployment/chat/completions"
    assert sent.model == "my deployment"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.body == {
        "messages": [{"role": "user", "content": "hello world"}],
        "max_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_missing_key_fails_before_any_request(
    llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PD_TEST_AZURE_KEY", raising=False)
    result = collect(provider(llm_server, api_key=None, api_key_env="PD_TEST_AZURE_KEY"), REQUEST)
    assert type(result.error) is AuthError
    assert "PD_TEST_AZURE_KEY" in str(result.error)
    assert llm_server.requests == []


def test_wrong_key_is_an_auth_error_without_the_key(llm_server: LLMServer) -> None:
    llm_server.set_scenario("my deployment", Scenario(require_key="the-right-key"))
    error = collect(provider(llm_server), REQUEST).error
    assert type(error) is AuthError
    assert error.status == 401
    assert KEY not in str(error)


def test_rate_limit_with_retry_after(llm_server: LLMServer) -> None:
    llm_server.set_scenario("my deployment", Scenario(fail_statuses=[429], retry_after=2))
    error = collect(provider(llm_server), REQUEST).error
    assert type(error) is RateLimitError
    assert error.retry_after == 2.0


def test_dropped_connection(llm_server: LLMServer) -> None:
    llm_server.set_scenario("my deployment", Scenario(drop_after=1))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == ECHO[:1]
    assert type(result.error) is ProviderConnectionError
