"""Prompts journey in headless Chromium: edit a variant, save, the file on disk changes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import shot, wait_idle

pytestmark = pytest.mark.browser

ORIGINAL = """\
# Edited from the browser test.
description: A variant for the editing journey
model: fake/alpha
params: {max_tokens: 50}
system: You are alpha.
user: "Customer message: {{ input }}"
"""


@pytest.fixture
def variant_file(app_workspace: Path) -> Iterator[Path]:
    path = app_workspace / "prompts" / "demo" / "editme.yaml"
    path.write_text(ORIGINAL)
    yield path
    path.unlink(missing_ok=True)


def edit_system(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="System")
    box.fill(text)
    box.press("Control+Enter")  # commits the text area, as a click elsewhere would
    wait_idle(page)


def test_edit_and_save_a_variant_changes_the_file(
    page: Page, app_url: str, variant_file: Path
) -> None:
    page.goto(f"{app_url}/prompts?variant=demo/editme")
    wait_idle(page)
    expect(page.get_by_role("textbox", name="System")).to_have_value("You are alpha.")
    edit_system(page, "You are alpha. Answer in one sentence.")
    expect(page.get_by_text("Valid. Unsaved changes.")).to_be_visible()
    expect(page.get_by_text("+system: You are alpha. Answer in one sentence.")).to_be_visible()
    shot(page, "prompts-edit")
    page.get_by_role("button", name="Save").click()
    wait_idle(page)
    expect(page.get_by_text("Saved prompts/demo/editme.yaml").first).to_be_visible()
    assert variant_file.read_text() == ORIGINAL.replace(
        "system: You are alpha.", "system: You are alpha. Answer in one sentence."
    )
    shot(page, "prompts-saved")


def test_a_change_on_disk_is_shown_as_a_conflict(
    page: Page, app_url: str, variant_file: Path
) -> None:
    page.goto(f"{app_url}/prompts?variant=demo/editme")
    wait_idle(page)
    edit_system(page, "Mine.")
    theirs = ORIGINAL.replace("You are alpha.", "You are alpha (from git pull).")
    variant_file.write_text(theirs)
    page.get_by_role("button", name="Save").click()
    wait_idle(page)
    expect(page.get_by_text("Not saved:", exact=False)).to_be_visible()
    diff = page.locator("code").filter(has_text="on disk now")
    expect(diff).to_contain_text("-system: You are alpha (from git pull).")
    expect(diff).to_contain_text("+system: Mine.")
    assert variant_file.read_text() == theirs
    shot(page, "prompts-conflict")
    page.get_by_role("button", name="Reload from disk (drop my edits)").click()
    wait_idle(page)
    expect(page.get_by_role("textbox", name="System")).to_have_value(
        "You are alpha (from git pull)."
    )


def test_picking_another_variant_in_the_list_sticks(
    page: Page, app_url: str, variant_file: Path
) -> None:
    page.goto(f"{app_url}/prompts?variant=demo/editme")
    wait_idle(page)
    expect(page.get_by_role("textbox", name="System")).to_have_value("You are alpha.")
    page.get_by_test_id("stSelectbox").filter(has_text="Variant").click()
    page.get_by_role("option", name="demo/beta").click()
    wait_idle(page)
    expect(page.get_by_role("textbox", name="Model", exact=True)).to_have_value("fake/beta")
    expect(page).to_have_url(re.compile(r"variant=demo%2Fbeta|variant=demo/beta"))
    page.wait_for_timeout(500)  # a snap back would come with the next rerun
    wait_idle(page)
    expect(page.get_by_role("textbox", name="Model", exact=True)).to_have_value("fake/beta")
