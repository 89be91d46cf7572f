"""A CLI eval of prompts with tools, thinking and a schema, end to end: a real
`python -m promptdeck run` subprocess against the local server speaking OpenAI's and
Anthropic's wire formats (streamed tool calls, tool_use blocks, thinking, reasoning_content,
response_format), with the store and the CSV export read back."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.llm_server import LLMServer, Scenario
from tests.test_cli import cli, read_db, run_id_of

ROWS = 6
TOOL = """
tools:
  - name: get_order
    description: Look up an order by its id
    parameters:
      type: object
      properties: {order_id: {type: string}}
      required: [order_id]
    mock: '{"order": "{{ args.order_id }}", "status": "{{ status }}"}'
checks:
  - {type: tool_called, name: get_order, args: {order_id: A1}}
  - {type: tool_args_valid}
"""
SCHEMA = """
output_schema:
  type: object
  properties: {reply: {type: string}, status: {type: string}}
  required: [reply, status]
"""
VARIANTS = {
    "orders/openai_tool": ("oa/tooly", "params: {tool_choice: required}\n" + TOOL),
    "orders/anthropic_tool": ("an/tooly", "params: {tool_choice: required}\n" + TOOL),
    "orders/json": ("oa/jsony", SCHEMA),
}
SUITE = (
    "dataset: orders.csv\nsample: {n: 6, seed: 1}\n"
    "variants: [orders/json, orders/openai_tool, orders/anthropic_tool]\nbaseline: orders/json\n"
    "judge: {model: oa/judge, rubric: Does the reply give the order's real status?}\n"
)


def make_workspace(root: Path, server: LLMServer) -> Path:
    for name, (model, extra) in VARIANTS.items():
        path = root / "prompts" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"model: {model}\nuser: 'Order question {{{{ input }}}}'\n{extra}")
    (root / "datasets").mkdir()
    statuses = ["shipped", "delayed", "delivered"]
    lines = ["id,category,input,status"] + [
        f"r{i},{'xyz'[i % 3]},q{i},{statuses[i % 3]}" for i in range(ROWS)
    ]
    (root / "datasets" / "orders.csv").write_text("\n".join(lines) + "\n")
    (root / "datasets" / "orders.suite.yaml").write_text(SUITE)
    (root / "providers.yaml").write_text(
        "providers:\n"
        f"  oa: {{kind: openai, base_url: '{server.openai_url}', free: true}}\n"
        f"  an: {{kind: anthropic, base_url: '{server.url}', api_key_env: AN_KEY, free: true,\n"
        f"       send_key_to: ['127.0.0.1:{server.port}']}}\n"
    )
    return root


def test_a_cli_eval_with_tools_and_a_schema_stores_and_checks_every_step(
    llm_server: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AN_KEY", "k")
    calls = [("get_order", '{"order_id": "A1"}')]
    llm_server.set_scenario("tooly", Scenario(tool_calls=calls, thinking=["Let", " me", " look."]))
    llm_server.set_scenario("jsony", Scenario(omit_field={"q3": "status", "q5": "status"}))
    root = make_workspace(tmp_path, llm_server)
    done = cli(root, "run", "datasets/orders.suite.yaml")
    assert done.returncode in (0, 1), done.stderr
    run_id = run_id_of(done.stdout)

    rows = read_db(
        root,
        "SELECT row_id, variant, output, error, tool_calls_json, thinking FROM results "
        "WHERE run_id = ? ORDER BY variant, row_id",
        run_id,
    )
    assert len(rows) == 3 * ROWS
    status = {f"r{i}": ["shipped", "delayed", "delivered"][i % 3] for i in range(ROWS)}
    for row_id, variant, output, error, steps_json, thinking in rows:
        assert error is None, (row_id, variant, error)
        if variant == "orders/json":
            assert steps_json is None
            continue
        # each call stored with its parsed arguments and the mock's result...
        steps = json.loads(steps_json)
        mock = f'{{"order": "A1", "status": "{status[row_id]}"}}'
        assert steps == [{"name": "get_order", "arguments": {"order_id": "A1"}, "result": mock}]
        # ... the final answer is built on the mock's text, and thinking is kept apart (the
        # server thinks before each of its two answers: the tool call, then the reply)
        assert status[row_id] in output
        assert thinking == "Let me look.\n\nLet me look."
        assert "look." not in output

    scores = read_db(
        root,
        "SELECT row_id, variant, scorer, passed, reason FROM scores WHERE run_id = ?",
        run_id,
    )
    tool_checks = [s for s in scores if s[2].startswith("check:tool_")]
    assert len(tool_checks) == 2 * 2 * ROWS
    assert all(passed == 1 for *_, passed, _ in tool_checks), tool_checks
    # the schema check fails on exactly the cells whose answer missed a required field
    schema = {s[0]: (s[3], s[4]) for s in scores if s[2] == "check:output_schema"}
    assert {r for r, (passed, _) in schema.items() if not passed} == {"r3", "r5"}
    assert "'status' is a required property" in schema["r3"][1]

    # the judge read each tool call and its result before the final answer
    prompts = read_db(
        root,
        "SELECT variant, prompt_json, value FROM scores WHERE run_id = ? AND scorer = 'judge'",
        run_id,
    )
    assert len(prompts) == 3 * ROWS and all(value is not None for *_, value in prompts)
    for variant, prompt_json, _ in prompts:
        judged = json.loads(prompt_json)["messages"][-1]["content"]
        if variant == "orders/json":
            assert "[Tool calls made while answering]" not in judged
        else:
            assert '1. get_order({"order_id": "A1"}) returned: {"order": "A1"' in judged

    export = cli(root, "report", run_id, "--csv", "cells.csv")
    assert export.returncode == 0, export.stderr
    table = list(csv.DictReader(io.StringIO((root / "cells.csv").read_text())))
    tools_column = {(r["row_id"], r["variant"]): json.loads(r["tool_calls"]) for r in table}
    assert tools_column[("r0", "orders/anthropic_tool")][0]["arguments"] == {"order_id": "A1"}
    assert tools_column[("r0", "orders/json")] == []

    # what went over the wire: the tools, the tool results and the structured output request
    bodies = [r.body for r in llm_server.requests if r.model == "tooly"]
    openai_second = next(b for b in bodies if "tool_choice" in b and b["tool_choice"] == "auto")
    assert openai_second["messages"][-1]["role"] == "tool"
    anthropic = [b for b in bodies if "input_schema" in json.dumps(b.get("tools", []))]
    assert anthropic and anthropic[0]["tool_choice"] == {"type": "any"}
    assert any(
        b["messages"][-1]["content"][0]["type"] == "tool_result"
        for b in anthropic
        if isinstance(b["messages"][-1]["content"], list)
    )
    jsony = [r.body for r in llm_server.requests if r.model == "jsony"]
    assert jsony[0]["response_format"]["type"] == "json_schema"
