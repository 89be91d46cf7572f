"""How `promptdeck run` ends: it skips the collector's last pass at exit (cli._exit_quickly),
so it closes its store itself; a SQLite store then folds its WAL into the file and removes
it, as when the collector closed it."""

from pathlib import Path

from tests.llm_server import LLMServer, Scenario
from tests.test_cli import cli, make_workspace, read_db, run_id_of

JUDGED = (
    "dataset: qa.csv\nvariants: [qa/alpha, qa/beta]\nbaseline: qa/alpha\n"
    "judge: {model: fake/judge, rubric: Be strict.}\n"
)


def test_a_run_closes_its_store_and_prints_everything(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=['{"reasoning": "Fine.", "score": 4}']))
    root = make_workspace(tmp_path, llm_server, suite=JUDGED)
    done = cli(root, "run", "datasets/qa.suite.yaml")
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)
    assert sorted(p.name for p in (root / "home").iterdir()) == ["promptdeck.sqlite"]
    assert read_db(root, "SELECT COUNT(*) FROM results WHERE run_id = ?", run_id) == [(20,)]
    assert done.stdout.rstrip().splitlines()[-1].endswith("4.00 (n=10)")  # the summary's end
