"""`promptdeck ...` (or `python -m promptdeck ...`): headless evals for scripts and CI.

    run SUITE [--sample N] [--seed S] [--concurrency C] [--rpm R] [--repeats K]
              [--no-cache] [--new]
    run SUITE ... --gate          then evaluate the suite's gates (exit 1 if one fails)
    run SUITE --plan              the plan, and how many rows each gate needs; calls nothing
    run SUITE --until-decided [--max-rows N] [--max-cost USD] [--batch B]
                                  add rows in stratified batches until every gate is decided
    gate RUN_ID [--baseline V] [--insufficient fail|pass]
    report RUN_ID [--html F] [--md F] [--csv F]   (RUN_ID may be 'latest')
    import-promptfoo CONFIG --out DIR [--name NAME] [--force]
    export-promptfoo SUITE --out FILE [--sampled] [--force]
    db migrate                    bring the store (PROMPTDECK_DATABASE_URL, else the SQLite
                                  file) to the current schema
    db copy --from URL --to URL   copy a whole history into an empty store, e.g.
                                  sqlite:///.promptdeck/promptdeck.sqlite -> postgresql://…

`run` resumes the newest unfinished run of the same plan (same prompts, sample and
repeats) unless --new is given; a suite is checked whole (variants, template variables,
gates) before any call. Progress goes to stderr; stdout gets `run_id: <ID>` and a
summary table. Exit codes: 0 done (and, with --gate, every gate passed); 1 not every cell
finished, or a gate failed or had insufficient evidence; 2 usage or configuration error.
`import-promptfoo` and `export-promptfoo` print what they wrote and, one per line, what they
could not map; that is not an error (exit 0).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import gc
import getpass
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from promptdeck.errors import ConfigError, PromptDeckError
from promptdeck.evals.plan import EvalPlan, build_plan
from promptdeck.evals.runner import Progress
from promptdeck.evals.sequential import Budget
from promptdeck.evals.start import (
    RunOptions,
    open_run,
    run_in_foreground,
    run_until_decided_now,
)
from promptdeck.evals.suite import load_suite
from promptdeck.model.pricing import format_cost
from promptdeck.model.registry import ProviderConfig, Registry, builtin_configs
from promptdeck.model.secrets import Secrets
from promptdeck.store.db import Store
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.prompts import load_prompts
from promptdeck.workspace.providers_file import load_providers_file, open_registry

# Above: what `run` needs before its first call, and nothing heavier. The analysis (pandas,
# numpy, the charts), promptfoo interop and `db copy` are imported by the commands that use
# them, so that `promptdeck run` sends its first request a few hundred ms after it starts
# (tests/test_cli_imports.py; bench/throughput.py measures it).
if TYPE_CHECKING:
    import pandas as pd

    from promptdeck.analysis.run import RunAnalysis


def main(argv: Sequence[str] | None = None) -> int:
    _exit_quickly()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except PromptDeckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command had to read or write: say which, no traceback
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are stored; run again to resume", file=sys.stderr)
        return 130
    finally:
        while _OPENED:
            _OPENED.pop().close()
    return code


_OPENED: list[Store] = []  # the stores the command opened: closed when it ends


def _open_store(target: str, *, existing: bool = False) -> Store:
    store = Store(target, existing=existing)
    _OPENED.append(store)
    return store


@functools.cache
def _exit_quickly() -> None:
    """At exit, spare the collector its final pass over every object left (pandas, numpy, a
    run's rows: about 0.3 s on this machine). Exit handlers, flushing and the stores'
    closing (`main`) still happen; only finalizers of objects in uncollected cycles are
    skipped, which Python never promises to run at exit anyway (spack's CLI does the same)."""
    atexit.register(gc.freeze)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptdeck", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    run = _command(
        sub,
        "run",
        "run (or resume) an eval suite",
        "promptdeck run datasets/support_tickets.suite.yaml --sample 20 --gate",
        "promptdeck run datasets/support_tickets.suite.yaml --plan",
        "promptdeck run datasets/support_tickets.suite.yaml --until-decided --max-rows 200",
    )
    run.add_argument("suite", help="a datasets/<name>.suite.yaml file")
    what = run.add_argument_group("what to run")
    what.add_argument("--sample", type=_at_least(1), metavar="N", help="rows to sample")
    what.add_argument("--seed", type=int, metavar="S", help="sampling seed (overrides suite)")
    what.add_argument(
        "--repeats", type=_at_least(1, 20), metavar="K", help="answers per (case, variant), 1-20"
    )
    what.add_argument("--new", action="store_true", help="start a new run instead of resuming")
    how = run.add_argument_group("how to call the models")
    how.add_argument(
        "--concurrency",
        type=_at_least(1),
        metavar="C",
        help="calls in flight per provider (default: as saved in Settings, else each "
        "provider's max_concurrency)",
    )
    how.add_argument(
        "--rpm", type=_positive, metavar="R", help="max requests per minute per provider"
    )
    how.add_argument("--no-cache", action="store_true", help="call the models even if cached")
    gates = run.add_argument_group("gates")
    gates.add_argument("--gate", action="store_true", help="then evaluate the suite's gates")
    gates.add_argument(
        "--plan",
        action="store_true",
        help="print the plan and how many rows each gate needs to be decided; call nothing",
    )
    _insufficient_option(gates)
    grow = run.add_argument_group("run until decided")
    grow.add_argument(
        "--until-decided",
        action="store_true",
        help="add rows in seeded, stratified batches until every gate is decided",
    )
    grow.add_argument("--max-rows", type=_at_least(1), metavar="N", help="row budget")
    grow.add_argument("--max-cost", type=_positive, metavar="USD", help="cost budget, in USD")
    grow.add_argument(
        "--batch", type=_at_least(1), default=10, metavar="B", help="rows per look (default 10)"
    )
    run.set_defaults(func=cmd_run)
    gate = _command(
        sub,
        "gate",
        "evaluate the suite's gates on a stored run",
        "promptdeck gate latest",
        "promptdeck gate 20261203-101500-ab12 --baseline support/production --insufficient pass",
    )
    gate.add_argument("run_id", help="a run id, or 'latest'")
    gate.add_argument("--baseline", help="compare against this variant (default: the suite's)")
    _insufficient_option(gate)
    gate.set_defaults(func=cmd_gate)
    report = _command(
        sub,
        "report",
        "export a stored run",
        "promptdeck report latest --html report.html --md summary.md --csv cells.csv",
    )
    report.add_argument("run_id", help="a run id, or 'latest'")
    report.add_argument(
        "--html", type=_writable, metavar="F", help="a self-contained report for stakeholders"
    )
    report.add_argument(
        "--md", type=_writable, metavar="F", help="a Markdown summary for a pull request"
    )
    report.add_argument(
        "--csv", type=_writable, metavar="F", help="one row per cell: answer, judge, checks"
    )
    report.set_defaults(func=cmd_report)
    _promptfoo_parsers(sub)
    _db_parsers(sub)
    return parser


def _command(sub: Any, name: str, summary: str, *examples: str) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with examples."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _promptfoo_parsers(sub: Any) -> None:
    pf_in = _command(
        sub,
        "import-promptfoo",
        "promptfoo config -> prompts, dataset, suite",
        "promptdeck import-promptfoo promptfooconfig.yaml --out . --name refunds",
    )
    pf_in.add_argument("config", help="a promptfooconfig.yaml")
    pf_in.add_argument(
        "--out", required=True, type=_folder, metavar="DIR", help="the workspace to write into"
    )
    pf_in.add_argument("--name", help="dataset, suite and task name (default: from the config)")
    pf_in.add_argument("--force", action="store_true", help="overwrite files that exist")
    pf_in.set_defaults(func=cmd_import_promptfoo)
    pf_out = _command(
        sub,
        "export-promptfoo",
        "suite -> promptfooconfig.yaml",
        "promptdeck export-promptfoo datasets/support_tickets.suite.yaml --out pf/config.yaml",
    )
    pf_out.add_argument("suite", help="a datasets/<name>.suite.yaml file")
    pf_out.add_argument(
        "--out", required=True, type=_writable, metavar="FILE", help="the config to write"
    )
    pf_out.add_argument("--sampled", action="store_true", help="only the suite's sampled rows")
    pf_out.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    pf_out.set_defaults(func=cmd_export_promptfoo)


def _db_parsers(sub: Any) -> None:
    db = sub.add_parser("db", help="the run store: migrate it, copy a history into it")
    db_sub = db.add_subparsers(required=True, metavar="ACTION")
    migrate = _command(
        db_sub,
        "migrate",
        "bring the store to the current schema (the app and run do it too)",
        "PROMPTDECK_DATABASE_URL=postgresql://pd:…@db:5432/promptdeck promptdeck db migrate",
    )
    migrate.set_defaults(func=cmd_db_migrate)
    copy = _command(
        db_sub,
        "copy",
        "copy every run, call, review, file version, setting and cached answer into an empty store",
        "promptdeck db copy --from sqlite:///.promptdeck/promptdeck.sqlite "
        "--to postgresql://pd:…@db:5432/promptdeck",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="URL", help="copy from")
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="copy into")
    copy.set_defaults(func=cmd_db_copy)


def _at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be a whole number {span}, not {text}")
        return value

    return parse


def _positive(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number more than 0, not {text}")
    return value


def _writable(value: str) -> Path:
    """An output file: its folder must exist (a typo must not create folders silently)."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder; give a file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {path.parent} does not exist")
    return path


def _folder(value: str) -> Path:
    """A folder to write into: it may be new, but the folder it goes in must exist (like
    mkdir without -p: a typo in a parent never makes a tree of folders)."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a file, not a folder")
    if not path.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {path.parent} does not exist")
    return path


def write_output(path: Path, text: str) -> None:
    """Write an export; a file that cannot be written is a clear error (exit 2)."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def _insufficient_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--insufficient",
        choices=("fail", "pass"),
        default="fail",
        help="exit code when a gate has insufficient evidence (default: fail, exit 1)",
    )


def open_workspace() -> tuple[Workspace, Registry, Store]:
    ws = Workspace.from_env()
    registry = open_registry(ws.providers_file, Secrets(ws.root / ".env"))
    return ws, registry, _open_store(ws.store_target).acting_as(cli_user())


def cli_user() -> str:
    """Who the CLI's runs are stamped with: PROMPTDECK_USER (e.g. set by CI), else the login."""
    return os.environ.get("PROMPTDECK_USER", "").strip() or getpass.getuser()


def cmd_run(args: argparse.Namespace) -> int:
    ws = Workspace.from_env()
    suite = load_suite(Path(args.suite))  # gates, variants and variables checked here
    plan = build_plan(
        suite, load_prompts(ws.prompts_dir), n=args.sample, seed=args.seed, repeats=args.repeats
    )
    _, registry, store = open_workspace()  # only once the plan is sound: no stray store
    if args.plan:
        return print_plan(store, plan)
    options = RunOptions.from_settings(
        store, concurrency=args.concurrency, rpm=args.rpm, no_cache=args.no_cache,
        resume=not args.new,
    )  # fmt: skip
    if args.until_decided:
        return run_sequential(args, registry, store, plan, options)
    opened = open_run(store, plan, resume=options.resume, concurrency=options.concurrency)
    if opened.resumed:
        print(
            f"resuming run {opened.run_id}: {opened.done} of {opened.total} cells done",
            file=sys.stderr,
        )
    print(f"run_id: {opened.run_id}", flush=True)
    bar, meanwhile = ProgressBar(sys.stderr), AnalysisImport()

    def on_progress(p: Progress) -> None:
        meanwhile.start()
        bar.update(p)

    final = run_in_foreground(registry, store, opened, plan, options, on_progress=on_progress)
    bar.close()
    meanwhile.join()
    from promptdeck.analysis.calibration import describe, run_agreement
    from promptdeck.analysis.run import analyze_run

    analysis = analyze_run(store, opened.run_id)
    print_summary(analysis.per_variant, sys.stdout)
    overrides = store.score_overrides(opened.run_id)
    calibration = run_agreement(plan.snapshot()["cases"], store.scores(opened.run_id), overrides)
    if calibration is not None:
        print(describe(calibration))
    if final.done != final.total:
        return 1
    return print_gates(analysis, args.insufficient) if args.gate else 0


def print_plan(store: Store, plan: EvalPlan) -> int:
    """What `run` would do, and the rows each gate needs; no model is called."""
    from promptdeck.analysis.needs import suite_needs

    counts = ", ".join(f"{k} {v}" for k, v in plan.category_counts().items())
    judged = "" if plan.suite.judge is None else " (+ a verdict for each)"
    print(f"{plan.suite.name}: {len(plan.cases)} rows ({counts})")
    print(f"{len(plan.cells())} answers{judged} from {len(plan.variants)} variants")
    for need in suite_needs(store, plan.suite.to_dict()):
        print(need.advice(len(plan.cases)))
    return 0


def run_sequential(
    args: argparse.Namespace, registry: Registry, store: Store, plan: EvalPlan, options: RunOptions
) -> int:
    budget = Budget(args.max_rows, args.max_cost, args.batch)
    bar = ProgressBar(sys.stderr)
    outcome = run_until_decided_now(
        registry, store, plan, options, budget,
        on_start=lambda run_id: print(f"run_id: {run_id}", flush=True), on_progress=bar.update,
    )  # fmt: skip
    bar.close()
    print(f"stopped after {outcome.rows} rows and {outcome.looks} looks: {outcome.why}")
    from promptdeck.analysis.run import analyze_run

    analysis = analyze_run(store, outcome.run_id)
    print_summary(analysis.per_variant, sys.stdout)
    if outcome.stopped == "cancelled":
        return 1
    return print_gates(analysis, args.insufficient) if args.gate else 0


def cmd_gate(args: argparse.Namespace) -> int:
    from promptdeck.analysis.run import analyze_run

    _, _, store = open_workspace()
    return print_gates(analyze_run(store, args.run_id, args.baseline), args.insufficient)


def print_gates(analysis: RunAnalysis, insufficient: str) -> int:
    """The headline per variant and the gate table on stdout; 0 when every gate passes."""
    for _, row in analysis.headlines.iterrows():
        print(f"{row['variant']} vs {analysis.baseline}: {row['summary']}")
    results = analysis.gates
    if not results:
        print(f"run {analysis.record.id}: the suite declares no gates")
        return 0
    width = max(len(r.gate) for r in results)
    print(f"{'gate':<{width}}  {'variant':<24} {'status':<21} observed")
    for r in results:
        print(f"{r.gate:<{width}}  {r.variant:<24} {r.status:<21} {r.observed}")
        print(f"{'':<{width}}  {r.reason}")
    status = analysis.gate_status
    print(f"gates: {status}")
    return 0 if status == "pass" or (status != "fail" and insufficient == "pass") else 1


def cmd_report(args: argparse.Namespace) -> int:
    from promptdeck.analysis.cells import cell_rows
    from promptdeck.analysis.report import html_report, markdown_summary, to_csv
    from promptdeck.analysis.run import analyze_run

    _, registry, store = open_workspace()
    run = store.get_run(args.run_id)
    if not (args.csv or args.html or args.md):
        print("error: say what to export: --html F, --md F and/or --csv F", file=sys.stderr)
        return 2
    if args.csv:
        rows = cell_rows(run.id, store.results(run.id), store.scores(run.id))
        write_output(args.csv, to_csv(rows))
        print(f"{args.csv}: {len(rows)} cells of run {run.id}")
    if args.html or args.md:
        analysis = analyze_run(store, run.id)
        data = analysis.report_data(demo_judge=registry.is_demo_model(analysis.judge_model or ""))
        if args.html:
            write_output(args.html, html_report(data))
            print(f"{args.html}: report of run {run.id}")
        if args.md:
            text = markdown_summary(data, report_path=str(args.html) if args.html else None)
            write_output(args.md, text)
            print(f"{args.md}: summary of run {run.id}")
    return 0


def cmd_import_promptfoo(args: argparse.Namespace) -> int:
    from promptdeck.promptfoo.importer import import_promptfoo

    result = import_promptfoo(
        Path(args.config), Path(args.out), force=args.force, name=args.name, presets=_presets()
    )
    for path in result.written:
        print(f"wrote {path}")
    for note in result.notes:
        print(f"note: {note}")
    for item in result.unmapped:
        print(f"not mapped: {item}")
    print(
        f"imported {len(result.variants)} variants and {result.rows} rows; "
        f"{len(result.unmapped)} items not mapped"
    )
    return 0


def cmd_export_promptfoo(args: argparse.Namespace) -> int:
    from promptdeck.promptfoo.exporter import export_promptfoo

    result = export_promptfoo(
        Path(args.suite),
        Path(args.out),
        prompts_dir=Workspace.from_env().prompts_dir,
        presets=_presets(),
        sampled=args.sampled,
        force=args.force,
    )
    for item in result.unmapped:
        print(f"not exported: {item}")
    print(f"wrote {result.path}: {result.tests} tests; {len(result.unmapped)} items not exported")
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    store = _open_store(Workspace.from_env().store_target)
    before, after = store.migrated
    done = f"applied migrations {before + 1}-{after}" if after > before else "already current"
    print(f"{store.engine} store at {store.location}: schema version {after} ({done})")
    return 0


def cmd_db_copy(args: argparse.Namespace) -> int:
    from promptdeck.store.transfer import copy_store

    source, target = _open_store(args.source, existing=True), _open_store(args.target)
    counts = copy_store(source, target)
    for table, rows in counts.items():
        print(f"{table}: {rows} rows")
    print(f"copied {source.location} -> {target.location}")
    return 0


def _presets() -> dict[str, ProviderConfig]:
    """The built-in providers plus the workspace's providers.yaml, for base-URL matching."""
    presets = builtin_configs()
    path = Workspace.from_env().providers_file
    if path.exists():
        presets.update(load_providers_file(path)[0])
    return presets


class AnalysisImport:
    """The analysis a run's summary needs (pandas, numpy: about half a second of CPU),
    imported in a thread from the first finished cell on, while the calls wait on the
    network: the summary then starts as soon as the last call is in."""

    def __init__(self) -> None:
        self._thread = threading.Thread(target=self._load, name="analysis-import", daemon=True)

    def start(self) -> None:
        if self._thread.ident is None:
            self._thread.start()

    def join(self) -> None:
        if self._thread.ident is not None:
            self._thread.join()

    @staticmethod
    def _load() -> None:
        from promptdeck.analysis import calibration, run  # noqa: F401


class ProgressBar:
    """A one-line bar on a terminal; a line per ~10% when stderr is a file (CI logs)."""

    def __init__(self, out: TextIO, width: int = 30) -> None:
        self.out, self.width, self.last_decile = out, width, -1
        self.tty = out.isatty()

    def update(self, p: Progress) -> None:
        filled = int(self.width * p.fraction)
        eta = f" eta {p.eta_s:.0f}s" if p.eta_s is not None else ""
        spend = format_cost(p.spend_usd) + ("+unknown" if p.unpriced else "")
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {p.done}/{p.total} "
            f"errors {p.errors} cached {p.cached} {p.elapsed_s:.0f}s{eta} spend {spend}"
        )
        if self.tty:
            print("\r" + line, end="", file=self.out, flush=True)
        elif int(p.fraction * 10) > self.last_decile:
            self.last_decile = int(p.fraction * 10)
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=self.out)


def _judge_summary(row: pd.Series) -> str:  # type: ignore[type-arg]
    """'3.80 (n=58, 2 unscored)': the mean verdict over scored answers, the rest counted."""
    scored, unscored = int(row["scored"]), int(row["unscored"])
    if scored + unscored == 0:
        return "-"
    mean = f"{row['score']:.2f}" if scored else "-"
    return f"{mean} (n={scored}" + (f", {unscored} unscored)" if unscored else ")")


def _number(value: object, fmt: str) -> str:
    import pandas as pd  # loaded by the analysis that made `value`

    return "-" if value is None or pd.isna(value) else format(value, fmt)


def print_summary(per_variant: pd.DataFrame, out: TextIO) -> None:
    """One line per variant from `results.variant_frame`, the summary every view shows."""
    import pandas as pd  # loaded by the analysis that made `per_variant`

    head = (
        f"{'variant':<28} {'cells':>5} {'errors':>6} {'cached':>6} {'fallbk':>6} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'tok out':>7} {'cost':>10}  {'checks':<12} judge"
    )
    print(head, file=out)
    for _, row in per_variant.iterrows():
        total = int(row["checks_total"])
        checks = f"{row['checks_passed'] / total:.0%} of {total}" if total else "-"
        print(
            f"{row['variant']:<28} {row['cells']:>5} {row['errors']:>6} {row['cached']:>6} "
            f"{row['fallback']:>6} {_number(row['latency_p50'], '.0f'):>8} "
            f"{_number(row['latency_p95'], '.0f'):>8} {_number(row['tokens_out'], '.0f'):>7} "
            f"{format_cost(None if pd.isna(row['cost_total']) else row['cost_total']):>10}  "
            f"{checks:<12} {_judge_summary(row)}",
            file=out,
        )
