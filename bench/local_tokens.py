"""Tokens/s of the embedded model: one stream alone, then three side by side.

Run: .venv/bin/python bench/local_tokens.py [max_tokens]
Decode rate per stream = (output tokens - 1) / (last chunk - first chunk), so prompt
evaluation and model loading are left out; the load time is measured on its own.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.model.local import LocalProvider, default_model_path
from promptdeck.model.types import ChatRequest, Message, Usage

TOPICS = ("a lighthouse keeper", "a lost robot", "a city under the sea")


async def one(provider: LocalProvider, topic: str, seed: int, max_tokens: int) -> float:
    params = {"temperature": 0.8, "seed": seed, "max_tokens": max_tokens}
    request = ChatRequest(
        "smollm2", (Message("user", f"Write a long story about {topic}."),), params
    )
    times: list[float] = []
    usage = Usage(0, 0)
    async for chunk in provider.stream(request):
        if isinstance(chunk, Usage):
            usage = chunk
        else:
            times.append(time.perf_counter())
    return (usage.output_tokens - 1) / (times[-1] - times[0])


async def main(max_tokens: int) -> None:
    provider = LocalProvider(instances=3, threads_per_instance=1)
    await asyncio.gather(*(one(provider, t, 0, 8) for t in TOPICS))  # load the pool first
    alone = await one(provider, TOPICS[0], 1, max_tokens)
    print(f"1 stream:  {alone:5.1f} tokens/s")
    start = time.perf_counter()
    rates = await asyncio.gather(*(one(provider, t, 2, max_tokens) for t in TOPICS))
    each = ", ".join(f"{r:.1f}" for r in rates)
    print(f"3 streams: {each} tokens/s each, {sum(rates):.1f} together")
    print(
        f"           ({time.perf_counter() - start:.2f} s wall for 3 x up to {max_tokens} tokens)"
    )


def load_seconds() -> float:
    from llama_cpp import Llama

    start = time.perf_counter()
    Llama(model_path=str(default_model_path()), n_ctx=2048, n_threads=1, verbose=False)
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"model load: {load_seconds():.2f} s ({default_model_path()})")
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
