"""A live side-by-side run: several variants streamed at once, in a background thread.

The UI never streams itself (a widget click would rerun the script and drop the
partial text). Instead a `LiveRun` owns a daemon thread with its own event loop,
streams every column concurrently into lock-protected buffers, and the page polls
`snapshot()`. `stop()` keeps whatever already arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from promptdeck.errors import PromptDeckError
from promptdeck.model.call import CallResult, stream_call
from promptdeck.model.http import run_with_client
from promptdeck.model.registry import Registry
from promptdeck.model.types import ChatRequest, estimate_usage
from promptdeck.scoring.checks import CheckResult, run_checks
from promptdeck.store.sqlite import Store
from promptdeck.workspace.prompts import PromptVariant, render_messages


@dataclass(frozen=True)
class ColumnPlan:
    """What one column will run; `error` is set when it cannot run (e.g. a missing variable)."""

    key: str
    variant: PromptVariant
    model_ref: str
    request: ChatRequest | None
    error: str | None = None


@dataclass(frozen=True)
class ColumnView:
    """A consistent copy of one column, safe to render from another thread."""

    key: str
    model_ref: str
    status: str  # waiting | streaming | done | error | stopped
    text: str
    note: str = ""
    result: CallResult | None = None
    checks: tuple[CheckResult, ...] = ()
    call_id: int | None = None


def plan_columns(
    variants: Sequence[PromptVariant], inputs: Mapping[str, object], registry: Registry
) -> list[ColumnPlan]:
    """Render each variant with the same inputs; a failure stays in its own column."""
    plans = []
    for i, variant in enumerate(variants):
        key = f"{i}:{variant.name}"
        try:
            messages = render_messages(variant, inputs)
            _, model = registry.resolve(variant.model)
            request = ChatRequest(model, messages, dict(variant.params))
            plans.append(ColumnPlan(key, variant, variant.model, request))
        except PromptDeckError as exc:
            plans.append(ColumnPlan(key, variant, variant.model, None, str(exc)))
    return plans


@dataclass
class _Column:
    plan: ColumnPlan
    status: str = "waiting"
    parts: list[str] = field(default_factory=list)
    note: str = ""
    result: CallResult | None = None
    checks: tuple[CheckResult, ...] = ()
    call_id: int | None = None
    ttft_ms: float | None = None


class LiveRun:
    """Streams every planned column concurrently; thread-safe to poll and stop."""

    def __init__(
        self, plans: Sequence[ColumnPlan], registry: Registry, store: Store | None
    ) -> None:
        self._columns = [_Column(p) for p in plans]
        self._registry = registry
        self._store = store
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._main, name="promptdeck-live", daemon=True)
        for col in self._columns:
            if col.plan.error:
                col.status, col.note = "error", col.plan.error

    def start(self) -> LiveRun:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Cancel the streams that are still going; what arrived is kept."""
        with self._lock:
            self._stopped = True
            loop, tasks = self._loop, list(self._tasks)
        if loop is not None:
            for task in tasks:
                loop.call_soon_threadsafe(task.cancel)

    def snapshot(self) -> list[ColumnView]:
        with self._lock:
            return [
                ColumnView(
                    c.plan.key,
                    c.plan.model_ref,
                    c.status,
                    "".join(c.parts),
                    c.note,
                    c.result,
                    c.checks,
                    c.call_id,
                )
                for c in self._columns
            ]

    def _main(self) -> None:
        run_with_client(self._run_all())

    async def _run_all(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._loop = asyncio.get_running_loop()
            self._tasks = [
                asyncio.create_task(self._run_column(c)) for c in self._columns if not c.plan.error
            ]
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run_column(self, col: _Column) -> None:
        plan = col.plan
        assert plan.request is not None
        start = time.perf_counter()

        def on_text(chunk: str) -> None:
            with self._lock:
                if col.ttft_ms is None:
                    col.ttft_ms = (time.perf_counter() - start) * 1000
                col.status, col.note = "streaming", ""
                col.parts.append(chunk)

        def on_status(note: str) -> None:
            with self._lock:
                col.note = note

        try:
            provider, _ = self._registry.resolve(plan.model_ref)
            result = await stream_call(
                provider,
                plan.request,
                model_ref=plan.model_ref,
                prices=self._registry.prices,
                on_text=on_text,
                on_status=on_status,
            )
        except asyncio.CancelledError:
            result = self._stopped_result(col, plan.request, start)
        except Exception as exc:  # a bug in one column must not take the others down
            result = CallResult(
                plan.model_ref,
                "".join(col.parts),
                None,
                None,
                (time.perf_counter() - start) * 1000,
                None,
                error=f"unexpected error: {exc!r}",
                error_kind="internal",
            )
        self._finish(col, result)

    def _stopped_result(self, col: _Column, request: ChatRequest, start: float) -> CallResult:
        with self._lock:
            text, ttft = "".join(col.parts), col.ttft_ms
        # The provider's usage record never arrived: estimate (and mark) what was shown.
        usage = estimate_usage(request, text) if text else None
        cost = self._registry.prices.cost(col.plan.model_ref, usage) if usage else None
        latency = (time.perf_counter() - start) * 1000
        return CallResult(
            col.plan.model_ref,
            text,
            usage,
            ttft,
            latency,
            cost,
            error="stopped by the user",
            error_kind="stopped",
        )

    def _finish(self, col: _Column, result: CallResult) -> None:
        variant = col.plan.variant
        checks: tuple[CheckResult, ...] = ()
        if result.ok and variant.checks:
            checks = tuple(
                run_checks(
                    variant.checks,
                    result.text,
                    latency_ms=result.latency_ms,
                    cost_usd=result.cost_usd,
                )
            )
        call_id = None
        if self._store is not None and col.plan.request is not None:
            call_id = self._store.record_call(
                result, col.plan.request, source="playground", variant=variant.name
            )
        with self._lock:
            col.result, col.checks, col.call_id = result, checks, call_id
            col.parts = [result.text] if result.text else col.parts
            col.status = {None: "done", "stopped": "stopped"}.get(result.error_kind, "error")
            col.note = result.error or ""
