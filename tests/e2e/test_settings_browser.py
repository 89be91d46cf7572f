"""A provider added in Settings is usable in the Playground without a restart, and the diff
of providers.yaml is one block (issue 15, "Providers in the app"), in headless Chromium.

A fresh app on a fresh workspace whose providers.yaml has a comment and one entry, and a
variant that names `staging/m` before any such provider exists. The Playground first says
the provider is unknown; Settings then adds `staging` (the test server's OpenAI URL, a key
variable, send_key_to 127.0.0.1) and sets its key for this session; the same server, never
restarted, then answers in the Playground, and the test server saw the key as the bearer.
"""

from __future__ import annotations

import difflib
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import ARTIFACTS, plan_playground, running_app, shot, wait_idle
from tests.llm_server import LLMServer, Scenario

pytestmark = pytest.mark.browser
KEY = "sk-PDTEST-BROWSER-" + secrets.token_hex(16)
PROVIDERS = """# Team providers: the test server stands in for the real gateway
providers:
  fake: {kind: openai, base_url: '{url}', free: true}
"""
VARIANT = """description: the staging model, before it is configured
model: staging/m
params: {max_tokens: 50}
user: "{{ input }}"
"""


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_in_playground(page: Page, url: str, text: str) -> str:
    """Open the Playground on the staging variant, run `text`, return the column's text
    once the run has finished (an answer with its metrics, or an error)."""
    plan_playground(page, url, ["t/staging"], text)
    page.get_by_role("button", name="Run").click()
    column = page.locator(".st-key-pg_out_0")
    finished = page.get_by_text("TTFT").or_(page.get_by_text("unknown provider"))
    wait_until(lambda: finished.count() > 0)
    wait_idle(page)
    return column.inner_text() if column.count() else ""


def fill(page: Page, key: str, value: str) -> None:
    field = page.locator(f".st-key-{key} input")
    field.fill(value)


def test_a_provider_added_in_settings_is_usable_in_the_playground_at_once(
    page: Page, llm: LLMServer, tmp_path: Path
) -> None:
    root = tmp_path / "workspace"
    (root / "prompts" / "t").mkdir(parents=True)
    (root / "prompts" / "t" / "staging.yaml").write_text(VARIANT)
    before = PROVIDERS.replace("{url}", llm.openai_url)
    (root / "providers.yaml").write_text(before)
    llm.set_scenario("m", Scenario(require_key=KEY))

    with running_app(root) as url:
        log = next(ARTIFACTS.glob(f"streamlit-{url.rsplit(':', 1)[1]}.log"))
        shown = run_in_playground(page, url, "Hello staging")
        assert "unknown provider 'staging'" in page.get_by_test_id("stMain").inner_text()
        assert "Echo:" not in shown
        assert not [r for r in llm.requests if r.model == "m"]  # nothing was sent

        page.goto(f"{url}/settings")
        wait_idle(page)
        page.get_by_text("Add a provider to providers.yaml").click()
        fill(page, "set_add_name", "staging")
        fill(page, "set_add_url", llm.openai_url)
        fill(page, "set_add_key_env", "STAGING_KEY")
        fill(page, "set_add_send_to", "127.0.0.1")
        page.get_by_role("button", name="Add provider").click()
        wait_idle(page)
        page.get_by_text("Added provider 'staging' to providers.yaml").wait_for()

        page.get_by_role("combobox", name="Key variable").click()
        page.keyboard.type("STAGING_KEY")  # a click alone does not open it in a form here
        page.get_by_role("option", name="STAGING_KEY (staging)").click()
        fill(page, "set_key_value", KEY)
        assert page.locator(".st-key-set_key_value input").get_attribute("type") == "password"
        page.get_by_role("button", name="Save key").click()
        wait_idle(page)
        page.get_by_text("STAGING_KEY is set for this session (sk-…").first.wait_for()
        table = page.get_by_test_id("stDataFrame").first.inner_text()
        assert KEY not in page.content() and KEY not in table
        shot(page, "settings-provider-added")

        # the same server process: no restart between adding the provider and using it
        shown = run_in_playground(page, url, "Hello staging")
        assert "Echo: Hello staging" in shown
        shot(page, "playground-added-provider")
        sent = [r for r in llm.requests if r.model == "m"]
        assert [r.headers.get("authorization") for r in sent] == [f"Bearer {KEY}"]
        assert KEY not in page.content()

    after = (root / "providers.yaml").read_text()
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), n=0, lineterm=""))
    assert len([line for line in diff if line.startswith("@@")]) == 1, diff  # one block
    assert [line for line in diff[3:]] == [
        "+  staging:",
        "+    kind: openai",
        f"+    base_url: {llm.openai_url}",
        "+    api_key_env: STAGING_KEY",
        "+    send_key_to: [127.0.0.1]",
    ]
    db = sqlite3.connect(root / ".promptdeck" / "promptdeck.sqlite")
    try:
        actions = [r[0] for r in db.execute("SELECT action FROM file_versions ORDER BY id")]
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert actions == ["original", "add provider staging"]
    assert KEY not in dump and KEY not in after and KEY not in log.read_text()
    assert not (root / ".env").exists()  # a session key is written nowhere
