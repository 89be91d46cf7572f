"""What the Settings page configures, without streamlit.

    Settings               default judge model, calls in flight per provider, response cache
    load_settings / save_settings      kept in the store's settings table, validated
    test_connection        one cheap real request to a provider -> ConnectionResult
    set_local_model_path   `model_path` of the `local` provider, written into providers.yaml

Keys are read only through the registry (environment, .env, Streamlit secrets) and never
appear in a message, a file or the store.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from promptdeck.errors import AuthError, ConfigError, HTTPStatusError, ProviderError
from promptdeck.model.http import HTTPProvider, redact, run_with_client
from promptdeck.model.local import MODEL_NAME, local_model_status
from promptdeck.model.registry import ProviderConfig, Registry, split_model_ref
from promptdeck.model.types import ChatRequest, Message, Timeouts
from promptdeck.store.sqlite import Store
from promptdeck.workspace.fileio import MISSING, load_for_edit, save_if_unchanged

# Store keys (the settings table is shared: plain names, one per setting).
JUDGE_MODEL = "judge_model"
CONCURRENCY = "concurrency"
USE_CACHE = "use_cache"
MAX_CONCURRENCY = 32
GGUF_MAGIC = b"GGUF"
# A connection test should fail fast rather than wait for a generation's read timeout.
PROBE_CONNECT_S = 5.0
PROBE_READ_S = 15.0


@dataclass(frozen=True)
class Settings:
    judge_model: str = "local/smollm2"  # when a suite names no judge
    concurrency: int = 3  # calls in flight per provider
    use_cache: bool = True  # answer identical requests from the response cache

    def __post_init__(self) -> None:
        model = self.judge_model
        try:
            if not isinstance(model, str) or any(c.isspace() for c in model):
                raise ConfigError(model)
            split_model_ref(model)
        except ConfigError:
            raise ConfigError(
                f"default judge model {model!r} must look like 'provider/model' with no spaces, "
                "e.g. local/smollm2 or openai/gpt-4o-mini"
            ) from None
        value = self.concurrency
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= MAX_CONCURRENCY
        ):
            raise ConfigError(
                f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, not {value!r}"
            )
        if not isinstance(self.use_cache, bool):
            raise ConfigError(f"the cache setting must be on or off, not {self.use_cache!r}")


def load_settings(store: Store) -> Settings:
    """The saved settings; defaults for those never saved."""
    values = {name: store.get_setting(name) for name in (JUDGE_MODEL, CONCURRENCY, USE_CACHE)}
    stored = {name: value for name, value in values.items() if value is not None}
    try:
        return Settings(**stored)
    except ConfigError as exc:
        raise ConfigError(
            f"a saved setting cannot be used: {exc}. Save it again on the Settings page."
        ) from None


def save_settings(store: Store, settings: Settings) -> None:
    store.set_setting(JUDGE_MODEL, settings.judge_model)
    store.set_setting(CONCURRENCY, settings.concurrency)
    store.set_setting(USE_CACHE, settings.use_cache)


def saved_concurrency(store: Store) -> int | None:
    """The concurrency saved on the Settings page; None if never saved, so that each
    provider's own `max_concurrency` (providers.yaml) applies."""
    return load_settings(store).concurrency if store.get_setting(CONCURRENCY) is not None else None


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str  # for a product manager; never holds a key
    latency_ms: int | None = None  # the test's round trip; None when nothing was sent


_HEADLINES = {
    "auth": "Key rejected",
    "connection": "Cannot connect",
    "timeout": "Timed out",
    "rate_limit": "Rate limited",
    "quota": "Out of quota",
    "protocol": "Unexpected answer",
    "http_status": "Server error",
}


def test_connection(registry: Registry, provider_name: str) -> ConnectionResult:
    """List the provider's models (HTTP), or load the local model and generate one token."""
    try:
        cfg = registry.config(provider_name)
        if cfg.kind == "local":
            return _test_local(registry, cfg)
        provider = registry.provider(provider_name)
    except ConfigError as exc:
        return ConnectionResult(False, f"Not configured: {exc}")
    if not isinstance(provider, HTTPProvider):
        return ConnectionResult(False, f"{provider_name}: this kind of provider cannot be tested")
    secret = registry.secrets.get(cfg.api_key_env) if cfg.api_key_env else None
    t = provider.timeouts
    timeouts = Timeouts(min(t.connect, PROBE_CONNECT_S), min(t.read, PROBE_READ_S), t.write, t.pool)
    # the read timeout is per chunk: a server trickling bytes would keep the test waiting
    deadline = timeouts.connect + timeouts.read
    started = time.perf_counter()
    try:
        models = run_with_client(asyncio.wait_for(provider.list_models(timeouts), deadline))
    except TimeoutError:
        message = (
            f"Timed out: {provider_name}: no complete answer within {deadline:g}s. The server "
            "is reachable but too slow; try again, or check the base URL."
        )
        return ConnectionResult(False, message, _ms_since(started))
    except ProviderError as exc:
        if isinstance(exc, AuthError) and exc.status is None:  # nothing was sent
            headline = "No key" if secret is None else "Key unusable"
            return ConnectionResult(False, _hide(f"{headline}: {exc}", secret))
        return ConnectionResult(False, _hide(_failure(exc), secret), _ms_since(started))
    ms = _ms_since(started)
    parts = urlsplit(provider.base_url)
    key = f"the key in {cfg.api_key_env} was accepted, " if secret else ""
    shown = ", ".join(models[:3]) + (", …" if len(models) > 3 else "")
    listed = f"{len(models)} models listed ({shown})" if models else "no models listed"
    server = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never a user:password@
    message = f"Connected to {server} in {ms} ms: {key}{listed}."
    return ConnectionResult(True, _hide(message, secret), ms)


def _hide(text: str, secret: str | None) -> str:
    """The key masked, also as a server echoing it inside JSON writes it (\\/ for /)."""
    if secret:
        for form in (secret, json.dumps(secret)[1:-1], secret.replace("/", "\\/")):
            text = redact(text, form)
    return text


def display_url(url: str) -> str:
    """A base URL to show: a password in it (user:pass@) and its query (?key=...) masked."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    shown = f"{parts.scheme}://{'***@' if user else ''}{host}{parts.path}"
    return shown + ("?***" if parts.query else "") if parts.scheme else url


def _failure(exc: ProviderError) -> str:
    headline = _HEADLINES.get(exc.kind, "Failed")
    if isinstance(exc, HTTPStatusError) and exc.status == 404:
        return (
            f"Server reached, but it has no models list there: {exc} Check the base URL "
            "(OpenAI-compatible servers usually end in /v1)."
        )
    return f"{headline}: {exc}"


def _test_local(registry: Registry, cfg: ProviderConfig) -> ConnectionResult:
    ready, status = local_model_status(cfg.model_path)
    if not ready:
        return ConnectionResult(False, f"Not ready: {status}")
    provider = registry.provider(cfg.name)
    request = ChatRequest(MODEL_NAME, (Message("user", "Hi"),), {"max_tokens": 1})
    started = time.perf_counter()
    try:
        run_with_client(_drain(provider.stream(request)))
    except (ProviderError, ConfigError) as exc:
        return ConnectionResult(False, f"The model did not load: {exc}", _ms_since(started))
    ms = _ms_since(started)
    return ConnectionResult(True, f"Loaded and answered in {ms} ms: {status}", ms)


async def _drain(chunks: AsyncIterator[Any]) -> None:
    async for _ in chunks:
        pass


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def check_model_file(value: str) -> Path:
    """The GGUF file named by `value`, or ConfigError saying what is wrong with it."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path} does not exist or is not a file: give the path of a .gguf file")
    with path.open("rb") as f:
        head = f.read(len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        raise ConfigError(
            f"{path} is not a GGUF model file (it does not start with 'GGUF'). "
            "llama.cpp needs a .gguf file, e.g. a quantized model from Hugging Face."
        )
    return path


def _round_trip_yaml() -> YAML:
    """ruamel.yaml in round-trip mode: comments, key order and quoting survive."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long lines
    return yaml


def set_local_model_path(providers_file: Path, value: str) -> str:
    """Set `model_path` of the `local` provider in providers.yaml (created if missing); an
    empty value removes it (back to the bundled SmolLM2). Keeps the file's comments and other
    entries; refuses to overwrite a change made meanwhile. Returns what was done."""
    value = value.strip()
    if value:
        check_model_file(value)
    try:
        loaded = load_for_edit(providers_file) if providers_file.is_file() else None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{providers_file}: line {line}: not UTF-8 text, so it was not changed; "
            "save it as UTF-8"
        ) from None
    yaml = _round_trip_yaml()
    try:
        data = yaml.load(loaded.text) if loaded else None
    except YAMLError as exc:
        raise ConfigError(
            f"{providers_file}: not valid YAML, so it was not changed: {exc}"
        ) from None
    data = CommentedMap() if data is None else data
    if not _edit_local(data, value, where=str(providers_file)):
        return f"{providers_file} sets no local model file; nothing to change."
    out = io.StringIO()
    yaml.dump(data, out)
    text = out.getvalue()
    if loaded and "\r\n" in loaded.text:  # keep Windows line endings: a one-line diff
        text = text.replace("\n", "\r\n")
    save_if_unchanged(providers_file, text, loaded.fingerprint if loaded else MISSING)
    if value:
        return f"The local provider now uses {value} (saved in {providers_file})."
    return f"The local provider is back to the bundled SmolLM2 (saved in {providers_file})."


def _edit_local(data: Any, value: str, *, where: str) -> bool:
    """Set or remove providers.local.model_path in parsed round-trip YAML; False if unchanged."""
    if isinstance(data, dict) and data.get("providers") is None:
        data["providers"] = CommentedMap()
    providers = data.get("providers") if isinstance(data, dict) else None
    local = providers.get("local") if isinstance(providers, dict) else None
    if not isinstance(providers, dict) or not isinstance(local, dict | None):
        raise ConfigError(f"{where}: the file, 'providers:' and its 'local:' must be mappings")
    if not value:
        if local is None or "model_path" not in local:
            return False
        del local["model_path"]
        if not local:
            del providers["local"]
    elif local is None:
        providers["local"] = CommentedMap(model_path=value)
    else:
        local["model_path"] = value
    return True
