"""Starting a run: the one path the CLI, the Evaluate page and the demo share."""

from __future__ import annotations

from pathlib import Path

from promptdeck.evals import demo
from promptdeck.evals.jobs import JobRegistry
from promptdeck.evals.start import RunOptions, open_run, start_in_background
from promptdeck.store.db import Store
from promptdeck.store.settings import Settings, save_settings
from tests.evals.test_runner import make_plan
from tests.helpers import server_registry, variant
from tests.llm_server import LLMServer


def test_options_come_from_the_settings_page_unless_overridden(
    tmp_path: Path, store_target: str
) -> None:
    store = Store(store_target)
    assert RunOptions.from_settings(store) == RunOptions(None, None, True, True)
    save_settings(store, Settings("local/smollm2", 8, False))
    assert RunOptions.from_settings(store) == RunOptions(8, None, False, True)
    assert RunOptions.from_settings(store, concurrency=2, rpm=30.0, resume=False) == RunOptions(
        2, 30.0, False, False
    )


def test_a_second_start_of_the_same_plan_resumes_its_unfinished_run(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    store, jobs = Store(store_target), JobRegistry()
    registry = server_registry(llm_server)
    plan = make_plan([variant("t/a", "fake/a")], 4)
    opened = open_run(store, plan, resume=True)
    store.set_run_status(opened.run_id, "cancelled")  # stopped before any cell
    job = start_in_background(registry, store, jobs, plan, RunOptions())
    assert job.run_id == opened.run_id and job.wait(30)
    assert store.get_run(job.run_id).status == "done"
    again = start_in_background(registry, store, jobs, plan, RunOptions())
    assert again.run_id != opened.run_id  # the first one is done: a new run
    assert again.wait(30) and llm_server.request_count("a") == 4  # the rest was cached


def test_the_demo_follows_the_saved_cache_setting(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    store, jobs = Store(store_target), JobRegistry()
    save_settings(store, Settings(use_cache=False))
    plan = make_plan([variant("t/a", "fake/a")], 2)
    job = demo.start_demo(plan, server_registry(llm_server), store, jobs)
    assert job.wait(30)
    assert job.runner.policy.cache is None  # the Settings page said: no cache
    assert job.runner.policy.concurrency == demo.DEMO_CONCURRENCY
    assert store.get_run(job.run_id).name.endswith("(demo)")
