"""Small builders shared by tests."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from promptdeck.model.pricing import PriceTable
from promptdeck.model.registry import ProviderConfig, Registry, builtin_configs
from promptdeck.model.secrets import Secrets
from promptdeck.workspace.prompts import PromptVariant, variant_from_dict
from tests.llm_server import LLMServer


def server_registry(server: LLMServer, *, key: str | None = None) -> Registry:
    """The built-in providers plus `fake` (OpenAI wire format) and `fakeclaude` (Anthropic)."""
    configs = builtin_configs()
    configs["fake"] = ProviderConfig(
        "fake", "openai", server.openai_url, "FAKE_KEY" if key else None, requires_key=bool(key)
    )
    configs["fakeclaude"] = ProviderConfig("fakeclaude", "anthropic", server.url, "FAKE_KEY")
    secrets = Secrets(extra={"FAKE_KEY": key}.get if key else None)
    return Registry(configs, secrets, PriceTable(free_providers=frozenset({"local"})))


def variant(name: str, model: str, user: str = "{{ input }}", **extra: object) -> PromptVariant:
    data: dict[str, object] = {"model": model, "user": user, **extra}
    return variant_from_dict(data, name=name, path=f"prompts/{name}.yaml")


def shown(markdown: object) -> str:
    """What a reader sees of Markdown the app escaped with `ui.plain`: the text, without the
    backslashes that keep its punctuation literal (CommonMark escapes)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(markdown))


def wait_until_serving(
    url: str, process: subprocess.Popen[Any], log: Path, within_s: float
) -> None:
    """Until GET `url` answers 2xx; fails at once, with the log's tail, if `process` exits
    first or nothing answers within `within_s` (a deadline, not a wait: it returns as soon
    as the server is up)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.TransportError:
            pass  # not listening yet
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{url} did not answer in {within_s:g} s:\n{log.read_text()[-3000:]}"
            )
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.1)  # wakes at once if it exits
