"""URL credentials and header values are masked where messages are made (model/http.py,
the registry, the probe); a secret header comes from the environment (`headers_env`); a
header that cannot be sent is a clear error, not a UnicodeEncodeError or httpx quoting it."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest

from promptdeck.errors import ConfigError
from promptdeck.model.http import run_with_client
from promptdeck.model.openai_compat import OpenAIProvider
from promptdeck.model.policy import CallPolicy
from promptdeck.model.pricing import PriceTable
from promptdeck.model.probe import probe_connection
from promptdeck.model.registry import ProviderConfig, Registry
from promptdeck.model.secrets import Secrets, redact, url_secrets
from promptdeck.model.types import ChatRequest, Message
from promptdeck.workspace.providers_file import open_registry
from tests.llm_server import MODELS_LIST, LLMServer, Scenario, collect

PASSWORD = "pw-PDTEST-0123456789abcdef"
TOKEN = "tok-PDTEST-fedcba9876543210"  # a secret header's value, from PD_TEST_TOKEN
HI = (Message("user", "hi"),)
REQUEST = ChatRequest("m", HI)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_password(url: str) -> str:
    return url.replace("://", f"://pduser:{PASSWORD}@")


def secret_forms() -> list[str]:
    basic = base64.b64encode(f"pduser:{PASSWORD}".encode()).decode()
    return [PASSWORD, basic, TOKEN, PASSWORD[3:-3], TOKEN[4:-4]]


def leaked(text: str) -> list[str]:
    return [form for form in secret_forms() if form in text]


def registry(tmp_path: Path, providers: str) -> Registry:
    path = tmp_path / "providers.yaml"
    path.write_text("providers:\n" + providers, encoding="utf-8")
    return open_registry(path, Secrets())


def test_url_secrets_and_redact() -> None:
    url = f"https://pduser:{PASSWORD}@gw.test/v1?api-version=1"
    basic = base64.b64encode(f"pduser:{PASSWORD}".encode()).decode()
    assert url_secrets(url) == sorted(
        {f"pduser:{PASSWORD}", basic, PASSWORD}, key=len, reverse=True
    )
    assert url_secrets("https://TOKEN-in-user@gw.test") == ["VE9LRU4taW4tdXNlcjo=", "TOKEN-in-user"]
    encoded = url_secrets("https://u:p%40ss%2Fw0rd@gw.test")
    assert {"u:p%40ss%2Fw0rd", "u:p@ss/w0rd", "p%40ss%2Fw0rd", "p@ss/w0rd"} <= set(encoded)
    assert url_secrets("https://u:pw@gw.test") == ["dTpwdw==", "u:pw"]  # "pw" alone: too short
    assert url_secrets("https://gw.test/v1") == []
    assert redact("a abc abcd", ["abc", "abcd"]) == "a *** ***"  # the longest first


def test_a_connection_error_names_the_server_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_TEST_TOKEN", TOKEN)
    url = with_password(f"http://127.0.0.1:{closed_port()}/v1")
    config = ProviderConfig(
        "gw", "openai", url, requires_key=False, headers_env={"X-Token": "PD_TEST_TOKEN"}
    )
    reg = Registry({"gw": config}, Secrets(), PriceTable())
    answer = run_with_client(CallPolicy(reg, max_retries=0).call("gw/m", HI, {}))
    error = answer.result.error or ""
    assert answer.result.error_kind == "connection"
    assert "could not connect to http://127.0.0.1:" in error and "pduser" not in error
    assert leaked(error) == []
    probed = probe_connection(reg, "gw").message
    assert probed.startswith("Cannot connect: gw: could not connect to http://127.0.0.1:")
    assert leaked(probed) == [] and "pduser" not in probed


def test_an_echoed_password_basic_auth_and_secret_header_are_masked(
    tmp_path: Path, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server quotes every auth and x- header in its 401, and the password itself."""
    monkeypatch.setenv("PD_TEST_TOKEN", TOKEN)
    echo = Scenario(
        fail_statuses=[401] * 9,
        echo_headers=True,
        error_body={"error": {"message": f"user pduser, password {PASSWORD} not allowed"}},
    )
    llm_server.set_scenario("m", Scenario(fail_statuses=[401] * 9, echo_headers=True))
    llm_server.set_scenario("pw", echo)
    llm_server.set_scenario(MODELS_LIST, Scenario(fail_statuses=[401] * 9, echo_headers=True))
    reg = registry(
        tmp_path,
        f"  gw: {{kind: openai, base_url: '{with_password(llm_server.openai_url)}',"
        " headers_env: {X-Token: PD_TEST_TOKEN}, headers: {X-Static: static-0123456789},"
        " send_key_to: [127.0.0.1]}\n",
    )
    policy = CallPolicy(reg, max_retries=0)
    for model in ("gw/m", "gw/pw"):
        error = run_with_client(policy.call(model, HI, {})).result.error or ""
        assert "HTTP 401" in error and leaked(error) == [], error
    error = run_with_client(policy.call("gw/m", HI, {})).result.error or ""
    assert "{'authorization': 'Basic ***', 'x-static': '***', 'x-token': '***'}" in error
    probed = probe_connection(reg, "gw").message
    assert probed.startswith("Key rejected: gw: the server refused") and leaked(probed) == []
    sent = llm_server.requests[0].headers
    assert sent["x-token"] == TOKEN and sent["x-static"] == "static-0123456789"


def test_base_urls_are_shown_masked(tmp_path: Path) -> None:
    url = with_password("https://gw.test/v1")
    reg = registry(tmp_path, f"  gw: {{kind: openai, base_url: '{url}'}}\n")
    (status,) = [s for s in reg.statuses() if s.name == "gw"]
    assert status.base_url == "https://***@gw.test/v1"
    assert PASSWORD not in repr(reg.config("gw")) and PASSWORD not in repr(reg.provider("gw"))


@pytest.mark.parametrize("value", ["tök-PDTEST-0123", "tok-PDTEST\n0123", "tok-PDTEST\x7f0123"])
def test_a_secret_header_that_cannot_be_sent_is_a_clear_error(
    llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Before: UnicodeEncodeError (non-ASCII) or httpx quoting the value ("Illegal header
    value b'...'"); now a ConfigError naming the header and its variable, never the value."""
    monkeypatch.setenv("PD_TEST_TOKEN", value)
    provider = OpenAIProvider(
        "gw",
        llm_server.openai_url,
        api_key="k-0123456789",
        headers_env={"X-Token": ("PD_TEST_TOKEN", None)},
    )
    with pytest.raises(ConfigError) as caught:
        collect(provider, REQUEST)
    message = str(caught.value)
    assert message.startswith("gw: the value of the header 'X-Token' (from PD_TEST_TOKEN)")
    assert "PDTEST" not in message
    assert llm_server.requests == []


@pytest.mark.parametrize("value", ["Équipe-0123456789", "pm\r\nX-Evil: 1", " padded-value "])
def test_a_configured_header_that_cannot_be_sent_is_a_clear_error(
    llm_server: LLMServer, value: str
) -> None:
    provider = OpenAIProvider("gw", llm_server.openai_url, api_key="k", headers={"X-Team": value})
    with pytest.raises(ConfigError) as caught:
        collect(provider, REQUEST)
    assert "the value of the header 'X-Team' has a character" in str(caught.value)
    assert value.strip() not in str(caught.value)
    assert llm_server.requests == []


def test_an_unset_secret_header_says_which_variable(
    tmp_path: Path, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PD_TEST_TOKEN", raising=False)
    reg = registry(
        tmp_path,
        f"  gw: {{kind: openai, base_url: '{llm_server.openai_url}',"
        " headers_env: {X-Token: PD_TEST_TOKEN}, send_key_to: [127.0.0.1]}\n",
    )
    answer = run_with_client(CallPolicy(reg, max_retries=0).call("gw/m", HI, {}))
    assert answer.result.error_kind == "config"
    assert "the header X-Token takes its value from the environment variable PD_TEST_TOKEN" in (
        answer.result.error or ""
    )
    assert llm_server.requests == []
    monkeypatch.setenv("PD_TEST_TOKEN", TOKEN)  # read at call time, like a key
    assert run_with_client(CallPolicy(reg).call("gw/m", HI, {})).result.ok
    assert llm_server.requests[0].headers["x-token"] == TOKEN
