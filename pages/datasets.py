"""Datasets: browse, edit and import eval cases; see the cases added from the app."""

from pathlib import Path

import pandas as pd
import streamlit as st

from promptdeck import ui
from promptdeck.analysis import charts
from promptdeck.errors import DatasetError, FileConflictError
from promptdeck.workspace.dataset_edit import (
    EDITABLE_BYTES,
    FROM_FILE,
    Table,
    conflict_diff,
    count_categories,
    editable_size,
    edited_text,
    filter_rows,
    frame_rows,
    from_app,
    history_key,
    load_table,
    new_table,
    probe,
    save_table,
)
from promptdeck.workspace.dataset_import import (
    ColumnMap,
    ImportPlan,
    Upload,
    guess_map,
    new_dataset_path,
    parse_upload,
    plan_upload,
    upload_digest,
    write_import,
)
from promptdeck.workspace.dataset_sample import DatasetIndex, index_dataset, read_page
from promptdeck.workspace.datasets import find_datasets
from promptdeck.workspace.fileio import fingerprint_file
from promptdeck.workspace.sampling import NO_STRATUM

ui.frame("Datasets")
st.title("Datasets")
root = ui.workspace().root
folder = ui.workspace().datasets_dir
state = st.session_state
state.setdefault("ds_tables", {})  # path -> the Table as loaded for editing in this session
state.setdefault("ds_generation", {})  # path -> bumped after a save or reload: a fresh editor
# Streamlit drops an editor's edits when it is not drawn (another dataset, another page):
# path -> the table the editor last returned, and the frame its current editor started from.
state.setdefault("ds_drafts", {})
state.setdefault("ds_bases", {})
state.setdefault("ds_digests", {})  # an upload's file id -> the SHA-256 of its bytes
PAGE_ROWS = 500  # rows a table shows at a time: a million rows are paged, never all sent

if (flash := state.pop("ds_flash", None)) is not None:
    st.success(ui.plain(flash), icon=":material/check_circle:")


@st.cache_data(show_spinner=False)
def load_errors(files: tuple[tuple[str, int, int], ...]) -> dict[str, str | None]:
    """Which dataset files cannot be loaded (cached per file version: path, mtime, size)."""
    return {str(p): e for p, e in probe(Path(f[0]) for f in files).items()}


def file_versions(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    stats = [(p, p.stat()) for p in paths if p.exists()]
    return tuple((str(p), s.st_mtime_ns, s.st_size) for p, s in stats)


def reload(path: Path) -> None:
    """Forget the loaded table and the editor's edits; the next run reads the file again."""
    for kept in (state.ds_tables, state.ds_drafts, state.ds_bases):
        kept.pop(str(path), None)
    state.ds_generation[str(path)] = state.ds_generation.get(str(path), 0) + 1
    state.pop("ds_conflict", None)


def current_table(path: Path) -> Table | None:
    table: Table | None = state.ds_tables.get(str(path))
    if table is None:
        try:
            table = load_table(path)
        except DatasetError as exc:
            st.error(ui.plain(exc), icon=":material/description:")
            return None
        state.ds_tables[str(path)] = table
    return table


def unsaved(table: Table) -> bool:
    draft = state.ds_drafts.get(str(table.path))
    return draft is not None and frame_rows(draft) != frame_rows(table.frame())


def page_of(count: int, key: str) -> slice:
    """The rows of the page picked: past PAGE_ROWS rows, a page number to pick."""
    if count <= PAGE_ROWS:
        return slice(0, count)
    pages = -(-count // PAGE_ROWS)
    page = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key=key)
    start = (int(page) - 1) * PAGE_ROWS
    end = min(start + PAGE_ROWS, count)
    st.caption(f"Rows {start + 1:,} to {end:,} of {count:,}")
    return slice(start, end)


def show_case_table(frame: pd.DataFrame, key: str) -> None:
    # cases from the app explain themselves in `note`: show it next to the id
    first = [c for c in ("id", "category", "note", "source") if c in frame]
    frame = frame.iloc[page_of(len(frame), key)]
    st.dataframe(
        frame[first + [c for c in frame.columns if c not in first]],
        hide_index=True,
        width="stretch",
        height=min(420, 38 + 35 * max(1, len(frame))),
    )


def browse(table: Table) -> None:
    frame = table.frame()
    cols = st.columns([2, 3, 2])
    categories: list[str] = []
    if "category" in frame:
        categories = sorted(set(frame["category"].fillna("").str.strip().replace("", NO_STRATUM)))
    picked = cols[0].multiselect(
        "Category", categories, key=f"ds_cats_{table.path.name}", placeholder="All categories"
    )
    search = cols[1].text_input(
        "Search", key=f"ds_search_{table.path.name}", placeholder="Text in any column"
    )
    cols[2].write("")
    app_only = cols[2].toggle(
        "Added from the app",
        key=f"ds_app_{table.path.name}",
        help="Cases saved from the Playground or Results: they carry a note.",
    )
    shown = filter_rows(frame, categories=picked, search=search, app_only=app_only)
    added = int(from_app(frame).sum())
    st.caption(
        f"{len(shown)} of {len(frame)} cases shown"
        + (f" · {added} added from the app" if added else " · none added from the app yet")
    )
    if shown.empty:
        st.info("No case matches these filters: clear the search or pick other categories.")
        return
    left, right = st.columns([3, 2])
    with left:
        show_case_table(shown, f"ds_page_{table.path.name}")
    right.altair_chart(charts.category_counts(count_categories(shown)), width="stretch")


def save(table: Table, edited: pd.DataFrame) -> None:
    ui.require_editor("change datasets")
    try:
        saved = save_table(table, edited, ui.store(), root)
    except FileConflictError as exc:
        state.ds_conflict = {
            "path": str(table.path),
            "message": str(exc),
            "disk": exc.disk_text,
            "deleted": exc.deleted,
            "yours": edited_text(table, edited),
        }
        return
    except DatasetError as exc:
        st.error(ui.plain(exc))
        return
    if not saved.changed:
        st.info("No changes to save.")
        return
    dropped = f"; {saved.empty_dropped} empty rows dropped" if saved.empty_dropped else ""
    state.ds_flash = f"Saved {saved.rows} cases to datasets/{table.path.name}{dropped}."
    reload(table.path)
    st.rerun()


def show_conflict(table: Table, conflict: dict[str, object]) -> None:
    st.error(ui.plain(conflict["message"]), icon=":material/sync_problem:")
    disk, yours = str(conflict["disk"]), str(conflict["yours"])
    st.markdown("**What differs** (`-` on disk now, `+` your edits, which are still in the table)")
    st.code(conflict_diff(disk, yours, table.path.name) or "(same text)", language="diff")
    with st.expander("Side by side"):
        left, right = st.columns(2)
        left.markdown("**On disk now**")
        left.code(disk if not conflict["deleted"] else "(the file was deleted)", language=None)
        right.markdown("**Your edits (not saved)**")
        right.code(yours, language=None)
    cols = st.columns(2)
    cols[0].button(
        "Reload from disk (drops your edits)",
        key="ds_conflict_reload",
        icon=":material/refresh:",
        on_click=reload,
        args=(table.path,),
    )
    cols[1].download_button(
        "Download your version",
        yours,
        file_name=table.path.name,
        key="ds_conflict_download",
        icon=":material/download:",
        on_click="ignore",
    )


def edit(table: Table) -> None:
    if not table.writable:
        st.info(
            f"{table.path.suffix} datasets are read-only here: edit the file where it is "
            "produced, or convert it to CSV, JSONL or YAML to edit it in PromptDeck."
        )
        return
    if table.path.suffix.lower() in (".yaml", ".yml"):
        st.caption("Saving rewrites the YAML file: comments in it are not kept.")
    st.caption(
        "Add rows at the bottom, delete them by selecting them on the left; "
        "empty rows are dropped on save."
    )
    path = str(table.path)
    key = f"ds_editor_{table.path.name}_{state.ds_generation.get(path, 0)}"
    if key not in state or path not in state.ds_bases:  # a fresh editor: go on from the draft
        state.ds_bases[path] = state.ds_drafts.get(path, table.frame())
    edited = st.data_editor(
        state.ds_bases[path], num_rows="dynamic", hide_index=True, width="stretch", key=key
    )
    state.ds_drafts[path] = edited
    if unsaved(table):
        st.caption("Unsaved edits: they are kept while you look elsewhere; Save writes them.")
    cols = st.columns([1, 1, 5])
    if cols[0].button("Save", type="primary", icon=":material/save:", key="ds_save"):
        save(table, edited)
    cols[1].button("Discard edits", key="ds_discard", on_click=reload, args=(table.path,))
    conflict = state.get("ds_conflict")
    if conflict is not None and conflict["path"] == str(table.path):
        show_conflict(table, conflict)


@st.cache_resource(max_entries=4, ttl=3600, show_spinner="Reading the dataset…")
def dataset_index(path: str, version: tuple[int, int]) -> DatasetIndex:
    """A large dataset read once per version of the file, its rows not kept: pages of it are
    read when shown."""
    return index_dataset(Path(path))


def file_version(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def browse_large(index: DatasetIndex) -> None:
    st.caption(
        f"{index.rows:,} cases: over {EDITABLE_BYTES // 2**20} MB, this dataset is shown a page "
        "at a time, without search, filters or editing; edit the file where it is produced."
    )
    left, right = st.columns([3, 2])
    with left:
        page = page_of(index.rows, f"ds_page_{index.path.name}")
        try:
            cases = read_page(index, page.start, page.stop)
        except DatasetError as exc:
            st.error(ui.plain(exc))
            return
        frame = pd.DataFrame([{"id": c.id, **c.values} for c in cases])
        st.dataframe(frame, hide_index=True, width="stretch", height=420)
    counts = pd.DataFrame(
        {
            "category": list(index.categories),
            "origin": FROM_FILE,
            "cases": list(index.categories.values()),
        }
    )
    right.altair_chart(charts.category_counts(counts), width="stretch")


HISTORY_CHARS = 100_000  # of a version shown: a million-row version is 100 MB of text


def history(path: Path) -> None:
    store = ui.store()
    versions = store.versions(history_key(path, root), content=False)  # one text is read
    if not versions:
        st.caption("No saves from the app yet. Each save or import is listed here with its text.")
        return
    rows = pd.DataFrame(versions)[["id", "saved", "action", "author", "fingerprint"]]
    rows["author"] = [ui.who(a) for a in rows["author"]]
    st.dataframe(rows.rename(columns={"author": "saved by"}), hide_index=True, width="stretch")
    picked = st.selectbox(
        "Show a version", [v["id"] for v in versions], key=f"ds_version_{path.name}"
    )
    chosen = store.version(int(picked))
    content = "" if chosen is None else chosen["content"]
    if len(content) > HISTORY_CHARS:
        st.caption(f"The first {HISTORY_CHARS:,} of its {len(content):,} characters:")
    st.code(content[:HISTORY_CHARS], language=None)


def import_target(writable: list[Path], current: Path | None) -> Table | None:
    kinds = ["An existing dataset", "A new dataset"] if writable else ["A new dataset"]
    if (done := state.pop("ds_imp_done", None)) in writable:  # the new dataset exists now:
        state.ds_imp_kind, state.ds_imp_target = kinds[0], done  # offer it as one that does
        state.ds_imp_name = ""
    kind = st.radio("Add the cases to", kinds, horizontal=True, key="ds_imp_kind")
    if kind == "A new dataset":
        name = st.text_input(
            "New dataset name", key="ds_imp_name", placeholder="production_queries.csv"
        )
        if not name.strip():
            st.caption("Name the new dataset (.csv unless you type .jsonl or .yaml).")
            return None
        try:
            return new_table(new_dataset_path(folder, name))
        except DatasetError as exc:
            st.error(ui.plain(exc))
            return None
    index = writable.index(current) if current in writable else 0
    path = st.selectbox(
        "Dataset", writable, index, format_func=lambda p: p.name, key="ds_imp_target"
    )
    return current_table(path)


@st.cache_resource(max_entries=2, ttl=3600, show_spinner="Reading the file…")
def parsed_upload(name: str, digest: str, _data: bytes) -> Upload:
    """An upload parsed once, kept by its digest: a rerun (any click) never parses it again.
    cache_resource: the parsed rows are immutable, and cache_data would copy them each run."""
    return parse_upload(name, _data, digest=digest)


def digest_of(file_id: str, data: bytes) -> str:
    """The upload's SHA-256, computed once per uploaded file (a rerun asks by its id)."""
    known: str | None = state.ds_digests.get(file_id)
    if known is None:
        known = state.ds_digests[file_id] = upload_digest(data)
    return known


@st.cache_resource(max_entries=4, ttl=3600, show_spinner="Planning the import…")
def planned_import(
    upload: tuple[str, str],
    target: tuple[str, str],
    mapping: ColumnMap,
    options: tuple[bool, int | None, int],
    _parsed: Upload,
    _table: Table,
) -> ImportPlan:
    """The import's plan, kept by the upload's name and digest, the target's path and
    fingerprint, the mapping and the options: a rerun with none changed plans nothing."""
    dedupe, sample, seed = options
    return plan_upload(_parsed, mapping, _table, dedupe=dedupe, sample=sample, seed=seed)


def import_section(writable: list[Path], current: Path | None) -> None:
    upload = st.file_uploader(
        "A CSV or JSONL file of production queries", type=["csv", "jsonl"], key="ds_upload"
    )
    if (problem := state.pop("ds_import_error", None)) is not None:
        st.error(ui.plain(problem), icon=":material/sync_problem:")
    if upload is None:
        st.caption("Upload a file to map its columns. Nothing is written before you confirm.")
        return
    data = upload.getvalue()
    try:
        digest = digest_of(upload.file_id, data)
        parsed = parsed_upload(upload.name, digest, data)
    except DatasetError as exc:
        st.error(ui.plain(exc), icon=":material/description:")
        return
    columns = list(parsed.columns)
    guess, optional = guess_map(columns, parsed.rows), [None, *columns]
    cols = st.columns(3)
    source = cols[0].selectbox("input ←", columns, columns.index(guess.input), key="ds_imp_in")
    category, expected = (
        col.selectbox(
            f"{role} ←",
            optional,
            optional.index(guessed),
            key=f"ds_imp_{role}",
            format_func=lambda c: "(none)" if c is None else c,
        )
        for col, role, guessed in (
            (cols[1], "category", guess.category),
            (cols[2], "expected", guess.expected),
        )
    )
    options = st.columns(4)
    keep = options[0].checkbox("Keep the other columns", True, key="ds_imp_keep")
    dedupe = options[1].checkbox("Drop duplicate inputs", True, key="ds_imp_dedupe")
    sample = options[2].number_input(
        "Sample size", 1, None, None, key="ds_imp_n", placeholder="all rows"
    )
    seed = options[3].number_input("Seed", 0, None, 7, key="ds_imp_seed")
    target = import_target(writable, current)
    if target is None:
        return
    mapping = ColumnMap(source, category, expected, keep_other=keep)
    try:
        plan = planned_import(
            (parsed.name, parsed.digest),
            (str(target.path), target.fingerprint),
            mapping,
            (dedupe, sample, int(seed)),
            parsed,
            target,
        )
    except DatasetError as exc:
        st.error(ui.plain(exc))
        return
    st.markdown(f"**Preview** · {ui.plain(plan.report.summary())}")
    if plan.report.dropped_columns:
        st.caption(
            "Not imported (a clash with a mapped column or the id): "
            + ui.plain(", ".join(plan.report.dropped_columns))
        )
    if plan.report.problems:
        with st.expander(f"{len(plan.report.problems)} rows skipped"):
            st.markdown("\n".join(f"- {ui.plain(p)}" for p in plan.report.problems))
    if not plan.rows:
        st.info("Nothing to import: every row was skipped or is already in the dataset.")
        return
    shown = plan.rows[page_of(len(plan.rows), "ds_imp_page")]
    st.dataframe(pd.DataFrame(shown), hide_index=True, width="stretch", height=240)
    if target.path == current and unsaved(target):
        st.warning(
            f"datasets/{ui.plain(target.path.name)} has unsaved edits in the Edit tab: save or "
            "discard them first, then import.",
            icon=":material/edit_note:",
        )
        return
    label = f"Import {len(plan.rows)} cases into datasets/{target.path.name}"
    if st.button(label, type="primary", icon=":material/upload:", key="ds_imp_go"):
        ui.require_editor("change datasets")
        try:
            saved = write_import(plan, ui.store(), root)
        except FileConflictError as exc:
            if target.path != current:  # nothing unsaved of it here: plan again on the new file
                reload(target.path)
            state.ds_import_error = f"{exc} Check the preview again, then import."
            st.rerun()
        except DatasetError as exc:
            st.error(ui.plain(exc))
            return
        state.ds_flash = (
            f"Imported {len(plan.rows)} cases: datasets/{target.path.name} has {saved.rows} now."
        )
        state.ds_show_next = target.path.name  # open the dataset the cases went into
        state.ds_imp_done = target.path
        reload(target.path)
        st.rerun()


paths = find_datasets(folder)
errors = load_errors(file_versions(paths))
broken = {p: errors.get(str(p)) for p in paths if errors.get(str(p))}
if broken:
    noun = "file" if len(broken) == 1 else "files"
    with st.expander(f"⚠️ {len(broken)} dataset {noun} could not be loaded", expanded=True):
        for message in broken.values():
            st.error(ui.plain(message), icon=":material/description:")
writable = [
    p for p in paths if p not in broken and p.suffix.lower() != ".parquet" and editable_size(p)
]

current: Path | None = None
if not paths:
    st.info(
        "No datasets yet: `datasets/` has no .csv, .jsonl or .yaml file. Import a CSV or JSONL "
        "of production queries below to create one, or copy a dataset file into `datasets/`."
    )
else:
    if (shown := state.pop("ds_show_next", None)) is not None:
        state.ds_path = shown  # set before the selectbox exists, so Streamlit accepts it
    wanted = st.query_params.get("dataset")
    names = [p.name for p in paths]
    first_ok = next((i for i, p in enumerate(paths) if p not in broken), 0)
    picked = st.selectbox(
        "Dataset",
        names,
        names.index(wanted) if wanted in names else first_ok,
        format_func=lambda n: f"⚠️ {n} (cannot be loaded)" if folder / n in broken else n,
        key="ds_path",
    )
    current = folder / picked

table, large = None, None
if current in broken:
    st.warning(
        f"{ui.plain(current.name)} cannot be loaded (see above): fix the file or pick another one."
    )
elif current is not None and not editable_size(current):
    try:
        large = dataset_index(str(current), file_version(current))
    except DatasetError as exc:
        st.error(ui.plain(exc), icon=":material/description:")
elif current is not None:
    table = current_table(current)
if table is not None and fingerprint_file(table.path) != table.fingerprint:
    st.warning(
        f"datasets/{ui.plain(table.path.name)} changed on disk since you opened it; saving "
        "would be refused. Reload to see the new version.",
        icon=":material/sync_problem:",
    )
    st.button(
        "Reload from disk (drops your edits)", key="ds_reload", on_click=reload, args=(table.path,)
    )

editor = ui.can_edit()  # a viewer browses the cases and their history
if large is not None:
    names = ["Browse", "Import", "History"] if editor else ["Browse", "History"]
    large_tabs = dict(
        zip(names, st.tabs(names, key="ds_tab_large", on_change="rerun"), strict=True)
    )
    with large_tabs["Browse"]:
        browse_large(large)
    if "Import" in large_tabs:
        with large_tabs["Import"]:
            import_section(writable, current)
    with large_tabs["History"]:
        history(large.path)
elif table is not None and not editor:
    browse_tab, history_tab = st.tabs(["Browse", "History"])
    with browse_tab:
        browse(table)
    with history_tab:
        history(table.path)
elif table is not None:
    # Keyed: a save or an upload reruns the page, and the tab in use must stay open.
    tabs = st.tabs(["Browse", "Edit", "Import", "History"], key="ds_tab", on_change="rerun")
    with tabs[0]:
        browse(table)
    with tabs[1]:
        edit(table)
    with tabs[2]:
        import_section(writable, current)
    with tabs[3]:
        history(table.path)
elif editor:
    st.subheader("Import production queries")
    import_section(writable, current)
