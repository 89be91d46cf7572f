"""A variant's tools, output schema and tool settings: loaded strictly, mocks rendered in the
sandbox, every mistake named with its file, line and field."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from promptdeck.errors import PromptFileError, TemplateError
from promptdeck.evals.plan import EvalPlan, estimate, variant_snapshot
from promptdeck.evals.suite import Suite
from promptdeck.evals.turn import run_tool
from promptdeck.model.pricing import Price, PriceTable
from promptdeck.model.types import ToolCall
from promptdeck.workspace.datasets import Case, Dataset
from promptdeck.workspace.prompts import PromptVariant, load_variant, render_messages

TOOL_VARIANT = """\
model: local/smollm2
params: {tool_choice: get_order}
user: '{{ input }}'
tools:
  - name: get_order
    description: Look up an order
    parameters:
      type: object
      properties: {order_id: {type: string}}
      required: [order_id]
    mock: '{"status": "{{ status }}", "id": "{{ args.order_id }}"}'
output_schema:
  type: object
  properties: {reply: {type: string}}
  required: [reply]
max_tool_rounds: 3
"""


def load(tmp_path: Path, text: str) -> PromptVariant:
    path = tmp_path / "orders" / "lookup.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return load_variant(path, tmp_path)


def test_a_variant_with_tools_loads_and_asks_for_its_schema(tmp_path: Path) -> None:
    variant = load(tmp_path, TOOL_VARIANT)
    assert [t.name for t in variant.tools] == ["get_order"]
    assert variant.max_tool_rounds == 3
    # a tool's name as tool_choice becomes OpenAI's spelling, which every provider translates
    assert variant.params["tool_choice"] == {"type": "function", "function": {"name": "get_order"}}
    sent = variant.request_params["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"]["required"] == ["reply"]
    # the schema is checked on every answer, as a check of its own name
    assert [c.label for c in variant.checks] == ["output_schema"]


BAD_SETTINGS = [
    # (replace this, with this, line, field, the message says)
    ("  - name: get_order\n    description", "  - description", 5, "tools[0].name",
     "every tool needs a name"),
    ("  - name: get_order\n", "  - name: get order\n", 5, "tools[0].name", "not a tool name"),
    ("      type: object\n", "      type: objekt\n", 8, "tools[0].parameters.type",
     "not a valid JSON schema"),
    ("  type: object\n  properties: {reply", "  type: 5\n  properties: {reply", 13,
     "output_schema.type", "not a valid JSON schema"),
    ("    mock: '{\"status\"", "    mock: '{% if %}{\"status\"", 11, "tools[0].mock",
     "template syntax error"),
    ("{tool_choice: get_order}", "{tool_choice: get_ordr}", 2, "params.tool_choice",
     "names no tool"),
    ("max_tool_rounds: 3", "max_tool_rounds: 0", 16, "max_tool_rounds", "from 1 to 50"),
    ("{tool_choice: get_order}", "{response_format: {type: json_object}}", 2,
     "params.response_format", "not both"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "line", "field", "says"), BAD_SETTINGS)
def test_a_bad_tool_setting_names_its_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str, says: str
) -> None:
    assert old in TOOL_VARIANT
    with pytest.raises(PromptFileError) as caught:
        load(tmp_path, TOOL_VARIANT.replace(old, new, 1))
    assert caught.value.field == field
    assert caught.value.line == line
    assert says in str(caught.value)


def test_mocks_see_the_row_and_the_arguments_and_bad_arguments_are_answered(
    tmp_path: Path,
) -> None:
    variant = load(tmp_path, TOOL_VARIANT)
    row = {"input": "where is it?", "status": "shipped"}
    good = run_tool(variant, ToolCall("c1", "get_order", '{"order_id": "A1"}'), row, 1)
    assert good.error is None
    assert good.arguments == {"order_id": "A1"}
    assert good.result == '{"status": "shipped", "id": "A1"}'
    broken = run_tool(variant, ToolCall("c2", "get_order", '{"order_id": '), row, 1)
    assert broken.error is not None and "not JSON" in broken.error
    assert broken.result.startswith("Error: ")  # what the model is told, so it can retry
    wrong = run_tool(variant, ToolCall("c3", "get_order", '{"id": 5}'), row, 1)
    assert wrong.error is not None and "'order_id' is a required property" in wrong.error
    unknown = run_tool(variant, ToolCall("c4", "cancel", "{}"), row, 1)
    assert unknown.error == "there is no tool named 'cancel' (declared: get_order)"


def test_a_mock_that_fails_is_a_template_error_naming_the_tool(tmp_path: Path) -> None:
    variant = load(tmp_path, TOOL_VARIANT.replace("{{ status }}", "{{ missing }}"))
    with pytest.raises(TemplateError, match="orders/lookup: tool get_order: mock template"):
        run_tool(variant, ToolCall("c1", "get_order", '{"order_id": "A1"}'), {"input": "x"}, 1)


def test_a_row_conversation_goes_before_the_variant_s_own_message(tmp_path: Path) -> None:
    variant = load(tmp_path, "model: local/smollm2\nsystem: Be kind.\nuser: '{{ input }}'\n")
    history = '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]'
    messages = render_messages(variant, {"input": "and now?", "messages": history})
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be kind."),
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "and now?"),
    ]
    with pytest.raises(TemplateError, match="messages column is not JSON"):
        render_messages(variant, {"input": "x", "messages": "[{oops"})
    with pytest.raises(TemplateError, match=r"messages\[0\] must be"):
        render_messages(variant, {"input": "x", "messages": '[{"role": "tool", "content": "x"}]'})


def test_a_run_snapshot_keeps_tools_and_mocks_so_a_changed_mock_is_a_new_plan(
    tmp_path: Path,
) -> None:
    plain = variant_snapshot(load(tmp_path, "model: local/smollm2\nuser: '{{ input }}'\n"))
    assert "tools" not in plain and "output_schema" not in plain  # old fingerprints unchanged
    snapshot = variant_snapshot(load(tmp_path, TOOL_VARIANT))
    assert snapshot["tools"][0]["mock"] == '{"status": "{{ status }}", "id": "{{ args.order_id }}"}'
    assert snapshot["max_tool_rounds"] == 3
    assert snapshot["output_schema"]["required"] == ["reply"]
    changed = variant_snapshot(load(tmp_path, TOOL_VARIANT.replace("{{ status }}", "late")))
    assert changed != snapshot


def test_the_plan_counts_every_tool_round_in_its_calls_and_cost_bound(tmp_path: Path) -> None:
    lookup = load(tmp_path, TOOL_VARIANT.replace("{tool_choice: get_order}", "{max_tokens: 100}"))
    plain = replace(lookup, name="orders/plain", tools=(), output_schema=None, checks=())
    cases = (Case("r1", {"input": "where is A1?", "status": "shipped"}),)
    suite = Suite(None, tmp_path / "d.csv", ("orders/lookup", "orders/plain"))
    plan = EvalPlan(
        suite, Dataset("d", tmp_path / "d.csv", ("input",), cases), cases, (lookup, plain)
    )
    prices = PriceTable({"local/smollm2": Price(1.0, 2.0)})
    est = estimate(plan, prices)
    # max_tool_rounds 3: up to 4 calls for the tool variant's answer, 1 for the plain one
    assert (est.answers, est.calls) == (2, 5)
    assert est.tool_results_uncounted
    prompt = 3  # "where is A1?" is about 3 tokens
    # each round reads the prompt and what every earlier round wrote (100 tokens each)
    tool_cost = sum((prompt + 100 * r) * 1.0 + 100 * 2.0 for r in range(4)) / 1e6
    assert est.cost_usd == pytest.approx(tool_cost + (prompt * 1.0 + 100 * 2.0) / 1e6)
