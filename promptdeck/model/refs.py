"""Model references: `provider/model`, e.g. `local/smollm2` or `openai/gpt-4o-mini`."""

from __future__ import annotations

from promptdeck.errors import ConfigError

LOCAL_PROVIDER = "local"  # the embedded llama.cpp provider's built-in name


def split_model_ref(ref: str) -> tuple[str, str]:
    """('provider', 'model'); ConfigError when `ref` does not look like provider/model."""
    provider, sep, model = ref.partition("/")
    if not sep or not provider or not model:
        raise ConfigError(f"model reference {ref!r} must look like 'provider/model'")
    return provider, model


def provider_of(ref: str) -> str:
    """The provider part of a reference; a malformed one names itself (for grouping)."""
    try:
        return split_model_ref(ref)[0]
    except ConfigError:
        return ref
