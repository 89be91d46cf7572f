from promptdeck.call import stream_call
from promptdeck.pricing import Price, PriceTable
from promptdeck.providers.base import ChatRequest, Message
from promptdeck.providers.http import run_with_client
from promptdeck.providers.openai_compat import OpenAIProvider
from tests.llm_server import LLMServer, Scenario

REQUEST = ChatRequest("m", (Message("user", "hello there"),), {"max_tokens": 50})
PRICES = PriceTable({"fake/m": Price(1.0, 2.0)})


def call(server: LLMServer, **kwargs: object):  # type: ignore[no-untyped-def]
    provider = OpenAIProvider("fake", server.openai_url, requires_key=False)
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    chunks: list[str] = []
    result = run_with_client(
        stream_call(
            provider,
            REQUEST,
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
