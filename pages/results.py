"""Results: is a variant better than the baseline, where, and can it ship?
Headlines with confidence intervals, gates, charts, drill-down with human review, exports.
Every number comes from `analysis.run.analyze_run`, as in the reports and the CLI."""

from html import escape
from typing import Any

import pandas as pd
import streamlit as st

from promptdeck import ui
from promptdeck.analysis import charts
from promptdeck.analysis.calibration import describe, run_agreement
from promptdeck.analysis.cells import (
    audit_messages,
    case_input,
    cell_rows,
    judge_audits,
    load_cells,
    run_judge_model,
    run_judge_scale,
)
from promptdeck.analysis.report import html_report, markdown_summary, to_csv
from promptdeck.analysis.results import (
    ALL,
    case_table,
    check_comparisons,
    check_pass_rates,
    filter_cases,
    run_changes,
    score_distribution,
)
from promptdeck.analysis.run import RunAnalysis
from promptdeck.analysis.textdiff import word_diff_html
from promptdeck.analysis.versions import run_versions
from promptdeck.errors import PromptDeckError
from promptdeck.evals import demo
from promptdeck.evals.plan import EvalPlan
from promptdeck.model.pricing import format_cost
from promptdeck.scoring.judge import LOCAL_JUDGE_NOTICE
from promptdeck.store.rows import RunRecord
from promptdeck.workspace.datasets import append_case, find_datasets

CASES_PAGE = 500  # rows of the cases table drawn (and offered under "Open a case") at once

ui.frame("Results")
store = ui.store()
jobs = ui.jobs()
runs = store.list_runs()


def run_by(author: str | None) -> str:
    return f" · run by {author}" if author else ""


def started_by(record: RunRecord) -> None:
    """Who started the run, and when (with sign-in: without it, the person at this computer)."""
    if record.author:
        when = record.created[:16].replace("T", " ")
        st.markdown(f":gray[Run by **{ui.plain(record.author)}** · started {when} UTC]")


def start_demo(plan: EvalPlan) -> None:
    ui.require_editor("run evals")
    registry = ui.registry()
    job = demo.start_demo(plan, registry, store, jobs)
    st.session_state.ev_run = job.run_id  # the Evaluate page shows the same run, answer by answer
    st.query_params["run"] = job.run_id


def first_run() -> None:
    """No run yet: one click runs the demo suite, or, without one, where to start."""
    workspace = ui.workspace()
    if not demo.has_demo_suite(workspace):
        st.info(
            "No eval runs yet. Plan one on the Evaluate page: pick a suite or a dataset, the "
            "variants and a judge, and press **Run**; its results appear here. From a terminal: "
            "`promptdeck run datasets/<name>.suite.yaml`."
        )
        st.page_link("pages/evaluate.py", label="Go to Evaluate", icon=":material/fact_check:")
        return
    registry = ui.registry_or_error()  # a broken providers.yaml is shown, and named, there
    try:
        if registry is None:
            raise PromptDeckError("Fix the provider configuration first.")
        plan = demo.demo_plan(workspace, registry)
    except PromptDeckError as exc:
        st.info("No eval runs yet.")
        st.warning(f"The demo eval cannot run here. {ui.plain(exc)}")
        st.page_link("pages/evaluate.py", label="Go to Evaluate", icon=":material/fact_check:")
        return
    counts = plan.category_counts()
    st.info(
        f"No eval runs yet. See what an eval looks like: the demo suite compares "
        f"{len(plan.variants)} support prompts on {len(plan.cases)} tickets "
        f"({demo.ROWS_PER_CATEGORY} from each of {len(counts)} categories), and the embedded "
        f"model judges every answer. {demo.DEMO_DURATION[0].upper()}{demo.DEMO_DURATION[1:]}, "
        "offline, no key.",
        icon=":material/science:",
    )
    if not ui.can_edit():
        st.caption("An editor of this workspace can run it.")
        return
    st.button(
        "Run the demo eval",
        type="primary",
        icon=":material/play_arrow:",
        on_click=start_demo,
        args=(plan,),
    )
    st.caption("Or plan your own run on the Evaluate page.")


def share_panel(run_id: str) -> None:
    """The link to this run's presentation view, to copy, and the offline alternative."""
    st.markdown("**Link to this run's presentation view** (read-only; viewers can open it)")
    st.code(ui.share_url("results", {"run": run_id, "present": "1"}), language=None)
    offline = ui.code(f"promptdeck report {run_id} --html report.html")
    st.markdown(  # not a caption: the headline's caption stays the page's first
        "Whoever opens it signs in first if sign-in is on, then sees the headline, gates and "
        f"chart. For someone without access: {offline}, a self-contained file (also under "
        "**Export for stakeholders**)."
    )


def progress_panel(run_id: str) -> None:
    """Polled while the run's job works; redraws the whole page once it has finished."""
    job = jobs.get(run_id)
    total = store.get_run(run_id).total_cells
    p = job.progress if job is not None else None
    done = p.done if p is not None else len(store.results(run_id))
    detail = f"{done}/{total} cells"
    if p is not None:
        eta = f" · about {p.eta_s:,.0f} s left" if p.eta_s is not None else ""
        detail += f" · {p.errors} errors · {p.elapsed_s:,.0f} s{eta}"
    st.progress(done / total if total else 1.0, text=detail)
    st.caption(
        "Each cell is one answer and its judge verdict. The headline, gates and charts "
        "appear here when the run has finished; Evaluate shows every answer as it arrives."
    )
    if job is not None and job.running:
        ui.cancel_button(job)
    else:
        st.rerun()  # finished (or cancelled): draw the run's results, and stop polling


if not runs:
    st.title("Results")
    first_run()
    st.stop()

present = st.query_params.get("present") == "1"
by_id = {r.id: r for r in runs}
wanted = st.query_params.get("run")
run_id = wanted if wanted in by_id else runs[0].id
if not present:
    st.title("Results")
    cols = st.columns([3, 2, 1, 1])
    run_id = cols[0].selectbox(
        "Run",
        list(by_id),
        list(by_id).index(run_id),
        key="res_run",
        # No status in the label: Streamlit 1.67 keeps showing a selected option's old label
        # after its text changes (checked in a browser), so "running" would outlive the run.
        format_func=lambda r: f"{by_id[r].name} · {r}" + run_by(by_id[r].author),
    )
record = store.get_run(run_id)
if not present:
    started_by(record)
demo_judge = ui.is_demo_model(run_judge_model(record.snapshot))
if (job := jobs.get(run_id)) is not None and job.running:
    if not present:
        st.subheader(f"Running: {ui.plain(record.name)}")
        if demo_judge:
            st.info(LOCAL_JUDGE_NOTICE, icon=":material/info:")
    st.fragment(run_every=0.5)(progress_panel)(run_id)
    st.stop()
version = ui.run_version(store, run_id)  # every view below is cached under it
first = ui.run_analysis(store, run_id, version)
if first.cells.empty:
    st.info(f"This run has no finished cells yet (status: {record.status}).")
    st.stop()
if record.status != "done" and not present:
    # "running" without a job of this server: another process runs it, or it was killed.
    state = "not finished (running elsewhere, or interrupted)"
    st.warning(
        f"This run is {state if record.status == 'running' else record.status}: "
        f"{len(first.cells)} of {record.total_cells} cells finished, "
        "and everything below is computed from those only.",
        icon=":material/warning:",
    )
variants = first.variants
baseline = first.baseline or variants[0]
if not present:
    baseline = cols[1].selectbox("Baseline", variants, variants.index(baseline), key="res_base")
    cols[2].write("")
    if cols[2].button("Present", icon=":material/slideshow:", help="Big headline, no controls"):
        st.query_params.update({"run": run_id, "present": "1"})
        st.rerun()
    cols[3].write("")
    with cols[3].popover("Share", icon=":material/share:"):
        share_panel(run_id)
run = first if baseline == first.baseline else ui.run_analysis(store, run_id, version, baseline)
cells = run.cells


def headline(run: RunAnalysis, big: bool) -> None:
    if run.headlines.empty:
        st.warning("Only the baseline is in this run: nothing to compare.")
    for _, row in run.headlines.iterrows():
        delta = "–" if pd.isna(row["delta"]) else f"{row['delta']:+.2f}"
        colour = {"better": "green", "worse": "red"}.get(row["verdict"], "gray")
        size = "2.6rem" if big else "1.6rem"
        st.html(  # HTML of escaped parts only (names are the user's file names), no Markdown
            f"<div style='font-size:{size};line-height:1.2'><b>{escape(str(row['variant']))}"
            f"</b> vs {escape(str(run.baseline))}: <b>{delta}</b> judge score · "
            f"<span style='color:{colour}'>{escape(str(row['verdict']))}</span></div>"
        )
        st.caption(ui.plain(row["summary"]))


def gates_banner(run: RunAnalysis) -> None:
    status = run.gate_status
    if status is None:
        st.caption("This run's suite declares no gates.")
        return
    passed = sum(g.status == "pass" for g in run.gates)
    text = f"Gates: **{status}** ({passed} of {len(run.gates)} pass)"
    {"pass": st.success, "fail": st.error}.get(status, st.warning)(text)
    icon = {"pass": "✅", "fail": "❌"}
    rows = [
        {"": icon.get(g.status, "⚠️"), "gate": g.gate, "variant": g.variant,
         "status": g.status, "observed": g.observed, "why": g.reason}
        for g in run.gates
    ]  # fmt: skip
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def summary_table(run: RunAnalysis) -> None:
    """Per variant: the summary the report and `promptdeck run` print too."""
    v = run.per_variant
    table = pd.DataFrame(
        {
            "variant": v["variant"],
            "cells": v["cells"],
            "errors": v["errors"],
            "mean score": v["score"],
            "unscored": v["unscored"],
            "TTFT p50 ms": v["ttft_p50"],
            "latency p50 ms": v["latency_p50"],
            "latency p95 ms": v["latency_p95"],
            "cost / answer": [format_cost(c) for c in v["cost_per_answer"]],
            "checks passed": v["check_pass_rate"],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="res_summary",
        column_config={
            "mean score": st.column_config.NumberColumn(format="%.2f"),
            "TTFT p50 ms": st.column_config.NumberColumn(format="%.0f"),
            "latency p50 ms": st.column_config.NumberColumn(format="%.0f"),
            "latency p95 ms": st.column_config.NumberColumn(format="%.0f"),
            "checks passed": st.column_config.NumberColumn(format="percent"),
        },
    )


if present:
    st.markdown(f"# {ui.plain(record.name)}")
    started_by(record)
    headline(run, big=True)
    if demo_judge:
        st.info(LOCAL_JUDGE_NOTICE, icon=":material/info:")
    gates_banner(run)
    st.altair_chart(charts.delta_by_category(run.comparisons), width="stretch")
    left, right = st.columns([1, 3])
    if left.button("Leave presentation mode"):
        del st.query_params["present"]
        st.rerun()
    with right.expander("Share this view", icon=":material/share:"):
        share_panel(run_id)
    st.stop()


def checks_first(run_id: str) -> None:
    """With the embedded demo judge, the checks are the result to read: they are exact."""
    rates = check_pass_rates(ui.run_scores(store, run_id, version))
    if rates.empty:
        return
    st.subheader("Checks: read these first")
    st.caption(
        "Deterministic guardrails on every answer. The embedded judge's scores below are "
        "too weak to rank these variants (see the note under them)."
    )
    for _, row in checks.iterrows():
        change = row["change"] * 100
        st.markdown(
            f"**{ui.plain(row['variant'])}** passes every check on "
            f"**{row['variant pass rate']:.0%}** of {row['rows']} answers, "
            f"{ui.plain(baseline)} on {row['baseline pass rate']:.0%} "
            f"({change:+.0f} points; exact McNemar p = {row['McNemar p']:.2f})"
        )
    # A check one variant does not have (e.g. tool_called on a variant without tools) is "—",
    # not a blank that reads as a failure.
    shown = rates.map(lambda rate: "—" if pd.isna(rate) else f"{rate:.0%}")
    st.dataframe(shown, width="stretch")
    if rates.isna().any().any():
        st.caption("—: the variant has no such check.")


checks = ui.run_view(
    "checks", lambda: check_comparisons(cells, baseline), run_id, version, baseline
)
if demo_judge:
    checks_first(run_id)
headline(run, big=False)
if (stop := run.stop) is not None and stop.get("why"):
    looks = len(stop.get("looks") or [])
    text = f"Run until decided: stopped after {stop.get('rows')} rows ({looks} looks): "
    text += ui.plain(stop["why"]) + "."
    decided = stop.get("stopped") == "decided"
    (st.success if decided else st.warning)(text, icon=":material/stop_circle:")
if demo_judge:
    st.info(LOCAL_JUDGE_NOTICE, icon=":material/info:")
gates_banner(run)
summary_table(run)
moved = [v for v in run_versions(record.snapshot) if v.state in ("changed", "deleted")]
if moved:
    said = "; ".join(
        f"{ui.plain(v.variant)} ({'deleted' if v.state == 'deleted' else 'changed'})" for v in moved
    )
    st.caption(
        f"Since this run, these prompt files changed on disk: {said}. The run keeps the "
        "prompts it ran; the Prompts page (Runs, History) shows each version.",
    )
with st.popover("Export for stakeholders", icon=":material/download:"):
    # Each file is made when its button is pressed, not on every rerun (100,000 cells).
    st.download_button(
        "HTML report (self-contained)",
        lambda: html_report(run.report_data(demo_judge=demo_judge)),
        f"promptdeck-{run_id}.html",
        "text/html",
    )
    st.download_button(
        "Markdown summary (pull request)",
        lambda: markdown_summary(run.report_data(demo_judge=demo_judge)),
        f"promptdeck-{run_id}.md",
        "text/markdown",
    )
    st.download_button(
        "CSV of every cell",
        lambda: to_csv(cell_rows(run_id, store.results(run_id), store.scores(run_id))),
        f"promptdeck-{run_id}.csv",
        "text/csv",
    )
calibration = ui.run_view(
    "calibration",
    lambda: run_agreement(
        record.snapshot.get("cases", []),
        ui.run_scores(store, run_id, version),
        store.score_overrides(run_id),
    ),
    run_id,
    version,
)
if calibration is not None:
    st.info(describe(calibration), icon=":material/balance:")

if not run.pairwise.empty:
    st.markdown("**Pairwise verdicts** against the baseline (asked in both orders)")
    headers = {
        "win_rate": "win rate",
        "low": "95% CI low",
        "high": "95% CI high",
        "swap_disagreements": "swapped order disagreed",
        "same_slot": "same slot both times",
    }
    st.dataframe(run.pairwise.rename(columns=headers), hide_index=True, width="stretch")
if not checks.empty and not demo_judge:
    with st.expander("Checks: pass rates against the baseline (exact McNemar test on flips)"):
        st.dataframe(checks, hide_index=True, width="stretch")
table = run.comparisons
tabs = st.tabs(
    ["By category", "Wins · ties · losses", "Scores", "Latency & cost", "Quality vs cost"]
)
with tabs[0]:
    # A "no data" chart has no selection to listen to.
    picked = st.altair_chart(
        charts.delta_by_category(table),
        width="stretch",
        on_select="rerun" if not table.empty else "ignore",
        key="res_cat_chart",
    )
with tabs[1]:
    picked_variant = st.altair_chart(
        charts.win_tie_loss(table),
        width="stretch",
        on_select="rerun" if not table.empty else "ignore",
        key="res_wtl_chart",
    )
with tabs[2]:
    dist = ui.run_view("dist", lambda: score_distribution(cells), run_id, version, baseline)
    st.altair_chart(charts.score_distribution(dist), width="stretch")
with tabs[3]:
    st.altair_chart(charts.latency_cost(run.per_variant), width="stretch")
with tabs[4]:
    st.altair_chart(charts.quality_vs_cost(run.per_variant), width="stretch")


def selected(event: Any, name: str, field: str) -> str | None:
    """The value a chart click selected (Streamlit returns a list of selected points)."""
    try:
        points = event["selection"][name]
        return str(points[0][field]) if points else None
    except (KeyError, IndexError, TypeError):
        return None


st.subheader("Cases")
others = [v for v in variants if v != baseline] or variants
filters = st.columns([2, 2, 1, 1, 1])
categories = [ALL, *sorted(cells["category"].unique())]
# A click on a chart sets the filter (once per new click: the filter stays the user's to
# change). A selectbox's index only counts when it is first drawn, so its state is set.
for key, value, options in (
    ("res_variant", selected(picked_variant, "variant_pick", "variant"), others),
    ("res_category", selected(picked, "category_pick", "category"), categories),
):
    if value != st.session_state.get(f"{key}_clicked"):
        st.session_state[f"{key}_clicked"] = value
        if value in options:
            st.session_state[key] = value
variant = filters[0].selectbox("Variant", others, key="res_variant")
category = filters[1].selectbox("Category", categories, key="res_category")
cases = filter_cases(
    ui.run_view(
        "cases", lambda: case_table(cells, baseline, variant), run_id, version, baseline, variant
    ),
    category=category,
    regressions=filters[2].toggle("Regressions only", key="res_regress"),
    unscored=filters[3].toggle("Unscored", key="res_unscored"),
    errors=filters[4].toggle("Errors", key="res_errors"),
)
pages = max(1, -(-len(cases) // CASES_PAGE))
if pages > 1:  # 100,000 cells: a page of rows at a time, the worst regressions first
    if st.session_state.get("res_cases_page", 1) > pages:  # a filter left fewer pages
        st.session_state["res_cases_page"] = pages
    page = st.number_input(
        f"Page (of {pages:,}, {CASES_PAGE:,} cases each)", 1, pages, 1, key="res_cases_page"
    )
    cases = cases.iloc[(int(page) - 1) * CASES_PAGE : int(page) * CASES_PAGE]
with st.container(key="res_cases"):
    st.dataframe(
        cases.rename(
            columns={"baseline": f"{baseline} score (baseline)", "variant": f"{variant} score"}
        ),
        hide_index=True,
        width="stretch",
        height=min(360, 38 + 35 * max(1, len(cases))),
    )
if cases.empty:
    st.caption("No case matches these filters.")
    st.stop()

row_id = st.selectbox("Open a case", list(cases["row_id"]), key="res_case")
case_cells = cells[(cells["row_id"] == row_id) & cells["variant"].isin([baseline, variant])]
missing = [v for v in (baseline, variant) if not (case_cells["variant"] == v).any()]
if missing:  # a run that stopped early: this case was not answered by every variant
    st.info(f"This case has no answer from {ui.plain(' or '.join(missing))} in this run.")
    st.stop()
base_cell = case_cells[case_cells["variant"] == baseline].iloc[0]
row_input = case_input(record.snapshot, row_id)
with st.container(border=True):
    st.markdown(f"**Input** ({ui.plain(base_cell['category'] or 'no category')})")
    shown_fields = (
        {"input"} if "input" in row_input else set(row_input) - {"id", "expected", "category"}
    )
    for name in sorted(shown_fields):
        if len(shown_fields) > 1:
            st.caption(ui.plain(name))
        st.text(row_input.get(name, ""))
    if not shown_fields:
        st.text("(this case has no input fields)")
    if row_input.get("expected"):
        st.caption(f"Reference: {ui.plain(row_input['expected'])}")
judge_audit = judge_audits(ui.run_scores(store, run_id, version), row_id)
reviews = store.reviews(run_id)


def show_cell(cell: "pd.Series[Any]", diff_against: str | None) -> None:
    repeat = f" · repeat {cell['repeat']}" if cell["repeat"] else ""
    st.markdown(f"**{ui.plain(cell['variant'])}**{repeat}")
    ui.show_tool_calls(cell["tool_calls"])
    thought_ms = None if pd.isna(cell["thinking_ms"]) else float(cell["thinking_ms"])
    ui.show_thinking(cell["thinking"] or "", thought_ms)
    box = st.container(border=True, height=260)
    if cell["failed"]:
        box.error(ui.plain(cell["error"]))
    elif diff_against is not None:
        diff = word_diff_html(diff_against, cell["output"])  # escaped parts; no Markdown either
        box.html(f"<div style='white-space:pre-wrap'>{diff}</div>")
    else:
        box.text(cell["output"])
    judge = cell["judge_score"]
    if not pd.isna(cell["judge_reason"]):
        mark = " (human override)" if cell["overridden"] else ""
        value = "unscored" if pd.isna(judge) else f"{judge:g}"
        st.markdown(f"**Judge: {value}**{mark} — {ui.plain(cell['judge_reason'])}")
    audit = judge_audit.get((cell["variant"], int(cell["repeat"])))
    if audit is not None:
        with st.expander("Audit the verdict: the judge's prompt and raw output"):
            st.caption(
                f"{ui.plain(audit['judge_model'])} · {audit['latency_ms'] or 0:,.0f} ms · "
                f"{format_cost(audit['cost_usd'])}" + (" · cached" if audit["cached"] else "")
            )
            st.code(audit["raw"] or "", language=None, wrap_lines=True)
            for role, content in audit_messages(audit):
                st.markdown(f"**{ui.plain(role)}**")
                st.code(content, language=None, wrap_lines=True)
    failed_checks = ui.plain(cell["checks_failed"] or "")
    cost = None if pd.isna(cell["cost_usd"]) else float(cell["cost_usd"])
    st.caption(
        f"checks {cell['checks_passed']}/{cell['checks_total']}"
        + (f" · failed: {failed_checks}" if failed_checks else "")
        + f" · {cell['latency_ms'] or 0:,.0f} ms · {format_cost(cost)}"
    )
    if (review := reviews.get((row_id, cell["variant"], int(cell["repeat"])))) is not None:
        by = f" by **{ui.plain(review['author'])}**" if review["author"] else ""
        note = f" · {ui.plain(review['note'])}" if review["note"] else ""
        thumbs = {1: " · 👍", -1: " · 👎"}.get(review["thumbs"] or 0, "")
        st.caption(f"Reviewed{by} on {review['created'][:16].replace('T', ' ')}{thumbs}{note}")


marked = st.toggle(
    "Mark the words that differ from the baseline",
    key="res_word_diff",
    help="Words the baseline lacks are underlined, words it had are struck through. Off: "
    "both answers read as written.",
)
left, right = st.columns(2)
for column, name in ((left, baseline), (right, variant)):
    with column:
        for _, cell in case_cells[case_cells["variant"] == name].iterrows():
            show_cell(cell, base_cell["output"] if marked and name != baseline else None)

target = case_cells[case_cells["variant"] == variant].iloc[0]


def review_panel() -> None:
    """A human review of the variant's answer, and the case into a dataset: editors only."""
    with st.form(f"review_{row_id}_{variant}"):
        st.markdown(f"**Review {ui.plain(variant)}'s answer**")
        cols = st.columns([1, 1, 3])
        # Empty unless a human scored it: a thumbs or a note alone is never a score override.
        low, high = run_judge_scale(record.snapshot)
        judged = "unscored" if pd.isna(target["judge_raw"]) else f"{target['judge_raw']:g}"
        score = cols[0].number_input(
            f"Your score ({low:g}–{high:g})",
            low,
            high,
            value=float(target["judge_score"]) if target["overridden"] else None,
            step=1.0,
            placeholder=f"the judge's: {judged}",
            help="Leave empty to keep the judge's score; clear it to remove yours.",
        )
        choices = ["–", "👍", "👎"]
        given = {1: "👍", -1: "👎"}.get(0 if pd.isna(target["thumbs"]) else int(target["thumbs"]))
        thumbs = cols[1].radio("Thumbs", choices, choices.index(given or "–"), horizontal=True)
        note = cols[2].text_input("Note", value=target["note"] or "")
        if st.form_submit_button("Save review"):
            ui.require_editor("review answers")
            store.review_cell(
                run_id,
                row_id,
                variant,
                int(target["repeat"]),
                score=score,
                thumbs={"👍": 1, "👎": -1}.get(thumbs),
                note=note or None,
            )
            st.rerun()

    with st.expander("Add this case to a dataset (human in the loop)"):
        paths = [p for p in find_datasets(ui.workspace().datasets_dir) if p.suffix == ".csv"]
        names = ["reviewed_cases.csv", *[p.name for p in paths if p.name != "reviewed_cases.csv"]]
        dest = st.selectbox("Dataset", names, key="res_dest")
        why = st.text_input("Why this case matters", key="res_why")
        if st.button("Add case", key="res_add"):
            ui.require_editor("add cases to datasets")
            values = {k: str(v) for k, v in row_input.items() if k != "id"}
            values.update({"note": why, "source": f"run {run_id}, {variant}"})
            try:
                workspace = ui.workspace()
                new_id = append_case(workspace.datasets_dir / dest, values, root=workspace.root)
                st.success(f"Added as {ui.plain(new_id)} to datasets/{ui.plain(dest)}.")
            except PromptDeckError as exc:
                st.error(ui.plain(exc))


if ui.can_edit():
    review_panel()

st.subheader("Compare with another run")
same = [r for r in runs if r.id != run_id]
if not same:
    st.caption("Only one run so far: run the suite again later to see what changed.")
else:
    other_id = st.selectbox(
        "Earlier or later run",
        [r.id for r in same],
        key="res_other",
        format_func=lambda r: f"{by_id[r].name} · {r}" + run_by(by_id[r].author),
    )
    other = ui.run_view(
        "cells", lambda: load_cells(store, other_id), other_id, ui.run_version(store, other_id)
    )
    shared = sorted(set(other["variant"]) & set(variants)) if not other.empty else []
    if not shared:
        st.caption("That run has none of this run's variants.")
    else:
        name = st.selectbox("Variant", shared, key="res_other_variant")
        st.dataframe(run_changes(cells, other, name), hide_index=True, width="stretch")
