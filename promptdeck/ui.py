"""The one streamlit-aware helper module: page frame, cached resources, the rendering rule.

The rendering rule for untrusted text (model answers, judge reasons, file and variant
names, dataset cells, categories, error messages that quote a server or a file): it is
never given to `unsafe_allow_html`; inside Markdown it goes through `plain` (every Markdown
character escaped: it shows as written) or, for an answer a PM wants formatted,
`answer_markdown` (Markdown with images off, so it cannot make the viewer's browser fetch
anything). HTML built by the app escapes every part (`html.escape`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from promptdeck.errors import ConfigError
from promptdeck.evals.jobs import JobRegistry
from promptdeck.evals.live import StepView
from promptdeck.model.local import MODEL_NAME, local_model_status
from promptdeck.model.pricing import PriceTable, format_cost
from promptdeck.model.refs import LOCAL_PROVIDER
from promptdeck.model.registry import Registry, builtin_configs
from promptdeck.model.secrets import SESSION_KEYS, Secrets
from promptdeck.model.types import CallResult
from promptdeck.scoring.confidence import from_logprobs
from promptdeck.store.db import Store
from promptdeck.store.rows import stored_steps
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.prompts import PromptLibrary, load_prompts
from promptdeck.workspace.providers_file import open_registry

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&])")


def plain(text: object) -> str:
    """Untrusted text inside the app's Markdown: shown exactly as written, never formatted,
    linked or fetched (every Markdown character is backslash-escaped)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def code(text: object) -> str:
    """Untrusted text as inline code: literal, in a backtick fence longer than any run of
    backticks inside it."""
    value = str(text)
    fence = "`" * (max((len(r) for r in re.findall(r"`+", value)), default=0) + 1)
    return f"{fence} {value} {fence}"


def answer_markdown(text: str) -> str:
    """A model answer as Markdown (lists, bold, code) with images off: every `![` is shown
    as text, so `![](https://...)` in an answer cannot make a viewer's browser fetch a URL.
    Raw HTML in it stays text (it is never rendered with unsafe_allow_html)."""
    return text.replace("![", "!\\[")


PAGES = (
    ("app.py", "Home", ":material/home:"),
    ("pages/playground.py", "Playground", ":material/play_circle:"),
    ("pages/prompts.py", "Prompts", ":material/edit_note:"),
    ("pages/evaluate.py", "Evaluate", ":material/fact_check:"),
    ("pages/results.py", "Results", ":material/insights:"),
    ("pages/datasets.py", "Datasets", ":material/table:"),
    ("pages/settings.py", "Settings", ":material/settings:"),
)


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_allowed(host: str | None, server_address: str | None) -> bool:
    """May a request with this Host header use the app? When the server listens on loopback
    only (the default), only loopback names may: a page on another site whose name resolves
    to 127.0.0.1 (DNS rebinding) is refused. A server deliberately bound elsewhere serves
    any name it is reached by."""
    if not host:  # no browser behind it (AppTest, health checks)
        return True
    if server_address not in (None, "", *LOOPBACK_NAMES):
        return True
    name = host[1 : host.find("]")] if host.startswith("[") else host.rpartition(":")[0] or host
    return name.lower() in LOOPBACK_NAMES


FAVICON = Path(__file__).parent / "assets" / "favicon.png"  # served by the app itself


def frame(title: str) -> None:
    """Page config + sidebar; every page calls this first so a deep link shows the full app.
    The favicon is a local file: a `:material/...:` page icon is fetched from Google's font
    servers by the browser, an outside request on every page load."""
    st.set_page_config(page_title=f"{title} · PromptDeck", page_icon=str(FAVICON), layout="wide")
    host = st.context.headers.get("Host")
    if not host_allowed(host, st.get_option("server.address")):
        st.error(
            f"PromptDeck serves this computer only (localhost), not {plain(host)}. "
            "Open it at http://localhost instead."
        )
        st.stop()
    with st.sidebar:
        st.markdown("### PromptDeck")
        for path, label, page_icon in PAGES:
            st.page_link(path, label=label, icon=page_icon)
        st.divider()
        st.caption(f"Workspace: {code(workspace().root.resolve())}")


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
    """Providers from built-ins, providers.yaml and secrets; rebuilt when the file or .env
    changes, or a key is set for this session (a provider is built with its key)."""
    ws = workspace()
    env_file = (ws.root / ".env").resolve()
    return _registry(
        str(ws.providers_file.resolve()),
        str(env_file),
        _mtime(ws.providers_file),
        _mtime(env_file),
        SESSION_KEYS.version,
    )


@st.cache_resource(show_spinner=False)
def _registry(providers_file: str, env_file: str, *_versions: float) -> Registry:
    secrets = Secrets(Path(env_file), extra=_streamlit_secret, session=SESSION_KEYS)
    return open_registry(Path(providers_file), secrets)


def registry_or_error() -> Registry | None:
    try:
        return registry()
    except ConfigError as exc:
        st.error(f"**Provider configuration error.** {plain(exc)}")
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
    target = workspace().store_target
    return _store(target if "://" in target else str(Path(target).resolve()))


@st.cache_resource(show_spinner=False)
def _store(target: str) -> Store:
    return Store(target)


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
            st.error(plain(err), icon=":material/description:")


# What a turn adds to an answer: the model's thinking and its tool calls, shown apart from
# the answer and always as written (a tool's name, arguments and result are the model's or a
# mock's text, untrusted like the answer).

SHORT = 160  # characters of a tool call's arguments or result in a one-line summary


def _pretty(text: str) -> tuple[str, str | None]:
    """JSON text indented, with its language for st.code; other text as it is."""
    try:
        value = json.loads(text)
    except ValueError:
        return text, None
    return json.dumps(value, indent=2, ensure_ascii=False), "json"


def _short(text: str, width: int = SHORT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def show_thinking(text: str, thinking_ms: float | None = None, *, key: str | None = None) -> None:
    """The model's thinking, collapsed, apart from the answer; the label says how long the
    first thought took when it is known."""
    if not text:
        return
    when = f" · first thought after {thinking_ms:,.0f} ms" if thinking_ms is not None else ""
    with st.expander(f"Thinking{when}", icon=":material/psychology:", key=key, type="compact"):
        st.caption(plain(text).replace("\n", "  \n"))


def show_steps(steps: Sequence[StepView], *, arriving: bool) -> None:
    """Each tool call of a turn as a step: its arguments (partial while they stream), then
    what the tool returned, or why it was not run. `arriving`: the turn is still going."""
    for step in steps:
        label, icon = f"Tool call: **{plain(step.name)}**", ":material/build:"
        if step.error:
            icon = ":material/warning:"
        elif step.result is None:
            label += " · arriving…" if arriving else " · not run"
            icon = "spinner" if arriving else ":material/block:"
        with st.expander(label, expanded=True, type="step", icon=icon):
            arguments, language = _pretty(step.arguments)
            st.caption("called with")
            st.code(arguments or " ", language=language, wrap_lines=True)
            if step.error:
                st.warning(f"Not run as asked: {plain(step.error)}", icon=":material/warning:")
            elif step.result is not None:
                result, language = _pretty(step.result)
                st.caption("returned")
                st.code(result or " ", language=language, wrap_lines=True)
            elif not arriving:
                st.caption("The turn stopped before the tool ran.")


def tool_marker(stored: str | None) -> str:
    """A cell's tool calls in a few characters, for a grid: `get_order ×2` ("" for none)."""
    counts = Counter(step.name for step in stored_steps(stored))
    return ", ".join(f"{name} ×{n}" for name, n in counts.items())


def show_tool_calls(stored: str | None) -> None:
    """A stored cell's tool calls, one line each: `name(arguments) → result`, or its error."""
    for step in stored_steps(stored):
        args = step.arguments
        text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        call = code(_short(f"{step.name}({text})"))
        result = code(_short(step.result) or "(empty)")
        outcome = f":material/warning: {plain(_short(step.error))}" if step.error else result
        st.markdown(f":material/build: {call} → {outcome}")


def call_metrics(result: CallResult, calls: int = 1) -> str:
    """One line of a turn's measures (Markdown): with thinking, the first thought and the
    first answer token apart; thinking tokens when the server counted them. `calls`: the
    model calls of the turn (one more per tool round); `result.attempts` is 1 + the retries
    of those calls."""
    parts = []
    if result.thinking_ms is not None:
        parts.append(f"first thought **{result.thinking_ms:,.0f} ms**")
    ttft = f"**{result.ttft_ms:,.0f} ms**" if result.ttft_ms is not None else "–"
    parts.append(f"TTFT {ttft}" + (" (first answer token)" if result.thinking else ""))
    parts.append(f"total **{result.latency_ms / 1000:,.2f} s**")
    if (usage := result.usage) is not None:
        approx = "≈" if usage.estimated else ""
        counts = f"{approx}{usage.input_tokens} in"
        if usage.reasoning_tokens is not None:
            counts += f", {usage.reasoning_tokens} thinking"
        parts.append(f"**{approx}{usage.output_tokens}** tokens out ({counts})")
    if result.tokens_per_s is not None:
        parts.append(f"**{result.tokens_per_s:,.0f}** tok/s")
    parts.append(f"cost **{format_cost(result.cost_usd)}**")
    if (conf := from_logprobs(result.confidence)) is not None:
        parts.append(conf.badge)
    if calls > 1:
        parts.append(f"{calls} model calls")
    if result.attempts > 1 and calls == 1:
        parts.append(f"{result.attempts} attempts")
    elif result.attempts > 1:  # a turn's calls: say how many of its requests were retries
        retries = result.attempts - 1
        parts.append(f"{retries} {'retry' if retries == 1 else 'retries'}")
    return " · ".join(parts)
