"""Which providers exist, how they are configured, and model reference resolution.

Built-in presets need no file; `providers.yaml` (see ARCHITECTURE.md) adds or overrides
providers and prices. A key is referenced by the NAME of its environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from promptdeck.errors import ConfigError
from promptdeck.model.pricing import Price, PriceTable
from promptdeck.model.secrets import Secrets, mask_secret
from promptdeck.model.types import DEFAULT_TIMEOUTS, Provider, Timeouts
from promptdeck.workspace.yamlfile import parse_yaml, read_text

KINDS = ("openai", "azure", "anthropic", "local")


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: str
    base_url: str = ""
    api_key_env: str | None = None
    requires_key: bool = True
    free: bool = False  # runs on the user's own hardware: cost 0
    headers: Mapping[str, str] = field(default_factory=dict)
    max_concurrency: int = 4
    api_version: str | None = None  # azure
    model_path: str | None = None  # local
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    label: str = ""


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def builtin_configs() -> dict[str, ProviderConfig]:
    """Presets; base URLs can be moved with the usual environment variables."""
    ollama = _env("OLLAMA_HOST", "http://127.0.0.1:11434").rstrip("/")
    if not ollama.startswith("http"):
        ollama = "http://" + ollama
    presets = [
        ProviderConfig(
            "local",
            "local",
            requires_key=False,
            free=True,
            max_concurrency=3,
            model_path=os.environ.get("PROMPTDECK_LOCAL_MODEL"),
            label="Embedded SmolLM2 (llama.cpp, offline)",
        ),
        ProviderConfig(
            "openai",
            "openai",
            _env("OPENAI_BASE_URL", "https://api.openai.com/v1"),
            "OPENAI_API_KEY",
            label="OpenAI",
        ),
        ProviderConfig(
            "anthropic",
            "anthropic",
            _env("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
            "ANTHROPIC_API_KEY",
            label="Anthropic",
        ),
        ProviderConfig(
            "azure",
            "azure",
            os.environ.get("AZURE_OPENAI_ENDPOINT", ""),
            "AZURE_OPENAI_API_KEY",
            api_version=_env("OPENAI_API_VERSION", "2024-10-21"),
            label="Azure OpenAI",
        ),
        ProviderConfig(
            "ollama", "openai", ollama + "/v1", requires_key=False, free=True, label="Ollama"
        ),
        ProviderConfig(
            "vllm",
            "openai",
            _env("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"),
            "VLLM_API_KEY",
            requires_key=False,
            label="vLLM",
        ),
        ProviderConfig(
            "lmstudio",
            "openai",
            _env("LMSTUDIO_BASE_URL", "http://127.0.0.1:1234/v1"),
            requires_key=False,
            free=True,
            label="LM Studio",
        ),
        ProviderConfig(
            "llamacpp",
            "openai",
            _env("LLAMACPP_BASE_URL", "http://127.0.0.1:8080/v1"),
            requires_key=False,
            free=True,
            label="llama.cpp server",
        ),
        ProviderConfig(
            "openrouter",
            "openai",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            label="OpenRouter",
        ),
        ProviderConfig(
            "groq", "openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY", label="Groq"
        ),
        ProviderConfig(
            "together",
            "openai",
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            label="Together",
        ),
        ProviderConfig(
            "gemini",
            "openai",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "GEMINI_API_KEY",
            label="Gemini (OpenAI-compatible)",
        ),
    ]
    return {p.name: p for p in presets}


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
}


def load_providers_file(path: Path) -> tuple[dict[str, ProviderConfig], dict[str, Price]]:
    """Parse providers.yaml; errors name the file, the provider and the key."""
    try:
        data = parse_yaml(read_text(path)) or {}
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
    if "timeout" in body or "read_timeout" in body:
        t = cfg.timeouts
        connect = float(_typed(where, "timeout", body.get("timeout", t.connect), (int, float)))
        read = float(_typed(where, "read_timeout", body.get("read_timeout", t.read), (int, float)))
        updates["timeouts"] = Timeouts(connect=connect, read=read)
    if "api_key_env" in body and "requires_key" not in body:
        updates["requires_key"] = True
    cfg = replace(cfg, name=name, kind=kind, **updates)
    if kind != "local" and not cfg.base_url:
        raise ConfigError(f"{where}: 'base_url' is required for kind {kind}")
    return cfg


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


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    label: str
    kind: str
    base_url: str
    key_env: str | None
    key_display: str  # masked key, "missing", "optional, not set" or "not needed"
    usable: bool


def split_model_ref(ref: str) -> tuple[str, str]:
    provider, sep, model = ref.partition("/")
    if not sep or not provider or not model:
        raise ConfigError(f"model reference {ref!r} must look like 'provider/model'")
    return provider, model


class Registry:
    """Provider configs + secrets + prices; builds each provider once."""

    def __init__(
        self,
        configs: Mapping[str, ProviderConfig],
        secrets: Secrets,
        prices: PriceTable,
    ) -> None:
        self.configs = dict(configs)
        self.secrets = secrets
        self.prices = prices
        self._providers: dict[str, Provider] = {}

    @classmethod
    def from_workspace(cls, providers_file: Path, secrets: Secrets) -> Registry:
        configs = builtin_configs()
        overrides: dict[str, Price] = {}
        if providers_file.is_file():
            extra, overrides = load_providers_file(providers_file)
            configs.update(extra)
        free = frozenset(n for n, c in configs.items() if c.free)
        return cls(configs, secrets, PriceTable(free_providers=free).with_overrides(overrides))

    def config(self, name: str) -> ProviderConfig:
        try:
            return self.configs[name]
        except KeyError:
            known = ", ".join(sorted(self.configs))
            raise ConfigError(
                f"unknown provider '{name}'. Known: {known}. Add it to providers.yaml."
            ) from None

    def resolve(self, model_ref: str) -> tuple[Provider, str]:
        """The provider for 'provider/model' and the model name it expects."""
        name, model = split_model_ref(model_ref)
        return self.provider(name), model

    def provider(self, name: str) -> Provider:
        """The provider called `name`, built on first use."""
        if name not in self._providers:
            self._providers[name] = self._build(self.config(name))
        return self._providers[name]

    def statuses(self) -> list[ProviderStatus]:
        out = []
        for cfg in self.configs.values():
            key = self.secrets.get(cfg.api_key_env) if cfg.api_key_env else None
            display = mask_secret(key) if cfg.api_key_env else "not needed"
            if not key and cfg.api_key_env and not cfg.requires_key:
                display = "optional, not set"  # e.g. a vLLM server started without --api-key
            usable = bool(key) or not cfg.requires_key
            if cfg.kind == "azure" and not cfg.base_url:
                usable = False
            out.append(
                ProviderStatus(
                    cfg.name,
                    cfg.label or cfg.name,
                    cfg.kind,
                    cfg.base_url,
                    cfg.api_key_env,
                    display,
                    usable,
                )
            )
        return out

    def _build(self, cfg: ProviderConfig) -> Provider:
        # Imported here so that listing providers never loads llama.cpp or httpx.
        key = self.secrets.get(cfg.api_key_env) if cfg.api_key_env else None
        common: dict[str, Any] = {
            "api_key": key,
            "api_key_env": cfg.api_key_env,
            "headers": dict(cfg.headers),
            "timeouts": cfg.timeouts,
        }
        if cfg.kind == "local":
            from promptdeck.model.local import LocalProvider

            return LocalProvider(cfg.name, cfg.model_path, instances=cfg.max_concurrency)
        if cfg.kind == "anthropic":
            from promptdeck.model.anthropic import AnthropicProvider

            return AnthropicProvider(cfg.name, cfg.base_url, **common)
        if cfg.kind == "azure":
            from promptdeck.model.openai_compat import AzureProvider

            if not cfg.base_url:
                raise ConfigError("azure: set AZURE_OPENAI_ENDPOINT or base_url in providers.yaml")
            return AzureProvider(
                cfg.name, cfg.base_url, api_version=cfg.api_version or "", **common
            )
        from promptdeck.model.openai_compat import OpenAIProvider

        return OpenAIProvider(cfg.name, cfg.base_url, requires_key=cfg.requires_key, **common)
