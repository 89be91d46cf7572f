"""Latency overhead of PromptDeck's streaming path, against a raw httpx client.

Both read the same local SSE server (tests/llm_server.py, OpenAI wire format) in the
same run. Time to first token (TTFT) is measured from the caller's clock:
  raw        httpx.AsyncClient.stream + the first `data:` line with content
  core       promptdeck.call.stream_call over OpenAIProvider (typed errors, retries,
             usage, cost), first on_text callback
  live       the Playground's path: LiveRun (background thread + loop + lock-protected
             buffers), first text visible to a poller in the calling thread
with 1 and 4 concurrent streams, then the wall time of a 3-column Playground run
against a 1-column one (tokens at a fixed rate: close to 1.0 means truly concurrent).

Usage: .venv/bin/python bench/latency.py [--runs 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.evals.live import LiveRun, plan_columns
from promptdeck.model.call import stream_call
from promptdeck.model.http import run_with_client
from promptdeck.model.openai_compat import OpenAIProvider
from promptdeck.model.pricing import PriceTable
from promptdeck.model.types import ChatRequest, Message
from tests.helpers import server_registry, variant
from tests.llm_server import LLMServer, Scenario

BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "hello there"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


async def raw_ttft(client: httpx.AsyncClient, url: str) -> float:
    start = time.perf_counter()
    async with client.stream("POST", url + "/chat/completions", json=BODY) as response:
        first = None
        async for line in response.aiter_lines():
            if first is None and line.startswith("data:") and '"content"' in line:
                first = time.perf_counter() - start
    assert first is not None
    return first * 1000


async def core_ttft(provider: OpenAIProvider) -> float:
    request = ChatRequest("m", (Message("user", "hello there"),), {})
    start = time.perf_counter()
    first: list[float] = []

    def on_text(_: str) -> None:
        if not first:
            first.append(time.perf_counter() - start)

    await stream_call(provider, request, model_ref="fake/m", prices=PriceTable(), on_text=on_text)
    return first[0] * 1000


def repeat(fn, runs: int, streams: int) -> list[float]:  # type: ignore[no-untyped-def]
    async def main() -> list[float]:
        out: list[float] = []
        for _ in range(runs):
            out.extend(await asyncio.gather(*(fn() for _ in range(streams))))
        return out

    return run_with_client(main())


def live_ttft(server: LLMServer, runs: int, streams: int) -> list[float]:
    registry = server_registry(server)
    variants = [variant(f"b/{i}", "fake/m") for i in range(streams)]
    out = []
    for _ in range(runs):
        plans = plan_columns(variants, {"input": "hello there"})
        start = time.perf_counter()
        run = LiveRun(plans, registry, None).start()
        seen: dict[int, float] = {}
        while len(seen) < streams:
            for i, view in enumerate(run.snapshot()):
                if view.text and i not in seen:
                    seen[i] = (time.perf_counter() - start) * 1000
            time.sleep(0.0002)
        run.wait()
        out.extend(seen.values())
    return out


def live_wall(server: LLMServer, columns: int) -> float:
    registry = server_registry(server)
    plans = plan_columns(
        [variant(f"w/{i}", "fake/rate") for i in range(columns)], {"input": "x"}, registry
    )
    start = time.perf_counter()
    LiveRun(plans, registry, None).start().wait()
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    results = {}
    with LLMServer() as server:
        url = server.openai_url
        provider = OpenAIProvider("fake", url, requires_key=False)
        for streams in (1, 4):

            def raw(streams: int = streams):  # type: ignore[no-untyped-def]
                async def one() -> float:
                    from promptdeck.model.http import get_client

                    return await raw_ttft(get_client(), url)

                return one()

            base = repeat(raw, args.runs, streams)
            core = repeat(lambda: core_ttft(provider), args.runs, streams)
            live = live_ttft(server, args.runs, streams)
            for name, values in (("raw httpx", base), ("core", core), ("live (Playground)", live)):
                results[(streams, name)] = (pct(values, 50), pct(values, 95), len(values))
        server.set_scenario(
            "rate", Scenario(tokens=[f"t{i} " for i in range(50)], token_delay=0.02)
        )
        one, three = live_wall(server, 1), live_wall(server, 3)

    print(f"TTFT against a local SSE server, {args.runs} runs per row")
    print(f"{'streams':>7}  {'path':<18} {'p50 ms':>8} {'p95 ms':>8} {'n':>5}  added p50 vs raw")
    for (streams, name), (p50, p95, n) in results.items():
        added = p50 - results[(streams, "raw httpx")][0]
        ratio = p50 / results[(streams, "raw httpx")][0]
        print(
            f"{streams:>7}  {name:<18} {p50:8.2f} {p95:8.2f} {n:5d}  {added:+.2f} ms ({ratio:.2f}x)"
        )
    print(
        f"\nPlayground wall time, 50 tokens at 20 ms each: 1 column {one:.2f} s, "
        f"3 columns {three:.2f} s, ratio {three / one:.2f}x (3.0x would be sequential)"
    )
    print(
        json.dumps(
            {
                f"{s}x {n}": {"p50": round(v[0], 2), "p95": round(v[1], 2)}
                for (s, n), v in results.items()
            }
        )
    )


if __name__ == "__main__":
    main()
