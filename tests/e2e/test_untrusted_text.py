"""Untrusted text on every page, in a real browser: HTML, script and Markdown-image payloads
in file names, variant names, descriptions, dataset cells and categories, model answers,
judge reasons and error messages. No script may run and no request may leave the app.

A canary HTTP server stands for "anywhere else": every payload that would fetch points at
it, and the browser's own request log must hold nothing but the app's origin.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from promptdeck.model.types import CallResult, Usage
from promptdeck.scoring.scorers import Score
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord
from tests.e2e.conftest import running_app, shot, wait_idle
from tests.llm_server import LLMServer, Scenario

pytestmark = pytest.mark.browser


class Canary(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.hits: list[str] = []
        super().__init__(("127.0.0.1", 0), _CanaryHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CanaryHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[Canary]:
    server = Canary()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def payloads(canary: Canary) -> list[str]:
    """Each would run a script (setting window.__pwned) or fetch the canary if rendered."""
    return [
        f"![x]({canary.url}/md-image.png)",
        f'<img src="{canary.url}/html-image.png" onerror="window.__pwned=1">',
        "<script>window.__pwned=1</script>",
        '"><svg onload="window.__pwned=1">',
        "[click](javascript:window.__pwned=1)",
        f"![ref][r]\n\n[r]: {canary.url}/ref-image.png",
    ]


def build_workspace(root: Path, llm: LLMServer, canary: Canary) -> str:
    evil = payloads(canary)
    joined = " ".join(evil)
    (root / "prompts" / "t").mkdir(parents=True)
    description = joined.replace("\n", " ").replace("'", "''")
    (root / "prompts" / "t" / "base.yaml").write_text(
        f"description: '{description}'\nmodel: fake/evil\nuser: '{{{{ input }}}}'\n"
        "checks:\n  - {type: not_contains, value: '<img', name: '<b onmouseover=x>c</b>'}\n"
    )
    # A file name that carries HTML: listed as a file that cannot be loaded, escaped.
    (root / "prompts" / "t" / '<img src=x onerror="window.__pwned=1">.yaml').write_text(
        "model: fake/evil\nuser: hi\n"
    )
    (root / "datasets").mkdir()
    with (root / "datasets" / "evil.csv").open("w", newline="") as f:  # quoted as CSV quotes
        writer = csv.writer(f)
        writer.writerow(["id", "category", "input", "expected"])
        writer.writerows([f"r{i}", e, e, e] for i, e in enumerate(evil))
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{llm.openai_url}', free: true}}\n"
    )
    llm.set_scenario("evil", Scenario(tokens=[e + "\n\n" for e in evil]))
    return stored_run(root / ".promptdeck", evil)


def stored_run(home: Path, evil: list[str]) -> str:
    """A finished run whose variant names, categories, answers and reasons are payloads."""
    store = Store(home / "promptdeck.sqlite")
    names = ("t/base", f"t/{evil[1]}")
    cases = [{"id": f"r{i}", "category": e, "input": e, "expected": e} for i, e in enumerate(evil)]
    snapshot = {"suite": {"baseline": "t/base", "gates": [{"metric": "error_rate", "max": 0.1}]},
                "cases": cases}  # fmt: skip
    run_id = store.create_run(snapshot, name=evil[3], total_cells=2 * len(cases))
    for i, case in enumerate(cases):
        for name in names:  # the candidate answers another payload: the word diff shows both
            text = case["input"] if name == names[0] else evil[(i + 1) % len(evil)]
            result = CallResult("fake/evil", text, Usage(3, 3), 10.0, 20.0, 0.0)
            scores = [Score("judge", 3.0, None, case["input"], "fake/j"),
                      Score(f"check:{case['input']}", 0.0, False, case["input"])]  # fmt: skip
            store.add_result(
                run_id, CellRecord(case["id"], name, 0, case["category"], result), scores
            )
    store.set_run_status(run_id, "done")
    store.close()
    return run_id


def visit(page: Page, url: str) -> None:
    page.goto(url)
    wait_idle(page)
    assert page.get_by_test_id("stException").count() == 0, url


def test_no_payload_runs_or_fetches_on_any_page(
    browser: Browser, llm: LLMServer, canary: Canary, tmp_path: Path
) -> None:
    run_id = build_workspace(tmp_path, llm, canary)
    with running_app(tmp_path) as app:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        requests: list[str] = []
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.on("dialog", lambda d: d.dismiss())
        visit(page, f"{app}/")
        visit(page, f"{app}/playground?variant=t/base")
        page.get_by_role("textbox", name="input").fill(payloads(canary)[0])
        page.get_by_role("textbox", name="input").press("Control+Enter")
        wait_idle(page)
        page.get_by_role("button", name="Run").click()
        page.get_by_text("TTFT").wait_for()
        wait_idle(page)
        shot(page, "untrusted-playground")
        visit(page, f"{app}/prompts?variant=t/base")
        visit(page, f"{app}/datasets")
        visit(page, f"{app}/evaluate?run={run_id}")
        page.get_by_label("Look at one case").click()  # the cell details: answers as Markdown
        page.get_by_role("option").first.click()
        wait_idle(page)
        visit(page, f"{app}/results?run={run_id}")
        page.get_by_text("Mark the words that differ from the baseline").click()  # HTML diff
        wait_idle(page)
        page.locator("del, ins").first.wait_for()
        shot(page, "untrusted-results")
        visit(page, f"{app}/results?run={run_id}&present=1")
        visit(page, f"{app}/settings")
        page.wait_for_timeout(500)  # let any late image request leave, if one ever would
        assert page.evaluate("window.__pwned") is None
        outside = [u for u in requests if not u.startswith((app, "data:", "blob:"))]
        assert sorted(set(outside)) == [] and canary.hits == []
        context.close()


def test_a_foreign_host_name_gets_no_app(browser: Browser, tmp_path: Path) -> None:
    """DNS rebinding: a page of another site whose name resolves to 127.0.0.1 reaches the
    server, but the app refuses to run for a Host header that is not a loopback name."""
    (tmp_path / "prompts").mkdir()
    with running_app(tmp_path) as app:
        port = app.rsplit(":", 1)[1]
        rebound = browser.browser_type.launch(
            executable_path=str(Path("/usr/bin/chromium")),
            args=["--no-sandbox", "--disable-dev-shm-usage",
                  "--host-resolver-rules=MAP rebind.example 127.0.0.1"],
        )  # fmt: skip
        try:
            page = rebound.new_page()
            page.goto(f"http://rebind.example:{port}/settings")
            wait_idle(page)
            page.get_by_text("PromptDeck serves this computer only (localhost)").wait_for()
            assert page.get_by_role("heading", name="Settings").count() == 0
            assert page.get_by_role("button", name="Test connection").count() == 0
        finally:
            rebound.close()
