"""First run, offline, no key: an empty Results page runs the demo eval in one click.

A fresh workspace as after `git clone`: the demo prompts and suite, the embedded SmolLM2
model, no store. Nothing is faked: every answer and verdict comes from llama.cpp.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, ROOT, running_app, shot, wait_idle

pytestmark = pytest.mark.browser


def cells_done(page: Page) -> tuple[int, int]:
    text = page.get_by_test_id("stProgress").inner_text()
    match = re.search(r"(\d+)/(\d+) cells", text)
    assert match, text
    return int(match.group(1)), int(match.group(2))


def test_empty_results_page_runs_the_demo_eval(page: Page, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "prompts", tmp_path / "prompts")
    shutil.copytree(ROOT / "datasets", tmp_path / "datasets")
    with running_app(tmp_path) as url:
        page.goto(url)  # Home offers the same click where recent runs would be
        wait_idle(page)
        page.get_by_role("button", name="Run the demo eval").wait_for()  # waits for it

        page.goto(f"{url}/results")
        wait_idle(page)
        page.get_by_text("No eval runs yet").wait_for()
        shot(page, "first-run-empty")
        started = time.monotonic()
        page.get_by_role("button", name="Run the demo eval").click()
        page.wait_for_url(re.compile(r"run="))
        page.get_by_test_id("stProgress").wait_for()
        assert cells_done(page)[1] == 18  # 6 tickets x 3 prompts, each answer judged
        page.get_by_text("Demo judge.").first.wait_for()
        page.wait_for_function("document.body.innerText.match(/[1-9]\\d*\\/18 cells/)")
        shot(page, "first-run-demo-progress")

        page.reload()  # a refresh: a new session, `?run=` reattaches to the job
        page.get_by_test_id("stProgress").wait_for()
        sidebar = page.get_by_test_id("stSidebarUserContent")
        sidebar.get_by_role("link", name="Home").click()  # away, and back
        page.get_by_text("Recent eval runs").wait_for()
        sidebar.get_by_role("link", name="Results").click()
        page.get_by_test_id("stProgress").wait_for()  # the newest run, still going
        assert cells_done(page)[0] < 18

        headline = page.get_by_text("vs support/production").first
        headline.wait_for(timeout=600_000)  # the fragment redraws the page when it is done
        elapsed = time.monotonic() - started
        wait_idle(page)
        page.get_by_test_id("stVegaLiteChart").first.wait_for()
        expect(page.get_by_text("concise vs support/production")).to_have_count(1)
        expect(page.get_by_text("empathetic vs support/production")).to_have_count(1)
        expect(page.get_by_text(re.compile(r"^Gates: "))).to_have_count(1)
        expect(page.get_by_text("Demo judge.")).to_have_count(1)
        expect(page.get_by_test_id("stProgress")).to_have_count(0)
        run = page.get_by_test_id("stSelectbox").first.locator("input").input_value()
        assert run.startswith("support_tickets (demo) · "), run
        assert page.get_by_text(re.compile(r"^This run is ")).count() == 0  # it is done
        assert page.get_by_test_id("stException").count() == 0
        shot(page, "first-run-demo")
        page.get_by_test_id("stVegaLiteChart").first.scroll_into_view_if_needed()
        shot(page, "first-run-demo-charts")
        (ARTIFACTS / "first-run-demo.txt").write_text(
            f"click to results: {elapsed:.1f} s\n", encoding="utf-8"
        )
        print(f"\ndemo eval, click to results: {elapsed:.1f} s")
