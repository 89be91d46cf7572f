import math
from collections.abc import AsyncGenerator

import pytest

from promptdeck.errors import HTTPStatusError
from promptdeck.model.anthropic import AnthropicProvider
from promptdeck.model.call import confidence, stream_call
from promptdeck.model.http import run_with_client
from promptdeck.model.openai_compat import OpenAIProvider
from promptdeck.model.pricing import Price, PriceTable
from promptdeck.model.types import CallResult, ChatRequest, Chunk, Message, TokenLogprobs, Usage
from tests.llm_server import LLMServer, Scenario

REQUEST = ChatRequest("m", (Message("user", "hello there"),), {"max_tokens": 50})
LOGPROBS = ChatRequest("m", REQUEST.messages, {"max_tokens": 50, "logprobs": True})
PRICES = PriceTable({"fake/m": Price(1.0, 2.0)})


def call(server: LLMServer, **kwargs: object):  # type: ignore[no-untyped-def]
    provider = OpenAIProvider("fake", server.openai_url, requires_key=False)
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    chunks: list[str] = []
    request = kwargs.pop("request", REQUEST)
    result = run_with_client(
        stream_call(
            provider,
            request,
            model_ref="fake/m",
            prices=PRICES,
            on_text=chunks.append,
            sleep=no_sleep,
            **kwargs,
        )  # type: ignore[arg-type]
    )
    return result, chunks, sleeps


def test_measures_a_normal_stream(llm_server: LLMServer) -> None:
    result, chunks, sleeps = call(llm_server)
    assert result.ok and result.text == "".join(chunks) == "Echo: hello there"
    assert result.usage is not None and not result.usage.estimated
    assert result.ttft_ms is not None and 0 < result.ttft_ms <= result.latency_ms
    expected = (result.usage.input_tokens * 1.0 + result.usage.output_tokens * 2.0) / 1e6
    assert result.cost_usd == expected
    assert (result.attempts, sleeps) == (1, [])
    assert result.confidence is None  # no log-probs asked for, none given


def test_retries_429_after_the_servers_retry_after(llm_server: LLMServer) -> None:
    llm_server.set_scenario("m", Scenario(fail_statuses=[429, 503], retry_after=1.25))
    result, _, sleeps = call(llm_server)
    assert result.ok and result.text == "Echo: hello there"
    assert result.attempts == 3 and llm_server.request_count("m") == 3
    assert sleeps[0] == 1.25  # 429 with retry-after; then jittered backoff for the 503
    assert 1.0 * 0.75 <= sleeps[1] <= 1.0 * 1.25  # second retry: 0.5 s doubled, ±25%


def test_gives_up_after_the_retry_budget(llm_server: LLMServer) -> None:
    llm_server.set_scenario("m", Scenario(fail_statuses=[500] * 10))
    result, chunks, _ = call(llm_server, max_retries=2)
    assert not result.ok and result.error_kind == "http_status"
    assert "HTTP 500" in (result.error or "")
    assert llm_server.request_count("m") == 3 and chunks == []


def test_never_retries_quota_or_auth(llm_server: LLMServer) -> None:
    for status, kind in ((401, "auth"), (429, "quota")):
        llm_server.reset()
        body = (
            {
                "error": {
                    "message": "You exceeded your current quota",
                    "type": "x",
                    "code": "insufficient_quota",
                }
            }
            if kind == "quota"
            else None
        )
        llm_server.set_scenario("m", Scenario(fail_statuses=[status], error_body=body))
        result, _, sleeps = call(llm_server)
        assert result.error_kind == kind and sleeps == []
        assert llm_server.request_count("m") == 1


def test_keeps_partial_text_when_the_stream_drops(llm_server: LLMServer) -> None:
    llm_server.set_scenario("m", Scenario(tokens=["one ", "two ", "three"], drop_after=2))
    result, chunks, sleeps = call(llm_server)
    assert result.text == "one two " and chunks == ["one ", "two "]
    assert result.error_kind == "connection" and sleeps == []  # no retry after the first token
    assert llm_server.request_count("m") == 1
    assert result.usage is not None and result.usage.estimated


def test_confidence_is_the_geometric_mean_token_probability(llm_server: LLMServer) -> None:
    result, chunks, _ = call(llm_server, request=LOGPROBS)
    # "Echo:", " hello", " there": the server's log-probs 0, -0.1, -0.2; mean -0.1.
    assert result.ok and chunks == ["Echo:", " hello", " there"]  # no log-probs as text
    assert result.text == "Echo: hello there"
    assert result.confidence == pytest.approx(math.exp(-0.1), rel=1e-12)
    assert result.confidence == pytest.approx(0.9048374180359595, rel=1e-12)


def test_confidence_from_scenario_values(llm_server: LLMServer) -> None:
    values = [-0.5, -1.5, -0.25, -1.75]  # mean -1.0
    llm_server.set_scenario("m", Scenario(tokens=["a", "b", "c", "d"], logprobs=values))
    result, _, _ = call(llm_server, request=LOGPROBS)
    assert result.text == "abcd"
    assert result.confidence == pytest.approx(math.exp(-1.0), rel=1e-12)


def test_confidence_counts_only_the_attempt_that_answered(llm_server: LLMServer) -> None:
    llm_server.set_scenario("m", Scenario(fail_statuses=[503]))
    result, _, sleeps = call(llm_server, request=LOGPROBS)
    assert result.attempts == 2 and len(sleeps) == 1
    assert result.confidence == pytest.approx(math.exp(-0.1), rel=1e-12)


def test_no_confidence_from_anthropic(llm_server: LLMServer) -> None:
    # The Messages API has no log-probs: the param is not sent, the call has no confidence.
    anthropic = AnthropicProvider("claude", llm_server.url, api_key="k")
    result = run_with_client(stream_call(anthropic, LOGPROBS, model_ref="claude/m", prices=PRICES))
    assert result.ok and result.text == "Echo: hello there"
    assert result.confidence is None
    assert "logprobs" not in llm_server.requests[0].body


def test_logprobs_before_a_retry_are_dropped() -> None:
    # A provider that sends log-probs, then fails before any text: the retry starts afresh.
    class Flaky:
        name = "flaky"
        calls = 0

        async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
            self.calls += 1
            if self.calls == 1:
                yield TokenLogprobs((-9.0,))
                raise HTTPStatusError("HTTP 503", provider="flaky", status=503)
            yield "ok"
            yield TokenLogprobs((-0.5, -1.5))
            yield Usage(1, 2)

    async def no_sleep(seconds: float) -> None:
        pass

    result = run_with_client(
        stream_call(Flaky(), LOGPROBS, model_ref="flaky/m", prices=PRICES, sleep=no_sleep)
    )
    assert result.ok and result.attempts == 2 and result.text == "ok"
    assert result.confidence == pytest.approx(math.exp(-1.0), rel=1e-12)


def test_confidence_helper() -> None:
    assert confidence([]) is None
    assert confidence([0.0, 0.0]) == 1.0
    assert confidence([-math.inf, -0.1]) == 0.0  # a token the model ruled out
    assert confidence([-math.log(2)] * 3) == pytest.approx(0.5, rel=1e-12)


def test_call_result_keeps_its_positional_fields() -> None:
    result = CallResult("p/m", "hi", Usage(1, 1), 5.0, 9.0, 0.0, 2, "boom", "connection", 0.5)
    assert (result.attempts, result.error, result.error_kind) == (2, "boom", "connection")
    assert result.confidence == 0.5
    assert CallResult("p/m", "hi", None, None, 9.0, None).confidence is None
