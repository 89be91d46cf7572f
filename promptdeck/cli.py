"""`python -m promptdeck ...`: headless evals for scripts and CI.

    run SUITE [--sample N] [--seed S] [--concurrency C] [--rpm R] [--repeats K]
              [--no-cache] [--new]
    run SUITE ... --gate          then evaluate the suite's gates (exit 1 if one fails)
    gate RUN_ID [--baseline V] [--insufficient fail|pass]
    report RUN_ID [--html F] [--md F] [--csv F]   (RUN_ID may be 'latest')
    import-promptfoo CONFIG --out DIR [--name NAME] [--force]
    export-promptfoo SUITE --out FILE [--sampled] [--force]

`run` resumes the newest unfinished run of the same plan (same prompts, sample and
repeats) unless --new is given. Progress goes to stderr; stdout gets `run_id: <ID>` and a
summary table. Exit codes: 0 done (and, with --gate, every gate passed); 1 not every cell
finished, or a gate failed or had insufficient evidence; 2 usage or configuration error.
`import-promptfoo` and `export-promptfoo` print what they wrote and, one per line, what they
could not map; that is not an error (exit 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from promptdeck.analysis.calibration import describe, run_agreement
from promptdeck.analysis.gates import evaluate_gates, overall_status
from promptdeck.analysis.report import cell_rows, html_report, markdown_summary, to_csv
from promptdeck.analysis.results import load_cells, run_report
from promptdeck.errors import PromptDeckError
from promptdeck.evals.plan import build_plan
from promptdeck.evals.runner import Progress, Runner
from promptdeck.evals.suite import load_suite
from promptdeck.model.http import run_with_client
from promptdeck.model.pricing import format_cost
from promptdeck.model.registry import (
    ProviderConfig,
    Registry,
    builtin_configs,
    load_providers_file,
)
from promptdeck.model.secrets import Secrets
from promptdeck.promptfoo.exporter import export_promptfoo
from promptdeck.promptfoo.importer import import_promptfoo
from promptdeck.store.settings import load_settings, saved_concurrency
from promptdeck.store.sqlite import Store
from promptdeck.workspace.paths import Workspace
from promptdeck.workspace.prompts import load_prompts


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except PromptDeckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are stored; run again to resume", file=sys.stderr)
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m promptdeck", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run (or resume) an eval suite")
    run.add_argument("suite", help="a datasets/<name>.suite.yaml file")
    run.add_argument("--sample", type=_at_least(1), metavar="N", help="rows to sample")
    run.add_argument("--seed", type=int, metavar="S", help="sampling seed (overrides suite)")
    run.add_argument(
        "--concurrency",
        type=_at_least(1),
        metavar="C",
        help="calls in flight per provider (default: as saved in Settings, else each "
        "provider's max_concurrency)",
    )
    run.add_argument(
        "--rpm", type=_positive, metavar="R", help="max requests per minute per provider"
    )
    run.add_argument(
        "--repeats", type=_at_least(1, 20), metavar="K", help="answers per (case, variant), 1-20"
    )
    run.add_argument("--no-cache", action="store_true", help="call the models even if cached")
    run.add_argument("--new", action="store_true", help="start a new run instead of resuming")
    run.add_argument("--gate", action="store_true", help="then evaluate the suite's gates")
    _insufficient_option(run)
    run.set_defaults(func=cmd_run)
    gate = sub.add_parser("gate", help="evaluate the suite's gates on a stored run")
    gate.add_argument("run_id", help="a run id, or 'latest'")
    gate.add_argument("--baseline", help="compare against this variant (default: the suite's)")
    _insufficient_option(gate)
    gate.set_defaults(func=cmd_gate)
    report = sub.add_parser("report", help="export a stored run")
    report.add_argument("run_id", help="a run id, or 'latest'")
    report.add_argument("--html", metavar="F", help="a self-contained report for stakeholders")
    report.add_argument("--md", metavar="F", help="a Markdown summary for a pull request")
    report.add_argument("--csv", metavar="F", help="one row per cell: answer, judge, checks")
    report.set_defaults(func=cmd_report)
    _promptfoo_parsers(sub)
    return parser


def _promptfoo_parsers(sub: Any) -> None:
    pf_in = sub.add_parser("import-promptfoo", help="promptfoo config -> prompts, dataset, suite")
    pf_in.add_argument("config", help="a promptfooconfig.yaml")
    pf_in.add_argument("--out", required=True, metavar="DIR", help="the workspace to write into")
    pf_in.add_argument("--name", help="dataset, suite and task name (default: from the config)")
    pf_in.add_argument("--force", action="store_true", help="overwrite files that exist")
    pf_in.set_defaults(func=cmd_import_promptfoo)
    pf_out = sub.add_parser("export-promptfoo", help="suite -> promptfooconfig.yaml")
    pf_out.add_argument("suite", help="a datasets/<name>.suite.yaml file")
    pf_out.add_argument("--out", required=True, metavar="FILE", help="the config to write")
    pf_out.add_argument("--sampled", action="store_true", help="only the suite's sampled rows")
    pf_out.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    pf_out.set_defaults(func=cmd_export_promptfoo)


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
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _insufficient_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insufficient",
        choices=("fail", "pass"),
        default="fail",
        help="exit code when a gate has insufficient evidence (default: fail, exit 1)",
    )


def open_workspace() -> tuple[Workspace, Registry, Store]:
    ws = Workspace.from_env()
    registry = Registry.from_workspace(ws.providers_file, Secrets(ws.root / ".env"))
    return ws, registry, Store(ws.store_path)


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    ws = Workspace.from_env()
    suite = load_suite(Path(args.suite))
    plan = build_plan(
        suite, load_prompts(ws.prompts_dir), n=args.sample, seed=args.seed, repeats=args.repeats
    )
    _, registry, store = open_workspace()  # only once the plan is sound: no stray store
    concurrency = args.concurrency or saved_concurrency(store)  # None: each provider's own
    use_cache = not args.no_cache and load_settings(store).use_cache
    snapshot = plan.snapshot()
    run_id = None if args.new else store.find_unfinished_run(snapshot["fingerprint"])
    if run_id is None:
        run_id = store.create_run(snapshot, name=suite.name, total_cells=len(plan.cells()))
    else:
        done = len(store.done_cells(run_id))
        print(f"resuming run {run_id}: {done} of {len(plan.cells())} cells done", file=sys.stderr)
    print(f"run_id: {run_id}", flush=True)
    runner = Runner(registry, store, concurrency=concurrency, rpm=args.rpm, use_cache=use_cache)
    bar = ProgressBar(sys.stderr)
    final = run_with_client(runner.run(run_id, plan, on_progress=bar.update))
    bar.close()
    scores = store.scores(run_id)
    print_summary(cell_rows(run_id, store.results(run_id), scores), sys.stdout)
    calibration = run_agreement(snapshot["cases"], scores, store.score_overrides(run_id))
    if calibration is not None:
        print(describe(calibration))
    if final.done != final.total:
        return 1
    return print_gates(store, run_id, None, args.insufficient) if args.gate else 0


def cmd_gate(args: argparse.Namespace) -> int:
    _, _, store = open_workspace()
    return print_gates(store, store.get_run(args.run_id).id, args.baseline, args.insufficient)


def print_gates(store: Store, run_id: str, baseline: str | None, insufficient: str) -> int:
    """The gate table on stdout; 0 when every gate passes, else 1."""
    record = store.get_run(run_id)
    suite = record.snapshot.get("suite", {})
    cells = load_cells(store, run_id)
    results = evaluate_gates(cells, baseline or suite.get("baseline"), suite.get("gates", []))
    if not results:
        print(f"run {run_id}: the suite declares no gates")
        return 0
    width = max(len(r.gate) for r in results)
    print(f"{'gate':<{width}}  {'variant':<24} {'status':<21} observed")
    for r in results:
        print(f"{r.gate:<{width}}  {r.variant:<24} {r.status:<21} {r.observed}")
        print(f"{'':<{width}}  {r.reason}")
    status = overall_status(results)
    print(f"gates: {status}")
    return 0 if status == "pass" or (status != "fail" and insufficient == "pass") else 1


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    _, _, store = open_workspace()
    run = store.get_run(args.run_id)
    if not (args.csv or args.html or args.md):
        print("error: say what to export: --html F, --md F and/or --csv F", file=sys.stderr)
        return 2
    if args.csv:
        rows = cell_rows(run.id, store.results(run.id), store.scores(run.id))
        Path(args.csv).write_text(to_csv(rows), encoding="utf-8")
        print(f"{args.csv}: {len(rows)} cells of run {run.id}")
    if args.html or args.md:
        bundle = run_report(store, run.id)
        if args.html:
            Path(args.html).write_text(html_report(**bundle), encoding="utf-8")
            print(f"{args.html}: report of run {run.id}")
        if args.md:
            text = markdown_summary(**bundle, report_path=args.html)
            Path(args.md).write_text(text, encoding="utf-8")
            print(f"{args.md}: summary of run {run.id}")
    return 0


def cmd_import_promptfoo(args: argparse.Namespace) -> int:
    from pathlib import Path

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
    from pathlib import Path

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


def _presets() -> dict[str, ProviderConfig]:
    """The built-in providers plus the workspace's providers.yaml, for base-URL matching."""
    presets = builtin_configs()
    path = Workspace.from_env().providers_file
    if path.exists():
        presets.update(load_providers_file(path)[0])
    return presets


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


def summarize(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant: cells, errors, cached, fallbacks, latency p50/p95, tokens, cost."""
    rows = []
    for variant in sorted({r["variant"] for r in results}):
        mine = [r for r in results if r["variant"] == variant]
        ok = [r for r in mine if r["error"] is None]
        lat = sorted(r["latency_ms"] for r in ok if not r["cached"] and r["latency_ms"])
        costs = [r["cost_usd"] for r in mine]
        rows.append(
            {
                "variant": variant,
                "cells": len(mine),
                "errors": len(mine) - len(ok),
                "cached": sum(r["cached"] for r in mine),
                "fallback": sum(r["fallback_used"] for r in mine),
                "p50_ms": statistics.median(lat) if lat else None,
                "p95_ms": _p95(lat),
                "tokens_out": statistics.mean(r["output_tokens"] or 0 for r in ok) if ok else None,
                "cost_usd": None if any(c is None for c in costs) else sum(costs),
                "judge": _judge_summary(mine),
                "checks": _checks_summary(mine),
            }
        )
    return rows


def _judge_summary(rows: Sequence[dict[str, Any]]) -> str:
    """'3.80 (n=58, 2 unscored)': the mean verdict over scored answers, the rest counted."""
    judged = [r for r in rows if r.get("judge_reason") is not None]
    scored = [float(r["judge_score"]) for r in judged if r["judge_score"] is not None]
    if not judged:
        return "-"
    mean = f"{statistics.mean(scored):.2f}" if scored else "-"
    unscored = len(judged) - len(scored)
    return f"{mean} (n={len(scored)}" + (f", {unscored} unscored)" if unscored else ")")


def _checks_summary(rows: Sequence[dict[str, Any]]) -> str:
    total = sum(r.get("checks_total") or 0 for r in rows)
    passed = sum(r.get("checks_passed") or 0 for r in rows)
    return f"{passed / total:.0%} of {total}" if total else "-"


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def print_summary(results: Sequence[dict[str, Any]], out: TextIO) -> None:
    head = (
        f"{'variant':<28} {'cells':>5} {'errors':>6} {'cached':>6} {'fallbk':>6} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'tok out':>7} {'cost':>10}  {'checks':<12} judge"
    )
    print(head, file=out)
    for row in summarize(results):
        p50 = f"{row['p50_ms']:.0f}" if row["p50_ms"] is not None else "-"
        p95 = f"{row['p95_ms']:.0f}" if row["p95_ms"] is not None else "-"
        tok = f"{row['tokens_out']:.0f}" if row["tokens_out"] is not None else "-"
        print(
            f"{row['variant']:<28} {row['cells']:>5} {row['errors']:>6} {row['cached']:>6} "
            f"{row['fallback']:>6} {p50:>8} {p95:>8} {tok:>7} "
            f"{format_cost(row['cost_usd']):>10}  {row['checks']:<12} {row['judge']}",
            file=out,
        )
