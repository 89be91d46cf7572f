"""`scripts/start`, as a user runs it with no flags, serves on loopback only; asked to serve
other computers, it needs sign-in ([auth] in Streamlit's secrets) or --unsafe-no-auth.

The listening sockets are read from the kernel (/proc/net/tcp and tcp6), not from
Streamlit's own report of its address.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from promptdeck.ui import host_allowed
from tests.e2e.conftest import wait_idle
from tests.helpers import wait_until_serving

REPO = Path(__file__).resolve().parents[1]
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def listening(port: int) -> set[str]:
    """The local addresses (as the kernel writes them, hex) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            next(f)
            for line in f:
                fields = line.split()
                address, hex_port = fields[1].rsplit(":", 1)
                if int(hex_port, 16) == port and fields[3] == LISTEN:
                    found.add(address)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


AUTH = """\
[auth]
redirect_uri = "http://127.0.0.1:8501/oauth2callback"
cookie_secret = "a-long-random-string-for-the-cookie"
client_id = "promptdeck"
client_secret = "not-a-real-secret"
server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"
"""


def start_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no STREAMLIT_/PROMPTDECK_ settings of ours, a home
    of its own (Streamlit reads ~/.streamlit/secrets.toml), the port (two servers must not
    fight over 8501), headless (no browser to open)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "PROMPTDECK_"))}
    home = tmp_path / "user"
    home.mkdir(exist_ok=True)
    env |= {"STREAMLIT_SERVER_PORT": str(port), "STREAMLIT_SERVER_HEADLESS": "true",
            "PROMPTDECK_HOME": str(tmp_path / "store"), "HOME": str(home)}  # fmt: skip
    return env | extra


@contextlib.contextmanager
def serving(tmp_path: Path, command: list[str], env: dict[str, str]) -> Iterator[str]:
    """`command` run from the repository until its health check answers; its URL."""
    port = int(env["STREAMLIT_SERVER_PORT"])
    log_path = tmp_path / "start.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:  # within 300 s: a first run installs the packages
            wait_until_serving(f"http://127.0.0.1:{port}/_stcore/health", proc, log_path, 300)
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


START = ["bash", str(REPO / "scripts" / "start")]


def test_scripts_start_listens_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, START, start_env(tmp_path, port)):
        assert listening(port) == {"0100007F"}  # 127.0.0.1, and nothing on 0.0.0.0 or ::


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["--server.address", "0.0.0.0"], {}),
        (["--server.address=0.0.0.0"], {}),
        ([], {"STREAMLIT_SERVER_ADDRESS": "0.0.0.0"}),
    ],
    ids=["flag", "flag=", "env"],
)
def test_scripts_start_refuses_a_network_address_without_sign_in(
    tmp_path: Path, args: list[str], extra: dict[str, str]
) -> None:
    port = free_port()
    done = subprocess.run(
        [*START, *args], cwd=REPO, env=start_env(tmp_path, port, **extra),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    said = done.stderr
    assert "PromptDeck will not serve on 0.0.0.0: sign-in is not configured" in said
    assert "anyone who can reach this computer could use your API keys" in said
    for needed in ("[auth]", ".streamlit/secrets.toml", "team.yaml", "Run it for your team"):
        assert needed in said
    assert "--unsafe-no-auth" in said
    assert listening(port) == set()  # nothing was started


def test_scripts_start_serves_the_network_with_sign_in(tmp_path: Path) -> None:
    port = free_port()
    env = start_env(tmp_path, port)
    (Path(env["HOME"]) / ".streamlit").mkdir()
    (Path(env["HOME"]) / ".streamlit" / "secrets.toml").write_text(AUTH)  # read too
    with serving(tmp_path, [*START, "--server.address", "0.0.0.0"], env):
        assert listening(port) == {"00000000"}  # 0.0.0.0, as asked


WARNING = "anyone on this network can use your keys and change your files"


@pytest.mark.browser
def test_unsafe_no_auth_starts_and_every_page_says_so(tmp_path: Path, browser: Browser) -> None:
    port = free_port()
    command = [*START, "--server.address", "0.0.0.0", "--unsafe-no-auth"]
    with (
        serving(tmp_path, command, start_env(tmp_path, port)) as url,
        browser_page(browser) as page,
    ):
        assert listening(port) == {"00000000"}
        for path in ("", "/settings"):
            page.goto(url + path)
            page.get_by_text(WARNING).wait_for()
            page.get_by_test_id("stSidebar").get_by_role("link", name="Results").wait_for()


@pytest.mark.browser
def test_a_hand_started_server_on_the_network_shows_no_page(
    tmp_path: Path, browser: Browser
) -> None:
    """Defence in depth: `streamlit run` without scripts/start, on 0.0.0.0, no sign-in."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "0.0.0.0"]
    with (
        serving(tmp_path, command, start_env(tmp_path, port)) as url,
        browser_page(browser) as page,
    ):
        page.goto(url + "/settings")
        page.get_by_text("PromptDeck will not serve on 0.0.0.0").wait_for()
        wait_idle(page)
        assert page.get_by_text("Settings", exact=True).count() == 0  # not the page
        assert page.get_by_test_id("stSidebar").count() == 0


@contextlib.contextmanager
def browser_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize(
    ("host", "address", "allowed"),
    [
        ("localhost:8501", "127.0.0.1", True),
        ("127.0.0.1:8501", "127.0.0.1", True),
        ("[::1]:8501", "127.0.0.1", True),
        ("LOCALHOST", "127.0.0.1", True),
        ("evil.example:8501", "127.0.0.1", False),  # DNS rebinding onto loopback
        ("127.0.0.1.evil.example:8501", None, False),
        ("laptop.lan:8501", "0.0.0.0", True),  # exposed on purpose: any name it is reached by
        (None, "127.0.0.1", True),  # no browser: AppTest, the health check
    ],
)
def test_only_loopback_names_reach_a_loopback_server(
    host: str | None, address: str | None, allowed: bool
) -> None:
    assert host_allowed(host, address) is allowed
