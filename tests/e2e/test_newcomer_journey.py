"""A new product manager's first half hour, in one real browser session.

The path a newcomer took through the app, step by step, on a workspace as after `git clone`
plus a providers.yaml (as when a real model has been connected):

1. Home: "Run the demo eval" (the embedded SmolLM2 model, real llama.cpp, judge included).
2. Results: the progress, then the finished run; a demo-judge run shows "Checks: read these
   first" above the judge's headline.
3. A click on a point of the "By category" chart filters the cases table.
4. Playground: the support variants are picked; type a ticket, Run, save it as an eval case.
5. Away to another page and back: the picked variants and the answers are still there.
6. Datasets: import a CSV whose first column is an id: the input guess is the text column,
   and the page stays on the Import tab through the upload and the import.

Each step leaves a screenshot, tests/artifacts/journey-*.png. Nothing is faked but the
provider in providers.yaml, which this journey never calls.
"""

from __future__ import annotations

import csv
import re
import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import ROOT, running_app, shot, wait_idle
from tests.llm_server import LLMServer

pytestmark = pytest.mark.browser

DEMO_TIMEOUT = 600_000  # ms: about 70 s measured on 2 idle cores; a loaded machine is slower
ANSWER_TIMEOUT = 300_000  # ms: three support variants answered by the embedded model
TICKET = "The lamp I ordered arrived with a cracked shade. Can I get a replacement?"
NOTE = "Damaged on arrival: the reply must offer a replacement."
UPLOAD = (
    "ticket_id,message,category\n"
    "T-1001,My parcel has been stuck in transit for ten days. Where is it?,shipping\n"
    "T-1002,I was charged twice for the same order last night.,billing\n"
    "T-1003,How do I change the email address on my account?,account\n"
)
CATEGORIES = ("account", "billing", "other", "product", "returns", "shipping")


def fresh_workspace(root: Path, llm: LLMServer) -> Path:
    """As after `git clone`, with a connected OpenAI-compatible provider."""
    shutil.copytree(ROOT / "prompts", root / "prompts")
    shutil.copytree(ROOT / "datasets", root / "datasets")
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{llm.openai_url}', free: true}}\n"
    )
    return root


def go_to(page: Page, label: str) -> None:
    """A click on the sidebar's link: the same browser session, as a user switches pages."""
    page.get_by_test_id("stSidebarUserContent").get_by_role("link", name=label).click()
    page.get_by_role("heading", name=label, level=1).wait_for()
    wait_idle(page)


def no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def run_the_demo_from_home(page: Page, url: str) -> None:
    page.goto(url)
    wait_idle(page)
    shot(page, "journey-1-home")
    started = time.monotonic()
    page.get_by_role("button", name="Run the demo eval").click()
    page.wait_for_url(re.compile(r"/results\?.*run="))
    page.get_by_test_id("stProgress").wait_for()
    page.wait_for_function("document.body.innerText.match(/\\d+\\/18 cells/)")
    shot(page, "journey-2-demo-progress")

    page.get_by_text("vs support/production").first.wait_for(timeout=DEMO_TIMEOUT)
    print(f"\ndemo eval, click to results: {time.monotonic() - started:.1f} s")
    wait_idle(page)
    checks = page.get_by_role("heading", name="Checks: read these first")
    expect(checks).to_be_visible()
    headline = page.get_by_text("concise vs support/production")
    expect(headline).to_have_count(1)
    assert box_top(checks) < box_top(headline), "the checks come before the judge's headline"
    expect(page.get_by_test_id("stProgress")).to_have_count(0)
    no_exception(page)
    shot(page, "journey-2-results")


def box_top(locator: Locator) -> float:
    box = locator.bounding_box()
    assert box is not None, locator
    return float(box["y"])


def click_a_category_point(page: Page) -> None:
    """The first point of the "By category" chart that is one category (not "(all)")."""
    category = page.get_by_test_id("stSelectbox").filter(has_text="Category").locator("input")
    expect(category).to_have_value("(all)")
    chart = page.get_by_test_id("stVegaLiteChart").first
    chart.scroll_into_view_if_needed()
    # The chart is SVG: Vega labels each mark ("variant − baseline: …; category: billing; …").
    points = chart.locator("[aria-label^='variant − baseline']")
    expect(points.first).to_be_attached()
    labels = [points.nth(i).get_attribute("aria-label") or "" for i in range(points.count())]
    picked = next(
        (i, m.group(1))
        for i, label in enumerate(labels)
        if (m := re.search(r"category: ([^;]+);", label)) and m.group(1) in CATEGORIES
    )
    points.nth(picked[0]).click()
    wait_idle(page)
    expect(category).to_have_value(picked[1])
    cases = page.locator(".st-key-res_cases")
    others = "|".join(c for c in CATEGORIES if c != picked[1])
    expect(cases).to_contain_text(re.compile(rf"t\d+{picked[1]}"))  # row id, then its category
    expect(cases).not_to_contain_text(re.compile(rf"t\d+(?:{others})"))  # no other category
    no_exception(page)
    shot(page, "journey-3-category-filter")


def chips(page: Page) -> list[str]:
    """The variants picked in the Playground's multiselect, in order."""
    tags = page.get_by_test_id("stMultiSelect").first.locator("[data-tag]")
    expect(tags.first, "no variant is picked").to_be_visible()
    return [tags.nth(i).get_attribute("aria-label") or "" for i in range(tags.count())]


def answers(page: Page) -> list[str]:
    return page.locator("[class*='st-key-pg_out_']").all_inner_texts()


def run_and_save_a_case(page: Page, workspace: Path) -> tuple[list[str], list[str]]:
    go_to(page, "Playground")
    picked = chips(page)
    assert picked and all(name.startswith("support/") for name in picked), picked
    box = page.get_by_role("textbox", name="input")
    box.fill(TICKET)
    box.press("Control+Enter")  # commits the text, as a click elsewhere would
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("TTFT")).to_have_count(len(picked), timeout=ANSWER_TIMEOUT)
    wait_idle(page)
    shown = answers(page)
    assert len(shown) == len(picked) and all(text.strip() for text in shown), shown
    no_exception(page)
    shot(page, "journey-4-playground-answers")

    page.get_by_text("Save these inputs as an eval case").click()
    note = page.get_by_role("textbox", name="Why this case matters")
    note.fill(NOTE)
    note.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Save as eval case").click()
    page.get_by_text("Added as").wait_for()
    wait_idle(page)
    shot(page, "journey-4-saved-case")
    with (workspace / "datasets" / "playground_cases.csv").open(newline="") as file:
        saved = list(csv.DictReader(file))
    assert [(row["input"], row["note"], row["source"]) for row in saved] == [
        (TICKET, NOTE, "playground")
    ], saved
    return picked, shown


def switch_away_and_back(page: Page, picked: list[str], shown: list[str]) -> None:
    go_to(page, "Prompts")
    go_to(page, "Playground")
    assert chips(page) == picked, "the variant selection survives a page switch"
    expect(page.get_by_text("TTFT")).to_have_count(len(picked))
    assert answers(page) == shown, "the last run's answers are still shown"
    expect(page.get_by_role("textbox", name="input")).to_have_value(TICKET)
    no_exception(page)
    shot(page, "journey-5-playground-after-switch")


def import_a_csv_with_an_id_column(page: Page, workspace: Path, tmp_path: Path) -> None:
    upload = tmp_path / "zendesk_export.csv"
    upload.write_text(UPLOAD)
    go_to(page, "Datasets")
    import_tab = page.get_by_role("tab", name="Import")
    import_tab.click()
    wait_idle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(upload))
    wait_idle(page)
    source = page.get_by_test_id("stSelectbox").filter(has_text="input ←").locator("input")
    expect(source).to_have_value("message")  # not ticket_id, the first column
    expect(import_tab).to_have_attribute("aria-selected", "true")
    shot(page, "journey-6-datasets-upload")

    page.get_by_text("A new dataset").click()
    wait_idle(page)
    name = page.get_by_role("textbox", name="New dataset name")
    name.fill("newcomer_tickets.csv")
    name.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Import 3 cases into datasets/newcomer_tickets.csv").click()
    page.get_by_text("Imported 3 cases").wait_for()
    wait_idle(page)
    expect(import_tab).to_have_attribute("aria-selected", "true")
    no_exception(page)
    shot(page, "journey-6-datasets-imported")
    with (workspace / "datasets" / "newcomer_tickets.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["input"] for row in rows] == [
        line.split(",")[1] for line in UPLOAD.splitlines()[1:]
    ]
    # The form now offers the new dataset as an existing one, not a red "already exists".
    expect(page.get_by_role("radio", name="An existing dataset")).to_be_checked()
    expect(
        page.get_by_test_id("stAlertContentError"), "an error right after a successful import"
    ).to_have_count(0)


def test_a_newcomers_first_journey(page: Page, llm: LLMServer, tmp_path: Path) -> None:
    workspace = fresh_workspace(tmp_path / "workspace", llm)
    with running_app(workspace) as url:
        run_the_demo_from_home(page, url)
        click_a_category_point(page)
        picked, shown = run_and_save_a_case(page, workspace)
        switch_away_and_back(page, picked, shown)
        import_a_csv_with_an_id_column(page, workspace, tmp_path)
