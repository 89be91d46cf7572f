"""Runs an eval: every (case, variant, repeat) cell, concurrently, resumably, cached.

Every call, answers and verdicts alike, goes through the one call policy
(`model.policy.CallPolicy`): per-provider concurrency and requests per minute, retries,
the variant's fallback model, and the response cache (the store) keyed by the full request,
which makes re-running an unchanged eval free. Each cell is committed to the store with
its scores the moment it is finished, so a killed run loses nothing and a resumed one
repeats nothing.

A pointwise verdict is asked by the worker that got the answer, right after it: verdicts
overlap the other cells' answers, the last one arrives one call after the last answer,
and a cell is never stored without its verdict. Pairwise verdicts need the baseline's
answer as well, so they are asked once every answer is in.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promptdeck.errors import ErrorKind, PromptDeckError
from promptdeck.evals.plan import Cell, EvalPlan, graded
from promptdeck.evals.turn import run_turn
from promptdeck.model.policy import CallPolicy
from promptdeck.model.refs import provider_of
from promptdeck.model.registry import Registry
from promptdeck.model.retry import MAX_RETRIES
from promptdeck.model.types import CallResult
from promptdeck.scoring.judge import JudgeSpec
from promptdeck.scoring.scorers import (
    PAIRWISE,
    answer_with_steps,
    check_scores,
    pairwise_score,
    pointwise_score,
)
from promptdeck.store.db import BEAT_S, Store
from promptdeck.store.rows import CellKey, CellRecord, stored_steps
from promptdeck.workspace.images import row_images, with_images
from promptdeck.workspace.prompts import render_messages


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    errors: int
    cached: int
    elapsed_s: float
    spend_usd: float  # what the finished cells of this session cost, where known
    unpriced: int  # finished cells whose cost is unknown
    eta_s: float | None
    pairs_done: int = 0  # pairwise judging, after every answer is in
    pairs_total: int = 0

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


class Runner:
    def __init__(
        self,
        registry: Registry,
        store: Store,
        *,
        concurrency: int | None = None,
        rpm: float | None = None,
        use_cache: bool = True,
        max_retries: int = MAX_RETRIES,
        beat_s: float = BEAT_S,
    ) -> None:
        self.store = store
        self.beat_s = beat_s  # how often a running run tells the store it is alive
        self.policy = CallPolicy(
            registry,
            cache=store if use_cache else None,
            concurrency=concurrency,
            rpm=rpm,
            max_retries=max_retries,
        )

    async def run(
        self,
        run_id: str,
        plan: EvalPlan,
        *,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Run (or resume) `run_id`: only cells without a stored result are called."""
        done = self.store.done_cells(run_id)
        pending = [c for c in plan.cells() if c.key not in done]
        total = len(plan.cells())
        tally = _Tally(
            total=total,
            done=total - len(pending),
            started=time.monotonic(),
            resumed=total - len(pending),
        )
        self.store.set_run_status(run_id, "running")
        queue: asyncio.Queue[Cell] = asyncio.Queue()
        for cell in pending:
            queue.put_nowait(cell)
        workers = [
            asyncio.create_task(
                self._worker(run_id, queue, tally, plan.suite.judge, plan.folder, on_progress)
            )
            for _ in range(self._worker_count(pending, plan.suite.judge))
        ]
        beating = asyncio.create_task(self._beat(run_id))
        try:
            await _run_workers(workers, cancel)
        finally:
            beating.cancel()
        cancelled = cancel is not None and cancel.is_set()
        finished = tally.done == total
        judge = plan.suite.judge
        if judge and judge.mode == "pairwise" and plan.suite.baseline and not cancelled:
            await self._judge_pairs(run_id, plan, judge, tally, cancel, on_progress)
            cancelled = cancel is not None and cancel.is_set()
            finished = finished and tally.pairs_done == tally.pairs_total
        self.store.set_run_status(
            run_id, "done" if finished else "cancelled" if cancelled else "failed"
        )
        final = tally.progress()
        if on_progress is not None:
            on_progress(final)
        return final

    def _worker_count(self, pending: list[Cell], judge: JudgeSpec | None) -> int:
        """Enough workers to fill every call slot the cells can use: the answering
        providers' and, with a pointwise judge, the judge's. A worker answers a cell and
        then judges it, so a judge on its own provider counted for nothing would leave half
        of every provider's slots idle (each worker waiting on its other call), and a run
        twice as long as the limits allow. The call policy's per-provider semaphores, not
        the workers, bound the calls in flight."""
        providers = {provider_of(c.variant.model) for c in pending}
        if pending and judge is not None and judge.mode == "pointwise":
            providers.add(provider_of(judge.model))
        return max(1, sum(self.policy.limit_for(p) for p in providers))

    async def _beat(self, run_id: str) -> None:
        """Says every `beat_s` that this run is alive, however slow its cells: another
        machine sharing the store resumes a run only when its heartbeat is older than
        LIVE_RUN_S."""
        while True:
            await asyncio.sleep(self.beat_s)
            await asyncio.to_thread(self.store.beat, run_id)

    async def _worker(
        self,
        run_id: str,
        queue: asyncio.Queue[Cell],
        tally: _Tally,
        judge: JudgeSpec | None,
        folder: Path | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        while not queue.empty():
            cell = queue.get_nowait()
            try:
                record = await self.run_cell(cell, folder)
            except Exception as exc:  # a bug in one cell must not stop the run
                failed = CallResult.failure(
                    cell.variant.model, f"unexpected error: {exc!r}", ErrorKind.INTERNAL
                )
                record = CellRecord(
                    cell.case.id, cell.variant.name, cell.repeat, cell.case.category, failed
                )
            expected = cell.case.values.get("expected")
            scores = check_scores(
                cell.variant.checks, record.result, expected=expected, tool_steps=record.steps
            )
            if judge is not None and judge.mode == "pointwise" and record.result.ok:
                messages = render_messages(cell.variant, cell.case.values)
                scores.append(
                    await pointwise_score(
                        self.policy.call,
                        judge,
                        graded(cell.case, messages),
                        answer_with_steps(record.result.text, record.steps),
                        local=self.policy.is_local(judge.model),
                    )
                )
            self.store.add_result(run_id, record, scores)
            tally.add(record)
            for score in scores:
                if score.judge_model is not None:
                    tally.add_cost(score.cost_usd, score.cached)
            if on_progress is not None:
                on_progress(tally.progress())

    async def _judge_pairs(
        self,
        run_id: str,
        plan: EvalPlan,
        judge: JudgeSpec,
        tally: _Tally,
        cancel: threading.Event | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        """Pairwise verdicts of each variant's answer against the baseline's, same row."""
        base = plan.suite.baseline or ""
        answers = {
            (r["row_id"], r["variant"], r["repeat"]): answer_with_steps(
                r["output"], stored_steps(r["tool_calls_json"])
            )
            for r in self.store.results(run_id)
            if r["error"] is None
        }
        judged = {
            (s["row_id"], s["variant"], s["repeat"])
            for s in self.store.scores(run_id)
            if s["scorer"] == PAIRWISE
        }
        pairs = [
            (key, output, answers[(key[0], base, key[2])])
            for key, output in answers.items()
            if key[1] != base and key not in judged and (key[0], base, key[2]) in answers
        ]
        tally.pairs_total, tally.pairs_done = len(pairs) + len(judged), len(judged)
        cases = {c.id: c for c in plan.cases}
        baseline = next(v for v in plan.variants if v.name == base)
        queue: asyncio.Queue[tuple[CellKey, str, str]] = asyncio.Queue()
        for pair in pairs:
            queue.put_nowait(pair)

        async def worker() -> None:
            while not queue.empty():
                (row, variant, repeat), candidate, reference_answer = queue.get_nowait()
                case = cases[row]
                score = await pairwise_score(
                    self.policy.call,
                    judge,
                    graded(case, render_messages(baseline, case.values)),
                    candidate,
                    reference_answer,
                    cap_reasoning=self.policy.is_local(judge.model),
                )
                self.store.add_scores(run_id, row, variant, repeat, [score])
                tally.pairs_done += 1
                tally.add_cost(score.cost_usd, score.cached)
                if on_progress is not None:
                    on_progress(tally.progress())

        limit = self.policy.limit_for(provider_of(judge.model))
        await _run_workers([asyncio.create_task(worker()) for _ in range(limit)], cancel)

    async def run_cell(self, cell: Cell, folder: Path | None = None) -> CellRecord:
        """One answer: the variant rendered with the row (and the row's images, read from
        `folder`, the dataset's), through the call policy and the variant's tool rounds."""
        variant, case = cell.variant, cell.case
        try:
            messages = render_messages(variant, case.values)
            if folder is not None:
                messages = with_images(messages, row_images(case.values, folder))
        except PromptDeckError as exc:
            failed = CallResult.failure(variant.model, str(exc), ErrorKind.of(exc))
            return CellRecord(case.id, variant.name, cell.repeat, case.category, failed)
        turn = await run_turn(self.policy, variant, messages, case.values, sample=cell.repeat)
        answer = turn.answer
        return CellRecord(
            case.id,
            variant.name,
            cell.repeat,
            case.category,
            answer.result,
            answer.cached,
            answer.fallback_used,
            turn.steps,
        )


async def _run_workers(workers: list[asyncio.Task[None]], cancel: threading.Event | None) -> None:
    watcher = asyncio.create_task(_watch(cancel, workers))
    await asyncio.gather(*workers, return_exceptions=True)
    watcher.cancel()


async def _watch(cancel: threading.Event | None, workers: list[asyncio.Task[None]]) -> None:
    """Cancel the workers when another thread sets `cancel` (the UI's Cancel button)."""
    if cancel is None:
        return
    while not cancel.is_set():
        await asyncio.sleep(0.05)
    for task in workers:
        task.cancel()


@dataclass
class _Tally:
    total: int
    done: int
    started: float
    resumed: int
    errors: int = 0
    cached: int = 0
    spend: float = 0.0
    unpriced: int = 0
    pairs_done: int = 0
    pairs_total: int = 0

    def add(self, record: CellRecord) -> None:
        self.done += 1
        self.errors += not record.result.ok
        self.cached += record.cached
        self.add_cost(record.result.cost_usd, record.cached)

    def progress(self) -> Progress:
        elapsed = time.monotonic() - self.started
        new = self.done - self.resumed
        remaining = self.total - self.done
        eta = elapsed / new * remaining if new else None
        return Progress(
            self.done,
            self.total,
            self.errors,
            self.cached,
            elapsed,
            self.spend,
            self.unpriced,
            eta,
            self.pairs_done,
            self.pairs_total,
        )

    def add_cost(self, cost: float | None, cached: bool) -> None:
        if cached:
            return  # a cached answer costs nothing now
        if cost is None:
            self.unpriced += 1
        else:
            self.spend += cost
