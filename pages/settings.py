"""Settings: providers and their keys (masked), a connection test, the defaults of an eval
run, the response cache, and the embedded model's file. Actions run in callbacks, so the
page drawn afterwards already shows their effect."""

import pandas as pd
import streamlit as st

from promptdeck import ui
from promptdeck.errors import PromptDeckError
from promptdeck.model.probe import probe_connection
from promptdeck.store.settings import MAX_CONCURRENCY, Settings, load_settings, save_settings
from promptdeck.workspace.providers_file import set_local_model_path

ui.frame("Settings")
st.title("Settings")

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
                "ready": s.usable,
            }
            for s in statuses
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    cols = st.columns([3, 1], vertical_alignment="bottom")
    name = cols[0].selectbox("Provider", [s.name for s in statuses], key="set_test_provider")
    if cols[1].button("Test connection", key="set_test"):
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
    path = st.session_state.get("set_model_path", "")
    try:
        message = set_local_model_path(workspace.providers_file, path)
    except PromptDeckError as exc:
        st.session_state.set_model_saved = (False, f"Not saved: {exc}")
    else:
        st.session_state.set_model_saved = (True, message)


def keys_section() -> None:
    st.subheader("Where keys come from")
    st.markdown(
        "A provider names the **environment variable** that holds its key (`api_key_env` in "
        "`providers.yaml`). PromptDeck looks that variable up, in this order:\n"
        "1. the environment of the process that started PromptDeck;\n"
        f"2. the `.env` file in the workspace (`{(workspace.root / '.env').resolve()}`);\n"
        "3. Streamlit secrets (`.streamlit/secrets.toml`).\n\n"
        "Keys are never written anywhere: not to `providers.yaml`, the run store, the cache, "
        "exports or logs, and this page shows them masked. A `.env` change is picked up on "
        "the next page load; restart PromptDeck after changing an environment variable.\n\n"
        "A key goes only to its provider's own host (**key goes to** above): a preset's key "
        "to the preset's server (`OPENAI_API_KEY` to api.openai.com, ...), and a provider "
        "you add names its hosts with `send_key_to: [host]`; otherwise the request is "
        "refused before anything is sent. A secret header takes its value from the "
        "environment the same way: `headers_env: {X-Header: ENV_VAR_NAME}`."
    )


providers_section()
defaults_section()
cache_section()
local_model_section()
keys_section()
