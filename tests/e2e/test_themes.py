"""Every page in the browser's dark and light schemes: the app follows the scheme and the
title stays readable (contrast between the heading's colour and the page's background)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from promptdeck.ui import PAGES
from tests.e2e.conftest import shot, wait_idle

pytestmark = pytest.mark.browser
PATHS = ["" if path == "app.py" else Path(path).stem for path, _, _ in PAGES]


def luminance(css: str) -> float:
    """Relative luminance (WCAG) of an `rgb(...)` / `rgba(...)` colour."""
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_every_page_is_readable_in_the_scheme(browser: Browser, app_url: str, scheme: str) -> None:
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    for path in PATHS:
        page.goto(f"{app_url}/{path}")
        wait_idle(page)
        heading = page.locator("h1").first
        heading.wait_for()
        background = page.get_by_test_id("stApp").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        text = heading.evaluate("e => getComputedStyle(e).color")
        bg, fg = luminance(background), luminance(text)
        assert (bg < 0.1) if scheme == "dark" else (bg > 0.8), (path, background)
        contrast = (max(bg, fg) + 0.05) / (min(bg, fg) + 0.05)
        assert contrast >= 7, (path, background, text)  # WCAG AAA for the title
        assert page.get_by_test_id("stException").count() == 0
        shot(page, f"{scheme}-{path or 'home'}")
    context.close()
