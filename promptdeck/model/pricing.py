"""What a call cost, in USD, from a price table (USD per million input / output tokens).

Prices are the vendors' public list prices as of 2025; override or extend them under
`prices:` in providers.yaml. Models that run on your own machine cost 0. A paid model
that is not in the table costs None ("unknown"), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from promptdeck.model.types import Usage


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float


def _p(i: float, o: float) -> Price:
    return Price(i, o)


DEFAULT_PRICES: dict[str, Price] = {
    "openai/gpt-4o": _p(2.50, 10.00),
    "openai/gpt-4o-mini": _p(0.15, 0.60),
    "openai/gpt-4.1": _p(2.00, 8.00),
    "openai/gpt-4.1-mini": _p(0.40, 1.60),
    "openai/gpt-4.1-nano": _p(0.10, 0.40),
    "openai/o3-mini": _p(1.10, 4.40),
    "openai/o4-mini": _p(1.10, 4.40),
    "openai/gpt-5": _p(1.25, 10.00),
    "openai/gpt-5-mini": _p(0.25, 2.00),
    "openai/gpt-5-nano": _p(0.05, 0.40),
    "anthropic/claude-3-5-haiku-latest": _p(0.80, 4.00),
    "anthropic/claude-3-haiku-20240307": _p(0.25, 1.25),
    "anthropic/claude-3-5-sonnet-latest": _p(3.00, 15.00),
    "anthropic/claude-3-7-sonnet-latest": _p(3.00, 15.00),
    "anthropic/claude-sonnet-4-0": _p(3.00, 15.00),
    "anthropic/claude-opus-4-0": _p(15.00, 75.00),
    "gemini/gemini-2.0-flash": _p(0.10, 0.40),
    "gemini/gemini-2.5-flash": _p(0.30, 2.50),
    "gemini/gemini-2.5-pro": _p(1.25, 10.00),
    "groq/llama-3.1-8b-instant": _p(0.05, 0.08),
    "groq/llama-3.3-70b-versatile": _p(0.59, 0.79),
}


class PriceTable:
    """Looks up a model reference; `free_providers` run on the user's own hardware."""

    def __init__(
        self,
        prices: Mapping[str, Price] | None = None,
        free_providers: frozenset[str] = frozenset(),
    ) -> None:
        self._prices = dict(DEFAULT_PRICES if prices is None else prices)
        self._free = free_providers

    def with_overrides(self, overrides: Mapping[str, Price]) -> PriceTable:
        return PriceTable({**self._prices, **overrides}, self._free)

    def price(self, model_ref: str) -> Price | None:
        provider = model_ref.split("/", 1)[0]
        if provider in self._free:
            return Price(0.0, 0.0)
        return self._prices.get(model_ref)

    def cost(self, model_ref: str, usage: Usage) -> float | None:
        price = self.price(model_ref)
        if price is None:
            return None
        return (
            usage.input_tokens * price.input_per_mtok + usage.output_tokens * price.output_per_mtok
        ) / 1_000_000


def format_cost(cost: float | None) -> str:
    if cost is None:
        return "unknown"
    if cost == 0:
        return "$0"
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"
