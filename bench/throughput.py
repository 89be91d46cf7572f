"""Eval throughput and memory of the runner, against a local OpenAI-compatible server.

(a) 200 rows x 3 variants, each answer takes 200 ms (first_token_delay 0.2, one token),
    concurrency 16, cache off: wall time against the physical bound
    calls x latency / concurrency = 600 x 0.2 / 16 = 7.5 s (target ratio <= 1.15).
(b) the same plan with the cache on: one cold pass fills the cache, then a re-run:
    wall time (target < 3 s) and requests the server received (must be 0).
(c) peak RSS of `python -m promptdeck run` over 10,000 rows x 2 variants (one-token
    answer, no delay, concurrency 32, default cache on, fresh store): the CLI runs as a
    child of this script and `os.wait4` returns that child's own ru_maxrss (target < 1 GB).

How: (a) and (b) drive `Runner.run` in this process on an EvalPlan built in memory, as
tests/test_runner.py does; the timer covers `run_with_client(runner.run(...))` only. (c)
runs the real CLI in a temp workspace (prompts/, a CSV, a suite, providers.yaml). The
server (tests/llm_server.py) always runs in a separate process, so its threads do not
compete with the runner for this process's GIL. (a) runs once more against a server whose
listen backlog is 128 instead of socketserver's 5: with 5, some of the 16 connections that
open at once wait for TCP's 1 s SYN retry, which is the server's cost, not the runner's.
When (a) misses its target, or with --profile, (a) runs again under cProfile and the top
functions of the event-loop thread are printed.

Usage: .venv/bin/python bench/throughput.py [--profile] [--skip-rss]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.evals.plan import EvalPlan
from promptdeck.evals.runner import Progress, Runner
from promptdeck.evals.suite import Suite
from promptdeck.model.http import run_with_client
from promptdeck.model.pricing import PriceTable
from promptdeck.model.registry import ProviderConfig, Registry, builtin_configs
from promptdeck.model.secrets import Secrets
from promptdeck.store.db import Store
from promptdeck.workspace.datasets import Case, Dataset
from tests.helpers import variant
from tests.llm_server import LLMServer, Scenario, _HTTPServer

ROOT = Path(__file__).resolve().parents[1]
LATENCY_S = 0.2
A_ROWS, A_VARIANTS, A_CONCURRENCY = 200, 3, 16
A_TARGET_RATIO, B_TARGET_S = 1.15, 3.0
C_ROWS, C_VARIANTS, C_CONCURRENCY = 10_000, 2, 32
C_TARGET_MB = 1024


# --- the server, in its own process ---------------------------------------------------------


def serve(first_token_delay: float, backlog: int | None) -> None:
    """Child mode: serve one-token answers; answer `stats` lines on stdin until EOF."""
    if backlog is not None:
        # socketserver's default listen backlog is 5: when 16 connections open at once, the
        # kernel drops the SYNs beyond it and those clients retry 1 s later (TCP's RTO).
        _HTTPServer.request_queue_size = backlog
    server = LLMServer()
    server.default_scenario = Scenario(tokens=["ok"], first_token_delay=first_token_delay)
    with server:
        print(server.openai_url, flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {"requests": len(server.requests), "max_in_flight": server.max_in_flight}
                print(json.dumps(stats), flush=True)


class ServerProcess:
    def __init__(self, first_token_delay: float, backlog: int | None = None) -> None:
        backlog_args = [] if backlog is None else ["--backlog", str(backlog)]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(first_token_delay), *backlog_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError(f"the server did not start: {self.url!r}")

    def stats(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- (a) and (b): the Runner in this process ------------------------------------------------


def bench_registry(url: str) -> Registry:
    configs = builtin_configs()
    configs["fake"] = ProviderConfig("fake", "openai", url, requires_key=False, free=True)
    return Registry(configs, Secrets(), PriceTable(free_providers=frozenset({"fake"})))


def make_plan(rows: int, variants: int) -> EvalPlan:
    cases = tuple(
        Case(f"r{i}", {"category": "abc"[i % 3], "input": f"question number {i}"})
        for i in range(rows)
    )
    dataset = Dataset("bench", Path("bench.csv"), ("id", "category", "input"), cases)
    chosen = tuple(
        variant(f"bench/v{j}", f"fake/m{j}", user=f"Variant {j}. {{{{ input }}}}")
        for j in range(variants)
    )
    suite = Suite(None, Path("bench.csv"), tuple(v.name for v in chosen))
    return EvalPlan(suite, dataset, cases, chosen)


def timed_run(
    url: str,
    plan: EvalPlan,
    store: Store,
    *,
    use_cache: bool,
    profile: cProfile.Profile | None = None,
) -> tuple[float, Progress, list[dict[str, Any]]]:
    runner = Runner(bench_registry(url), store, concurrency=A_CONCURRENCY, use_cache=use_cache)
    run_id = store.create_run(plan.snapshot(), name="bench", total_cells=len(plan.cells()))
    start = time.perf_counter()
    if profile is not None:
        profile.enable()
    progress = run_with_client(runner.run(run_id, plan))
    if profile is not None:
        profile.disable()
    wall = time.perf_counter() - start
    return wall, progress, store.results(run_id)


def cold_metrics(
    prefix: str, wall: float, progress: Progress, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    latencies = [r["latency_ms"] / 1000 for r in rows]
    # What the calls really took, as the client measured them, and the bound that allows:
    # the runner's own overhead is the wall time beyond it.
    measured_bound = sum(latencies) / A_CONCURRENCY
    return {
        f"{prefix}_wall_s": wall,
        f"{prefix}_ratio": wall / (len(rows) * LATENCY_S / A_CONCURRENCY),
        f"{prefix}_errors": progress.errors,
        f"{prefix}_latency_p50_ms": statistics.median(latencies) * 1000,
        f"{prefix}_latency_max_ms": max(latencies) * 1000,
        f"{prefix}_slow_calls": sum(s > 2 * LATENCY_S for s in latencies),
        f"{prefix}_measured_bound_s": measured_bound,
        f"{prefix}_ratio_vs_measured": wall / measured_bound,
    }


def runner_benches(tmp: Path, want_profile: bool) -> dict[str, Any]:
    plan = make_plan(A_ROWS, A_VARIANTS)
    calls = len(plan.cells())
    out: dict[str, Any] = {"calls": calls, "bound_s": calls * LATENCY_S / A_CONCURRENCY}
    server = ServerProcess(LATENCY_S)
    try:
        wall, progress, rows = timed_run(server.url, plan, Store(tmp / "a.sqlite"), use_cache=False)
        out |= cold_metrics("a", wall, progress, rows)
        out |= {f"a_{k}": v for k, v in server.stats().items()}

        store = Store(tmp / "b.sqlite")
        wall, progress, rows = timed_run(server.url, plan, store, use_cache=True)
        out |= cold_metrics("fill", wall, progress, rows)
        before = server.stats()["requests"]
        wall, progress, rows = timed_run(server.url, plan, store, use_cache=True)
        out |= {
            "b_wall_s": wall,
            "b_requests": server.stats()["requests"] - before,
            "b_cached": sum(r["cached"] for r in rows),
            "b_errors": progress.errors,
        }
        profile = None
        if want_profile or out["a_ratio"] > A_TARGET_RATIO:
            profile = cProfile.Profile()
            wall, _, _ = timed_run(
                server.url, plan, Store(tmp / "p.sqlite"), use_cache=False, profile=profile
            )
            out["profile"] = profile_report(profile, wall)
    finally:
        server.close()
    # The same as (a) against a server that can queue 128 connections instead of 5.
    server = ServerProcess(LATENCY_S, backlog=128)
    try:
        wall, progress, rows = timed_run(
            server.url, plan, Store(tmp / "a2.sqlite"), use_cache=False
        )
        out |= cold_metrics("a128", wall, progress, rows)
    finally:
        server.close()
    return out


def profile_report(profile: cProfile.Profile, wall: float) -> str:
    out = io.StringIO()
    out.write(f"cProfile of (a), event-loop thread only, wall {wall:.2f} s (profiler on)\n")
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
    return out.getvalue()


# --- (c): peak RSS of the CLI, in its own process ---------------------------------------


def write_workspace(root: Path, url: str) -> None:
    (root / "prompts" / "bench").mkdir(parents=True)
    for j in range(C_VARIANTS):
        (root / "prompts" / "bench" / f"v{j}.yaml").write_text(
            f"model: fake/m{j}\nuser: 'Variant {j}. {{{{ input }}}}'\n"
        )
    (root / "datasets").mkdir()
    with (root / "datasets" / "big.csv").open("w") as f:
        f.write("id,category,input\n")
        for i in range(C_ROWS):
            f.write(f"r{i},{'abc'[i % 3]},question number {i} about order {i * 7919 % 100000}\n")
    names = ", ".join(f"bench/v{j}" for j in range(C_VARIANTS))
    (root / "datasets" / "big.suite.yaml").write_text(f"dataset: big.csv\nvariants: [{names}]\n")
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{url}', free: true}}\n"
    )


def run_child(
    args: list[str], cwd: Path, env: dict[str, str]
) -> tuple[int, float, resource.struct_rusage, str]:
    """(exit code, wall s, that child's own rusage (ru_maxrss: peak RSS in KiB), stderr tail)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-400:]
    return proc.returncode, wall, usage, tail


def rss_bench(tmp: Path) -> dict[str, Any]:
    server = ServerProcess(0.0)
    try:
        root = tmp / "ws"
        write_workspace(root, server.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
        env |= {"PROMPTDECK_HOME": str(tmp / "home"), "PYTHONPATH": str(ROOT)}
        cli = [sys.executable, "-m", "promptdeck"]
        _, _, idle, _ = run_child([*cli, "--help"], root, env)  # interpreter + imports
        cmd = [*cli, "run", "datasets/big.suite.yaml", "--concurrency", str(C_CONCURRENCY)]
        code, wall, usage, tail = run_child(cmd, root, env)
        requests = server.stats()["requests"]
    finally:
        server.close()
    if code != 0:
        raise RuntimeError(f"the CLI failed ({code}): {tail}")
    return {
        "c_cells": C_ROWS * C_VARIANTS,
        "c_wall_s": wall,
        "c_cells_per_s": C_ROWS * C_VARIANTS / wall,
        "c_requests": requests,
        "c_cpu_s": usage.ru_utime + usage.ru_stime,
        "c_peak_rss_mb": usage.ru_maxrss / 1024,
        "c_import_rss_mb": idle.ru_maxrss / 1024,
    }


# --- report ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(r: dict[str, Any]) -> None:
    head = f"{'case':<46} {'calls':>6} {'wall s':>7} {'bound s':>7} {'ratio':>6} {'req':>6}"
    print(head + f"  {'target':<16} result")
    print("-" * (len(head) + 24))

    def line(name: str, wall: float, ratio: str, req: int | str, target: str, ok: str) -> None:
        bound = f"{r['bound_s']:.2f}" if ratio != "-" else "-"
        print(
            f"{name:<46} {r['calls']:>6} {wall:7.2f} {bound:>7} {ratio:>6} {req!s:>6}"
            f"  {target:<16} {ok}"
        )

    ok_a = r["a_ratio"] <= A_TARGET_RATIO and r["a_errors"] == 0
    target_a = f"ratio <= {A_TARGET_RATIO}"
    line("(a) 200x3, 200 ms/answer, c=16, cache off", r["a_wall_s"], f"{r['a_ratio']:.3f}",
         r["a_requests"], target_a, verdict(ok_a))  # fmt: skip
    line("    same, server listen backlog 128 (not 5)", r["a128_wall_s"],
         f"{r['a128_ratio']:.3f}", r["calls"], "(diagnosis)", "")  # fmt: skip
    line("    same, cache on (cold pass, fills cache)", r["fill_wall_s"],
         f"{r['fill_ratio']:.3f}", r["calls"], "(info)", "")  # fmt: skip
    ok_b = r["b_wall_s"] < B_TARGET_S and r["b_requests"] == 0 and r["b_cached"] == r["calls"]
    line("(b) re-run of the same plan, cache on", r["b_wall_s"], "-", r["b_requests"],
         f"< {B_TARGET_S:g} s, 0 req", verdict(ok_b))  # fmt: skip
    print()
    for prefix, name in (("a", "(a)"), ("a128", "(a) backlog 128"), ("fill", "(a) cache on")):
        print(
            f"{name}: client-measured latency p50 {r[prefix + '_latency_p50_ms']:.1f} ms, "
            f"max {r[prefix + '_latency_max_ms']:.0f} ms, {r[prefix + '_slow_calls']} calls "
            f"over {2 * LATENCY_S * 1000:.0f} ms; sum(latency)/c = "
            f"{r[prefix + '_measured_bound_s']:.2f} s, wall / that = "
            f"{r[prefix + '_ratio_vs_measured']:.3f} (the runner's own overhead)"
        )
    print(f"(a): server max in flight {r['a_max_in_flight']} (concurrency {A_CONCURRENCY})")
    if "c_peak_rss_mb" in r:
        ok_c = r["c_peak_rss_mb"] < C_TARGET_MB and r["c_requests"] == r["c_cells"]
        print(
            f"\n(c) `python -m promptdeck run`, {C_ROWS} rows x {C_VARIANTS} variants, no delay, "
            f"c={C_CONCURRENCY}: peak RSS {r['c_peak_rss_mb']:.0f} MB "
            f"(interpreter + imports alone: {r['c_import_rss_mb']:.0f} MB), "
            f"target < {C_TARGET_MB} MB: {verdict(ok_c)}\n"
            f"    wall {r['c_wall_s']:.1f} s = {r['c_cells_per_s']:.0f} cells/s, CLI CPU "
            f"{r['c_cpu_s']:.1f} s, {r['c_requests']} server requests"
        )
    if r.get("profile"):
        print("\n" + r["profile"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="store_true", help="profile (a) with cProfile")
    parser.add_argument("--skip-rss", action="store_true", help="skip (c)")
    parser.add_argument("--serve", type=float, metavar="DELAY", help=argparse.SUPPRESS)
    parser.add_argument("--backlog", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve, args.backlog)
    with tempfile.TemporaryDirectory(prefix="pd-bench-") as tmp:
        results = runner_benches(Path(tmp), args.profile)
        if not args.skip_rss:
            results |= rss_bench(Path(tmp))
    print_report(results)
    summary = {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}
    summary.pop("profile", None)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
