"""`python -m promptdeck run ...` end to end: a real subprocess in a temp workspace, against
the local OpenAI-wire-format server, with the store read back through SQLite."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from promptdeck.workspace.datasets import load_dataset
from promptdeck.workspace.sampling import sample_cases
from tests.llm_server import LLMServer, Scenario

REPO = Path(__file__).resolve().parents[1]
ROWS = 10
# variant -> (model, user template); each model has its own prefix, so a request names its cell
VARIANTS = {
    "qa/alpha": ("fake/alpha", "A: {{ input }}"),
    "qa/beta": ("fake/beta", "B: {{ input }}"),
}
SUITE = "dataset: qa.csv\nsample: {n: 6, seed: 1}\nvariants: [qa/alpha, qa/beta]\n"


def make_workspace(root: Path, server: LLMServer, rows: int = ROWS, suite: str = SUITE) -> Path:
    for name, (model, user) in VARIANTS.items():
        path = root / "prompts" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"model: {model}\nparams: {{temperature: 0}}\nuser: '{user}'\n")
    (root / "datasets").mkdir()
    lines = ["id,category,input"] + [f"r{i:02},{'xyz'[i % 3]},q{i:02}" for i in range(rows)]
    (root / "datasets" / "qa.csv").write_text("\n".join(lines) + "\n")
    (root / "datasets" / "qa.suite.yaml").write_text(suite)
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{server.openai_url}', free: true}}\n"
    )
    return root


# workspace root -> its PROMPTDECK_DATABASE_URL, for the tests that run on PostgreSQL too
DATABASE_URLS: dict[Path, str] = {}


def use_store(root: Path, store_target: str) -> None:
    """The CLI of this workspace uses `store_target` (the `store_target` fixture): a
    PostgreSQL URL, or the SQLite file under root/home that it uses anyway."""
    if "://" in store_target:
        DATABASE_URLS[root] = store_target
    else:
        assert Path(store_target) == root / "home" / "promptdeck.sqlite"


def cli_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env |= {"PROMPTDECK_HOME": str(root / "home"), "PYTHONPATH": str(REPO)}
    if root in DATABASE_URLS:
        env["PROMPTDECK_DATABASE_URL"] = DATABASE_URLS[root]
    return env


def start_cli(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "promptdeck", *args],
        cwd=root,
        env=cli_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptdeck", *args],
        cwd=root,
        env=cli_env(root),
        capture_output=True,
        text=True,
        timeout=30,
    )


def run_id_of(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("run_id: "), stdout
    return first.removeprefix("run_id: ")


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """Summary rows by variant: cells, errors, cached, fallbk, p50, p95, tok out, cost, ..."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["variant", "cells"])
    return {line.split()[0]: line.split()[1:] for line in lines[head + 1 :] if line.strip()}


def read_db(root: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read-only, so that the test never changes (or locks) what the CLI wrote."""
    if root in DATABASE_URLS:
        with psycopg.connect(DATABASE_URLS[root]) as pg:
            pg.read_only = True
            return pg.execute(sql.replace("?", "%s"), params).fetchall()
    path = root / "home" / "promptdeck.sqlite"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def cell_keys(root: Path, run_id: str) -> list[tuple[str, str]]:
    rows = read_db(root, "SELECT row_id, variant FROM results WHERE run_id = ?", run_id)
    return sorted(rows)


def asked(
    server: LLMServer, since: float = 0.0, until: float = float("inf")
) -> list[tuple[str, str]]:
    """(model, user message) of every request the server received in [since, until)."""
    return [
        (r.model, r.body["messages"][-1]["content"])
        for r in server.requests
        if since <= r.arrived < until
    ]


def request_of(row_id: str, variant: str) -> tuple[str, str]:
    model, user = VARIANTS[variant]
    return model.removeprefix("fake/"), user.replace("{{ input }}", "q" + row_id[1:])


def expected_rows(root: Path, n: int, seed: int) -> list[str]:
    dataset = load_dataset(root / "datasets" / "qa.csv")
    return [c.id for c in sample_cases(dataset.cases, n=n, seed=seed)]


def test_run_stores_every_cell_and_prints_a_summary(llm_server: LLMServer, tmp_path: Path) -> None:
    root = make_workspace(tmp_path, llm_server)
    done = cli(root, "run", "datasets/qa.suite.yaml")
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)
    rows = expected_rows(root, 6, 1)
    cells = sorted((r, v) for r in rows for v in VARIANTS)
    assert cell_keys(root, run_id) == cells
    assert read_db(root, "SELECT status, total_cells FROM runs WHERE id = ?", run_id) == [
        ("done", 12)
    ]
    outputs = read_db(root, "SELECT row_id, variant, output, error FROM results")
    assert sorted(outputs) == [(r, v, "Echo: " + request_of(r, v)[1], None) for r, v in cells]
    assert sorted(asked(llm_server)) == sorted(request_of(r, v) for r, v in cells)
    summary = summary_rows(done.stdout)
    assert sorted(summary) == sorted(VARIANTS)
    for row in summary.values():
        assert row[:4] == ["6", "0", "0", "0"]  # cells, errors, cached, fallbacks
        assert row[7] == "$0"  # the cost column: a free provider
    assert "12/12" in done.stderr  # the progress line reaches the end


def test_sample_and_seed_override_the_suite(llm_server: LLMServer, tmp_path: Path) -> None:
    root = make_workspace(tmp_path, llm_server)
    small = cli(root, "run", "datasets/qa.suite.yaml", "--sample", "3", "--seed", "5")
    assert small.returncode == 0, small.stderr
    rows = expected_rows(root, 3, 5)
    assert rows != expected_rows(root, 3, 1)  # the seed really changes the sample
    run_id = run_id_of(small.stdout)
    assert cell_keys(root, run_id) == sorted((r, v) for r in rows for v in VARIANTS)
    [(total,)] = read_db(root, "SELECT total_cells FROM runs WHERE id = ?", run_id)
    assert total == 6

    everything = cli(root, "run", "datasets/qa.suite.yaml", "--sample", "100")
    assert everything.returncode == 0, everything.stderr
    assert len(cell_keys(root, run_id_of(everything.stdout))) == ROWS * 2


def test_an_identical_rerun_is_served_from_the_cache(llm_server: LLMServer, tmp_path: Path) -> None:
    root = make_workspace(tmp_path, llm_server)
    first = cli(root, "run", "datasets/qa.suite.yaml")
    assert first.returncode == 0, first.stderr
    before = len(llm_server.requests)
    assert before == 12

    second = cli(root, "run", "datasets/qa.suite.yaml")
    assert second.returncode == 0, second.stderr
    assert len(llm_server.requests) == before  # zero requests
    run_id = run_id_of(second.stdout)
    assert run_id != run_id_of(first.stdout)  # the first run was done: a new run, not a resume
    assert read_db(root, "SELECT COUNT(*), SUM(cached) FROM results WHERE run_id = ?", run_id) == [
        (12, 12)
    ]
    assert all(row[2] == "6" for row in summary_rows(second.stdout).values())  # cached column


BAD_VARIANT = "model: fake/alpha\nuser: 'Q: {{ question }}'\n"


@pytest.mark.parametrize(
    ("args", "suite", "expected"),
    [
        (["datasets/missing.suite.yaml"], None, ["datasets/missing.suite.yaml"]),
        (
            ["datasets/bad.suite.yaml"],
            "dataset: qa.csv\nvariants: [qa/alpha]\nsampel: {n: 3}\n",
            ["datasets/bad.suite.yaml", "line 3", "sampel"],
        ),
        (
            ["datasets/bad.suite.yaml"],
            "dataset: qa.csv\nvariants: [qa/alpha, qa/nope]\n",
            ["unknown variant", "qa/nope"],
        ),
        (
            ["datasets/bad.suite.yaml"],
            "dataset: qa.csv\nvariants: [qa/alpha, qa/asks]\n",
            ["qa/asks", "question"],
        ),
        (["datasets/qa.suite.yaml", "--sample", "many"], None, ["--sample", "many"]),
        ([], None, ["suite"]),
    ],
    ids=[
        "missing-file",
        "unknown-key",
        "unknown-variant",
        "missing-variable",
        "bad-int",
        "no-suite",
    ],
)
def test_usage_and_config_errors_exit_2_with_a_clear_message(
    llm_server: LLMServer,
    tmp_path: Path,
    args: list[str],
    suite: str | None,
    expected: list[str],
) -> None:
    root = make_workspace(tmp_path, llm_server)
    (root / "prompts" / "qa" / "asks.yaml").write_text(BAD_VARIANT)
    if suite is not None:
        (root / "datasets" / "bad.suite.yaml").write_text(suite)
    done = cli(root, "run", *args)
    assert done.returncode == 2
    assert done.stdout == ""  # no run id: nothing was started
    assert "Traceback" not in done.stderr
    for part in expected:
        assert part in done.stderr
    assert llm_server.requests == []
    store = root / "home" / "promptdeck.sqlite"
    assert not store.exists() or read_db(root, "SELECT COUNT(*) FROM runs") == [(0,)]


def stored_results(root: Path) -> int:
    try:
        return int(read_db(root, "SELECT COUNT(*) FROM results")[0][0])
    except (sqlite3.OperationalError, psycopg.Error):  # no store (or not migrated) yet
        return 0


def kill_mid_run(
    root: Path, proc: subprocess.Popen[str], server: LLMServer, at_least: int, in_flight: int
) -> None:
    """SIGKILL once `at_least` cells are stored and `in_flight` more calls are open on the server.

    With every answer taking 100 ms, that state holds for ~100 ms once reached (the workers
    send their next call within a few ms of storing the last one), so the kill lands in it.
    """
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        asked_before = len(server.requests)
        stored = stored_results(root)
        if stored >= at_least and asked_before == len(server.requests) == stored + in_flight:
            os.kill(proc.pid, signal.SIGKILL)
            return
        time.sleep(0.005)
    raise AssertionError(f"never {at_least} results stored and {in_flight} calls open in 10 s")


@pytest.mark.parametrize(
    ("gate", "where", "what"),
    [
        ("{metric: judge_scor, max_drop: 0.2}", "'gates[0].metric'", "unknown metric 'judge_scor'"),
        ('{metric: error_rate, max: "2%"}', "'gates[0].max'", "max must be a number"),
    ],
    ids=["unknown-metric", "percent-limit"],
)
def test_a_bad_gate_is_refused_at_load_before_any_request(
    llm_server: LLMServer, tmp_path: Path, gate: str, where: str, what: str
) -> None:
    root = make_workspace(tmp_path, llm_server, suite=SUITE + f"gates:\n  - {gate}\n")
    done = cli(root, "run", "datasets/qa.suite.yaml", "--gate")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"datasets/qa.suite.yaml, line 5: {where}: {what}" in done.stderr
    assert done.stdout == "" and llm_server.requests == []  # no run, no call
    assert not (root / "home").exists()  # not even a store


def test_a_killed_run_resumes_and_repeats_nothing_it_finished(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    """On SQLite and on PostgreSQL (`store_target`)."""
    rows, concurrency = 20, 2
    for model, _ in VARIANTS.values():
        llm_server.set_scenario(model.removeprefix("fake/"), Scenario(first_token_delay=0.1))
    suite = "dataset: qa.csv\nvariants: [qa/alpha, qa/beta]\n"
    root = make_workspace(tmp_path, llm_server, rows=rows, suite=suite)
    use_store(root, store_target)
    args = ("run", "datasets/qa.suite.yaml", "--no-cache", "--concurrency", str(concurrency))

    first = start_cli(root, *args)
    try:
        kill_mid_run(root, first, llm_server, at_least=8, in_flight=concurrency)
    finally:
        out, _ = first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    run_id = run_id_of(out)
    finished = read_db(root, "SELECT * FROM results ORDER BY row_id, variant")
    assert 8 <= len(finished) < rows * 2
    assert read_db(root, "SELECT id, status FROM runs") == [(run_id, "running")]  # never told

    resumed_at = time.monotonic()  # every request from here on is the second process's
    second = cli(root, *args)
    assert second.returncode == 0, second.stderr
    assert f"resuming run {run_id}: {len(finished)} of {rows * 2} cells done" in second.stderr
    assert run_id_of(second.stdout) == run_id

    all_cells = sorted((f"r{i:02}", v) for i in range(rows) for v in VARIANTS)
    assert cell_keys(root, run_id) == all_cells  # every cell, each exactly once
    assert read_db(root, "SELECT id, status FROM runs") == [(run_id, "done")]
    kept = {(r[1], r[2]) for r in finished}  # (row_id, variant) of the cells stored before
    again = read_db(root, "SELECT * FROM results ORDER BY row_id, variant")
    assert [r for r in again if (r[1], r[2]) in kept] == finished  # output, created, ...: same

    # The first process asked once for each stored cell plus the `concurrency` cells in flight
    # at the kill; the second asked once for each cell that was not stored. So the in-flight
    # cells were asked twice, every other cell once.
    first_asked = asked(llm_server, until=resumed_at)
    lost = set(first_asked) - {request_of(*cell) for cell in kept}
    assert len(first_asked) == len(finished) + concurrency and len(lost) == concurrency
    assert sorted(asked(llm_server, since=resumed_at)) == sorted(
        request_of(*cell) for cell in all_cells if cell not in kept
    )
    assert Counter(asked(llm_server)) == {
        request_of(*cell): 2 if request_of(*cell) in lost else 1 for cell in all_cells
    }
    assert len(llm_server.requests) == rows * 2 + concurrency
    if root not in DATABASE_URLS:
        assert read_db(root, "PRAGMA integrity_check") == [("ok",)]
    else:  # the database is the only store: no SQLite file was made under PROMPTDECK_HOME
        assert not (root / "home").exists() or list((root / "home").rglob("*.sqlite*")) == []


def test_two_workspaces_write_to_one_store_at_once_and_see_each_other(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    """Two teammates' CLI runs, from their own workspaces (own prompts, own cwd), into one
    store at the same time: both finish whole, and each can report the other's run."""
    llm_server.default_scenario = Scenario(first_token_delay=0.02)
    suite = "dataset: qa.csv\nvariants: [qa/alpha, qa/beta]\n"
    roots = [make_workspace(tmp_path / name, llm_server, rows=15, suite=suite) for name in "ab"]
    for root in roots:
        use_store(
            root,
            store_target if "://" in store_target else str(root / "home" / "promptdeck.sqlite"),
        )
    if "://" not in store_target:  # one SQLite file, shared
        DATABASE_URLS.pop(roots[1], None)
        roots[1].joinpath("home").symlink_to(roots[0] / "home", target_is_directory=True)
        roots[0].joinpath("home").mkdir()
    running = [
        start_cli(root, "run", "datasets/qa.suite.yaml", "--no-cache", "--concurrency", "4")
        for root in roots
    ]
    outcomes = [p.communicate(timeout=60) for p in running]
    assert [p.returncode for p in running] == [0, 0], outcomes
    run_ids = [run_id_of(out) for out, _ in outcomes]
    assert run_ids[0] != run_ids[1]
    for root, other in zip(roots, reversed(run_ids), strict=True):
        assert len(cell_keys(root, other)) == 30  # every cell of the other run, once
        report = cli(root, "report", other, "--md", str(root / "other.md"))
        assert report.returncode == 0, report.stderr
        assert other in (root / "other.md").read_text()
    assert sorted(r[0] for r in read_db(roots[0], "SELECT id FROM runs")) == sorted(run_ids)
    assert len(llm_server.requests) == 60  # nothing asked twice


JUDGED = SUITE.replace("sample: {n: 6, seed: 1}", "sample: {n: 10, seed: 1}") + (
    "baseline: qa/alpha\n"
    "judge: {model: fake/judge, rubric: Be strict.}\n"
    "gates:\n  - {metric: judge_score, max_drop: 1.5}\n  - {metric: error_rate, max: 0.0}\n"
)


def test_judged_run_gates_and_reports_exit_codes(tmp_path: Path, llm_server: LLMServer) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=['{"reasoning": "Fine.", "score": 4}']))
    root = make_workspace(tmp_path, llm_server, suite=JUDGED)
    done = cli(root, "run", "datasets/qa.suite.yaml", "--gate")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = run_id_of(done.stdout)
    beta = next(line for line in done.stdout.splitlines() if line.startswith("qa/beta"))
    assert beta.endswith("4.00 (n=10)")  # the judge's mean, with the scored count
    assert "judge_score drop ≤ 1.5" in done.stdout and done.stdout.rstrip().endswith("gates: pass")
    report = cli(root, "report", run_id, "--csv", "cells.csv", "--html", "r.html", "--md", "r.md")
    assert report.returncode == 0, report.stderr
    csv_text = (root / "cells.csv").read_text()
    assert csv_text.count(",4.0,Fine.,") == 20  # every cell: judge score and reasoning
    assert "<svg" in (root / "r.html").read_text() and "✅" in (root / "r.md").read_text()
    # The same run with a stricter gate file: a failing gate exits 1.
    llm_server.set_scenario("beta", Scenario(fail_statuses=[401] * 100))  # never retried
    failing = cli(root, "run", "datasets/qa.suite.yaml", "--gate", "--new", "--no-cache")
    assert failing.returncode == 1 and "error_rate ≤ 0" in failing.stdout
    assert failing.stdout.rstrip().endswith("gates: fail")
    assert cli(root, "gate", run_id).returncode == 0
    assert cli(root, "gate", run_id_of(failing.stdout)).returncode == 1
    missing = cli(root, "gate", "no-such-run")
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr


def test_the_promptdeck_command_is_installed(llm_server: LLMServer, tmp_path: Path) -> None:
    """`promptdeck run` (the console script from pyproject.toml) works as `python -m` does."""
    command = Path(sys.executable).parent / "promptdeck"
    root = make_workspace(tmp_path, llm_server)
    done = subprocess.run(
        [str(command), "run", "datasets/qa.suite.yaml", "--sample", "2"],
        cwd=root, env=cli_env(root), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(cell_keys(root, run_id_of(done.stdout))) == 4
    usage = subprocess.run([str(command), "--help"], capture_output=True, text=True, check=False)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: promptdeck ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["report", "latest", "--html", "no/such/dir/r.html"],
            "the folder no/such/dir does not exist",
        ),
        (["report", "latest", "--md", "datasets"], "datasets is a folder"),
        (["export-promptfoo", "datasets/qa.suite.yaml", "--out", "nope/p.yaml"], "nope does not"),
        (["import-promptfoo", "x.yaml", "--out", "no/ws"], "the folder no does not exist"),
        (["run", "datasets/qa.suite.yaml", "--rpm", "nan"], "must be a number more than 0"),
        (["run", "datasets/qa.suite.yaml", "--rpm", "inf"], "must be a number more than 0"),
    ],
    ids=["report-folder", "report-is-dir", "export-folder", "import-folder", "rpm-nan", "rpm-inf"],
)
def test_bad_output_paths_and_numbers_exit_2_without_a_traceback(
    llm_server: LLMServer, tmp_path: Path, args: list[str], message: str
) -> None:
    root = make_workspace(tmp_path, llm_server)
    done = cli(root, *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (root / "no").exists() and not (root / "nope").exists()  # nothing created


def test_an_unwritable_report_file_is_named(llm_server: LLMServer, tmp_path: Path) -> None:
    root = make_workspace(tmp_path, llm_server)
    assert cli(root, "run", "datasets/qa.suite.yaml", "--sample", "1").returncode == 0
    done = cli(root, "report", "latest", "--csv", "/dev/full")  # every write fails: ENOSPC
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "cannot write /dev/full: No space left on device" in done.stderr


UNTIL = SUITE + (
    "baseline: qa/alpha\njudge: {model: fake/judge, rubric: Be fair.}\n"
    "gates:\n  - {metric: judge_score, max_drop: 1.0}\n  - {metric: error_rate, max: 0.1}\n"
)


def test_plan_says_how_many_rows_each_gate_needs_and_calls_nothing(
    tmp_path: Path, llm_server: LLMServer
) -> None:
    root = make_workspace(tmp_path, llm_server, rows=60, suite=UNTIL)
    done = cli(root, "run", "datasets/qa.suite.yaml", "--plan")
    assert done.returncode == 0, done.stderr
    assert "qa: 6 rows (x 2, y 2, z 2)" in done.stdout
    assert "judge_score drop ≤ 1: to decide it you need about 21 rows per variant" in done.stdout
    assert "this sample has 6 (too few)" in done.stdout and "cautious per-row sd" in done.stdout
    assert llm_server.requests == [] and "run_id" not in done.stdout


def test_until_decided_adds_batches_and_stops_when_decided(
    tmp_path: Path, llm_server: LLMServer
) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=['{"reasoning": "Fine.", "score": 4}']))
    root = make_workspace(tmp_path, llm_server, rows=60, suite=UNTIL)
    done = cli(root, "run", "datasets/qa.suite.yaml", "--until-decided", "--batch", "5", "--gate")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = run_id_of(done.stdout)
    assert "stopped after 20 rows and 4 looks: every gate was decided after 20 rows" in done.stdout
    assert done.stdout.rstrip().endswith("gates: pass")
    rows = {r for r, _ in cell_keys(root, run_id)}
    assert len(rows) == 20 and len(llm_server.requests) == 2 * 20 * 2  # answers + verdicts
    # A budget that ends first: stopped, said why, the gate still undecided.
    again = cli(root, "run", "datasets/qa.suite.yaml", "--until-decided", "--batch", "5",
                "--max-rows", "10", "--no-cache", "--gate")  # fmt: skip
    assert again.returncode == 1
    assert "stopped after 10 rows and 2 looks: the row budget (10) was reached" in again.stdout
