"""Every page's URL, opened first on a freshly started server, shows the whole app frame."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from promptdeck.ui import PAGES as FRAME_PAGES
from tests.e2e.conftest import running_app, wait_idle

pytestmark = pytest.mark.browser
# url path -> the page's heading, for every page the sidebar links to
PAGES = {
    ("" if path == "app.py" else Path(path).stem): "PromptDeck" if path == "app.py" else label
    for path, label, _ in FRAME_PAGES
}


@pytest.mark.parametrize("path", list(PAGES))
def test_deep_link_on_a_fresh_server(browser: Browser, app_workspace: Path, path: str) -> None:
    with running_app(app_workspace) as url:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{url}/{path}")  # the first request this server sees
        wait_idle(page)
        sidebar = page.get_by_test_id("stSidebar")
        for _, label, _ in FRAME_PAGES:
            sidebar.get_by_role("link", name=label).wait_for()
        page.get_by_role("heading", name=PAGES[path]).first.wait_for()
        assert page.title().endswith("· PromptDeck")
        assert page.get_by_test_id("stException").count() == 0
        context.close()
