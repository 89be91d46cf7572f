"""The one streamlit-aware helper module: page frame, cached resources, error display."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from promptdeck.errors import ConfigError
from promptdeck.evals.jobs import JobRegistry
from promptdeck.model.local import MODEL_NAME, local_model_status
from promptdeck.model.pricing import PriceTable
from promptdeck.model.refs import LOCAL_PROVIDER
from promptdeck.model.registry import Registry, builtin_configs
from promptdeck.model.secrets import Secrets
from promptdeck.store.sqlite import Store
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.prompts import PromptLibrary, load_prompts
from promptdeck.workspace.providers_file import open_registry

PAGES = (
    ("app.py", "Home", ":material/home:"),
    ("pages/playground.py", "Playground", ":material/play_circle:"),
    ("pages/prompts.py", "Prompts", ":material/edit_note:"),
    ("pages/evaluate.py", "Evaluate", ":material/fact_check:"),
    ("pages/results.py", "Results", ":material/insights:"),
    ("pages/datasets.py", "Datasets", ":material/table:"),
    ("pages/settings.py", "Settings", ":material/settings:"),
)


def frame(title: str, icon: str) -> None:
    """Page config + sidebar; every page calls this first so a deep link shows the full app."""
    st.set_page_config(page_title=f"{title} · PromptDeck", page_icon=icon, layout="wide")
    with st.sidebar:
        st.markdown("### PromptDeck")
        for path, label, page_icon in PAGES:
            st.page_link(path, label=label, icon=page_icon)
        st.divider()
        st.caption(f"Workspace: `{workspace().root.resolve()}`")


def workspace() -> Workspace:
    return Workspace.from_env()


def _streamlit_secret(name: str) -> str | None:
    try:  # st.secrets raises when no secrets.toml exists
        value = st.secrets.get(name)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.is_file() else 0.0


def registry() -> Registry:
    """Providers from built-ins, providers.yaml and secrets; rebuilt when the file changes."""
    ws = workspace()
    env_file = (ws.root / ".env").resolve()
    return _registry(
        str(ws.providers_file.resolve()), str(env_file), _mtime(ws.providers_file), _mtime(env_file)
    )


@st.cache_resource(show_spinner=False)
def _registry(providers_file: str, env_file: str, *_mtimes: float) -> Registry:
    secrets = Secrets(Path(env_file), extra=_streamlit_secret)
    return open_registry(Path(providers_file), secrets)


def registry_or_error() -> Registry | None:
    try:
        return registry()
    except ConfigError as exc:
        st.error(f"**Provider configuration error.** {exc}")
        return None


def registry_or_stop() -> Registry:
    """The registry; with a broken providers.yaml, the error is shown and the page stops."""
    found = registry_or_error()
    if found is None:
        st.stop()
    return found


def is_demo_model(model_ref: str | None) -> bool:
    """Is `model_ref` the bundled SmolLM2 demo model? (The registry decides; with a broken
    providers.yaml, its built-in providers do.)"""
    if not model_ref:
        return False
    try:
        return registry().is_demo_model(model_ref)
    except ConfigError:
        return Registry(builtin_configs(), Secrets(), PriceTable()).is_demo_model(model_ref)


def store() -> Store:
    return _store(str(workspace().store_path.resolve()))


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path)


@st.cache_resource(show_spinner=False)
def jobs() -> JobRegistry:
    """Background eval jobs of this server process, shared by every browser session."""
    return JobRegistry()


def prompt_library() -> PromptLibrary:
    return load_prompts(workspace().prompts_dir)


def local_model_path() -> str | None:
    """The GGUF file the `local` provider is configured with (None: the bundled SmolLM2)."""
    try:
        return registry().local_model_file(f"{LOCAL_PROVIDER}/{MODEL_NAME}")
    except ConfigError:
        return None


def local_status() -> tuple[bool, str]:
    """Is the embedded model ready (the configured GGUF file, else SmolLM2)?"""
    return _local_status(local_model_path())


@st.cache_data(show_spinner=False, ttl=30)
def _local_status(model_path: str | None) -> tuple[bool, str]:
    return local_model_status(model_path)


def show_prompt_errors(library: PromptLibrary) -> None:
    """Broken prompt files, each with its file and line; the rest stays usable."""
    if not library.errors:
        return
    noun = "file" if len(library.errors) == 1 else "files"
    with st.expander(f"⚠️ {len(library.errors)} prompt {noun} could not be loaded", expanded=True):
        for err in library.errors:
            st.error(str(err), icon=":material/description:")
