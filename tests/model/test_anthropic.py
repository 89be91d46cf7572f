"""AnthropicProvider: event decoding from literal bytes, then against a real local server."""

from __future__ import annotations

from typing import Any

import pytest

from promptdeck.errors import (
    AuthError,
    HTTPStatusError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
)
from promptdeck.model.anthropic import AnthropicProvider, parse_event
from promptdeck.model.http import StreamDelta, final_usage
from promptdeck.model.sse import SSEDecoder
from promptdeck.model.types import (
    ChatRequest,
    Message,
    Thinking,
    Timeouts,
    ToolCallDelta,
    Usage,
)
from tests.llm_server import LLMServer, Scenario, collect, thinking_signature

KEY = "sk-ant-test-0123456789"
REQUEST = ChatRequest(
    model="claude-test",
    messages=(
        Message("system", "Be brief."),
        Message("system", "Answer in English."),
        Message("user", "hello there world"),
    ),
    params={"temperature": 0.3, "max_tokens": 100, "seed": 7, "stop": "END"},
)
ECHO = ["Echo:", " hello", " there", " world"]

STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    b'"content":[],"model":"claude-test","usage":{"input_tokens":25,"output_tokens":1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    b"event: some_future_event\ndata: not json\n\n"
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{},"usage":{"output_tokens":3}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
    b'"text":" th\xc3\xa9re"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta",'
    b'"partial_json":"{}"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":7}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def deltas(raw: bytes, chunk_size: int) -> list[StreamDelta]:
    decoder = SSEDecoder()
    events = [
        e for i in range(0, len(raw), chunk_size) for e in decoder.feed(raw[i : i + chunk_size])
    ]
    return [parse_event(event, provider="anthropic") for event in events + decoder.flush()]


@pytest.mark.parametrize("chunk_size", [1, 7, len(STREAM)])
def test_decodes_events_from_literal_bytes(chunk_size: int) -> None:
    got = deltas(STREAM, chunk_size)
    assert "".join(d.text for d in got) == "Hi thére"
    assert [d.input_tokens for d in got if d.input_tokens is not None] == [25]
    # output_tokens is a running total: the last one (7) wins, nothing is added up.
    assert [d.output_tokens for d in got if d.output_tokens is not None] == [3, 7]
    assert [d.done for d in got] == [False] * 10 + [True]  # message_stop ends it


@pytest.mark.parametrize(
    ("error_type", "kind", "retryable"),
    [
        ("overloaded_error", HTTPStatusError, True),
        ("api_error", HTTPStatusError, True),
        ("rate_limit_error", RateLimitError, True),
        ("authentication_error", AuthError, False),
        ("invalid_request_error", ProviderError, False),
    ],
)
def test_error_event_from_literal_bytes(
    error_type: str, kind: type[ProviderError], retryable: bool
) -> None:
    raw = (
        b"event: error\n"
        b'data: {"type":"error","error":{"type":"%s","message":"Something broke"}}\n\n'
        % error_type.encode()
    )
    with pytest.raises(ProviderError) as caught:
        deltas(raw, len(raw))
    assert type(caught.value) is kind
    assert caught.value.retryable is retryable
    assert f"Something broke ({error_type})" in str(caught.value)


def test_malformed_known_event_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        deltas(b"event: content_block_delta\ndata: {oops\n\n", 64)


def provider(server: LLMServer, **kwargs: Any) -> AnthropicProvider:
    options: dict[str, Any] = {"api_key": KEY} | kwargs
    return AnthropicProvider("anthropic", server.url, **options)


def test_streams_exact_text_and_usage(llm_server: LLMServer) -> None:
    result = collect(provider(llm_server), REQUEST)
    assert result.error is None
    # Input: 6 words of system + user; output: 4 (message_start's placeholder 1 is not added).
    assert result.chunks == [*ECHO, Usage(input_tokens=8, output_tokens=4)]


def test_sends_the_messages_api_request(llm_server: LLMServer) -> None:
    collect(provider(llm_server, headers={"anthropic-beta": "x"}), REQUEST)
    [sent] = llm_server.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "x"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": "claude-test",
        "max_tokens": 100,
        "system": "Be brief.\n\nAnswer in English.",
        "messages": [{"role": "user", "content": "hello there world"}],
        "stream": True,
        "temperature": 0.3,
        "stop_sequences": ["END"],  # OpenAI's `stop`, renamed; `seed` is not sent
    }


def test_slow_trickle(llm_server: LLMServer) -> None:
    llm_server.set_scenario("claude-test", Scenario(tokens=["a", "b", "c"], token_delay=0.1))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == ["a", "b", "c", Usage(8, 3)]
    assert result.times[2] - result.times[0] >= 0.15


@pytest.mark.parametrize(
    ("scenario", "kind", "status", "retryable"),
    [
        (Scenario(fail_statuses=[429], retry_after=3), RateLimitError, 429, True),
        (Scenario(fail_statuses=[529]), HTTPStatusError, 529, True),
        (Scenario(fail_statuses=[500]), HTTPStatusError, 500, True),
        (Scenario(require_key="the-right-key"), AuthError, 401, False),
    ],
    ids=["rate-limit", "overloaded", "500", "wrong-key"],
)
def test_error_status(
    llm_server: LLMServer,
    scenario: Scenario,
    kind: type[ProviderError],
    status: int,
    retryable: bool,
) -> None:
    llm_server.set_scenario("claude-test", scenario)
    result = collect(provider(llm_server), REQUEST)
    assert type(result.error) is kind
    assert (result.error.status, result.error.retryable) == (status, retryable)
    assert KEY not in str(result.error)
    assert llm_server.request_count("claude-test") == 1


def test_rate_limit_carries_retry_after(llm_server: LLMServer) -> None:
    llm_server.set_scenario("claude-test", Scenario(fail_statuses=[429], retry_after=3))
    error = collect(provider(llm_server), REQUEST).error
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 3.0


def test_missing_key_fails_before_any_request(
    llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PD_TEST_ANTHROPIC_KEY", raising=False)
    keyless = provider(llm_server, api_key=None, api_key_env="PD_TEST_ANTHROPIC_KEY")
    result = collect(keyless, REQUEST)
    assert type(result.error) is AuthError
    assert "PD_TEST_ANTHROPIC_KEY" in str(result.error)
    assert llm_server.requests == []


def test_error_event_after_tokens(llm_server: LLMServer) -> None:
    error = {"type": "overloaded_error", "message": "Overloaded"}
    llm_server.set_scenario("claude-test", Scenario(stream_error=error))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == ECHO
    assert type(result.error) is HTTPStatusError
    assert result.error.retryable


def test_dropped_connection(llm_server: LLMServer) -> None:
    llm_server.set_scenario("claude-test", Scenario(drop_after=3))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == ECHO[:3]
    assert type(result.error) is ProviderConnectionError


def test_malformed_event(llm_server: LLMServer) -> None:
    llm_server.set_scenario("claude-test", Scenario(malformed_after=2))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == ECHO[:2]
    assert type(result.error) is ProtocolError


def test_unknown_events_are_ignored(llm_server: LLMServer) -> None:
    llm_server.set_scenario("claude-test", Scenario(quirks=True))
    assert collect(provider(llm_server), REQUEST).chunks == [*ECHO, Usage(8, 4)]


def test_no_usage_is_estimated(llm_server: LLMServer) -> None:
    llm_server.set_scenario("claude-test", Scenario(include_usage=False))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == [*ECHO, final_usage(REQUEST, "Echo: hello there world", None, None)]
    assert result.chunks[-1].estimated  # type: ignore[union-attr]


def test_read_timeout(llm_server: LLMServer) -> None:
    llm_server.set_scenario("claude-test", Scenario(tokens=["a"], first_token_delay=1.0))
    result = collect(provider(llm_server, timeouts=Timeouts(read=0.1)), REQUEST)
    assert result.chunks == []
    assert type(result.error) is ProviderTimeout


# Thinking, text and a tool call as the Messages API streams them (extended thinking on).
TOOL_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant",'
    b'"content":[],"model":"claude-test","usage":{"input_tokens":400,"output_tokens":1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking",'
    b'"thinking":"","signature":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta",'
    b'"thinking":"I need the weather."}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta",'
    b'"signature":"EqQBCgIYAhIM1gbcDa9G"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta",'
    b'"text":"Let me check."}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use",'
    b'"id":"toolu_01","name":"get_weather","input":{}}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
    b'"partial_json":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
    b'"partial_json":"{\\"city\\": \\"Par"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
    b'"partial_json":"is\\"}"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":2}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
    b'"usage":{"output_tokens":89}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def test_decodes_thinking_and_a_tool_call_from_literal_bytes() -> None:
    got = [d for d in deltas(TOOL_STREAM, 5) if d != StreamDelta()]
    assert got == [
        StreamDelta(input_tokens=400),
        StreamDelta(thinking="I need the weather."),
        StreamDelta(signature="EqQBCgIYAhIM1gbcDa9G"),
        StreamDelta(text="Let me check."),
        StreamDelta(tool_calls=(ToolCallDelta(2, "toolu_01", "get_weather"),)),
        StreamDelta(tool_calls=(ToolCallDelta(2, arguments=""),)),
        StreamDelta(tool_calls=(ToolCallDelta(2, arguments='{"city": "Par'),)),
        StreamDelta(tool_calls=(ToolCallDelta(2, arguments='is"}'),)),
        StreamDelta(output_tokens=89),
        StreamDelta(done=True),
    ]


def test_thinking_streams_as_thinking_chunks_with_its_signature(llm_server: LLMServer) -> None:
    llm_server.set_scenario("claude-test", Scenario(thinking=["Short ", "answer."]))
    chunks = collect(provider(llm_server), REQUEST).chunks
    signature = thinking_signature("Short answer.")
    assert chunks == [
        Thinking("Short "),
        Thinking("answer."),
        Thinking("", signature=signature),
        *ECHO,
        Usage(8, 6),
    ]


def test_thinking_with_a_forced_tool_is_refused_before_sending(llm_server: LLMServer) -> None:
    """The Messages API allows thinking only with tool_choice auto or none: said up front."""
    from promptdeck.model.call import stream_call
    from promptdeck.model.http import run_with_client
    from promptdeck.model.pricing import PriceTable
    from promptdeck.model.types import Message, Tool

    provider = AnthropicProvider("anthropic", llm_server.url, api_key="k")
    tool = Tool("get_order", "", {"type": "object", "properties": {}})
    thinking = {"type": "enabled", "budget_tokens": 1024}
    for choice, refused in [("required", True), ("auto", False)]:
        params = {"thinking": thinking, "tool_choice": choice}
        request = ChatRequest("claude", (Message("user", "hi"),), params, (tool,))
        result = run_with_client(
            stream_call(provider, request, model_ref="anthropic/claude", prices=PriceTable())
        )
        assert (result.error is not None) == refused
        if refused:
            assert "use tool_choice auto, or turn thinking off" in (result.error or "")
    assert [r.body.get("tool_choice") for r in llm_server.requests] == [{"type": "auto"}]
