"""Saving from the app, against writing the same bytes plainly, in the same run.

- a prompt variant: the Prompts page's save (form -> round-trip YAML, validation, conflict
  check, atomic write with fsync, history row) against `Path.write_text` of the same text
  and against the atomic write alone;
- a 10,000-row CSV dataset after editing one cell: the Datasets page's save (checks, conflict
  check, atomic write, history row) against pandas' `DataFrame.to_csv` of the same frame
  (and the strict load for editing, timed on its own);
- importing 10,000 production queries (read, map, dedupe against the dataset, seeded sample of
  2,000, append) against pandas reading the same upload.

Usage: .venv/bin/python bench/files.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import io

import pandas as pd

from promptdeck.store.db import Store
from promptdeck.workspace.dataset_edit import Table, load_table, save_table
from promptdeck.workspace.dataset_import import ColumnMap, plan_import, write_import
from promptdeck.workspace.fileio import atomic_write
from promptdeck.workspace.prompt_edit import PromptFiles, draft_from_text, render_draft

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ("billing", "shipping", "returns", "account", "product", "other")


def median_ms(
    fn: Callable[..., object], repeat: int, setup: Callable[[], object] | None = None
) -> float:
    """The median time of `fn` (given what `setup`, untimed, returns)."""
    times = []
    for _ in range(repeat):
        given = () if setup is None else (setup(),)
        start = time.perf_counter()
        fn(*given)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def prompt_save(tmp: Path, store: Store) -> dict[str, float]:
    prompts = tmp / "prompts"
    (prompts / "support").mkdir(parents=True)
    original = (ROOT / "prompts" / "support" / "production.yaml").read_text()
    (prompts / "support" / "production.yaml").write_text(original)
    files = PromptFiles(prompts, store)
    counter = iter(range(10**6))

    def app_save() -> None:
        loaded = files.load("support/production")
        draft = draft_from_text(loaded.text)
        draft = replace(draft, params=draft.params.replace("0.2", f"0.{next(counter) % 9 + 1}"))
        text, _ = render_draft(draft, loaded.text, name="support/production", path=loaded.path)
        files.save("support/production", text, loaded.fingerprint)

    plain_path = tmp / "plain.yaml"
    app = median_ms(app_save, 50)
    plain = median_ms(lambda: plain_path.write_text(original), 50)
    atomic = median_ms(lambda: atomic_write(plain_path, original), 50)
    return {"app_ms": app, "write_text_ms": plain, "atomic_ms": atomic}


def dataset_rows(n: int, prefix: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"{prefix}{i}" for i in range(n)],
            "category": [CATEGORIES[i % 6] for i in range(n)],
            "input": [f"{prefix} question number {i}, about order #{10000 + i}" for i in range(n)],
            "expected": ["" if i % 3 else f"answer {i}" for i in range(n)],
        }
    )


def dataset_save(tmp: Path, store: Store) -> dict[str, float]:
    path = tmp / "datasets" / "big.csv"
    path.parent.mkdir()
    dataset_rows(10_000, "r").to_csv(path, index=False)
    other = tmp / "pandas.csv"
    counter = iter(range(10**6))

    def edited() -> tuple[Table, pd.DataFrame]:
        table = load_table(path)
        frame = table.frame()
        frame.loc[17, "input"] = f"edited {next(counter)}"
        return table, frame

    def app_save(given: tuple[Table, pd.DataFrame]) -> None:
        save_table(*given, store, tmp)

    frame = load_table(path).frame()
    load = median_ms(lambda: load_table(path), 7)
    app = median_ms(app_save, 7, setup=edited)
    plain = median_ms(lambda: frame.to_csv(other, index=False), 7)
    return {"load_ms": load, "app_ms": app, "to_csv_ms": plain}


def import_queries(tmp: Path, store: Store) -> dict[str, float]:
    upload = dataset_rows(10_000, "q").rename(columns={"input": "query", "category": "intent"})
    data = upload.drop(columns=["id"]).to_csv(index=False).encode()
    target_path = tmp / "datasets" / "target.csv"
    dataset_rows(500, "r").to_csv(target_path, index=False)

    def app_import() -> None:
        target_path.write_text(dataset_rows(500, "r").to_csv(index=False))
        plan = plan_import(
            "prod.csv",
            data,
            ColumnMap("query", "intent", "expected"),
            load_table(target_path),
            sample=2_000,
            seed=1,
        )
        write_import(plan, store, tmp)

    app = median_ms(app_import, 5)
    plain = median_ms(lambda: pd.read_csv(io.BytesIO(data), dtype=str), 5)
    return {"app_ms": app, "read_csv_ms": plain}


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        store = Store(tmp / "s.sqlite")
        p = prompt_save(tmp, store)
        d = dataset_save(tmp, store)
        i = import_queries(tmp, store)
        store.close()
    print(f"{'what':<44} {'app ms':>8} {'baseline ms':>12}  ratio")
    rows = [
        ("prompt save vs Path.write_text", p["app_ms"], p["write_text_ms"]),
        ("prompt save vs atomic write alone", p["app_ms"], p["atomic_ms"]),
        ("10k-row CSV save vs DataFrame.to_csv", d["app_ms"], d["to_csv_ms"]),
        ("10k-row CSV load for editing vs to_csv", d["load_ms"], d["to_csv_ms"]),
        ("import 10k queries (2k sampled) vs read_csv", i["app_ms"], i["read_csv_ms"]),
    ]
    for label, app, base in rows:
        print(f"{label:<44} {app:8.1f} {base:12.1f}  {app / base:5.1f}x")
    print(json.dumps({"prompt": p, "dataset": d, "import": i}))


if __name__ == "__main__":
    main()
