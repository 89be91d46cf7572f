"""Which providers exist, how they are configured, and model reference resolution.

Built-in presets need no file; `providers.yaml` (read by `workspace.providers_file`) adds or
overrides providers and prices. A key is referenced by the NAME of its environment variable,
and so is a secret header (`headers_env: {Header-Name: ENV_VAR}`).

Keys go only where they belong. A provider's key and its secret headers are sent only to
the hosts in its `key_hosts` (`send_key_to` in providers.yaml):

- a preset's are its own host(s): OPENAI_API_KEY goes to api.openai.com (and to the host of
  OPENAI_BASE_URL when the environment moves it), AZURE_OPENAI_API_KEY to *.openai.azure.com,
  *.cognitiveservices.azure.com and AZURE_OPENAI_ENDPOINT's host, and so on. providers.yaml
  moving a preset's `base_url` elsewhere does not move its key: that takes `send_key_to`;
- a provider that providers.yaml adds and that names an environment variable must say
  where its value may go (`send_key_to: [host]`);
- a config built in code (tests) with `key_hosts=None` sends it to the host of its base_url.

Otherwise the request is refused before anything is sent (a ConfigError naming what to
add), and Settings and Home show "refused: ..." where they show the key's host.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from promptdeck.errors import ConfigError
from promptdeck.model.formats import FormatMemory
from promptdeck.model.pricing import PriceTable
from promptdeck.model.refs import split_model_ref
from promptdeck.model.secrets import (
    Secrets,
    display_url,
    key_refusal,
    mask_secret,
    url_host,
)
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
    headers_env: Mapping[str, str] = field(default_factory=dict)  # header -> env-var NAME
    # Where the key and secret headers may be sent (see the module docstring); None: the
    # host of base_url.
    key_hosts: tuple[str, ...] | None = None

    def __repr__(self) -> str:  # never a user:password@ of the base URL
        shown = display_url(self.base_url)
        return f"ProviderConfig(name={self.name!r}, kind={self.kind!r}, base_url={shown!r})"

    @property
    def secret_envs(self) -> tuple[str, ...]:
        """The environment variables whose values this provider sends."""
        key = (self.api_key_env,) if self.api_key_env else ()
        return (*key, *self.headers_env.values())

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        return (url_host(self.base_url),) if self.key_hosts is None else self.key_hosts

    def key_refusal(self) -> str | None:
        """Why its secrets may not go to its base URL; None when they may (or it has none)."""
        if self.kind == "local" or not self.base_url:
            return None
        return key_refusal(self.name, self.base_url, self.allowed_hosts, self.secret_envs)


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _hosts(*urls: str) -> tuple[str, ...]:
    """The hosts of these URLs (empty ones skipped), each once."""
    return tuple(dict.fromkeys(url_host(u) for u in urls if u and url_host(u)))


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
            key_hosts=_hosts("https://api.openai.com", _env("OPENAI_BASE_URL", "")),
        ),
        ProviderConfig(
            "anthropic",
            "anthropic",
            _env("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
            "ANTHROPIC_API_KEY",
            label="Anthropic",
            key_hosts=_hosts("https://api.anthropic.com", _env("ANTHROPIC_BASE_URL", "")),
        ),
        ProviderConfig(
            "azure",
            "azure",
            os.environ.get("AZURE_OPENAI_ENDPOINT", ""),
            "AZURE_OPENAI_API_KEY",
            api_version=_env("OPENAI_API_VERSION", "2024-10-21"),
            label="Azure OpenAI",
            key_hosts=(
                "*.openai.azure.com",
                "*.cognitiveservices.azure.com",
                *_hosts(_env("AZURE_OPENAI_ENDPOINT", "")),
            ),
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
    # A preset without hosts of its own (set above) sends its key only to its base URL's
    # host as the environment made it; a file moving base_url does not move the key.
    return {
        p.name: p if p.key_hosts is not None else replace(p, key_hosts=_hosts(p.base_url))
        for p in presets
    }


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    label: str
    kind: str
    base_url: str  # as shown: a user:password@ and a query masked
    key_env: str | None
    key_display: str  # masked key, "missing", "optional, not set" or "not needed"
    usable: bool
    # Where its key (and secret headers) go: a host, "" when it sends none, or
    # "refused: <why and what to add>".
    key_goes_to: str = ""
    # A server on this machine (ollama, vLLM, ...): "listening" or "not running", checked by
    # opening its port; "" for the embedded model and servers elsewhere (not checked).
    server: str = ""

    @property
    def ready(self) -> bool:
        """Configured, and not a local server that is known to be down."""
        return self.usable and self.server != "not running"


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
        self.formats = FormatMemory()  # what each server accepts as response_format, learnt
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
            refusal = cfg.key_refusal()
            if refusal is not None and (key or cfg.requires_key or cfg.headers_env):
                usable = False  # every call would be refused
            out.append(
                ProviderStatus(
                    cfg.name,
                    cfg.label or cfg.name,
                    cfg.kind,
                    display_url(cfg.base_url),
                    cfg.api_key_env,
                    display,
                    usable,
                    _key_goes_to(cfg, refusal),
                    _local_server(cfg.base_url) if cfg.kind != "local" else "",
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
            "headers_env": {
                header: (env, self.secrets.get(env)) for header, env in cfg.headers_env.items()
            },
            "key_hosts": cfg.allowed_hosts,
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


def _key_goes_to(cfg: ProviderConfig, refusal: str | None) -> str:
    """The Settings / Home column: the host its secrets go to, "" or "refused: ..."."""
    if not cfg.secret_envs or cfg.kind == "local":
        return ""
    if refusal is not None:
        host = url_host(cfg.base_url)
        return (
            f"refused: {', '.join(cfg.secret_envs)} not sent to {host}; add send_key_to: [{host}]"
        )
    return url_host(cfg.base_url) or "(no base URL)"


LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _local_server(base_url: str | None) -> str:
    """Is a server listening at `base_url`, when it is on this machine? Only a TCP connect
    (nothing is sent): refused at once when nothing listens."""
    if not base_url:
        return ""
    parsed = urlsplit(base_url)
    if parsed.hostname not in LOOPBACK:
        return ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=0.3):
            return "listening"
    except OSError:
        return "not running"
