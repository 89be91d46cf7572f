"""Runs an eval: every (case, variant, repeat) cell, concurrently, resumably, cached.

Per provider, a semaphore bounds the calls in flight and an optional requests-per-minute
limit spaces their starts. A response cache keyed by the full request (provider, model,
params, rendered messages) makes re-running an unchanged eval free. A variant's fallback
model answers when the primary fails. Each cell is committed to the store the moment it
is finished, so a killed run loses nothing and a resumed one repeats nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from promptdeck.errors import PromptDeckError
from promptdeck.evals.plan import Cell, EvalPlan
from promptdeck.evals.suite import JudgeSpec
from promptdeck.model.call import CallResult, stream_call
from promptdeck.model.registry import Registry, split_model_ref
from promptdeck.model.retry import MAX_RETRIES
from promptdeck.model.types import ChatRequest, Message
from promptdeck.scoring.scorers import check_scores, pairwise_score, pointwise_score, question_of
from promptdeck.store.sqlite import CellRecord, Store, request_json
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


def request_key(model_ref: str, request: ChatRequest) -> str:
    """The cache key: everything that determines the answer, nothing else."""
    return hashlib.sha256(f"{model_ref}\n{request_json(request)}".encode()).hexdigest()


class _RateLimit:
    """Spaces request starts at least 60/rpm seconds apart."""

    def __init__(self, rpm: float) -> None:
        self.interval = 60.0 / rpm
        self.next_at = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self.lock:
            now = time.monotonic()
            delay = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


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
    ) -> None:
        self.registry = registry
        self.store = store
        self.concurrency = concurrency
        self.rpm = rpm
        self.use_cache = use_cache
        self.max_retries = max_retries
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._rates: dict[str, _RateLimit] = {}

    def limit_for(self, provider: str) -> int:
        if self.concurrency is not None:
            return self.concurrency
        return (
            self.registry.config(provider).max_concurrency
            if provider in self.registry.configs
            else 4
        )

    def is_local(self, model_ref: str) -> bool:
        name = _provider(model_ref)
        return name in self.registry.configs and self.registry.configs[name].kind == "local"

    async def run(
        self,
        run_id: str,
        plan: EvalPlan,
        *,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Run (or resume) `run_id`: only cells without a stored result are called."""
        # Semaphores and locks belong to the event loop that made them: a new one per run.
        self._limits, self._rates = {}, {}
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
        providers = {_provider(c.variant.model) for c in pending}
        workers = [
            asyncio.create_task(self._worker(run_id, queue, tally, plan.suite.judge, on_progress))
            for _ in range(max(1, sum(self.limit_for(p) for p in providers)))
        ]
        await _run_workers(workers, cancel)
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

    async def _worker(
        self,
        run_id: str,
        queue: asyncio.Queue[Cell],
        tally: _Tally,
        judge: JudgeSpec | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        while not queue.empty():
            cell = queue.get_nowait()
            try:
                record = await self.run_cell(cell)
            except Exception as exc:  # a bug in one cell must not stop the run
                failed = CallResult(
                    cell.variant.model,
                    "",
                    None,
                    None,
                    0.0,
                    None,
                    error=f"unexpected error: {exc!r}",
                    error_kind="internal",
                )
                record = CellRecord(
                    cell.case.id, cell.variant.name, cell.repeat, cell.case.category, failed
                )
            scores = check_scores(cell, record.result)
            if judge is not None and judge.mode == "pointwise" and record.result.ok:
                messages = render_messages(cell.variant, cell.case.values)
                scores.append(
                    await pointwise_score(
                        self.call,
                        judge,
                        cell.case,
                        messages,
                        record.result.text,
                        cap_reasoning=self.is_local(judge.model),
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
        base = plan.suite.baseline
        answers = {(r["row_id"], r["variant"], r["repeat"]): r for r in self.store.results(run_id)}
        judged = {
            (s["row_id"], s["variant"], s["repeat"])
            for s in self.store.scores(run_id)
            if s["scorer"] == "pairwise"
        }
        pairs = [
            (key, r["output"], answers[(key[0], base, key[2])]["output"])
            for key, r in answers.items()
            if key[1] != base
            and r["error"] is None
            and key not in judged
            and answers.get((key[0], base, key[2]), {"error": "missing"})["error"] is None
        ]
        tally.pairs_total, tally.pairs_done = len(pairs) + len(judged), len(judged)
        cases = {c.id: c for c in plan.cases}
        baseline = next(v for v in plan.variants if v.name == base)
        queue: asyncio.Queue[tuple[tuple[str, str, int], str, str]] = asyncio.Queue()
        for pair in pairs:
            queue.put_nowait(pair)

        async def worker() -> None:
            while not queue.empty():
                (row, variant, repeat), candidate, reference_answer = queue.get_nowait()
                case = cases[row]
                question = question_of(render_messages(baseline, case.values))
                score = await pairwise_score(
                    self.call,
                    judge,
                    case,
                    question,
                    candidate,
                    reference_answer,
                    cap_reasoning=self.is_local(judge.model),
                )
                self.store.add_scores(run_id, row, variant, repeat, [score])
                tally.pairs_done += 1
                tally.add_cost(score.cost_usd, score.cached)
                if on_progress is not None:
                    on_progress(tally.progress())

        limit = self.limit_for(_provider(judge.model))
        await _run_workers([asyncio.create_task(worker()) for _ in range(limit)], cancel)

    async def run_cell(self, cell: Cell) -> CellRecord:
        variant, case = cell.variant, cell.case
        try:
            messages = render_messages(variant, case.values)
        except PromptDeckError as exc:
            failed = CallResult(
                variant.model, "", None, None, 0.0, None, error=str(exc), error_kind="template"
            )
            return CellRecord(case.id, variant.name, cell.repeat, case.category, failed)
        result, cached = await self.call(variant.model, messages, variant.params, cell.repeat)
        fallback_used = False
        if not result.ok and variant.fallback:
            second, cached = await self.call(
                variant.fallback, messages, variant.params, cell.repeat
            )
            if second.ok:
                result, fallback_used = second, True
        return CellRecord(
            case.id, variant.name, cell.repeat, case.category, result, cached, fallback_used
        )

    async def call(
        self, model_ref: str, messages: tuple[Message, ...], params: object, sample: int = 0
    ) -> tuple[CallResult, bool]:
        """One cached, bounded, rate-limited, measured call. Returns (result, cached).

        `sample` tells repeats apart: repeat k of a cell is its own cache entry, so k
        repeats are k real answers (and re-running them is still free)."""
        try:
            provider, model = self.registry.resolve(model_ref)
        except PromptDeckError as exc:
            return CallResult(
                model_ref, "", None, None, 0.0, None, error=str(exc), error_kind="config"
            ), False
        request = ChatRequest(model, messages, dict(params) if isinstance(params, dict) else {})
        key = request_key(model_ref, request) + (f"#{sample}" if sample else "")
        if self.use_cache and (hit := self.store.cache_get(key)) is not None:
            return hit, True
        name = _provider(model_ref)
        if name not in self._limits:
            self._limits[name] = asyncio.Semaphore(self.limit_for(name))
            if self.rpm:
                self._rates[name] = _RateLimit(self.rpm)
        async with self._limits[name]:
            if name in self._rates:
                await self._rates[name].wait()
            result = await stream_call(
                provider,
                request,
                model_ref=model_ref,
                prices=self.registry.prices,
                max_retries=self.max_retries,
            )
        if result.ok and self.use_cache:
            self.store.cache_put(key, result)
        return result, False


def _provider(model_ref: str) -> str:
    try:
        return split_model_ref(model_ref)[0]
    except PromptDeckError:
        return model_ref


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
