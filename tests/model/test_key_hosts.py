"""Keys only where they belong: a provider's key (and secret headers) go only to the hosts
allowed for it. A preset's key goes to its own host; providers.yaml sends it elsewhere only
with `send_key_to`; a provider the file adds must say where its key may go. A refused
request is refused before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptdeck.errors import ConfigError
from promptdeck.model.http import run_with_client
from promptdeck.model.openai_compat import OpenAIProvider
from promptdeck.model.policy import CallPolicy
from promptdeck.model.probe import probe_connection
from promptdeck.model.registry import Registry, builtin_configs
from promptdeck.model.secrets import Secrets, host_allowed, split_host
from promptdeck.model.types import ChatRequest, Message
from promptdeck.workspace.providers_file import load_providers_file, open_registry
from tests.llm_server import LLMServer

OPENAI_KEY = "sk-proj-PDTEST-0123456789abcdef0123"
CI_TOKEN = "ghp_PDTEST0123456789abcdef0123456789"
HI = (Message("user", "hi"),)


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("CI_TOKEN", CI_TOKEN)
    for moved in ("OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "VLLM_BASE_URL"):
        monkeypatch.delenv(moved, raising=False)


def registry(tmp_path: Path, providers: str) -> Registry:
    path = tmp_path / "providers.yaml"
    path.write_text("providers:\n" + providers, encoding="utf-8")
    return open_registry(path, Secrets())


def call(reg: Registry, model_ref: str) -> tuple[str | None, str | None]:
    """(error kind, error) of one call through the one call path."""
    answer = run_with_client(CallPolicy(reg, max_retries=0).call(model_ref, HI, {}))
    return answer.result.error_kind, answer.result.error


@pytest.mark.parametrize(
    ("url", "hosts", "allowed"),
    [
        ("https://api.openai.com/v1", ["api.openai.com"], True),
        ("https://API.OpenAI.com:443/v1", ["api.openai.com"], True),
        ("https://api.openai.com.evil.test/v1", ["api.openai.com"], False),
        ("https://evil.test/api.openai.com", ["api.openai.com"], False),
        ("https://api.openai.com@evil.test/v1", ["api.openai.com"], False),  # a userinfo trick
        ("http://127.0.0.1:8000/v1", ["127.0.0.1:8000"], True),
        ("http://127.0.0.1:8001/v1", ["127.0.0.1:8000"], False),
        ("http://127.0.0.1:8001/v1", ["127.0.0.1"], True),  # no port named: any port
        ("https://x.example.com", ["x.example.com:443"], True),  # the scheme's default port
        ("http://x.example.com", ["x.example.com:443"], False),
        ("https://me.openai.azure.com/", ["*.openai.azure.com"], True),
        ("https://openai.azure.com/", ["*.openai.azure.com"], False),
        ("https://evilopenai.azure.com/", ["*.openai.azure.com"], False),
        ("http://[::1]:8080/v1", ["[::1]:8080"], True),
        ("http://127.0.0.1:8000/v1", [], False),
        ("not a url", ["not a url"], False),
    ],
)
def test_host_allowed(url: str, hosts: list[str], allowed: bool) -> None:
    assert host_allowed(url, hosts) is allowed


@pytest.mark.parametrize(
    "entry", ["https://api.example.com", "api.example.com/v1", "", "a b", "x:99999", "*x.com"]
)
def test_a_send_key_to_entry_is_a_host(entry: str) -> None:
    with pytest.raises(ValueError):
        split_host(entry)


def test_presets_send_their_key_to_their_own_hosts_only() -> None:
    configs = builtin_configs()
    assert configs["openai"].key_hosts == ("api.openai.com",)
    assert configs["anthropic"].key_hosts == ("api.anthropic.com",)
    assert configs["groq"].key_hosts == ("api.groq.com",)
    assert configs["gemini"].key_hosts == ("generativelanguage.googleapis.com",)
    assert configs["vllm"].key_hosts == ("127.0.0.1:8000",)
    assert configs["azure"].key_hosts == ("*.openai.azure.com", "*.cognitiveservices.azure.com")
    assert all(c.key_refusal() is None for c in configs.values())


def test_the_environment_moving_a_preset_moves_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_BASE_URL is the operator's own setting (as for the OpenAI SDK), not the repo's."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:4000/v1")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://gateway.corp.test")
    configs = builtin_configs()
    assert configs["openai"].key_hosts == ("api.openai.com", "127.0.0.1:4000")
    assert "gateway.corp.test" in (configs["azure"].key_hosts or ())
    assert configs["openai"].key_refusal() is None


@pytest.mark.parametrize(
    ("providers", "name", "envs"),
    [
        # a preset whose base_url the file moves: its key stays with api.openai.com
        ("  openai: {{base_url: '{url}'}}\n", "openai", "OPENAI_API_KEY"),
        # a provider of the file's own naming a preset's key, a CI token, a secret header
        ("  x: {{kind: openai, base_url: '{url}', api_key_env: OPENAI_API_KEY}}\n", "x",
         "OPENAI_API_KEY"),
        ("  x: {{kind: openai, base_url: '{url}', api_key_env: CI_TOKEN}}\n", "x", "CI_TOKEN"),
        ("  x: {{kind: openai, base_url: '{url}', headers_env: {{X-Token: CI_TOKEN}}}}\n", "x",
         "CI_TOKEN"),
        ("  x: {{kind: anthropic, base_url: '{url}', api_key_env: CI_TOKEN}}\n", "x",
         "CI_TOKEN"),
        ("  x: {{kind: azure, base_url: '{url}', api_key_env: CI_TOKEN}}\n", "x", "CI_TOKEN"),
        # send_key_to names another host than base_url's
        ("  openai: {{base_url: '{url}', send_key_to: [127.0.0.2]}}\n", "openai",
         "OPENAI_API_KEY"),
    ],
)  # fmt: skip
def test_a_key_sent_elsewhere_is_refused_before_sending(
    tmp_path: Path, llm_server: LLMServer, providers: str, name: str, envs: str
) -> None:
    reg = registry(tmp_path, providers.format(url=llm_server.openai_url))
    host = f"127.0.0.1:{llm_server.port}"
    kind, error = call(reg, f"{name}/m")
    assert kind == "config"
    assert error is not None and f"provider '{name}': refused before sending" in error
    assert f"add `send_key_to: [{host}]` to provider '{name}' in providers.yaml" in error
    assert envs in error and OPENAI_KEY not in error and CI_TOKEN not in error
    (status,) = [s for s in reg.statuses() if s.name == name]
    assert status.key_goes_to == f"refused: {envs} not sent to {host}; add send_key_to: [{host}]"
    assert not status.usable
    assert "Not sent: provider" in probe_connection(reg, name).message
    assert llm_server.requests == []  # nothing reached the server: no call, no models list


def test_the_key_goes_there_only_with_send_key_to(tmp_path: Path, llm_server: LLMServer) -> None:
    host = f"127.0.0.1:{llm_server.port}"
    reg = registry(
        tmp_path,
        f"  openai: {{base_url: '{llm_server.openai_url}', send_key_to: ['{host}']}}\n"
        f"  ci: {{kind: openai, base_url: '{llm_server.openai_url}', api_key_env: CI_TOKEN,"
        " headers_env: {X-Token: CI_TOKEN}, send_key_to: [127.0.0.1]}\n",
    )
    assert call(reg, "openai/m") == (None, None)
    assert call(reg, "ci/m") == (None, None)
    sent = [r.headers for r in llm_server.requests]
    assert sent[0]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert (sent[1]["authorization"], sent[1]["x-token"]) == (f"Bearer {CI_TOKEN}", CI_TOKEN)
    shown = {s.name: s.key_goes_to for s in reg.statuses()}
    assert shown["openai"] == shown["ci"] == host
    assert shown["anthropic"] == "api.anthropic.com" and shown["ollama"] == shown["local"] == ""


def test_a_provider_without_secrets_needs_no_send_key_to(
    tmp_path: Path, llm_server: LLMServer
) -> None:
    reg = registry(tmp_path, f"  box: {{kind: openai, base_url: '{llm_server.openai_url}'}}\n")
    assert call(reg, "box/m") == (None, None)
    assert "authorization" not in llm_server.requests[0].headers


def test_an_optional_key_that_is_not_set_sends_nothing_and_is_not_refused(
    tmp_path: Path, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM moved to another box by the file: fine while VLLM_API_KEY is unset; once it is
    set, it would go to a host nobody allowed, so the call is refused."""
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    reg = registry(tmp_path, f"  vllm: {{base_url: '{llm_server.openai_url}'}}\n")
    assert call(reg, "vllm/m") == (None, None)
    monkeypatch.setenv("VLLM_API_KEY", "vllm-key-0123456789")
    reg = registry(tmp_path, f"  vllm: {{base_url: '{llm_server.openai_url}'}}\n")
    kind, error = call(reg, "vllm/m")
    assert kind == "config" and error is not None and "VLLM_API_KEY may be sent only to" in error
    assert len(llm_server.requests) == 1


def test_a_provider_built_in_code_sends_its_key_to_its_own_host(llm_server: LLMServer) -> None:
    provider = OpenAIProvider("p", llm_server.openai_url, api_key="k-0123456789")
    assert provider.key_hosts == (f"127.0.0.1:{llm_server.port}",)
    elsewhere = OpenAIProvider("p", llm_server.openai_url, api_key="k", key_hosts=["other.test"])
    with pytest.raises(ConfigError, match=r"may be sent only to other\.test"):
        run_with_client(_drain(elsewhere))
    assert llm_server.requests == []


async def _drain(provider: OpenAIProvider) -> None:
    async for _ in provider.stream(ChatRequest("m", HI)):
        pass


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("send_key_to: api.example.com/v1", "'send_key_to': 'api.example.com/v1' is not a host"),
        ("send_key_to: [https://api.example.com]", "'send_key_to': 'https://api.example.com' is"),
        ("send_key_to: {a: b}", "'send_key_to' is a list of hosts"),
        ("send_key_to: [1]", "'send_key_to' is a list of hosts"),
        ("headers_env: [X-Token]", "'headers_env' has the wrong type"),
        ("headers_env: {X-Token: 'sk-the value'}", "'headers_env' maps a header to the NAME"),
        ("headers_env: {'X Token': TOKEN}", "the header 'X Token' is not a valid header name"),
        ("headers: {X-Team: 'Équipe'}", "the value of the header 'X-Team' has a character"),
        ("headers: {X-Team: ' pm'}", "the value of the header 'X-Team' has a character"),
        ("base_url: 'http://u:pw-s3cret@h:99999/v1'", "'base_url' 'http://***@h:99999/v1' is not"),
        ("base_url: 'ftp://h/v1'", "'base_url' 'ftp://h/v1' is not an http:// or https:// URL"),
        ("base_url: '127.0.0.1:8000/v1'", "'base_url' '127.0.0.1:8000/v1' is not an http://"),
    ],
)
def test_the_file_says_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "providers.yaml"
    url = "" if body.startswith("base_url") else "    base_url: http://h/v1\n"
    path.write_text(f"providers:\n  x:\n    kind: openai\n{url}    {body}\n")
    with pytest.raises(ConfigError) as caught:
        load_providers_file(path)
    assert f"provider 'x': {message}" in str(caught.value)
    for secret in ("Équipe", "sk-the", "pw-s3cret"):  # a value or a password: never quoted
        assert secret not in str(caught.value)


def test_the_file_reads_send_key_to_and_headers_env(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "providers:\n  x:\n    kind: openai\n    base_url: http://h:81/v1\n"
        "    send_key_to: [H:81, '*.Example.com']\n    headers_env: {X-Token: CI_TOKEN}\n"
        "  y: {kind: openai, base_url: 'http://h/v1', api_key_env: CI_TOKEN}\n"
        "  groq: {max_concurrency: 2}\n"
    )
    configs, _ = load_providers_file(path)
    assert configs["x"].key_hosts == ("h:81", "*.example.com")
    assert configs["x"].headers_env == {"X-Token": "CI_TOKEN"}
    assert configs["y"].key_hosts == ()  # named nowhere: refused until it says so
    assert configs["groq"].key_hosts == ("api.groq.com",)  # a preset keeps its own
