"""The bad-input corpus (tests/bad_inputs/): every malformed prompt variant, dataset, suite and
providers.yaml gives a specific message that names the file and the place, from its loader,
from `python -m promptdeck run` and on the pages, and nothing crashes.

What each file must say is in tests/bad_inputs/manifest.yaml. Entries marked `gap:` there are
known defects: their checks are strict xfails here, so a fix shows up as a failure until the
`gap:` line is removed.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from promptdeck import cli
from promptdeck.analysis.report import neutralise, to_csv
from promptdeck.errors import PromptDeckError
from promptdeck.evals.plan import build_plan
from promptdeck.evals.suite import Suite, load_suite
from promptdeck.model.secrets import Secrets
from promptdeck.workspace.datasets import load_dataset
from promptdeck.workspace.prompts import PromptVariant, load_prompts, load_variant
from promptdeck.workspace.providers_file import load_providers_file, open_registry
from tests.helpers import shown as displayed
from tests.llm_server import LLMServer

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "bad_inputs"
MANIFEST = yaml.safe_load((CORPUS / "manifest.yaml").read_text(encoding="utf-8"))
NOWHERE = "http://127.0.0.1:9/v1"  # a broken input must fail before any model call

HOME, PLAYGROUND, EVALUATE = "Home", "Playground", "Evaluate"
PAGE_FILES = {HOME: None, PLAYGROUND: "pages/playground.py", EVALUATE: "pages/evaluate.py"}


@dataclass(frozen=True)
class Entry:
    file: str
    kind: str
    install: str
    expect: tuple[str, ...]
    names: str
    stage: str
    gap: str | None
    generator: str | None

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.generator or Path(self.file).name}"

    @property
    def variant(self) -> str:
        """A prompt's variant name in a workspace, e.g. bad/unknown_key."""
        return f"{Path(self.install).parent.name}/{Path(self.install).stem}"


ENTRIES = [
    Entry(
        file=raw["file"],
        kind=raw["kind"],
        install=raw["install"],
        expect=tuple(raw.get("expect") or ()),
        names=raw.get("names", raw["install"]),
        stage=raw.get("stage", "load"),
        gap=raw.get("gap"),
        generator=raw.get("generator"),
    )
    for raw in MANIFEST["files"]
]
BROKEN = [e for e in ENTRIES if e.stage != "ok"]


def of_kind(kind: str) -> list[Entry]:
    return [e for e in ENTRIES if e.kind == kind]


def params(entries: Iterable[Entry], channel: str) -> list[object]:
    """One pytest param per entry; known gaps (per file, or per kind and channel) are xfails."""
    out = []
    for e in entries:
        gap = e.gap
        if gap is None and e.stage == "load":
            gap = MANIFEST.get("kind_gaps", {}).get(e.kind, {}).get(channel)
        marks = [pytest.mark.xfail(strict=True, reason=" ".join(gap.split()))] if gap else []
        out.append(pytest.param(e, id=e.id, marks=marks))
    return out


# --- generated files: too large to commit, or unreadable ----------------------------------

DEEP = "[" * 10_000 + "]" * 10_000


def huge_single_line_prompt(path: Path) -> None:
    line = "Tell me more. " * 150_000  # 2.1 MB on one line
    path.write_text(f'model: fake/alpha\nuser: "{line}{{{{ input }}}}"\ncolour: red\n')


def deep_nesting_prompt(path: Path) -> None:
    path.write_text(f"model: fake/alpha\nuser: hi\ntags: {DEEP}\n")


def huge_csv(path: Path) -> None:
    """60 MB: 600,000 rows of exactly 100 bytes, then a row with a column missing."""
    text = "I was charged twice for my order and would like a refund please. Thank you!"
    assert len(text) < 83
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("id,category,input\n")
        f.writelines(f"r{i:06d},billing,{text:<83}\n" for i in range(600_000))
        f.write("r-last,billing\n")


def runaway_quote_csv(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write('id,category,input\nr1,billing,"I was charged twice\n')
        f.writelines(f"r{i},shipping,Where is my parcel number {i}?\n" for i in range(2, 150_000))


def long_cell_csv(path: Path) -> None:
    document = "A long contract, pasted whole. " * 34_000  # 1 MB
    path.write_text(f'id,category,input\nr1,legal,"{document}"\n', encoding="utf-8")


def deep_nesting_jsonl(path: Path) -> None:
    path.write_text('{"id": "r1", "input": ' + DEEP + "}\n")


def deep_nesting_yaml_dataset(path: Path) -> None:
    path.write_text(f"- id: r1\n  input: {DEEP}\n")


def deep_nesting_suite(path: Path) -> None:
    path.write_text(f"dataset: qa.csv\nvariants: [t/alpha, t/beta]\ngates: {DEEP}\n")


def deep_nesting_providers(path: Path) -> None:
    path.write_text(f"providers:\n  fake: {DEEP}\n")


GENERATORS: dict[str, Callable[[Path], None]] = {
    f.__name__: f
    for f in (
        huge_single_line_prompt,
        deep_nesting_prompt,
        huge_csv,
        runaway_quote_csv,
        long_cell_csv,
        deep_nesting_jsonl,
        deep_nesting_yaml_dataset,
        deep_nesting_suite,
        deep_nesting_providers,
    )
}


# --- workspaces --------------------------------------------------------------------------

GOOD_VARIANT = (
    "model: fake/{name}\nparams: {{max_tokens: 50}}\nuser: 'Customer message: {{{{ input }}}}'\n"
)
GOOD_SUITE = "dataset: qa.csv\nvariants: [t/alpha, t/beta]\nbaseline: t/alpha\n"


def make_workspace(root: Path, base_url: str = NOWHERE) -> Path:
    """Good variants t/alpha and t/beta, datasets/qa.csv with its suite, providers.yaml."""
    (root / "prompts" / "t").mkdir(parents=True)
    for name in ("alpha", "beta"):
        (root / "prompts" / "t" / f"{name}.yaml").write_text(GOOD_VARIANT.format(name=name))
    (root / "datasets").mkdir()
    rows = [f"r{i},{'ab'[i % 2]},question {i}" for i in range(6)]
    (root / "datasets" / "qa.csv").write_text("\n".join(["id,category,input", *rows]) + "\n")
    (root / "datasets" / "qa.suite.yaml").write_text(GOOD_SUITE)
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{base_url}', free: true}}\n"
    )
    return root


def install(entry: Entry, root: Path) -> Path:
    target = root / entry.install
    target.parent.mkdir(parents=True, exist_ok=True)
    if entry.generator:
        GENERATORS[entry.generator](target)
    else:
        shutil.copyfile(CORPUS / entry.file, target)
    return target


def problem(entry: Entry, message: str) -> str | None:
    """None when `message` names the file and says every expected fragment, else what lacks."""
    missing = [part for part in (entry.names, *entry.expect) if part not in message]
    return f"lacks {missing} in: {message!r}" if missing else None


def test_manifest_lists_every_corpus_file_once() -> None:
    files = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file())
    listed = sorted(e.file for e in ENTRIES if e.file != "generated")
    assert listed == [f for f in files if f != "manifest.yaml"]
    assert len(ENTRIES) >= 30 and len({e.id for e in ENTRIES}) == len(ENTRIES)
    assert {e.kind for e in ENTRIES} == {"prompt", "dataset", "suite", "providers"}
    assert {e.generator for e in ENTRIES if e.file == "generated"} == set(GENERATORS)
    assert set(SUBPROCESS) <= {e.id for e in BROKEN}
    for e in ENTRIES:
        assert e.stage in ("load", "plan", "ok"), e
        assert e.stage == "ok" or e.expect, f"{e.id}: say what the message must contain"
    big = [p for p in CORPUS.rglob("*") if p.stat().st_size > 100_000]
    assert not big, f"generate large files in the test instead of committing them: {big}"


# --- 1. through the loaders --------------------------------------------------------------


def load(entry: Entry) -> object:
    """What the app and the CLI do with the installed file (the workspace is the cwd)."""
    path = Path(entry.install)
    if entry.kind == "prompt":
        return load_variant(path, Path("prompts"))
    if entry.kind == "dataset":
        return load_dataset(path)
    if entry.kind == "suite":
        return load_suite(path)
    load_providers_file(path)
    return open_registry(path, Secrets())


def plan(loaded: object) -> None:
    """Plan an eval with a file that loaded: a suite as it is, a variant next to t/alpha."""
    if isinstance(loaded, PromptVariant):
        loaded = Suite(None, Path("datasets/qa.csv"), ("t/alpha", loaded.name))
    assert isinstance(loaded, Suite)
    build_plan(loaded, load_prompts(Path("prompts")))


@pytest.mark.parametrize("entry", params(BROKEN, "loader"))
def test_loader_names_the_file_and_the_place(
    entry: Entry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(entry, make_workspace(tmp_path))
    monkeypatch.chdir(tmp_path)
    loaded = load(entry) if entry.stage == "plan" else None  # the file itself is fine
    with pytest.raises(PromptDeckError) as info:  # any other exception fails the test
        plan(loaded) if entry.stage == "plan" else load(entry)
    assert problem(entry, str(info.value)) is None


def test_formula_cells_load_verbatim_and_are_neutralised_on_export(tmp_path: Path) -> None:
    [entry] = [e for e in ENTRIES if e.id == "dataset:formula_cells.csv"]
    path = install(entry, tmp_path)
    with path.open(encoding="utf-8", newline="") as f:
        written = [row[2] for row in list(csv.reader(f))[1:]]
    assert written[0].startswith("=HYPERLINK(") and written[1].startswith("+cmd|")
    dataset = load_dataset(path)
    cells = [case.values["input"] for case in dataset.cases]
    assert cells == written  # kept exactly as written: a formula is just text here
    exported = to_csv([{"row_id": c.id, "output": c.values["input"]} for c in dataset.cases])
    outputs = [row["output"] for row in csv.DictReader(io.StringIO(exported))]
    assert outputs == ["'" + cell for cell in written] == [neutralise(c) for c in written]


def test_empty_providers_file_declares_nothing(tmp_path: Path) -> None:
    [entry] = [e for e in ENTRIES if e.id == "providers:empty.yaml"]
    path = install(entry, tmp_path)
    assert load_providers_file(path) == ({}, {})
    assert "local" in open_registry(path, Secrets()).configs


# --- 2. through the CLI ------------------------------------------------------------------


def cli_suite(entry: Entry, root: Path) -> str:
    """The suite that `run` is given, so that it reaches the broken file."""
    if entry.kind == "suite":
        return entry.install
    if entry.kind == "providers":
        return "datasets/qa.suite.yaml"
    if entry.kind == "prompt":
        text = f"dataset: qa.csv\nvariants: [t/alpha, {entry.variant}]\n"
    else:
        text = f"dataset: {Path(entry.install).name}\nvariants: [t/alpha]\n"
    (root / "datasets" / "check.suite.yaml").write_text(text)
    return "datasets/check.suite.yaml"


def check_cli_output(entry: Entry, code: int, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    assert code == 2, (code, stderr)
    assert stderr.startswith("error: "), stderr
    assert problem(entry, stderr) is None


@pytest.mark.parametrize("entry", params(BROKEN, "cli"))
def test_cli_run_exits_2_with_the_message(
    entry: Entry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`promptdeck.cli.main` in this process: what `python -m promptdeck run` runs, without
    half a second of interpreter start-up per file (a few real subprocesses follow below).
    An exception escaping main() is what would print a traceback."""
    root = make_workspace(tmp_path)
    install(entry, root)
    suite = cli_suite(entry, root)
    monkeypatch.chdir(root)
    monkeypatch.delenv("PROMPTDECK_PROVIDERS", raising=False)
    monkeypatch.setenv("PROMPTDECK_HOME", str(root / "home"))
    code = cli.main(["run", suite])
    check_cli_output(entry, code, capsys.readouterr().err)
    assert not (root / "home").exists()  # refused before the run store was even opened


# One per kind, the largest file, and two known gaps (so that a traceback is really caught).
SUBPROCESS = (
    "prompt:needs_customer_name.yaml",
    "prompt:unknown_key.yaml",
    "dataset:unclosed_quote.csv",
    "dataset:huge_csv",
    "suite:unknown_key.suite.yaml",
    "providers:bad_kind.yaml",
    "providers:deep_nesting_providers",
)


def run_cli(root: Path, suite: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env |= {"PROMPTDECK_HOME": str(root / "home"), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "promptdeck", "run", suite],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def subprocess_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """`python -m promptdeck run` for the SUBPROCESS files, each in its own workspace, at once."""
    jobs = {}
    for entry in (e for e in BROKEN if e.id in SUBPROCESS):
        root = make_workspace(tmp_path_factory.mktemp("cli"))
        install(entry, root)
        jobs[entry.id] = (root, cli_suite(entry, root))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(run_cli, *job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("entry", params((e for e in BROKEN if e.id in SUBPROCESS), "cli"))
def test_python_m_promptdeck_run_exits_2_with_the_message(
    entry: Entry, subprocess_runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = subprocess_runs[entry.id]
    check_cli_output(entry, result.returncode, result.stderr)


# --- 3. on the pages ---------------------------------------------------------------------


class PageCheck:
    """Collects, per (entry, page), what went wrong; compared at the end with the known gaps."""

    def __init__(self) -> None:
        self.problems: dict[tuple[str, str], str] = {}
        self.checked: set[tuple[str, str]] = set()

    def crash(self, at: AppTest, entries: Iterable[Entry], page: str) -> bool:
        if not at.exception:
            return False
        text = " | ".join(str(x.value).splitlines()[0] for x in at.exception)[:500]
        for e in entries:
            self.checked.add((e.id, page))
            self.problems[(e.id, page)] = f"exception on the page: {text}"
        return True

    def shown(self, entry: Entry, page: str, messages: list[str]) -> None:
        """The entry's message must be among `messages` (the page's st.error texts)."""
        self.checked.add((entry.id, page))
        if any(problem(entry, m) is None for m in messages):
            return
        near = [m for m in messages if entry.names in m or Path(entry.install).name in m]
        if near:
            self.problems[(entry.id, page)] = "vague message: " + (problem(entry, near[0]) or "")
        else:
            self.problems[(entry.id, page)] = f"no message naming the file; errors: {messages}"

    def verify(self, entries: Iterable[Entry]) -> None:
        gaps = {(e.id, page) for e in entries if e.gap for page in PAGE_FILES} & self.checked
        unexpected = {k: v for k, v in self.problems.items() if k not in gaps}
        fixed = sorted(gaps - self.problems.keys())
        lines = [f"{file} on {page}: {what}" for (file, page), what in sorted(unexpected.items())]
        lines += [
            f"{file} on {page}: fixed? remove its gap from the manifest" for file, page in fixed
        ]
        assert not lines, "\n".join(lines)


def errors_of(node: AppTest | object) -> list[str]:
    return [displayed(e.value) for e in node.error]  # type: ignore[attr-defined]


def open_app() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    return at.run()


def visit(at: AppTest, page: str) -> AppTest:
    target = PAGE_FILES[page]
    return at.switch_page(target or "app.py").run()


def page_workspace(
    root: Path, entries: Iterable[Entry], monkeypatch: pytest.MonkeyPatch, server: LLMServer
) -> Path:
    make_workspace(root, server.openai_url)
    for entry in entries:
        install(entry, root)
    monkeypatch.chdir(root)
    monkeypatch.delenv("PROMPTDECK_PROVIDERS", raising=False)
    monkeypatch.delenv("PROMPTDECK_HOME", raising=False)
    return root


def select(at: AppTest, key: str, label: str) -> AppTest:
    box = at.selectbox(key=key)
    return box.select_index(list(box.options).index(label)).run()


def test_pages_show_broken_prompt_files_and_keep_the_good_variants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm_server: LLMServer
) -> None:
    entries = of_kind("prompt")
    broken = [e for e in entries if e.stage == "load"]
    page_workspace(tmp_path, entries, monkeypatch, llm_server)  # every file at once
    check = PageCheck()
    at = open_app()
    for page in (HOME, PLAYGROUND, EVALUATE):
        if page != HOME:
            visit(at, page)
        if not check.crash(at, entries, page):
            for entry in broken:
                check.shown(entry, page, errors_of(at))
    # The pages re-read every prompt file on every rerun, and the generated ones cost about a
    # second each time: the clicking below goes on without them.
    for entry in (e for e in entries if e.generator):
        (tmp_path / entry.install).unlink()
    visit(at, PLAYGROUND)
    picker = at.multiselect(key="pg_variants")
    assert {"t/alpha", "t/beta", "bad/needs_customer_name"} <= set(picker.options)
    assert not {e.variant for e in broken} & set(picker.options)
    picker.set_value(["t/alpha", "t/beta"]).run()
    assert not at.exception and at.text_area(key="pg_in_input").value == ""
    # Evaluate: the good variants plan; a template variable without a column is named.
    visit(at, EVALUATE)
    at.radio(key="ev_source").set_value("A dataset").run()
    select(at, "ev_dataset", "qa.csv")
    at.multiselect(key="ev_variants").set_value(["t/alpha", "t/beta"]).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}.get("Rows") == "6", errors_of(at)
    for entry in (e for e in entries if e.stage == "plan"):
        at.multiselect(key="ev_variants").set_value(["t/alpha", entry.variant]).run()
        if not check.crash(at, [entry], EVALUATE):
            check.shown(entry, EVALUATE, errors_of(at))
    check.verify(entries)


def test_pages_show_broken_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm_server: LLMServer
) -> None:
    entries = of_kind("dataset")
    page_workspace(tmp_path, entries, monkeypatch, llm_server)
    check = PageCheck()
    at = open_app()
    check.crash(at, entries, HOME)
    # Evaluate, starting from a dataset
    visit(at, EVALUATE)
    at.radio(key="ev_source").set_value("A dataset").run()
    at.multiselect(key="ev_variants").set_value(["t/alpha"]).run()
    for entry in entries:
        select(at, "ev_dataset", Path(entry.install).name)
        if check.crash(at, [entry], EVALUATE) or entry.stage == "ok":
            continue
        check.shown(entry, EVALUATE, errors_of(at))
    select(at, "ev_dataset", "formula_cells.csv")  # loads: its four rows can be sampled
    assert (
        not at.exception and not at.error and at.number_input(key="ev_n:formula_cells.csv").max == 4
    )
    assert "Rows" in [m.label for m in at.metric]
    # Playground: "Fill from a dataset row"
    visit(at, PLAYGROUND)
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    for entry in entries:
        select(at, "pg_dataset", Path(entry.install).name)
        if check.crash(at, [entry], PLAYGROUND) or entry.stage == "ok":
            continue
        [expander] = [e for e in at.expander if e.label == "Fill from a dataset row"]
        check.shown(entry, PLAYGROUND, errors_of(expander))
    select(at, "pg_dataset", "formula_cells.csv")
    at.selectbox(key="pg_row").select_index(0).run()
    assert not at.exception
    assert at.text_area(key="pg_in_input").value.startswith('=HYPERLINK("http://evil.example')
    check.verify(entries)


def test_evaluate_shows_broken_suites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm_server: LLMServer
) -> None:
    entries = of_kind("suite")
    page_workspace(tmp_path, entries, monkeypatch, llm_server)
    check = PageCheck()
    at = open_app()
    check.crash(at, entries, HOME)
    visit(at, EVALUATE)
    assert at.radio(key="ev_source").value == "A suite file"
    for entry in entries:
        select(at, "ev_suite", Path(entry.install).name)
        if not check.crash(at, [entry], EVALUATE):
            check.shown(entry, EVALUATE, errors_of(at))
    select(at, "ev_suite", "qa.suite.yaml")  # the good suite still plans
    assert not at.exception and {m.label: m.value for m in at.metric}.get("Rows") == "6"
    check.verify(entries)


def test_every_page_shows_a_broken_providers_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm_server: LLMServer
) -> None:
    entries = of_kind("providers")
    check = PageCheck()
    for entry in entries:
        page_workspace(tmp_path / entry.id.replace(":", "_"), [entry], monkeypatch, llm_server)
        at = open_app()
        for page in (HOME, PLAYGROUND, EVALUATE):
            if page != HOME:
                visit(at, page)
            if check.crash(at, [entry], page):
                continue
            config_errors = [m for m in errors_of(at) if "Provider configuration error" in m]
            if entry.stage == "ok":
                assert not config_errors, (entry.id, page, config_errors)
            else:
                check.shown(entry, page, config_errors)
    check.verify(entries)
