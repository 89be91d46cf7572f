"""Fault injection figures: an eval that meets every kind of provider failure, and the
corpus of bad input files.

(a) 100 rows x 2 variants (one OpenAI-wire, one Anthropic-wire provider, read timeout
    0.5 s from providers.yaml) through the real Runner against tests/llm_server.py, whose
    `FaultPlan` gives about 20% of the requests a seeded fault: 429 with retry-after,
    500/502/503/529, 401/403, quota, a hang-up before any byte ("refused"), a stall longer
    than the read timeout, a hang-up mid-stream, malformed SSE, a slow trickle. Then the
    same run is resumed, and the same plan run again (answers from the cache).
    - results lost: streams the server sent in full that are not a stored answer, plus
      cells missing from the store (must be 0);
    - duplicate calls: requests beyond those the cell's faults justified under the retry
      policy (`fault_outcome`), plus any request of the resume and any request of the
      re-run for a cell that already had an answer (must be 0);
    - wrong error kinds: stored errors whose kind is not what the faults call for;
    - retry-after: gaps between a 429 and the cell's next request shorter than it asked.
(b) every file under tests/bad_inputs/ through the loader the app uses for its kind
    (prompt -> load_variant, dataset -> load_dataset, suite -> load_suite, providers ->
    load_providers_file), the kind and expected stage taken from the corpus's manifest.yaml,
    else from the folder (prompts/, datasets/, suites/, providers/): a PromptDeckError with
    a message is a refusal, any other exception (or an empty message) is a crash (must be 0).
    A file the manifest expects to be refused only when a suite is planned (stage plan) or
    to be fine (stage ok) may load; one that should be refused and loads is listed.

Usage: .venv/bin/python bench/faults.py [--rows N] [--rate R] [--seed S]
Prints a table, then one line of JSON; exits 1 if a must-be-0 figure is not 0.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.errors import PromptDeckError
from promptdeck.evals.plan import EvalPlan
from promptdeck.evals.runner import Runner
from promptdeck.evals.suite import Suite, load_suite
from promptdeck.model.http import run_with_client
from promptdeck.model.registry import Registry
from promptdeck.model.retry import MAX_RETRIES
from promptdeck.model.secrets import Secrets
from promptdeck.store.db import Store
from promptdeck.workspace.datasets import Case, Dataset, load_dataset
from promptdeck.workspace.prompts import load_variant
from promptdeck.workspace.providers_file import load_providers_file, open_registry
from tests.helpers import variant
from tests.llm_server import FaultPlan, LLMServer, RecordedRequest, Scenario, fault_outcome

ROOT = Path(__file__).resolve().parents[1]
BAD_INPUTS = ROOT / "tests" / "bad_inputs"
READ_TIMEOUT = 0.5
CONCURRENCY = 8
MODELS = {"qa/gpt": "fake/gpt", "qa/claude": "fakeclaude/claude"}  # variant -> model


# --- (a) the faulty eval ---------------------------------------------------------------------


@dataclass
class EvalFigures:
    cells: int = 0
    requests: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    results_lost: int = 0
    duplicate_calls: int = 0
    wrong_error_kinds: int = 0
    retry_after_waits: int = 0
    retry_after_violations: int = 0
    resume_requests: int = 0
    rerun_requests: int = 0
    internal_errors: int = 0
    wall_s: float = 0.0


def make_registry(root: Path, server: LLMServer) -> Registry:
    path = root / "providers.yaml"
    path.write_text(
        "providers:\n"
        f"  fake: {{kind: openai, base_url: '{server.openai_url}', read_timeout: {READ_TIMEOUT}}}\n"
        f"  fakeclaude: {{kind: anthropic, base_url: '{server.url}', api_key_env: FAKE_KEY,"
        f" send_key_to: [127.0.0.1], read_timeout: {READ_TIMEOUT}}}\n"
    )
    return open_registry(path, Secrets(extra={"FAKE_KEY": "k"}.get))


def make_plan(rows: int) -> EvalPlan:
    cases = tuple(Case(f"r{i:04}", {"input": f"question {i} please"}) for i in range(rows))
    dataset = Dataset("d", Path("d.csv"), ("id", "input"), cases)
    variants = tuple(variant(name, model) for name, model in MODELS.items())
    return EvalPlan(Suite(None, Path("d.csv"), tuple(MODELS)), dataset, cases, variants)


def run_once(registry: Registry, store: Store, plan: EvalPlan, run_id: str | None = None) -> str:
    """One run in its own event loop with a fresh Runner, as the CLI and the UI do."""
    run_id = run_id or store.create_run(
        plan.snapshot(), name="faults", total_cells=len(plan.cells())
    )
    run_with_client(Runner(registry, store, concurrency=CONCURRENCY).run(run_id, plan))
    return run_id


def cell_of(row: dict[str, Any], inputs: dict[str, str]) -> tuple[str, str]:
    """The (model, message) the server sees for a stored result row."""
    return MODELS[row["variant"]].partition("/")[2], inputs[row["row_id"]]


def run_eval(rows: int, plan_faults: FaultPlan) -> EvalFigures:
    figures = EvalFigures()
    plan = make_plan(rows)
    inputs = {c.id: c.values["input"] for c in plan.cases}
    with tempfile.TemporaryDirectory() as tmp, LLMServer() as server:
        for model in MODELS.values():
            server.set_scenario(model.partition("/")[2], Scenario(faults=plan_faults))
        registry, store = make_registry(Path(tmp), server), Store(Path(tmp) / "s.sqlite")
        started = time.perf_counter()
        run_id = run_once(registry, store, plan)
        figures.wall_s = time.perf_counter() - started
        requests, stored = server.requests, store.results(run_id)
        count_cells(figures, plan, stored, requests, inputs, plan_faults)
        figures.results_lost += count_lost(server.completed, stored, inputs)
        answered = {cell_of(r, inputs) for r in stored if r["error"] is None}

        run_once(registry, store, plan, run_id)  # resume: every cell is stored already
        figures.resume_requests = len(server.requests) - len(requests)
        seen = len(server.requests)
        run_once(registry, store, plan)  # a new run: answers from the cache
        again = [(r.model, r.message) for r in server.requests[seen:]]
        figures.rerun_requests = sum(cell in answered for cell in again)
        store.close()
    figures.duplicate_calls += figures.resume_requests + figures.rerun_requests
    return figures


def count_cells(
    figures: EvalFigures,
    plan: EvalPlan,
    stored: list[dict[str, Any]],
    requests: list[RecordedRequest],
    inputs: dict[str, str],
    plan_faults: FaultPlan,
) -> None:
    asked: dict[tuple[str, str], list[RecordedRequest]] = defaultdict(list)
    for request in requests:
        asked[(request.model, request.message)].append(request)
    figures.cells, figures.requests = len(plan.cells()), len(requests)
    figures.faults = Counter(r.fault for r in requests if r.fault)
    figures.results_lost = figures.cells - len({(r["row_id"], r["variant"]) for r in stored})
    for row in stored:
        if row["error"] is None:
            figures.ok += 1
        else:
            figures.errors[row["error_kind"]] += 1
        figures.internal_errors += row["error_kind"] == "internal"
        cell = asked[cell_of(row, inputs)]
        kind, needed = fault_outcome([r.fault for r in cell], MAX_RETRIES)
        figures.duplicate_calls += max(0, len(cell) - needed)
        figures.wrong_error_kinds += kind != row["error_kind"]
        for first, later in itertools.pairwise(cell):
            if first.fault == "429":
                figures.retry_after_waits += 1
                late_enough = later.arrived - first.arrived >= plan_faults.retry_after
                figures.retry_after_violations += not late_enough


def count_lost(
    completed: list[RecordedRequest], stored: list[dict[str, Any]], inputs: dict[str, str]
) -> int:
    """Streams sent in full whose cell is not stored as that answer."""
    answers = {cell_of(r, inputs): r["output"] for r in stored if r["error"] is None}
    return sum(answers.get((r.model, r.message)) != "Echo: " + r.message for r in completed)


# --- (b) bad inputs --------------------------------------------------------------------------


@dataclass
class InputFigures:
    tried: Counter[str] = field(default_factory=Counter)  # per kind
    handled: int = 0
    expected_loads: list[str] = field(default_factory=list)  # stage plan/ok: loads, rightly
    accepted: list[str] = field(default_factory=list)  # loaded though a refusal was due
    crashes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no kind known for it
    generated: int = 0  # manifest entries written at test time: not tried here


def prompt_loader(path: Path) -> object:
    # A variant is <task>/<variant>.yaml under its root: prompts/<task>/x.yaml loads against
    # prompts/, a loose prompts/x.yaml as task "prompts"; either way, the grandparent folder.
    return load_variant(path, path.parents[1])


LOADERS: dict[str, Callable[[Path], object]] = {
    "prompt": prompt_loader,
    "dataset": load_dataset,
    "suite": load_suite,
    "providers": load_providers_file,
}
FOLDER_KINDS = {
    "prompts": "prompt",
    "datasets": "dataset",
    "suites": "suite",
    "providers": "providers",
}


def read_manifest(folder: Path) -> tuple[dict[str, tuple[str, str]], int]:
    """{file: (kind, stage)} from the corpus's manifest.yaml, and how many entries are
    generated at test time; ({}, 0) when there is no usable manifest."""
    try:
        entries = yaml.safe_load((folder / "manifest.yaml").read_text(encoding="utf-8"))["files"]
        known = {
            str(e["file"]): (str(e["kind"]), str(e.get("stage", "load")))
            for e in entries
            if e["file"] != "generated"
        }
        return known, sum(e["file"] == "generated" for e in entries)
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        return {}, 0


def try_bad_inputs(folder: Path = BAD_INPUTS) -> InputFigures:
    figures = InputFigures()
    manifest, figures.generated = read_manifest(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    for path in files:
        name = path.relative_to(folder).as_posix()
        if path.name.startswith(".") or name.lower().startswith(("readme", "manifest.")):
            continue
        kind, stage = manifest.get(name, (FOLDER_KINDS.get(name.partition("/")[0], ""), "load"))
        if kind not in LOADERS:
            figures.skipped.append(name)
            continue
        figures.tried[kind] += 1
        try:
            LOADERS[kind](path)
        except PromptDeckError as exc:
            if str(exc).strip():
                figures.handled += 1
            else:
                figures.crashes.append(f"{name}: {type(exc).__name__} without a message")
        except Exception as exc:  # a crash is what this counts
            figures.crashes.append(f"{name}: {type(exc).__name__}: {exc}"[:200])
        else:
            (figures.accepted if stage == "load" else figures.expected_loads).append(name)
    return figures


# --- report ----------------------------------------------------------------------------------


def must_be_zero(value: int) -> str:
    return f"{value:>6}   (must be 0){'' if value == 0 else '  <-- FAIL'}"


def print_eval(f: EvalFigures, args: argparse.Namespace) -> None:
    print(
        f"(a) faulty eval: {args.rows} rows x {len(MODELS)} variants, fault rate {args.rate}, "
        f"seed {args.seed}, concurrency {CONCURRENCY}, read timeout {READ_TIMEOUT} s"
    )
    share = sum(f.faults.values()) / f.requests if f.requests else 0.0
    print(f"  cells                       {f.cells:>6}")
    print(f"  requests                    {f.requests:>6}")
    print(f"  faults injected             {sum(f.faults.values()):>6}   ({share:.1%} of requests)")
    for kind, n in sorted(f.faults.items(), key=lambda item: (-item[1], item[0])):
        print(f"    {kind:<24}  {n:>6}")
    print(f"  ok                          {f.ok:>6}")
    print(f"  recorded errors             {sum(f.errors.values()):>6}")
    for kind, n in sorted(f.errors.items(), key=lambda item: (-item[1], item[0])):
        print(f"    {kind:<24}  {n:>6}")
    print(f"  results lost                {must_be_zero(f.results_lost)}")
    print(f"  duplicate calls             {must_be_zero(f.duplicate_calls)}")
    print(f"  wrong error kinds           {must_be_zero(f.wrong_error_kinds)}")
    print(
        f"  retry-after waits too short {must_be_zero(f.retry_after_violations)}"
        f"   of {f.retry_after_waits} waits after a 429"
    )
    print(f"  requests of the resume      {must_be_zero(f.resume_requests)}")
    print(f"  re-run requests, ok cells   {must_be_zero(f.rerun_requests)}")
    print(f"  crashes (internal errors)   {must_be_zero(f.internal_errors)}")
    print(f"  wall time                   {f.wall_s:>6.2f} s")


def print_inputs(f: InputFigures) -> None:
    print(f"(b) bad inputs: {BAD_INPUTS.relative_to(ROOT)}/")
    if not f.tried:
        print("  no files found (the folder is missing or empty): 0 tried, 0 crashes")
        return
    print(f"  bad inputs tried            {sum(f.tried.values()):>6}")
    for loader, n in sorted(f.tried.items()):
        print(f"    {loader:<24}  {n:>6}")
    print(f"  refused (PromptDeckError)   {f.handled:>6}")
    print(f"  loaded, as the manifest says{len(f.expected_loads):>6}   (refused later, or fine)")
    print(f"  loaded, a refusal was due   {len(f.accepted):>6}")
    for name in f.accepted:
        print(f"    {name}")
    if f.skipped:
        print(f"  skipped (kind unknown)      {len(f.skipped):>6}   {', '.join(f.skipped)}")
    if f.generated:
        print(f"  generated at test time      {f.generated:>6}   (by tests/test_bad_inputs.py)")
    print(f"  crashes                     {must_be_zero(len(f.crashes))}")
    for crash in f.crashes:
        print(f"    {crash}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    plan_faults = FaultPlan(rate=args.rate, seed=args.seed, retry_after=0.05, stall=1.5)
    figures = run_eval(args.rows, plan_faults)
    inputs = try_bad_inputs()
    print_eval(figures, args)
    print()
    print_inputs(inputs)
    crashes = figures.internal_errors + len(inputs.crashes)
    summary = {
        "faults_injected": sum(figures.faults.values()),
        "faults_by_kind": dict(sorted(figures.faults.items())),
        "cells": figures.cells,
        "requests": figures.requests,
        "ok": figures.ok,
        "errors_by_kind": dict(sorted(figures.errors.items())),
        "results_lost": figures.results_lost,
        "duplicate_calls": figures.duplicate_calls,
        "wrong_error_kinds": figures.wrong_error_kinds,
        "retry_after_violations": figures.retry_after_violations,
        "bad_inputs_tried": sum(inputs.tried.values()),
        "bad_inputs_refused": inputs.handled,
        "bad_inputs_loaded_wrongly": len(inputs.accepted),
        "crashes": crashes,
        "wall_s": round(figures.wall_s, 2),
    }
    print()
    print(json.dumps(summary))
    failed = figures.results_lost + figures.duplicate_calls + figures.wrong_error_kinds
    return 1 if failed + figures.retry_after_violations + crashes else 0


if __name__ == "__main__":
    sys.exit(main())
