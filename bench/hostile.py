"""Hostile inputs (issue 14, "bounded work") through PromptDeck's real loaders and functions:
each must be refused, or handled, within 5 s and 500 MB.

Each case runs in its own Python process, twice: once for the wall-clock time and the
growth of the process's resident memory (RSS), once under tracemalloc for the peak of the
memory Python allocated while the case ran. The input itself (a file on disk, an upload's
bytes, a model's answers) is built before the clock starts and is not counted: the app
holds it already. A case that runs past 120 s or 4 GB is stopped and fails.

    yaml-bomb        a "billion laughs" of ~600 bytes in a dataset, a prompt, a suite and
                     providers.yaml, each through its loader (load_dataset, load_variant,
                     load_suite, load_providers_file)
    yaml-recursive   `&a [*a]` (37-byte files) in the same four files and loaders
    yaml-1.1         `expected: no`, a column `on`, `1.10` in a dataset; `on: mean` unquoted
                     in a suite's gate (load_dataset, load_suite)
    template-loop    two nested loops over range(100000), as typed into the Prompts preview
                     (render_messages: what the preview, the Playground and a run call)
    template-string  {{ 'x' * 10**9 }}
    template-huge    a prompt file whose template has 200,000 tags (load_variant: compiling it
                     took seconds and gigabytes)
    diff-1500/3000   the Results word diff (word_diff_html) of two near-identical answers:
                     every tenth word reworded
    sse-32mb-line    a 32 MB line without an end, fed to the SSE decoder in 64 KB chunks as
                     httpx delivers them (model/http.py iter_events)
    csv-4mb-cell     a dataset whose cell is 4 MB, the largest allowed (load_dataset)
    csv-100mb-cell   a quote never closed: a 100 MB cell (load_dataset)
    upload-100mb     a 117 MB CSV upload of 1,000,000 production queries, parsed once
                     (parse_upload: what the Datasets page caches by the file's digest)
    upload-plan      planning the import of that parsed upload with a sample of 1,000 (what
                     each rerun of the page does after the parse is cached)

Usage: .venv/bin/python bench/hostile.py [case ...]     (exit 1 if a case misses its target)
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promptdeck.analysis.textdiff import word_diff_html  # noqa: E402
from promptdeck.errors import PromptDeckError  # noqa: E402
from promptdeck.evals.suite import load_suite  # noqa: E402
from promptdeck.model.sse import SSEDecoder  # noqa: E402
from promptdeck.workspace.dataset_edit import new_table  # noqa: E402
from promptdeck.workspace.dataset_import import ColumnMap, parse_upload, plan_upload  # noqa: E402
from promptdeck.workspace.datasets import load_dataset  # noqa: E402
from promptdeck.workspace.prompts import load_variant, render_messages, variant_from_dict  # noqa: E402
from promptdeck.workspace.providers_file import load_providers_file  # noqa: E402

TARGET_SECONDS, TARGET_MB = 5.0, 500.0
LIMIT_SECONDS, LIMIT_BYTES = 120, 4 * 1024**3

# --- inputs ---------------------------------------------------------------------------------


def laughs(levels: int = 9, indent: str = "") -> str:
    lines = [f"{indent}l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    for n in range(1, levels):
        lines.append(f"{indent}l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def four_files(work: Path, dataset: str, prompt: str, suite: str, providers: str) -> Path:
    (work / "prompts" / "t").mkdir(parents=True)
    (work / "datasets").mkdir()
    (work / "datasets" / "d.yaml").write_text(dataset)
    (work / "prompts" / "t" / "p.yaml").write_text(prompt)
    (work / "datasets" / "s.suite.yaml").write_text(suite)
    (work / "providers.yaml").write_text(providers)
    return work


def load_all(work: Path) -> str:
    """Each of the four files through its loader; what each said."""
    loaders: list[Callable[[], object]] = [
        lambda: load_dataset(work / "datasets" / "d.yaml"),
        lambda: load_variant(work / "prompts" / "t" / "p.yaml", work / "prompts"),
        lambda: load_suite(work / "datasets" / "s.suite.yaml"),
        lambda: load_providers_file(work / "providers.yaml"),
    ]
    said = []
    for load in loaders:
        try:
            load()
            said.append("loaded")
        except PromptDeckError as exc:
            said.append(str(exc))
    refused = [s for s in said if s != "loaded"]
    if len(refused) != len(said):
        return f"NOT REFUSED by {len(said) - len(refused)} of 4 loaders"
    return f"refused x4, e.g. {refused[0].split(': ', 1)[1]}"


def yaml_bomb(work: Path) -> Any:
    bomb = laughs()
    return four_files(
        work,
        "- id: r1\n  input: hi\n" + laughs(indent="  "),
        "model: fake/m\nuser: hi\ndescription:\n" + laughs(indent="  "),
        "dataset: d.yaml\nvariants: [t/p]\n" + bomb,
        "providers: {}\n" + bomb,
    )


def yaml_recursive(work: Path) -> Any:
    return four_files(
        work,
        "- {id: r1, input: &a [*a]}\n",
        "model: fake/m\nuser: hi\ntags: &a [*a]\n",
        "dataset: d.yaml\nvariants: &a [*a]\n",
        "providers: &a {x: *a}\n",
    )


def yaml_11(work: Path) -> Any:
    (work / "d.yaml").write_text("- id: r1\n  input: Can I cancel?\n  expected: no\n  on: 1.10\n")
    (work / "s.suite.yaml").write_text(
        "dataset: d.yaml\nvariants: [t/a, t/b]\njudge: {model: x/j, rubric: Score 1-5}\n"
        "gates:\n  - {metric: judge_score, max_drop: 0.2, on: mean}\n"
    )
    return work


def yaml_11_run(work: Path) -> str:
    values = load_dataset(work / "d.yaml").cases[0].values
    gate = load_suite(work / "s.suite.yaml").gates[0]
    return (
        f"handled: expected={values['expected']!r}, column on={values['on']!r}, "
        f"gate on={gate.get('on')!r}"
    )


def template(user: str) -> Callable[[Path], Any]:
    return lambda work: variant_from_dict({"model": "fake/m", "user": user}, name="t/x", path="x")


def render(variant: Any) -> str:
    try:
        render_messages(variant, {"input": "hi"})
    except PromptDeckError as exc:
        return f"refused: {exc}"
    return "NOT REFUSED"


def huge_prompt(work: Path) -> Path:
    (work / "t").mkdir()
    path = work / "t" / "huge.yaml"
    path.write_text("model: fake/m\nuser: '" + "{{ input }} and " * 200_000 + "'\n")
    return path


def load_prompt(path: Path) -> str:
    try:
        load_variant(path, path.parents[1])
    except PromptDeckError as exc:
        return f"refused: {exc}"
    return "NOT REFUSED"


def answers(words: int) -> Callable[[Path], Any]:
    """An answer, and the same answer with every tenth word reworded: what made difflib
    super-linear (before: 10 s at 1,500 words, 316 s at 3,000 on this machine)."""

    def build(work: Path) -> tuple[str, str]:
        rng = random.Random(words)
        vocabulary = ["the", "a", "to", "of", "and"] * 30 + [f"word{i}" for i in range(300)]
        base = [rng.choice(vocabulary) for _ in range(words)]
        other = [w.upper() if k % 10 == 0 else w for k, w in enumerate(base)]
        return " ".join(base), " ".join(other)

    return build


def diff(pair: tuple[str, str]) -> str:
    html = word_diff_html(*pair)
    return f"handled: {html.count('<ins>')} insertions, {html.count('<del>')} deletions"


def sse_line(work: Path) -> bytes:
    return b"data: " + b"x" * (32 * 1024 * 1024)


def sse_run(data: bytes) -> str:
    decoder = SSEDecoder()
    try:
        for start in range(0, len(data), 65536):
            decoder.feed(data[start : start + 65536])
    except PromptDeckError as exc:
        return f"refused: {exc}"
    return "NOT REFUSED"


def csv_cell(size: int, closed: bool) -> Callable[[Path], Any]:
    def build(work: Path) -> Path:
        path = work / "cell.csv"
        with path.open("w") as f:
            f.write('id,input\nr1,"')
            f.write("A long contract, pasted whole. " * (size // 31))
            f.write('"\n' if closed else "\n")
        return path

    return build


def load(path: Path) -> str:
    try:
        cell = load_dataset(path).cases[0].values["input"]
    except PromptDeckError as exc:
        return f"refused: {exc}"
    return f"handled: a {len(cell) / 2**20:.1f} MB cell loaded"


def upload_bytes() -> bytes:
    """1,000,000 rows, 117 MB: id, query (1 in 20 with an accent or an emoji),
    intent, channel."""
    rng = random.Random(1)
    intents = ["billing", "shipping", "returns", "account", "product", "other"]
    channels = ["email", "chat", "web", "phone"]
    openings = ["Hi, ", "Hello ", "", "Please help: ", "Urgent - "]
    topics = ["my order", "the refund", "my invoice", "the parcel", "my password", "the app"]
    rows = [b"id,query,intent,channel\n"]
    for i in range(1_000_000):
        extra = " Merci beaucoup ! 🙂" if i % 20 == 0 else ""
        query = (
            f"{rng.choice(openings)}I have a question about {rng.choice(topics)} "
            f"(ticket {i:07d}), can you tell me what happens next?{extra}"
        )
        rows.append(f'{i},"{query}",{rng.choice(intents)},{rng.choice(channels)}\n'.encode())
    return b"".join(rows)


def parse(data: bytes) -> str:
    upload = parse_upload("production_queries.csv", data)
    return f"handled: {len(data) / 1e6:.0f} MB, {len(upload.rows):,} rows parsed"


def parsed(work: Path) -> Any:
    return parse_upload("production_queries.csv", upload_bytes())


def plan(upload: Any) -> str:
    target = new_table(Path("datasets/production.csv"))
    result = plan_upload(upload, ColumnMap("query", "intent"), target, sample=1000, seed=7)
    return f"handled: {result.report.rows_read:,} rows, {result.report.rows_added} sampled"


# name: (what, build the input, run it)
CASES: dict[str, tuple[str, Callable[[Path], Any], Callable[[Any], str]]] = {
    "yaml-bomb": ("YAML alias bomb, 4 files x ~600 B", yaml_bomb, load_all),
    "yaml-recursive": ("YAML recursive alias, 4 files", yaml_recursive, load_all),
    "yaml-1.1": ("YAML 1.1 words: no, on, 1.10", yaml_11, yaml_11_run),
    "template-loop": (
        "template: 2 nested range(100000)",
        template(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        ),
        render,
    ),
    "template-string": ("template: 'x' * 10**9", template("{{ 'x' * 10**9 }}"), render),
    "template-huge": ("prompt file: 200,000 tags, 2 MB", huge_prompt, load_prompt),
    "diff-1500": ("word diff, 1,500 words", answers(1500), diff),
    "diff-3000": ("word diff, 3,000 words", answers(3000), diff),
    "sse-32mb-line": ("SSE: a 32 MB line", sse_line, sse_run),
    "csv-4mb-cell": ("CSV: a 4 MB cell", csv_cell(4_000_000, closed=True), load),
    "csv-100mb-cell": ("CSV: a 100 MB cell (no closing quote)", csv_cell(100_000_000, False), load),
    "upload-100mb": ("upload: 117 MB CSV, parse", lambda work: upload_bytes(), parse),
    "upload-plan": ("upload: plan, sample 1,000", parsed, plan),
}

# --- running --------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_case(name: str, mode: str) -> dict[str, Any]:
    """In the child process: build the input, then run the case once."""
    _, build, run = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        given = build(Path(tmp))
        if mode == "memory":
            tracemalloc.start()
            outcome = run(given)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            return {"outcome": outcome, "traced_mb": peak}
        before = rss_mb()
        started = time.perf_counter()
        outcome = run(given)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"outcome": outcome, "seconds": seconds, "rss_mb": max(0.0, peak - before)}


def in_child(name: str, mode: str) -> dict[str, Any]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))

    command = [sys.executable, __file__, "--child", name, mode]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=LIMIT_SECONDS, preexec_fn=limit
        )
    except subprocess.TimeoutExpired:
        return {"outcome": f"STOPPED after {LIMIT_SECONDS} s", "seconds": float(LIMIT_SECONDS)}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"outcome": f"CRASHED: {last}", "seconds": float("nan")}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(run_case(argv[1], argv[2])))
        return 0
    names = argv or list(CASES)
    rows, failed = [], []
    for name in names:
        timed, traced = in_child(name, "time"), in_child(name, "memory")
        seconds = timed.get("seconds", float("nan"))
        memory = max(timed.get("rss_mb", 0.0), traced.get("traced_mb", 0.0))
        ok = (
            seconds < TARGET_SECONDS
            and memory < TARGET_MB
            and not timed["outcome"].startswith(("NOT", "STOPPED", "CRASHED"))
        )
        if not ok:
            failed.append(name)
        outcome = " ".join(timed["outcome"].split())
        rows.append(
            (
                name,
                CASES[name][0],
                f"{seconds:.2f}",
                f"{timed.get('rss_mb', float('nan')):.1f}",
                f"{traced.get('traced_mb', float('nan')):.1f}",
                f"< {TARGET_SECONDS:g} s, < {TARGET_MB:g} MB",
                "ok" if ok else "MISSED",
                outcome if len(outcome) <= 110 else outcome[:109] + "…",
            )
        )
    header = ("case", "input", "time s", "RSS +MB", "traced MB", "target", "", "outcome")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        print("  ".join([*cells, row[-1]]))
    print(
        f"\n{len(rows) - len(failed)} of {len(rows)} within target"
        + (f"; missed: {', '.join(failed)}" if failed else "")
        + f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
