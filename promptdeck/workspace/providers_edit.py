"""Providers added, edited and removed in Settings: `providers.yaml` written back.

read_providers     the file's own providers as the form shows them, with its fingerprint
provider_entry     the form's fields -> a ProviderEntry, each checked (errors name the field)
add_provider       a new entry (and prices for its models) after the file's last provider
update_provider    the form's keys of one entry set, its other keys and comments kept
remove_provider    an entry and its prices gone

Every save is checked like loading (`parse_providers_text` on the result, so a file the
app writes is one the app reads), refused if the file changed since it was loaded
(FileConflictError), written atomically and recorded in the store's file history
(`fileio.save_versioned`). A key is never written: an entry names the variable that holds
it (`api_key_env`), and `send_key_to` is required with it.

The rest of the file stays byte for byte: each changed entry is rendered by ruamel.yaml
(round-trip mode, the file's indentation) and spliced in over its own lines
(`workspace.yamlsplice`), so adding a provider is one block in `git diff` (two when the
file already has a `prices:` section below and the new provider has prices).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from promptdeck.errors import ConfigError
from promptdeck.model.pricing import Price
from promptdeck.model.registry import KINDS, ProviderConfig, builtin_configs
from promptdeck.model.secrets import check_key_name, url_host
from promptdeck.workspace.fileio import (
    MISSING,
    History,
    NotUTF8,
    check_unchanged,
    decode_text,
    fingerprint,
    save_versioned,
)
from promptdeck.workspace.providers_file import (
    check_base_url,
    history_key,
    parse_providers_text,
    parse_send_key_to,
)
from promptdeck.workspace.yamlfile import parse_yaml
from promptdeck.workspace.yamlsplice import Change, edit_text

PROVIDER_KINDS = KINDS  # what the form offers (pages do not import the registry)
PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_PROVIDER_CONCURRENCY = 256
SECTIONS = ("providers", "prices")


@dataclass(frozen=True)
class ProviderEntry:
    """A provider as the Settings form edits it: what providers.yaml says of it. Never a
    key: `api_key_env` is the NAME of the variable that holds it."""

    name: str
    kind: str = "openai"
    base_url: str = ""
    api_key_env: str = ""
    send_key_to: tuple[str, ...] = ()
    max_concurrency: int | None = None  # None: not set (the default)
    free: bool = False
    api_version: str = ""  # azure
    prices: Mapping[str, Price] = field(default_factory=dict)  # model -> USD per Mtok


@dataclass(frozen=True)
class ProvidersDoc:
    """providers.yaml loaded for editing: the providers it defines, and the fingerprint to
    hand back when saving (MISSING: there is no file yet)."""

    path: Path
    fingerprint: str
    entries: Mapping[str, ProviderEntry]

    def editable(self, name: str) -> bool:
        """Can the form edit it? One overriding a built-in provider is edited in the file."""
        return name in self.entries and name not in builtin_configs()


def read_providers(path: Path) -> ProvidersDoc:
    """The file's providers as the form shows them; ConfigError if the file cannot be used."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ProvidersDoc(path, MISSING, {})
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read providers file: {exc.strerror}") from None
    try:
        text = decode_text(raw)
    except NotUTF8 as exc:
        raise ConfigError(f"{path}: cannot read providers file: {exc}") from None
    configs, prices = parse_providers_text(text, path)
    bodies = (parse_yaml(text) or {}).get("providers") or {}
    entries = {
        str(name): _entry_of(str(name), body, configs[str(name)], prices)
        for name, body in bodies.items()
    }
    return ProvidersDoc(path, fingerprint(raw), entries)


def _entry_of(
    name: str, body: Mapping[str, Any], cfg: ProviderConfig, prices: Mapping[str, Price]
) -> ProviderEntry:
    concurrency = body.get("max_concurrency")
    return ProviderEntry(
        name,
        cfg.kind,
        str(body.get("base_url") or ""),
        str(body.get("api_key_env") or ""),
        tuple(cfg.key_hosts or ()) if "send_key_to" in body else (),
        concurrency if isinstance(concurrency, int) else None,
        body.get("free") is True,
        str(body.get("api_version") or ""),
        {ref.split("/", 1)[1]: p for ref, p in prices.items() if ref.startswith(f"{name}/")},
    )


def provider_entry(
    name: str,
    kind: str,
    *,
    base_url: str = "",
    key_variable: str = "",
    send_key_to: str = "",
    max_concurrency: float | None = None,
    free: bool = False,
    api_version: str = "",
    prices: str = "",
) -> ProviderEntry:
    """The Settings form's fields as an entry, each checked; a ConfigError starts with the
    label of the field at fault (and has its providers.yaml key as `field`)."""
    if max_concurrency is not None and not float(max_concurrency).is_integer():
        raise ConfigError("Max concurrency: a whole number of calls", field="max_concurrency")
    entry = ProviderEntry(
        name.strip(),
        kind,
        base_url.strip(),
        key_variable.strip(),
        tuple(h for h in re.split(r"[,\s]+", send_key_to) if h),
        None if max_concurrency is None else int(max_concurrency),
        bool(free),
        api_version.strip(),
        parse_prices(prices),
    )
    check_entry(entry)
    return entry


def check_entry(entry: ProviderEntry) -> None:
    """ConfigError naming the form's field when the entry cannot be saved."""
    if not PROVIDER_NAME.fullmatch(entry.name):
        raise ConfigError(
            "Name: letters, digits, '-', '_' and '.' (up to 64), e.g. staging; it is the "
            "part before the '/' of a model reference (staging/my-model)",
            field="name",
        )
    if entry.kind not in KINDS:
        raise ConfigError(f"Kind: one of {', '.join(KINDS)}", field="kind")
    if entry.kind != "local":
        if not entry.base_url:
            raise ConfigError(
                f"Base URL: required for kind {entry.kind}, e.g. http://127.0.0.1:8000/v1",
                field="base_url",
            )
        if not entry.base_url.lower().startswith(("http://", "https://")):
            raise ConfigError(
                "Base URL: it starts with http:// or https://, e.g. http://127.0.0.1:8000/v1",
                field="base_url",
            )
        try:
            check_base_url("Base URL", entry.base_url)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(": 'base_url'", ":", 1), field="base_url") from None
    if entry.api_key_env:
        check_key_name(entry.api_key_env, "Key variable")
        if entry.kind != "local" and not entry.send_key_to:
            host = url_host(entry.base_url) or "api.example.com"
            raise ConfigError(
                f"Send key to: the hosts the key in {entry.api_key_env} may be sent to are "
                f"required with a key variable, e.g. {host} (the base URL's host)",
                field="send_key_to",
            )
    try:
        parse_send_key_to("Send key to", list(entry.send_key_to))
    except ConfigError as exc:
        message = str(exc).replace(": 'send_key_to':", ":", 1)
        raise ConfigError(message, field="send_key_to") from None
    if entry.max_concurrency is not None and not (
        1 <= entry.max_concurrency <= MAX_PROVIDER_CONCURRENCY
    ):
        raise ConfigError(
            f"Max concurrency: from 1 to {MAX_PROVIDER_CONCURRENCY} calls in flight",
            field="max_concurrency",
        )
    if entry.api_version and entry.kind != "azure":
        raise ConfigError("API version: only for kind azure; leave it empty", field="api_version")
    if entry.kind == "azure" and not entry.api_version:
        raise ConfigError(
            "API version: required for kind azure, e.g. 2024-10-21", field="api_version"
        )


def parse_prices(text: str) -> dict[str, Price]:
    """One model a line, `model input output` in USD per million tokens (`#` starts a
    comment) -> {model: Price}; ConfigError names the line."""
    out: dict[str, Price] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"Prices, line {number}"
        if len(words) != 3:
            raise ConfigError(
                f"{where}: write `model input output` (USD per million tokens), "
                "e.g. gpt-4o-mini 0.15 0.60",
                field="prices",
            )
        model = words[0].removesuffix(":")
        try:
            values = [float(w.removeprefix("$")) for w in words[1:]]
        except ValueError:
            raise ConfigError(
                f"{where}: the prices of {model} are not numbers", field="prices"
            ) from None
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ConfigError(f"{where}: prices are 0 or more", field="prices")
        if not model or model in out:
            raise ConfigError(f"{where}: {model} has a price already", field="prices")
        out[model] = Price(values[0], values[1])
    return out


def format_prices(prices: Mapping[str, Price]) -> str:
    """The form's text for `prices` (parse_prices reads it back)."""
    return "\n".join(f"{m} {p.input_per_mtok:g} {p.output_per_mtok:g}" for m, p in prices.items())


def add_provider(
    store: History, root: Path, path: Path, entry: ProviderEntry, expected: str
) -> str:
    """Add `entry` (and its prices) to providers.yaml, which must still be as loaded
    (`expected`, else FileConflictError); the rest of the file is kept as it is. Returns
    what was done."""
    check_entry(entry)
    if entry.name in builtin_configs():
        raise ConfigError(
            f"Name: '{entry.name}' is a built-in provider; pick another name", field="name"
        )

    def plan(doc: CommentedMap) -> list[Change]:
        if entry.name in (doc.get("providers") or {}):
            raise ConfigError(
                f"Name: {path.name} has a provider '{entry.name}' already: edit it, or pick "
                "another name",
                field="name",
            )
        return [Change("providers", entry.name, _entry_map(entry, None)), *_prices(doc, entry)]

    _save(store, root, path, expected, plan, action=f"add provider {entry.name}")
    return f"Added provider '{entry.name}' to {path}: use it as {entry.name}/<model>."


def update_provider(
    store: History, root: Path, path: Path, entry: ProviderEntry, expected: str
) -> str:
    """Save `entry` over the provider of that name: the keys the form edits are set (an
    empty one removed), the others and the entry's comments kept; its prices replaced."""
    check_entry(entry)

    def plan(doc: CommentedMap) -> list[Change]:
        body = (doc.get("providers") or {}).get(entry.name)
        if entry.name in builtin_configs() or not isinstance(body, CommentedMap):
            raise ConfigError(f"{path}: no provider '{entry.name}' of its own to edit")
        return [Change("providers", entry.name, _entry_map(entry, body)), *_prices(doc, entry)]

    _save(store, root, path, expected, plan, action=f"edit provider {entry.name}")
    return f"Saved provider '{entry.name}' in {path}."


def remove_provider(store: History, root: Path, path: Path, name: str, expected: str) -> str:
    """Remove the provider `name` and its prices; the earlier file stays in the history."""

    def plan(doc: CommentedMap) -> list[Change]:
        if name not in (doc.get("providers") or {}):
            raise ConfigError(f"{path}: there is no provider '{name}' to remove")
        return [Change("providers", name, None), *_prices(doc, ProviderEntry(name))]

    _save(store, root, path, expected, plan, action=f"remove provider {name}")
    return f"Removed provider '{name}' from {path} (the file history keeps the earlier version)."


def _entry_map(entry: ProviderEntry, body: CommentedMap | None) -> CommentedMap:
    """The entry as YAML: `body` (the file's, comments and other keys kept) updated in place,
    or a new block mapping. A value that did not change keeps its quoting."""
    hosts = CommentedSeq(entry.send_key_to)
    hosts.fa.set_flow_style()
    values: dict[str, Any] = {
        "kind": entry.kind,
        "base_url": entry.base_url or None,
        "api_key_env": entry.api_key_env or None,
        "send_key_to": hosts or None,
        "max_concurrency": entry.max_concurrency,
        "free": True if entry.free else (False if body and "free" in body else None),
        "api_version": entry.api_version or None,
    }
    out = CommentedMap() if body is None else body
    for key, value in values.items():
        now = out.get(key)
        if value is None:
            out.pop(key, None)
        elif key == "send_key_to" and isinstance(now, CommentedSeq):
            if list(now) != list(value):  # the file's list, in its own style
                del now[:]
                now.extend(value)
        elif now != value or isinstance(now, bool) != isinstance(value, bool):  # 1 == True
            out[key] = value
    return out


def _prices(doc: CommentedMap, entry: ProviderEntry) -> list[Change]:
    """The prices section's changes for `entry`'s models (all removed for an empty one)."""
    section = doc.get("prices") or {}
    changes = [
        Change("prices", str(ref), None)
        for ref in section
        if str(ref).startswith(f"{entry.name}/") and str(ref).split("/", 1)[1] not in entry.prices
    ]
    for model, price in entry.prices.items():
        ref = f"{entry.name}/{model}"
        now = section.get(ref)
        if isinstance(now, dict) and [now.get("input"), now.get("output")] == [
            price.input_per_mtok,
            price.output_per_mtok,
        ]:
            continue
        value = CommentedMap(input=price.input_per_mtok, output=price.output_per_mtok)
        value.fa.set_flow_style()
        changes.append(Change("prices", ref, value))
    return changes


def _save(
    store: History,
    root: Path,
    path: Path,
    expected: str,
    plan: Callable[[CommentedMap], list[Change]],
    *,
    action: str,
) -> None:
    """Edit providers.yaml as `plan` says, check the result loads, and save it with history."""
    raw = check_unchanged(path, expected)  # a changed file is refused before any work
    try:
        text = "" if raw is None else decode_text(raw, keep_bom=True)
    except NotUTF8 as exc:
        raise ConfigError(f"{path}: {exc} (it was not changed)") from None
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    text = text.removeprefix("\ufeff")
    crlf = "\r\n" in text
    new = edit_text(text.replace("\r\n", "\n"), plan, where=str(path), sections=SECTIONS)
    if crlf:  # Windows line endings stay, so git shows only the lines that changed
        new = new.replace("\n", "\r\n")
    parse_providers_text(new, path)  # the file must load as the app will load it
    key = history_key(path, root)
    save_versioned(store, path, key, path.name, bom + new, expected, action=action)
