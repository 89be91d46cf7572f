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
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast
from urllib.parse import quote, urlencode

import streamlit as st

from promptdeck.analysis.run import RunAnalysis, analyze_run
from promptdeck.errors import ConfigError
from promptdeck.evals.jobs import EvalJob, JobRegistry
from promptdeck.evals.live import StepView
from promptdeck.model.local import MODEL_NAME, local_model_status
from promptdeck.model.pricing import PriceTable, format_cost
from promptdeck.model.refs import LOCAL_PROVIDER
from promptdeck.model.registry import Registry, builtin_configs
from promptdeck.model.secrets import SESSION_KEYS, Secrets
from promptdeck.model.types import CallResult
from promptdeck.scoring.confidence import from_logprobs
from promptdeck.store.db import Store
from promptdeck.store.rows import ScoreRow, stored_steps
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.prompts import PromptLibrary, load_prompts
from promptdeck.workspace.providers_file import open_registry
from promptdeck.workspace.serving import (
    UNSAFE_ENV,
    exposure_refusal,
    is_loopback,
    missing_auth_keys,
)
from promptdeck.workspace.team import SUB_PREFIX, Role, Team, identity_of, load_team, team_file

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&])")

T = TypeVar("T")


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
    address = st.get_option("server.address")
    if not host_allowed(host, address):
        st.error(
            f"PromptDeck serves this computer only (localhost), not {plain(host)}. "
            "Open it at http://localhost instead."
        )
        st.stop()
    try:
        you = access()
    except ConfigError as exc:  # a broken secrets.toml or team list: nobody gets in
        st.error(plain(exc), icon=":material/lock:")
        st.stop()
    unsafe = bool(os.environ.get(UNSAFE_ENV))
    if host and (refusal := exposure_refusal(address, you.missing, unsafe)) is not None:
        st.error(plain(refusal), icon=":material/lock:")  # `streamlit run` by hand
        st.stop()
    if you.role is None:
        _closed_door(you)
        st.stop()
    if host and you.missing is None and not is_loopback(address):
        st.warning(
            "**No sign-in** (started with --unsafe-no-auth): anyone on this network can use "
            "your keys and change your files.",
            icon=":material/lock_open:",
        )
    with st.sidebar:
        st.markdown("### PromptDeck")
        for path, label, page_icon in PAGES:
            st.page_link(path, label=label, icon=page_icon)
        st.divider()
        if you.identity is not None:
            # the address as code: Markdown would make it a mailto: link
            st.caption(f"Signed in as **{plain(you.name)}** ({code(you.shown)}) · {you.role}")
            if st.button("Sign out", key="ui_sign_out", icon=":material/logout:"):
                st.logout()
        st.caption(f"Workspace: {code(workspace().root.resolve())}")


# --- sign-in and roles ---------------------------------------------------------------------
# With an [auth] section in Streamlit's secrets, every page needs a signed-in user whom the
# workspace's team list (workspace.team) names. The role is worked out again on every run
# from st.user (Streamlit's signed identity cookie) and the file: it is never kept in the
# session, so nothing a browser sends can choose it, and a change to team.yaml applies at
# the next click.


@dataclass(frozen=True)
class Access:
    """Who this session is and what it may do. `missing`: None without sign-in (everyone is
    an editor, as on a laptop), [] with it, else the [auth] keys that are missing. `role`
    None: no page for this session (`why` says why; not signed in when `why` is None)."""

    missing: list[str] | None
    role: Role | None
    identity: str | None = None  # an email, or sub:<id>; None without sign-in
    name: str = ""
    why: str | None = None

    @property
    def shown(self) -> str:
        return self.identity.removeprefix(SUB_PREFIX) if self.identity else ""


def _auth_section() -> Mapping[str, object] | None:
    """The [auth] section Streamlit's st.login() uses (None: none). A secrets file that
    exists but cannot be read is a ConfigError, never taken for "no sign-in"."""
    try:
        found = st.secrets.get("auth")
    except Exception:  # st.secrets raises when there is no file, or it is not TOML
        broken = [f for f in st.get_option("secrets.files") if Path(f).is_file()]
        if broken:
            raise ConfigError(
                f"Cannot read {', '.join(broken)}: sign-in cannot be checked, so no page is "
                "shown. Fix the TOML and reload."
            ) from None
        return None
    if found is None:
        return None
    return found if isinstance(found, Mapping) else {}


def access() -> Access:
    """This session's access, from st.user and the team list; ConfigError: a broken file."""
    missing = missing_auth_keys(_auth_section())
    if missing is None:
        return Access(None, "editor")
    if missing:
        why = f"Sign-in is set up but [auth] in .streamlit/secrets.toml lacks {', '.join(missing)}."
        return Access(missing, None, why=why)
    user = st.user.to_dict()
    if not user.get("is_logged_in"):
        return Access(missing, None)
    identity = identity_of(user)
    name = str(user.get("name") or identity or "")
    if identity is None:
        return Access(missing, None, None, name, "Your sign-in sent no email and no subject.")
    team = _team(team_file(workspace().root))
    role = team.role_of(identity) if team is not None else None
    if role is None:
        who = identity.removeprefix(SUB_PREFIX)
        why = f"Signed in as {who}, who is not on this workspace's team list (team.yaml)"
        if team is not None:
            why += "; ask an editor to add you."
        else:
            why += (
                f": there is no {team_file(workspace().root)} yet. Whoever runs PromptDeck "
                "must create it (editors: [...], viewers: [...])."
            )
        return Access(missing, None, identity, name, why)
    return Access(missing, role, identity, name)


def _team(path: Path) -> Team | None:
    """The team list, read again when the file changes (its time and size)."""
    found = path.stat() if path.is_file() else None
    version = (found.st_mtime_ns, found.st_size) if found else None
    return _load_team(str(path.resolve()), version)


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_team(path: str, version: tuple[int, int] | None) -> Team | None:
    return load_team(Path(path))


def _closed_door(you: Access) -> None:
    """What a session without a role sees: a sign-in button, or why it cannot get in."""
    st.title("PromptDeck")
    if you.why is not None:
        st.error(plain(you.why), icon=":material/lock:")
        if you.identity is not None and st.button("Sign out", icon=":material/logout:"):
            st.logout()
        return
    st.markdown("This workspace is shared with a team: sign in to use it.")
    if st.button("Sign in", type="primary", icon=":material/login:"):
        st.login()
    if st.query_params:
        st.caption("After signing in you land on Home: open your link again then.")


def can_edit() -> bool:
    """May this session run, edit, save or test? (Viewers read results and reports.) A team
    list or secrets file broken since the page was drawn means no."""
    try:
        return access().role == "editor"
    except ConfigError:
        return False


def require_editor(action: str) -> None:
    """The one guard of every action a viewer may not take: called where the action runs
    (the callback or the branch that writes), not only where its button is drawn, so a
    widget event that reaches a viewer's session is refused, not performed."""
    try:
        role = access().role
    except ConfigError as exc:  # broken since the page was drawn: nothing is done
        st.error(f"Not done: {plain(exc)}", icon=":material/lock:")
        st.stop()
    if role != "editor":
        st.error(
            f"Viewers cannot {plain(action)}: ask an editor (team.yaml) if you need to.",
            icon=":material/lock:",
        )
        st.stop()


def cancel_button(job: EvalJob) -> None:
    """Cancel a running eval (editors only; a viewer watches it)."""
    if can_edit():
        st.button("Cancel", icon=":material/cancel:", on_click=_cancel, args=(job,))


def _cancel(job: EvalJob) -> None:
    require_editor("cancel runs")
    job.cancel.set()


def share_url(page: str, params: Mapping[str, str]) -> str:
    """The absolute URL of `page` (its URL path, e.g. "results") with `params`, as the
    browser reached this page (st.context.url; the Host header without it; a relative URL
    without either, e.g. in AppTest). Called from `page` itself."""
    here = (st.context.url or "").rstrip("/")
    if not here.endswith(f"/{page}"):
        host = st.context.headers.get("Host")
        here = f"http://{host}/{page}" if host else f"/{page}"
    return f"{here}?{urlencode(params, quote_via=quote)}"


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


def who(author: str | None) -> str:
    """Who did something, as the store recorded it: a signed-in identity, or "–" (no
    sign-in: the person at this computer)."""
    return author or "–"


def store() -> Store:
    """The workspace's store, stamping who acts on every write it makes: the signed-in
    user's identity (an email, or sub:<id>); None without sign-in."""
    target = workspace().store_target
    shared = _store(target if "://" in target else str(Path(target).resolve()))
    try:
        author = access().identity
    except ConfigError:  # frame() has shown it; nothing is written by such a session
        author = None
    return shared.acting_as(author)


def _store(target: str) -> Store:
    """The shared store. One that cannot be opened (a wrong password, a server down, no
    such database) stops the page with why, the URL's password masked: never a traceback."""
    try:
        return _open_store(target)
    except ConfigError as exc:
        hint = "\n\nCheck PROMPTDECK_DATABASE_URL, then reload." if "://" in target else ""
        st.error(f"**The run store cannot be opened.** {plain(exc)}{hint}", icon=":material/error:")
        st.stop()


@st.cache_resource(show_spinner=False)
def _open_store(target: str) -> Store:
    return Store(target)


def run_version(store: Store, run_id: str) -> tuple[object, ...]:
    """The run's version stamp (`Store.run_version`): what the cached views below are
    keyed by, read once per rerun. A new cell, a score, a review or a status makes a new one."""
    return (store.location, *store.run_version(run_id))


def run_analysis(
    store: Store, run_id: str, version: tuple[object, ...], baseline: str | None = None
) -> RunAnalysis:
    """`analyze_run`, computed once per version of the run and shared by every rerun and
    session: a filter change or a click redraws from it. Read-only: never modify it."""
    return _run_analysis(store, run_id, version, baseline)


@st.cache_resource(show_spinner=False, max_entries=8)
def _run_analysis(
    _store: Store, run_id: str, version: tuple[object, ...], baseline: str | None
) -> RunAnalysis:
    return analyze_run(_store, run_id, baseline)


def run_scores(store: Store, run_id: str, version: tuple[object, ...]) -> list[ScoreRow]:
    """`store.scores(run_id)`, read once per version of the run. Read-only."""
    return _run_scores(store, run_id, version)


@st.cache_resource(show_spinner=False, max_entries=4)
def _run_scores(_store: Store, run_id: str, version: tuple[object, ...]) -> list[ScoreRow]:
    return _store.scores(run_id)


def run_view(
    name: str, compute: Callable[[], T], run_id: str, version: tuple[object, ...], *key: object
) -> T:
    """`compute()`, a pure view of one version of a run (a table, a distribution), kept per
    (name, run, version, key): what a rerun for a filter or a click does not recompute."""
    return cast(T, _run_view(name, compute, run_id, version, key))


@st.cache_resource(show_spinner=False, max_entries=64)
def _run_view(
    name: str, _compute: Callable[[], object], run_id: str, version: object, key: object
) -> object:
    return _compute()


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
