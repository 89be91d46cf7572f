"""PromptDeck at production scale: each figure against its target, with an in-run baseline.

Sections (run all, or name some: `bench/scale.py cli import`):

  cli      `python -m promptdeck run SUITE --sample 200` on a 1,000,000-row CSV (~110 bytes a
           row, like production logs, with a category column): time from starting the process
           to the first request reaching the local OpenAI-wire server (tests/llm_server.py;
           it stamps each request's arrival with time.monotonic, the clock the bench starts
           the CLI on), and the peak RSS of the CLI process (os.wait4's ru_maxrss), for the
           whole run of 200 answers. The same for 100,000 rows is the in-run baseline.
           Targets: < 5 s to the first request, < 500 MB.
  import   the Datasets page's import of a 1,000,000-row JSONL file (~115 bytes a row), in
           AppTest, the page's own code path: the app opened at Home, the Datasets page,
           then the file given to its uploader; timed from the upload to the preview drawn
           (parse, plan, first page of rows). Then a rerun with nothing changed (any click),
           a sample of 1,000 asked for (a new plan, no new parse), Import pressed (1,000
           rows into a one-row dataset), and then every row planned and imported (the page
           then shows the dataset of a million rows). Each step's time and the peak RSS of
           the process during it (VmHWM reset before each step; Streamlit, the app and the
           upload's bytes included). 100,000 rows as the in-run baseline.
           Targets: upload to preview < 60 s and < 1 GB, the rerun < 1 s.
  results  the Results page in AppTest (bench/results_page.py) for a finished run of
           100,000 cells (2 variants x 50,000 rows, judge + 2 checks): its first render in a
           fresh process, then a category filter change and the "Regressions only" toggle.
           10,000 cells as the in-run baseline. Targets: < 3 s first render, < 0.5 s a filter.
  wire     (reserved: websocket bytes)

Each measurement runs in its own process, median of REPEATS. The files are generated
(deterministic content) into a temporary folder and removed afterwards.

Usage: .venv/bin/python bench/scale.py [section ...]
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.llm_server import LLMServer  # noqa: E402

ROWS, BASELINE_ROWS = 1_000_000, 100_000
SAMPLE = 200
REPEATS = int(os.environ.get("SCALE_REPEATS", "3"))
CLI_FIRST_REQUEST_S, CLI_RSS_MB = 5.0, 500.0
IMPORT_S, IMPORT_RSS_MB, RERUN_S = 60.0, 1024.0, 1.0

# --- data --------------------------------------------------------------------------------

CATEGORIES = ["billing"] * 30 + ["shipping"] * 25 + ["returns"] * 20 + ["account"] * 15
CATEGORIES += ["product"] * 9 + ["legal"]
CHANNELS = ["email", "chat", "web", "phone"]
OPENINGS = ["Hi, ", "Hello ", "", "Please help: ", "Urgent - "]
TOPICS = ["my order", "the refund", "my invoice", "the parcel", "my password", "the app"]


def log_rows(count: int) -> Any:
    """Production-log-like rows: a request id (not `id`: the cases get content ids), a
    time, a category (uneven strata, one of 1%), a channel and the user's message."""
    rng = random.Random(1)
    for i in range(count):
        message = (
            f"{rng.choice(OPENINGS)}I have a question about {rng.choice(TOPICS)} "
            f"(ticket {i:07d}), what now?"
        )
        yield {
            "request_id": f"r{i:07d}",
            "time": f"2026-11-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}",
            "category": rng.choice(CATEGORIES),
            "channel": rng.choice(CHANNELS),
            "input": message,
        }


def write_csv(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("request_id,time,category,channel,input\n")
        for row in log_rows(count):
            f.write(",".join(row[k] for k in ("request_id", "time", "category", "channel")))
            f.write(f',"{row["input"]}"\n')
    return path


def write_jsonl(path: Path, count: int) -> Path:
    """The export of queries an import reads: category, channel and the message."""
    with path.open("w", encoding="utf-8") as f:
        for row in log_rows(count):
            f.write(json.dumps({k: row[k] for k in ("category", "channel", "input")}) + "\n")
    return path


# --- running -----------------------------------------------------------------------------


def spawn(command: list[str], **popen: Any) -> tuple[float, float, int, str, str]:
    """Run a process to its end: (its start on time.monotonic, its peak RSS in MB, exit
    code, stdout, stderr). wait4 gives this child's own rusage, not every child's maximum."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=err, **popen)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (
            started,
            usage.ru_maxrss / 1024,
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "MISSED"


# --- cli ---------------------------------------------------------------------------------

VARIANT = "model: fake/scale\nparams: {temperature: 0, max_tokens: 20}\nuser: '{{ input }}'\n"


def cli_workspace(root: Path, server: LLMServer) -> None:
    (root / "prompts" / "scale").mkdir(parents=True)
    (root / "prompts" / "scale" / "a.yaml").write_text(VARIANT)
    (root / "datasets").mkdir()
    for name, rows in (("big", ROWS), ("base", BASELINE_ROWS)):
        write_csv(root / "datasets" / f"{name}.csv", rows)
        (root / "datasets" / f"{name}.suite.yaml").write_text(
            f"dataset: {name}.csv\nsample: {{n: 20, seed: 7}}\nvariants: [scale/a]\n"
        )
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{server.openai_url}', free: true}}\n"
    )


def cli_once(root: Path, server: LLMServer, suite: str, home: Path) -> tuple[float, float]:
    """(seconds from the start to the first request, peak RSS MB) of one CLI run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env |= {"PROMPTDECK_HOME": str(home), "PYTHONPATH": str(REPO)}
    seen = len(server.requests)
    command = [sys.executable, "-m", "promptdeck", "run", f"datasets/{suite}.suite.yaml"]
    started, rss, code, out, err = spawn([*command, "--sample", str(SAMPLE)], cwd=root, env=env)
    if code != 0:
        raise SystemExit(f"promptdeck run failed ({code}):\n{out}\n{err}")
    arrived = [r.arrived for r in server.requests[seen:]]
    assert len(arrived) == SAMPLE, f"{len(arrived)} requests, expected {SAMPLE}"
    return min(arrived) - started, rss


def bench_cli(tmp: Path) -> None:
    print(f"\n== cli: promptdeck run --sample {SAMPLE} (median of {REPEATS}) ==")
    with LLMServer() as server:
        cli_workspace(tmp, server)
        sizes = {
            name: (tmp / "datasets" / f"{name}.csv").stat().st_size for name in ("base", "big")
        }
        figures: dict[str, list[tuple[float, float]]] = {"base": [], "big": []}
        for repeat in range(REPEATS):
            for name in ("base", "big"):  # in turns: a busy moment hits both
                home = tmp / f"home-{name}-{repeat}"  # a fresh store: nothing to resume
                figures[name].append(cli_once(tmp, server, name, home))
    rows = {"base": BASELINE_ROWS, "big": ROWS}
    median = {n: tuple(statistics.median(f[k] for f in figures[n]) for k in (0, 1)) for n in rows}
    for name in ("base", "big"):
        first, rss = median[name]
        each = ", ".join(f"{f:.2f}" for f, _ in figures[name])
        print(
            f"  {rows[name]:>9,} rows ({sizes[name] / 1e6:.0f} MB CSV): first request after "
            f"{first:.2f} s [{each}]   peak RSS {rss:.0f} MB"
        )
    first, rss = median["big"]
    print(
        f"  1,000,000 rows: {first:.2f} s vs target {CLI_FIRST_REQUEST_S:.0f} s "
        f"({verdict(first, CLI_FIRST_REQUEST_S)}); {rss:.0f} MB vs target {CLI_RSS_MB:.0f} MB "
        f"({verdict(rss, CLI_RSS_MB)}); {first / median['base'][0]:.1f}x the time and "
        f"{rss / median['base'][1]:.1f}x the memory of 100,000 rows"
    )


# --- import (the Datasets page in AppTest) -------------------------------------------------


def import_child(path: str) -> None:
    """In a child process: the page's import of the file at `path`, step by step; prints
    each step's seconds and peak RSS (VmHWM, reset before the step) as JSON."""
    from streamlit.testing.v1 import AppTest

    def peak_mb() -> float:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))

    figures: dict[str, Any] = {}

    def step(name: str, action: Callable[[], Any]) -> None:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak RSS starts again from the current RSS
        started = time.perf_counter()
        action()
        figures[f"{name}_s"] = time.perf_counter() - started
        figures[f"{name}_mb"] = peak_mb()
        assert not at.exception, at.exception

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    at.run()
    at.switch_page("pages/datasets.py").run()
    figures["page_mb"] = peak_mb()
    data = Path(path).read_bytes()  # what Streamlit holds once the file is uploaded
    uploader = at.file_uploader(key="ds_upload")
    step("import", lambda: uploader.set_value((Path(path).name, data, "text/plain")).run())
    figures["preview"] = next(m.value for m in at.markdown if m.value.startswith("**Preview**"))
    step("rerun", at.run)
    step("sample", lambda: at.number_input(key="ds_imp_n").set_value(1000).run())
    step("write_sample", lambda: at.button(key="ds_imp_go").click().run())

    def write_all() -> None:
        at.number_input(key="ds_imp_n").set_value(None).run()  # every row: plan again
        at.button(key="ds_imp_go").click().run()

    step("write_all", write_all)
    figures["after"] = at.success[0].value if at.success else str(at.error)
    print(json.dumps(figures))


def import_once(workspace: Path, path: Path, home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env |= {"PROMPTDECK_HOME": str(home), "PYTHONPATH": str(REPO)}
    _, _, code, out, err = spawn(
        [sys.executable, __file__, "--import-child", str(path)], cwd=workspace, env=env
    )
    if code != 0:
        raise SystemExit(f"the import failed ({code}):\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


IMPORT_STEPS = {
    "import": "upload to preview (parse, plan, first page)",
    "rerun": "a rerun, nothing changed",
    "sample": "a sample of 1,000 (plan again)",
    "write_sample": "Import 1,000 into a dataset",
    "write_all": "then every row (plan, write, show)",
}


def bench_import(tmp: Path) -> None:
    print(f"\n== import: the Datasets page in AppTest (median of {REPEATS}) ==")
    workspace = tmp / "import-ws"
    (workspace / "datasets").mkdir(parents=True)
    files = {
        "base": write_jsonl(tmp / "base.jsonl", BASELINE_ROWS),
        "big": write_jsonl(tmp / "big.jsonl", ROWS),
    }
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "big": []}
    for repeat in range(REPEATS):
        for name in ("base", "big"):  # a fresh one-row dataset and store each time
            (workspace / "datasets" / "cases.csv").write_text("id,category,input\na,x,Refund?\n")
            home = tmp / f"home-{name}-{repeat}"
            runs[name].append(import_once(workspace, files[name], home))
    med = {
        name: {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]
               if isinstance(runs[name][0][k], float)}
        for name in runs
    }  # fmt: skip
    print(f"  {'':44s} {'100,000 rows':>22s} {'1,000,000 rows':>22s}")
    print(
        f"  {'JSONL file':44s} {files['base'].stat().st_size / 1e6:>19.0f} MB "
        f"{files['big'].stat().st_size / 1e6:>19.0f} MB"
    )
    print(f"  {'the page before the upload, RSS':44s} {med['base']['page_mb']:>19.0f} MB "
          f"{med['big']['page_mb']:>19.0f} MB")  # fmt: skip
    for step, what in IMPORT_STEPS.items():
        base, big = med["base"], med["big"]
        print(
            f"  {what:44s} {base[step + '_s']:>6.2f} s {base[step + '_mb']:>6.0f} MB peak "
            f"{big[step + '_s']:>6.2f} s {big[step + '_mb']:>6.0f} MB peak"
        )
    print(f"  preview: {runs['big'][0]['preview']}")
    print(f"  after: {runs['big'][0]['after']}")
    m = med["big"]
    print(
        f"  1,000,000 rows: import {m['import_s']:.1f} s vs target {IMPORT_S:.0f} s "
        f"({verdict(m['import_s'], IMPORT_S)}); peak {m['import_mb']:.0f} MB vs target "
        f"{IMPORT_RSS_MB:.0f} MB ({verdict(m['import_mb'], IMPORT_RSS_MB)}); rerun "
        f"{m['rerun_s']:.2f} s vs target {RERUN_S:.0f} s ({verdict(m['rerun_s'], RERUN_S)}); "
        f"{m['import_s'] / med['base']['import_s']:.1f}x the time of 100,000 rows"
    )


# --- reserved sections (another helper adds them) ------------------------------------------


def bench_results(tmp: Path) -> None:
    """The Results page in AppTest (bench/results_page.py, one process per measurement, so
    a first render has nothing cached): 2 variants x 50,000 rows, judge + 2 checks, against
    the targets; 2 x 5,000 rows as the in-run baseline. Then a change of the category
    filter and the "Regressions only" toggle on the same page."""
    child = [sys.executable, str(REPO / "bench" / "results_page.py")]
    print(f"\n== results: the Results page, first render and filters (median of {REPEATS}) ==")
    found: dict[int, dict[str, float]] = {}
    for cells in (10_000, 100_000):
        workspace = tmp / f"cells{cells}"
        start = time.perf_counter()
        subprocess.run([*child, "fill", str(workspace), str(cells // 2)], check=True)
        filled = time.perf_counter() - start
        runs = [
            json.loads(
                subprocess.run(
                    [*child, "measure", str(workspace)], check=True, capture_output=True, text=True
                ).stdout.strip().splitlines()[-1]
            )
            for _ in range(REPEATS)
        ]  # fmt: skip
        found[cells] = m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        each = ", ".join(f"{r['first_s']:.1f}" for r in runs)
        print(
            f"  {cells:,} cells (stored in {filled:.0f} s): first render {m['first_s']:.2f} s "
            f"[{each}], category filter {m['category_s']:.2f} s, regressions only "
            f"{m['regressions_s']:.2f} s"
        )
    m = found[100_000]
    filters = max(m["category_s"], m["regressions_s"])
    print(
        f"  100,000 cells: first render {m['first_s']:.2f} s vs target {RESULTS_FIRST_S:.0f} s "
        f"({verdict(m['first_s'], RESULTS_FIRST_S)}); slower filter change {filters:.2f} s vs "
        f"target {RESULTS_FILTER_S} s ({verdict(filters, RESULTS_FILTER_S)}); "
        f"{m['first_s'] / found[10_000]['first_s']:.1f}x the first render of 10,000 cells"
    )


RESULTS_FIRST_S, RESULTS_FILTER_S = 3.0, 0.5


def bench_wire(tmp: Path) -> None:
    """A Playground run in headless Chromium (tests/e2e/wire.py): the websocket bytes the
    server sends from the click on Run to every answer done, 3 columns x 400 tokens
    against the target, 1 column as the in-run baseline; and how often the first column's
    text changed on screen while it streamed. Median of REPEATS, in turns."""
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM
    from tests.e2e.conftest import running_app
    from tests.e2e.wire import TOKEN_DELAY, TOKENS, WireRun, add_wire_variants, measure_run

    print(f"\n== wire: Playground websocket bytes, {TOKENS} tokens a column "
          f"{TOKEN_DELAY * 1000:.0f} ms apart (median of {REPEATS}) ==")  # fmt: skip
    runs: dict[int, list[WireRun]] = {1: [], 3: []}
    with LLMServer() as server:
        (tmp / "prompts").mkdir()
        (tmp / "providers.yaml").write_text(
            f"providers:\n  fake: {{kind: openai, base_url: '{server.openai_url}', free: true}}\n"
        )
        variants = add_wire_variants(tmp, server)
        with running_app(tmp) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            for _ in range(REPEATS):
                for columns in (1, 3):
                    page = browser.new_page(viewport={"width": 1500, "height": 1100})
                    runs[columns].append(measure_run(page, url, variants[:columns]))
                    page.close()
            browser.close()
    median: dict[int, dict[str, float]] = {}
    for columns, found in runs.items():
        median[columns] = {
            "mb": statistics.median(r.bytes for r in found) / 1e6,
            "frames": statistics.median(r.frames for r in found),
            "s": statistics.median(r.seconds for r in found),
            "ups": statistics.median(r.updates_per_s for r in found),
            "steps": statistics.median(len(r.lengths) for r in found),
        }
        m, each = median[columns], ", ".join(f"{r.bytes / 1e6:.3f}" for r in found)
        print(
            f"  {columns} column{'s' if columns > 1 else ' '}: {m['mb']:.3f} MB [{each}] in "
            f"{m['frames']:.0f} frames, {m['s']:.1f} s to done; the first column's text "
            f"changed {m['steps']:.0f} times, {m['ups']:.1f} updates/s"
        )
    big = median[3]["mb"]
    print(
        f"  3 x {TOKENS} tokens: {big:.3f} MB vs target 0.5 MB ({verdict(big, 0.5)}); "
        f"{big / median[1]['mb']:.1f}x the bytes of 1 column; "
        f"{median[3]['ups']:.1f} visible updates/s"
    )


SECTIONS: dict[str, Callable[[Path], None]] = {
    "cli": bench_cli,
    "import": bench_import,
    "results": bench_results,
    "wire": bench_wire,
}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--import-child"]:
        import_child(argv[1])
        return
    unknown = [a for a in argv if a not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section {unknown[0]!r}; sections: {', '.join(SECTIONS)}")
    load = os.getloadavg()[0]
    print(f"bench/scale.py on {os.cpu_count()} cores, load average {load:.1f}")
    for name in argv or list(SECTIONS):
        with tempfile.TemporaryDirectory(prefix=f"scale-{name}-") as tmp:
            SECTIONS[name](Path(tmp))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
