"""`promptdeck db migrate` and `promptdeck db copy`: a laptop's history moves into the
team's PostgreSQL (a real server, tests/postgres.py) and is used from there."""

from __future__ import annotations

from pathlib import Path

from tests.llm_server import LLMServer
from tests.postgres import PostgresServer
from tests.test_cli import DATABASE_URLS, cli, make_workspace, read_db, run_id_of, use_store

SUITE = (
    "dataset: qa.csv\nsample: {n: 6, seed: 1}\nvariants: [qa/alpha, qa/beta]\nbaseline: qa/alpha\n"
    "gates:\n  - {metric: error_rate, max: 0.5}\n"
)


def test_migrate_then_copy_a_laptop_history_into_the_team_database(
    llm_server: LLMServer, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    root = make_workspace(tmp_path, llm_server, suite=SUITE)
    done = cli(root, "run", "datasets/qa.suite.yaml")
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)
    laptop = read_db(root, "SELECT * FROM results ORDER BY row_id, variant")
    team_url = postgres_server.new_database()
    password = postgres_server.password

    use_store(root, team_url)  # from here on, the CLI uses the team database
    try:
        migrated = cli(root, "db", "migrate")
        assert migrated.returncode == 0, migrated.stderr
        masked = team_url.replace(password, "***")
        assert migrated.stdout == (
            f"postgresql store at {masked}: schema version 10 (applied migrations 1-10)\n"
        )
        again = cli(root, "db", "migrate")
        assert again.stdout.endswith("schema version 10 (already current)\n")

        source = f"sqlite:///{root / 'home' / 'promptdeck.sqlite'}"
        copied = cli(root, "db", "copy", "--from", source, "--to", team_url)
        assert copied.returncode == 0, copied.stderr
        assert "results: 12 rows\n" in copied.stdout and "runs: 1 rows\n" in copied.stdout
        assert copied.stdout.endswith(f"-> {masked}\n")
        assert read_db(root, "SELECT * FROM results ORDER BY row_id, variant") == laptop

        gate = cli(root, "gate", "latest")  # the copied run, read from PostgreSQL
        assert gate.returncode == 0 and "error_rate" in gate.stdout, gate.stderr
        report = cli(root, "report", run_id, "--md", str(tmp_path / "r.md"))
        assert report.returncode == 0, report.stderr
        assert run_id in (tmp_path / "r.md").read_text()

        refused = cli(root, "db", "copy", "--from", source, "--to", team_url)
        assert refused.returncode == 2
        assert f"error: the target {masked} is not empty: runs (1)" in refused.stderr
        for output in (migrated, again, copied, gate, report, refused):
            assert password not in output.stdout + output.stderr
    finally:
        DATABASE_URLS.pop(root, None)


def test_a_bad_url_is_an_error_that_names_it_without_the_password(
    llm_server: LLMServer, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    root = make_workspace(tmp_path, llm_server)
    wrong = postgres_server.url().replace(postgres_server.password, "not-the-password-123")
    done = cli(root, "db", "copy", "--from", wrong, "--to", "sqlite:///copy.sqlite")
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"error: cannot open the database at {wrong.replace('not-the-password-123', '***')}: "
    )
    assert "password authentication failed" in done.stderr
    assert "not-the-password-123" not in done.stderr and "Traceback" not in done.stderr
    assert not (root / "copy.sqlite").exists()  # the source failed first: nothing created


def test_a_missing_source_file_is_named_and_nothing_is_created(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    root = make_workspace(tmp_path, llm_server)
    done = cli(root, "db", "copy", "--from", "sqlite:///typo.sqlite", "--to", "sqlite:///b.sqlite")
    assert (done.returncode, done.stderr) == (2, "error: no SQLite store at typo.sqlite\n")
    assert not (root / "typo.sqlite").exists() and not (root / "b.sqlite").exists()
