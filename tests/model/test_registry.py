from pathlib import Path

import pytest

from promptdeck.errors import ConfigError
from promptdeck.model.refs import split_model_ref
from promptdeck.model.secrets import Secrets, mask_secret
from promptdeck.workspace.providers_file import load_providers_file, open_registry

FAKE_KEY = "sk-test-PROMPTDECK-0123456789abcdef"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builtins_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    reg = open_registry(tmp_path / "missing.yaml", Secrets())
    status = {s.name: s for s in reg.statuses()}
    assert status["local"].usable and status["local"].key_display == "not needed"
    assert not status["openai"].usable and status["openai"].key_display == "missing"
    assert status["vllm"].usable and status["vllm"].key_display == "optional, not set"
    assert {
        "openai",
        "anthropic",
        "azure",
        "ollama",
        "vllm",
        "lmstudio",
        "llamacpp",
        "openrouter",
        "groq",
        "gemini",
    } <= set(status)


def test_key_comes_from_env_and_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    reg = open_registry(Path("/nonexistent.yaml"), Secrets())
    shown = next(s for s in reg.statuses() if s.name == "openai").key_display
    assert shown == "sk-…cdef"
    assert FAKE_KEY not in repr(reg.secrets)


def test_dotenv_and_extra_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    (tmp_path / ".env").write_text("GROQ_API_KEY=gsk_from_dotenv_file_123\n")
    secrets = Secrets(tmp_path / ".env", extra={"TOGETHER_API_KEY": "from-secrets"}.get)
    assert secrets.get("GROQ_API_KEY") == "gsk_from_dotenv_file_123"
    assert secrets.get("TOGETHER_API_KEY") == "from-secrets"
    assert secrets.get("NOPE_KEY") is None


def test_providers_file_adds_provider_and_prices(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
providers:
  staging-vllm:
    kind: openai
    base_url: http://127.0.0.1:8000/v1
    api_key_env: STAGING_KEY
    max_concurrency: 8
    headers: {X-Team: pm}
prices:
  staging-vllm/my-model: {input: 0.5, output: 1.5}
""",
    )
    configs, prices = load_providers_file(path)
    cfg = configs["staging-vllm"]
    assert (cfg.kind, cfg.base_url, cfg.api_key_env, cfg.max_concurrency) == (
        "openai",
        "http://127.0.0.1:8000/v1",
        "STAGING_KEY",
        8,
    )
    assert dict(cfg.headers) == {"X-Team": "pm"}
    assert prices["staging-vllm/my-model"].output_per_mtok == 1.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "providers: {x: {kind: openai, base_url: http://a, colour: red}}",
            "unknown key(s) colour",
        ),
        ("providers: {x: {kind: telepathy}}", "'kind' must be one of"),
        ("providers: {x: {kind: openai, base_url: http://a, api_key: sk-123}}", "never put a key"),
        ("providers: {x: {kind: openai}}", "'base_url' is required"),
        (
            "providers: {x: {kind: openai, base_url: http://a, max_concurrency: many}}",
            "'max_concurrency' has the wrong type",
        ),
        ("provider: {}", "unknown top-level key(s): provider"),
        ("providers: {x: [1, 2]}", "expected a mapping"),
        ("providers: {x: {kind: openai\n", "cannot read providers file"),
        ("prices: {openai/x: {input: 1}}", "price for 'openai/x'"),
    ],
)
def test_bad_providers_file_names_file_and_place(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_providers_file(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_model_refs() -> None:
    assert split_model_ref("openai/gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert split_model_ref("openrouter/meta/llama-3") == ("openrouter", "meta/llama-3")
    for bad in ("gpt-4o", "/x", "openai/"):
        with pytest.raises(ConfigError, match="provider/model"):
            split_model_ref(bad)
    reg = open_registry(Path("/nonexistent.yaml"), Secrets())
    with pytest.raises(ConfigError, match="unknown provider 'nope'"):
        reg.resolve("nope/model")


def test_mask_secret() -> None:
    assert mask_secret(None) == "missing"
    assert mask_secret("short") == "••••••••"
    assert mask_secret(FAKE_KEY) == "sk-…cdef"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("providers: [a, b]\n", "'providers:' must be a mapping"),
        ("prices: [1]\n", "'prices:' must be a mapping"),
        (
            "providers:\n  x: {kind: openai, base_url: http://a}\n  x: {kind: openai, base_url: "
            "http://b}\n",
            "line 3",
        ),
    ],
)
def test_lists_and_duplicate_keys_are_config_errors(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_providers_file(write(tmp_path, text))
