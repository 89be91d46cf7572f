"""The one call policy, against the real-wire test server: what every caller gets."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from promptdeck.model.http import run_with_client
from promptdeck.model.policy import CallPolicy, _RateLimit, request_key
from promptdeck.model.types import ChatRequest, Message
from promptdeck.store.db import Store
from tests.helpers import server_registry
from tests.llm_server import LLMServer, Scenario

HI = (Message("user", "hi"),)


def test_a_cached_answer_is_served_without_a_request(llm_server: LLMServer, tmp_path: Path) -> None:
    policy = CallPolicy(server_registry(llm_server), cache=Store(tmp_path / "s.sqlite"))
    first = run_with_client(policy.call("fake/m", HI, {"temperature": 0}))
    again = run_with_client(policy.call("fake/m", HI, {"temperature": 0}))
    other = run_with_client(policy.call("fake/m", HI, {"temperature": 0}, sample=1))
    assert (first.cached, again.cached, other.cached) == (False, True, False)
    assert again.result.text == first.result.text == "Echo: hi"
    assert llm_server.request_count("m") == 2  # the repeat (sample 1) is its own answer


def test_per_provider_concurrency_bounds_the_calls_in_flight(llm_server: LLMServer) -> None:
    llm_server.set_scenario("slow", Scenario(tokens=["a ", "b "], token_delay=0.1))
    policy = CallPolicy(server_registry(llm_server), concurrency=2)

    async def many() -> None:
        await asyncio.gather(*(policy.call("fake/slow", HI, {}) for _ in range(6)))

    run_with_client(many())
    assert llm_server.max_in_flight == 2
    run_with_client(many())  # a new event loop: new semaphores, same bound
    assert llm_server.max_in_flight == 2


def test_a_bad_model_reference_is_a_failed_call_not_a_crash(llm_server: LLMServer) -> None:
    policy = CallPolicy(server_registry(llm_server))
    answer = run_with_client(policy.call("nope/m", HI, {}, fallback="fake/m"))
    assert answer.fallback_used and answer.result.text == "Echo: hi"
    assert answer.primary_error is not None and "unknown provider 'nope'" in answer.primary_error
    bad = run_with_client(policy.call("no-slash", HI, {}))
    assert bad.request is None and bad.result.error_kind == "config"


def test_the_cache_key_is_the_whole_request() -> None:
    base = ChatRequest("m", HI, {"temperature": 0})
    assert request_key("fake/m", base) == request_key(
        "fake/m", ChatRequest("m", HI, {"temperature": 0})
    )
    assert request_key("fake/m", base) != request_key("other/m", base)
    assert request_key("fake/m", base) != request_key("fake/m", ChatRequest("m", HI, {}))
    assert request_key("fake/m", base, 2).endswith("#2")


def test_requests_per_minute_spaces_the_starts() -> None:
    async def main() -> list[float]:
        limit, starts = _RateLimit(rpm=600), []  # one start per 100 ms

        async def start() -> None:
            await limit.wait()
            starts.append(time.monotonic())

        await asyncio.gather(*(start() for _ in range(4)))
        return sorted(starts)

    starts = asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 3 and min(gaps) >= 0.1 - 0.005
