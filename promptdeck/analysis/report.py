"""Exports of a run: a CSV with one row per (case, variant, repeat), a self-contained HTML
report, and a Markdown summary for a pull-request comment.

Spreadsheet formulas in user or model text are neutralised (a leading ', as OWASP
recommends for CSV injection), so opening the export in Excel or Sheets runs nothing.
In the HTML report every user or model text is HTML-escaped, and the page has no script
and loads nothing: its charts are SVG drawn in Python, so it opens offline and a
`<script>` in an answer shows as text.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Protocol

import pandas as pd

from promptdeck.analysis.cells import CSV_COLUMNS
from promptdeck.analysis.gates import GateResult, overall_status
from promptdeck.analysis.stats import MIN_PAIRS
from promptdeck.scoring.judge import LOCAL_JUDGE_NOTICE

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: neutralise(row.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()


# --- the HTML report and the pull-request summary ------------------------------------

PLAIN = {
    "better": "Better than the baseline: the whole 95% CI is above 0.",
    "worse": "Worse than the baseline: the whole 95% CI is below 0.",
    "within noise": "No real change: the whole CI lies within the change that matters, either way.",
    "underpowered": "Cannot tell yet: this run is too small to see a change of the size that "
    "matters{mde}. Add rows before deciding.",
    "no data": "No row was scored for both the baseline and this variant.",
}
STATUS_ICONS = {"pass": "✅", "fail": "❌"}  # anything else (insufficient evidence): ⚠️
_STATUS_CLASS = {"pass": "pass", "fail": "fail"}


class RunInfo(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def created(self) -> str: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class ReportData:
    """What the HTML report and the Markdown summary show (`RunAnalysis.report_data()`)."""

    title: str
    run: Mapping[str, Any] | RunInfo
    headlines: pd.DataFrame  # comparison rows over every category, one per variant
    comparisons: pd.DataFrame  # results.comparison_frame
    variants: pd.DataFrame  # results.variant_frame
    dist: pd.DataFrame  # results.score_distribution
    gates: Sequence[GateResult]
    examples: Sequence[Mapping[str, Any]]
    judge_model: str | None = None
    demo_judge: bool = False  # the bundled demo model judged: say how little that is worth


def _field(run: Mapping[str, Any] | RunInfo, key: str) -> str:
    value = run.get(key) if isinstance(run, Mapping) else getattr(run, key, None)
    return "" if value is None else str(value)


def _known(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _estimate(row: Mapping[str, Any]) -> str:
    """'-0.33 (95% CI -1.00 to +0.00), n=6': the summary without its verdict."""
    return str(row["summary"]).removesuffix(f": {row['verdict']}")


def plain_summary(row: Mapping[str, Any]) -> str:
    """The verdict of one comparison row in a sentence for a PM."""
    detectable = _known(row.get("mde")) and row["mde"] > 0 and row.get("n", 0) >= MIN_PAIRS
    mde = f" (it detects changes of {row['mde']:.2f} or more)" if detectable else ""
    return PLAIN.get(str(row["verdict"]), "").format(mde=mde)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if frame.empty else frame.to_dict("records")


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#24292f;max-width:1100px;margin:24px auto;
padding:0 16px}h1{margin-bottom:4px}.meta{color:#57606a}table{border-collapse:collapse;
margin:8px 0}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f6f8fa}.badge{display:inline-block;padding:1px 8px;
border-radius:10px;color:#fff;font-weight:600}.pass{background:#1a7f37}.fail{background:#cf222e}
.insufficient{background:#9a6700}.card{border:1px solid #d0d7de;border-radius:6px;padding:8px
12px;margin:8px 0}.big{font-size:18px;font-weight:600}.pair{display:grid;
grid-template-columns:1fr 1fr;gap:8px}.answer{white-space:pre-wrap;background:#f6f8fa;
padding:6px;border-radius:4px;max-height:320px;overflow:auto}figure{margin:12px 0}
.foot{color:#57606a;font-size:12px;border-top:1px solid #d0d7de;margin-top:24px}
"""


def _badge(status: str) -> str:
    css = _STATUS_CLASS.get(status, "insufficient")
    return f'<span class="badge {css}">{escape(status)}</span>'


def _headline_html(row: Mapping[str, Any]) -> str:
    from promptdeck.analysis.charts import VERDICT_COLOURS

    colour = VERDICT_COLOURS.get(str(row["verdict"]), "#6e7781")
    means = ""
    if _known(row.get("mean_baseline")) and _known(row.get("mean_variant")):
        means = f"mean judge score {row['mean_baseline']:.2f} → {row['mean_variant']:.2f}; "
    return (
        f'<div class="card"><h3>{escape(str(row["variant"]))}</h3>'
        f'<div class="big">Δ {escape(_estimate(row))} '
        f'<span class="badge" style="background:{colour}">{escape(str(row["verdict"]))}</span>'
        f"</div><p>{escape(plain_summary(row))}</p><p class=meta>{escape(means)}"
        f"{row['wins']} wins, {row['ties']} ties, {row['losses']} losses</p></div>"
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Cells are HTML already (escaped by the caller)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _variants_html(variants: pd.DataFrame) -> str:
    def num(value: object, fmt: str, unknown: str = "–") -> str:
        return format(value, fmt) if _known(value) else unknown

    rows = [
        [escape(str(v["variant"])), str(v["cells"]), str(v["errors"]), num(v["score"], ".2f"),
         str(v["unscored"]), num(v["ttft_p50"], ".0f"), num(v["latency_p50"], ".0f"),
         num(v["latency_p95"], ".0f"),
         "$" + num(v["cost_per_answer"], ".4g") if _known(v["cost_per_answer"]) else "unknown",
         num(v["check_pass_rate"], ".0%")]
        for v in _records(variants)
    ]  # fmt: skip
    header = ["variant", "cells", "errors", "mean score", "unscored", "TTFT p50 ms",
              "latency p50 ms", "latency p95 ms", "cost / answer", "checks passed"]  # fmt: skip
    return _table(header, rows)


def _example_html(e: Mapping[str, Any]) -> str:
    def side(who: str, answer: object, score: object) -> str:
        scored = _known(score) and isinstance(score, int | float)
        shown = f"score {score:g}" if scored else "unscored"
        text = escape("" if answer is None else str(answer))
        return f'<div><b>{who}</b> ({shown})<div class="answer">{text}</div></div>'

    delta = f"Δ {e['delta']:+.2f}" if _known(e.get("delta")) else "Δ –"
    head = " · ".join(escape(str(e.get(k, ""))) for k in ("row_id", "category", "variant"))
    return (
        f'<div class="card"><b>{head}</b> · {delta}'
        f"<p><b>Question:</b> {escape(str(e.get('question', '')))}</p>"
        f'<div class="pair">{side("Baseline", e.get("baseline_answer"), e.get("baseline_score"))}'
        f"{side('Variant', e.get('variant_answer'), e.get('variant_score'))}</div></div>"
    )


def _examples_html(examples: Sequence[Mapping[str, Any]]) -> str:
    def delta(e: Mapping[str, Any]) -> float:
        return float(e["delta"]) if _known(e.get("delta")) else 0.0

    groups = {
        "Top wins": sorted((e for e in examples if delta(e) > 0), key=lambda e: -delta(e)),
        "Top losses": sorted((e for e in examples if delta(e) < 0), key=delta),
        "Other examples": [e for e in examples if delta(e) == 0],
    }
    parts = [
        f"<h3>{name}</h3>" + "".join(map(_example_html, items))
        for name, items in groups.items()
        if items
    ]
    return "".join(parts) or "<p>No examples.</p>"


def html_report(data: ReportData) -> str:
    """One self-contained HTML page: no script, no external file. The charts are SVG drawn
    here (`charts.svg_*`), so the page opens offline; all user and model text is escaped.
    With `data.demo_judge`, it says how little the bundled demo judge's scores are worth."""
    title, run, gates = data.title, data.run, data.gates
    from promptdeck.analysis import charts  # not at the top: the CSV export should not load altair

    status = overall_status(gates)
    gate_rows = [
        [f"{STATUS_ICONS.get(g.status, '⚠️')} {_badge(g.status)}", escape(g.gate),
         escape(g.variant), escape(g.observed), escape(g.reason)]
        for g in gates
    ]  # fmt: skip
    heads = _records(data.headlines)
    excluded = "; ".join(
        f"{h['variant']}: {h['excluded_unscored']} unscored, {h['excluded_errors']} errored"
        for h in heads
    )
    meta = f"Run {_field(run, 'id')} · {_field(run, 'name')} · {_field(run, 'created')}"
    meta += f" · judge: {data.judge_model}" if data.judge_model else ""
    notice = f'<div class="card"><p>{escape(_plain(LOCAL_JUDGE_NOTICE))}</p></div>'
    sections = [
        f"<h1>{escape(title)}</h1><p class=meta>{escape(meta)}</p>",
        notice if data.demo_judge else "",
        "<h2>Headline</h2>",
        "".join(map(_headline_html, heads)) or "<p>No comparison with a baseline.</p>",
        f"<h2>Gates: {_badge(status) if gates else 'none'}</h2>",
        _table(["status", "gate", "variant", "observed", "why"], gate_rows)
        if gates
        else "<p>The suite declares no gates.</p>",
        "<h2>Charts</h2>",
        f"<figure>{charts.svg_delta_by_category(data.comparisons)}<figcaption>Change in mean judge "
        "score per category, variant − baseline, with 95% CIs.</figcaption></figure>",
        f"<figure>{charts.svg_win_tie_loss(data.comparisons)}<figcaption>Rows where the variant "
        "scored higher (win), the same (tie) or lower (loss) than the baseline.</figcaption>"
        "</figure>",
        f"<figure>{charts.svg_score_distribution(data.dist)}<figcaption>Answers per judge score; "
        "faded bars: unscored answers.</figcaption></figure>",
        "<h2>Per variant</h2>",
        _variants_html(data.variants) if not data.variants.empty else "<p>No answers.</p>",
        "<h2>Wins and losses</h2>",
        _examples_html(data.examples),
        f'<div class="foot"><p><b>Method.</b> Δ is the mean over paired rows of the judge '
        "score of the variant minus the baseline's; its 95% CI is a Gaffke bound on the "
        "judge's scale (10,000 seeded draws), which stays honest on tied scores and rare large "
        "drops; the categories' CIs are widened to 1 − 0.05/k for k categories, and a run "
        "that grew until decided uses an anytime-valid interval. n counts the rows scored on "
        "both sides. Rows "
        "the judge left unscored or that errored on either side are left out and counted, "
        f"never scored 0. Left out: {escape(excluded or 'none')}.</p></div>",
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def _plain(markdown: str) -> str:
    """A notice written in Markdown, as plain text (its bold and code marks removed)."""
    return markdown.replace("**", "").replace("`", "")


def _md(text: object) -> str:
    """Safe in a Markdown table cell: HTML escaped, pipes escaped, one line."""
    return escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def markdown_summary(data: ReportData, *, report_path: str | None = None) -> str:
    """A pull-request comment: a headline per variant, the gates, what was left out."""
    title, run, gates, judge_model = data.title, data.run, data.gates, data.judge_model
    heads = _records(data.headlines)
    judged = f", judge `{_md(judge_model)}`" if judge_model else ""
    lines = [
        f"### {_md(title)}",
        "",
        f"Run `{_field(run, 'id')}` ({_md(_field(run, 'name'))}){judged}",
        "",
    ]
    if data.demo_judge:
        lines += [f"> {_md(_plain(LOCAL_JUDGE_NOTICE))}", ""]
    for h in heads:
        lines.append(
            f"- **{_md(h['variant'])}**: Δ {_md(_estimate(h))}, **{_md(h['verdict'])}**. "
            f"{_md(plain_summary(h))}"
        )
    if not heads:
        lines.append("- No comparison with a baseline.")
    status = overall_status(gates)
    if gates:
        lines += ["", f"**Gates: {STATUS_ICONS.get(status, '⚠️')} {status}**", ""]
        lines += ["| | gate | variant | observed | why |", "|---|---|---|---|---|"]
        lines += [
            f"| {STATUS_ICONS.get(g.status, '⚠️')} | {_md(g.gate)} | {_md(g.variant)} "
            f"| {_md(g.observed)} | {_md(g.reason)} |"
            for g in gates
        ]
    else:
        lines += ["", "**Gates:** the suite declares none."]
    excluded = [
        f"{_md(h['variant'])} {h['excluded_unscored']} unscored, {h['excluded_errors']} errored"
        for h in heads
    ]
    lines += ["", "Rows left out (never scored 0): " + ("; ".join(excluded) or "none") + "."]
    if report_path:
        lines.append(f"Full report: {_md(report_path)}")
    return "\n".join(lines) + "\n"
