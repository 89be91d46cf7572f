"""Evaluate journey in headless Chromium: a run survives page switches and a refresh."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import pick_variants, shot, wait_idle
from tests.llm_server import LLMServer, Scenario

pytestmark = pytest.mark.browser


def cells_done(page: Page) -> int:
    text = page.get_by_test_id("stProgress").inner_text()
    match = re.search(r"(\d+)/(\d+) cells", text)
    assert match, text
    return int(match.group(1))


def test_run_survives_page_switch_and_refresh(page: Page, app_url: str, llm: LLMServer) -> None:
    for model in ("alpha", "beta"):
        llm.set_scenario(model, Scenario(tokens=["ok"], first_token_delay=0.4))
    page.goto(f"{app_url}/evaluate")
    wait_idle(page)
    page.get_by_text("A dataset", exact=True).click()
    wait_idle(page)
    pick_variants(page, ["demo/alpha", "demo/beta"])
    size = page.get_by_label("Sample size (rows)")
    size.fill("10")
    size.press("Enter")
    wait_idle(page)
    page.get_by_test_id("stSlider").get_by_role("slider").press("Home")  # 1 call in flight
    wait_idle(page)
    page.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"run="))
    page.wait_for_function("document.body.innerText.match(/[1-9]\\d*\\/20 cells/)")
    before = cells_done(page)
    assert before < 20
    shot(page, "evaluate-running")

    page.get_by_role("link", name="Playground").click()  # away...
    wait_idle(page)
    page.get_by_role("link", name="Evaluate").click()  # ...and back
    page.get_by_test_id("stProgress").wait_for()
    # The same run, still going: its count goes on from where it was.
    page.wait_for_function(
        f"(document.body.innerText.match(/(\\d+)\\/20 cells/) || [0, 0])[1] > {before}"
    )
    after_switch = cells_done(page)
    assert after_switch > before

    page.reload()  # a refresh: a new browser session, the URL keeps the run
    page.get_by_test_id("stProgress").wait_for()
    assert cells_done(page) >= after_switch
    page.get_by_text("Done: 20 cells, 0 errors.").wait_for(timeout=60_000)
    assert cells_done(page) == 20
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "evaluate-done")
