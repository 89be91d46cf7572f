"""One run, three faces: the Results page, `promptdeck report --html/--md` and `promptdeck
gate` show the same verdicts and the same p95, because they all read `analyze_run`.

The run is built so that the rules that used to differ would disagree here: its suite's
judge gate tolerates a drop of 0.5, so the headline verdict is "within noise" (an
unchanged report threshold of 0.2 would say "underpowered"), and a third of the cells are
cached with a latency measured earlier (a p95 over uncached answers only would differ).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptdeck.analysis.run import analyze_run
from promptdeck.model.types import CallResult, Usage
from promptdeck.scoring.scorers import Score
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord
from tests.pages.conftest import ROOT
from tests.test_cli import cli

GATES = [
    {"metric": "judge_score", "max_drop": 0.5},
    {"metric": "latency_p95_ms", "max": 4000},
    {"metric": "error_rate", "max": 0.1},
]
DELTAS = [-1, 0, 0, 1, 1, 0]  # t/new - t/base, cycled over the rows: a small, noisy gain


def stored_run(home: Path, rows: int = 60) -> str:
    store = Store(home / "promptdeck.sqlite")
    cases = [{"id": f"r{i:02}", "category": "ab"[i % 2], "input": f"q{i}"} for i in range(rows)]
    snapshot = {"suite": {"baseline": "t/base", "gates": GATES}, "cases": cases}
    run_id = store.create_run(snapshot, name="consistency", total_cells=2 * rows)
    for i, case in enumerate(cases):
        for variant, score in (("t/base", 3.0), ("t/new", 3.0 + DELTAS[i % len(DELTAS)])):
            cached = variant == "t/new" and i % 3 == 0
            latency = 3000.0 + 50 * i if cached else 400.0 + 40 * i
            result = CallResult("fake/m", f"{variant} {i}", Usage(9, 4), 80.0, latency, 0.0)
            record = CellRecord(case["id"], variant, 0, case["category"], result, cached)
            store.add_result(run_id, record, [Score("judge", score, None, "why", "fake/j")])
    store.set_run_status(run_id, "done")
    store.close()
    return run_id


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "prompts").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPTDECK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROMPTDECK_PROVIDERS", raising=False)
    return tmp_path


def test_page_report_and_gate_agree_on_verdicts_and_p95(workspace: Path) -> None:
    run_id = stored_run(workspace / "home")
    analysis = analyze_run(Store(workspace / "home" / "promptdeck.sqlite"), run_id)
    [verdict] = list(analysis.headlines["verdict"])
    statuses = [g.status for g in analysis.gates]
    per_variant = analysis.per_variant.set_index("variant")
    p95 = {str(v): f"{p:.0f}" for v, p in per_variant["latency_p95"].items()}
    assert verdict == "within noise" and analysis.threshold == 0.5  # the suite's margin
    assert statuses == ["pass", "fail", "pass"]  # the cached answers' latency counts

    # The Results page.
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("pages/results.py").run()
    assert not at.exception
    headline = next(h.proto.body for h in at.get("html") if "t/new</b> vs t/base" in h.proto.body)
    assert re.search(r">([a-z ]+)</span></div>$", headline).group(1) == verdict  # type: ignore[union-attr]
    gates, summary = at.dataframe[0].value, at.dataframe[1].value
    assert list(gates["status"]) == statuses
    page_p95 = {v: f"{p:.0f}" for v, p in zip(summary["variant"], summary["latency p95 ms"],
                                                strict=True)}  # fmt: skip
    assert page_p95 == p95

    # The reports.
    done = cli(workspace, "report", run_id, "--html", "r.html", "--md", "r.md")
    assert done.returncode == 0, done.stderr
    page = (workspace / "r.html").read_text()
    badges = re.findall(r'<span class="badge" style="background:[^"]+">([^<]+)</span>', page)
    assert badges == [verdict]
    gate_badges = re.findall(r'<span class="badge (?:pass|fail|insufficient)">([^<]+)</span>', page)
    assert gate_badges[1:] == statuses  # the first one is the overall status in the heading
    rows = re.findall(r"<tr><td>([^<]+)</td>((?:<td>[^<]*</td>)+)</tr>", page)
    report_p95 = {html.unescape(v): re.findall(r"<td>([^<]*)</td>", cells)[6]
                  for v, cells in rows if v in p95}  # fmt: skip
    assert report_p95 == p95
    summary_md = (workspace / "r.md").read_text()
    assert f"**{verdict}**" in summary_md
    icons = re.findall(r"^\| (\S+) \| [^|]+ \| t/new \|", summary_md, re.M)
    assert icons == [{"pass": "✅", "fail": "❌"}.get(s, "⚠️") for s in statuses]

    # The gate command.
    gate = cli(workspace, "gate", run_id)
    assert gate.returncode == 1, gate.stdout  # the latency gate fails
    assert "t/new vs t/base: " in gate.stdout and gate.stdout.splitlines()[0].endswith(verdict)
    printed = re.findall(r"^\S.*\s{2}t/new\s+(pass|fail|insufficient evidence)\s", gate.stdout,
                         re.M)  # fmt: skip
    assert printed == statuses
    assert f"{p95['t/new']} ms (n=60)" in gate.stdout  # the latency gate's observed p95
