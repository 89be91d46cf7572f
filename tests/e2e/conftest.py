"""The real app in a real browser: streamlit on a free port, Debian's chromium via Playwright.

The app runs against the tests' local LLM server (OpenAI wire format), in a temporary
workspace whose variants stream at a fixed, visible rate.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import CHROMIUM  # noqa: F401  (bench/playground_app.py imports it from here)
from tests.helpers import wait_until_serving
from tests.llm_server import LLMServer, Scenario

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
WORDS = [f"word{i} " for i in range(60)]

VARIANT = """description: {model} test variant
model: fake/{model}
params: {{max_tokens: 100}}
user: "{{{{ input }}}}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llm() -> Iterator[LLMServer]:
    with LLMServer() as server:
        yield server


@pytest.fixture(scope="session")
def app_workspace(tmp_path_factory: pytest.TempPathFactory, llm: LLMServer) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    (root / "prompts" / "demo").mkdir(parents=True)
    for model in ("alpha", "beta", "gamma", "badkey"):
        (root / "prompts" / "demo" / f"{model}.yaml").write_text(VARIANT.format(model=model))
    shutil.copytree(ROOT / "datasets", root / "datasets")
    (root / "prompts" / "demo" / "broken.yaml").write_text("model: fake/x\nuser: [unclosed\n")
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{llm.openai_url}', free: true}}\n"
    )
    return root


@contextlib.contextmanager
def running_app(workspace: Path, port: int | None = None) -> Iterator[str]:
    """A fresh streamlit server for `workspace` on a free port (or `port`: one that a
    secrets.toml's redirect_uri already names), with the project's .streamlit/config.toml
    (Streamlit reads it from the working directory); its log goes to a file."""
    config = workspace / ".streamlit" / "config.toml"
    if not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / ".streamlit" / "config.toml", config)
    port = port or free_port()
    env = {**os.environ, "PROMPTDECK_HOME": str(workspace / ".promptdeck")}
    env.pop("PROMPTDECK_PROVIDERS", None)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    log_path = ARTIFACTS / f"streamlit-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=workspace, env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(url + "/_stcore/health", proc, log_path, 60)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)


@pytest.fixture(scope="session")
def app_url(app_workspace: Path) -> Iterator[str]:
    with running_app(app_workspace) as url:
        yield url


@pytest.fixture
def page(browser: Browser, llm: LLMServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    llm.reset()
    for model in ("alpha", "beta", "gamma"):
        llm.set_scenario(model, Scenario(tokens=WORDS, token_delay=0.05))
    llm.set_scenario("badkey", Scenario(fail_statuses=[401] * 10))
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    pg = context.new_page()
    yield pg
    if getattr(request.node, "failed", False):  # what the browser showed when it failed
        shot(pg, f"FAILED-{request.node.name}")
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call" and report.failed:
        item.failed = True  # type: ignore[attr-defined]
    return report


def wait_idle(page: Page, timeout: float = 30_000) -> None:
    """Until the script has finished, and stays finished: a rerun can start right after."""
    idle = "[data-testid='stApp'][data-test-script-state='notRunning']"
    page.wait_for_selector(idle, timeout=timeout)
    page.wait_for_timeout(300)
    page.wait_for_selector(idle, timeout=timeout)


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def plan_playground(page: Page, app_url: str, variants: list[str], text: str) -> None:
    """The Playground with `variants` picked (by URL) and `text` committed as the input."""
    query = "&".join(f"variant={v}" for v in variants)
    page.goto(f"{app_url}/playground?{query}")
    wait_idle(page)
    box = page.get_by_role("textbox", name="input")
    box.fill(text)
    box.press("Control+Enter")  # commits the text, as a click elsewhere would
    wait_idle(page)


def pick_variants(page: Page, names: list[str]) -> None:
    """Exactly `names` in the page's variant multiselect: the default selection cleared first,
    each step waited for on screen (a rerun can land between two clicks)."""
    box = page.get_by_test_id("stMultiSelect").first
    tags = box.locator("[data-tag]")
    box.wait_for()
    while tags.count():
        box.get_by_role("button", name="Clear all").click()
        page.keyboard.press("Escape")
        wait_idle(page)
    for i, name in enumerate(names):
        box.click()
        page.get_by_role("option", name=name, exact=True).click()
        page.keyboard.press("Escape")
        wait_idle(page)
        expect(tags).to_have_count(i + 1)
    assert [t.inner_text().strip() for t in tags.all()] == names
