import pytest

from promptdeck.model.pricing import DEFAULT_PRICES, Price, PriceTable, format_cost
from promptdeck.model.types import Usage


def test_known_model_cost_is_exact() -> None:
    table = PriceTable()
    # gpt-4o-mini: $0.15 / $0.60 per million tokens
    assert table.cost("openai/gpt-4o-mini", Usage(1_000_000, 500_000)) == pytest.approx(0.45)


def test_local_models_cost_zero_and_unknown_paid_models_are_unknown() -> None:
    table = PriceTable(free_providers=frozenset({"local", "ollama"}))
    assert table.cost("local/smollm2", Usage(100, 100)) == 0.0
    assert table.cost("ollama/llama3.2", Usage(100, 100)) == 0.0
    assert table.cost("openai/some-new-model", Usage(100, 100)) is None
    assert format_cost(None) == "unknown"


def test_overrides_win() -> None:
    table = PriceTable().with_overrides({"openai/gpt-4o-mini": Price(1.0, 2.0)})
    assert table.cost("openai/gpt-4o-mini", Usage(1_000_000, 1_000_000)) == pytest.approx(3.0)
    assert "openai/gpt-4o-mini" in DEFAULT_PRICES


@pytest.mark.parametrize(
    ("cost", "text"), [(0.0, "$0"), (0.000123, "$0.000123"), (0.5, "$0.5000"), (None, "unknown")]
)
def test_format_cost(cost: float | None, text: str) -> None:
    assert format_cost(cost) == text
