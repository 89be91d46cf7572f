"""Playground journeys in headless Chromium against the real app and a local SSE server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import WORDS, plan_playground, shot, wait_idle

pytestmark = pytest.mark.browser
LAST = WORDS[-1].strip()


def outputs(page: Page, n: int) -> list[str]:
    return [page.locator(f".st-key-pg_out_{i}").inner_text() for i in range(n)]


def start_run(page: Page, app_url: str, variants: list[str], text: str = "Hello") -> None:
    plan_playground(page, app_url, variants, text)
    page.get_by_role("button", name="Run").click()


def wait_until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_deep_link_on_a_fresh_server_shows_the_frame(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/playground")  # the very first request this server sees
    wait_idle(page)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("PromptDeck").wait_for()
    sidebar.get_by_role("link", name="Home").wait_for()
    page.get_by_role("heading", name="Playground").wait_for()
    page.get_by_text("prompts/demo/broken.yaml, line 3: invalid YAML").first.wait_for()
    assert page.get_by_test_id("stException").count() == 0


def test_three_columns_stream_together(page: Page, app_url: str) -> None:
    start_run(page, app_url, ["demo/alpha", "demo/beta", "demo/gamma"])
    together = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        texts = outputs(page, 3)
        if all("word3" in t for t in texts) and not any(LAST in t for t in texts):
            together = True  # every column has text while none has finished
            break
        time.sleep(0.05)
    assert together
    shot(page, "playground-streaming")
    wait_until(lambda: page.get_by_text("TTFT").count() == 3)
    assert all(LAST in t for t in outputs(page, 3))
    shot(page, "playground-done")


def test_a_click_during_streaming_loses_nothing(page: Page, app_url: str) -> None:
    start_run(page, app_url, ["demo/alpha", "demo/beta"])
    wait_until(lambda: "word5" in outputs(page, 2)[0])
    page.get_by_text("Scratch prompt").first.click()  # a widget that reruns the script
    page.get_by_text("Fill from a dataset row").click()
    wait_until(lambda: page.get_by_text("TTFT").count() == 2)
    assert outputs(page, 2)[0].split() == [w.strip() for w in WORDS]
    assert page.get_by_test_id("stException").count() == 0


def test_stop_keeps_the_partial_text(page: Page, app_url: str) -> None:
    start_run(page, app_url, ["demo/alpha"])
    wait_until(lambda: "word8" in outputs(page, 1)[0])
    page.get_by_role("button", name="Stop").click()
    wait_until(lambda: page.get_by_text("stopped by the user").count() > 0)
    wait_idle(page)  # the badge is drawn before the box: let the whole redraw land
    kept = outputs(page, 1)[0]
    time.sleep(1)
    assert outputs(page, 1)[0] == kept
    assert "word8" in kept and LAST not in kept
    shot(page, "playground-stopped")


def test_a_bad_key_fails_in_its_own_column(page: Page, app_url: str) -> None:
    start_run(page, app_url, ["demo/alpha", "demo/badkey"])
    wait_until(lambda: page.get_by_text("refused the API key").count() > 0)
    wait_until(lambda: LAST in outputs(page, 2)[0])
    assert page.get_by_text("HTTP 401").count() > 0
    shot(page, "playground-error")


def test_a_failing_primary_falls_back_in_its_column(
    page: Page, app_url: str, app_workspace: Path
) -> None:
    """The variant's primary model refuses the key (401): the column shows the fallback's
    answer and says which model answered and why, as an eval cell records it."""
    guarded = app_workspace / "prompts" / "demo" / "guarded.yaml"
    guarded.write_text(
        "model: fake/badkey\nfallback: fake/alpha\nparams: {max_tokens: 100}\nuser: '{{ input }}'\n"
    )
    try:
        start_run(page, app_url, ["demo/guarded"])
        wait_until(lambda: LAST in outputs(page, 1)[0])
        page.get_by_text("Answered by the fallback fake/alpha").wait_for()
        page.get_by_text("fallback for fake/badkey").wait_for()
        assert page.get_by_text("refused the API key (HTTP 401)").count() > 0
        assert page.get_by_test_id("stException").count() == 0
        shot(page, "playground-fallback")
    finally:
        guarded.unlink()
