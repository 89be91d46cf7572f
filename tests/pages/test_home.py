"""Home: providers shown as ready only when they are (a local server must be listening)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.llm_server import LLMServer
from tests.pages.conftest import open_page


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_local_server_that_is_not_running_is_not_ready(
    workspace: Path, llm_server: LLMServer
) -> None:
    (workspace / "providers.yaml").write_text(
        "providers:\n"
        f"  fake: {{kind: openai, base_url: '{llm_server.openai_url}', free: true}}\n"
        f"  down: {{kind: openai, base_url: 'http://127.0.0.1:{closed_port()}/v1', free: true}}\n"
    )
    at = open_page("app.py")
    table = next(d.value for d in at.dataframe if "ready" in d.value.columns)
    rows = table.set_index("provider")
    assert rows.loc["fake", "server"] == "listening" and bool(rows.loc["fake", "ready"])
    assert rows.loc["down", "server"] == "not running" and not bool(rows.loc["down", "ready"])
    assert rows.loc["local", "server"] == "–" and bool(rows.loc["local", "ready"])
