"""The workspace's saved preferences (the Settings page), kept in the store, validated.

Settings               default judge model, calls in flight per provider, response cache
load_settings / save_settings      read and write them (one row per setting)
"""

from __future__ import annotations

from dataclasses import dataclass

from promptdeck.errors import ConfigError
from promptdeck.model.refs import split_model_ref
from promptdeck.store.db import Store

# Store keys (the settings table is shared: plain names, one per setting).
JUDGE_MODEL = "judge_model"
CONCURRENCY = "concurrency"
USE_CACHE = "use_cache"
MAX_CONCURRENCY = 32


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
