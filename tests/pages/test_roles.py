"""Sign-in and roles, page by page (AppTest).

AppTest plays the signed-in user the way Streamlit does (`AppTest.user` is what the script
reads as st.user; a real server fills it from its signed identity cookie), and `at.secrets`
is the [auth] section. Nothing else says who someone is: the pages have no other way in.
A viewer's session is shown to find no action, and an action reached anyway (a widget drawn
while the user was an editor, clicked after team.yaml made them a viewer) is refused by
ui.require_editor where it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from promptdeck import ui
from promptdeck.evals.live import ColumnView
from promptdeck.model.secrets import SESSION_KEYS
from promptdeck.store.db import Store
from tests.helpers import shown
from tests.llm_server import LLMServer
from tests.pages.conftest import ROOT
from tests.pages.test_results import stored_run

AUTH = {
    "auth": {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "a-long-random-string-for-the-cookie",
        "client_id": "promptdeck",
        "client_secret": "not-a-real-secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
}
TEAM = 'editors: [alice@acme.com]\nviewers: ["*@acme.com"]\n'
ALICE = {"is_logged_in": True, "email": "alice@acme.com", "name": "Alice", "sub": "a1"}
BOB = {"is_logged_in": True, "email": "Bob@Acme.com", "name": "Bob", "sub": "b2"}
EVE = {"is_logged_in": True, "email": "eve@example.com", "name": "Eve", "sub": "e3"}
NOBODY = {"is_logged_in": False}
PAGES = [path for path, _, _ in ui.PAGES]


@pytest.fixture
def team(workspace: Path) -> Iterator[Path]:
    (workspace / "team.yaml").write_text(TEAM)
    yield workspace
    for name in SESSION_KEYS.names():
        SESSION_KEYS.forget(name)


def open_as(user: dict[str, Any], page: str = "app.py", **context: Any) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.secrets = AUTH
    at.user = user
    at.context = context
    at.run()
    if page != "app.py":
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    """Everything the page says, as a reader sees it."""
    parts = [
        *(e.value for kind in ("title", "markdown", "caption", "info", "error", "warning")
          for e in getattr(at, kind)),
        *(b.label for b in at.button),
    ]  # fmt: skip
    return shown("\n".join(str(p) for p in parts))


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


@pytest.mark.parametrize("page", PAGES)
def test_without_a_session_every_page_is_the_sign_in_page(team: Path, page: str) -> None:
    at = open_as(NOBODY, page)
    assert labels(at) == ["Sign in"]
    assert [t.value for t in at.title] == ["PromptDeck"]
    assert "sign in to use it" in texts(at)
    assert not at.sidebar.children  # no links, no workspace, nothing of the pages
    assert not at.dataframe and not at.text_area and not at.selectbox


@pytest.mark.parametrize("page", ["app.py", "pages/results.py", "pages/settings.py"])
def test_someone_on_no_list_is_refused(team: Path, page: str) -> None:
    at = open_as(EVE, page)
    assert [shown(e.value) for e in at.error] == [
        "Signed in as eve@example.com, who is not on this workspace's team list (team.yaml); "
        "ask an editor to add you."
    ]
    assert labels(at) == ["Sign out"]
    assert not at.sidebar.children and not at.dataframe


def test_without_team_yaml_nobody_gets_in(team: Path) -> None:
    (team / "team.yaml").unlink()
    at = open_as(ALICE, "pages/playground.py")
    [error] = [shown(e.value) for e in at.error]
    assert error.startswith("Signed in as alice@acme.com, who is not on this workspace's team")
    assert "there is no" in error and "team.yaml yet" in error
    assert labels(at) == ["Sign out"]


def test_a_broken_team_yaml_is_named_and_shows_nothing_else(team: Path) -> None:
    (team / "team.yaml").write_text("editors: [alice@acme.com]\nadmins: [bob@acme.com]\n")
    at = open_as(ALICE)
    [error] = [shown(e.value) for e in at.error]
    assert error == (
        f"{(team / 'team.yaml').resolve()}, line 2: 'admins': unknown key: a team list has "
        "`editors` and `viewers`"
    )
    assert not labels(at) and not at.sidebar.children


def test_an_incomplete_auth_section_lets_nobody_in(team: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.secrets = {"auth": {"redirect_uri": "http://127.0.0.1:8501/oauth2callback"}}
    at.user = ALICE
    at.run()
    [error] = [shown(e.value) for e in at.error]
    assert "lacks cookie_secret, client_id, client_secret, server_metadata_url" in error
    assert not at.sidebar.children


def test_without_auth_the_app_is_a_single_users_as_before(team: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.user = EVE  # a user, but no [auth]: nobody signs in, everyone is an editor
    at.run()
    at.switch_page("pages/settings.py").run()
    assert "Test connection" in labels(at)
    assert "Signed in" not in texts(at) and "Sign out" not in labels(at)


def test_an_editor_has_every_action_and_the_sidebar_says_who(team: Path) -> None:
    at = open_as(ALICE, "pages/settings.py")
    sidebar = shown("\n".join(str(c.value) for c in at.sidebar.caption))
    assert "Signed in as **Alice** (` alice@acme.com `) · editor" in sidebar
    assert "Sign out" in [b.label for b in at.sidebar.button]
    assert {"Test connection", "Save key", "Save defaults"} <= set(labels(at))
    at.switch_page("pages/playground.py").run()
    assert "Run" in labels(at)


def test_a_viewer_has_no_action_anywhere(team: Path) -> None:
    run_id = stored_run(team, rows=4)
    at = open_as(BOB)
    assert "Signed in as **Bob** (` bob@acme.com `) · viewer" in shown(
        "\n".join(str(c.value) for c in at.sidebar.caption)
    )
    providers = at.dataframe[0].value
    assert "key" not in providers.columns and "key variable" not in providers.columns
    seen: dict[str, set[str]] = {}
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, at.exception
        seen[page] = set(labels(at)) - {"Sign out"}
    assert seen["pages/playground.py"] == set()
    assert not open_as(BOB, "pages/playground.py").text_area  # no input, no run
    assert seen["pages/evaluate.py"] == set()
    assert seen["pages/settings.py"] == set()
    assert seen["pages/datasets.py"] == set()
    assert seen["pages/prompts.py"] == set()  # no Save, Revert, Delete, Restore, Open in ...
    assert seen["pages/results.py"] == {"Present"}
    at = open_as(BOB, "pages/settings.py")
    assert [i.value for i in at.info] == [
        "Settings are for editors: you are a viewer of this workspace."
    ]
    assert not at.dataframe and not at.text_input  # no provider, no key, not even masked
    at = open_as(BOB, "pages/results.py")
    assert "Save review" not in texts(at) and "Add case" not in texts(at)
    assert not at.get("form")
    assert run_id in texts(at)


def test_a_viewer_reads_a_prompt_file_but_cannot_save_it(team: Path) -> None:
    at = open_as(BOB, "pages/prompts.py")
    assert [t.label for t in at.tabs] == ["File", "Compare", "History", "Runs"]
    assert any("model: fake/alpha" in c.value for c in at.code)
    assert not at.text_area and not at.text_input


def test_share_link_is_the_absolute_url_of_the_presentation_view(team: Path) -> None:
    run_id = stored_run(team, rows=4)
    url = "https://promptdeck.acme.com:8443/results"
    at = open_as(BOB, "pages/results.py", url=url)
    links = [c.value for c in at.code if "present=1" in c.value]
    assert links == [f"{url}?run={run_id}&present=1"]
    at = open_as(BOB, "pages/results.py", url=url)
    at.query_params.update({"run": run_id, "present": "1"})
    at.run()
    assert not at.exception
    assert "Leave presentation mode" in labels(at)
    assert [c.value for c in at.code if "present=1" in c.value] == [f"{url}?run={run_id}&present=1"]
    assert "promptdeck report" in texts(at) and "--html report.html" in texts(at)


# --- an action that reaches a viewer's session anyway is refused where it runs -------------


def demote_bob(team: Path) -> None:
    """team.yaml changes while Alice's page is open: she is a viewer from the next click."""
    (team / "team.yaml").write_text('editors: [carol@acme.com]\nviewers: ["*@acme.com"]\n')


def test_run_in_the_playground_is_refused_once_a_viewer(team: Path, llm_server: LLMServer) -> None:
    at = open_as(ALICE, "pages/playground.py")
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    at.text_area(key="pg_in_input").input("Where is my parcel?").run()
    run = next(b for b in at.button if b.label == "Run")
    demote_bob(team)
    run.click().run()  # the button Alice saw; its callback runs in a viewer's session
    assert not at.exception
    assert [shown(e.value) for e in at.error] == [
        "Viewers cannot run prompts: ask an editor (team.yaml) if you need to."
    ]
    assert "pg_run" not in at.session_state
    assert llm_server.requests == []  # nothing was sent
    assert Store(team / ".promptdeck" / "promptdeck.sqlite").recent_calls() == []


def test_an_action_after_team_yaml_broke_is_not_done(team: Path, llm_server: LLMServer) -> None:
    at = open_as(ALICE, "pages/playground.py")
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    at.text_area(key="pg_in_input").input("Where is my parcel?").run()
    run = next(b for b in at.button if b.label == "Run")
    (team / "team.yaml").write_text("editors: alice@acme.com\n")  # not a list: fail closed
    run.click().run()
    assert not at.exception
    [error] = [shown(e.value) for e in at.error]
    assert error.startswith("Not done: ") and "'editors': must be a list" in error
    assert llm_server.requests == []


def test_saving_a_key_is_refused_once_a_viewer(team: Path) -> None:
    at = open_as(ALICE, "pages/settings.py")
    at.selectbox(key="set_key_env").set_value("OPENAI_API_KEY")
    at.text_input(key="set_key_value").input("sk-should-not-be-kept")
    demote_bob(team)
    at.button(key="set_key_save").click().run()
    assert [shown(e.value) for e in at.error] == [
        "Viewers cannot change keys: ask an editor (team.yaml) if you need to."
    ]
    assert SESSION_KEYS.names() == ()
    assert not (team / ".env").exists()


def test_a_connection_test_is_not_run_for_a_viewer(team: Path, llm_server: LLMServer) -> None:
    at = open_as(ALICE, "pages/settings.py")
    at.selectbox(key="set_test_provider").set_value("fake").run()
    demote_bob(team)
    at.button(key="set_test").click().run()
    assert "set_test_result" not in at.session_state
    assert llm_server.requests == []
    assert not at.dataframe  # and the page shows a viewer nothing of the providers


def alice_ran_the_playground() -> tuple[AppTest, ColumnView]:
    """Alice (an editor) ran t/alpha in the Playground; the page and its one answer."""
    at = open_as(ALICE, "pages/playground.py")
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    at.text_area(key="pg_in_input").input("hi").run()
    next(b for b in at.button if b.label == "Run").click().run()
    live = at.session_state["pg_run"]
    assert live.wait(20)
    at.run()
    [view] = live.snapshot()
    assert view.call_id is not None  # stored
    return at, view


def test_thumbs_are_not_stored_once_a_viewer(team: Path, llm_server: LLMServer) -> None:
    at, view = alice_ran_the_playground()
    demote_bob(team)
    at.feedback(key=f"pg_thumbs_{view.call_id}").set_value(0).run()
    assert not at.exception
    assert Store(team / ".promptdeck" / "promptdeck.sqlite").thumbs(view.call_id) is None


# --- who did what: the signed-in identity is stamped on every write, and shown --------------


def test_a_save_is_stamped_and_the_history_says_who(team: Path) -> None:
    at = open_as(ALICE, "pages/prompts.py")
    at.text_area(key="pp:t/alpha:system").input("You are alpha, and brief.").run()
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception
    store = Store(team / ".promptdeck" / "promptdeck.sqlite")
    versions = store.versions("prompts/t/alpha.yaml")
    assert [(v["action"], v["author"]) for v in versions] == [
        ("save", "alice@acme.com"),
        ("original", "alice@acme.com"),  # the first save keeps the file as it was, too
    ]
    at = open_as(BOB, "pages/prompts.py")  # a viewer reads who saved what
    history = next(d.value for d in at.dataframe if "saved by" in d.value.columns)
    assert list(history["saved by"]) == ["alice@acme.com", "alice@acme.com"]
    assert "by alice@acme.com" in at.selectbox(key="pp_history_pick").options[0]


def test_a_playground_run_and_its_thumbs_are_stamped(team: Path, llm_server: LLMServer) -> None:
    at, view = alice_ran_the_playground()
    at.feedback(key=f"pg_thumbs_{view.call_id}").set_value(1).run()
    store = Store(team / ".promptdeck" / "promptdeck.sqlite")
    [call] = store.recent_calls()
    assert call["author"] == "alice@acme.com"
    assert [r["author"] for r in store.playground_runs()] == ["alice@acme.com"]
    assert store.thumbs(view.call_id) == 1


def test_a_run_and_a_review_say_who(team: Path, llm_server: LLMServer) -> None:
    run_id = stored_run(team, rows=4)  # by the CLI, say: no sign-in, no author
    store = Store(team / ".promptdeck" / "promptdeck.sqlite")
    by_alice = store.acting_as("alice@acme.com")
    mine = by_alice.create_run({"suite": {"baseline": "t/base"}, "cases": []}, name="mine",
                               total_cells=0)  # fmt: skip
    by_alice.set_run_status(mine, "done")
    at = open_as(ALICE, "pages/results.py")  # the newest run: hers
    assert "Run by **alice@acme.com** · started " in texts(at)
    options = at.selectbox(key="res_run").options
    assert f"mine · {mine} · run by alice@acme.com" in options
    assert f"demo · {run_id}" in options  # no author, nothing said
    at.selectbox(key="res_run").set_value(run_id).run()
    assert "Run by" not in texts(at)
    at.number_input[0].set_value(2.0)
    at.text_input[0].input("too long")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception
    [review] = store.reviews(run_id).values()
    assert review["author"] == "alice@acme.com" and review["note"] == "too long"
    at = open_as(BOB, "pages/results.py")
    at.selectbox(key="res_run").set_value(run_id).run()
    said = texts(at)
    assert "Reviewed by **alice@acme.com** on " in said and "too long" in said
