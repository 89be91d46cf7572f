"""The run store on SQLite against PostgreSQL: concurrent eval runs writing, and the Results
page loading a large run.

(a) cells per second committed into one store by 4 eval runs at once, each its own OS
    process (as 4 CLI runs on 4 machines): each creates its run, then calls
    `Store.add_result` as the runner does, one cell per transaction with a judge score and
    2 check scores (a ~600-character answer, a ~200-character judge reason, the judge's raw
    verdict and request), for 3 s from a start they share (`time.monotonic`, one clock for
    every process on Linux; the clock starts once every writer has connected, migrated
    and created its run). 1 process alone, for reference. Median of 3 rounds.
(b) loading a 10,000-cell run (2 variants x 5,000 rows, judge + 2 checks each) as the
    Results page does: `list_runs` then `analyze_run` (`get_run`, `results`, `scores`,
    `reviews`, then every statistic the page shows). Median of 3 on one open store (the
    app keeps one per server process), median of 3 with a fresh `Store` each time
    (connect, check the schema, load, close: as `promptdeck report` does), and the
    store's 4 reads alone. Filling the run (one process) is reported too.

The engines take turns at every repeat, so a busy moment of this shared machine does not
fall on one of them alone. PostgreSQL is a throwaway cluster on 127.0.0.1 started here
(tests/postgres.py: TCP with a password, `synchronous_commit=off`, `fsync=off`); SQLite a
WAL file with `synchronous=NORMAL`: neither waits for the disk at commit.

Measured on a 2-core machine shared with other work (load average 5.3 during both runs),
two runs, SQLite | PostgreSQL | PostgreSQL/SQLite:

    (a) cells/s, 4 processes at once        5337 | 1336 | 0.25     3452 |  903 | 0.26
        cells/s, 1 process                  7410 | 1447 | 0.20     3192 | 1017 | 0.32
    (b) Results load, 10,000 cells, s      4.801 | 5.863 | 1.22   4.994 | 4.813 | 0.96
        the same, fresh Store, s           5.725 | 4.103 | 0.72   6.045 | 5.822 | 0.96
        the store's 4 reads alone, s       0.406 | 0.386 | 0.95   0.571 | 0.305 | 0.53
        filling it, cells/s (1 process)     5011 | 1273 | 0.25     3005 | 1204 | 0.40

PostgreSQL commits a quarter to a third of SQLite's cells per second on this machine (a
transaction is several round trips to another process: borrow and check a pooled
connection, 3 statements, commit), still ~1,000 cells/s, far above what model calls
produce. The Results load is the analysis (~4-5 s of it) far more than the reads (0.3-0.6
s): the two engines load a large run in the same time, within this machine's noise.

Usage: .venv/bin/python bench/store.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptdeck.analysis.run import analyze_run
from promptdeck.model.types import CallResult, Usage
from promptdeck.scoring.scorers import Score
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord
from tests.postgres import PostgresServer

WRITERS = 4
WRITE_S, WRITE_ROUNDS = 3.0, 3  # (a): how long the writers write, how many times
LOAD_ROWS, LOAD_VARIANTS = 5_000, ("support/production", "support/concise")
WARM_REPEATS, FRESH_REPEATS = 3, 3
GATES = [
    {"metric": "judge_score", "max_drop": 0.2},
    {"metric": "error_rate", "max": 0.02},
    {"metric": "check_pass_rate", "min": 0.95},
]
ANSWER = (
    "Thanks for reaching out about order {n}. I checked the shipment: it left our warehouse "
    "on Monday and the carrier scanned it in your city this morning, so it should arrive "
    "today or tomorrow. If it has not arrived by Friday, reply to this message and I will "
    "open a trace with the carrier and send a replacement at no cost. You can follow the "
    "parcel with the tracking link in your confirmation email; the status updates every few "
    "hours. I am sorry for the wait, and thank you for your patience while it travels. Is "
    "there anything else I can help you with today, such as changing the delivery address?"
)  # ~600 characters
REASON = (
    "The reply answers the question with the shipment's status, gives a clear next step and "
    "a deadline, and stays polite; it offers a replacement without being asked, which is "
    "generous but within policy. Minor: slightly long."
)  # ~200 characters


# --- one cell, as the runner stores it --------------------------------------------------------


def cell(row: int, variant: str, category: str) -> tuple[CellRecord, list[Score]]:
    answer = ANSWER.format(n=row)
    result = CallResult("fake/model", answer, Usage(180, 140), 240.0 + row % 97, 1900.0, 0.0004)
    verdict = json.dumps({"reasoning": REASON, "score": 3 + row % 3})
    request = json.dumps({"messages": [{"role": "user", "content": answer}], "temperature": 0})
    scores = [
        Score("judge", float(3 + row % 3), None, REASON, "fake/judge", verdict, request, 800.0),
        Score("check:max_chars 800", 1.0, True, "600 characters"),
        Score("check:contains order", 1.0, row % 31 != 0, "found 'order'"),
    ]
    return CellRecord(f"r{row}", variant, 0, category, result), scores


def snapshot(rows: int) -> dict[str, Any]:
    cases = [{"id": f"r{i}", "category": f"c{i % 6}", "input": f"q{i}"} for i in range(rows)]
    suite = {"baseline": LOAD_VARIANTS[0], "gates": GATES, "variants": list(LOAD_VARIANTS)}
    return {"suite": suite, "cases": cases}


# --- (a) the writers, each its own process --------------------------------------------------


def write_cells(target: str) -> None:
    """Child mode: open the store, create a run, say `ready`; read `go DEADLINE` on stdin
    (a time.monotonic() value, the same clock in every process), store cells one
    transaction each until then, and say how many."""
    store = Store(target)
    run_id = store.create_run(snapshot(0), name="bench writer", total_cells=0)
    print("ready", flush=True)
    deadline = float(sys.stdin.readline().split()[1])
    done = 0
    while time.monotonic() < deadline:
        store.add_result(run_id, *cell(done, "support/production", f"c{done % 6}"))
        done += 1
    print(done, flush=True)
    store.close()


def cells_per_second(target: str, writers: int) -> float:
    """Cells committed per second by `writers` processes writing at once for WRITE_S."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--write", target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(writers)
    ]
    try:
        for proc in procs:  # every writer has connected, migrated and made its run
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a writer did not start (exit {proc.wait()})")
        start = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"go {start + WRITE_S}\n")
            proc.stdin.flush()
        counts = []
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if not line.isdigit():
                raise RuntimeError(f"a writer failed (exit {proc.wait()})")
            counts.append(int(line))
        wall = time.monotonic() - start  # WRITE_S and the last transaction begun before it
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=60)
    return sum(counts) / wall


# --- (b) loading a 10,000-cell run ------------------------------------------------------------


def fill(target: str) -> tuple[str, float]:
    """A 2 x 5,000-cell run; returns its id and the cells/s one process stored it at."""
    store = Store(target)
    cells = LOAD_ROWS * len(LOAD_VARIANTS)
    run_id = store.create_run(snapshot(LOAD_ROWS), name="bench load", total_cells=cells)
    start = time.perf_counter()
    for row in range(LOAD_ROWS):
        for variant in LOAD_VARIANTS:
            store.add_result(run_id, *cell(row, variant, f"c{row % 6}"))
    took = time.perf_counter() - start
    store.set_run_status(run_id, "done")
    loaded = results_page_load(store, run_id)
    store.close()
    if loaded != cells:
        raise RuntimeError(f"the run loaded {loaded} of {cells} cells")
    return run_id, cells / took


def results_page_load(store: Store, run_id: str) -> int:
    store.list_runs()
    return len(analyze_run(store, run_id).cells)


def store_reads(store: Store, run_id: str) -> int:
    store.get_run(run_id)
    store.reviews(run_id)
    return len(store.results(run_id)) + len(store.scores(run_id))


def fresh_load(target: str, run_id: str) -> None:
    opened = Store(target)
    results_page_load(opened, run_id)
    opened.close()


def timed(fn: Callable[..., object], *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def load_times(targets: dict[str, str], runs: dict[str, str]) -> dict[str, dict[str, float]]:
    """Medians, the engines taking turns at every repeat (so a busy moment of this shared
    machine does not fall on one engine alone). The fresh loads come after the open stores
    are closed: a process has one pool per database URL, which a Store's close ends."""
    times: dict[str, dict[str, list[float]]] = {e: defaultdict(list) for e in targets}
    stores = {engine: Store(target) for engine, target in targets.items()}
    for _ in range(WARM_REPEATS):
        for engine, store in stores.items():
            times[engine]["load_s"].append(timed(results_page_load, store, runs[engine]))
            times[engine]["reads_s"].append(timed(store_reads, store, runs[engine]))
    for store in stores.values():
        store.close()
    for _ in range(FRESH_REPEATS):
        for engine, target in targets.items():
            times[engine]["fresh_load_s"].append(timed(fresh_load, target, runs[engine]))
    return {e: {k: statistics.median(v) for k, v in t.items()} for e, t in times.items()}


# --- report -----------------------------------------------------------------------------------


def measure(targets: dict[str, str]) -> dict[str, dict[str, float]]:
    rates: dict[str, dict[str, list[float]]] = {e: defaultdict(list) for e in targets}
    for _ in range(WRITE_ROUNDS):  # the engines take turns, as in load_times
        for writers, key in ((WRITERS, "cells_per_s_4"), (1, "cells_per_s_1")):
            for engine, target in targets.items():
                rates[engine][key].append(cells_per_second(target, writers))
    out = {e: {k: statistics.median(v) for k, v in r.items()} for e, r in rates.items()}
    runs = {}
    for engine, target in targets.items():
        runs[engine], out[engine]["fill_cells_per_s"] = fill(target)
    for engine, times in load_times(targets, runs).items():
        out[engine] |= times
    return out


def print_report(r: dict[str, dict[str, float]]) -> None:
    rows = (
        (f"(a) cells/s, {WRITERS} processes at once", "cells_per_s_4", ".0f"),
        ("    cells/s, 1 process", "cells_per_s_1", ".0f"),
        ("(b) Results load of 10,000 cells, s (open store)", "load_s", ".3f"),
        ("    the same with a fresh Store each time, s", "fresh_load_s", ".3f"),
        ("    the store's 4 reads alone, s", "reads_s", ".3f"),
        ("    filling it, cells/s (1 process)", "fill_cells_per_s", ".0f"),
    )
    head = f"{'':<50} {'SQLite':>10} {'PostgreSQL':>11} {'PG/SQLite':>10}"
    print("\n" + head + "\n" + "-" * len(head))
    for name, key, form in rows:
        lite, pg = r["sqlite"][key], r["postgresql"][key]
        print(f"{name:<50} {lite:>10{form}} {pg:>11{form}} {pg / lite:>10.2f}")
    print(
        "PG/SQLite: PostgreSQL's number over SQLite's (cells/s: above 1 is PostgreSQL faster; "
        "seconds: below 1 is)"
    )
    print(json.dumps({e: {k: round(v, 3) for k, v in m.items()} for e, m in r.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", metavar="TARGET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        return write_cells(args.write)
    began = time.perf_counter()
    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="pd-bench-store-") as tmp:
            targets = {
                "sqlite": str(Path(tmp) / "store.sqlite"),
                "postgresql": server.new_database(),
            }
            results = measure(targets)
    finally:
        server.stop()
    print_report(results)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"total {time.perf_counter() - began:.0f} s; load average {load} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
