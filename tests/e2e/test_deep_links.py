"""Every page's URL, opened first on a freshly started server, shows the whole app frame."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.e2e.conftest import running_app, wait_idle

pytestmark = pytest.mark.browser
PAGES = {"": "PromptDeck", "playground": "Playground", "evaluate": "Evaluate", "results": "Results"}


@pytest.mark.parametrize("path", list(PAGES))
def test_deep_link_on_a_fresh_server(browser: Browser, app_workspace: Path, path: str) -> None:
    with running_app(app_workspace) as url:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{url}/{path}")  # the first request this server sees
        wait_idle(page)
        sidebar = page.get_by_test_id("stSidebar")
        for label in ("Home", "Playground", "Evaluate", "Results"):
            sidebar.get_by_role("link", name=label).wait_for()
        page.get_by_role("heading", name=PAGES[path]).first.wait_for()
        assert page.title().endswith("· PromptDeck")
        assert page.get_by_test_id("stException").count() == 0
        context.close()
