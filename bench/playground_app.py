"""What does the app cost a Playground run on the embedded model? Three support variants
answer one ticket side by side on SmolLM2: in-process (LiveRun, the baseline) and in the
app in headless Chromium, with the shipped config (`runner.postScriptGC = false`) and with
Streamlit's default (a full garbage collection after every script run, the Playground's
redraws included: 10 a second when the figures below were measured, 5 now). Each figure is
output tokens / total time per column, the median of the three columns, of a second run (the
first loads the model's instances).

Usage: .venv/bin/python bench/playground_app.py
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import Page, sync_playwright

from promptdeck.evals.live import LiveRun, plan_columns
from promptdeck.model.secrets import Secrets
from promptdeck.workspace.prompts import load_prompts
from promptdeck.workspace.providers_file import open_registry
from tests.e2e.conftest import CHROMIUM, ROOT, running_app, wait_idle

VARIANTS = ["support/production", "support/concise", "support/empathetic"]
TICKET = "The lamp I ordered arrived with a cracked shade. Can I get a replacement?"
METRICS = re.compile(r"total ([\d.,]+) s · ≈?(\d+) tokens out")


def in_process(workspace: Path) -> float:
    registry = open_registry(workspace / "providers.yaml", Secrets())
    library = load_prompts(workspace / "prompts")
    variants = [library.variants[name] for name in VARIANTS]
    rates: list[float] = []
    for _ in range(2):
        run = LiveRun(plan_columns(variants, {"input": TICKET}), registry, None).start()
        assert run.wait(600)
        rates = []
        for view in run.snapshot():
            result = view.result
            assert result is not None and result.usage is not None, view.note
            rates.append(result.usage.output_tokens / (result.latency_ms / 1000))
    return statistics.median(rates)


def one_run(page: Page, text: str) -> float:
    box = page.get_by_role("textbox", name="input")
    box.fill(text)
    box.press("Control+Enter")
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    metrics = "document.body.innerText.split('TTFT').length - 1"
    page.wait_for_function(f"{metrics} < 3")  # the last run's columns are gone
    page.wait_for_function(f"{metrics} == 3", timeout=600_000)
    wait_idle(page)
    found = METRICS.findall(page.locator("body").inner_text())
    assert len(found) == 3, found
    return statistics.median(int(tokens) / float(total.replace(",", "")) for total, tokens in found)


def in_app(workspace: Path, gc_after_each_run: bool) -> float:
    os.environ["STREAMLIT_RUNNER_POST_SCRIPT_GC"] = str(gc_after_each_run).lower()
    try:
        with running_app(workspace) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            query = "&".join(f"variant={name}" for name in VARIANTS)
            page.goto(f"{url}/playground?{query}")
            wait_idle(page)
            one_run(page, TICKET + " ")  # loads the instances
            rate = one_run(page, TICKET)
            browser.close()
            return rate
    finally:
        del os.environ["STREAMLIT_RUNNER_POST_SCRIPT_GC"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        for folder in ("prompts", "datasets"):
            shutil.copytree(ROOT / folder, workspace / folder)
        started = time.perf_counter()
        base = in_process(workspace)
        shipped = in_app(workspace, gc_after_each_run=False)
        default = in_app(workspace, gc_after_each_run=True)
    print(f"{os.cpu_count()} cores; 3 columns on SmolLM2; tokens/s per column (median)")
    print(f"in-process LiveRun (baseline)        {base:6.1f} tok/s  1.00")
    print(f"app, shipped config (no forced GC)   {shipped:6.1f} tok/s  {shipped / base:.2f}")
    print(f"app, Streamlit default (forced GC)   {default:6.1f} tok/s  {default / base:.2f}")
    print(f"({time.perf_counter() - started:.0f} s; load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
