"""Bad inputs around tools, schemas and images: each gets a clear message in its place (its
cell, its step, its file and line) and the rest of the run completes. A real CLI run against
the local server, and the embedded model for an image it cannot read."""

from __future__ import annotations

import json
from pathlib import Path

from tests.llm_server import LLMServer, Scenario
from tests.test_cli import cli, read_db, run_id_of

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
TOOL = """
tools:
  - name: get_order
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
    mock: '{{ MOCK }}'
max_tool_rounds: 2
"""
VARIANTS = {
    # a healthy variant: its cells must all finish whatever happens to the others
    "bad/plain": "model: oa/plain\nuser: 'Q {{ input }}'\n",
    # the model sends arguments that are not JSON: the step says so, the model is told, and
    # the turn goes on to an answer
    "bad/broken_args": "model: oa/broken\nuser: 'Q {{ input }}'\n"
    + TOOL.replace("{{ MOCK }}", "ok {{ args.order_id }}"),
    # the mock template fails on this row: the cell's error names the variant and the tool
    "bad/bad_mock": "model: oa/tooly\nuser: 'Q {{ input }}'\n"
    + TOOL.replace("{{ MOCK }}", "{{ args.order_id.nope() }}"),
    # the model never stops calling tools: the cell's error names max_tool_rounds
    "bad/loop": "model: oa/looper\nuser: 'Q {{ input }}'\n"
    + TOOL.replace("{{ MOCK }}", "still nothing"),
    # an image on models that read text only: the server refuses it, the embedded model too
    "bad/image_http": "model: oa/blind\nuser: 'Q {{ input }}'\n",
    "bad/image_local": "model: local/smollm2\nuser: 'Q {{ input }}'\n",
}


def make_workspace(root: Path, server: LLMServer) -> Path:
    for name, text in VARIANTS.items():
        path = root / "prompts" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    data = root / "datasets"
    (data / "img").mkdir(parents=True)
    (data / "img" / "receipt.png").write_bytes(PNG)
    rows = ["id,input,image", "r0,q0,img/receipt.png", "r1,q1,img/receipt.png"]
    (data / "bad.csv").write_text("\n".join(rows) + "\n")
    variants = ", ".join(VARIANTS)
    (data / "bad.suite.yaml").write_text(f"dataset: bad.csv\nvariants: [{variants}]\n")
    (root / "providers.yaml").write_text(
        f"providers:\n  oa: {{kind: openai, base_url: '{server.openai_url}', free: true}}\n"
    )
    return root


def test_every_bad_input_fails_only_its_own_place_and_says_why(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    llm_server.set_scenario("broken", Scenario(tool_calls=[("get_order", '{"order_id": ')]))
    llm_server.set_scenario("looper", Scenario(tool_rounds=1000))
    llm_server.set_scenario("blind", Scenario(accepts_images=False))
    # the plain variant sends the image too (the dataset has an image column): its server
    # takes images, so it answers
    root = make_workspace(tmp_path, llm_server)
    done = cli(root, "run", "datasets/bad.suite.yaml")
    assert done.returncode in (0, 1), done.stderr
    run_id = run_id_of(done.stdout)
    rows = read_db(
        root,
        "SELECT row_id, variant, output, error, error_kind, tool_calls_json FROM results "
        "WHERE run_id = ?",
        run_id,
    )
    cells = {(r[0], r[1]): r[2:] for r in rows}
    assert len(cells) == 2 * len(VARIANTS)  # every cell finished, failed or not
    for row in ("r0", "r1"):
        output, error, _, _ = cells[(row, "bad/plain")]
        assert error is None and output.startswith("Echo:")

        output, error, _, steps = cells[(row, "bad/broken_args")]
        assert error is None  # the model was told, and answered
        [step] = json.loads(steps)
        assert step["arguments"] == '{"order_id": '  # kept as sent
        assert "the arguments are not JSON" in step["error"]
        assert "the arguments are not JSON" in output  # the server echoes the tool result

        _, error, kind, steps = cells[(row, "bad/bad_mock")]
        assert kind == "template"
        assert "bad/bad_mock: tool get_order: mock template" in error
        assert json.loads(steps)[0]["name"] == "get_order"  # the call is kept

        _, error, kind, steps = cells[(row, "bad/loop")]
        assert kind == "tools"
        assert "still calling tools (get_order) after max_tool_rounds (2) rounds" in error
        assert len(json.loads(steps)) == 2

        _, error, kind, _ = cells[(row, "bad/image_http")]
        assert error is not None and "image" in error.lower()

        _, error, _, _ = cells[(row, "bad/image_local")]
        assert error is not None and "text only" in error and "img/receipt.png" in error

    plain = [r for r in llm_server.requests if r.model == "plain"]
    parts = plain[0].body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_a_broken_tool_declaration_stops_the_suite_before_any_call_naming_file_and_line(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    root = make_workspace(tmp_path, llm_server)
    broken = root / "prompts" / "bad" / "loop.yaml"
    broken.write_text(broken.read_text().replace("  - name: get_order\n", "  - parameters_x: 1\n"))
    done = cli(root, "run", "datasets/bad.suite.yaml")
    assert done.returncode == 2
    assert "loop.yaml, line 5" in done.stderr
    assert len(llm_server.requests) == 0
