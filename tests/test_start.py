"""`scripts/start`, as a user runs it with no flags, serves on loopback only.

The listening sockets are read from the kernel (/proc/net/tcp and tcp6), not from
Streamlit's own report of its address.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from promptdeck.ui import host_allowed

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


def test_scripts_start_listens_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "PROMPTDECK_"))}
    # The port only: two servers must not fight over 8501. Headless: no browser to open.
    env |= {"STREAMLIT_SERVER_PORT": str(port), "STREAMLIT_SERVER_HEADLESS": "true",
            "PROMPTDECK_HOME": str(tmp_path / "home")}  # fmt: skip
    log = (tmp_path / "start.log").open("w")
    proc = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "start")],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # a first run installs the packages
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "start.log").read_text()
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.2)
        assert listening(port) == {"0100007F"}  # 127.0.0.1, and nothing on 0.0.0.0 or ::
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


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
