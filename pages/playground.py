"""Playground: 1-4 prompt variants streamed live, side by side, each measured; their
thinking and tool calls shown apart from the answers; a follow-up continues every column."""

import json
from typing import Any

import streamlit as st

from promptdeck import ui
from promptdeck.errors import PromptDeckError
from promptdeck.evals.live import ColumnView, LiveRun, plan_columns, plan_follow_up, stored_views
from promptdeck.store.rows import PlaygroundRunRow
from promptdeck.workspace.dataset_edit import conversation_case
from promptdeck.workspace.datasets import append_case, find_datasets, load_dataset
from promptdeck.workspace.images import image_from_bytes
from promptdeck.workspace.prompt_edit import PromptFiles, apply_draft, default_selection
from promptdeck.workspace.prompts import PromptVariant, template_variables, variant_from_dict

MAX_COLUMNS = 4
ui.frame("Playground")
st.title("Playground")
if not ui.can_edit():
    st.info(
        "Running prompts is for editors: you are a viewer of this workspace. Eval results "
        "and reports are on the Results page.",
        icon=":material/lock:",
    )
    st.page_link("pages/results.py", label="Open Results", icon=":material/insights:")
    st.stop()

library = ui.prompt_library()
ui.show_prompt_errors(library)
registry = ui.registry_or_stop()

names = sorted(library.variants)
if "pg_variants" not in st.session_state:
    wanted = st.query_params.get_all("variant") or default_selection(library)
    st.session_state.pg_variants = [n for n in wanted if n in library.variants][:MAX_COLUMNS]
st.session_state.pg_variants = [n for n in st.session_state.pg_variants if n in library.variants]

run: LiveRun | None = st.session_state.get("pg_run")
running = run is not None and run.running

top = st.columns([4, 1])
selected = top[0].multiselect(
    "Variants",
    names,
    key="pg_variants",
    max_selections=MAX_COLUMNS,
    placeholder="Pick up to four prompt variants",
    persist_state="session",  # kept across page switches, like the inputs
)
with top[1]:
    st.write("")
    scratch_on = st.toggle(
        "Scratch prompt",
        key="pg_scratch",
        help="Add a column with a prompt typed here, not saved to a file.",
        persist_state="session",
    )


def run_overrides() -> dict[str, object]:
    """The run settings that are set; the variants' own params otherwise."""
    return {
        "temperature": st.session_state.get("pg_temperature"),
        "max_tokens": st.session_state.get("pg_max_tokens"),
        "seed": st.session_state.get("pg_seed"),
    }


def scratch_variant() -> PromptVariant | None:
    with st.expander("Scratch prompt", expanded=True):
        model = st.text_input("Model", "local/smollm2", key="pg_s_model", persist_state="session")
        system = st.text_area(
            "System",
            "You are a helpful assistant.",
            key="pg_s_system",
            persist_state="session",
            height=80,
        )
        user = st.text_area(
            "User template (Jinja2)",
            "{{ input }}",
            key="pg_s_user",
            persist_state="session",
            height=80,
        )
        data = {"model": model, "system": system, "user": user, "params": {"max_tokens": 200}}
        try:
            variant = variant_from_dict(data, name="scratch/prompt", path="(scratch prompt)")
        except PromptDeckError as exc:
            st.error(ui.plain(exc))
            return None
        save_scratch(data)
    return variant


def save_scratch(data: dict[str, Any]) -> None:
    """Keep the scratch prompt as a variant file, validated and recorded like any other."""
    row = st.columns([3, 1], vertical_alignment="bottom")
    row[0].text_input(
        "Save as variant",
        key="pg_s_name",
        placeholder="task/name, e.g. support/shorter",
        help="Writes prompts/<task>/<name>.yaml with this model, system and user template "
        "(and the run settings below that are set). An existing file is never overwritten.",
    )
    row[1].button(
        "Save",
        key="pg_s_save",
        icon=":material/save:",
        on_click=write_scratch,  # before the script, so the list above has the new variant
        args=(data,),
    )
    if (said := st.session_state.pop("pg_s_said", None)) is not None:
        ok, message = said
        (st.success if ok else st.error)(message)


def write_scratch(data: dict[str, Any]) -> None:
    ui.require_editor("save prompt files")
    # Read from the session, not the render: a name typed and clicked at once arrives here.
    name = str(st.session_state.get("pg_s_name") or "").strip()
    data = {
        **data,
        "model": st.session_state.get("pg_s_model", data["model"]),
        "system": st.session_state.get("pg_s_system", data["system"]),
        "user": st.session_state.get("pg_s_user", data["user"]),
    }
    if not name:
        st.session_state.pg_s_said = (False, "Type a name like `support/shorter` first.")
        return
    params = {**data["params"], **{k: v for k, v in run_overrides().items() if v is not None}}
    text = apply_draft("", {**data, "params": params, "description": "From the Playground"})
    try:
        PromptFiles(ui.workspace().prompts_dir, ui.store()).create(
            name, text, action="saved from the Playground scratch prompt"
        )
    except PromptDeckError as exc:
        st.session_state.pg_s_said = (False, ui.plain(exc))
    else:
        message = f"Saved as {ui.plain(name)}: pick it above to compare."
        st.session_state.pg_s_said = (True, message)


variants = [library.variants[n] for n in selected]
if scratch_on and (scratch := scratch_variant()) is not None:
    variants.append(scratch)
variants = variants[:MAX_COLUMNS]

variables = sorted({v for variant in variants for v in template_variables(variant)})
dataset_paths = find_datasets(ui.workspace().datasets_dir)


def fill_from_row() -> None:
    case = st.session_state.get("pg_row")
    if case is not None:
        for name in variables:
            st.session_state[f"pg_in_{name}"] = str(case.values.get(name, ""))


if variables:
    st.subheader("Input")
    if dataset_paths:
        with st.expander("Fill from a dataset row"):
            path = st.selectbox(
                "Dataset", dataset_paths, format_func=lambda p: p.name, key="pg_dataset"
            )
            try:
                cases = load_dataset(path).cases if path else ()
            except PromptDeckError as exc:
                st.error(ui.plain(exc))
                cases = ()
            st.selectbox(
                "Row",
                cases,
                format_func=lambda c: c.label(90),
                key="pg_row",
                index=None,
                on_change=fill_from_row,
                placeholder="Pick a row",
            )
    for name in variables:
        st.text_area(
            name,
            key=f"pg_in_{name}",
            height=90,
            persist_state="session",
            placeholder=f"Value for {{{{ {name} }}}}",
        )
if variants:
    st.file_uploader(
        "Image (optional): sent with the prompt to models that read images",
        type=["png", "jpg", "jpeg", "gif", "webp"],
        key="pg_image",
    )


with st.expander("Run settings: override the variants' params for this run", expanded=False):
    own = "the variant's own"
    cols = st.columns(3)
    cols[0].number_input(
        "Temperature",
        min_value=0.0,
        max_value=2.0,
        step=0.1,
        value=None,
        key="pg_temperature",
        placeholder=own,
        persist_state="session",
    )
    cols[1].number_input(
        "Max tokens",
        min_value=1,
        max_value=32768,
        step=50,
        value=None,
        key="pg_max_tokens",
        placeholder=own,
        persist_state="session",
    )
    cols[2].number_input(
        "Seed",
        min_value=0,
        step=1,
        value=None,
        key="pg_seed",
        placeholder=own,
        persist_state="session",
        help="Same seed, same answer on the local model and OpenAI-compatible servers that "
        "honour it; Anthropic's API takes no seed and ignores it.",
    )
    st.caption("Empty: each variant's params apply. Set: used by every column, shown on each.")


def start_run(variants: list[PromptVariant], variables: list[str]) -> None:
    # A callback runs before the script, so the page it draws already shows the run.
    ui.require_editor("run prompts")
    inputs = {name: st.session_state.get(f"pg_in_{name}", "") for name in variables}
    empty = [name for name, value in inputs.items() if not str(value).strip()]
    st.session_state.pg_empty = empty
    if empty:  # Run stays clickable (a text typed but not yet committed arrives with the
        return  # click); an empty input is said, not sent
    upload = st.session_state.get("pg_image")
    try:
        images = [image_from_bytes(upload.getvalue(), upload.name)] if upload else []
    except PromptDeckError as exc:
        st.session_state.pg_image_error = str(exc)
        return
    st.session_state.pg_image_error = None
    st.session_state.pg_run_inputs = inputs  # what "Save as eval case" saves
    plans = plan_columns(variants, inputs, run_overrides(), images)
    # A fresh conversation: the planned variants (overrides applied) answer its follow-ups.
    st.session_state.pg_run_variants = [p.variant for p in plans]
    st.session_state.pg_asked = [p.messages[-1].content if p.messages else "" for p in plans]
    st.session_state.pg_turns = []
    st.session_state.pg_run = LiveRun(plans, registry, ui.store(), inputs).start()


def send_follow_up() -> None:
    """The message typed below the answers, after each column's own conversation."""
    ui.require_editor("run prompts")
    text = str(st.session_state.get("pg_follow_up") or "").strip()
    current: LiveRun | None = st.session_state.get("pg_run")
    if not text or current is None or current.running:
        return
    views = current.snapshot()
    turn = (st.session_state.pg_asked, views, current.history_id)
    st.session_state.pg_turns = [*st.session_state.get("pg_turns", []), turn]
    plans = plan_follow_up(views, st.session_state.pg_run_variants, text)
    st.session_state.pg_asked = [text] * len(plans)
    # The tools' mocks read the run's inputs; the Playground's history keeps the message.
    inputs = {**st.session_state.get("pg_run_inputs", {}), "(follow-up)": text}
    st.session_state.pg_run = LiveRun(plans, registry, ui.store(), inputs).start()


buttons = st.columns([1, 1, 6])
buttons[0].button(
    "Run",
    type="primary",
    icon=":material/play_arrow:",
    disabled=running or not variants,
    width="stretch",
    on_click=start_run,
    args=(variants, variables),
)
buttons[1].button(
    "Stop",
    icon=":material/stop:",
    disabled=not running,
    width="stretch",
    on_click=run.stop if run is not None else None,
)
if not variants:
    st.info("Pick one or more variants above (or turn on a scratch prompt), then press Run.")
elif empty_inputs := [n for n in st.session_state.get("pg_empty", []) if n in variables]:
    names_empty = ", ".join(ui.code(n) for n in empty_inputs)
    st.warning(f"Fill in {names_empty} first: nothing was sent.", icon=":material/edit:")
elif image_error := st.session_state.get("pg_image_error"):
    st.warning(f"{ui.plain(image_error)}: nothing was sent.", icon=":material/image:")


Said = tuple[str, ColumnView]  # a column's turn: the user message, how the column answered


def draw_earlier(index: int, earlier: tuple[Said, ...], prefix: str) -> None:
    """A column's earlier turns, each collapsed: the user message, tool calls, the answer."""
    for n, (asked, view) in enumerate(earlier, start=1):
        short = " ".join(asked.split())
        label = f"Turn {n} · {ui.plain(short[:60])}{'…' if len(short) > 60 else ''}"
        with st.expander(label, icon=":material/history:", key=f"{prefix}_turn_{index}_{n}"):
            st.markdown(f":material/person: **You:** {ui.plain(asked)}")
            ui.show_steps(view.steps, arriving=False)
            if view.text:
                st.markdown(ui.answer_markdown(view.text))
            if view.status == "error":
                st.error(ui.plain(view.note), icon=":material/error:")


def draw_column(
    index: int, view: ColumnView, prefix: str = "pg", earlier: tuple[Said, ...] = ()
) -> None:
    draw_head(index, view, prefix, earlier)
    draw_body(index, view, prefix)


def draw_head(index: int, view: ColumnView, prefix: str, earlier: tuple[Said, ...]) -> None:
    """What a column shows above its answer: the same from Run to done."""
    fallback = f" (fallback for {ui.plain(view.fallback_from)})" if view.fallback_from else ""
    st.markdown(f"**{ui.plain(view.name)}**  \n{ui.plain(view.model_ref)}{fallback}")
    if view.overrides:
        set_here = ", ".join(f"{k} {v}" for k, v in view.overrides.items())
        st.caption(f":material/tune: override: {ui.plain(set_here)}")
    if earlier:  # a follow-up: the same message in every column
        draw_earlier(index, earlier, prefix)
        asked = st.session_state.pg_asked[index]
        st.markdown(f"**Turn {len(earlier) + 1}** · :material/person: **You:** {ui.plain(asked)}")


def draw_body(index: int, view: ColumnView, prefix: str) -> None:
    """What changes while a column streams: thinking, tool calls, the answer and its badge,
    then its measures, checks and rating."""
    ui.show_thinking(view.thinking, view.thinking_ms, key=f"{prefix}_think_{index}")
    ui.show_steps(view.steps, arriving=view.status in ("waiting", "streaming"))
    box = st.container(border=True, height=300, key=f"{prefix}_out_{index}")
    badge = {"waiting": "⏳ waiting", "streaming": "● streaming", "stopped": "⏹ stopped"}
    if view.status in badge:
        st.caption(badge[view.status] + (f" — {ui.plain(view.note)}" if view.note else ""))
    elif view.status == "done" and view.fallback_from:
        st.warning(ui.plain(view.note), icon=":material/alt_route:")
    if view.text or view.status != "error":
        waiting = "…" if view.status in ("waiting", "streaming") else ""
        box.markdown(ui.answer_markdown(view.text) if view.text else waiting)
    if view.status == "error":
        box.error(ui.plain(view.note), icon=":material/error:")
    if view.result is not None and (view.result.ok or view.text):
        calls = 1 + len({step.round for step in view.steps})  # a tool round is one more call
        metrics = ui.call_metrics(view.result, calls)
        st.markdown(f"<small>{metrics}</small>", unsafe_allow_html=True)
        if view.result.usage is not None and view.result.usage.estimated:
            st.caption("≈ estimated: the server reported no token counts.")
    if view.cut_off:
        st.markdown(
            ":orange[**Cut off**: the answer reached the max_tokens limit "
            f"({view.result.usage.output_tokens if view.result and view.result.usage else '?'}"
            " tokens); raise Max tokens in the run settings (or `max_tokens` in the variant's"
            " params) to see all of it.]"
        )
    for check in view.checks:
        mark = ":green[✓ passed]" if check.passed else ":red[**✗ failed**]"
        st.markdown(f"{mark} {ui.plain(check.name)}: {ui.plain(check.reason)}")
    if view.call_id is not None and view.status in ("done", "stopped"):
        key = f"{prefix}_thumbs_{view.call_id}"
        value = st.feedback("thumbs", key=key)
        if value is not None and st.session_state.get(f"{key}_saved") != value:
            ui.require_editor("rate answers")
            ui.store().set_thumbs(view.call_id, 1 if value == 1 else -1)
            st.session_state[f"{key}_saved"] = value


# While streaming, the fragment below redraws only each column's body, REDRAW_S apart: a
# redraw resends every element it draws, the whole answer so far included, so its bytes grow
# with the rate and with the answers' length. Measured in Chromium (bench/scale.py wire, 3
# columns x 400 tokens in ~7 s): whole columns 10 times a second sent 0.53 MB on the
# websocket; bodies only, 5 times a second, 0.25 MB, the text still growing visibly.
REDRAW_S = 0.2


@st.fragment(run_every=REDRAW_S if running else None)
def live_bodies(current: LiveRun, slots: list[Any], heads: list[str]) -> None:
    """Each column's body into its slot, a container drawn with the page (a fragment may
    write into one): the columns, headers and earlier turns are not resent on each redraw."""
    views = current.snapshot()
    for i, (slot, view) in enumerate(zip(slots, views, strict=True)):
        with slot:
            draw_body(i, view, "pg")
    if running and (not current.running or [head_of(v) for v in views] != heads):
        st.rerun()  # the run ended or a fallback answers: redraw the whole page once


def head_of(view: ColumnView) -> str:
    return f"{view.model_ref} {view.fallback_from}"


def live_panel() -> None:
    current: LiveRun | None = st.session_state.get("pg_run")
    if current is None:
        return
    views = current.snapshot()
    ran = [view.name for view in views]
    if not running and ran != [v.name for v in variants]:
        st.info(
            f"These answers are from your last run ({ui.plain(', '.join(ran))}); press "
            "**Run** to answer with the variants picked above.",
            icon=":material/history:",
        )
    turns = st.session_state.get("pg_turns", [])
    slots = []
    for i, (column, view) in enumerate(
        zip(st.columns(len(views), gap="medium"), views, strict=True)
    ):
        with column:
            draw_head(i, view, "pg", tuple((t[0][i], t[1][i]) for t in turns))
            slots.append(st.container())
    live_bodies(current, slots, [head_of(view) for view in views])


live_panel()
if running or (run is not None and any(v.conversation for v in run.snapshot())):
    with st.container(key="pg_follow_up_box"):  # in the page, not pinned to the bottom
        st.chat_input(
            "Follow up in every column",
            key="pg_follow_up",
            on_submit=send_follow_up,
            disabled=running,
        )


def history_panel() -> None:
    """Earlier runs, newest first: re-open one under the current run to compare, or take
    its inputs and variants back to run them again."""
    if running:
        return
    # This conversation's own turns are drawn above, in each column.
    mine = {run.history_id if run is not None else None}
    mine |= {t[2] for t in st.session_state.get("pg_turns", [])}
    earlier = [r for r in ui.store().playground_runs() if r["id"] not in mine]
    if not earlier:
        return

    def label(r: PlaygroundRunRow) -> str:
        inputs = json.loads(r["inputs_json"])
        text = " ".join(str(next(iter(inputs.values()), "")).split())
        preview = f' · "{text[:50]}{"…" if len(text) > 50 else ""}"' if text else ""
        when = r["created"][:16].replace("T", " ")
        by = f" by {r['author']}" if r["author"] else ""
        columns = ", ".join(json.loads(r["columns_json"]))
        return f"#{r['id']} · {when} UTC{by} · {columns}{preview}"

    with st.expander(f"Earlier runs ({len(earlier)})", icon=":material/history:"):
        picked = st.selectbox(
            "Re-open a run",
            earlier,
            format_func=label,
            index=None,
            key="pg_history",
            placeholder="Pick an earlier run to see its answers below",
        )
        if picked is None:
            return
        inputs = json.loads(picked["inputs_json"])
        st.button(
            "Run these inputs again",
            icon=":material/replay:",
            key="pg_history_reuse",
            on_click=reuse_run,
            args=(inputs, json.loads(picked["columns_json"])),
            help="Puts this run's inputs and variants back above; press Run to answer again.",
        )
        for name, value in inputs.items():
            st.markdown(f"**{ui.plain(name)}**")
            st.text(str(value))
        views = stored_views(picked, ui.store().playground_calls(picked["id"]))
        for i, (column, view) in enumerate(
            zip(st.columns(max(len(views), 1), gap="medium"), views, strict=False)
        ):
            with column:
                draw_column(i, view, prefix=f"pg_h{picked['id']}")


def reuse_run(inputs: dict[str, object], columns: list[str]) -> None:
    for name, value in inputs.items():
        st.session_state[f"pg_in_{name}"] = str(value)
    st.session_state.pg_variants = [n for n in columns if n in library.variants][:MAX_COLUMNS]


history_panel()


def save_case_panel() -> None:
    """After a run: keep its inputs as a case of a CSV dataset, with a note (human in the
    loop); after a follow-up, one column's conversation (its `messages` before the last user
    message, that message as `input`)."""
    inputs = st.session_state.get("pg_run_inputs")
    if run is None or running or not inputs:
        return
    views = [v for v in run.snapshot() if v.conversation]
    talked = bool(st.session_state.get("pg_turns")) and views
    what = "this conversation" if talked else "these inputs"
    with st.expander(f"Save {what} as an eval case", icon=":material/playlist_add:"):
        csvs = [p.name for p in dataset_paths if p.suffix == ".csv"]
        default = "playground_conversations.csv" if talked else "playground_cases.csv"
        names = list(dict.fromkeys([default, *csvs]))
        dest = st.selectbox("Dataset", names, key="pg_case_dest")
        view = None
        if talked:
            at = st.selectbox(
                "Column", range(len(views)), format_func=lambda i: views[i].name,
                key="pg_case_column",
                help="Its user and assistant messages before your last message are saved "
                "as the case's `messages`, your last message as its `input`.",
            )  # fmt: skip
            view = views[at]
        note = st.text_input("Why this case matters", key="pg_case_note")
        if st.button("Save as eval case", key="pg_case_save"):
            ui.require_editor("add cases to datasets")
            try:
                values = conversation_case(view.conversation, inputs) if view else inputs
                values = {**values, "note": note, "source": "playground"}
                workspace = ui.workspace()
                new_id = append_case(workspace.datasets_dir / dest, values, root=workspace.root)
                st.success(f"Added as {ui.plain(new_id)} to datasets/{ui.plain(dest)}.")
            except PromptDeckError as exc:
                st.error(ui.plain(exc))


save_case_panel()
