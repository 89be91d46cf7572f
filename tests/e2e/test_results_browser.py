"""Results journey and the offline HTML report, in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from promptdeck.report import html_report
from promptdeck.results import run_report
from promptdeck.store import Store
from tests.e2e.conftest import ARTIFACTS, shot, wait_idle
from tests.pages.test_results import stored_run

pytestmark = pytest.mark.browser


def test_results_page_headline_gates_charts_and_a_case(
    page: Page, app_url: str, app_workspace: Path
) -> None:
    run_id = stored_run(app_workspace, rows=30)
    page.goto(f"{app_url}/results?run={run_id}")  # other tests' runs may be newer
    wait_idle(page)
    page.get_by_text("t/new vs t/base").first.wait_for()  # waits until it is shown
    page.get_by_text("Gates: pass").first.wait_for()
    page.get_by_test_id("stVegaLiteChart").first.wait_for()
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "results")
    page.goto(f"{app_url}/results?run={run_id}&present=1")
    wait_idle(page)
    page.get_by_test_id("stVegaLiteChart").first.wait_for()
    shot(page, "results-presentation")


def test_html_report_renders_offline(browser: Browser, app_workspace: Path) -> None:
    store = Store(app_workspace / ".promptdeck" / "promptdeck.sqlite")
    run_id = stored_run(app_workspace, rows=30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "report.html"
    path.write_text(html_report(**run_report(store, run_id)), encoding="utf-8")
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 1600})
    requests: list[str] = []
    page = context.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    assert page.locator("svg").count() >= 3  # delta by category, wins/ties/losses, scores
    assert page.get_by_text("better").first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert requests == [path.as_uri()]  # nothing but the file itself
    context.close()
    store.close()
