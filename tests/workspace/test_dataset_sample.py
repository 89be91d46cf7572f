"""`load_sample`: a seeded stratified sample of a dataset file read in two streaming passes
is the sample `sample_cases` draws from the whole loaded dataset, whatever the chunk and
batch sizes, in bounded memory, with the loader's errors."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promptdeck.errors import DatasetError
from promptdeck.workspace import dataset_rows, dataset_sample
from promptdeck.workspace.dataset_sample import index_dataset, load_sample, read_page
from promptdeck.workspace.datasets import load_dataset, stable_id
from promptdeck.workspace.sampling import allocation, draw, sample_cases

CATEGORIES = ["billing", "shipping", "returns", " account ", "", "legal"]


def rows(count: int, seed: int = 1) -> list[dict[str, str]]:
    """Rows of uneven strata (one of them empty-valued), some cells awkward for CSV."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        text = rng.choice(["plain", 'a "quote"', "a, comma", "two\nlines", "café ☕", "x\r\ny"])
        out.append({"category": rng.choice(CATEGORIES), "input": f"{text} {i}"})
    return out


def write_csv(
    path: Path, data: list[dict[str, str]], ending: str = "\n", bom: bool = False
) -> Path:
    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if set(value) & set('",\r\n') else value

    lines = [",".join(data[0])] + [",".join(cell(v) for v in row.values()) for row in data]
    text = ("\ufeff" if bom else "") + ending.join(lines) + ending
    path.write_bytes(text.encode())
    return path


def write_jsonl(path: Path, data: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n\n" for r in data))
    return path


def whole(path: Path, **options: object) -> list[object]:
    """The sample drawn from the whole loaded dataset: what load_sample must give."""
    cases = load_dataset(path).cases
    return sample_cases(cases, **options)  # type: ignore[arg-type]


SAMPLES: list[dict[str, object]] = [
    {"n": 25, "seed": 7},
    {"n": 25, "seed": 8},
    {"n": 4, "seed": 1, "floor": 2},
    {"fraction": 0.3, "seed": 3},
    {"n": 30, "seed": 2, "stratify": None},
    {"n": 30, "seed": 2, "stratify": "input"},
    {"n": 1000, "seed": 0},  # more than the rows: every row
]


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    data = rows(300)
    table = {"category": [r["category"] for r in data], "input": [r["input"] for r in data]}
    pq.write_table(pa.table(table), tmp_path / "d.parquet", row_group_size=64)
    (tmp_path / "e.yaml").write_text(
        "".join(
            f"- {{category: {json.dumps(r['category'])}, input: {json.dumps(r['input'])}}}\n"
            for r in data[:80]
        )
    )
    return [
        write_csv(tmp_path / "a.csv", data),
        write_csv(tmp_path / "b.csv", data, ending="\r\n", bom=True),
        write_csv(tmp_path / "c.csv", data, ending="\r"),
        write_jsonl(tmp_path / "j.jsonl", [{**r, "n": i} for i, r in enumerate(data)]),
        tmp_path / "d.parquet",
        tmp_path / "e.yaml",
    ]


def test_the_sample_is_the_one_drawn_from_the_whole_dataset(files: list[Path]) -> None:
    for path in files:
        for options in SAMPLES:
            read = load_sample(path, **options)  # type: ignore[arg-type]
            assert list(read.sample) == whole(path, **options), (path.name, options)
            loaded = load_dataset(path)
            assert (read.rows, read.columns, read.name) == (
                len(loaded.cases),
                loaded.columns,
                loaded.name,
            )


@pytest.mark.parametrize(("chunk", "batch"), [(5, 1), (64, 3), (1000, 7), (1 << 20, 4096)])
def test_chunk_and_batch_sizes_do_not_change_the_sample(
    files: list[Path], monkeypatch: pytest.MonkeyPatch, chunk: int, batch: int
) -> None:
    expected = {p: whole(p, n=25, seed=7) for p in files}
    monkeypatch.setattr(dataset_rows, "CHUNK", chunk)
    monkeypatch.setattr(dataset_sample, "BATCH", batch)
    for path in files:
        assert list(load_sample(path, n=25, seed=7).sample) == expected[path], path.name


def test_ids_given_hashed_or_mixed(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id,category,input\n7,a,x\n,b,y\n9,a,z\n,b,w\n")
    for seed in range(5):
        assert list(load_sample(path, n=2, seed=seed).sample) == whole(path, n=2, seed=seed)


def test_draw_picks_the_rows_random_sample_picked_from_each_stratum() -> None:
    """The draw before streaming: random.sample on each stratum's list of rows."""
    rng = random.Random(5)
    strata = {
        k: sorted(rng.sample(range(20_000), size))
        for k, size in zip("abcd", (900, 40, 7, 2), strict=True)
    }
    for seed in range(10):
        for size in (0, 1, 3, 30, 200, 949):
            quotas = allocation({k: len(v) for k, v in strata.items()}, size, 1)
            before = random.Random(seed)
            picked = [i for k in sorted(strata) for i in before.sample(strata[k], quotas[k])]
            assert draw(strata, size, seed=seed) == sorted(picked)


def test_a_given_id_equal_to_another_rows_content_hash_is_a_duplicate(tmp_path: Path) -> None:
    # what append_case writes after a new column: the ids of old rows pinned as their hash
    pinned = stable_id({"category": "a", "input": "x"})
    path = tmp_path / "p.csv"
    path.write_text(f"id,category,input\n{pinned},a,x\n,b,y\n,a,x\n")
    message = f"{path}: row 3: same content as row 1 and no id to tell them apart"
    for read in (load_dataset, lambda p: load_sample(p, n=1)):
        with pytest.raises(DatasetError, match="^" + message.replace(".", r"\.")):
            read(path)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("d.csv", "id,input\n1,a\n" + "".join(f"{i},b\n" for i in range(2, 3000)) + "1,c\n",
         "row 3000: duplicate id '1' (first in row 1)"),
        ("s.csv", "input\nhi\n" + "".join(f"q{i}\n" for i in range(3000)) + "hi\n",
         "row 3002: same content as row 1 and no id to tell them apart"),
        ("r.csv", "id,input\n" + "".join(f"{i},a\n" for i in range(3000)) + "x,a,b\n",
         "line 3002: 3 fields, the header has 2"),
        ("q.csv", "id,input\n" + "".join(f"{i},a\n" for i in range(3000)) + 'x,"open\ny,z\n',
         "line 3002: a quoted field starts here but its closing quote"),
        ("m.csv", "id,input\n" + "".join(f"{i},a\n" for i in range(3000)) + 'x,"a"b\n',
         "line 3002: malformed CSV"),
        ("b.csv", b"id,input\n" + b"".join(b"%d,a\n" % i for i in range(3000)) + b"x,caf\xe9\n",
         "line 3002, byte 19904: not UTF-8 text (0xe9"),
        ("z.csv", b"id,input\n" + b"".join(b"%d,a\n" % i for i in range(3000)) + b"x,\x00\n",
         "line 3002: NUL bytes"),
        ("j.jsonl", '{"input": "a"}\n' * 3000 + '{"input": \n',
         "line 3001: invalid JSON: Expecting value (column 11)"),
        ("o.jsonl", '{"input": "a", "id": "1"}\n' * 2 + '{"input": "b", "id": "2"}\n',
         "row 2: duplicate id '1' (first in row 1)"),
        ("e.csv", " \n\n", "the file is empty (no rows)"),
        ("h.csv", "id,input\n\n,\n", "no rows; add at least one case"),
        ("x.xlsx", b"PK", "Excel workbooks cannot be read"),
    ],
)  # fmt: skip
def test_errors_name_the_line_or_row_as_the_loader_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, data: str | bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    monkeypatch.setattr(dataset_rows, "CHUNK", 1000)  # errors past the first chunk and batch
    monkeypatch.setattr(dataset_sample, "BATCH", 64)
    with pytest.raises(DatasetError) as sampled:
        load_sample(path, n=2)
    with pytest.raises(DatasetError) as loaded:
        load_dataset(path)
    assert message in str(sampled.value)
    assert str(sampled.value) == str(loaded.value)


def test_an_unknown_stratify_column_names_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", rows(5))
    with pytest.raises(
        DatasetError, match=r"cannot stratify by 'tone'.*\(columns: category, input\)"
    ):
        load_sample(path, n=2, stratify="tone")


def test_memory_stays_bounded_on_a_large_file(tmp_path: Path) -> None:
    """200,000 rows of ~100 bytes (production logs): the first pass keeps ~40 bytes a row
    (where it starts, its stratum, its id's hash), never the rows themselves."""
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write("category,channel,input\n")
        for i in range(200_000):
            text = (
                f"Hello, where is my parcel? It was due on Monday, can you check? (ticket {i:07d})"
            )
            f.write(f'{CATEGORIES[i % 5] or "other"},web,"{text}"\n')
    size = path.stat().st_size
    assert 90 < size / 200_000 < 110
    tracemalloc.start()
    try:
        sample = load_sample(path, n=200, seed=7)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sample.rows == 200_000 and len(sample.sample) == 200
    assert peak < 0.5 * size, f"{peak / 200_000:.0f} bytes a row"


def test_an_index_reads_any_page_of_a_file_without_keeping_its_rows(files: list[Path]) -> None:
    for path in files:
        cases = load_dataset(path).cases
        index = index_dataset(path)
        assert (index.rows, index.columns) == (len(cases), load_dataset(path).columns)
        assert sum(index.categories.values()) == len(cases)
        for start, stop in ((0, 7), (61, 130), (len(cases) - 3, len(cases) + 5)):
            assert read_page(index, start, stop) == list(cases[start:stop]), path.name


def test_a_page_of_a_file_changed_since_it_was_indexed_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", rows(20))
    index = index_dataset(path)
    write_csv(path, rows(21))
    with pytest.raises(DatasetError, match="changed since it was read"):
        read_page(index, 0, 5)
