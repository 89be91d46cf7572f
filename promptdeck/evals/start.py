"""Starting an eval run: the one path the CLI, the Evaluate page and the demo share.

A run of a plan resumes the newest unfinished run of the same plan (same prompts, sample
and repeats; killed, cancelled or failed, and not still running in a live process), so
pressing Run again, or `promptdeck run` again, never repeats a finished call. `resume=False`
always starts afresh. The calls in flight and the response cache come from the Settings
page unless the caller overrides them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from promptdeck.evals.jobs import EvalJob, JobRegistry
from promptdeck.evals.plan import EvalPlan
from promptdeck.evals.runner import Progress, Runner
from promptdeck.evals.sequential import Budget, Outcome, run_until_decided, start_sequential
from promptdeck.evals.timing import run_kind
from promptdeck.model.http import run_with_client
from promptdeck.model.registry import Registry
from promptdeck.store.db import Store
from promptdeck.store.settings import load_settings, saved_concurrency


@dataclass(frozen=True)
class RunOptions:
    concurrency: int | None = None  # calls in flight per provider; None: each provider's own
    rpm: float | None = None  # requests per minute per provider
    use_cache: bool = True
    resume: bool = True  # continue the unfinished run of the same plan, if there is one

    @classmethod
    def from_settings(
        cls,
        store: Store,
        *,
        concurrency: int | None = None,
        rpm: float | None = None,
        no_cache: bool = False,
        resume: bool = True,
    ) -> RunOptions:
        """The Settings page's choices, overridden by what the caller names."""
        return cls(
            concurrency=concurrency or saved_concurrency(store),
            rpm=rpm,
            use_cache=not no_cache and load_settings(store).use_cache,
            resume=resume,
        )


@dataclass(frozen=True)
class OpenedRun:
    run_id: str
    total: int
    done: int  # cells already finished: 0 for a new run

    @property
    def resumed(self) -> bool:
        return self.done > 0


def open_run(
    store: Store,
    plan: EvalPlan,
    *,
    resume: bool,
    name: str | None = None,
    concurrency: int | None = None,
) -> OpenedRun:
    """The unfinished run of this plan (when `resume`), else a new one. The new run records
    its kind, so later plans of the same kind estimate their time from it (evals.timing)."""
    snapshot = plan.snapshot()
    snapshot["timing_kind"] = run_kind(snapshot, concurrency)
    total = len(plan.cells())
    run_id = store.claim_unfinished_run(snapshot["fingerprint"]) if resume else None
    if run_id is None:
        run_id = store.create_run(snapshot, name=name or plan.suite.name, total_cells=total)
        return OpenedRun(run_id, total, 0)
    return OpenedRun(run_id, total, len(store.done_cells(run_id)))


def make_runner(registry: Registry, store: Store, options: RunOptions) -> Runner:
    return Runner(
        registry,
        store,
        concurrency=options.concurrency,
        rpm=options.rpm,
        use_cache=options.use_cache,
    )


def run_in_foreground(
    registry: Registry,
    store: Store,
    opened: OpenedRun,
    plan: EvalPlan,
    options: RunOptions,
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Run (or resume) `opened` to its end in this thread (the CLI)."""
    runner = make_runner(registry, store, options)
    return run_with_client(runner.run(opened.run_id, plan, on_progress=on_progress))


def start_in_background(
    registry: Registry,
    store: Store,
    jobs: JobRegistry,
    plan: EvalPlan,
    options: RunOptions,
    *,
    name: str | None = None,
) -> EvalJob:
    """Open the run and start it in a background job (the pages): it survives page switches
    and refreshes, and the page finds it again by its run id."""
    opened = open_run(
        store, plan, resume=options.resume, name=name, concurrency=options.concurrency
    )
    return jobs.start(opened.run_id, plan, make_runner(registry, store, options))


def start_until_decided(
    registry: Registry,
    store: Store,
    jobs: JobRegistry,
    plan: EvalPlan,
    options: RunOptions,
    budget: Budget,
    *,
    name: str | None = None,
) -> EvalJob:
    """A new run that grows batch by batch until its gates are decided (evals.sequential)."""
    runner = make_runner(registry, store, options)
    run_id = start_sequential(runner, plan, budget, name=name or plan.suite.name)
    return jobs.start(run_id, plan, runner, budget)


def run_until_decided_now(
    registry: Registry,
    store: Store,
    plan: EvalPlan,
    options: RunOptions,
    budget: Budget,
    *,
    on_start: Callable[[str], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Outcome:
    """The same in this thread (the CLI); `on_start` gets the run id before any call."""
    runner = make_runner(registry, store, options)
    run_id = start_sequential(runner, plan, budget, name=plan.suite.name)
    if on_start is not None:
        on_start(run_id)
    return run_with_client(run_until_decided(runner, run_id, plan, budget, on_progress=on_progress))
