"""Charts of a run, from the small aggregated frames of `promptdeck.results`.

Two renderers of the same frames. The `alt.Chart` builders are for the Results page
(Streamlit renders Vega-Lite in the browser; the selections "category_pick" and
"variant_pick" filter the cases there). The `svg_*` functions draw three of the charts
as plain SVG for the HTML report, which must open without network access: no Vega
JavaScript ships in an importable form here (Streamlit's copy is split into hashed
ES-module chunks), so the report draws its own bars and does not depend on one.

Every builder takes an aggregated frame (rows = variants x categories at most) and answers
an empty frame with a "no data" chart instead of raising.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, TypeAlias

import altair as alt
import pandas as pd

AnyChart: TypeAlias = alt.Chart | alt.LayerChart | alt.FacetChart | alt.HConcatChart

ALL = "(all)"  # = results.ALL; results imports report, which imports this module
UNSCORED = "unscored"
VERDICT_COLOURS = {
    "better": "#1a7f37", "worse": "#cf222e", "within noise": "#6e7781",
    "underpowered": "#bf8700", "no data": "#afb8c1",
}  # fmt: skip
OUTCOME_COLOURS = {"wins": "#1a7f37", "ties": "#afb8c1", "losses": "#cf222e"}
PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2")


def _no_data(title: str | alt.TitleParams, text: str = "no data") -> AnyChart:
    chart = alt.Chart(pd.DataFrame({"text": [text]}), title=title).mark_text(color="#6e7781")
    done: AnyChart = chart.encode(text="text:N").properties(width=360, height=60)
    return done


def _colour(field: str, colours: dict[str, str]) -> alt.Color:
    """A colour channel with a fixed order and fixed colours, so every run looks the same."""
    return alt.Color(
        field,
        sort=list(colours),
        scale=alt.Scale(domain=list(colours), range=list(colours.values())),
    )


def category_order(categories: Any) -> list[str]:
    """'(all)' first, then the categories in name order."""
    names = {str(c) for c in categories}
    return ([ALL] if ALL in names else []) + sorted(names - {ALL})


def score_order(scores: Any) -> list[str]:
    """Scores in numeric order, then 'unscored' (and anything else) last."""
    names = {str(s) for s in scores}

    def key(s: str) -> tuple[int, float, str]:
        try:
            return (0, float(s.split("–")[0]), s)  # a bin "2–2.5" sorts by its low end
        except ValueError:
            return (1 if s == UNSCORED else 2, 0.0, s)

    return sorted(names, key=key)


def _known(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def delta_by_category(comparisons: pd.DataFrame) -> AnyChart:
    """Mean delta per category with its CI, a row of panels per variant, colour = verdict."""
    title = "Change in judge score vs baseline (95% CI)"
    if comparisons.empty:
        return _no_data(title)
    frame = comparisons[["variant", "category", "n", "delta", "low", "high", "verdict", "summary"]]
    pick = alt.selection_point(name="category_pick", fields=["category"])
    y = alt.Y("category:N", sort=category_order(frame["category"]), title=None)
    verdict = _colour("verdict:N", VERDICT_COLOURS)
    zero = alt.Chart().mark_rule(color="#57606a", strokeDash=[4, 3]).encode(x=alt.datum(0))
    bars = alt.Chart().mark_rule(strokeWidth=2).encode(x="low:Q", x2="high:Q", y=y, color=verdict)
    points = (
        alt.Chart()
        .mark_point(filled=True, size=120)
        .encode(
            x=alt.X("delta:Q", title="variant − baseline"),
            y=y,
            color=verdict,
            opacity=alt.when(pick).then(alt.value(1.0)).otherwise(alt.value(0.35)),
            tooltip=["variant:N", "category:N", "summary:N"],
        )
        .add_params(pick)
    )
    height = 24 * frame["category"].nunique()
    layered = alt.layer(zero, bars, points, data=frame).properties(width=420, height=height)
    return layered.facet(row=alt.Row("variant:N", title=None)).properties(title=title)


def win_tie_loss(comparisons: pd.DataFrame) -> AnyChart:
    """Rows where the variant won, tied or lost against the baseline, per variant."""
    title = "Wins, ties and losses vs baseline (all rows)"
    overall = comparisons[comparisons["category"] == ALL] if not comparisons.empty else comparisons
    if overall.empty:
        return _no_data(title)
    outcomes = list(OUTCOME_COLOURS)
    frame = overall.melt("variant", outcomes, "outcome", "rows")
    frame["order"] = frame["outcome"].map(outcomes.index)
    pick = alt.selection_point(name="variant_pick", fields=["variant"])
    chart: AnyChart = (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X("sum(rows):Q", title="rows"),
            y=alt.Y("variant:N", title=None),
            color=_colour("outcome:N", OUTCOME_COLOURS),
            order=alt.Order("order:Q"),
            opacity=alt.when(pick).then(alt.value(1.0)).otherwise(alt.value(0.35)),
            tooltip=["variant:N", "outcome:N", "rows:Q"],
        )
        .add_params(pick)
        .properties(width=420)
    )
    return chart


def score_distribution(dist: pd.DataFrame) -> AnyChart:
    """Answers per judge score, bars side by side per variant; unscored bars are faded."""
    title = "Judge scores (answers per score)"
    if dist.empty:
        return _no_data(title)
    frame = dist.assign(
        score=dist["score"].astype(str),
        kind=["unscored" if str(s) == UNSCORED else "scored" for s in dist["score"]],
    )
    chart: AnyChart = (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X(
                "score:N",
                sort=score_order(frame["score"]),
                title="judge score",
                axis=alt.Axis(labelAngle=0),
            ),
            xOffset="variant:N",
            y=alt.Y("answers:Q", title="answers"),
            color=alt.Color("variant:N"),
            opacity=alt.Opacity(
                "kind:N", scale=alt.Scale(domain=["scored", "unscored"], range=[1.0, 0.35])
            ),
            tooltip=["variant:N", "score:N", "answers:Q"],
        )
        .properties(width=360, height=200)
    )
    return chart


def latency_cost(variants: pd.DataFrame) -> AnyChart:
    """TTFT and latency p50/p95 per variant, and next to it the cost per answer."""
    if variants.empty:
        return _no_data("Latency and cost")
    measures = ["ttft_p50", "ttft_p95", "latency_p50", "latency_p95"]
    timing = variants.melt("variant", measures, "measure", "ms").dropna(subset=["ms"])
    timing["measure"] = timing["measure"].str.replace("_", " ")
    order = [m.replace("_", " ") for m in measures]
    times = (
        alt.Chart(timing, title="Time to first token and latency (ms)")
        .mark_bar()
        .encode(
            x=alt.X("ms:Q", title="ms"),
            y=alt.Y("variant:N", title=None),
            yOffset=alt.YOffset("measure:N", sort=order),
            color=alt.Color("measure:N", sort=order),
            tooltip=["variant:N", "measure:N", alt.Tooltip("ms:Q", format=".0f")],
        )
        .properties(width=320)
    )
    costs = [c if _known(c) else None for c in variants["cost_per_answer"]]
    labels = [f"${c:.4g}" if c is not None else "unknown" for c in costs]
    cost = pd.DataFrame({"variant": variants["variant"], "cost": costs, "label": labels})
    known, unknown = cost[cost["cost"].notna()], cost[cost["cost"].isna()]
    y = alt.Y("variant:N", title=None)
    layers = [
        alt.Chart(known).mark_bar(color="#4c78a8").encode(x=alt.X("cost:Q", title="USD"), y=y),
        alt.Chart(known).mark_text(align="left", dx=3).encode(x="cost:Q", y=y, text="label:N"),
        alt.Chart(unknown)
        .mark_text(align="left", color="#6e7781", fontStyle="italic")
        .encode(x=alt.value(3), y=y, text="label:N"),
    ]
    per_answer = alt.layer(*layers, title="Cost per answer").properties(width=200)
    return alt.hconcat(times, per_answer)


def quality_vs_cost(variants: pd.DataFrame) -> AnyChart:
    """Mean judge score against cost per answer; variants of unknown cost are named in the
    subtitle, not drawn at $0."""
    title = "Quality vs cost"
    if variants.empty:
        return _no_data(title)
    known_cost = [_known(c) for c in variants["cost_per_answer"]]
    known_score = [_known(s) for s in variants["score"]]
    plotted = variants[[c and s for c, s in zip(known_cost, known_score, strict=True)]]
    missing = {"cost unknown": known_cost, "no judge score": known_score}
    notes = [
        f"{what}, not plotted: " + ", ".join(names)
        for what, flags in missing.items()
        if (names := [str(v) for v, k in zip(variants["variant"], flags, strict=True) if not k])
    ]
    heading = alt.TitleParams(title, subtitle=notes) if notes else alt.TitleParams(title)
    if plotted.empty:
        return _no_data(heading, "no variant with both a known cost and a judge score")
    frame = plotted[["variant", "score", "cost_per_answer"]].astype({"cost_per_answer": float})
    base = alt.Chart(frame).encode(
        x=alt.X("cost_per_answer:Q", title="cost per answer", axis=alt.Axis(format="$.4f")),
        y=alt.Y("score:Q", title="mean judge score", scale=alt.Scale(zero=False)).axis(
            format=".2f"
        ),
    )
    points = base.mark_point(filled=True, size=90).encode(
        color=alt.Color("variant:N", legend=None),
        tooltip=["variant:N", alt.Tooltip("score:Q", format=".2f"), "cost_per_answer:Q"],
    )
    labels = base.mark_text(align="left", dx=8).encode(text="variant:N")
    return alt.layer(points, labels, title=heading).properties(width=360, height=240)


# --- SVG for the offline HTML report ---------------------------------------------------


def _el(tag: str, text: str = "", tip: str = "", /, **attrs: object) -> str:
    """One SVG element, its text escaped and `tip` as a hover <title>; `text_anchor=` is
    written text-anchor, floats with one decimal."""
    parts = "".join(
        f' {k.replace("_", "-")}="{escape(f"{v:.1f}" if isinstance(v, float) else str(v))}"'
        for k, v in attrs.items()
    )
    inner = escape(text) + (f"<title>{escape(tip)}</title>" if tip else "")
    return f"<{tag}{parts}>{inner}</{tag}>"


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}" '
        f'font-family="system-ui, sans-serif" font-size="12">' + "".join(body) + "</svg>"
    )


def _legend(x: float, y: float, items: dict[str, str], body: list[str]) -> float:
    """Swatches left to right from (x, y); returns where the legend ends."""
    for name, colour in items.items():
        body.append(_el("rect", x=x, y=y - 10, width=12, height=12, fill=colour))
        body.append(_el("text", name, x=x + 17, y=y))
        x += 7 * len(name) + 36
    return x


def _svg_empty(label: str) -> str:
    return _svg(300, 40, [_el("text", "no data", x=10, y=25, fill="#6e7781")], label)


def _ticks(lo: float, hi: float) -> list[float]:
    """About five round tick values covering [lo, hi]."""
    raw = (hi - lo) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(i * step, 10) for i in range(first, math.floor(hi / step + 1e-9) + 1)]


def svg_delta_by_category(comparisons: pd.DataFrame) -> str:
    """The delta-by-category chart as SVG: a dot per (variant, category), its CI as a line."""
    label = "Change in judge score vs baseline by category, with 95% CIs"
    if comparisons.empty:
        return _svg_empty(label)
    left, plot, row = 170, 380, 24
    values = [float(v) for c in ("low", "high", "delta") for v in comparisons[c] if _known(v)]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return left + (float(v) - lo) / (hi - lo) * plot

    body: list[str] = []
    top = 8.0
    for variant, group in comparisons.groupby("variant", sort=True):
        body.append(_el("text", str(variant), x=4, y=top + 14, font_weight="bold"))
        first = top + row
        for i, category in enumerate(category_order(group["category"])):
            c = group[group["category"] == category].iloc[0]
            mid = first + i * row + row / 2
            colour = VERDICT_COLOURS.get(str(c["verdict"]), "#6e7781")
            body.append(_el("text", str(category), x=left - 8, y=mid + 4, text_anchor="end"))
            if _known(c["low"]) and _known(c["high"]):
                line = {"x1": x(c["low"]), "x2": x(c["high"]), "y1": mid, "y2": mid}
                body.append(_el("line", **line, stroke=colour, stroke_width=2.5))
            note = f"no paired rows  {c['verdict']}"
            if _known(c["delta"]):
                body.append(_el("circle", cx=x(c["delta"]), cy=mid, r=5, fill=colour))
                note = f"{c['delta']:+.2f}  n={c['n']}  {c['verdict']}"
            body.append(_el("text", note, x=left + plot + 12, y=mid + 4, fill=colour))
        top = first + group["category"].nunique() * row
        zero = {"x1": x(0), "x2": x(0), "y1": first, "y2": top}
        body.append(_el("line", **zero, stroke="#57606a", stroke_dasharray="4 3"))
        top += 6
    body.append(_el("line", x1=left, x2=left + plot, y1=top, y2=top, stroke="#8c959f"))
    for t in _ticks(lo, hi):
        body.append(_el("line", x1=x(t), x2=x(t), y1=top, y2=top + 4, stroke="#8c959f"))
        body.append(_el("text", f"{t:+g}" if t else "0", x=x(t), y=top + 16, text_anchor="middle"))
    axis = "variant − baseline (mean judge score)"
    body.append(_el("text", axis, x=left + plot / 2, y=top + 32, text_anchor="middle"))
    end = _legend(left, top + 54, VERDICT_COLOURS, body)
    return _svg(max(left + plot + 230, end), top + 64, body, label)


def svg_win_tie_loss(comparisons: pd.DataFrame) -> str:
    """Wins, ties and losses of each variant (all rows) as stacked horizontal bars."""
    label = "Wins, ties and losses vs baseline"
    overall = comparisons[comparisons["category"] == ALL] if not comparisons.empty else comparisons
    if overall.empty:
        return _svg_empty(label)
    left, plot, row = 170, 400, 30
    most = max(1, int((overall["wins"] + overall["ties"] + overall["losses"]).max()))
    body: list[str] = []
    for i, c in enumerate(overall.sort_values("variant").itertuples(index=False)):
        y, start = 8 + i * row, float(left)
        body.append(_el("text", str(c.variant), x=left - 8, y=y + 16, text_anchor="end"))
        for outcome, colour in OUTCOME_COLOURS.items():
            count = int(getattr(c, outcome))
            width = count / most * plot
            bar = {"x": start, "y": y, "width": width, "height": row - 8, "fill": colour}
            body.append(_el("rect", "", f"{outcome}: {count}", **bar) if count else "")
            if width >= 18:
                ink = "#24292f" if outcome == "ties" else "#ffffff"
                mid = {"x": start + width / 2, "y": y + 15, "text_anchor": "middle", "fill": ink}
                body.append(_el("text", str(count), **mid))
            start += width
        note = f"{c.wins} wins · {c.ties} ties · {c.losses} losses"
        body.append(_el("text", note, x=left + plot + 12, y=y + 16))
    top = 8 + len(overall) * row + 16
    _legend(left, top, OUTCOME_COLOURS, body)
    return _svg(left + plot + 200, top + 10, body, label)


def svg_score_distribution(dist: pd.DataFrame) -> str:
    """Answers per judge score, one bar per variant in each score group; unscored faded."""
    label = "Answers per judge score and variant"
    if dist.empty:
        return _svg_empty(label)
    scores = score_order(dist["score"])
    colours = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(sorted(set(dist["variant"])))}
    counts = {(str(v), str(s)): int(a) for v, s, a in dist[["variant", "score", "answers"]].values}
    bar, gap, left, plot = 22, 18, 40, 180
    group = bar * len(colours) + gap
    most = max(1, *counts.values())
    base = plot + 20
    body = [_el("line", x1=left, x2=left + group * len(scores), y1=base, y2=base, stroke="#8c959f")]
    for g, score in enumerate(scores):
        x0 = left + g * group + gap / 2
        faded = {"fill_opacity": "0.35", "stroke_dasharray": "3 2"} if score == UNSCORED else {}
        for i, (variant, colour) in enumerate(colours.items()):
            count = counts.get((str(variant), score), 0)
            height = count / most * plot
            rect = {"x": x0 + i * bar, "y": base - height, "width": bar - 2, "height": height}
            tip = f"{variant}, score {score}: {count}"
            body.append(_el("rect", "", tip, **rect, fill=colour, stroke=colour, **faded))
            mid = x0 + i * bar + bar / 2 - 1
            body.append(_el("text", str(count), x=mid, y=base - height - 4, text_anchor="middle"))
        body.append(_el("text", score, x=x0 + (group - gap) / 2, y=base + 16, text_anchor="middle"))
    end = _legend(left, base + 42, {str(v): c for v, c in colours.items()}, body)
    return _svg(max(left + group * len(scores) + 20, end, 360), base + 52, body, label)


# --- datasets -----------------------------------------------------------------------------

ORIGIN_COLOURS = {"in the file": "#4c78a8", "added from the app": "#f58518"}


def category_counts(counts: pd.DataFrame) -> AnyChart:
    """Cases per category as horizontal bars, largest first, split by origin (in the file /
    added from the app); from `dataset_edit.count_categories`."""
    title = "Cases per category"
    if counts.empty:
        return _no_data(title)
    totals = counts.groupby("category")["cases"].sum()
    order = sorted(totals.index, key=lambda c: (-int(totals[c]), str(c)))
    origins = [o for o in ORIGIN_COLOURS if o in set(counts["origin"])]
    colours = {o: ORIGIN_COLOURS[o] for o in origins}
    chart: AnyChart = (
        alt.Chart(counts[["category", "origin", "cases"]], title=title)
        .mark_bar()
        .encode(
            x=alt.X("sum(cases):Q", title="cases", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("category:N", sort=order, title=None),
            color=_colour("origin:N", colours).legend(orient="bottom", title=None),
            order=alt.Order("origin:N", sort="descending"),
            tooltip=["category:N", "origin:N", "cases:Q"],
        )
        .properties(width=360, height=alt.Step(22))
    )
    return chart
