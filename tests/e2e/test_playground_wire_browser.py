"""A streaming Playground run's websocket traffic, in headless Chromium: three columns of
400 tokens each stay under half a megabyte, and the answer still visibly grows."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.wire import TOKENS, add_wire_variants, measure_run
from tests.llm_server import LLMServer

pytestmark = pytest.mark.browser
MAX_BYTES = 500_000
MIN_STEPS = 10  # distinct lengths of the first column's text on screen before it is done


def test_three_columns_of_400_tokens_cost_under_half_a_megabyte(
    page: Page, app_url: str, app_workspace: Path, llm: LLMServer
) -> None:
    variants = add_wire_variants(app_workspace, llm)
    run = measure_run(page, app_url, variants)
    assert run.bytes <= MAX_BYTES, f"{run.bytes:,} bytes in {run.frames} frames"
    # Streaming, not one final paint: the text grew through many lengths, each longer.
    assert len(run.lengths) >= MIN_STEPS, run.lengths
    assert list(run.lengths) == sorted(run.lengths)
    assert run.updates_per_s >= 3, f"{run.updates_per_s:.1f} updates/s"
    text = page.locator(".st-key-pg_out_0").inner_text().split()
    assert len(text) == TOKENS and text[-1] == f"tok{TOKENS - 1:03d}"
    assert page.get_by_test_id("stException").count() == 0
