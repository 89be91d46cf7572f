"""Verdicts overlap answers: the runner asks a cell's pointwise verdict right after its
answer, with workers for the judge's own call slots too. Observed on the local SSE server:
what arrived when, and how many calls it held at once."""

from dataclasses import replace
from pathlib import Path

from promptdeck.evals.plan import EvalPlan
from promptdeck.evals.runner import Runner
from promptdeck.model.pricing import PriceTable
from promptdeck.model.registry import ProviderConfig, Registry, builtin_configs
from promptdeck.model.secrets import Secrets
from promptdeck.scoring.judge import JudgeSpec
from promptdeck.store.db import Store
from tests.evals.test_runner import make_plan, run
from tests.helpers import server_registry, variant
from tests.llm_server import LLMServer, Scenario

ROWS = 8
VERDICT = '{"reasoning": "Fine.", "score": 4}'


def judged(judge_model: str) -> EvalPlan:
    plan = make_plan([variant("t/v", "fake/m")], ROWS)
    return replace(plan, suite=replace(plan.suite, judge=JudgeSpec(judge_model, "Be fair.")))


def slow_answers_and_verdicts(server: LLMServer, delay: float) -> None:
    server.set_scenario("m", Scenario(tokens=["ok"], first_token_delay=delay))
    server.set_scenario("judge", Scenario(tokens=[VERDICT], first_token_delay=delay))


def assert_every_cell_stored_with_its_verdict(store: Store, run_id: str) -> None:
    verdicts = [s for s in store.scores(run_id) if s["scorer"] == "judge"]
    assert len(store.results(run_id)) == len(verdicts) == ROWS
    assert {s["value"] for s in verdicts} == {4.0}


def test_verdicts_are_asked_while_answers_still_are(llm_server: LLMServer, tmp_path: Path) -> None:
    """Judge and answers on one provider: they share its 2 slots, and the first verdict is
    asked long before the last answer (not after every answer is in)."""
    slow_answers_and_verdicts(llm_server, 0.05)
    store = Store(tmp_path / "s.sqlite")
    run_id, progress = run(
        Runner(server_registry(llm_server), store, concurrency=2), judged("fake/judge")
    )
    assert (progress.done, progress.errors) == (ROWS, 0)
    answers = [r.arrived for r in llm_server.requests if r.model == "m"]
    verdicts = [r.arrived for r in llm_server.requests if r.model == "judge"]
    assert len(answers) == len(verdicts) == ROWS
    assert sum(v < max(answers) for v in verdicts) >= ROWS - 2  # all but the last two cells'
    assert llm_server.max_in_flight == 2
    assert_every_cell_stored_with_its_verdict(store, run_id)


def test_a_judge_on_its_own_provider_is_called_beside_the_answers(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    """With 2 calls in flight per provider, 2 answers and 2 verdicts are out at once: the
    runner's workers cover the judge's slots too (it used to run 2 workers in all, each
    waiting on its verdict before the next answer)."""
    slow_answers_and_verdicts(llm_server, 0.1)
    configs = builtin_configs()
    for name in ("fake", "grader"):  # two providers, one server
        configs[name] = ProviderConfig(name, "openai", llm_server.openai_url, requires_key=False)
    registry = Registry(configs, Secrets(), PriceTable(free_providers=frozenset()))
    store = Store(tmp_path / "s.sqlite")
    run_id, progress = run(Runner(registry, store, concurrency=2), judged("grader/judge"))
    assert (progress.done, progress.errors) == (ROWS, 0)
    assert llm_server.max_in_flight >= 4
    assert_every_cell_stored_with_its_verdict(store, run_id)
