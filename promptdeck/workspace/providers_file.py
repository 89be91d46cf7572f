"""`providers.yaml`: reading it strictly, and the edits the app makes to it.

load_providers_file    the file -> provider configs and prices; errors name the file,
                       the provider and the key (`parse_providers_text`: the same, of text)
open_registry          built-in providers + the workspace's file + secrets
set_local_model_path   `model_path` of the `local` provider, written back by round trip

Providers added, edited and removed in Settings: `workspace.providers_edit`; keys saved in
`.env`: `workspace.dotenv_file`.

Secrets are named, never written: `api_key_env: NAME` for the key and
`headers_env: {Header-Name: NAME}` for secret headers (values read from the environment,
`.env` or Streamlit secrets at call time). `headers:` are plain values, in the file.

Where those secrets may go is explicit (`model.registry` explains it):

    send_key_to: [api.example.com, 127.0.0.1:8000, "*.example.com"]

A provider the file adds that names `api_key_env` or `headers_env` must list where their
values may be sent, or every request is refused before sending, with a message saying
what to add. A preset keeps its own host(s) (OPENAI_API_KEY only to api.openai.com, ...)
even when the file moves its `base_url`; `send_key_to` replaces them.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from promptdeck.errors import ConfigError
from promptdeck.model.pricing import Price, PriceTable
from promptdeck.model.registry import KINDS, ProviderConfig, Registry, builtin_configs
from promptdeck.model.secrets import Secrets, check_headers, display_url, split_host
from promptdeck.model.types import Timeouts
from promptdeck.workspace.fileio import (
    MISSING,
    History,
    NotUTF8,
    load_for_edit,
    read_text,
    save_if_unchanged,
    save_versioned,
)
from promptdeck.workspace.yamlfile import parse_yaml

GGUF_MAGIC = b"GGUF"


def open_registry(providers_file: Path, secrets: Secrets) -> Registry:
    """The built-in providers, overridden and extended by `providers_file` when it exists."""
    configs = builtin_configs()
    overrides: dict[str, Price] = {}
    if providers_file.is_file():
        extra, overrides = load_providers_file(providers_file)
        configs.update(extra)
    free = frozenset(n for n, c in configs.items() if c.free)
    return Registry(configs, secrets, PriceTable(free_providers=free).with_overrides(overrides))


_PROVIDER_KEYS = {
    "kind",
    "base_url",
    "api_key_env",
    "headers",
    "max_concurrency",
    "api_version",
    "model_path",
    "requires_key",
    "free",
    "timeout",
    "read_timeout",
    "label",
    "headers_env",
    "send_key_to",
}


def load_providers_file(path: Path) -> tuple[dict[str, ProviderConfig], dict[str, Price]]:
    """Parse providers.yaml; errors name the file, the provider and the key."""
    try:
        text = read_text(path)
    except ValueError as exc:
        raise ConfigError(f"{path}: cannot read providers file: {exc}") from None
    return parse_providers_text(text, path)


def parse_providers_text(
    text: str, path: Path
) -> tuple[dict[str, ProviderConfig], dict[str, Price]]:
    """providers.yaml's text (as `path`), checked as when it is loaded."""
    try:
        data = parse_yaml(text) or {}
    except ValueError as exc:
        raise ConfigError(f"{path}: cannot read providers file: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'providers:' and/or 'prices:'")
    unknown = set(data) - {"providers", "prices"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    for section in ("providers", "prices"):
        if not isinstance(data.get(section) or {}, dict):
            raise ConfigError(f"{path}: '{section}:' must be a mapping of name: settings")
    builtins = builtin_configs()
    configs = {
        str(name): _parse_provider(path, str(name), body, builtins.get(str(name)))
        for name, body in (data.get("providers") or {}).items()
    }
    prices = {
        str(ref): _parse_price(path, str(ref), body)
        for ref, body in (data.get("prices") or {}).items()
    }
    return configs, prices


def _parse_provider(
    path: Path, name: str, body: Any, base: ProviderConfig | None
) -> ProviderConfig:
    where = f"{path}: provider '{name}'"
    if "/" in name or not name:
        raise ConfigError(f"{where}: a provider name cannot be empty or contain '/'")
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: expected a mapping of settings")
    if "api_key" in body:
        raise ConfigError(f"{where}: never put a key in a file; use api_key_env")
    unknown = set(body) - _PROVIDER_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    kind = body.get("kind", base.kind if base else None)
    if kind not in KINDS:
        raise ConfigError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, not {kind!r}")
    # A new provider needs a key only when it names one (api_key_env).
    cfg = (
        base
        if base and base.kind == kind
        else ProviderConfig(name, kind, requires_key=False, label=name)
    )
    updates: dict[str, Any] = {}
    for key in ("base_url", "api_key_env", "api_version", "model_path", "label"):
        if key in body:
            updates[key] = _typed(where, key, body[key], str)
    for key in ("requires_key", "free"):
        if key in body:
            updates[key] = _typed(where, key, body[key], bool)
    if "max_concurrency" in body:
        updates["max_concurrency"] = _typed(where, "max_concurrency", body["max_concurrency"], int)
    if "headers" in body:
        headers = _typed(where, "headers", body["headers"], dict)
        updates["headers"] = {str(k): str(v) for k, v in headers.items()}
        _check_headers(where, updates["headers"])
    if "headers_env" in body:
        updates["headers_env"] = _headers_env(where, body["headers_env"])
    if "send_key_to" in body:
        updates["key_hosts"] = parse_send_key_to(where, body["send_key_to"])
    elif base is None or base.kind != kind:
        updates["key_hosts"] = ()  # a provider of the file's own: nowhere until it says so
    if "timeout" in body or "read_timeout" in body:
        t = cfg.timeouts
        connect = float(_typed(where, "timeout", body.get("timeout", t.connect), (int, float)))
        read = float(_typed(where, "read_timeout", body.get("read_timeout", t.read), (int, float)))
        updates["timeouts"] = Timeouts(connect=connect, read=read)
    if "api_key_env" in body and "requires_key" not in body:
        updates["requires_key"] = True
    cfg = replace(cfg, name=name, kind=str(kind), **updates)
    if kind != "local" and not cfg.base_url:
        raise ConfigError(f"{where}: 'base_url' is required for kind {kind}")
    if "base_url" in body:
        check_base_url(where, cfg.base_url)
    return cfg


def check_base_url(where: str, url: str) -> None:
    """http(s)://host[:port][/path]; the message shows it with any password masked."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigError(
            f"{where}: 'base_url' {display_url(url)!r} is not an http:// or https:// URL "
            "with a host (and a port from 1 to 65535), e.g. http://127.0.0.1:8000/v1"
        )


def _check_headers(where: str, headers: dict[str, str]) -> None:
    try:
        check_headers(headers, "", {})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _headers_env(where: str, value: Any) -> dict[str, str]:
    """{Header-Name: ENV_VAR_NAME}: names only, a value here would be a secret in a file."""
    mapping = _typed(where, "headers_env", value, dict)
    out = {}
    for header, env in mapping.items():
        name = env.strip() if isinstance(env, str) else ""
        if not name.replace("_", "").isalnum() or not name.isascii():
            raise ConfigError(
                f"{where}: 'headers_env' maps a header to the NAME of an environment variable "
                f"(letters, digits, _), e.g. {{{header}: MY_TOKEN}}; the one for {header!r} is "
                "not a name (never put the value itself in a file)"
            )
        out[str(header)] = name
    _check_headers(where, dict.fromkeys(out, "x"))  # the names; values come at call time
    return out


def parse_send_key_to(where: str, value: Any) -> tuple[str, ...]:
    hosts = [value] if isinstance(value, str) else value
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(
            f"{where}: 'send_key_to' is a list of hosts its key may be sent to, "
            "e.g. [api.example.com, 127.0.0.1:8000]"
        )
    for host in hosts:
        try:
            split_host(host)
        except ValueError as exc:
            raise ConfigError(f"{where}: 'send_key_to': {exc}") from None
    return tuple(h.strip().lower() for h in hosts)


def _typed(where: str, key: str, value: Any, types: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and types in (int, (int, float)):
        raise ConfigError(f"{where}: '{key}' must be a number, not {value!r}")
    if not isinstance(value, types):
        raise ConfigError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    return value


def _parse_price(path: Path, ref: str, body: Any) -> Price:
    if not isinstance(body, dict) or set(body) != {"input", "output"}:
        raise ConfigError(f"{path}: price for '{ref}' must be {{input: USD/Mtok, output: ...}}")
    try:
        return Price(float(body["input"]), float(body["output"]))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: price for '{ref}' must be numbers") from exc


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


def set_local_model_path(
    providers_file: Path, value: str, *, store: History | None = None, root: Path | None = None
) -> str:
    """Set `model_path` of the `local` provider in providers.yaml (created if missing); an
    empty value removes it (back to the bundled SmolLM2). Keeps the file's comments and other
    entries; refuses to overwrite a change made meanwhile. With a `store`, the save is
    recorded in its file history (named relative to `root`). Returns what was done."""
    # ruamel.yaml only for this edit: reading the file (every `promptdeck run`) needs none.
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    from promptdeck.workspace.yamlsplice import round_trip_yaml

    value = value.strip()
    if value:
        check_model_file(value)
    try:
        loaded = load_for_edit(providers_file) if providers_file.is_file() else None
    except NotUTF8 as exc:
        raise ConfigError(f"{providers_file}: {exc} (it was not changed)") from None
    yaml = round_trip_yaml()
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
    expected = loaded.fingerprint if loaded else MISSING
    if store is None:
        save_if_unchanged(providers_file, text, expected)
    else:
        key = history_key(providers_file, root or providers_file.parent)
        action = "local model file" if value else "local model: the bundled one"
        save_versioned(
            store, providers_file, key, providers_file.name, text, expected, action=action
        )
    if value:
        return f"The local provider now uses {value} (saved in {providers_file})."
    return f"The local provider is back to the bundled SmolLM2 (saved in {providers_file})."


def _edit_local(data: Any, value: str, *, where: str) -> bool:
    """Set or remove providers.local.model_path in parsed round-trip YAML; False if unchanged."""
    from ruamel.yaml.comments import CommentedMap

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


def history_key(path: Path, root: Path) -> str:
    """providers.yaml's name in the file history: relative to the workspace, as git shows it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
