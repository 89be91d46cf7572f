"""The connection test of the Settings page: one cheap, real request to a provider.

HTTP providers list their models (no tokens spent); the embedded model is loaded and asked
for one token through the call policy, like any other call. The result says what is wrong
(key rejected, no key, cannot connect, timed out) with the measured round trip, and never
holds the key: it is masked even where a server echoes it back.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from promptdeck.errors import AuthError, ConfigError, HTTPStatusError, ProviderError
from promptdeck.model.http import HTTPProvider, run_with_client
from promptdeck.model.local import MODEL_NAME, local_model_status
from promptdeck.model.policy import CallPolicy
from promptdeck.model.registry import ProviderConfig, Registry
from promptdeck.model.secrets import redact, url_secrets, url_server
from promptdeck.model.types import Message, Timeouts

# A connection test should fail fast rather than wait for a generation's read timeout.
PROBE_CONNECT_S = 5.0
PROBE_READ_S = 15.0


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


def probe_connection(registry: Registry, provider_name: str) -> ConnectionResult:
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
    hidden = [secret, *map(registry.secrets.get, cfg.headers_env.values())]
    hidden += url_secrets(cfg.base_url)
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
    except ConfigError as exc:  # a key refused for this host, a header that cannot be sent
        return ConnectionResult(False, _hide(f"Not sent: {exc}", hidden))
    except ProviderError as exc:
        if isinstance(exc, AuthError) and exc.status is None:  # nothing was sent
            headline = "No key" if secret is None else "Key unusable"
            return ConnectionResult(False, _hide(f"{headline}: {exc}", hidden))
        return ConnectionResult(False, _hide(_failure(exc), hidden), _ms_since(started))
    ms = _ms_since(started)
    key = f"the key in {cfg.api_key_env} was accepted, " if secret else ""
    shown = ", ".join(models[:3]) + (", …" if len(models) > 3 else "")
    listed = f"{len(models)} models listed ({shown})" if models else "no models listed"
    server = url_server(provider.base_url)  # never a user:password@
    message = f"Connected to {server} in {ms} ms: {key}{listed}."
    return ConnectionResult(True, _hide(message, hidden), ms)


def _hide(text: str, secrets: list[str | None]) -> str:
    """The secrets masked, also as a server echoing them inside JSON writes them (\\/ for /)."""
    forms = [
        form
        for secret in secrets
        if secret
        for form in (secret, json.dumps(secret)[1:-1], secret.replace("/", "\\/"))
    ]
    return redact(text, forms)


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
    policy = CallPolicy(registry, max_retries=0)
    started = time.perf_counter()
    answer = run_with_client(
        policy.call(f"{cfg.name}/{MODEL_NAME}", (Message("user", "Hi"),), {"max_tokens": 1})
    )
    if not answer.result.ok:
        message = f"The model did not load: {answer.result.error}"
        return ConnectionResult(False, message, _ms_since(started))
    ms = _ms_since(started)
    return ConnectionResult(True, f"Loaded and answered in {ms} ms: {status}", ms)


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
