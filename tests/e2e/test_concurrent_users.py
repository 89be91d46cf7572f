"""Concurrent users on one server: separate browser sessions never see each other's state.

Two sessions run evals on the Evaluate page while a third streams three columns in the
Playground, all against the local test server with per-request delays so that they
overlap. Then two sessions stream from the embedded SmolLM2 at once, four streams on a pool
of three llama.cpp instances: the instance pool's locking must hand each stream its own.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.e2e.conftest import pick_variants, plan_playground, shot, wait_idle
from tests.llm_server import LLMServer, Scenario

pytestmark = pytest.mark.browser

PG_WORDS = [f"tok{i} " for i in range(40)]  # 40 x 50 ms: each column streams for ~2 s
EVAL_DELAY = 0.35  # seconds before each eval answer, one call in flight per run
# variant -> model; model names of their own, so that other tests' scenarios are untouched
EVAL_VARIANTS = {f"conc/e{i}": f"conc-e{i}" for i in range(1, 5)}
PG_VARIANTS = {"conc/p1": "conc-p1", "conc/p2": "conc-p2", "conc/p3": "conc-p3"}
LOCAL_VARIANTS = ("conc/local-a", "conc/local-b")
REMOTE = """description: concurrency test variant
model: fake/{model}
params: {{max_tokens: 100}}
user: "{{{{ input }}}}"
"""
LOCAL = """description: concurrency test on the embedded model
model: local/smollm2
params: {{max_tokens: 16, temperature: 0}}
user: "{prompt} {{{{ input }}}}"
"""


@pytest.fixture
def workspace(app_workspace: Path, llm: LLMServer) -> Iterator[Path]:
    folder = app_workspace / "prompts" / "conc"
    folder.mkdir(exist_ok=True)
    for name, model in {**EVAL_VARIANTS, **PG_VARIANTS}.items():
        (folder / f"{name.split('/')[1]}.yaml").write_text(REMOTE.format(model=model))
    for name, prompt in zip(LOCAL_VARIANTS, ("Name a colour.", "Name a fruit."), strict=True):
        (folder / f"{name.split('/')[1]}.yaml").write_text(LOCAL.format(prompt=prompt))
    for model in EVAL_VARIANTS.values():  # each answer names its model: no mixed-up cells
        llm.set_scenario(
            model, Scenario(tokens=["answer ", "from ", model], first_token_delay=EVAL_DELAY)
        )
    for model in PG_VARIANTS.values():
        llm.set_scenario(model, Scenario(tokens=PG_WORDS, token_delay=0.05))
    yield app_workspace
    shutil.rmtree(folder)  # the shared workspace's defaults are other tests' business


@pytest.fixture
def new_session(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[[], Page]]:
    """A fresh browser context per call: its own cookies, websocket and Streamlit session."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        return context.new_page()

    yield make
    for i, context in enumerate(contexts):
        if getattr(request.node, "failed", False):  # what each session showed when it failed
            shot(context.pages[0], f"FAILED-{request.node.name}-session{i + 1}")
        context.close()


def plan_eval(page: Page, app_url: str, variants: list[str], rows: int) -> None:
    """Fill the Evaluate form (dataset, variants, sample size, no judge, 1 call in flight)."""
    page.goto(f"{app_url}/evaluate")
    wait_idle(page)
    page.get_by_text("A dataset", exact=True).click()
    wait_idle(page)
    pick_variants(page, variants)
    size = page.get_by_label("Sample size (rows)")
    size.fill(str(rows))
    size.press("Enter")
    wait_idle(page)
    page.get_by_text("Judge every answer").click()  # off: the answers are what is compared
    wait_idle(page)
    page.get_by_test_id("stSlider").get_by_role("slider").press("Home")
    wait_idle(page)


def outputs(page: Page, n: int) -> list[str]:
    return [page.locator(f".st-key-pg_out_{i}").inner_text() for i in range(n)]


def finished(page: Page, columns: int) -> bool:
    """Every Playground column shows its metrics line: its stream ended."""
    return page.get_by_text("TTFT").count() == columns


def wait_until(check: Callable[[], bool], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_id_of(page: Page) -> str:
    match = re.search(r"[?&]run=([\w-]+)", page.url)
    assert match, page.url
    return match.group(1)


def read_db(workspace: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    path = workspace / ".promptdeck" / "promptdeck.sqlite"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def span(llm: LLMServer, models: set[str]) -> tuple[float, float]:
    times = [r.arrived for r in llm.requests if r.model in models]
    assert times, models
    return min(times), max(times)


def test_two_evals_and_a_playground_at_once(
    workspace: Path, app_url: str, llm: LLMServer, new_session: Callable[[], Page]
) -> None:
    first, second, playground = new_session(), new_session(), new_session()
    plan_eval(first, app_url, ["conc/e1", "conc/e2"], rows=4)  # 8 cells
    # Two variants each: a run of the baseline alone crashes the Results page (KeyError
    # 'category' in pages/results.py), and other tests open the newest run there.
    plan_eval(second, app_url, ["conc/e3", "conc/e4"], rows=3)  # 6 cells
    plan_playground(playground, app_url, list(PG_VARIANTS), "Hello from the third user")
    for page in (first, second, playground):  # all three start within a fraction of a second
        page.get_by_role("button", name="Run", exact=True).click()
    first.wait_for_url(re.compile(r"run="))
    second.wait_for_url(re.compile(r"run="))
    ids = run_id_of(first), run_id_of(second)
    assert ids[0] != ids[1]

    wait_until(partial(finished, playground, 3))
    assert [t.split() for t in outputs(playground, 3)] == [[w.strip() for w in PG_WORDS]] * 3
    for page, run_id, cells in ((first, ids[0], 8), (second, ids[1], 6)):
        page.get_by_text(f"Done: {cells} cells, 0 errors.").wait_for(timeout=45_000)
        heading = page.get_by_role("heading", name=re.compile(r"^Run ")).inner_text()
        assert heading.startswith(f"Run {run_id} ")  # its own run, not the other session's
        assert f"{cells}/{cells} cells" in page.get_by_test_id("stProgress").inner_text()
    other = {first: ids[1], second: ids[0]}
    for page in (first, second, playground):
        assert page.get_by_test_id("stException").count() == 0
        if page in other:
            assert other[page] not in page.locator("body").inner_text()

    # The three users really overlapped: each eval was still calling while the other
    # started, and the Playground streamed while both evals were running.
    e12 = span(llm, {"conc-e1", "conc-e2"})
    e34 = span(llm, {"conc-e3", "conc-e4"})
    pg_start = span(llm, set(PG_VARIANTS.values()))[0]
    pg_end = pg_start + len(PG_WORDS) * 0.05  # the columns stream for at least this long
    assert e12[0] < e34[1] and e34[0] < e12[1]
    assert max(e12[0], e34[0]) < pg_end and pg_start < min(e12[1], e34[1])

    # The stored results of each run hold only its own variants, rows and answers.
    for run_id, variants, rows in (
        (ids[0], ["conc/e1", "conc/e2"], 4),
        (ids[1], ["conc/e3", "conc/e4"], 3),
    ):
        stored = read_db(workspace, "SELECT row_id, variant, output, error FROM results "
                         "WHERE run_id = ?", run_id)  # fmt: skip
        assert sorted({v for _, v, _, _ in stored}) == variants
        assert len(stored) == rows * len(variants) == len({(r, v) for r, v, _, _ in stored})
        for _, variant, output, error in stored:
            assert error is None and output == f"answer from {EVAL_VARIANTS[variant]}"
        assert read_db(workspace, "SELECT status FROM runs WHERE id = ?", run_id) == [("done",)]


def test_two_sessions_stream_from_the_local_model_at_once(
    workspace: Path, app_url: str, new_session: Callable[[], Page]
) -> None:
    """Four SmolLM2 streams, two per session, on a pool of three instances: one waits for a
    free instance, none shares one, all four finish with text."""
    sessions = [new_session(), new_session()]
    for page, text in zip(sessions, ("Answer briefly.", "Be short."), strict=True):
        plan_playground(page, app_url, list(LOCAL_VARIANTS), text)
    started = read_db(workspace, "SELECT COALESCE(MAX(id), 0) FROM calls")[0][0]
    for page in sessions:
        page.get_by_role("button", name="Run", exact=True).click()
    for page in sessions:
        wait_until(partial(finished, page, 2))
        assert all(t.strip() and t.strip() != "…" for t in outputs(page, 2)), outputs(page, 2)
        assert page.get_by_test_id("stException").count() == 0
    calls = read_db(
        workspace,
        "SELECT variant, output, error, output_tokens, request_json, created, latency_ms "
        "FROM calls WHERE id > ? AND model = 'local/smollm2'",
        started,
    )
    assert sorted(c[0] for c in calls) == sorted(LOCAL_VARIANTS * 2)
    for _, output, error, tokens, *_ in calls:
        assert error is None and output.strip() and 0 < tokens <= 16
    # The two sessions' streams ran at the same time (a call is stored when it ends).
    spans: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for *_, request, created, latency in calls:
        end = datetime.fromisoformat(created).timestamp()
        spans["Answer briefly." in request].append((end - latency / 1000, end))
    assert any(a < d and c < b for a, b in spans[True] for c, d in spans[False]), spans
