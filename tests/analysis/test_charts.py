import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

from promptdeck.analysis import charts
from promptdeck.analysis.results import ALL, comparison_frame, comparisons, variant_frame

BASE, NEW = "support/production", "support/concise"
SCORES = {  # row: (category, baseline score, variant score); None = unscored
    "r1": ("billing", 3.0, 4.0), "r2": ("billing", 2.0, 2.0), "r3": ("billing", 4.0, 5.0),
    "r4": ("shipping", 5.0, 3.0), "r5": ("shipping", 3.0, 3.0), "r6": ("shipping", 4.0, None),
}  # fmt: skip


def make_cells() -> pd.DataFrame:
    rows = []
    for i, (row, (category, base, new)) in enumerate(SCORES.items()):
        for variant, score in ((BASE, base), (NEW, new)):
            rows.append({
                "row_id": row, "category": category, "variant": variant, "repeat": 0,
                "judge_score": score, "error": None, "failed": False, "cached": 0,
                "ttft_ms": 100.0 + i, "latency_ms": 900.0 + 10 * i,
                "cost_usd": 0.002 if variant == BASE else None,
                "checks_passed": 1, "checks_total": 1, "fallback_used": 0, "output_tokens": 5,
                "judge_reason": "why" if score is not None else "unscored: no verdict found",
            })  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    cells = make_cells()
    return {
        "comparisons": comparison_frame(comparisons(cells, BASE)),
        "variants": variant_frame(cells),
        # score_distribution(cells) as it should be: "unscored" counted apart
        "dist": pd.DataFrame(
            {
                "variant": [NEW, NEW, NEW, NEW, NEW, BASE, BASE, BASE, BASE],
                "score": ["2", "3", "4", "5", "unscored", "2", "3", "4", "5"],
                "answers": [1, 2, 1, 1, 1, 1, 2, 2, 1],
            }
        ),
    }


BUILDERS: list[tuple[Callable[[pd.DataFrame], Any], str]] = [
    (charts.delta_by_category, "comparisons"),
    (charts.win_tie_loss, "comparisons"),
    (charts.score_distribution, "dist"),
    (charts.latency_cost, "variants"),
    (charts.quality_vs_cost, "variants"),
]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a Vega-Lite spec, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def marks(spec: dict[str, Any]) -> list[str]:
    found = [d["mark"] for d in walk(spec) if "mark" in d]
    return [m if isinstance(m, str) else m["type"] for m in found]


def params(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for d in walk(spec) for p in d.get("params", []) if "select" in p}


def records(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for rows in spec.get("datasets", {}).values() for r in rows]


def test_all_is_the_results_constant() -> None:
    assert charts.ALL == ALL


@pytest.mark.parametrize(("build", "frame"), BUILDERS)
def test_builders_serialise_small_specs(
    frames: dict[str, pd.DataFrame], build: Callable[[pd.DataFrame], Any], frame: str
) -> None:
    spec = build(frames[frame]).to_dict()
    assert len(json.dumps(spec)) < 20_000
    assert marks(spec) != ["text"]


@pytest.mark.parametrize(("build", "frame"), BUILDERS)
@pytest.mark.parametrize("empty", ["no columns", "no rows"])
def test_builders_answer_an_empty_frame_with_no_data(
    frames: dict[str, pd.DataFrame], build: Callable[[pd.DataFrame], Any], frame: str, empty: str
) -> None:
    data = pd.DataFrame() if empty == "no columns" else frames[frame].iloc[0:0]
    spec = build(data).to_dict()
    assert marks(spec) == ["text"]
    assert records(spec) == [{"text": "no data"}]


def test_delta_by_category(frames: dict[str, pd.DataFrame]) -> None:
    spec = charts.delta_by_category(frames["comparisons"]).to_dict()
    assert spec["facet"]["row"]["field"] == "variant"
    assert marks(spec) == ["rule", "rule", "point"]
    layers = spec["spec"]["layer"]
    assert layers[0]["encoding"]["x"] == {"datum": 0}
    assert layers[1]["encoding"]["x"]["field"] == "low"
    assert layers[1]["encoding"]["x2"]["field"] == "high"
    assert layers[2]["encoding"]["x"]["field"] == "delta"
    assert layers[2]["encoding"]["y"]["sort"] == [ALL, "billing", "shipping"]
    colour = layers[2]["encoding"]["color"]
    assert (colour["field"], colour["scale"]["domain"]) == ("verdict", list(charts.VERDICT_COLOURS))
    pick = params(spec)["category_pick"]
    assert pick["select"] == {"type": "point", "fields": ["category"]}


def test_win_tie_loss_shows_overall_rows_with_a_variant_pick(
    frames: dict[str, pd.DataFrame],
) -> None:
    spec = charts.win_tie_loss(frames["comparisons"]).to_dict()
    assert marks(spec) == ["bar"]
    assert spec["encoding"]["y"]["field"] == "variant"
    assert spec["encoding"]["color"]["scale"]["domain"] == ["wins", "ties", "losses"]
    assert params(spec)["variant_pick"]["select"] == {"type": "point", "fields": ["variant"]}
    counts = {r["outcome"]: r["rows"] for r in records(spec)}
    assert counts == {"wins": 2, "ties": 2, "losses": 1}  # r6 is unscored: left out


def test_score_distribution_shows_unscored_apart(frames: dict[str, pd.DataFrame]) -> None:
    spec = charts.score_distribution(frames["dist"]).to_dict()
    assert marks(spec) == ["bar"]
    encoding = spec["encoding"]
    assert encoding["x"]["sort"] == ["2", "3", "4", "5", "unscored"]
    assert encoding["xOffset"]["field"] == "variant"
    assert encoding["opacity"]["field"] == "kind"
    unscored = [r for r in records(spec) if r["score"] == "unscored"]
    assert unscored == [{"variant": NEW, "score": "unscored", "answers": 1, "kind": "unscored"}]


def test_latency_cost_labels_unknown_cost_and_never_plots_it_as_zero(
    frames: dict[str, pd.DataFrame],
) -> None:
    spec = charts.latency_cost(frames["variants"]).to_dict()
    assert len(spec["hconcat"]) == 2
    assert marks(spec) == ["bar", "bar", "text", "text"]
    measures = {r["measure"] for r in records(spec) if "measure" in r}
    assert measures == {"ttft p50", "ttft p95", "latency p50", "latency p95"}
    costs = [r for r in records(spec) if "label" in r]
    assert {r["variant"]: (r["cost"], r["label"]) for r in costs} == {
        BASE: (0.002, "$0.002"),
        NEW: (None, "unknown"),
    }


def test_quality_vs_cost_names_unknown_cost_instead_of_plotting_it(
    frames: dict[str, pd.DataFrame],
) -> None:
    spec = charts.quality_vs_cost(frames["variants"]).to_dict()
    assert marks(spec) == ["point", "text"]
    assert spec["title"]["subtitle"] == [f"cost unknown, not plotted: {NEW}"]
    assert {r["variant"] for r in records(spec)} == {BASE}


def test_quality_vs_cost_with_no_known_cost(frames: dict[str, pd.DataFrame]) -> None:
    variants = frames["variants"].assign(cost_per_answer=None)
    spec = charts.quality_vs_cost(variants).to_dict()
    assert marks(spec) == ["text"]
    assert spec["title"]["subtitle"] == [f"cost unknown, not plotted: {NEW}, {BASE}"]
    assert 0 not in [r.get("cost_per_answer") for r in records(spec)]


@pytest.mark.parametrize(
    ("values", "ordered"),
    [(["unscored", "10", "2", "x"], ["2", "10", "unscored", "x"]), ([], [])],
)
def test_score_order(values: list[str], ordered: list[str]) -> None:
    assert charts.score_order(values) == ordered


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [(-2.2, 0.2, [-2.0, -1.5, -1.0, -0.5, 0.0]), (-1.1, 1.1, [-1.0, -0.5, 0.0, 0.5, 1.0])],
)
def test_ticks(lo: float, hi: float, ticks: list[float]) -> None:
    assert charts._ticks(lo, hi) == ticks


SVGS: list[tuple[Callable[[pd.DataFrame], str], str]] = [
    (charts.svg_delta_by_category, "comparisons"),
    (charts.svg_win_tie_loss, "comparisons"),
    (charts.svg_score_distribution, "dist"),
]


@pytest.mark.parametrize(("draw", "frame"), SVGS)
def test_svg_charts_are_well_formed_and_escape_names(
    frames: dict[str, pd.DataFrame], draw: Callable[[pd.DataFrame], str], frame: str
) -> None:
    data = frames[frame].replace({"variant": {NEW: "<b>new</b> & co"}})
    svg = draw(data)
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "<b>" not in svg
    assert "&lt;b&gt;new&lt;/b&gt; &amp; co" in svg
    assert len(root) > 5


@pytest.mark.parametrize(("draw", "frame"), SVGS)
def test_svg_charts_on_empty_frames(
    frames: dict[str, pd.DataFrame], draw: Callable[[pd.DataFrame], str], frame: str
) -> None:
    for empty in (pd.DataFrame(), frames[frame].iloc[0:0]):
        root = ET.fromstring(draw(empty))
        assert [t.text for t in root] == ["no data"]


def test_svg_delta_draws_a_dot_and_ci_per_category(frames: dict[str, pd.DataFrame]) -> None:
    root = ET.fromstring(charts.svg_delta_by_category(frames["comparisons"]))
    ns = "{http://www.w3.org/2000/svg}"
    dots = root.findall(f"{ns}circle")
    assert len(dots) == 3  # (all), billing, shipping
    assert len(root.findall(f"{ns}line[@stroke-width='2.5']")) == 3  # their CIs
    labels = [t.text for t in root.findall(f"{ns}text")]
    assert labels[:4] == [NEW, ALL, labels[2], "billing"]


def test_category_counts_sorts_by_size_and_colours_only_present_origins() -> None:
    counts = pd.DataFrame(
        [
            {"category": "billing", "origin": "in the file", "cases": 2},
            {"category": "billing", "origin": "added from the app", "cases": 1},
            {"category": "shipping", "origin": "in the file", "cases": 5},
            {"category": "(none)", "origin": "in the file", "cases": 3},
        ]
    )
    spec = charts.category_counts(counts).to_dict()
    assert marks(spec) == ["bar"]
    assert spec["encoding"]["y"]["sort"] == ["shipping", "(none)", "billing"]
    assert spec["encoding"]["x"]["aggregate"] == "sum"
    assert spec["encoding"]["color"]["scale"]["domain"] == ["in the file", "added from the app"]
    only_file = charts.category_counts(counts[counts["origin"] == "in the file"]).to_dict()
    assert only_file["encoding"]["color"]["scale"]["domain"] == ["in the file"]
    assert records(spec) == counts.to_dict("records")


def test_category_counts_of_nothing_is_a_no_data_chart() -> None:
    spec = charts.category_counts(pd.DataFrame({"category": [], "origin": [], "cases": []}))
    assert records(spec.to_dict()) == [{"text": "no data"}]
