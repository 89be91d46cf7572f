"""The first-run demo: the demo suite on the embedded model, sampled to finish in about a minute.

When the store holds no run yet, the Results and Home pages offer one click that plans the
run here and starts it through the same job machinery as the Evaluate page. Nothing is
invented: the answers and verdicts are real, only the sample is small (one ticket per
category instead of the suite's 60 tickets).

What it shows, measured (bench/demo_signal.py): the three demo prompts differ on the checks
they share (concise passes 94% of them, production and empathetic 69%: length, AI
disclaimers, placeholders). The embedded judge's expected scores are continuous (sd
0.18-0.26 per prompt) but do not rank the prompts as the checks do (means 2.01-2.15,
Kendall tau 0.00), which `scoring.judge.LOCAL_JUDGE_NOTICE` says wherever it shows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from promptdeck.errors import ConfigError
from promptdeck.evals.jobs import EvalJob, JobRegistry
from promptdeck.evals.plan import EvalPlan, build_plan
from promptdeck.evals.start import RunOptions, start_in_background
from promptdeck.evals.suite import load_suite
from promptdeck.model.local import local_model_status
from promptdeck.model.registry import Registry
from promptdeck.store.db import Store
from promptdeck.workspace.datasets import load_dataset
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.prompts import load_prompts
from promptdeck.workspace.sampling import count_strata

DEMO_SUITE = "support_tickets.suite.yaml"
# Measured with bench/demo_signal.py on 2 cores shared with other work, cache off, 1 ticket
# per category (6 tickets, 18 answers + 18 expected-score verdicts): 38.4 s and 37.8 s at
# load 2.6 (38.3-39.9 s at load 1.7-3.0 while tuning). A verdict reads its ~540-token prompt
# afresh (1.2 s on one thread), then writes `{"score": N}`. The previous demo (integer
# verdicts after ~75 tokens of reasoning, 17 or 18 of the 18 of them 1) took 43.9 s at load
# 2.7 and 70.3 s at load 4.0. With the response cache on, a rerun takes under 0.1 s.
# What a PM waits for is more: a first run loads the model's instances, and the page and the
# browser share the 2 cores. Measured on an idle machine: 61.6 s for a first run alone
# (bench/estimates.py); from the click to the results in Chromium 68.9 s and 70.1 s
# (tests/e2e/test_first_run_browser.py, test_newcomer_journey.py; 77-87 s before the app
# stopped Streamlit's forced garbage collection after every rerun, .streamlit/config.toml).
ROWS_PER_CATEGORY = 1
# What the pages promise: the browser figure above, the wait a PM really has.
DEMO_DURATION = "a little over a minute on 2 cores (measured: about 70 s from the click)"
# The embedded provider keeps 3 model instances: one call in flight per instance.
DEMO_CONCURRENCY = 3


def demo_suite_path(workspace: Workspace) -> Path:
    return workspace.datasets_dir / DEMO_SUITE


def has_demo_suite(workspace: Workspace) -> bool:
    """False in a team's own repository, which has its own suites instead."""
    return demo_suite_path(workspace).is_file()


def demo_plan(
    workspace: Workspace, registry: Registry, *, rows_per_category: int = ROWS_PER_CATEGORY
) -> EvalPlan:
    """The demo suite, `rows_per_category` rows of each category, judge included.

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
    for model in sorted(m for m in models if registry.is_local(m)):
        ready, why = local_model_status(registry.local_model_file(model))
        if not ready:
            raise ConfigError(
                f"The demo runs on the embedded model ({model}), which is not ready: {why}"
            )
    return plan


def start_demo(plan: EvalPlan, registry: Registry, store: Store, jobs: JobRegistry) -> EvalJob:
    """Start it in the background exactly as the Evaluate page starts a run (the saved cache
    setting applies), with one call in flight per embedded model instance."""
    options = RunOptions.from_settings(store, concurrency=DEMO_CONCURRENCY)
    return start_in_background(
        registry, store, jobs, plan, options, name=f"{plan.suite.name} (demo)"
    )
