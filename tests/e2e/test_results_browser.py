"""Results journey and the offline HTML report, in headless Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from promptdeck.analysis.report import html_report
from promptdeck.analysis.run import analyze_run
from promptdeck.store.db import Store
from tests.e2e.conftest import ARTIFACTS, shot, wait_idle
from tests.llm_server import LLMServer, Scenario
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


def headline_delta(page: Page) -> float:
    text = page.get_by_text("t/new vs t/base:").first.inner_text()
    return float(re.search(r"([+-]\d+\.\d+) judge score", text).group(1))  # type: ignore[union-attr]


def test_drill_into_a_case_and_override_the_judge(
    page: Page, app_url: str, app_workspace: Path
) -> None:
    run_id = stored_run(app_workspace, rows=30)
    page.goto(f"{app_url}/results?run={run_id}")
    wait_idle(page)
    page.get_by_text("t/new vs t/base").first.wait_for()
    before = headline_delta(page)
    # the first case is open: both answers, each with the judge's verdict and reasoning
    page.get_by_text(re.compile(r"^t/base answer \d+$")).first.wait_for()
    page.get_by_text(re.compile(r"^Judge: \d — reason \d+$")).nth(1).wait_for()
    page.get_by_text("Review t/new's answer").wait_for()
    score = page.get_by_role("spinbutton", name="Your score")
    score.fill("1")
    score.press("Tab")
    page.get_by_role("button", name="Save review").click()
    wait_idle(page)
    store = Store(app_workspace / ".promptdeck" / "promptdeck.sqlite")
    overrides = store.score_overrides(run_id)
    store.close()
    assert list(overrides.values()) == [1.0]
    page.wait_for_function(
        "(b) => !document.body.innerText.includes(b)", arg=f"t/new vs t/base: {before:+.2f}"
    )
    after = headline_delta(page)
    assert after < before  # one t/new answer scored 1 by a human pulls its mean delta down
    shot(page, "results-override")


def test_html_report_renders_offline(browser: Browser, app_workspace: Path) -> None:
    store = Store(app_workspace / ".promptdeck" / "promptdeck.sqlite")
    run_id = stored_run(app_workspace, rows=30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "report.html"
    path.write_text(html_report(analyze_run(store, run_id).report_data()), encoding="utf-8")
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


def test_a_click_on_a_category_bar_filters_the_cases(
    page: Page, app_url: str, app_workspace: Path
) -> None:
    run_id = stored_run(app_workspace, rows=30)
    page.goto(f"{app_url}/results?run={run_id}")
    wait_idle(page)
    category = page.get_by_test_id("stSelectbox").filter(has_text="Category").locator("input")
    expect(category).to_have_value("(all)")
    chart = page.get_by_test_id("stVegaLiteChart").first
    # The chart is SVG: Vega labels each mark; the point of category b is the one to click.
    dot = chart.locator("[aria-label^='variant − baseline'][aria-label*='category: b;']")
    dot.click()
    wait_idle(page)
    expect(category).to_have_value("b")
    cases = page.locator(".st-key-res_cases")
    expect(cases).to_contain_text(re.compile(r"r\d+b\d"))  # row id, then its category
    expect(cases).not_to_contain_text(re.compile(r"r\d+a\d"))  # only b's rows are listed
    shot(page, "results-chart-filter")


def test_a_run_until_decided_says_why_it_stopped(
    page: Page, app_url: str, app_workspace: Path, llm: LLMServer
) -> None:
    """`promptdeck run --until-decided` against the local test server, in the app's own
    workspace and store; the Results page then says when and why the run stopped."""
    llm.set_scenario("judge", Scenario(tokens=['{"reasoning": "Fine.", "score": 4}']))
    suite = app_workspace / "datasets" / "until.suite.yaml"
    suite.write_text(
        "dataset: support_tickets.csv\nvariants: [demo/alpha, demo/beta]\nbaseline: demo/alpha\n"
        "judge: {model: fake/judge, rubric: Be fair.}\n"
        "gates:\n  - {metric: judge_score, max_drop: 1.0}\n  - {metric: error_rate, max: 0.1}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env["PROMPTDECK_HOME"] = str(app_workspace / ".promptdeck")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "promptdeck", "run", str(suite), "--until-decided",
             "--batch", "5", "--gate"],
            cwd=app_workspace, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        suite.unlink()
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.splitlines()[0].removeprefix("run_id: ")
    page.goto(f"{app_url}/results?run={run_id}")
    wait_idle(page)
    page.get_by_text(
        re.compile(r"Run until decided: stopped after \d+ rows \(\d+ looks\)")
    ).wait_for()
    page.get_by_text("every gate was decided").first.wait_for()
    page.get_by_text("Gates: pass").first.wait_for()
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "results-until-decided")
