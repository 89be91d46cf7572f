"""An eval of 200 cells through the real Runner against the local server, with about 20% of
the requests meeting a seeded fault (tests/llm_server.py `FaultPlan`): every kind of failure
a provider shows, on both the OpenAI and the Anthropic wire format.

What must hold: the run completes; each cell is stored once, as an answer or as an error of
the kind its faults call for; no cell is asked more often than the retry budget allows;
retries wait the `retry-after` a 429 asked for; every stream the server sent in full is a
stored answer; and a resumed run asks for nothing again.
"""

from __future__ import annotations

import itertools
import socket
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from promptdeck.evals.plan import EvalPlan
from promptdeck.evals.runner import Progress, Runner
from promptdeck.evals.suite import Suite
from promptdeck.model.http import run_with_client
from promptdeck.model.registry import Registry
from promptdeck.model.retry import MAX_RETRIES
from promptdeck.model.secrets import Secrets
from promptdeck.store.db import Store
from promptdeck.workspace.datasets import Case, Dataset
from promptdeck.workspace.providers_file import open_registry
from tests.helpers import variant
from tests.llm_server import (
    FAULTS,
    FaultPlan,
    LLMServer,
    RecordedRequest,
    Scenario,
    fault_outcome,
)

ROWS = 100
READ_TIMEOUT = 0.5  # seconds; the server's "timeout" fault stays silent for longer
FAULT_PLAN = FaultPlan(rate=0.2, seed=0, retry_after=0.05, stall=1.5, trickle_delay=0.02)
# variant -> model; one OpenAI-wire and one Anthropic-wire provider
MODELS = {"qa/gpt": "fake/gpt", "qa/claude": "fakeclaude/claude"}


def make_registry(root: Path, server: LLMServer, **extra: str) -> Registry:
    """Through a real providers.yaml, so that `read_timeout` is the user's own setting."""
    lines = [
        "providers:",
        f"  fake: {{kind: openai, base_url: '{server.openai_url}', read_timeout: {READ_TIMEOUT}}}",
        f"  fakeclaude: {{kind: anthropic, base_url: '{server.url}', api_key_env: FAKE_KEY,"
        f" send_key_to: [127.0.0.1], read_timeout: {READ_TIMEOUT}}}",
        *(f"  {name}: {{kind: openai, base_url: '{url}'}}" for name, url in extra.items()),
    ]
    path = root / "providers.yaml"
    path.write_text("\n".join(lines) + "\n")
    return open_registry(path, Secrets(extra={"FAKE_KEY": "k"}.get))


def make_plan(models: dict[str, str], rows: int) -> EvalPlan:
    # Several words per input, so that a "trickle" answer has several slow chunks.
    cases = tuple(Case(f"r{i:03}", {"input": f"question {i} please"}) for i in range(rows))
    dataset = Dataset("d", Path("d.csv"), ("id", "input"), cases)
    variants = tuple(variant(name, model) for name, model in models.items())
    suite = Suite(None, Path("d.csv"), tuple(models))
    return EvalPlan(suite, dataset, cases, variants)


def run(runner: Runner, plan: EvalPlan, run_id: str | None = None) -> tuple[str, Progress]:
    run_id = run_id or runner.store.create_run(
        plan.snapshot(), name="faults", total_cells=len(plan.cells())
    )
    return run_id, run_with_client(runner.run(run_id, plan))


def by_cell(requests: list[RecordedRequest]) -> dict[tuple[str, str], list[RecordedRequest]]:
    """The server's requests per (model, message), in arrival order."""
    cells: dict[tuple[str, str], list[RecordedRequest]] = defaultdict(list)
    for request in requests:
        cells[(request.model, request.message)].append(request)
    return cells


@dataclass(frozen=True)
class FaultyRun:
    server: LLMServer
    registry: Registry
    runner: Runner
    plan: EvalPlan
    run_id: str
    progress: Progress
    requests: list[RecordedRequest]  # what the server saw during the run

    def model_and_input(self, row: dict[str, object]) -> tuple[str, str]:
        """The (model, message) the server saw for a stored result row."""
        case = next(c for c in self.plan.cases if c.id == row["row_id"])
        return MODELS[str(row["variant"])].partition("/")[2], case.values["input"]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyRun]:
    """One faulty eval, shared by the tests that read it (it takes a few seconds)."""
    root = tmp_path_factory.mktemp("faults")
    with LLMServer() as server:
        for model in MODELS.values():
            server.set_scenario(model.partition("/")[2], Scenario(faults=FAULT_PLAN))
        registry = make_registry(root, server)
        runner = Runner(registry, Store(root / "s.sqlite"), concurrency=8)
        plan = make_plan(MODELS, ROWS)
        run_id, progress = run(runner, plan)
        yield FaultyRun(server, registry, runner, plan, run_id, progress, server.requests)


def test_fault_plan_is_seeded_and_keeps_its_rate() -> None:
    draws = [FAULT_PLAN.choose("m", f"q{i}", i % 3) for i in range(20_000)]
    again = [FAULT_PLAN.choose("m", f"q{i}", i % 3) for i in range(20_000)]
    counts = Counter(draws)
    assert draws == again
    assert 0.19 < 1 - counts[None] / len(draws) < 0.21
    share = 20_000 * 0.2 / len(FAULTS)
    assert all(0.8 * share < counts[kind] < 1.2 * share for kind in FAULTS)
    assert FaultPlan(rate=0.0).choose("m", "q", 0) is None
    assert FaultPlan(rate=1.0, weights=(("quota", 1.0),)).choose("m", "q", 0) == "quota"
    with pytest.raises(ValueError, match="unknown"):
        FaultPlan(weights=(("lightning", 1.0),))


def test_every_cell_is_an_answer_or_the_error_its_faults_call_for(faulty: FaultyRun) -> None:
    rows, requests = faulty.runner.store.results(faulty.run_id), faulty.requests
    assert (faulty.progress.done, faulty.progress.total) == (2 * ROWS, 2 * ROWS)
    assert faulty.runner.store.get_run(faulty.run_id).status == "done"
    assert len(rows) == len({(r["row_id"], r["variant"], r["repeat"]) for r in rows}) == 2 * ROWS
    injected = Counter(r.fault for r in requests if r.fault)
    # The seed gives every kind at least once, at about the planned rate.
    assert set(injected) == set(FAULTS)
    assert 0.15 < sum(injected.values()) / len(requests) < 0.3
    cells = by_cell(requests)
    for row in rows:
        model, message = faulty.model_and_input(row)
        asked = cells[(model, message)]
        faults = [r.fault for r in asked]
        # At most 1 + MAX_RETRIES requests, and exactly as many as the policy calls for.
        assert fault_outcome(faults, MAX_RETRIES) == (row["error_kind"], len(asked)), faults
        assert row["attempts"] == len(asked) <= 1 + MAX_RETRIES
        if row["error"] is None:
            assert row["output"] == "Echo: " + message
        elif faults[-1] in ("drop", "malformed"):  # after the first token: the partial text
            assert row["output"] == "Echo:"
    assert faulty.progress.errors == sum(r["error"] is not None for r in rows) > 0


def test_retries_wait_the_retry_after_of_a_429(faulty: FaultyRun) -> None:
    gaps = [
        later.arrived - first.arrived
        for asked in by_cell(faulty.requests).values()
        for first, later in itertools.pairwise(asked)
        if first.fault == "429"
    ]
    assert gaps and min(gaps) >= FAULT_PLAN.retry_after


def test_no_finished_answer_is_lost_and_a_resume_asks_nothing_again(faulty: FaultyRun) -> None:
    # Runs last of the three: it adds requests to the shared server.
    runner, server, seen = faulty.runner, faulty.server, len(faulty.requests)
    rows = runner.store.results(faulty.run_id)
    answered = {faulty.model_and_input(r) for r in rows if r["error"] is None}
    completed = [(r.model, r.message) for r in server.completed]
    assert sorted(completed) == sorted(answered)  # one full stream per stored answer, no other

    # A fresh Runner per run, as the CLI and the Evaluate page do.
    store = runner.store
    _, resumed = run(Runner(faulty.registry, store, concurrency=8), faulty.plan, faulty.run_id)
    assert resumed.done == 2 * ROWS and len(server.requests) == seen

    # A new run of the same plan: the answers come from the cache, only failed cells are asked.
    _, again = run(Runner(faulty.registry, store, concurrency=8), faulty.plan)
    asked_again = {(r.model, r.message) for r in server.requests[seen:]}
    assert again.cached == len(answered) and not asked_again & answered
    assert len(asked_again) == 2 * ROWS - len(answered)  # only the cells that had failed


def test_a_closed_port_is_a_connection_error_after_the_retries(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    # Connection refused for real: nothing listens on the port (bound, then closed).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    registry = make_registry(tmp_path, llm_server, gone=f"http://127.0.0.1:{port}/v1")
    runner = Runner(registry, Store(tmp_path / "s.sqlite"))
    run_id, progress = run(runner, make_plan({"qa/gone": "gone/m"}, 3))
    rows = runner.store.results(run_id)
    assert (progress.done, progress.errors, runner.store.get_run(run_id).status) == (3, 3, "done")
    assert {(r["error_kind"], r["attempts"]) for r in rows} == {("connection", 1 + MAX_RETRIES)}
    assert all("could not connect" in r["error"] for r in rows)
