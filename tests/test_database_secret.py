"""The database password never leaves the process: with PROMPTDECK_DATABASE_URL naming a
real PostgreSQL server (the session's throwaway cluster, tests/postgres.py), the main flows
and the ways the database fails are run, then every output, file and page is scanned.

The password is recognisable and has characters a URL must encode (`/@:%+ ?#&=`), so the
URL holds it percent-encoded: the scan looks for it raw, URL-encoded, base64 and hex
(`test_secrets.encoded_forms`), and for its random part alone. A second password, the
wrong one of the failure flows, is a secret too.

Flows: `db migrate`, an eval through the CLI subprocess (`run`, `gate`, `report --html --md
--csv`, a report of a run that does not exist), stdout/stderr kept as log files in the
workspace; the Home, Evaluate (an eval started there), Results and Settings pages in
AppTest. Failures: a wrong password, a closed port, a database that does not exist (the
password right): `run` exits 2 with one line naming the database (password masked), and
each page shows an error, not a traceback. Then: no hit in any output, in any file under
the workspace and PROMPTDECK_HOME, or in any rendered element; the database is named as
postgresql://<user>:***@127.0.0.1:<port>/<db>; and no SQLite file was created.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from streamlit.testing.v1 import AppTest

from promptdeck import ui
from promptdeck.store.db import Store
from tests.llm_server import LLMServer, Scenario
from tests.postgres import PostgresServer
from tests.test_secrets import REPO, closed_port, encoded_forms, open_page, rendered

TOKEN = secrets.token_hex(12)
PASSWORD = f"pdpw-{TOKEN}/@:%+ ?#&="  # every character after the token must be URL-encoded
WRONG_TOKEN = secrets.token_hex(12)
WRONG = f"pdwrong-{WRONG_TOKEN}"
ROLE = "pdsecret_" + secrets.token_hex(4)
FORMS = {
    f"{label} {form}": pattern
    for label, secret, token in (("password", PASSWORD, TOKEN), ("wrong", WRONG, WRONG_TOKEN))
    for form, pattern in {**encoded_forms(secret), "random part": token.encode()}.items()
}
VERDICT = '{"reasoning": "Polite and correct.", "score": 4}'
SUITE = """dataset: qa.csv
variants: [d/one, d/two]
baseline: d/one
judge: {model: fake/db-judge, rubric: "Score 1-5: is the reply helpful?", scale: [1, 5]}
gates:
  - {metric: judge_score, max_drop: 0.5}
"""
PAGES = {
    "Home": None,
    "Evaluate": "pages/evaluate.py",
    "Results": "pages/results.py",
    "Settings": "pages/settings.py",
}
FAILURES = ("wrong password", "closed port", "no such database")


def hits(data: bytes) -> list[str]:
    return [name for name, pattern in FORMS.items() if pattern in data]


def database_url(port: int, database: str, password: str = PASSWORD) -> str:
    return f"postgresql://{ROLE}:{quote(password, safe='')}@127.0.0.1:{port}/{database}"


def masked(port: int, database: str) -> str:
    return f"postgresql://{ROLE}:***@127.0.0.1:{port}/{database}"


@dataclass
class Flows:
    root: Path
    home: Path
    url: str
    shown_as: str  # the URL as it must be shown: the password masked
    failing: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> url, masked
    outputs: dict[str, str] = field(default_factory=dict)  # CLI command -> stdout + stderr
    codes: dict[str, int] = field(default_factory=dict)  # CLI command -> exit code
    pages: dict[str, bytes] = field(default_factory=dict)  # page -> everything it rendered
    page_errors: dict[str, list[str]] = field(default_factory=dict)  # page -> st.error texts
    page_exceptions: dict[str, list[str]] = field(default_factory=dict)
    run_id: str = ""
    page_run_id: str = ""
    page_run_cells: int = 0


def make_database(server: PostgresServer) -> str:
    """A role with the recognisable password and a database of its own; returns its name."""
    name = "pd_" + secrets.token_hex(6)
    with psycopg.connect(server.url(), autocommit=True) as db:
        db.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)
            )
        )
        db.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(*map(sql.Identifier, (name, ROLE)))
        )
    return name


def make_workspace(root: Path, server: LLMServer) -> None:
    for name, model in (("one", "db-one"), ("two", "db-two")):
        path = root / "prompts" / "d" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"model: fake/{model}\nparams: {{max_tokens: 20}}\nuser: 'Q: {{{{ input }}}}'\n"
        )
    (root / "datasets").mkdir()
    rows = [f"r{i},{'ab'[i % 2]},question {i}" for i in range(4)]
    (root / "datasets" / "qa.csv").write_text("id,category,input\n" + "\n".join(rows) + "\n")
    (root / "datasets" / "qa.suite.yaml").write_text(SUITE)
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{server.openai_url}', free: true}}\n"
    )


def cli(flows: Flows, name: str, url: str, *args: str) -> str:
    """The CLI in the workspace with `url` as its database; stdout and stderr kept as log
    files there (scanned with every other file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env |= {
        "PROMPTDECK_HOME": str(flows.home),
        "PROMPTDECK_DATABASE_URL": url,
        "PYTHONPATH": str(REPO),
    }
    logs = flows.root / "logs"
    logs.mkdir(exist_ok=True)
    out_log, err_log = logs / f"{name}.out.log", logs / f"{name}.err.log"
    with out_log.open("w") as out, err_log.open("w") as err:
        done = subprocess.run(
            [sys.executable, "-m", "promptdeck", *args],
            cwd=flows.root,
            env=env,
            stdout=out,
            stderr=err,
            timeout=60,
        )
    flows.codes[name] = done.returncode
    flows.outputs[name] = out_log.read_text() + err_log.read_text()
    return flows.outputs[name]


def show_page(flows: Flows, name: str, page: str | None, **query: str) -> AppTest:
    """The app started at Home, then switched to `page`, whatever it shows (no assertion:
    the failure pages are checked by the tests)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=30)
    at.run()
    if page is not None and not at.exception:
        at.query_params.update(query)
        at.switch_page(page).run()
    flows.pages[name] = rendered(at)
    flows.page_errors[name] = [str(e.value) for e in at.error]
    flows.page_exceptions[name] = [str(e.value) for e in at.exception]
    return at


def evaluate_from_the_page(flows: Flows) -> None:
    """Plan and start an eval on the Evaluate page; its background job writes to the
    database; the page drawn after it finished is what is scanned."""
    at = open_page("pages/evaluate.py")
    at.radio(key="ev_source").set_value("A dataset").run()
    datasets = at.selectbox(key="ev_dataset")
    datasets.select_index(datasets.options.index("qa.csv")).run()
    at.multiselect(key="ev_variants").set_value(["d/one", "d/two"]).run()
    at.text_input(key="ev_judge_model").input("fake/db-judge").run()
    at.button[0].click().run()
    flows.page_run_id = at.session_state["ev_run"]
    job = ui.jobs().get(flows.page_run_id)
    assert job is not None and job.wait(30)
    at.run()
    assert not at.exception, at.exception
    flows.pages["Evaluate (its eval)"] = rendered(at)
    store = Store(flows.url)
    flows.page_run_cells = len(store.results(flows.page_run_id))


@pytest.fixture(scope="module")
def flows(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[Flows]:
    root = tmp_path_factory.mktemp("dbsecret-workspace")
    home = tmp_path_factory.mktemp("dbsecret-home")  # PROMPTDECK_HOME outside the workspace
    database = make_database(postgres_server)
    port = postgres_server.port
    flows = Flows(root, home, database_url(port, database), masked(port, database))
    down, gone = closed_port(), "pd_gone_" + secrets.token_hex(4)
    flows.failing = {
        "wrong password": (database_url(port, database, WRONG), masked(port, database)),
        "closed port": (database_url(down, database), masked(down, database)),
        "no such database": (database_url(port, gone), masked(port, gone)),
    }
    with LLMServer() as server, pytest.MonkeyPatch.context() as mp:
        server.set_scenario("db-judge", Scenario(tokens=[VERDICT]))
        make_workspace(root, server)
        mp.chdir(root)
        mp.setenv("PROMPTDECK_HOME", str(home))
        mp.delenv("PROMPTDECK_PROVIDERS", raising=False)

        cli(flows, "migrate", flows.url, "db", "migrate")
        flows.run_id = cli(flows, "run", flows.url, "run", "datasets/qa.suite.yaml")
        flows.run_id = flows.run_id.splitlines()[0].removeprefix("run_id: ")
        cli(flows, "gate", flows.url, "gate", "latest")
        (root / "exports").mkdir()
        cli(
            flows, "report", flows.url, "report", flows.run_id, "--html", "exports/report.html",
            "--md", "exports/summary.md", "--csv", "exports/cells.csv",
        )  # fmt: skip
        cli(flows, "no such run", flows.url, "report", "20990101-000000-beef", "--md", "x.md")
        for failure, (url, _) in flows.failing.items():
            cli(flows, failure, url, "run", "datasets/qa.suite.yaml")

        mp.setenv("PROMPTDECK_DATABASE_URL", flows.url)
        for name, page in PAGES.items():
            query = {"run": flows.run_id} if name in ("Evaluate", "Results") else {}
            show_page(flows, name, page, **query)
        evaluate_from_the_page(flows)
        for failure, (url, _) in flows.failing.items():
            mp.setenv("PROMPTDECK_DATABASE_URL", url)
            for name, page in PAGES.items():
                show_page(flows, f"{name}, {failure}", page)
        yield flows
    ui._open_store.clear()  # the pages' store on this database, then the process's pool for
    Store(flows.url).close()  # it: the session's server outlives this module


def written_files(flows: Flows) -> list[Path]:
    return [p for base in (flows.root, flows.home) for p in base.rglob("*") if p.is_file()]


def test_the_flows_ran_on_postgresql(flows: Flows) -> None:
    assert flows.codes["migrate"] == 0
    assert flows.outputs["migrate"].startswith(f"postgresql store at {flows.shown_as}: ")
    assert flows.codes["run"] == 0 and flows.codes["report"] == 0
    assert flows.codes["gate"] in (
        0,
        1,
    )  # 1: a gate lacks evidence with 4 rows; 2 would be an error
    store = Store(flows.url)
    assert len(store.results(flows.run_id)) == 8  # 4 rows x 2 variants, in the database
    assert flows.page_run_cells == 8  # the Evaluate page's eval, in the database too
    assert {s["value"] for s in store.scores(flows.run_id) if s["scorer"] == "judge"} == {4}
    for name in ("report.html", "summary.md", "cells.csv"):
        assert (flows.root / "exports" / name).stat().st_size > 0


def test_a_page_on_postgresql_shows_its_runs(flows: Flows) -> None:
    for name in PAGES:
        assert flows.page_exceptions[name] == [], name
        assert flows.page_errors[name] == [], name
    assert flows.run_id.encode() in flows.pages["Home"]
    assert flows.shown_as.encode() in flows.pages["Home"]  # where the runs are kept, masked
    assert flows.run_id.encode() in flows.pages["Evaluate"]
    assert flows.run_id.encode() in flows.pages["Results"]
    assert flows.page_run_id.encode() in flows.pages["Evaluate (its eval)"]


def test_a_missing_run_names_the_database_masked(flows: Flows) -> None:
    assert flows.codes["no such run"] == 2
    out = flows.outputs["no such run"]
    assert f"no run '20990101-000000-beef' in {flows.shown_as}" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("failure", FAILURES)
def test_the_cli_fails_with_the_database_masked(flows: Flows, failure: str) -> None:
    out = flows.outputs[failure]
    assert flows.codes[failure] == 2, out
    assert out.startswith(f"error: cannot open the database at {flows.failing[failure][1]}: ")
    assert "Traceback" not in out and 'File "' not in out  # what is wrong, no stack


@pytest.mark.parametrize("failure", FAILURES)
def test_a_page_fails_with_an_error_not_a_traceback(flows: Flows, failure: str) -> None:
    shown_as = flows.failing[failure][1]
    for name in PAGES:
        page = f"{name}, {failure}"
        assert flows.page_exceptions[page] == [], page
        errors = " ".join(flows.page_errors[page]).replace("\\", "")  # ui.plain's escapes
        assert errors.startswith("**The run store cannot be opened.** "), page
        assert f"cannot open the database at {shown_as}: " in errors, page
        assert errors.endswith("Check PROMPTDECK_DATABASE_URL, then reload."), page


def test_the_reasons_are_told_apart(flows: Flows) -> None:
    """Each failure says what is wrong, in the words of the server or the client."""
    assert "password authentication failed" in flows.outputs["wrong password"]
    assert "Connection refused" in flows.outputs["closed port"]
    assert "does not exist" in flows.outputs["no such database"]


def test_no_output_file_or_page_holds_the_password(flows: Flows) -> None:
    assert set(flows.outputs) == {"migrate", "run", "gate", "report", "no such run", *FAILURES}
    assert {
        name: found for name, out in flows.outputs.items() if (found := hits(out.encode()))
    } == {}
    leaks = {str(p): found for p in written_files(flows) if (found := hits(p.read_bytes()))}
    assert leaks == {}
    names = {p.name for p in written_files(flows)}
    assert {"report.html", "summary.md", "cells.csv", "run.err.log", "migrate.out.log"} <= names
    assert len(flows.pages) == len(PAGES) * (1 + len(FAILURES)) + 1
    on_pages = {page: hits(data) for page, data in flows.pages.items()}
    assert {page: found for page, found in on_pages.items() if found} == {}


def test_no_sqlite_file_is_created(flows: Flows) -> None:
    made = [p for base in (flows.root, flows.home) for p in base.rglob("*.sqlite*")]
    assert made == []
    assert not (flows.root / ".promptdeck").exists()


def test_the_scanner_finds_the_password_in_the_url() -> None:
    """A control: the URL itself, or its password decoded, would be found."""
    url = database_url(5432, "db")
    assert "password url-encoded" in hits(url.encode())
    assert "password raw" in hits(f"password={PASSWORD}".encode())
    assert "wrong random part" in hits(WRONG_TOKEN.encode())
    assert hits(masked(5432, "db").encode()) == []
