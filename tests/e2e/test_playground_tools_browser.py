"""The Playground with a variant that thinks and calls a tool, in real Chromium: the tool step
and the thinking appear while the column streams, apart from the answer; then a follow-up
continues all three columns, each after its own conversation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, plan_playground, shot, wait_idle
from tests.llm_server import LLMServer, Scenario

pytestmark = pytest.mark.browser

THINKER = """description: looks an order up before answering
model: fake/thinker
params: {max_tokens: 200}
user: "{{ input }}"
tools:
  - name: get_order
    description: Look up an order by its id
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
    mock: '{"order": "{{ args.order_id }}", "status": "shipped", "carrier": "DHL",
      "eta": "tomorrow before noon"}'
"""
THOUGHT = "The customer asks about order A17, so I should look it up before answering."
QUESTION = "Where is my order A17?"
FOLLOW_UP = "Can it be delivered to my office instead?"
COLUMNS = ["demo/alpha", "demo/thinker", "demo/beta"]


def box(page: Page, index: int) -> str:
    return page.locator(f".st-key-pg_out_{index}").inner_text()


def wait_until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_tool_step_and_thinking_stream_then_a_follow_up_reaches_every_column(
    page: Page, app_url: str, app_workspace: Path, llm: LLMServer
) -> None:
    variant = app_workspace / "prompts" / "demo" / "thinker.yaml"
    variant.write_text(THINKER)
    for model in ("alpha", "beta"):  # echo the last user message, a word at a time
        llm.set_scenario(model, Scenario(token_delay=0.05))
    llm.set_scenario(
        "thinker",
        Scenario(
            thinking=[f"{w} " for w in THOUGHT.split()],
            tool_calls=[("get_order", '{"order_id": "A17"}')],
            first_token_delay=0.4,
            token_delay=0.15,  # seconds of streaming left once the step shows, under load too
        ),
    )
    page.set_viewport_size({"width": 1500, "height": 1900})  # the columns whole on screen
    try:
        plan_playground(page, app_url, COLUMNS, QUESTION)
        page.get_by_role("button", name="Run").click()
        thinker = page.get_by_test_id("stColumn").filter(has=page.locator(".st-key-pg_out_1"))
        step = thinker.get_by_test_id("stExpander").filter(has_text="Tool call: get_order")
        thinking = thinker.get_by_text("Thinking", exact=False).first
        # While the column streams: its thinking area and its tool step are there, the
        # answer is not complete, and the run can still be stopped.
        expect(thinking).to_be_visible(timeout=20_000)
        expect(step).to_be_visible(timeout=20_000)
        expect(page.get_by_role("button", name="Stop")).to_be_enabled()
        assert "tomorrow before noon" not in box(page, 1)
        shot(page, "playground-tools-streaming")

        wait_until(lambda: page.get_by_text("TTFT").count() == 3)
        wait_idle(page)
        answer = box(page, 1)
        assert "tomorrow before noon" in answer  # answered from the tool's result
        assert "look it up" not in answer  # the thinking is never part of the answer
        expect(step.get_by_text('"order_id": "A17"')).to_be_visible()  # the arguments
        expect(step.get_by_text('"carrier": "DHL"')).to_be_visible()  # the result
        expect(thinker.get_by_text("first thought")).to_have_count(2)  # label and metrics
        columns = page.get_by_test_id("stHorizontalBlock").filter(has=thinker).last
        columns.screenshot(path=str(ARTIFACTS / "playground-tools-columns.png"))  # the README's
        thinker.get_by_text("Thinking · first thought").click()
        expect(thinker.get_by_text("so I should look it up").first).to_be_visible()
        assert page.get_by_test_id("stException").count() == 0
        shot(page, "playground-tools")

        chat = page.get_by_placeholder("Follow up in every column")
        chat.fill(FOLLOW_UP)
        chat.press("Enter")
        wait_until(lambda: all(f"Echo: {FOLLOW_UP}" in box(page, i) for i in range(3)))
        wait_until(lambda: page.get_by_text("TTFT").count() == 3)
        wait_idle(page)
        for i, name in enumerate(COLUMNS):
            column = page.get_by_test_id("stColumn").filter(has=page.locator(f".st-key-pg_out_{i}"))
            expect(column.get_by_text(f"Turn 1 · {QUESTION}")).to_be_visible()
            expect(column.get_by_text("Turn 2")).to_be_visible()
            assert QUESTION not in box(page, i), name  # the first turn is collapsed above
        assert page.get_by_test_id("stException").count() == 0
        shot(page, "playground-tools-follow-up")
    finally:
        variant.unlink()
