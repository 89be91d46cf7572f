"""The first-run demo: the demo suite on the embedded model, sampled to finish in about a minute.

When the store holds no run yet, the Results and Home pages offer one click that plans the
run here and starts it through the same job machinery as the Evaluate page. Nothing is
invented: the answers and verdicts are real, only the sample is small (one ticket per
category instead of the suite's 60 tickets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from promptdeck.errors import ConfigError
from promptdeck.evals.jobs import JobRegistry
from promptdeck.evals.plan import EvalPlan, build_plan
from promptdeck.evals.runner import Runner
from promptdeck.evals.suite import load_suite
from promptdeck.model.local import local_model_status
from promptdeck.model.registry import Registry, split_model_ref
from promptdeck.store.sqlite import Store
from promptdeck.workspace.datasets import load_dataset
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.prompts import load_prompts
from promptdeck.workspace.sampling import count_strata

DEMO_SUITE = "support_tickets.suite.yaml"
# Measured on 2 cores, fresh cache, 3 variants judged pointwise: 1 ticket per category
# (6 tickets, 18 answers + 18 verdicts) took 54 s; 2 per category took 97 s. A verdict of
# the long demo rubric costs ~6 s, three times an answer, so the judge sets the pace.
ROWS_PER_CATEGORY = 1
# The embedded provider keeps 3 model instances: one call in flight per instance.
DEMO_CONCURRENCY = 3
LOCAL_PROVIDER = "local"

LOCAL_JUDGE_NOTICE = (
    "**Demo judge.** These scores come from the embedded SmolLM2-135M model: they show the "
    "pipeline working but are not reliable. For real decisions connect a stronger judge: set "
    "`OPENAI_API_KEY` or `ANTHROPIC_API_KEY` (or an Ollama / vLLM base URL in "
    "`providers.yaml`), then choose e.g. `openai/gpt-4o-mini` as the judge model on Evaluate "
    "or in Settings."
)


def demo_suite_path(workspace: Workspace) -> Path:
    return workspace.datasets_dir / DEMO_SUITE


def has_demo_suite(workspace: Workspace) -> bool:
    """False in a team's own repository, which has its own suites instead."""
    return demo_suite_path(workspace).is_file()


def demo_plan(
    workspace: Workspace,
    *,
    model_path: str | None = None,
    rows_per_category: int = ROWS_PER_CATEGORY,
) -> EvalPlan:
    """The demo suite, `rows_per_category` rows of each category, judge included.

    `model_path` is the local provider's configured GGUF file (None: the default SmolLM2).
    Raises ConfigError, saying what to do, when the suite, its prompts or the model are missing.
    """
    path = demo_suite_path(workspace)
    if not path.is_file():
        raise ConfigError(
            f"There is no demo suite ({path}) in this workspace: plan a run of your own "
            "suite or dataset on the Evaluate page."
        )
    suite = load_suite(path)
    strata = count_strata(load_dataset(suite.dataset).cases, suite.sample.stratify)
    # floor = rows per category and n = floor x categories: exactly that many of each.
    sample = replace(
        suite.sample, n=rows_per_category * len(strata), fraction=None, floor=rows_per_category
    )
    plan = build_plan(replace(suite, sample=sample, repeats=1), load_prompts(workspace.prompts_dir))
    models = {v.model for v in plan.variants}
    if plan.suite.judge is not None:
        models.add(plan.suite.judge.model)
    for model in sorted(models):
        provider, name = split_model_ref(model)
        if provider != LOCAL_PROVIDER:
            continue
        ready, why = local_model_status(name if name.endswith(".gguf") else model_path)
        if not ready:
            raise ConfigError(
                f"The demo runs on the embedded model ({model}), which is not ready: {why}"
            )
    return plan


def start_demo(plan: EvalPlan, registry: Registry, store: Store, jobs: JobRegistry) -> str:
    """Create the run and start it in the background, exactly as the Evaluate page does."""
    run_id = store.create_run(
        plan.snapshot(), name=f"{plan.suite.name} (demo)", total_cells=len(plan.cells())
    )
    jobs.start(run_id, plan, Runner(registry, store, concurrency=DEMO_CONCURRENCY))
    return run_id


def is_local_judge(model: str | None) -> bool:
    """Is this judge the embedded demo model (not a GGUF file of the user's choosing)?"""
    provider, _, name = (model or "").partition("/")
    return provider == LOCAL_PROVIDER and bool(name) and not name.endswith(".gguf")


def run_judge_model(snapshot: Mapping[str, Any]) -> str | None:
    """The judge model a stored run was planned with, from its snapshot."""
    suite = snapshot.get("suite")
    judge = suite.get("judge") if isinstance(suite, dict) else None
    model = judge.get("model") if isinstance(judge, dict) else None
    return model if isinstance(model, str) else None
