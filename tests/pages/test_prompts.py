from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptdeck.store.db import Store
from tests.helpers import shown
from tests.pages.conftest import ROOT


def open_prompts(variant: str = "t/alpha") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.query_params["variant"] = variant  # as a link from another page would
    at.switch_page("pages/prompts.py").run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == label)


def test_editing_a_variant_and_saving_changes_the_file(workspace: Path) -> None:
    path = workspace / "prompts" / "t" / "alpha.yaml"
    before = path.read_text()
    at = open_prompts()
    assert at.selectbox(key="pp_variant").value == "t/alpha"
    assert button(at, "Save").disabled  # nothing changed yet
    at.text_area(key="pp:t/alpha:system").input("You are alpha, and brief.").run()
    at.text_area(key="pp:t/alpha:params").input("max_tokens: 50\ntemperature: 0.3\n").run()
    assert any("Unsaved changes" in s.value for s in at.success)
    button(at, "Save").click().run()
    assert not at.exception
    after = path.read_text()
    assert after == before.replace(
        "params: {max_tokens: 50}", "params: {max_tokens: 50, temperature: 0.3}"
    ).replace("system: You are alpha.", "system: You are alpha, and brief.")
    assert button(at, "Save").disabled  # saved: the form matches the file again
    history = Store(workspace / ".promptdeck" / "promptdeck.sqlite").versions(
        "prompts/t/alpha.yaml"
    )
    assert [v["action"] for v in history] == ["save", "original"]


def test_an_invalid_edit_names_the_field_and_cannot_be_saved(workspace: Path) -> None:
    path = workspace / "prompts" / "t" / "alpha.yaml"
    before = path.read_text()
    at = open_prompts()
    at.text_area(key="pp:t/alpha:params").input("temprature: 0.3\n").run()
    assert any("params.temprature" in shown(e.value) for e in at.error), [e.value for e in at.error]
    assert button(at, "Save").disabled
    at.text_input(key="pp:t/alpha:model").input("gpt-4o").run()
    assert path.read_text() == before
    revert = button(at, "Revert")
    assert not revert.disabled  # an invalid edit is exactly when it is needed
    revert.click().run()
    assert at.text_area(key="pp:t/alpha:params").value.strip() == "max_tokens: 50"
    assert not at.error and button(at, "Revert").disabled


def test_a_file_changed_on_disk_is_a_conflict_not_an_overwrite(workspace: Path) -> None:
    path = workspace / "prompts" / "t" / "alpha.yaml"
    at = open_prompts()
    at.text_area(key="pp:t/alpha:system").input("Mine.").run()
    theirs = path.read_text().replace("You are alpha.", "You are alpha (from git pull).")
    path.write_text(theirs)
    at.run()
    assert any("changed on disk since you began editing" in w.value for w in at.warning)
    button(at, "Save").click().run()
    assert path.read_text() == theirs
    assert any("Not saved" in e.value for e in at.error)
    diff = next(c.value for c in at.code if "on disk now" in c.value)
    assert "-system: You are alpha (from git pull)." in diff and "+system: Mine." in diff
    button(at, "Reload from disk (drop my edits)").click().run()
    assert at.text_area(key="pp:t/alpha:system").value == "You are alpha (from git pull)."


def test_preview_renders_a_dataset_row_and_variables_are_listed(workspace: Path) -> None:
    at = open_prompts()
    assert any("` input `" in m.value for m in at.markdown)
    texts = [t.value for t in at.text]
    first = at.selectbox(key="pp_preview_row").value
    assert f"Customer message: {first.values['input']}" in texts


def test_duplicate_then_compare_and_restore_from_history(workspace: Path) -> None:
    at = open_prompts()
    at.text_input(key="pp_copy_name").input("t/alpha2").run()
    button(at, "Duplicate").click().run()
    assert not at.exception
    assert (workspace / "prompts" / "t" / "alpha2.yaml").read_text() == (
        workspace / "prompts" / "t" / "alpha.yaml"
    ).read_text()
    assert at.selectbox(key="pp_variant").value == "t/alpha2"
    at.selectbox(key="pp_cmp_b").set_value("t/beta").run()
    codes = [c.value for c in at.code]
    assert "fake/alpha" in codes and "fake/beta" in codes
    at.text_area(key="pp:t/alpha2:user").input("Shorter: {{ input }}").run()
    button(at, "Save").click().run()
    assert "Shorter" in (workspace / "prompts" / "t" / "alpha2.yaml").read_text()
    at.selectbox(key="pp_history_pick").select_index(1).run()  # the version it was created with
    button(at, "Restore this version").click().run()
    assert "Shorter" not in (workspace / "prompts" / "t" / "alpha2.yaml").read_text()


def test_a_broken_file_is_listed_and_fixed_as_raw_yaml(workspace: Path) -> None:
    broken = workspace / "prompts" / "t" / "broken.yaml"
    broken.write_text("model: fake/x\nuser: hi\ncolour: red\n")
    at = open_prompts("t/broken")
    assert at.selectbox(key="pp_variant").value == "t/broken"
    assert at.toggle(key="pp:t/broken:raw_mode").value
    assert any("colour" in e.value for e in at.error)
    at.text_area(key="pp:t/broken:raw").input("model: fake/x\nuser: hi\n").run()
    button(at, "Save").click().run()
    assert broken.read_text() == "model: fake/x\nuser: hi\n"
    assert not any("colour" in e.value for e in at.error)


def test_mark_as_baseline_and_delete_with_confirmation(workspace: Path) -> None:
    at = open_prompts("t/beta")
    button(at, "Mark as baseline").click().run()
    assert "tags: [baseline]" in (workspace / "prompts" / "t" / "beta.yaml").read_text()
    assert button(at, "The baseline").disabled
    assert button(at, "Delete").disabled  # until confirmed
    at.checkbox(key="pp_delete_sure").check().run()
    button(at, "Delete").click().run()
    assert not (workspace / "prompts" / "t" / "beta.yaml").exists()
    assert "t/beta" not in at.selectbox(key="pp_variant").options
    at.selectbox(key="pp_gone").set_value(at.selectbox(key="pp_gone").options[0]).run()
    button(at, "Restore").click().run()
    assert (workspace / "prompts" / "t" / "beta.yaml").exists()


def test_open_in_playground_selects_the_variant_there(workspace: Path) -> None:
    at = open_prompts("t/beta")
    button(at, "Open in Playground").click().run()
    assert not at.exception
    assert at.multiselect(key="pg_variants").value == ["t/beta"]


def test_picking_another_variant_sticks_and_moves_the_url(workspace: Path) -> None:
    at = open_prompts("t/alpha")  # opened by a link
    at.selectbox(key="pp_variant").set_value("t/beta").run()
    assert not at.exception
    assert at.selectbox(key="pp_variant").value == "t/beta"  # no snap back to the link's
    assert at.query_params["variant"] == "t/beta"  # a refresh keeps the choice
    at.run()  # any later rerun keeps it too
    assert at.selectbox(key="pp_variant").value == "t/beta"


def test_a_variant_with_tools_is_edited_in_the_form_and_keeps_its_tools(workspace: Path) -> None:
    path = workspace / "prompts" / "orders" / "lookup.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    before = (ROOT / "prompts" / "orders" / "lookup.yaml").read_text()
    path.write_text(before)
    at = open_prompts("orders/lookup")
    assert [e.label for e in at.expander if e.label.startswith("Tools")] == [
        "Tools and structured output"
    ]
    assert "get_order" in at.text_area(key="pp:orders/lookup:tools").value
    assert button(at, "Save").disabled  # the form shows the file as it is
    at.text_input(key="pp:orders/lookup:max_tool_rounds").input("2").run()
    button(at, "Save").click().run()
    assert not at.exception
    assert path.read_text() == before.replace("max_tool_rounds: 3", "max_tool_rounds: 2")
    # a broken tool is named with its field before anything is written
    at.text_area(key="pp:orders/lookup:tools").input("- description: no name\n").run()
    assert any("tools[0].name" in shown(e.value) for e in at.error)
    assert button(at, "Save").disabled
