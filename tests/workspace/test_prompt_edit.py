from dataclasses import replace
from pathlib import Path

import pytest

from promptdeck.errors import FileConflictError, PromptFileError
from promptdeck.store.db import Store
from promptdeck.workspace.fileio import MISSING
from promptdeck.workspace.prompt_edit import (
    PromptFiles,
    apply_draft,
    diff_variants,
    draft_from_text,
    render_draft,
    text_diff,
)
from promptdeck.workspace.prompts import load_prompts, load_variant

ORIGINAL = """\
# Owned by the support team.
description: Current production prompt
model: local/smollm2
params: {temperature: 0.2, max_tokens: 200}   # tuned in March
system: |
  You are a support agent for Acme.
  Be kind.
user: |
  Customer message: {{ input }}
checks:
  - {type: not_contains, value: ["as an AI"], case_sensitive: false}
  - {type: max_chars, value: 1200}
tags: [baseline]
"""


@pytest.fixture
def files(tmp_path: Path) -> PromptFiles:
    (tmp_path / "prompts" / "support").mkdir(parents=True)
    (tmp_path / "prompts" / "support" / "production.yaml").write_text(ORIGINAL)
    (tmp_path / "prompts" / "support" / "concise.yaml").write_text(
        "model: local/smollm2\nuser: 'Answer briefly: {{ input }}'\ntags: [baseline, short]\n"
    )
    return PromptFiles(tmp_path / "prompts", Store(tmp_path / "store.sqlite"))


def test_an_unchanged_draft_gives_back_the_file_byte_for_byte() -> None:
    text, variant = render_draft(
        draft_from_text(ORIGINAL), ORIGINAL, name="support/production", path=Path("p.yaml")
    )
    assert text == ORIGINAL
    assert variant.params == {"temperature": 0.2, "max_tokens": 200}


def test_an_edit_changes_only_its_lines_and_keeps_comments() -> None:
    draft = draft_from_text(ORIGINAL)
    edited = replace(
        draft,
        params=draft.params.replace("0.2", "0.7"),
        system="You are a support agent for Acme.\nBe brief.\n",
        fallback="openai/gpt-4o-mini",
    )
    text, variant = render_draft(edited, ORIGINAL, name="support/production", path=Path("p.yaml"))
    assert text_diff(ORIGINAL, text, "a", "b").splitlines()[2:] == [
        "@@ -2,8 +2,8 @@",
        " description: Current production prompt",
        " model: local/smollm2",
        "-params: {temperature: 0.2, max_tokens: 200}   # tuned in March",
        "+params: {temperature: 0.7, max_tokens: 200}   # tuned in March",
        " system: |",
        "   You are a support agent for Acme.",
        "-  Be kind.",
        "+  Be brief.",
        " user: |",
        "   Customer message: {{ input }}",
        "@@ -11,3 +11,4 @@",
        '   - {type: not_contains, value: ["as an AI"], case_sensitive: false}',
        "   - {type: max_chars, value: 1200}",
        "+fallback: openai/gpt-4o-mini",
        " tags: [baseline]",
    ]
    assert variant.fallback == "openai/gpt-4o-mini"
    assert variant.params["temperature"] == 0.7


def test_emptied_fields_are_removed_and_new_ones_go_in_canonical_order() -> None:
    text = apply_draft(
        "user: hi\nmodel: local/x\n",
        {"model": "local/x", "user": "hi", "description": "New", "tags": []},
    )
    assert text == "description: New\nuser: hi\nmodel: local/x\n"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("params", "temprature: 0.2\n", "params.temprature"),
        (
            "params",
            "temperature: [0.2\n",
            "field 'params': line 2: invalid YAML: expected ',' or ']'",
        ),
        ("checks", "- {type: max_char, value: 3}\n", "checks[0]"),
        ("model", "gpt-4o", "field 'model': must be a model reference provider/model"),
        ("user", "Hello {{ input ", "field 'user'"),
    ],
)
def test_an_invalid_draft_says_which_field(field: str, value: str, message: str) -> None:
    draft = replace(draft_from_text(ORIGINAL), **{field: value})
    with pytest.raises(PromptFileError) as info:
        render_draft(draft, ORIGINAL, name="support/production", path=Path("p.yaml"))
    assert message in str(info.value)


def test_load_edit_save_load_round_trip(files: PromptFiles) -> None:
    loaded = files.load("support/production")
    draft = replace(
        draft_from_text(loaded.text), user="Ticket: {{ input }}\nCustomer: {{ name }}\n"
    )
    text, _ = render_draft(draft, loaded.text, name="support/production", path=loaded.path)
    files.save("support/production", text, loaded.fingerprint)
    again = load_variant(loaded.path, files.root)
    assert again.user == "Ticket: {{ input }}\nCustomer: {{ name }}\n"
    assert again.system == "You are a support agent for Acme.\nBe kind.\n"
    assert "# Owned by the support team." in loaded.path.read_text()


def test_saving_over_a_changed_file_is_a_conflict_and_writes_nothing(files: PromptFiles) -> None:
    loaded = files.load("support/production")
    loaded.path.write_text(ORIGINAL.replace("Be kind.", "Be kind. (from git pull)"))
    with pytest.raises(FileConflictError) as info:
        files.save("support/production", ORIGINAL.replace("kind", "warm"), loaded.fingerprint)
    assert "(from git pull)" in info.value.disk_text
    assert "(from git pull)" in loaded.path.read_text()
    assert files.history("support/production") == []


def test_an_invalid_text_is_never_written(files: PromptFiles) -> None:
    loaded = files.load("support/production")
    with pytest.raises(PromptFileError):
        files.save("support/production", "model: nope\nuser: hi\n", loaded.fingerprint)
    assert loaded.path.read_text() == ORIGINAL


def test_history_keeps_every_save_and_restores_any(files: PromptFiles) -> None:
    name = "support/production"
    first = files.load(name)
    v2 = ORIGINAL.replace("Be kind.", "Be kind, v2.")
    fp = files.save(name, v2, first.fingerprint)
    fp = files.save(name, ORIGINAL.replace("Be kind.", "Be kind, v3."), fp)
    history = files.history(name)
    assert [h["action"] for h in history] == ["save", "save", "original"]
    assert history[-1]["content"] == ORIGINAL
    files.restore(name, history[-1]["id"], fp)
    assert first.path.read_text() == ORIGINAL
    assert files.history(name)[0]["action"] == f"restore of #{history[-1]['id']}"


def test_duplicate_rename_delete_and_restore_a_deleted_variant(files: PromptFiles) -> None:
    files.duplicate("support/production", "support/warmer")
    assert files.load("support/warmer").text == ORIGINAL
    with pytest.raises(FileConflictError):
        files.duplicate("support/production", "support/concise")  # never overwrites
    warmer = files.load("support/warmer")
    files.rename("support/warmer", "support/warm", warmer.fingerprint)
    assert not warmer.path.exists()
    assert sorted(load_prompts(files.root).variants) == [
        "support/concise",
        "support/production",
        "support/warm",
    ]
    warm = files.load("support/warm")
    files.delete("support/warm", warm.fingerprint)
    assert not warm.path.exists()
    deleted = files.history("support/warm")[0]
    assert deleted["action"] == "delete" and deleted["content"] == ORIGINAL
    files.restore("support/warm", deleted["id"], MISSING)
    assert warm.path.read_text() == ORIGINAL


@pytest.mark.parametrize(
    "bad", ["noslash", "a/b/c", "../x", "task/", "t/ lead", "t/va<riant", "t/x.", "t/_x"]
)
def test_variant_names_are_checked(files: PromptFiles, bad: str) -> None:
    with pytest.raises(PromptFileError, match="not a variant name"):
        files.duplicate("support/production", bad)


def test_mark_as_baseline_moves_the_tag_within_the_task(files: PromptFiles) -> None:
    changed = files.mark_baseline("support/concise", ["support/production", "support/concise"])
    assert changed == ["support/production", "support/concise"] or sorted(changed) == [
        "support/concise",
        "support/production",
    ]
    library = load_prompts(files.root)
    assert library.variants["support/concise"].tags == ("short", "baseline")
    assert library.variants["support/production"].tags == ()
    assert "# Owned by the support team." in files.path_of("support/production").read_text()


def test_diff_of_two_variants_field_by_field(files: PromptFiles) -> None:
    library = load_prompts(files.root)
    diffs = {
        d.field: d
        for d in diff_variants(
            library.variants["support/production"], library.variants["support/concise"]
        )
    }
    assert list(diffs) == ["model", "params", "system", "user", "checks", "tags", "description"]
    assert diffs["model"].same
    assert not diffs["user"].same
    assert diffs["user"].unified() == (
        "@@ -1 +1 @@\n-Customer message: {{ input }}\n+Answer briefly: {{ input }}"
    )
    assert diffs["checks"].a == (
        "{type: not_contains, value: [as an AI], case_sensitive: false}\n"
        "{type: max_chars, value: 1200}"
    )
    assert diffs["checks"].b == ""
    assert diffs["params"].a == "temperature: 0.2\nmax_tokens: 200\n"


def test_deleted_variants_are_listed_until_restored(files: PromptFiles) -> None:
    files.save(
        "support/concise",
        files.load("support/concise").text.replace("briefly", "in short"),
        files.load("support/concise").fingerprint,
    )
    assert files.deleted() == []
    files.delete("support/concise", files.load("support/concise").fingerprint)
    gone = files.deleted()
    assert [(v["name"], v["action"]) for v in gone] == [("support/concise", "delete")]
    files.restore("support/concise", gone[0]["id"], MISSING)
    assert files.deleted() == []
    assert "in short" in files.load("support/concise").text


LOOKUP = (Path(__file__).resolve().parents[2] / "prompts" / "orders" / "lookup.yaml").read_text()


def test_a_variant_with_tools_round_trips_through_the_form_and_keeps_them_on_an_edit() -> None:
    path = Path("lookup.yaml")
    draft = draft_from_text(LOOKUP)
    text, _ = render_draft(draft, LOOKUP, name="orders/lookup", path=path)
    assert text == LOOKUP  # untouched fields are written back byte for byte
    edited = replace(draft, description="Looks it up", max_tool_rounds="2")
    text, variant = render_draft(edited, LOOKUP, name="orders/lookup", path=path)
    assert variant.description == "Looks it up" and variant.max_tool_rounds == 2
    assert [t.name for t in variant.tools] == ["get_order"]
    assert variant.output_schema is not None and variant.output_schema["required"] == [
        "status",
        "reply",
    ]
    emptied = replace(draft, tools="", max_tool_rounds="", params="{temperature: 0}")
    _, variant = render_draft(emptied, LOOKUP, name="orders/lookup", path=path)
    assert variant.tools == () and variant.output_schema is not None
