"""Prompts: edit variants and write them back to their YAML files; compare, history, restore."""

from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

from promptdeck import ui
from promptdeck.analysis.versions import runs_of_variant
from promptdeck.errors import FileConflictError, PromptDeckError, PromptFileError
from promptdeck.store.rows import VersionRow
from promptdeck.workspace.datasets import find_datasets, load_dataset
from promptdeck.workspace.fileio import MISSING, Loaded
from promptdeck.workspace.prompt_edit import (
    BASELINE_TAG,
    DRAFT_FIELDS,
    Draft,
    PromptFiles,
    diff_variants,
    draft_from_text,
    render_draft,
    text_diff,
)
from promptdeck.workspace.prompts import (
    PromptVariant,
    render_messages,
    template_variables,
    variant_from_text,
    variant_name,
)

ui.frame("Prompts")
st.title("Prompts")
st.caption(
    "Every variant is a YAML file in `prompts/<task>/`. Saving writes the file back, "
    "comments and key order kept, so each change is reviewable in git."
)

library = ui.prompt_library()
ws = ui.workspace()
editor = ui.can_edit()  # a viewer reads the files, their history and runs; changes nothing
files = PromptFiles(ws.prompts_dir, ui.store())
state = st.session_state
state.setdefault("pp_base", {})  # variant -> Loaded: the file as it was when editing began
state.setdefault("pp_conflict", {})  # variant -> the text on disk that a save ran into


def broken_names() -> dict[str, PromptFileError]:
    out = {}
    for err in library.errors:
        with suppress(PromptFileError):  # a file outside a task folder cannot be edited here
            out[variant_name(Path(err.path), ws.prompts_dir)] = err
    return out


broken = broken_names()
names = sorted({*library.variants, *broken})


def key(name: str, field: str) -> str:
    return f"pp:{name}:{field}"


def act(action: Callable[[], object], done: str, *, select: str | None = None) -> None:
    """Run a file action; an error becomes a message, success a toast and a fresh page."""
    ui.require_editor("change prompt files")
    try:
        action()
    except PromptDeckError as exc:
        st.error(ui.plain(exc))
        return
    state.pp_toast = done
    if select:
        state.pp_select = select
    st.rerun()


def new_variant_form() -> None:
    with st.form("pp_new", border=False):
        new = st.text_input("Name (task/variant)", placeholder="support/friendly").strip()
        model = st.text_input("Model", "local/smollm2")
        if st.form_submit_button("Create variant", icon=":material/add:"):
            text = f"model: {model}\nuser: |\n  {{{{ input }}}}\n"
            act(lambda: files.create(new, text), f"Created {new}", select=new)


if toast := state.pop("pp_toast", None):
    st.toast(ui.plain(toast), icon=":material/check_circle:")
if not names:
    st.info(
        "No prompt variants yet. Create the first one here, or add a YAML file under "
        "`prompts/<task>/` (the README shows the format).",
        icon=":material/lightbulb:",
    )
    if editor:
        new_variant_form()
    st.stop()

ui.show_prompt_errors(library)
# The URL's ?variant= picks the variant when it is new (a link, a refresh), never over a
# choice just made in the selectbox (the URL is only updated further down this run).
linked = st.query_params.get("variant")
wanted = state.pop("pp_select", None)
if wanted is None and linked != state.get("pp_linked"):
    state.pp_linked, wanted = linked, linked
if wanted in names:
    state.pp_variant = wanted
elif state.get("pp_variant") not in names:
    state.pp_variant = names[0]


# --- the variant and its actions -------------------------------------------------------------

top = st.container(horizontal=True, vertical_alignment="bottom")
name = top.selectbox(
    "Variant",
    names,
    key="pp_variant",
    format_func=lambda n: f"⚠️ {n} (cannot be loaded)" if n in broken else n,
    width=300,
)
st.query_params["variant"] = state.pp_linked = name
variant: PromptVariant | None = library.variants.get(name)
try:
    disk = files.load(name)
except OSError as exc:
    st.warning(f"{ui.plain(name)}: the file is gone ({exc.strerror}); pick another variant.")
    st.stop()
except PromptFileError as exc:  # not UTF-8 text: nothing here can edit it safely
    st.error(ui.plain(exc))
    st.stop()

if not editor:
    st.caption("You are a viewer: this page shows the files, their history and their runs.")
elif top.button("Open in Playground", icon=":material/play_circle:", disabled=variant is None):
    state.pg_variants = [name]
    st.switch_page("pages/playground.py", query_params={"variant": name})


def file_actions() -> None:
    """Baseline, copy, rename, delete, new, restore a deleted variant: editors only."""
    is_baseline = variant is not None and BASELINE_TAG in variant.tags
    if top.button(
        "The baseline" if is_baseline else "Mark as baseline",
        icon=":material/flag:",
        disabled=variant is None or is_baseline,
        help=f"Tags this variant `{BASELINE_TAG}` and untags the other variants of its task; "
        "the Evaluate page picks the tagged variant as the baseline.",
    ):
        act(lambda: files.mark_baseline(name, sorted(library.variants)), f"{name} is the baseline")
    with top.popover("Copy", icon=":material/content_copy:"):
        copy_to = st.text_input("New name", f"{name}-copy", key="pp_copy_name").strip()
        if st.button("Duplicate", key="pp_copy_go", type="primary"):
            act(lambda: files.duplicate(name, copy_to), f"Copied to {copy_to}", select=copy_to)
    with top.popover("Rename", icon=":material/edit:"):
        rename_to = st.text_input("New name", name, key="pp_rename_name").strip()
        if st.button("Rename", key="pp_rename_go", type="primary"):
            act(
                lambda: files.rename(name, rename_to, disk.fingerprint),
                f"Renamed to {rename_to}",
                select=rename_to,
            )
    with top.popover("Delete", icon=":material/delete:"):
        st.write(
            f"Delete {ui.code(disk.path)}? Its last version stays in the history and can be "
            "restored."
        )
        sure = st.checkbox("Yes, delete this variant", key="pp_delete_sure")
        if st.button("Delete", key="pp_delete_go", type="primary", disabled=not sure):
            act(lambda: files.delete(name, disk.fingerprint), f"Deleted {name}")
    with top.popover("New variant", icon=":material/add:"):
        new_variant_form()
    if deleted := files.deleted():
        with top.popover("Deleted", icon=":material/restore_from_trash:", use_container_width=True):
            gone = st.selectbox(
                "Deleted variant",
                deleted,
                format_func=lambda v: f"{v['name']} · {v['saved'][:16].replace('T', ' ')}",
                key="pp_gone",
            )
            if st.button("Restore", key="pp_gone_go", type="primary"):
                act(
                    lambda: files.restore(gone["name"], gone["id"], MISSING),
                    f"Restored {gone['name']}",
                    select=gone["name"],
                )


if editor:
    file_actions()


# --- editing ------------------------------------------------------------------------------


def begin_editing(loaded: Loaded) -> None:
    """(Re)fill the form of `name` from the file's text."""
    state.pp_base[name] = loaded
    state.pp_conflict.pop(name, None)
    state[key(name, "raw")] = loaded.text
    try:
        draft = asdict(draft_from_text(loaded.text))
    except ValueError:
        draft = asdict(Draft())
    # a file that does not load (bad YAML, an unknown key) is fixed as text: the form
    # has no field for what is wrong
    state[key(name, "raw_mode")] = name in broken
    for field, value in draft.items():
        state[key(name, field)] = value


def form_draft() -> Draft:
    return Draft(**{f: state[key(name, f)] for f in DRAFT_FIELDS})


def has_edits(base: Loaded) -> bool:
    if state[key(name, "raw")] != base.text:
        return True
    try:
        return form_draft() != draft_from_text(base.text)
    except ValueError:
        return False


def reload_form(toast: str | None = None) -> None:
    """Refill the form from the file on the next run (widgets cannot change once drawn)."""
    state.pp_reload = name
    if toast:
        state.pp_toast = toast
    st.rerun()


needed = [key(name, f) for f in (*DRAFT_FIELDS, "raw", "raw_mode")]
reload = state.pop("pp_reload", None) == name
if reload or name not in state.pp_base or any(k not in state for k in needed):
    begin_editing(disk)
base: Loaded = state.pp_base[name]
if disk.fingerprint != base.fingerprint and name not in state.pp_conflict:
    if has_edits(base):
        st.warning(
            f"{ui.code(disk.path)} changed on disk since you began editing (another tab, an "
            "editor or a git pull). Saving will show both versions; nothing is overwritten.",
            icon=":material/sync_problem:",
        )
    else:  # nothing to lose: follow the file
        begin_editing(disk)
        base = disk
        st.toast(f"{ui.plain(name)} was reloaded: the file changed on disk", icon=":material/sync:")


def fit(text: str) -> int:
    """A text area's height that shows all of a short YAML field."""
    return min(300, max(68, 24 * (text.count("\n") + 1) + 20))


def edit_form() -> None:
    """The fields of the variant; every widget keeps its value across page switches."""
    c = st.columns([2, 2, 3])
    c[0].text_input(
        "Model",
        key=key(name, "model"),
        help="provider/model, e.g. local/smollm2",
        persist_state="session",
    )
    c[1].text_input(
        "Fallback model",
        key=key(name, "fallback"),
        help="Used when the model fails",
        persist_state="session",
    )
    c[2].text_input("Tags (comma-separated)", key=key(name, "tags"), persist_state="session")
    st.text_input("Description", key=key(name, "description"), persist_state="session")
    st.text_area(
        "Params (YAML)",
        key=key(name, "params"),
        height=fit(state[key(name, "params")]),
        help="temperature, max_tokens, top_p, stop, seed, ...; unknown names are rejected",
        persist_state="session",
    )
    if state[key(name, "messages")].strip():
        st.text_area(
            "Messages (YAML list of role/content)",
            key=key(name, "messages"),
            height=260,
            persist_state="session",
        )
    else:
        st.text_area("System", key=key(name, "system"), height=150, persist_state="session")
        st.text_area(
            "User template (Jinja2)",
            key=key(name, "user"),
            height=110,
            help="{{ column }} takes a dataset column; a missing one is an error, never blank",
            persist_state="session",
        )
    st.text_area(
        "Checks (YAML list)",
        key=key(name, "checks"),
        height=fit(state[key(name, "checks")]),
        help="Output guardrails run on every answer, e.g. - {type: max_chars, value: 800}",
        persist_state="session",
    )
    tooled = any(state[key(name, f)].strip() for f in TOOL_FIELDS)
    with st.expander("Tools and structured output", expanded=tooled):
        st.text_area(
            "Tools (YAML list)",
            key=key(name, "tools"),
            height=fit(state[key(name, "tools")]),
            help="- name, description, parameters (a JSON schema) and mock (a template "
            "whose text goes back to the model; it sees the row's variables and args)",
            persist_state="session",
        )
        c = st.columns([3, 1])
        c[0].text_area(
            "Output schema (YAML, a JSON schema)",
            key=key(name, "output_schema"),
            height=fit(state[key(name, "output_schema")]),
            help="Sent as the provider's structured output and checked on every answer",
            persist_state="session",
        )
        c[1].text_input(
            "Max tool rounds",
            key=key(name, "max_tool_rounds"),
            placeholder="5",
            persist_state="session",
        )


TOOL_FIELDS = ("tools", "output_schema", "max_tool_rounds")


def candidate() -> tuple[str, PromptVariant | None, PromptDeckError | None]:
    """The text that Save would write, and the variant it loads as (or what is wrong)."""
    try:
        if state[key(name, "raw_mode")]:
            text = state[key(name, "raw")]
            return text, variant_from_text(text, name=name, path=disk.path), None
        text, loaded = render_draft(form_draft(), base.text, name=name, path=disk.path)
        return text, loaded, None
    except PromptDeckError as exc:
        return state[key(name, "raw")] if state[key(name, "raw_mode")] else base.text, None, exc


def preview(current: PromptVariant) -> None:
    variables = template_variables(current)
    st.markdown("**Variables** " + (" ".join(ui.code(v) for v in variables) or "none"))
    paths = find_datasets(ws.datasets_dir)
    if not paths:
        st.caption("Add a dataset in `datasets/` to preview the prompt with a real row.")
        return
    c = st.columns([1, 1])
    path = c[0].selectbox("Preview with", paths, format_func=lambda p: p.name, key="pp_preview_ds")
    try:
        dataset = load_dataset(path)
    except PromptDeckError as exc:
        st.error(ui.plain(exc))
        return
    case = c[1].selectbox(
        "Row", dataset.cases, format_func=lambda case: case.label(40), key="pp_preview_row"
    )
    try:
        messages = render_messages(current, case.values)
    except PromptDeckError as exc:
        st.warning(ui.plain(exc))
        return
    for message in messages:
        with st.container(border=True):
            st.caption(ui.plain(message.role))
            st.text(message.content)


def save(text: str, expected: str) -> None:
    ui.require_editor("change prompt files")
    try:
        files.save(name, text, expected)
    except FileConflictError as exc:
        state.pp_conflict[name] = exc.disk_text
        st.rerun()
    except PromptDeckError as exc:
        st.error(ui.plain(exc))
        return
    reload_form(f"Saved {disk.path}")


def show_conflict(text: str) -> None:
    on_disk = state.pp_conflict[name]
    st.error(
        f"**Not saved: {ui.code(disk.path)} changed on disk since you opened it.** Nothing was "
        "overwritten. Below: what is on disk now (-) against your version (+).",
        icon=":material/sync_problem:",
    )
    st.code(
        text_diff(on_disk, text, "on disk now", "yours") or "(no difference)",
        language="diff",
        wrap_lines=True,
    )
    c = st.columns(3)
    if c[0].button("Reload from disk (drop my edits)", icon=":material/refresh:"):
        state.pp_conflict.pop(name, None)
        reload_form()
    if c[1].button("Overwrite with mine", icon=":material/save:"):
        save(text, files.load(name).fingerprint)
    with c[2].popover("Save mine as a new variant", icon=":material/content_copy:"):
        other = st.text_input("New name", f"{name}-mine", key="pp_conflict_name").strip()
        if st.button("Save as new", key="pp_conflict_go"):
            act(lambda: files.create(other, text), f"Saved as {other}", select=other)


def edit_tab() -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.toggle(
            "Edit the YAML file directly",
            key=key(name, "raw_mode"),
            disabled=name in broken,
            help="For fields the form does not show, or a file that does not parse.",
        )
        if state[key(name, "raw_mode")]:
            st.text_area("YAML", key=key(name, "raw"), height=480, persist_state="session")
        else:
            edit_form()
    text, current, problem = candidate()
    changed = text != base.text
    with right:
        if problem is not None:
            st.error(f"**Cannot be saved yet.** {ui.plain(problem)}", icon=":material/error:")
        elif changed:
            st.success("Valid. Unsaved changes.", icon=":material/edit:")
        else:
            st.caption(f"{ui.code(disk.path)}, saved.")
        if changed:
            with st.expander("Changes to the file", expanded=True):
                st.code(
                    text_diff(base.text, text, "saved", "yours"), language="diff", wrap_lines=True
                )
        if current is not None:
            preview(current)
    if name in state.pp_conflict:
        show_conflict(text)
        return
    c = st.columns([1, 1, 4])
    if c[0].button(
        "Save", type="primary", icon=":material/save:", disabled=problem is not None or not changed
    ):
        save(text, base.fingerprint)
    # An invalid edit is exactly when Revert is needed: only an unchanged form disables it.
    if c[1].button("Revert", icon=":material/undo:", disabled=not changed and problem is None):
        reload_form()


# --- compare and history -----------------------------------------------------------------------


def compare_tab() -> None:
    good = sorted(library.variants)
    if len(good) < 2:
        st.info("Compare needs two variants; duplicate this one to start a new version.")
        return
    c = st.columns(2)
    a = c[0].selectbox("A", good, index=good.index(name) if name in good else 0, key="pp_cmp_a")
    b = c[1].selectbox("B", good, index=1 if good[0] == a else 0, key="pp_cmp_b")
    diffs = diff_variants(library.variants[a], library.variants[b])
    same = [d.field for d in diffs if d.same]
    if same:
        st.caption("Same in both: " + ui.plain(", ".join(same)))
    for diff in (d for d in diffs if not d.same):
        st.markdown(f"**{ui.plain(diff.field)}**")
        left, right = st.columns(2)
        left.code(diff.a or "(none)", language=None, wrap_lines=True)
        right.code(diff.b or "(none)", language=None, wrap_lines=True)
        with st.expander(f"{diff.field}: line diff"):
            st.code(diff.unified(a, b), language="diff", wrap_lines=True)


def history_tab() -> None:
    versions = files.history(name)
    if not versions:
        st.info(
            "No saves from the app yet. Each save, rename, delete or restore is kept here "
            "(in the local store), so any version can be brought back."
        )
        return
    table = pd.DataFrame(versions)[["id", "saved", "action", "author", "fingerprint"]]
    table["author"] = [ui.who(a) for a in table["author"]]
    st.dataframe(table.rename(columns={"author": "saved by"}), hide_index=True, width="stretch")

    def label(v: VersionRow) -> str:
        by = f" · by {v['author']}" if v["author"] else ""
        return f"#{v['id']} · {v['saved'][:19].replace('T', ' ')} · {v['action']}{by}"

    chosen = st.selectbox("Version", versions, format_func=label, key="pp_history_pick")
    st.code(
        text_diff(disk.text, chosen["content"], "current", f"#{chosen['id']}") or "(same as now)",
        language="diff",
    )
    if editor and st.button("Restore this version", icon=":material/history:", key="pp_restore"):
        act(
            lambda: files.restore(name, chosen["id"], disk.fingerprint), f"Restored #{chosen['id']}"
        )


def runs_tab() -> None:
    """The eval runs of this variant, and which of them ran the version on disk now."""
    used = runs_of_variant(ui.store().list_runs(200), name)
    if not used:
        st.info("No eval run has used this variant yet: plan one on the Evaluate page.")
        return
    saved = {v["fingerprint"]: v["id"] for v in files.history(name)}
    rows = [
        {
            "run": run.id,
            "suite": run.name,
            "started": run.created[:19].replace("T", " "),
            "version": "unknown (an older run)" if ran is None
            else "this version" if ran == disk.fingerprint
            else f"an earlier one (History #{saved[ran]})" if ran in saved
            else "an earlier one",
            "results": f"/results?run={run.id}",
        }
        for run, ran in used
    ]  # fmt: skip
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={"results": st.column_config.LinkColumn("results", display_text="open")},
    )


def file_tab() -> None:
    """A viewer's Edit tab: the file as it is on disk, nothing to change."""
    st.caption(f"{ui.code(disk.path)}, as saved.")
    st.code(disk.text, language="yaml", wrap_lines=True)
    if variant is not None:
        preview(variant)


edit, compare, history, runs = st.tabs(["Edit" if editor else "File", "Compare", "History", "Runs"])
with edit:
    if editor:
        edit_tab()
    else:
        file_tab()
with compare:
    compare_tab()
with history:
    history_tab()
with runs:
    runs_tab()
