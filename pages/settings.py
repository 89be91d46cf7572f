"""Settings: providers (added, edited and removed here; their keys set for this session or
in .env, and shown masked), a connection test, the defaults of an eval run, the response
cache, and the embedded model's file. Actions run in callbacks, so the page drawn
afterwards already shows their effect."""

from typing import Any

import pandas as pd
import streamlit as st

from promptdeck import ui
from promptdeck.errors import FileConflictError, PromptDeckError
from promptdeck.model.probe import probe_connection
from promptdeck.model.secrets import SESSION_KEYS, mask_secret
from promptdeck.store.settings import MAX_CONCURRENCY, Settings, load_settings, save_settings
from promptdeck.workspace.dotenv_file import dotenv_git_warning, save_key_in_dotenv
from promptdeck.workspace.providers_edit import (
    PROVIDER_KINDS,
    ProviderEntry,
    ProvidersDoc,
    add_provider,
    format_prices,
    provider_entry,
    read_providers,
    remove_provider,
    update_provider,
)
from promptdeck.workspace.providers_file import set_local_model_path

ui.frame("Settings")
st.title("Settings")
if not ui.can_edit():  # providers, keys, defaults: nothing of it is a viewer's to see
    st.info("Settings are for editors: you are a viewer of this workspace.", icon=":material/lock:")
    st.stop()

workspace = ui.workspace()
store = ui.store()
registry = ui.registry_or_error()


def providers_section() -> None:
    if registry is None:
        return  # the page shows what is wrong with providers.yaml at the top
    st.subheader("Providers")
    statuses = registry.statuses()
    table = pd.DataFrame(
        [
            {
                "provider": s.name,
                "kind": s.kind,
                "base URL": s.base_url,  # masked by the registry: never a user:password@
                "key variable": s.key_env or "",
                "key": s.key_display,  # masked by the registry: never the value
                "key goes to": s.key_goes_to,  # a host, or "refused: ..." (send_key_to)
                "server": s.server or "–",  # a server on this machine: is it listening?
                "ready": s.ready,
            }
            for s in statuses
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    cols = st.columns([3, 1], vertical_alignment="bottom")
    name = cols[0].selectbox("Provider", [s.name for s in statuses], key="set_test_provider")
    if cols[1].button("Test connection", key="set_test"):
        ui.require_editor("test connections")
        with st.spinner(f"Testing {name}…"):
            st.session_state.set_test_result = (name, probe_connection(registry, name))
    tested = st.session_state.get("set_test_result")
    if tested is not None:
        tested_name, result = tested
        text = f"**{tested_name}** · {result.message}"
        if result.ok:
            st.success(text, icon=":material/check_circle:")
        else:
            after = f" (after {result.latency_ms} ms)" if result.latency_ms is not None else ""
            st.error(text + after, icon=":material/error:")


def defaults_section() -> None:
    st.subheader("Eval defaults")
    try:
        current = load_settings(store)
    except PromptDeckError as exc:
        st.error(ui.plain(exc))
        current = Settings()
    with st.form("set_defaults"):
        judge = st.text_input(
            "Default judge model",
            current.judge_model,
            key="set_judge",
            help="Used when a suite names no judge, e.g. openai/gpt-4o-mini",
        )
        concurrency = st.slider(
            "Calls in flight per provider", 1, MAX_CONCURRENCY, current.concurrency
        )
        use_cache = st.toggle(
            "Answer identical requests from the response cache",
            current.use_cache,
            help="Off: every eval calls the models again (the CLI's --no-cache, for good)",
        )
        if st.form_submit_button("Save defaults", key="set_save"):
            save_defaults(judge.strip(), concurrency, use_cache)


def save_defaults(judge: str, concurrency: int, use_cache: bool) -> None:
    ui.require_editor("change settings")
    try:
        save_settings(store, Settings(judge, int(concurrency), bool(use_cache)))
    except PromptDeckError as exc:
        st.error(f"Not saved: {exc}")
        return
    st.success("Saved: the Evaluate page and `python -m promptdeck run` use these now.")
    if registry is not None and not registry.knows(judge):
        st.warning(f"No provider is configured for {judge}: add it to providers.yaml.")


def cache_section() -> None:
    st.subheader("Response cache")
    size = store.cache_size()
    st.metric("Cached answers", size)
    st.button("Clear cache", key="set_clear", disabled=size == 0, on_click=ask_to_clear)
    if st.session_state.get("set_confirm_clear"):
        st.warning(f"Delete all {size} cached answers? The next eval calls the models again.")
        yes, no = st.columns(2)
        yes.button("Yes, clear the cache", key="set_clear_yes", type="primary", on_click=clear)
        no.button("Cancel", key="set_clear_no", on_click=ask_to_clear, args=(False,))
    cleared = st.session_state.pop("set_cleared", None)
    if cleared is not None:
        st.success(f"Cleared {cleared} cached answers.")


def ask_to_clear(ask: bool = True) -> None:
    st.session_state.set_confirm_clear = ask


def clear() -> None:
    ui.require_editor("change settings")
    st.session_state.set_cleared = store.cache_clear()
    st.session_state.set_confirm_clear = False


def local_model_section() -> None:
    st.subheader("Embedded model")
    done = st.session_state.pop("set_model_saved", None)
    if done is not None:
        (st.success if done[0] else st.error)(done[1])
    ready, status = ui.local_status()
    (st.success if ready else st.warning)(status, icon=":material/memory:")
    current = ui.local_model_path() or ""
    st.text_input(
        "GGUF model file (empty: the bundled SmolLM2)",
        current,
        key="set_model_path",
        help="Saved as model_path of the `local` provider in providers.yaml",
    )
    st.button("Save model file", key="set_model_save", on_click=save_model_path)


def save_model_path() -> None:
    # Read in the callback: a path typed and saved in one go arrives with the click.
    ui.require_editor("change settings")
    path = st.session_state.get("set_model_path", "")
    try:
        message = set_local_model_path(
            workspace.providers_file, path, store=store, root=workspace.root
        )
    except PromptDeckError as exc:
        st.session_state.set_model_saved = (False, f"Not saved: {exc}")
    else:
        st.session_state.set_model_saved = (True, message)


def keys_section() -> None:
    st.subheader("Where keys come from")
    st.markdown(
        "A provider names the **environment variable** that holds its key (`api_key_env` in "
        "`providers.yaml`). PromptDeck looks that variable up, in this order:\n"
        "1. a key set above **for this session** (held in this PromptDeck process's memory "
        "until it stops, and used by everyone this PromptDeck serves: on a shared server, "
        "the whole team's calls spend it);\n"
        "2. the environment of the process that started PromptDeck;\n"
        f"3. the `.env` file in the workspace ({ui.code((workspace.root / '.env').resolve())}), "
        "where **In .env** above writes it;\n"
        "4. Streamlit secrets (`.streamlit/secrets.toml`).\n\n"
        "Keys are written nowhere else: not to `providers.yaml`, the run store, its file "
        "history, the cache, exports or logs, and this page shows them masked. A `.env` "
        "change is picked up on the next page load; restart PromptDeck after changing an "
        "environment variable.\n\n"
        "A key goes only to its provider's own host (**key goes to** above): a preset's key "
        "to the preset's server (`OPENAI_API_KEY` to api.openai.com, ...), and a provider "
        "you add names its hosts with `send_key_to: [host]`; otherwise the request is "
        "refused before anything is sent. A secret header takes its value from the "
        "environment the same way: `headers_env: {X-Header: ENV_VAR_NAME}`."
    )


FIELDS = ("name", "kind", "url", "key_env", "send_to", "conc", "api_version", "free", "prices")
SESSION, DOTENV = "For this session (memory only)", "In .env (the workspace's file)"


def provider_fields(prefix: str, entry: ProviderEntry, *, new: bool) -> None:
    """The form's fields, keys `prefix` + field, filled from `entry`."""
    top = st.columns(2)
    top[0].text_input(
        "Name",
        entry.name,
        key=f"{prefix}name",
        disabled=not new,
        placeholder="staging",
        help="Models are then named <name>/<model>, e.g. staging/my-model",
    )
    top[1].selectbox(
        "Kind",
        PROVIDER_KINDS,
        index=PROVIDER_KINDS.index(entry.kind),
        key=f"{prefix}kind",
        help="openai: any OpenAI-compatible server (vLLM, LM Studio, llama.cpp, a gateway)",
    )
    st.text_input(
        "Base URL", entry.base_url, key=f"{prefix}url", placeholder="http://127.0.0.1:8000/v1"
    )
    mid = st.columns(2)
    mid[0].text_input(
        "Key variable",
        entry.api_key_env,
        key=f"{prefix}key_env",
        placeholder="STAGING_API_KEY",
        help="The NAME of the environment variable that holds the key, never the key itself "
        "(set the key below). Empty: the server needs none.",
    )
    mid[1].text_input(
        "Send key to",
        ", ".join(entry.send_key_to),
        key=f"{prefix}send_to",
        placeholder="api.example.com, 127.0.0.1:8000",
        help="The hosts the key may be sent to (required with a key variable); a request "
        "to any other is refused before sending.",
    )
    low = st.columns(3)
    low[0].number_input(
        "Max concurrency",
        min_value=1,
        max_value=256,
        value=entry.max_concurrency,
        step=1,
        key=f"{prefix}conc",
        placeholder="default",
        help="Calls in flight to this provider at once",
    )
    low[1].text_input(
        "API version (azure only)",
        entry.api_version,
        key=f"{prefix}api_version",
        placeholder="2024-10-21",
    )
    with low[2]:
        st.write("")
        st.checkbox("Free (your own hardware: cost 0)", entry.free, key=f"{prefix}free")
    st.text_area(
        "Prices (USD per million tokens)",
        format_prices(entry.prices),
        key=f"{prefix}prices",
        height=80,
        placeholder="my-model 0.15 0.60",
        help="One model a line: its name, the input price, the output price. A model "
        "without a price shows its cost as unknown.",
    )


def entry_from(prefix: str) -> ProviderEntry:
    values: dict[str, Any] = {f: st.session_state.get(prefix + f) for f in FIELDS}
    return provider_entry(
        values["name"] or "",
        values["kind"] or "",
        base_url=values["url"] or "",
        key_variable=values["key_env"] or "",
        send_key_to=values["send_to"] or "",
        max_concurrency=values["conc"],
        free=bool(values["free"]),
        api_version=values["api_version"] or "",
        prices=values["prices"] or "",
    )


def provider_editor(doc: ProvidersDoc, failed: str | None) -> None:
    """The add form, and the edit form and Remove for one provider of the file; `failed`
    names the form whose last save failed, which is then open."""
    with (
        st.expander(
            f"Add a provider to {ui.plain(doc.path.name)}",
            icon=":material/add:",
            expanded=failed == "add",
        ),
        st.form("set_add_form", border=False),
    ):
        provider_fields("set_add_", ProviderEntry(""), new=True)
        st.form_submit_button(
            "Add provider", key="set_add", on_click=save_provider, args=("set_add_", doc, True)
        )
    if not doc.entries:
        return
    confirm = st.session_state.get("set_confirm_remove")
    with st.expander(
        f"Edit or remove a provider of {ui.plain(doc.path.name)}",
        icon=":material/edit:",
        expanded=failed == "edit" or confirm is not None,
    ):
        name = st.selectbox("Provider", list(doc.entries), key="set_edit_pick")
        if name is not None:
            edit_or_remove(doc, name)


def edit_or_remove(doc: ProvidersDoc, name: str) -> None:
    if doc.editable(name):
        # Keyed by the file's fingerprint: after any change the form shows the file as it is.
        prefix = f"set_edit_{name}_{doc.fingerprint}_"
        with st.form(f"set_edit_form_{name}", border=False):
            provider_fields(prefix, doc.entries[name], new=False)
            st.form_submit_button(
                "Save changes", key="set_edit_save", on_click=save_provider, args=(prefix, doc)
            )
    else:
        st.info(
            f"{ui.code(name)} changes the built-in provider of that name: edit it in "
            f"{ui.code(doc.path.name)}, or remove it to go back to the built-in one."
        )
    st.button("Remove provider…", key="set_remove", on_click=ask_to_remove, args=(name,))
    if st.session_state.get("set_confirm_remove") == name:
        st.warning(
            f"Remove {ui.code(name)} and its prices from {ui.code(doc.path.name)}? Models "
            f"named {ui.code(name + '/…')} stop working; the file history keeps this version."
        )
        yes, no = st.columns(2)
        yes.button(
            "Yes, remove it",
            key="set_remove_yes",
            type="primary",
            on_click=remove_entry,
            args=(name, doc),
        )
        no.button("Cancel", key="set_remove_no", on_click=ask_to_remove, args=(None,))


def save_provider(prefix: str, doc: ProvidersDoc, new: bool = False) -> None:
    ui.require_editor("change providers")
    where, root, form = workspace.providers_file, workspace.root, "add" if new else "edit"
    try:
        entry = entry_from(prefix)
        if new:
            message = add_provider(store, root, where, entry, doc.fingerprint)
        else:
            message = update_provider(store, root, where, entry, doc.fingerprint)
    except FileConflictError:
        st.session_state.set_prov_msg = (False, conflict_message(doc), form)
        return
    except PromptDeckError as exc:
        verb = "added" if new else "saved"
        st.session_state.set_prov_msg = (False, f"Not {verb}. {exc}", form)
        return
    if entry.api_key_env:
        message += f" Set its key ({entry.api_key_env}) below."
    st.session_state.set_prov_msg = (True, message, form)
    if new:  # an empty form for the next one
        for field in FIELDS:
            st.session_state.pop(prefix + field, None)


def conflict_message(doc: ProvidersDoc) -> str:
    return (
        f"{doc.path} changed on disk since this page was drawn (an editor, another tab, a "
        "git pull); nothing was saved. The page now shows the file as it is: check it, "
        "then save again."
    )


def ask_to_remove(name: str | None) -> None:
    st.session_state.set_confirm_remove = name


def remove_entry(name: str, doc: ProvidersDoc) -> None:
    ui.require_editor("change providers")
    st.session_state.set_confirm_remove = None
    try:
        message = remove_provider(store, workspace.root, doc.path, name, doc.fingerprint)
    except FileConflictError:
        st.session_state.set_prov_msg = (False, conflict_message(doc), "edit")
    except PromptDeckError as exc:
        st.session_state.set_prov_msg = (False, f"Not removed. {exc}", "edit")
    else:
        st.session_state.set_prov_msg = (True, message, "edit")
        st.session_state.pop("set_edit_pick", None)


def key_editor() -> None:
    if registry is None:
        return
    st.markdown("**Set a key**")
    users: dict[str, list[str]] = {}
    for status in registry.statuses():
        if status.key_env:
            users.setdefault(status.key_env, []).append(status.name)
    with st.form("set_key_form", border=True):
        cols = st.columns([2, 3])
        cols[0].selectbox(
            "Key variable",
            sorted(users),
            key="set_key_env",
            format_func=lambda env: f"{env} ({', '.join(users.get(env, []))})",
        )
        cols[1].text_input(
            "Key",
            key="set_key_value",
            type="password",
            placeholder="paste the key",
            help="Never shown again: the page shows it masked, like sk-…wxyz",
        )
        st.radio("Keep it", (SESSION, DOTENV), key="set_key_where", horizontal=True)
        st.form_submit_button("Save key", key="set_key_save", on_click=save_key)
    if (warning := dotenv_git_warning(workspace.root)) is not None:
        st.warning(f"About .env: {ui.plain(warning)}", icon=":material/warning:")
    done = st.session_state.pop("set_key_msg", None)
    if done is not None:
        (st.success if done[0] else st.error)(ui.plain(done[1]))
    for name in SESSION_KEYS.names():
        row = st.columns([4, 1], vertical_alignment="center")
        shown = mask_secret(SESSION_KEYS.get(name))
        row[0].markdown(f"{ui.code(name)} is set for this session: {ui.code(shown)}")
        row[1].button("Forget", key=f"set_forget_{name}", on_click=forget_key, args=(name,))


def forget_key(name: str) -> None:
    ui.require_editor("change keys")
    SESSION_KEYS.forget(name)
    st.session_state.set_key_msg = (True, f"{name} is no longer set for this session.")


def save_key() -> None:
    ui.require_editor("change keys")
    state = st.session_state
    name, value = state.get("set_key_env") or "", (state.get("set_key_value") or "").strip()
    state.set_key_value = ""  # the key is not kept in the page's state
    try:
        if state.get("set_key_where") == DOTENV:
            message, warning = save_key_in_dotenv(workspace.root, name, value)
            SESSION_KEYS.forget(name)  # from now on the one in .env is used
            if warning:
                message += f" {warning}"
        else:
            SESSION_KEYS.set(name, value)
            message = (
                f"{name} is set for this session ({mask_secret(value)}): kept in this "
                "PromptDeck process's memory until it stops, written nowhere, and used by "
                "everyone this PromptDeck serves."
            )
    except PromptDeckError as exc:
        state.set_key_msg = (False, f"Not saved: {exc}")
    else:
        state.set_key_msg = (True, message)


def provider_editing() -> None:
    if registry is None:
        return
    done = st.session_state.pop("set_prov_msg", None)
    if done is not None:
        (st.success if done[0] else st.error)(ui.plain(done[1]))
    try:
        doc = read_providers(workspace.providers_file)
    except PromptDeckError as exc:
        st.error(ui.plain(exc))
        return
    provider_editor(doc, None if done is None or done[0] else done[2])


providers_section()
provider_editing()
key_editor()
defaults_section()
cache_section()
local_model_section()
keys_section()
