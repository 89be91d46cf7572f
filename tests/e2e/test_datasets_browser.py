"""Datasets page in headless Chromium: the tab in use stays open through an upload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import shot, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture
def datasets_kept(app_workspace: Path) -> Iterator[Path]:
    """The session's datasets as they were, after a test that imports into one."""
    folder = app_workspace / "datasets"
    before = {p: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    yield folder
    for path in folder.iterdir():
        if path.is_file() and path not in before:
            path.unlink()
    for path, data in before.items():
        path.write_bytes(data)


def test_an_upload_and_an_import_keep_the_import_tab_open(
    page: Page, app_url: str, datasets_kept: Path, tmp_path: Path
) -> None:
    upload = tmp_path / "queries.csv"
    upload.write_text("id,message,topic\nq1,Where is my parcel?,shipping\nq2,Refund?,billing\n")
    page.goto(f"{app_url}/datasets")
    wait_idle(page)
    page.get_by_role("tab", name="Import").click()
    wait_idle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(upload))
    wait_idle(page)
    page.get_by_text("input ←").first.wait_for()  # the column map of the upload
    expect(page.get_by_role("tab", name="Import")).to_have_attribute("aria-selected", "true")
    page.get_by_role("button", name="Import 2 cases into").click()
    wait_idle(page)
    page.get_by_text("Imported 2 cases").wait_for()
    expect(page.get_by_role("tab", name="Import")).to_have_attribute("aria-selected", "true")
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "datasets-import")
    assert any("Where is my parcel?" in p.read_text() for p in datasets_kept.glob("*.csv"))
