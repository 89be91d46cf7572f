"""API keys never leave the process: the main flows run with recognisable fake keys, then
every file the app wrote and every page it rendered is scanned for them.

One key comes from the environment (`PD_FAKE_KEY`), a second from the workspace's `.env`
(`PD_DOTENV_KEY`). Both providers point at the local test server, which checks that the
right key is sent (`Scenario.require_key`) and, for the "denied" models, answers 401 with
the key it received echoed in the body, as careless servers do.

Two more secrets: a password in a provider's base URL (`user:password@`) and a secret
header taken from the environment (`headers_env`, `PD_HEADER_SECRET`). One such provider
reaches the server, which answers 401 quoting every request header (the Basic credentials
made from the URL and the secret header among them); another points at a closed port, so
that its connection error names the URL.

Flows: a Playground-style `LiveRun`; the Playground page in AppTest; an eval through the
CLI subprocess (`run`, `gate`, `report --html --md --csv`, with its stdout/stderr kept as
log files); the Home, Evaluate and Results pages in AppTest. Then: zero hits of either key
(raw, its random part alone, base64 at every alignment, URL-encoded, hex) in any file under
the workspace and PROMPTDECK_HOME (the SQLite file and any -wal/-shm included) and in any
rendered element; the Home page shows each key masked as `sk-…` + its last 4 characters.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from streamlit.testing.v1 import AppTest

from promptdeck.evals.live import LiveRun, plan_columns
from promptdeck.model.secrets import Secrets
from promptdeck.store.db import Store
from promptdeck.workspace.prompts import load_prompts
from promptdeck.workspace.providers_file import open_registry
from tests.llm_server import LLMServer, Scenario

REPO = Path(__file__).resolve().parents[1]
PREFIX = "sk-PDTEST-"
KEY = PREFIX + secrets.token_hex(20)  # from the environment
DOTENV_KEY = PREFIX + "DOTENV-" + secrets.token_hex(20)  # from the workspace's .env
PASSWORD = "pdpw-" + secrets.token_hex(16)  # in the base URL of the pw* providers
HEADER_SECRET = "hdr-" + secrets.token_hex(16)  # PD_HEADER_SECRET, sent as X-Secret-Token
VERDICT = '{"reasoning": "Polite and correct.", "score": 4}'

# variant -> (model reference, what the server does for it)
VARIANTS = {
    "k/ok": ("fake/sec-ok", Scenario(require_key=KEY)),
    "k/denied": ("fake/sec-denied", Scenario(require_key="sk-some-other-key")),  # echoes KEY
    "k/dotenv": ("dotfake/sec-dot", Scenario(require_key=DOTENV_KEY)),
    "k/dotdenied": ("dotfake/sec-dot-denied", Scenario(require_key="sk-other")),  # echoes it
    # 401 quoting every header: the Basic credentials of the URL and the secret header
    "k/pwdenied": ("pwfake/sec-pw", Scenario(fail_statuses=[401] * 99, echo_headers=True)),
    "k/pwdown": ("pwdown/sec-down", Scenario()),  # a closed port: a connection error
}
PLAYGROUND = ["k/ok", "k/denied", "k/pwdenied", "k/pwdown"]  # the page runs at most 4
SUITE = """dataset: qa.csv
sample: {n: 4, seed: 3}
variants: [k/ok, k/denied, k/dotenv, k/dotdenied, k/pwdenied, k/pwdown]
baseline: k/ok
judge: {model: fake/sec-judge, rubric: "Score 1-5: is the reply helpful?", scale: [1, 5]}
gates:
  - {metric: judge_score, max_drop: 0.5}
  - {metric: error_rate, max: 0.9}
"""


def encoded_forms(key: str) -> dict[str, bytes]:
    """Byte patterns that reveal `key`: raw, its random part, URL-encoded, hex, and base64
    (standard and URL-safe) at each of the 3 alignments inside a longer encoded text."""
    raw = key.encode()
    forms = {
        "raw": raw,
        "random part": key.removeprefix(PREFIX).encode(),
        "url-encoded": quote(key, safe="").encode(),
        "url-encoded (plus)": quote_plus(key).encode(),
        "hex": raw.hex().encode(),
        "utf-16": key.encode("utf-16-le"),
    }
    for pad in range(3):
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            text = encode(b"\0" * pad + raw)
            # Drop the first group (mixed with the padding bytes) and the last (mixed with
            # whatever follows): the middle depends on the key alone.
            forms[f"{name}@{pad}"] = text[4 if pad else 0 : -4]
    return forms


SECRETS = (
    ("env key", KEY), ("dotenv key", DOTENV_KEY), ("url password", PASSWORD),
    ("header secret", HEADER_SECRET),
)  # fmt: skip
FORMS = {f"{label} {form}": pattern for label, key in SECRETS
         for form, pattern in encoded_forms(key).items()}  # fmt: skip


def hits(data: bytes) -> list[str]:
    return [name for name, pattern in FORMS.items() if pattern in data]


@dataclass
class Flows:
    root: Path
    home: Path
    server: LLMServer
    pages: dict[str, bytes] = field(default_factory=dict)  # page -> everything it rendered
    home_providers: dict[str, str] = field(default_factory=dict)  # provider -> key shown
    home_table: dict[str, dict[str, str]] = field(default_factory=dict)  # provider -> row
    live_notes: dict[str, str] = field(default_factory=dict)  # variant -> status: note
    playground_errors: list[str] = field(default_factory=list)
    run_id: str = ""
    cli_out: str = ""
    leaks: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # step -> file -> forms
    wal_seen: int = 0  # the largest -wal file a scan read
    scanned: set[str] = field(default_factory=set)  # names of every file a scan read


def written_files(flows: Flows) -> list[Path]:
    files = [p for base in (flows.root, flows.home) for p in base.rglob("*") if p.is_file()]
    # the user's own files: .env holds a key, providers.yaml the URL with a password
    return [p for p in files if p not in (flows.root / ".env", flows.root / "providers.yaml")]


def scan(flows: Flows, step: str) -> None:
    """Scan every written file now: a -wal file is checkpointed away later, so look at it
    after each step, while the connections that wrote it are still open."""
    for path in written_files(flows):
        data = path.read_bytes()
        flows.scanned.add(path.name)
        if path.name.endswith("-wal"):
            flows.wal_seen = max(flows.wal_seen, len(data))
        if found := hits(data):
            flows.leaks.setdefault(step, {})[str(path)] = found


def make_workspace(root: Path, server: LLMServer) -> None:
    for name, (model, _) in VARIANTS.items():
        path = root / "prompts" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"model: {model}\nparams: {{max_tokens: 20}}\nuser: 'Q: {{{{ input }}}}'\n")
    (root / "datasets").mkdir()
    rows = [f"r{i},{'ab'[i % 2]},question {i}" for i in range(6)]
    (root / "datasets" / "qa.csv").write_text("id,category,input\n" + "\n".join(rows) + "\n")
    (root / "datasets" / "qa.suite.yaml").write_text(SUITE)
    with_password = server.openai_url.replace("://", f"://pduser:{PASSWORD}@")
    closed = with_password.replace(f":{server.port}/", f":{closed_port()}/")
    pw_settings = "send_key_to: [127.0.0.1], headers_env: {X-Secret-Token: PD_HEADER_SECRET}"
    (root / "providers.yaml").write_text(
        "providers:\n"
        f"  fake: {{kind: openai, base_url: '{server.openai_url}', api_key_env: PD_FAKE_KEY,"
        " send_key_to: [127.0.0.1]}\n"
        f"  dotfake: {{kind: openai, base_url: '{server.openai_url}', "
        "api_key_env: PD_DOTENV_KEY, send_key_to: [127.0.0.1]}\n"
        f"  pwfake: {{kind: openai, base_url: '{with_password}', {pw_settings}}}\n"
        f"  pwdown: {{kind: openai, base_url: '{closed}', {pw_settings}}}\n"
    )
    # Written by the user, not by the app: the one file that may (and must) hold a key.
    (root / ".env").write_text(f"PD_DOTENV_KEY={DOTENV_KEY}\n")


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rendered(at: AppTest) -> bytes:
    """Every element and block of a page as sent to the browser (protobuf bytes, incl. the
    Arrow data of tables), plus each table's values as CSV text."""
    parts: list[bytes] = []

    def walk(node: object) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "SerializeToString"):
            parts.append(proto.SerializeToString())
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    parts += [frame.value.to_csv().encode() for frame in at.dataframe]
    parts += [str(e.value).encode() for kind in ("markdown", "caption", "error", "warning",
              "info", "success", "code", "text", "exception") for e in at.get(kind)]  # fmt: skip
    return b"\n".join(parts)


def open_page(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    if page is not None:
        at.query_params.update(query)
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def cli(flows: Flows, name: str, *args: str) -> str:
    """Run the CLI in the workspace, its stdout and stderr kept as log files there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env |= {"PROMPTDECK_HOME": str(flows.home), "PYTHONPATH": str(REPO)}
    logs = flows.root / "logs"
    logs.mkdir(exist_ok=True)
    with (logs / f"{name}.out.log").open("w") as out, (logs / f"{name}.err.log").open("w") as err:
        done = subprocess.run(
            [sys.executable, "-m", "promptdeck", *args],
            cwd=flows.root,
            env=env,
            stdout=out,
            stderr=err,
            timeout=60,
        )
    text = (logs / f"{name}.out.log").read_text() + (logs / f"{name}.err.log").read_text()
    assert done.returncode in (0, 1), text  # 1: a gate may fail; 2 would be a crash/config error
    return text


def live_run(flows: Flows) -> None:
    """What the Playground does on Run, without the page: every variant at once."""
    registry = open_registry(flows.root / "providers.yaml", Secrets(flows.root / ".env"))
    library = load_prompts(flows.root / "prompts")
    plans = plan_columns([library.variants[n] for n in VARIANTS], {"input": "hi"})
    run = LiveRun(plans, registry, Store(flows.home / "promptdeck.sqlite")).start()
    assert run.wait(30)
    for view in run.snapshot():
        flows.live_notes[view.key.split(":", 1)[1]] = f"{view.status}: {view.note}"


def playground_page(flows: Flows) -> None:
    at = open_page("pages/playground.py")
    at.multiselect(key="pg_variants").set_value(PLAYGROUND).run()
    at.text_area(key="pg_in_input").input("Where is my parcel?").run()
    at.button[0].click().run()
    assert at.session_state["pg_run"].wait(30)
    at.run()  # the fragment does not poll in AppTest: one rerun draws the final state
    assert not at.exception, at.exception
    flows.playground_errors = [e.value for e in at.error]
    flows.pages["Playground"] = rendered(at)


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flows]:
    root = tmp_path_factory.mktemp("secrets-workspace")
    home = tmp_path_factory.mktemp("secrets-home")  # PROMPTDECK_HOME outside the workspace
    with LLMServer() as server, pytest.MonkeyPatch.context() as mp:
        for model, scenario in VARIANTS.values():
            server.set_scenario(model.split("/", 1)[1], scenario)
        server.set_scenario("sec-judge", Scenario(tokens=[VERDICT], require_key=KEY))
        make_workspace(root, server)
        mp.chdir(root)
        mp.setenv("PD_FAKE_KEY", KEY)
        mp.setenv("PD_HEADER_SECRET", HEADER_SECRET)
        mp.delenv("PD_DOTENV_KEY", raising=False)  # only the .env file holds it
        mp.setenv("PROMPTDECK_HOME", str(home))
        mp.delenv("PROMPTDECK_PROVIDERS", raising=False)
        flows = Flows(root, home, server)

        live_run(flows)
        scan(flows, "LiveRun")
        playground_page(flows)
        scan(flows, "Playground page")
        flows.cli_out = cli(flows, "run", "run", "datasets/qa.suite.yaml")
        flows.run_id = flows.cli_out.splitlines()[0].removeprefix("run_id: ")
        scan(flows, "CLI run")
        flows.cli_out += cli(flows, "gate", "gate", "latest")
        exports = root / "exports"
        exports.mkdir()
        flows.cli_out += cli(
            flows, "report", "report", flows.run_id, "--html", "exports/report.html",
            "--md", "exports/summary.md", "--csv", "exports/cells.csv",
        )  # fmt: skip

        at = open_page()
        flows.pages["Home"] = rendered(at)
        providers = at.dataframe[[d.value.columns[0] for d in at.dataframe].index("provider")]
        flows.home_providers = dict(
            zip(providers.value["provider"], providers.value["key"], strict=True)
        )
        flows.home_table = providers.value.set_index("provider").astype(str).T.to_dict()
        at = open_page("pages/evaluate.py", run=flows.run_id)
        flows.pages["Evaluate"] = rendered(at)
        at = open_page("pages/results.py")
        flows.pages["Results"] = rendered(at)
        scan(flows, "all flows")
        yield flows


def test_the_keys_are_really_sent(flows: Flows) -> None:
    sent = {(r.model, r.headers.get("authorization")) for r in flows.server.requests if r.model}
    assert ("sec-ok", f"Bearer {KEY}") in sent
    assert ("sec-judge", f"Bearer {KEY}") in sent
    assert ("sec-dot", f"Bearer {DOTENV_KEY}") in sent  # picked up from .env, not the env
    assert "PD_DOTENV_KEY" not in os.environ
    basic = base64.b64encode(f"pduser:{PASSWORD}".encode()).decode()
    assert ("sec-pw", f"Basic {basic}") in sent  # httpx turns user:password@ into Basic auth
    tokens = {(r.model, r.headers.get("x-secret-token")) for r in flows.server.requests}
    assert ("sec-pw", HEADER_SECRET) in tokens  # headers_env: the header, from the env
    assert {t for m, t in tokens if m != "sec-pw"} == {None}  # no other provider sends it


def test_the_flows_ran_with_answers_and_auth_errors(flows: Flows) -> None:
    notes = flows.live_notes
    assert notes["k/ok"] == "done: " and notes["k/dotenv"] == "done: "
    for denied in ("k/denied", "k/dotdenied"):
        assert notes[denied].startswith("error: ") and "HTTP 401" in notes[denied]
        assert "Incorrect API key: ***" in notes[denied]  # the echoed key, redacted
    # the server quoted every header: the Basic credentials and the secret header, masked
    assert "{'authorization': 'Basic ***', 'x-secret-token': '***'}" in notes["k/pwdenied"]
    assert "could not connect to http://127.0.0.1:" in notes["k/pwdown"]
    assert "pduser" not in notes["k/pwdown"]  # the server is named without user:password@
    assert sum("HTTP 401" in e for e in flows.playground_errors) == 2  # denied, pwdenied
    assert sum("could not connect" in e for e in flows.playground_errors) == 1
    assert flows.run_id and "run_id: " + flows.run_id in flows.cli_out
    store = Store(flows.home / "promptdeck.sqlite")
    results = store.results(flows.run_id)
    errors = {r["variant"]: r["error"] for r in results if r["error"]}
    assert set(errors) == {"k/denied", "k/dotdenied", "k/pwdenied", "k/pwdown"}
    assert all("HTTP 401" in errors[v] for v in ("k/denied", "k/dotdenied", "k/pwdenied"))
    assert "{'authorization': 'Basic ***', 'x-secret-token': '***'}" in errors["k/pwdenied"]
    assert "could not connect to http://127.0.0.1:" in errors["k/pwdown"]
    assert any(s["scorer"] == "judge" and s["value"] == 4 for s in store.scores(flows.run_id))
    calls = store.recent_calls(50)
    assert len(calls) == len(VARIANTS) + len(PLAYGROUND)  # the LiveRun and the Playground
    store.close()
    for name in ("report.html", "summary.md", "cells.csv"):
        assert (flows.root / "exports" / name).stat().st_size > 0


def test_no_file_the_app_wrote_holds_a_key(flows: Flows) -> None:
    # What was scanned: the store and its -wal/-shm, exports, CLI logs, prompts, suite, data.
    # (-wal and -shm exist only while a connection is open: counted over every scan.)
    names = flows.scanned
    assert {"promptdeck.sqlite", "promptdeck.sqlite-wal", "promptdeck.sqlite-shm"} <= names
    assert {"report.html", "summary.md", "cells.csv"} <= names
    assert {"run.out.log", "run.err.log", "gate.out.log", "report.out.log"} <= names
    assert flows.wal_seen > 0  # a scan read a WAL with frames in it
    assert flows.leaks == {}
    scan(flows, "after the page tests")
    assert flows.leaks == {}


def test_the_store_holds_no_key_in_any_row(flows: Flows) -> None:
    """The same check on the store's logical content, in case a page were compressed."""
    db = sqlite3.connect(f"file:{flows.home / 'promptdeck.sqlite'}?mode=ro", uri=True)
    try:
        dump = "\n".join(db.iterdump()).encode()
    finally:
        db.close()
    assert b"Incorrect API key: ***" in dump  # the redacted echo was stored...
    assert hits(dump) == []  # ...and nothing else of the key


def test_no_rendered_page_shows_a_key(flows: Flows) -> None:
    assert set(flows.pages) == {"Home", "Playground", "Evaluate", "Results"}
    assert {page: found for page, data in flows.pages.items() if (found := hits(data))} == {}
    assert b"HTTP 401" in flows.pages["Playground"]
    assert flows.run_id.encode() in flows.pages["Evaluate"]
    assert flows.run_id.encode() in flows.pages["Results"]


def test_home_shows_the_keys_masked(flows: Flows) -> None:
    shown = flows.home_providers
    assert shown["fake"] == f"sk-…{KEY[-4:]}"
    assert shown["dotfake"] == f"sk-…{DOTENV_KEY[-4:]}"
    assert f"sk-…{KEY[-4:]}".encode() in flows.pages["Home"]


def test_home_shows_urls_masked_and_where_keys_go(flows: Flows) -> None:
    table = flows.home_table
    port = flows.server.port
    assert table["pwfake"]["base URL"] == f"http://***@127.0.0.1:{port}/v1"
    assert table["pwdown"]["base URL"].startswith("http://***@127.0.0.1:")
    assert table["fake"]["key goes to"] == f"127.0.0.1:{port}"
    assert table["pwfake"]["key goes to"] == f"127.0.0.1:{port}"  # its secret header
    assert table["openai"]["key goes to"] == "api.openai.com"
    assert table["local"]["key goes to"] == ""


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b'{"Authorization": "Bearer '])
def test_the_scanner_finds_every_form(prefix: bytes) -> None:
    """A control: the scan would see the key however it had been written."""
    raw = KEY.encode()
    assert "env key raw" in hits(prefix + raw)
    assert any(n.startswith("env key base64@") for n in hits(base64.b64encode(prefix + raw)))
    assert any(n.startswith("env key base64url") for n in hits(base64.urlsafe_b64encode(raw)))
    assert "env key random part" in hits(b"sk-...redacted..." + KEY[-40:].encode())
    assert "dotenv key hex" in hits(prefix + DOTENV_KEY.encode().hex().encode())
    assert hits(prefix + f"sk-…{KEY[-4:]}".encode()) == []  # the masked form is no hit
