"""OpenAIProvider against a real local server that speaks the wire format byte for byte."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from promptdeck.errors import (
    AuthError,
    HTTPStatusError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    QuotaError,
    RateLimitError,
)
from promptdeck.model.http import (
    StreamDelta,
    close_client,
    get_client,
    run_with_client,
)
from promptdeck.model.openai_compat import AzureProvider, OpenAIProvider, parse_chunk
from promptdeck.model.sse import SSEDecoder
from promptdeck.model.types import (
    ChatRequest,
    Message,
    Timeouts,
    TokenLogprobs,
    ToolCallDelta,
    Usage,
    estimate_usage,
)
from tests.llm_server import QUOTA_ERROR, LLMServer, Scenario, collect, server_logprob

KEY = "sk-test-0123456789"
REQUEST = ChatRequest(
    model="gpt-test",
    messages=(Message("system", "Be brief."), Message("user", "hello there world")),
    params={"temperature": 0.2},
)
ECHO = ["Echo:", " hello", " there", " world"]
USAGE = Usage(input_tokens=5, output_tokens=4)  # the server counts words


def provider(server: LLMServer, **kwargs: Any) -> OpenAIProvider:
    options: dict[str, Any] = {"api_key": KEY} | kwargs
    return OpenAIProvider("openai", server.openai_url, **options)


def test_streams_exact_text_then_usage(llm_server: LLMServer) -> None:
    result = collect(provider(llm_server), REQUEST)
    assert result.error is None
    assert result.chunks == [*ECHO, USAGE]


def test_sends_the_openai_request(llm_server: LLMServer) -> None:
    params = {
        "temperature": 0.2,
        "max_tokens": 3,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "seed": 7,
        "response_format": {"type": "json_object"},
        "logit_bias": None,  # None means "not set": it is not sent
    }
    request = ChatRequest("gpt-test", REQUEST.messages, params)
    result = collect(provider(llm_server, headers={"X-Team": "growth"}), request)
    assert result.chunks == [*ECHO[:3], Usage(5, 3)]
    [sent] = llm_server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-team"] == "growth"
    assert sent.body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there world"},
        ],
        "temperature": 0.2,
        "max_tokens": 3,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "seed": 7,
        "response_format": {"type": "json_object"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_slow_trickle_arrives_chunk_by_chunk(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(tokens=["a", "b", "c", "d"], token_delay=0.1))
    result = collect(provider(llm_server, timeouts=Timeouts(read=2.0)), REQUEST)
    assert result.chunks == ["a", "b", "c", "d", Usage(5, 4)]
    gaps = [
        later - earlier for earlier, later in zip(result.times, result.times[1:4], strict=False)
    ]
    assert all(gap >= 0.07 for gap in gaps), gaps  # streamed, not buffered to the end


@pytest.mark.parametrize(
    ("scenario", "kind", "status", "retryable"),
    [
        (Scenario(fail_statuses=[429], retry_after=1.5), RateLimitError, 429, True),
        (Scenario(fail_statuses=[429], error_body=QUOTA_ERROR), QuotaError, 429, False),
        (Scenario(fail_statuses=[500]), HTTPStatusError, 500, True),
        (Scenario(fail_statuses=[503]), HTTPStatusError, 503, True),
        (Scenario(fail_statuses=[400]), HTTPStatusError, 400, False),
        (Scenario(require_key="another-key"), AuthError, 401, False),
    ],
    ids=["rate-limit", "quota", "500", "503", "400", "wrong-key"],
)
def test_error_status_becomes_typed_error_without_retry(
    llm_server: LLMServer,
    scenario: Scenario,
    kind: type[ProviderError],
    status: int,
    retryable: bool,
) -> None:
    llm_server.set_scenario("gpt-test", scenario)
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == []
    assert type(result.error) is kind
    assert (result.error.status, result.error.retryable) == (status, retryable)
    assert result.error.provider == "openai"
    assert llm_server.request_count("gpt-test") == 1  # retrying is the caller's job


def test_rate_limit_carries_retry_after(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(fail_statuses=[429], retry_after=1.5))
    error = collect(provider(llm_server), REQUEST).error
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 1.5


def test_fails_then_succeeds_on_the_callers_retry(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(fail_statuses=[500, 502]))
    first, second, third = (collect(provider(llm_server), REQUEST) for _ in range(3))
    assert [first.error.status, second.error.status] == [500, 502]  # type: ignore[union-attr]
    assert third.chunks == [*ECHO, USAGE]
    assert llm_server.request_count("gpt-test") == 3


def test_key_is_never_in_the_error(llm_server: LLMServer) -> None:
    # The server echoes the key it got in its 401 body, as careless servers do.
    llm_server.set_scenario("gpt-test", Scenario(require_key="the-right-key"))
    error = collect(provider(llm_server), REQUEST).error
    assert isinstance(error, AuthError)
    assert "Incorrect API key: ***" in str(error)
    assert KEY not in str(error) and KEY not in repr(provider(llm_server))


def test_missing_key_fails_before_any_request(
    llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PD_TEST_OPENAI_KEY", raising=False)
    result = collect(provider(llm_server, api_key=None, api_key_env="PD_TEST_OPENAI_KEY"), REQUEST)
    assert type(result.error) is AuthError
    assert "set the environment variable PD_TEST_OPENAI_KEY" in str(result.error)
    assert llm_server.requests == []


@pytest.mark.parametrize("bad", ["sk-test-0123\n", "sk-test 0123", "sk-tést-0123"])
def test_a_key_httpx_would_quote_in_its_error_is_refused_unsent(
    llm_server: LLMServer, bad: str
) -> None:
    result = collect(provider(llm_server, api_key=bad), REQUEST)
    assert type(result.error) is AuthError
    assert "contains a space, a line break or a non-ASCII character" in str(result.error)
    assert bad.strip() not in str(result.error)
    assert llm_server.requests == []


def test_key_is_read_from_the_environment_at_call_time(
    llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyless = provider(llm_server, api_key=None, api_key_env="PD_TEST_OPENAI_KEY")
    monkeypatch.setenv("PD_TEST_OPENAI_KEY", "from-env")
    assert collect(keyless, REQUEST).error is None
    assert llm_server.requests[0].headers["authorization"] == "Bearer from-env"


def test_server_without_keys_gets_no_authorization(llm_server: LLMServer) -> None:
    local = provider(llm_server, api_key=None, requires_key=False)
    assert collect(local, REQUEST).chunks == [*ECHO, USAGE]
    assert "authorization" not in llm_server.requests[0].headers


def test_dropped_connection_after_the_chunks_that_arrived(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(drop_after=2))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == ECHO[:2]
    assert type(result.error) is ProviderConnectionError
    assert "closed the connection before the answer was complete" in str(result.error)


def test_malformed_chunk_is_a_protocol_error_naming_it(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(malformed_after=1))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == ECHO[:1]
    assert type(result.error) is ProtocolError
    assert """not JSON: '{"choices": [{"index": 0, "delta": {"content": "trunc'""" in str(
        result.error
    )


def test_odd_but_legal_chunks_are_tolerated(llm_server: LLMServer) -> None:
    # Comments, choices: [], a choice without delta, a delta without content, unknown
    # fields, a usage-only chunk with usage: null, CRLF line endings.
    llm_server.set_scenario("gpt-test", Scenario(quirks=True))
    assert collect(provider(llm_server), REQUEST).chunks == [*ECHO, USAGE]


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        ({"message": "Overloaded", "type": "server_error", "code": None}, HTTPStatusError, True),
        (
            {"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"},
            RateLimitError,
            True,
        ),
        ({"message": "Out of credit", "type": "insufficient_quota"}, QuotaError, False),
        ({"message": "Content policy", "type": "invalid_request_error"}, ProviderError, False),
    ],
    ids=["server-error", "rate-limit", "quota", "other"],
)
def test_error_inside_the_stream(
    llm_server: LLMServer, error: dict[str, Any], kind: type[ProviderError], retryable: bool
) -> None:
    llm_server.set_scenario("gpt-test", Scenario(stream_error=error))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == ECHO  # what arrived before the error was yielded
    assert type(result.error) is kind
    assert result.error.retryable is retryable
    assert error["message"] in str(result.error)


def test_stream_without_usage_gets_estimated_usage(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(include_usage=False))
    result = collect(provider(llm_server), REQUEST)
    assert result.chunks == [*ECHO, estimate_usage(REQUEST, "Echo: hello there world")]
    assert result.chunks[-1] == Usage(input_tokens=14, output_tokens=6, estimated=True)


def test_read_timeout_shorter_than_the_gap(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(tokens=["a", "b"], token_delay=1.0))
    result = collect(provider(llm_server, timeouts=Timeouts(read=0.1)), REQUEST)
    assert result.chunks == ["a"]
    assert type(result.error) is ProviderTimeout
    assert "sent nothing for 0.1s" in str(result.error)


def test_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = OpenAIProvider("openai", f"http://127.0.0.1:{port}/v1", api_key=KEY)
    result = collect(unreachable, REQUEST)
    assert type(result.error) is ProviderConnectionError
    assert f"could not connect to http://127.0.0.1:{port}" in str(result.error)


def test_streams_run_concurrently(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(tokens=["a", "b", "c"], token_delay=0.1))
    openai = provider(llm_server)

    async def one() -> list[Any]:
        return [chunk async for chunk in openai.stream(REQUEST)]

    async def three() -> list[list[Any]]:
        return list(await asyncio.gather(one(), one(), one()))

    results = run_with_client(three())
    assert results == [["a", "b", "c", Usage(5, 3)]] * 3
    assert llm_server.max_in_flight == 3


def test_one_client_per_event_loop() -> None:
    async def client_twice() -> tuple[object, object, bool]:
        first, second = get_client(), get_client()
        await close_client()
        return first, second, first.is_closed

    first, second, closed = asyncio.run(client_twice())
    other, _, _ = asyncio.run(client_twice())
    assert first is second and closed
    assert other is not first


# --- token log-probabilities -------------------------------------------------------------

# Chunks as OpenAI sends them with "logprobs": true (trimmed ids; one token per chunk, except
# where a server batches two); the role chunk and the finish chunk carry `logprobs: null`.
LOGPROB_STREAM = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    b'"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":{"content":[{"token":'
    b'"Hello","logprob":-0.0009,"bytes":[72,101,108,108,111],"top_logprobs":[]}],'
    b'"refusal":null},"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"content":" there!"},"logprobs":{"content":['
    b'{"token":" there","logprob":-1.25,"bytes":[32,116,104,101,114,101],"top_logprobs":[]},'
    b'{"token":"!","logprob":-2,"bytes":[33],"top_logprobs":[]}],"refusal":null},'
    b'"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}\n\n'
    b"data: [DONE]\n\n"
)


def parse_bytes(data: bytes) -> list[StreamDelta]:
    decoder = SSEDecoder()
    events = [*decoder.feed(data), *decoder.flush()]
    return [parse_chunk(event.data, provider="openai") for event in events]


def test_parses_logprobs_from_the_wire() -> None:
    assert parse_bytes(LOGPROB_STREAM) == [
        StreamDelta(),
        StreamDelta(text="Hello", logprobs=(-0.0009,)),
        StreamDelta(text=" there!", logprobs=(-1.25, -2.0)),
        StreamDelta(),
        StreamDelta(input_tokens=9, output_tokens=3),
        StreamDelta(done=True),
    ]


@pytest.mark.parametrize(
    "choice",
    [
        b'{"index":0,"delta":{"content":"Hi"},"finish_reason":null}',  # no logprobs at all
        b'{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}',
        b'{"index":0,"delta":{"content":"Hi"},"logprobs":{"refusal":null}}',  # no content
        b'{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":null,"refusal":null}}',
        b'{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi"}]}}',
        b'{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"logprob":"-1"}]}}',
        b'{"index":0,"delta":{"content":"Hi"},"logprobs":[]}',
    ],
    ids=["absent", "null", "no-content", "null-content", "no-logprob", "text-logprob", "list"],
)
def test_chunks_without_usable_logprobs_give_none(choice: bytes) -> None:
    assert parse_bytes(b'data: {"choices":[%s]}\n\n' % choice) == [StreamDelta(text="Hi")]


def test_logprobs_of_other_choices_and_rounding_above_zero() -> None:
    data = (
        b'data: {"choices":[{"index":1,"delta":{"content":"B"},'
        b'"logprobs":{"content":[{"token":"B","logprob":-3.0}]}},'
        b'{"index":0,"delta":{"content":"A"},'
        b'"logprobs":{"content":[{"token":"A","logprob":1e-7}]}}]}\n\n'
    )
    # Only the first answer counts (as for its text); p cannot exceed 1.
    assert parse_bytes(data) == [StreamDelta(text="A", logprobs=(0.0,))]


LOGPROB_REQUEST = ChatRequest(REQUEST.model, REQUEST.messages, {"logprobs": True})
SERVER_LOGPROBS = [server_logprob(i) for i in range(4)]


def test_server_default_logprobs() -> None:
    assert SERVER_LOGPROBS == [0.0, -0.1, -0.2, 0.0]


def test_logprobs_are_asked_for_and_streamed_only_when_wanted(llm_server: LLMServer) -> None:
    openai = provider(llm_server)
    plain = ChatRequest(REQUEST.model, REQUEST.messages, {"logprobs": False})
    assert collect(openai, REQUEST).chunks == [*ECHO, USAGE]
    assert collect(openai, plain).chunks == [*ECHO, USAGE]
    result = collect(openai, LOGPROB_REQUEST)
    assert result.error is None
    assert result.chunks == [
        "Echo:",
        TokenLogprobs((0.0,)),
        " hello",
        TokenLogprobs((-0.1,)),
        " there",
        TokenLogprobs((-0.2,)),
        " world",
        TokenLogprobs((0.0,)),
        USAGE,
    ]
    assert result.text == "Echo: hello there world"
    without, without_false, with_logprobs = (r.body for r in llm_server.requests)
    assert "logprobs" not in without and "logprobs" not in without_false  # not even false
    assert with_logprobs["logprobs"] is True
    assert "top_logprobs" not in with_logprobs
    assert {k: v for k, v in with_logprobs.items() if k != "logprobs"} == without_false


def test_scenario_logprobs_override(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(tokens=["a", "b"], logprobs=[-1.5, -0.25]))
    result = collect(provider(llm_server), LOGPROB_REQUEST)
    assert result.chunks == ["a", TokenLogprobs((-1.5,)), "b", TokenLogprobs((-0.25,)), Usage(5, 2)]


def test_logprobs_survive_odd_but_legal_chunks(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(quirks=True))
    chunks = collect(provider(llm_server), LOGPROB_REQUEST).chunks
    values = [v for c in chunks if isinstance(c, TokenLogprobs) for v in c.values]
    assert values == SERVER_LOGPROBS
    assert [c for c in chunks if not isinstance(c, TokenLogprobs)] == [*ECHO, USAGE]


def test_azure_inherits_logprobs(llm_server: LLMServer) -> None:
    azure = AzureProvider("azure", llm_server.url, api_version="2024-10-21", api_key=KEY)
    chunks = collect(azure, LOGPROB_REQUEST).chunks
    assert [c for c in chunks if isinstance(c, TokenLogprobs)] == [
        TokenLogprobs((v,)) for v in SERVER_LOGPROBS
    ]
    assert llm_server.requests[0].body["logprobs"] is True


# --- tool calls and thinking, from literal bytes -------------------------------------------

# Two tool calls as OpenAI streams them: id, type and name first with empty arguments, then
# the arguments in pieces; the usage chunk reports completion_tokens_details.
TOOL_STREAM = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,'
    b'"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}],'
    b'"refusal":null},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
    b'"{\\"ci"}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
    b'"ty\\": \\"Paris\\"}"}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_def","type":"function",'
    b'"function":{"name":"get_time","arguments":""}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]},'
    b'"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
    b'"choices":[],"usage":{"prompt_tokens":80,"completion_tokens":30,"total_tokens":110,'
    b'"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":'
    b'{"reasoning_tokens":0,"accepted_prediction_tokens":0}}}\n\n'
    b"data: [DONE]\n\n"
)


def test_parses_tool_calls_from_the_wire() -> None:
    assert parse_bytes(TOOL_STREAM) == [
        StreamDelta(tool_calls=(ToolCallDelta(0, "call_abc", "get_weather", ""),)),
        StreamDelta(tool_calls=(ToolCallDelta(0, arguments='{"ci'),)),
        StreamDelta(tool_calls=(ToolCallDelta(0, arguments='ty": "Paris"}'),)),
        StreamDelta(tool_calls=(ToolCallDelta(1, "call_def", "get_time", ""),)),
        StreamDelta(tool_calls=(ToolCallDelta(1, arguments="{}"),)),
        StreamDelta(),
        StreamDelta(input_tokens=80, output_tokens=30, reasoning_tokens=0),
        StreamDelta(done=True),
    ]


def test_tool_calls_without_index_or_with_object_arguments() -> None:
    # Some servers send every call whole in one chunk, without `index`, and a few send the
    # arguments as an object rather than JSON text.
    data = (
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":['
        b'{"id":"call_1","type":"function","function":{"name":"a","arguments":{"x":1}}},'
        b'{"id":"call_2","type":"function","function":{"name":"b","arguments":"{}"}}]}}]}\n\n'
    )
    assert parse_bytes(data) == [
        StreamDelta(
            tool_calls=(
                ToolCallDelta(0, "call_1", "a", '{"x": 1}'),
                ToolCallDelta(1, "call_2", "b", "{}"),
            )
        )
    ]


@pytest.mark.parametrize(
    ("delta", "thinking"),
    [
        (b'{"content":null,"reasoning_content":"Let me"}', "Let me"),  # DeepSeek, llama.cpp
        (b'{"role":"assistant","content":"","reasoning":"Hm","reasoning_details":[]}', "Hm"),
        (b'{"content":null,"reasoning_content":"Same","reasoning":"Same"}', "Same"),  # vLLM
        (b'{"content":"Hi","reasoning_content":null}', ""),
    ],
    ids=["reasoning_content", "reasoning", "both", "null"],
)
def test_parses_thinking_apart_from_text(delta: bytes, thinking: str) -> None:
    [parsed] = parse_bytes(b'data: {"choices":[{"index":0,"delta":%s}]}\n\n' % delta)
    assert parsed.thinking == thinking
    assert parsed.text == ("Hi" if not thinking else "")


def test_reasoning_tokens_reach_the_usage(llm_server: LLMServer) -> None:
    llm_server.set_scenario("gpt-test", Scenario(thinking=["Hmm", "."]))
    chunks = collect(provider(llm_server), REQUEST).chunks
    assert chunks[-1] == Usage(input_tokens=5, output_tokens=6, reasoning_tokens=2)
    assert [c for c in chunks if isinstance(c, str)] == ECHO
