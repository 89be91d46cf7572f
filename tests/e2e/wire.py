"""What a streaming Playground run costs on the websocket, measured in a real browser.

Every frame the server sends the browser (`framereceived`) is counted from the click on Run
until every column shows its metrics; meanwhile one column's text length is sampled each
time it changes on screen, so a run that is cheap because it stopped showing the stream
cannot pass for a streaming one. Used by tests/e2e/test_playground_wire_browser.py and
bench/scale.py (wire).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, WebSocket

from tests.e2e.conftest import plan_playground, wait_idle
from tests.llm_server import LLMServer, Scenario

TOKENS = 400
TOKEN_DELAY = 0.015  # 400 tokens in about 6 s: a few seconds of streaming
WIRE_TOKENS = [f"tok{i:03d} " for i in range(TOKENS)]
WIRE_VARIANT = """description: {model}, 400 tokens
model: fake/{model}
params: {{max_tokens: 1000}}
user: "{{{{ input }}}}"
"""
MODELS = ("wire_a", "wire_b", "wire_c")
CHANGED = """n => {
  const box = document.querySelector('.st-key-pg_out_0');
  return box !== null && box.innerText.length !== n;
}"""


@dataclass(frozen=True)
class WireRun:
    columns: int
    bytes: int  # server -> browser websocket payloads, from Run to the last answer done
    frames: int
    seconds: float  # from the click to every column done
    lengths: tuple[int, ...]  # the first column's distinct text lengths seen while streaming
    streaming_s: float  # from its first visible text to its last token on screen

    @property
    def updates_per_s(self) -> float:
        return (len(self.lengths) - 1) / self.streaming_s if self.streaming_s > 0 else 0.0


def add_wire_variants(workspace: Path, server: LLMServer) -> list[str]:
    """Variants wire/a..c, each answering TOKENS tokens TOKEN_DELAY apart."""
    folder = workspace / "prompts" / "wire"
    folder.mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        (folder / f"{model[-1]}.yaml").write_text(WIRE_VARIANT.format(model=model))
        server.set_scenario(model, Scenario(tokens=WIRE_TOKENS, token_delay=TOKEN_DELAY))
    return [f"wire/{model[-1]}" for model in MODELS]


def measure_run(page: Page, app_url: str, variants: list[str]) -> WireRun:
    """One Playground run of `variants` on a fresh page (the websocket is watched from its
    opening), measured from the click on Run to every column done."""
    received: list[int] = []

    def watch(ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: received.append(len(payload)))

    page.on("websocket", watch)
    plan_playground(page, app_url, variants, "Count, please")
    first = page.locator(".st-key-pg_out_0")
    last = WIRE_TOKENS[-1].strip()
    done = f"document.body.innerText.split('TTFT').length - 1 == {len(variants)}"
    seen = len(received)
    started = time.monotonic()
    page.get_by_role("button", name="Run", exact=True).click()
    lengths: list[int] = []
    first_at = end_at = started
    while True:  # each change of the first column's text, as the browser shows it
        text = first.inner_text()
        if text.strip() not in ("", "…") and (not lengths or len(text) != lengths[-1]):
            lengths.append(len(text))
            end_at = time.monotonic()
            if len(lengths) == 1:
                first_at = end_at
        if last in text:
            break
        assert time.monotonic() - started < 120, "the first column never finished"
        page.wait_for_function(CHANGED, arg=len(text), timeout=120_000)
    page.wait_for_function(done, timeout=120_000)
    seconds = time.monotonic() - started
    wait_idle(page)  # the last redraw (the page's rerun once the run ends) is counted too
    frames = received[seen:]
    return WireRun(
        len(variants), sum(frames), len(frames), seconds, tuple(lengths), end_at - first_at
    )
