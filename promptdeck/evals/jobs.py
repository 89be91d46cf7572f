"""Eval runs in the background, so they survive page switches and browser refreshes.

One daemon thread per job, with its own event loop; the page finds the job again by its
run id (kept in the URL) and polls `progress`. Nothing here touches streamlit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from promptdeck.evals.plan import EvalPlan
from promptdeck.evals.runner import Progress, Runner
from promptdeck.evals.sequential import Budget, run_until_decided
from promptdeck.model.http import run_with_client


@dataclass
class EvalJob:
    run_id: str
    plan: EvalPlan
    runner: Runner
    cancel: threading.Event = field(default_factory=threading.Event)
    budget: Budget | None = None  # set: run until the gates are decided, within it
    progress: Progress | None = None
    error: str | None = None
    _thread: threading.Thread | None = None

    def start(self) -> EvalJob:
        self._thread = threading.Thread(target=self._main, name=f"eval-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _main(self) -> None:
        def on_progress(p: Progress) -> None:
            self.progress = p  # one reference assignment: atomic for readers

        try:
            if self.budget is not None:
                run_with_client(
                    run_until_decided(
                        self.runner,
                        self.run_id,
                        self.plan,
                        self.budget,
                        cancel=self.cancel,
                        on_progress=on_progress,
                    )
                )
            else:
                run_with_client(
                    self.runner.run(
                        self.run_id, self.plan, cancel=self.cancel, on_progress=on_progress
                    )
                )
        except Exception as exc:  # shown on the page; the stored cells stay
            self.error = f"{type(exc).__name__}: {exc}"
            self.runner.store.set_run_status(self.run_id, "failed")


class JobRegistry:
    """The jobs of this process, by run id (one registry per server process)."""

    def __init__(self) -> None:
        self._jobs: dict[str, EvalJob] = {}
        self._lock = threading.Lock()

    def start(
        self, run_id: str, plan: EvalPlan, runner: Runner, budget: Budget | None = None
    ) -> EvalJob:
        with self._lock:
            current = self._jobs.get(run_id)
            if current is not None and current.running:
                return current  # never two jobs writing one run
            job = self._jobs[run_id] = EvalJob(run_id, plan, runner, budget=budget).start()
            return job

    def get(self, run_id: str) -> EvalJob | None:
        with self._lock:
            return self._jobs.get(run_id)
