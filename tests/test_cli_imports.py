"""`promptdeck run` sends its first request before it imports the analysis: pandas, numpy,
altair, jsonschema and llama_cpp are loaded after the calls, if at all.

Observed, not timed: the CLI runs under `python -X importtime`, which writes each import
to stderr as it completes, against the local server holding every request open
(`Scenario.stall`). When the first request has arrived, the log lists every module the CLI
loaded before sending it. The suite has gates, so the gate parser has run by then too.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.llm_server import LLMServer, Scenario
from tests.test_cli import cli_env, make_workspace

HEAVY = ("pandas", "numpy", "pyarrow", "altair", "jsonschema", "llama_cpp", "ruamel")
JUDGED = (
    "dataset: qa.csv\nvariants: [qa/alpha, qa/beta]\nbaseline: qa/alpha\n"
    "judge: {model: fake/judge, rubric: Be strict.}\n"
    "gates:\n  - {metric: judge_score, max_drop: 0.5}\n  - {metric: error_rate, max: 0.0}\n"
)
SAMPLED = JUDGED + "sample: {n: 6, seed: 1}\n"


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def imported(log: str) -> set[str]:
    """The modules in a `-X importtime` log ("import time: self | cumulative | name")."""
    lines = [line for line in log.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}  # [0]: the header


def test_importing_the_cli_loads_no_heavy_module() -> None:
    code = "import sys, promptdeck.cli; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "promptdeck.cli" in loaded
    assert heavy(loaded) == []


@pytest.mark.parametrize(
    "suite",
    [
        JUDGED,
        pytest.param(
            SAMPLED,
            marks=pytest.mark.xfail(
                strict=True,
                reason="workspace/dataset_sample.py imports numpy to stratify the sample, "
                "before the first call",
            ),
        ),
    ],
    ids=["whole-dataset", "sampled"],
)
def test_the_first_request_leaves_before_any_heavy_import(
    llm_server: LLMServer, tmp_path: Path, suite: str
) -> None:
    llm_server.default_scenario = Scenario(stall=60)  # every request is held open
    root = make_workspace(tmp_path, llm_server, suite=suite)
    log = tmp_path / "imports.log"
    args = ["-X", "importtime", "-m", "promptdeck", "run", "datasets/qa.suite.yaml", "--gate"]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=root, env=cli_env(root), stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not llm_server.requests and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            before_first = imported(log.read_text())
        finally:
            proc.kill()
            proc.wait()
    assert llm_server.requests, log.read_text()[-2000:]
    assert {"httpx", "promptdeck.analysis.gate_spec", "promptdeck.evals.runner"} <= before_first
    assert heavy(before_first) == []
