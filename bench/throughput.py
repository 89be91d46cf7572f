"""Eval throughput and memory of the runner, against a local OpenAI-compatible server.

(a) 200 rows x 3 variants, each answer takes 200 ms (first_token_delay 0.2, one token),
    concurrency 16, cache off: wall time against the physical bound
    calls x latency / concurrency = 600 x 0.2 / 16 = 7.5 s (target ratio <= 1.15).
(b) the same plan with the cache on: one cold pass fills the cache, then a re-run:
    wall time (target < 3 s) and requests the server received (must be 0).
(c) peak RSS of `python -m promptdeck run` over 10,000 rows x 2 variants (one-token
    answer, no delay, concurrency 32, default cache on, fresh store): the CLI runs as a
    child of this script and `os.wait4` returns that child's own ru_maxrss (target < 1 GB).
(d) CLI start to first request: from just before `python -m promptdeck run` is spawned to
    the server's arrival time of its first request (target <= 0.3 s), on a small judged
    suite with gates, against a bare `python -c 'import httpx; httpx.post(...)'` process
    measured the same way: the least any Python client of this server takes. Also shown:
    the CLI on a 2-row `--sample` of the big suite (sampling is the dataset loader's part).
    Each is started D_RUNS times, interleaved; the medians are reported.
(e) the real CLI on 200 rows x 3 variants with a pointwise judge: 600 answers + 600
    verdicts, every call 200 ms, concurrency 16, cache off, fresh store: process wall time
    (spawn to exit) against the bound 1,200 x 0.2 / 16 = 15 s (target ratio <= 1.10),
    split into start (to the first request), calls (first request to the end of the last
    one) and after (the last call's end to exit: the analysis and summary). Baseline in the
    same run: the same eval without the judge (600 calls, bound 7.5 s). The judge's tail is
    how long after the last answer's arrival the last verdict request arrived (one call,
    0.2 s, at best). Also shown: the judged eval with the judge on a provider of its own
    (concurrency 16 each, so its bound is 7.5 s).

How: (a) and (b) drive `Runner.run` in this process on an EvalPlan built in memory, as
tests/test_runner.py does; the timer covers `run_with_client(runner.run(...))` only. (c)
runs the real CLI in a temp workspace (prompts/, a CSV, a suite, providers.yaml). The
server (tests/llm_server.py) always runs in a separate process, so its threads do not
compete with the runner for this process's GIL. (a) runs once more against a server whose
listen backlog is 128 instead of socketserver's 5: with 5, some of the 16 connections that
open at once wait for TCP's 1 s SYN retry, which is the server's cost, not the runner's.
When (a) misses its target, or with --profile, (a) runs again under cProfile and the top
functions of the event-loop thread are printed. (d) and (e) run the CLI against a server
whose backlog is 128, so that they measure the CLI, not TCP's SYN retry. The server's
arrival times are `time.monotonic()` in its own process: on Linux one clock for every
process, so they compare with this script's.

Usage: .venv/bin/python bench/throughput.py [--profile] [--skip-rss] [--only-cli]
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
D_RUNS, D_TARGET_S = 5, 0.3
E_TARGET_RATIO = 1.10
JUDGE_MODEL = "judge"  # the server answers it with a verdict, as slowly as the answers
VERDICT = '{"reasoning": "Fine.", "score": 4}'


# --- the server, in its own process ---------------------------------------------------------


def serve(first_token_delay: float, backlog: int | None) -> None:
    """Child mode: serve one-token answers; answer `stats` lines on stdin until EOF."""
    if backlog is not None:
        # socketserver's default listen backlog is 5: when 16 connections open at once, the
        # kernel drops the SYNs beyond it and those clients retry 1 s later (TCP's RTO).
        _HTTPServer.request_queue_size = backlog
    server = LLMServer()
    server.default_scenario = Scenario(tokens=["ok"], first_token_delay=first_token_delay)
    verdicts = Scenario(tokens=[VERDICT], first_token_delay=first_token_delay)
    server.set_scenario(JUDGE_MODEL, verdicts)
    with server:
        print(server.openai_url, flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                print(json.dumps(server_stats(server)), flush=True)
            elif line.strip() == "reset":
                server.reset()
                server.set_scenario(JUDGE_MODEL, verdicts)
                print("{}", flush=True)


def server_stats(server: LLMServer) -> dict[str, Any]:
    """Requests and in-flight peak; arrival times (this process's monotonic clock) of the
    first and last request, the last answer and the first and last verdict."""
    requests = server.requests
    answers = [r.arrived for r in requests if r.model != JUDGE_MODEL]
    verdicts = [r.arrived for r in requests if r.model == JUDGE_MODEL]
    arrived = answers + verdicts
    return {
        "requests": len(requests),
        "max_in_flight": server.max_in_flight,
        "verdicts": len(verdicts),
        "first_arrival": min(arrived, default=None),
        "last_arrival": max(arrived, default=None),
        "last_answer_arrival": max(answers, default=None),
        "first_verdict_arrival": min(verdicts, default=None),
        "last_verdict_arrival": max(verdicts, default=None),
    }


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

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def reset(self) -> None:
        """Forget the requests received so far (the judge still answers verdicts)."""
        self._ask("reset")

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
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


def write_workspace(root: Path, url: str, rows: int, variants: int) -> None:
    """prompts/bench/v*.yaml, datasets/big.csv with `rows` rows, and suites over them:
    big.suite.yaml (answers only), judged.suite.yaml (a pointwise judge on the answers'
    provider, fake/judge) and judged-apart.suite.yaml (the judge on its own, grader/judge;
    both providers are the one server); small.suite.yaml: judged, with gates, 4 rows."""
    (root / "prompts" / "bench").mkdir(parents=True)
    for j in range(variants):
        (root / "prompts" / "bench" / f"v{j}.yaml").write_text(
            f"model: fake/m{j}\nuser: 'Variant {j}. {{{{ input }}}}'\n"
        )
    (root / "datasets").mkdir()
    with (root / "datasets" / "big.csv").open("w") as f:
        f.write("id,category,input\n")
        for i in range(rows):
            f.write(f"r{i},{'abc'[i % 3]},question number {i} about order {i * 7919 % 100000}\n")
    names = ", ".join(f"bench/v{j}" for j in range(variants))
    suite = f"dataset: big.csv\nvariants: [{names}]\n"
    (root / "datasets" / "big.suite.yaml").write_text(suite)
    for name, provider in (("judged", "fake"), ("judged-apart", "grader")):
        judge = f"judge: {{model: {provider}/{JUDGE_MODEL}, rubric: Be strict.}}\n"
        (root / "datasets" / f"{name}.suite.yaml").write_text(suite + judge)
    # A small judged suite with gates, over the whole of a 4-row dataset: (d)'s CLI run.
    (root / "datasets" / "small.csv").write_text(
        "id,category,input\n" + "".join(f"s{i},{'abc'[i % 3]},question {i}\n" for i in range(4))
    )
    gates = "gates:\n  - {metric: judge_score, max_drop: 0.5}\n  - {metric: error_rate, max: 0}\n"
    judge = f"judge: {{model: fake/{JUDGE_MODEL}, rubric: Be strict.}}\n"
    small = suite.replace("big.csv", "small.csv") + "baseline: bench/v0\n" + judge + gates
    (root / "datasets" / "small.suite.yaml").write_text(small)
    (root / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{url}', free: true}}\n"
        f"  grader: {{kind: openai, base_url: '{url}', free: true}}\n"
    )


def cli_env(home: Path) -> dict[str, str]:
    """The CLI's environment. Without PYTHONDONTWRITEBYTECODE: an installed package has its
    bytecode cached, so the CLI's first (warm-up) run here writes it, as pip would have."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTDECK_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env | {"PROMPTDECK_HOME": str(home), "PYTHONPATH": str(ROOT)}


def run_child(
    args: list[str], cwd: Path, env: dict[str, str]
) -> tuple[int, float, float, resource.struct_rusage, str]:
    """(exit code, time.monotonic() just before the spawn, wall s, that child's own rusage
    (ru_maxrss: peak RSS in KiB), stderr tail)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-400:]
    return proc.returncode, start, wall, usage, tail


def rss_bench(tmp: Path) -> dict[str, Any]:
    server = ServerProcess(0.0)
    try:
        root = tmp / "ws"
        write_workspace(root, server.url, C_ROWS, C_VARIANTS)
        env = cli_env(tmp / "home")
        cli = [sys.executable, "-m", "promptdeck"]
        _, _, _, idle, _ = run_child([*cli, "--help"], root, env)  # interpreter + parser
        cmd = [*cli, "run", "datasets/big.suite.yaml", "--concurrency", str(C_CONCURRENCY)]
        code, _, wall, usage, tail = run_child(cmd, root, env)
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


# --- (d) and (e): the real CLI, start-up and a judged eval ----------------------------------

# The least a Python process takes to reach the server: start, import httpx, send.
BARE_CLIENT = (
    "import sys, httpx\n"
    "body = {'model': 'm0', 'stream': True, 'messages': [{'role': 'user', 'content': 'hi'}]}\n"
    "httpx.post(sys.argv[1] + '/chat/completions', json=body).raise_for_status()\n"
)


def first_request_s(
    server: ServerProcess, args: list[str], cwd: Path, env: dict[str, str]
) -> float:
    """Seconds from spawning `args` to the server's arrival time of its first request."""
    server.reset()
    code, start, _, _, tail = run_child(args, cwd, env)
    if code != 0:
        raise RuntimeError(f"{args[1:4]} failed ({code}): {tail}")
    return float(server.stats()["first_arrival"]) - start


def startup_bench(server: ServerProcess, root: Path, home: Path) -> dict[str, Any]:
    """Spawn to first request of: the bare client, `promptdeck run` of a small judged suite
    with gates (the whole dataset), and of a 2-row sample of the big suite (sampling a
    dataset is the dataset loader's part), interleaved D_RUNS times."""
    env = cli_env(home)
    cli = [sys.executable, "-m", "promptdeck", "run", "--new", "--no-cache"]
    commands = {
        "bare": [sys.executable, "-c", BARE_CLIENT, server.url],
        "cli": [*cli, "datasets/small.suite.yaml"],
        "cli_sampled": [*cli, "datasets/judged.suite.yaml", "--sample", "2"],
    }
    first_request_s(server, commands["cli"], root, env)  # makes the store; later runs reuse it
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(D_RUNS):  # interleaved: each sees the same load on this shared machine
        for name, args in commands.items():
            times[name].append(first_request_s(server, args, root, env))
    out: dict[str, Any] = {}
    for name, values in times.items():
        out[f"d_{name}_first_request_s"] = statistics.median(values)
        out[f"d_{name}_all_s"] = [round(x, 3) for x in values]
    return out


def cli_eval(
    server: ServerProcess, root: Path, home: Path, suite: str, calls: int, bound: float
) -> dict[str, Any]:
    """One `promptdeck run` of `suite` in a fresh store: wall time and its phases."""
    server.reset()
    args = [sys.executable, "-m", "promptdeck", "run", f"datasets/{suite}", "--new",
            "--no-cache", "--concurrency", str(A_CONCURRENCY)]  # fmt: skip
    code, start, wall, usage, tail = run_child(args, root, cli_env(home))
    stats = server.stats()
    if code != 0 or stats["requests"] != calls:
        raise RuntimeError(f"the CLI failed ({code}, {stats['requests']} requests): {tail}")
    calls_end = stats["last_arrival"] + LATENCY_S  # the last call's answer, at the earliest
    out = {
        "calls": calls,
        "bound_s": bound,
        "wall_s": wall,
        "ratio": wall / bound,
        "start_s": stats["first_arrival"] - start,
        "calls_s": calls_end - stats["first_arrival"],
        "calls_ratio": (calls_end - stats["first_arrival"]) / bound,
        "after_s": start + wall - calls_end,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_in_flight": stats["max_in_flight"],
    }
    if stats["verdicts"]:
        out["judge_tail_s"] = stats["last_verdict_arrival"] - stats["last_answer_arrival"]
        out["first_verdict_s"] = stats["first_verdict_arrival"] - stats["first_arrival"]
    return out


def cli_benches(tmp: Path) -> dict[str, Any]:
    root = tmp / "cli"
    server = ServerProcess(LATENCY_S, backlog=128)
    try:
        write_workspace(root, server.url, A_ROWS, A_VARIANTS)
        out = startup_bench(server, root, tmp / "home-d")
        answers = A_ROWS * A_VARIANTS
        bound = answers * LATENCY_S / A_CONCURRENCY  # of one provider's 600 calls
        plain = cli_eval(server, root, tmp / "home-e0", "big.suite.yaml", answers, bound)
        judged = cli_eval(server, root, tmp / "home-e", "judged.suite.yaml", 2 * answers, 2 * bound)
        apart = cli_eval(
            server, root, tmp / "home-e2", "judged-apart.suite.yaml", 2 * answers, bound
        )
    finally:
        server.close()
    out |= {f"e0_{k}": v for k, v in plain.items()}
    out |= {f"e_{k}": v for k, v in judged.items()}
    out |= {f"e2_{k}": v for k, v in apart.items()}
    return out


# --- report ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(r: dict[str, Any]) -> None:
    if "a_ratio" in r:
        print_runner_report(r)
    if "c_peak_rss_mb" in r:
        ok_c = r["c_peak_rss_mb"] < C_TARGET_MB and r["c_requests"] == r["c_cells"]
        print(
            f"\n(c) `python -m promptdeck run`, {C_ROWS} rows x {C_VARIANTS} variants, no delay, "
            f"c={C_CONCURRENCY}: peak RSS {r['c_peak_rss_mb']:.0f} MB "
            f"(`promptdeck --help` alone: {r['c_import_rss_mb']:.0f} MB), "
            f"target < {C_TARGET_MB} MB: {verdict(ok_c)}\n"
            f"    wall {r['c_wall_s']:.1f} s = {r['c_cells_per_s']:.0f} cells/s, CLI CPU "
            f"{r['c_cpu_s']:.1f} s, {r['c_requests']} server requests"
        )
    if "e_ratio" in r:
        print_cli_report(r)
    if r.get("profile"):
        print("\n" + r["profile"])


def print_cli_report(r: dict[str, Any]) -> None:
    ok_d = r["d_cli_first_request_s"] <= D_TARGET_S
    bare = r["d_bare_first_request_s"]
    print(
        f"\n(d) spawn to first request, median of {D_RUNS}: `promptdeck run` (small judged "
        f"suite, gates) {r['d_cli_first_request_s']:.3f} s, target <= {D_TARGET_S} s: "
        f"{verdict(ok_d)}; bare `python -c 'import httpx; httpx.post(...)'` {bare:.3f} s "
        f"(baseline): CLI - bare = {r['d_cli_first_request_s'] - bare:+.3f} s; with --sample "
        f"{r['d_cli_sampled_first_request_s']:.3f} s\n"
        f"    every run: CLI {r['d_cli_all_s']}, bare {r['d_bare_all_s']}, "
        f"sampled {r['d_cli_sampled_all_s']}"
    )
    head = f"{'(e) `promptdeck run`, 200x3, 200 ms/call, c=16':<50} {'calls':>5} {'wall s':>7}"
    head += f" {'bound s':>7} {'ratio':>6} {'start s':>7} {'calls s':>7} {'(ratio)':>7}"
    print(f"\n{head} {'after s':>7} {'CPU s':>6}  {'target':<14} result")
    print("-" * (len(head) + 38))
    for prefix, name in (
        ("e0", "no judge (baseline)"),
        ("e", "+ pointwise judge, same provider"),
        ("e2", "+ pointwise judge, its own provider (c=16 each)"),
    ):
        target = f"ratio <= {E_TARGET_RATIO}" if prefix == "e" else ""
        ok = verdict(r["e_ratio"] <= E_TARGET_RATIO) if prefix == "e" else ""
        print(
            f"{name:<50} {r[prefix + '_calls']:>5} {r[prefix + '_wall_s']:7.2f} "
            f"{r[prefix + '_bound_s']:7.2f} {r[prefix + '_ratio']:6.3f} "
            f"{r[prefix + '_start_s']:7.2f} {r[prefix + '_calls_s']:7.2f} "
            f"{r[prefix + '_calls_ratio']:7.3f} {r[prefix + '_after_s']:7.2f} "
            f"{r[prefix + '_cpu_s']:6.1f}  {target:<14} {ok}"
        )
    print(
        f"judge: first verdict {r['e_first_verdict_s']:.2f} s after the first request; the "
        f"last verdict arrived {r['e_judge_tail_s']:.2f} s after the last answer "
        f"(one call: {LATENCY_S} s); server max in flight {r['e_max_in_flight']} "
        f"(no judge: {r['e0_max_in_flight']})"
    )


def print_runner_report(r: dict[str, Any]) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="store_true", help="profile (a) with cProfile")
    parser.add_argument("--skip-rss", action="store_true", help="skip (c)")
    parser.add_argument("--only-cli", action="store_true", help="only (d) and (e)")
    parser.add_argument("--serve", type=float, metavar="DELAY", help=argparse.SUPPRESS)
    parser.add_argument("--backlog", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve, args.backlog)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pd-bench-") as tmp:
        if not args.only_cli:
            results |= runner_benches(Path(tmp), args.profile)
            if not args.skip_rss:
                results |= rss_bench(Path(tmp))
        results |= cli_benches(Path(tmp))
    print_report(results)
    summary = {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}
    summary.pop("profile", None)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
