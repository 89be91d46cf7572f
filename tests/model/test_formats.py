"""Structured output that adapts: the call path asks for `json_schema`, and a server that
refuses it gets `json_object`, then no response_format; what a provider needed is
remembered. Against the test server emulating each refusal (llama-cpp-python's 500,
OpenAI's 400, FastAPI's 422)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from promptdeck.errors import HTTPStatusError
from promptdeck.model.formats import (
    FormatMemory,
    format_level,
    next_level,
    refuses_format,
    with_level,
)
from promptdeck.model.http import run_with_client
from promptdeck.model.policy import CallPolicy
from promptdeck.model.retry import should_retry
from promptdeck.model.types import Message
from promptdeck.scoring.judge import JUDGE_PARAMS, JudgeSpec, response_format, verdict_schema
from promptdeck.scoring.scorers import Graded, pointwise_score
from promptdeck.store.db import Store
from tests.helpers import server_registry
from tests.llm_server import LLMServer, Scenario, asked_format

HI = (Message("user", "hi"),)
SCHEMA_PARAMS = {**JUDGE_PARAMS, "response_format": response_format((1, 5))}
VERDICT = '{"reasoning": "Polite and correct.", "score": 4}'
SPEC = JudgeSpec("fake/judge", "Is it helpful?")


def asked(server: LLMServer, model: str = "judge") -> list[str]:
    return [asked_format(r.body) for r in server.requests if r.model == model]


def test_format_levels_move_only_down() -> None:
    schema_params = dict(SCHEMA_PARAMS)
    assert format_level(schema_params) == "json_schema"
    as_object = with_level(schema_params, "json_object")
    assert as_object["response_format"] == {"type": "json_object", "schema": verdict_schema()}
    assert as_object["temperature"] == 0 and schema_params == SCHEMA_PARAMS  # a copy
    assert "response_format" not in with_level(schema_params, "none")
    assert with_level(as_object, "json_schema") == as_object  # never up
    assert format_level({"response_format": {"type": "json_object"}}) == "json_object"
    assert format_level({"response_format": {"type": "text"}}) is None
    assert format_level({"temperature": 0}) is None
    assert with_level({"temperature": 0}, "none") == {"temperature": 0}
    assert [next_level("json_schema"), next_level("json_object"), next_level("none")] == [
        "json_object",
        "none",
        None,
    ]


@pytest.mark.parametrize(
    ("status", "message", "refused"),
    [
        (500, "response_format type: Input should be 'text' or 'json_object'", True),
        (400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported", True),
        (422, "[{'loc': ['body', 'response_format', 'type']}]", True),
        (400, "json_schema is not supported by this model", True),
        (500, "The server had an error while processing your request", False),
        (503, "response_format: overloaded", False),  # not a refusal: overloaded, retried
        (401, "response_format", False),
        (None, "response_format", False),
    ],
)
def test_what_counts_as_a_refusal(status: int | None, message: str, refused: bool) -> None:
    assert refuses_format(status, message) is refused
    error = HTTPStatusError(message, provider="p", status=status)
    if status is not None and status >= 500:
        # a refusal would be refused again: never retried as is; other 5xx are
        assert should_retry(error, attempt=0, got_first_token=False) is not refused


def test_the_memory_keeps_the_lowest_level_per_provider() -> None:
    memory = FormatMemory()
    memory.lower("a", "json_object")
    memory.lower("a", "json_schema")  # a late answer from before cannot move it up
    memory.lower("b", "none")
    assert (memory.get("a"), memory.get("b"), memory.get("c")) == ("json_object", "none", None)
    assert memory.known() == {"a": "json_object", "b": "none"}


LADDERS = {  # what the server accepts -> what the first call asks, in order
    "json_schema": ["json_schema"],
    "json_object": ["json_schema", "json_object"],
    "none": ["json_schema", "json_object", "none"],
}


@pytest.mark.parametrize("refusal", [500, 400, 422])
@pytest.mark.parametrize("accepts", list(LADDERS))
def test_the_call_path_negotiates_and_remembers(
    llm_server: LLMServer, accepts: str, refusal: int
) -> None:
    llm_server.set_scenario(
        "judge", Scenario(tokens=[VERDICT], accepts=accepts, format_refusal=refusal)
    )
    registry = server_registry(llm_server)
    first = run_with_client(CallPolicy(registry).call("fake/judge", HI, SCHEMA_PARAMS))
    assert first.result.ok and first.result.text == VERDICT
    assert first.result.attempts == 1  # a refused format is not retried as it was
    assert asked(llm_server) == LADDERS[accepts]
    assert first.request is not None and format_level(first.request.params) == (
        None if accepts == "none" else accepts
    )  # Answer.request: what was sent last
    assert registry.formats.known() == ({} if accepts == "json_schema" else {"fake": accepts})

    # A later call, even from a new policy (a new run), asks for what works straight away.
    again = run_with_client(CallPolicy(registry).call("fake/judge", HI, SCHEMA_PARAMS))
    assert again.result.ok
    assert asked(llm_server) == [*LADDERS[accepts], accepts]


def test_concurrent_first_calls_each_find_their_way(llm_server: LLMServer) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=[VERDICT], accepts="none"))
    registry = server_registry(llm_server)
    policy = CallPolicy(registry, concurrency=4)

    async def many() -> list[bool]:
        answers = await asyncio.gather(
            *(
                policy.call("fake/judge", (Message("user", f"q{i}"),), SCHEMA_PARAMS)
                for i in range(8)
            )
        )
        return [a.result.ok for a in answers]

    assert run_with_client(many()) == [True] * 8
    assert registry.formats.get("fake") == "none"
    assert asked(llm_server).count("none") == 8
    assert len(asked(llm_server)) <= 8 + 2 * 4  # at most the first 4 in flight were refused


def test_other_failures_are_not_negotiated(llm_server: LLMServer) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=[VERDICT], fail_statuses=[500, 500, 500]))
    registry = server_registry(llm_server)
    answer = run_with_client(
        CallPolicy(registry, sleep=_no_sleep).call("fake/judge", HI, SCHEMA_PARAMS)
    )
    assert not answer.result.ok and answer.result.attempts == 3  # retried as any 500
    assert asked(llm_server) == ["json_schema"] * 3 and registry.formats.known() == {}


def test_a_request_without_response_format_is_never_touched(llm_server: LLMServer) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=["ok"], accepts="none"))
    answer = run_with_client(CallPolicy(server_registry(llm_server)).call("fake/judge", HI, {}))
    assert answer.result.ok and asked(llm_server) == ["none"]


def test_the_cache_keys_the_request_as_asked(llm_server: LLMServer, tmp_path: Path) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=[VERDICT], accepts="json_object"))
    registry = server_registry(llm_server)
    cache = Store(tmp_path / "s.sqlite")
    first = run_with_client(CallPolicy(registry, cache=cache).call("fake/judge", HI, SCHEMA_PARAMS))
    again = run_with_client(CallPolicy(registry, cache=cache).call("fake/judge", HI, SCHEMA_PARAMS))
    assert (first.cached, again.cached) == (False, True)
    assert len(asked(llm_server)) == 2  # json_schema refused, json_object answered; then cached


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.mark.parametrize(
    ("accepts", "output", "score"),
    [
        ("json_schema", VERDICT, 4.0),
        ("json_object", VERDICT, 4.0),
        ("none", "The reply is polite and answers the question.\n\nScore: 4", 4.0),
        ("none", "Not a verdict at all.", None),  # unscored, never 0
    ],
)
def test_the_judge_scores_on_every_kind_of_server(
    llm_server: LLMServer, accepts: str, output: str, score: float | None
) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=[output], accepts=accepts))
    policy = CallPolicy(server_registry(llm_server))
    graded = Graded("Where is my parcel?")
    result = run_with_client(pointwise_score(policy.call, SPEC, graded, "It is on its way."))
    assert result.value == score
    assert "judge call failed" not in result.reason
    sent: dict[str, Any] = json.loads(result.prompt_json or "{}")["params"]
    assert format_level(sent) == (None if accepts == "none" else accepts)  # audited as sent
