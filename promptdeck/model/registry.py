"""Which providers exist, how they are configured, and model reference resolution.

Built-in presets need no file; `providers.yaml` (read by `workspace.providers_file`) adds or
overrides providers and prices. A key is referenced by the NAME of its environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from promptdeck.errors import ConfigError
from promptdeck.model.pricing import PriceTable
from promptdeck.model.refs import split_model_ref
from promptdeck.model.secrets import Secrets, mask_secret
from promptdeck.model.types import DEFAULT_TIMEOUTS, Provider, Timeouts

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


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    label: str
    kind: str
    base_url: str
    key_env: str | None
    key_display: str  # masked key, "missing", "optional, not set" or "not needed"
    usable: bool


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

    def is_local(self, model_ref: str) -> bool:
        """Does this model run in-process on the embedded llama.cpp (the `local` kind)?"""
        try:
            name, _ = split_model_ref(model_ref)
        except ConfigError:
            return False
        config = self.configs.get(name)
        return config is not None and config.kind == "local"

    def is_demo_model(self, model_ref: str) -> bool:
        """Is this the bundled SmolLM2-135M (a local model with no GGUF file of the user's)?
        Its verdicts show the pipeline working, not a judgement to ship on."""
        return self.is_local(model_ref) and self.local_model_file(model_ref) is None

    def knows(self, model_ref: str) -> bool:
        """Is there a provider for this model reference?"""
        try:
            return split_model_ref(model_ref)[0] in self.configs
        except ConfigError:
            return False

    def local_model_file(self, model_ref: str) -> str | None:
        """The GGUF file a local model reference runs on: `local/<path>.gguf` names its own,
        else the provider's configured `model_path` (None: the bundled SmolLM2)."""
        name, model = split_model_ref(model_ref)
        return model if model.endswith(".gguf") else self.config(name).model_path

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
