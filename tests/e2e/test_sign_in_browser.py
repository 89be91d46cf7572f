"""Sign-in against a real OIDC provider, in headless Chromium.

oidc-provider-mock runs as its own process (a real authorization-code flow: its authorize
form, its token endpoint, signed ID tokens); the app runs with a workspace whose
.streamlit/secrets.toml points [auth] at it and whose team.yaml names an editor and a
viewer domain. Each test signs in from a fresh browser context (no cookie), by clicking
the provider's button for a predefined user, as a person would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    ROOT,
    VARIANT,
    WORDS,
    free_port,
    running_app,
    shot,
    wait_idle,
)
from tests.helpers import wait_until_serving
from tests.llm_server import LLMServer, Scenario

pytestmark = pytest.mark.browser
LAST = WORDS[-1].strip()
USERS = {
    "alice": {"email": "alice@acme.com", "name": "Alice Editor"},
    "bob": {"email": "bob@acme.com", "name": "Bob Viewer"},
    "eve": {"email": "eve@example.com", "name": "Eve Outsider"},
}
TEAM = 'editors: [alice@acme.com]\nviewers: ["*@acme.com"]\n'
SUITE = """dataset: tiny.csv
variants: [demo/alpha, demo/beta]
baseline: demo/alpha
judge: {model: fake/judge, rubric: Is the answer helpful?}
"""
TINY = "id,category,input\nt1,billing,Where is my refund?\nt2,shipping,Where is my parcel?\n"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """oidc-provider-mock on a free port, with three predefined users."""
    port = free_port()
    claims = [json.dumps({"sub": sub, **c}) for sub, c in USERS.items()]
    command = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)]
    for user in claims:
        command += ["--user-claims", user]
    log_path = tmp_path_factory.mktemp("oidc") / "provider.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(f"{url}/.well-known/openid-configuration", proc, log_path, 30)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def team_app(
    tmp_path_factory: pytest.TempPathFactory, provider: str, llm: LLMServer
) -> Iterator[tuple[str, str]]:
    """The app for a team workspace with sign-in on, and the id of one finished run in it
    (made with the CLI, as CI would); (app URL, run id)."""
    root = tmp_path_factory.mktemp("team")
    (root / "prompts" / "demo").mkdir(parents=True)
    for model in ("alpha", "beta"):
        (root / "prompts" / "demo" / f"{model}.yaml").write_text(VARIANT.format(model=model))
    shutil.copytree(ROOT / "datasets", root / "datasets")
    (root / "datasets" / "tiny.csv").write_text(TINY)
    (root / "datasets" / "tiny.suite.yaml").write_text(SUITE)
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{llm.openai_url}', free: true}}\n"
    )
    (root / "team.yaml").write_text(TEAM)
    port = free_port()
    (root / ".streamlit").mkdir()
    (root / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "e2e-cookie-secret-0123456789abcdef"\n'
        'client_id = "promptdeck"\n'
        'client_secret = "e2e-client-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    llm.reset()
    for model in ("alpha", "beta"):
        llm.set_scenario(model, Scenario(tokens=WORDS[:8]))
    llm.set_scenario("judge", Scenario(tokens=['{"reasoning": "Clear.", "score": 4}']))
    env = {**os.environ, "PROMPTDECK_HOME": str(root / ".promptdeck")}
    env.pop("PROMPTDECK_PROVIDERS", None)
    done = subprocess.run(
        [sys.executable, "-m", "promptdeck", "run", "datasets/tiny.suite.yaml"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = next(ln.split()[-1] for ln in done.stdout.splitlines() if ln.startswith("run_id:"))
    with running_app(root, port) as url:
        yield url, run_id


def sign_in(page: Page, url: str, sub: str) -> None:
    """From the app's sign-in page, through the provider's form, back to Home."""
    page.goto(url)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=sub, exact=True).click()  # the provider's own page
    page.wait_for_url(f"{url}/")
    wait_idle(page)


def sidebar_says(page: Page, text: str) -> None:
    expect(page.get_by_test_id("stSidebar")).to_contain_text(text)


def test_without_a_session_only_the_sign_in_page(page: Page, team_app: tuple[str, str]) -> None:
    url, _ = team_app
    for path in ("", "/playground", "/settings"):
        page.goto(url + path)
        wait_idle(page)
        page.get_by_role("button", name="Sign in").wait_for()
        assert page.get_by_test_id("stSidebar").count() == 0
        assert page.get_by_role("heading", name="Playground").count() == 0
        assert page.get_by_text("demo/alpha").count() == 0  # no data of any page
        assert page.get_by_role("button").filter(has_text="Run").count() == 0
    page.goto(url)
    wait_idle(page)
    shot(page, "sign-in")  # docs/sign-in.png is a copy


def test_an_editor_signs_in_and_runs_the_playground(
    page: Page, team_app: tuple[str, str], llm: LLMServer
) -> None:
    url, _ = team_app
    sign_in(page, url, "alice")
    sidebar_says(page, "Signed in as Alice Editor (alice@acme.com) · editor")
    page.goto(f"{url}/playground?variant=demo/alpha")
    wait_idle(page)
    box = page.get_by_role("textbox", name="input")
    box.fill("Where is my parcel?")
    box.press("Control+Enter")
    wait_idle(page)
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".st-key-pg_out_0")).to_contain_text(LAST, timeout=30_000)
    page.get_by_text("TTFT").wait_for()
    assert llm.request_count("alpha") >= 1


def test_a_viewer_opens_a_shared_run_and_finds_no_action(
    page: Page, team_app: tuple[str, str]
) -> None:
    url, run_id = team_app
    sign_in(page, url, "bob")
    sidebar_says(page, "Signed in as Bob Viewer (bob@acme.com) · viewer")
    assert page.locator("[data-testid='stSidebar'] a[href^='mailto:']").count() == 0
    link = f"{url}/results?run={run_id}&present=1"
    page.goto(link)
    wait_idle(page)
    page.get_by_role("heading", name="tiny").wait_for()  # the run's name, big
    page.get_by_text("demo/beta").first.wait_for()  # its headline
    page.get_by_role("button", name="Leave presentation mode").wait_for()
    assert page.get_by_role("combobox", name="Run").count() == 0  # presentation: no picker
    page.get_by_text("Share this view").click()
    code = page.get_by_test_id("stCode")
    expect(code).to_contain_text(link)
    expect(code).to_be_visible()
    expect(page.get_by_text("promptdeck report")).to_be_visible()
    wait_idle(page)
    shot(page, "viewer-share")  # docs/viewer-share.png is a copy

    page.goto(f"{url}/playground")
    wait_idle(page)
    page.get_by_text("Running prompts is for editors").wait_for()
    assert page.get_by_role("button", name="Run").count() == 0
    page.goto(f"{url}/evaluate")
    wait_idle(page)
    page.get_by_text("Planning and running evals is for editors").wait_for()
    assert page.get_by_role("button", name="Run").count() == 0
    page.goto(f"{url}/prompts")
    wait_idle(page)
    page.get_by_role("tab", name="File").wait_for()
    assert page.get_by_role("button", name="Save").count() == 0
    assert page.get_by_role("button", name="Delete").count() == 0
    page.goto(f"{url}/settings")
    wait_idle(page)
    page.get_by_text("Settings are for editors").wait_for()
    assert page.get_by_role("button", name="Test connection").count() == 0
    assert page.get_by_text("OPENAI_API_KEY").count() == 0  # no key, not even its name


def test_someone_on_no_list_is_refused(page: Page, team_app: tuple[str, str]) -> None:
    url, _ = team_app
    sign_in(page, url, "eve")
    page.get_by_text(
        "Signed in as eve@example.com, who is not on this workspace's team list (team.yaml); "
        "ask an editor to add you."
    ).wait_for()
    page.get_by_role("button", name="Sign out").wait_for()
    assert page.get_by_test_id("stSidebar").count() == 0
    page.goto(f"{url}/results")
    wait_idle(page)
    page.get_by_text("who is not on this workspace's team list").wait_for()
    assert page.get_by_text("tiny").count() == 0
    page.get_by_role("button", name="Sign out").click()  # Streamlit's cookie goes, and the
    page.get_by_role("button", name="End session").click()  # provider's session too
    page.wait_for_url(f"{url}/**")
    page.get_by_role("button", name="Sign in").wait_for()
