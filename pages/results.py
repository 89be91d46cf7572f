"""Results: is a variant better than the baseline, where, and can it ship?
Headlines with confidence intervals, gates, charts, drill-down with human review, exports."""

import json

import pandas as pd
import streamlit as st

from promptdeck import ui
from promptdeck.analysis import charts
from promptdeck.analysis.calibration import describe, run_agreement
from promptdeck.analysis.gates import evaluate_gates, overall_status
from promptdeck.analysis.report import cell_rows, html_report, markdown_summary, to_csv
from promptdeck.analysis.results import (
    ALL,
    case_scores,
    check_comparisons,
    comparison_frame,
    comparisons,
    load_cells,
    run_changes,
    run_report,
    score_distribution,
    variant_frame,
)
from promptdeck.analysis.textdiff import word_diff_html
from promptdeck.errors import PromptDeckError
from promptdeck.evals import demo
from promptdeck.evals.plan import EvalPlan
from promptdeck.model.pricing import format_cost
from promptdeck.model.registry import Registry
from promptdeck.workspace.datasets import append_case, find_datasets

ui.frame("Results", ":material/insights:")
store = ui.store()
jobs = ui.jobs()
runs = store.list_runs()


def start_demo(plan: EvalPlan, registry: Registry) -> None:
    run_id = demo.start_demo(plan, registry, store, jobs)
    st.session_state.ev_run = run_id  # the Evaluate page shows the same run, answer by answer
    st.query_params["run"] = run_id


def first_run() -> None:
    """No run yet: one click runs the demo suite, or, without one, where to start."""
    workspace = ui.workspace()
    if not demo.has_demo_suite(workspace):
        st.info(
            "No eval runs yet. Plan one on the Evaluate page: pick a suite or a dataset, the "
            "variants and a judge, and press **Run**; its results appear here. From a terminal: "
            "`python -m promptdeck run datasets/<name>.suite.yaml`."
        )
        st.page_link("pages/evaluate.py", label="Go to Evaluate", icon=":material/fact_check:")
        return
    registry = ui.registry_or_error()  # a broken providers.yaml is shown, and named, there
    try:
        if registry is None:
            raise PromptDeckError("Fix the provider configuration first.")
        plan = demo.demo_plan(workspace, model_path=registry.config("local").model_path)
    except PromptDeckError as exc:
        st.info("No eval runs yet.")
        st.warning(f"The demo eval cannot run here. {exc}")
        st.page_link("pages/evaluate.py", label="Go to Evaluate", icon=":material/fact_check:")
        return
    counts = plan.category_counts()
    st.info(
        f"No eval runs yet. See what an eval looks like: the demo suite compares "
        f"{len(plan.variants)} support prompts on {len(plan.cases)} tickets "
        f"({demo.ROWS_PER_CATEGORY} from each of {len(counts)} categories), and the embedded "
        "model judges every answer. About a minute, offline, no key.",
        icon=":material/science:",
    )
    st.button(
        "Run the demo eval",
        type="primary",
        icon=":material/play_arrow:",
        on_click=start_demo,
        args=(plan, registry),
    )
    st.caption("Or plan your own run on the Evaluate page.")


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
        st.button("Cancel", icon=":material/cancel:", on_click=job.cancel.set)
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
    cols = st.columns([3, 2, 1])
    run_id = cols[0].selectbox(
        "Run",
        list(by_id),
        list(by_id).index(run_id),
        key="res_run",
        # No status in the label: Streamlit 1.67 keeps showing a selected option's old label
        # after its text changes (checked in a browser), so "running" would outlive the run.
        format_func=lambda r: f"{by_id[r].name} · {r}",
    )
record = store.get_run(run_id)
local_judge = demo.is_local_judge(demo.run_judge_model(record.snapshot))
if (job := jobs.get(run_id)) is not None and job.running:
    if not present:
        st.subheader(f"Running: {record.name}")
        if local_judge:
            st.info(demo.LOCAL_JUDGE_NOTICE, icon=":material/info:")
    st.fragment(run_every=0.5)(progress_panel)(run_id)
    st.stop()
cells = load_cells(store, run_id)
if cells.empty:
    st.info(f"This run has no finished cells yet (status: {record.status}).")
    st.stop()
if record.status != "done" and not present:
    # "running" without a job of this server: another process runs it, or it was killed.
    state = "not finished (running elsewhere, or interrupted)"
    st.warning(
        f"This run is {state if record.status == 'running' else record.status}: "
        f"{len(cells)} of {record.total_cells} cells finished, "
        "and everything below is computed from those only.",
        icon=":material/warning:",
    )
variants = list(dict.fromkeys(cells["variant"]))
suite = record.snapshot.get("suite", {})
default_base = suite.get("baseline") if suite.get("baseline") in variants else variants[0]
baseline = default_base
if not present:
    baseline = cols[1].selectbox("Baseline", variants, variants.index(default_base), key="res_base")
    cols[2].write("")
    if cols[2].button("Present", icon=":material/slideshow:", help="Big headline, no controls"):
        st.query_params.update({"run": run_id, "present": "1"})
        st.rerun()
gates = suite.get("gates", [])
drops = [g["max_drop"] for g in gates if g.get("metric") == "judge_score" and "max_drop" in g]
items = comparisons(cells, baseline, threshold=min(drops, default=0.2))
table = comparison_frame(items)
overall = table[table["category"] == ALL] if not table.empty else table  # one variant: none
gate_results = evaluate_gates(cells, baseline, gates) if gates else []


def headline(big: bool) -> None:
    if overall.empty:
        st.warning("Only the baseline is in this run: nothing to compare.")
    for _, row in overall.iterrows():
        delta = (
            "–" if row["delta"] is None or row["delta"] != row["delta"] else f"{row['delta']:+.2f}"
        )
        colour = {"better": "green", "worse": "red"}.get(row["verdict"], "gray")
        size = "2.6rem" if big else "1.6rem"
        st.markdown(
            f"<div style='font-size:{size};line-height:1.2'><b>{row['variant']}</b> vs "
            f"{baseline}: <b>{delta}</b> judge score · "
            f"<span style='color:{colour}'>{row['verdict']}</span></div>",
            unsafe_allow_html=True,
        )
        st.caption(row["summary"])


def gates_banner() -> None:
    if not gate_results:
        st.caption("This run's suite declares no gates.")
        return
    status = overall_status(gate_results)
    text = (
        f"Gates: **{status}** ({sum(g.status == 'pass' for g in gate_results)} of "
        f"{len(gate_results)} pass)"
    )
    {"pass": st.success, "fail": st.error}.get(status, st.warning)(text)
    icon = {"pass": "✅", "fail": "❌"}
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "": icon.get(g.status, "⚠️"),
                    "gate": g.gate,
                    "variant": g.variant,
                    "status": g.status,
                    "observed": g.observed,
                    "why": g.reason,
                }
                for g in gate_results
            ]
        ),
        hide_index=True,
        width="stretch",
    )


if present:
    st.markdown(f"# {record.name}")
    headline(big=True)
    if local_judge:
        st.info(demo.LOCAL_JUDGE_NOTICE, icon=":material/info:")
    gates_banner()
    st.altair_chart(charts.delta_by_category(table), width="stretch")
    if st.button("Leave presentation mode"):
        del st.query_params["present"]
        st.rerun()
    st.stop()

headline(big=False)
if local_judge:
    st.info(demo.LOCAL_JUDGE_NOTICE, icon=":material/info:")
gates_banner()
with st.popover("Export for stakeholders", icon=":material/download:"):
    bundle = run_report(store, run_id, baseline)
    st.download_button(
        "HTML report (self-contained)",
        html_report(**bundle),
        f"promptdeck-{run_id}.html",
        "text/html",
    )
    st.download_button(
        "Markdown summary (pull request)",
        markdown_summary(**bundle),
        f"promptdeck-{run_id}.md",
        "text/markdown",
    )
    st.download_button(
        "CSV of every cell",
        to_csv(cell_rows(run_id, store.results(run_id), store.scores(run_id))),
        f"promptdeck-{run_id}.csv",
        "text/csv",
    )
calibration = run_agreement(
    record.snapshot.get("cases", []), store.scores(run_id), store.score_overrides(run_id)
)
if calibration is not None:
    st.info(describe(calibration), icon=":material/balance:")

checks = check_comparisons(cells, baseline)
if not checks.empty:
    with st.expander("Checks: pass rates against the baseline (exact McNemar test on flips)"):
        st.dataframe(checks, hide_index=True, width="stretch")
per_variant = variant_frame(cells)
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
    st.altair_chart(charts.score_distribution(score_distribution(cells)), width="stretch")
with tabs[3]:
    st.altair_chart(charts.latency_cost(per_variant), width="stretch")
with tabs[4]:
    st.altair_chart(charts.quality_vs_cost(per_variant), width="stretch")


def selected(event: object, name: str, field: str) -> str | None:
    """The value a chart click selected (Streamlit returns a list of selected points)."""
    try:
        points = event["selection"][name]  # type: ignore[index]
        return str(points[0][field]) if points else None
    except (KeyError, IndexError, TypeError):
        return None


st.subheader("Cases")
others = [v for v in variants if v != baseline] or variants
filters = st.columns([2, 2, 1, 1, 1])
chart_variant = selected(picked_variant, "variant_pick", "variant")
chart_category = selected(picked, "category_pick", "category")
variant = filters[0].selectbox(
    "Variant",
    others,
    others.index(chart_variant) if chart_variant in others else 0,
    key="res_variant",
)
categories = [ALL, *sorted(set(cells["category"]))]
category = filters[1].selectbox(
    "Category",
    categories,
    categories.index(chart_category) if chart_category in categories else 0,
    key="res_category",
)
regressions = filters[2].toggle("Regressions only", key="res_regress")
unscored_only = filters[3].toggle("Unscored", key="res_unscored")
errors_only = filters[4].toggle("Errors", key="res_errors")

scores = case_scores(cells).pivot(index=["row_id", "category"], columns="variant", values="value")
flaky = case_scores(cells).set_index(["row_id", "variant"])["flaky"]
failed = cells.groupby(["row_id", "variant"])["failed"].any()
cases = pd.DataFrame({"baseline": scores.get(baseline), "variant": scores.get(variant)})
cases["delta"] = cases["variant"] - cases["baseline"]
cases = cases.reset_index()
cases["flaky"] = [bool(flaky.get((r, variant), False)) for r in cases["row_id"]]
cases["error"] = [
    bool(failed.get((r, variant), False) or failed.get((r, baseline), False))
    for r in cases["row_id"]
]
if category != ALL:
    cases = cases[cases["category"] == category]
if regressions:
    cases = cases[cases["delta"] < 0]
if unscored_only:
    cases = cases[cases["variant"].isna() & ~cases["error"]]
if errors_only:
    cases = cases[cases["error"]]
cases = cases.sort_values("delta", na_position="last")
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
    st.info(f"This case has no answer from {' or '.join(missing)} in this run.")
    st.stop()
base_cell = case_cells[case_cells["variant"] == baseline].iloc[0]
case_input = next((c for c in record.snapshot.get("cases", []) if c["id"] == row_id), {})
with st.container(border=True):
    st.markdown(f"**Input** ({base_cell['category'] or 'no category'})")
    st.text(case_input.get("input", "") or "(no input column)")
    if case_input.get("expected"):
        st.caption(f"Reference: {case_input['expected']}")


def show_cell(cell: pd.Series, diff_against: str | None) -> None:  # type: ignore[type-arg]
    st.markdown(
        f"**{cell['variant']}**" + (f" · repeat {cell['repeat']}" if cell["repeat"] else "")
    )
    box = st.container(border=True, height=260)
    if cell["failed"]:
        box.error(cell["error"])
    elif diff_against is not None:
        box.markdown(word_diff_html(diff_against, cell["output"]), unsafe_allow_html=True)
    else:
        box.text(cell["output"])
    judge = cell["judge_score"]
    if cell["judge_reason"] is not None and cell["judge_reason"] == cell["judge_reason"]:
        mark = " (human override)" if cell["overridden"] else ""
        value = "unscored" if judge is None or judge != judge else f"{judge:g}"
        st.markdown(f"**Judge: {value}**{mark} — {cell['judge_reason']}")
    audit = judge_audit.get((cell["variant"], int(cell["repeat"])))
    if audit is not None:
        with st.expander("Audit the verdict: the judge's prompt and raw output"):
            st.caption(
                f"{audit['judge_model']} · {audit['latency_ms'] or 0:,.0f} ms · "
                f"{format_cost(audit['cost_usd'])}" + (" · cached" if audit["cached"] else "")
            )
            st.code(audit["raw"] or "", language=None, wrap_lines=True)
            for message in json.loads(audit["prompt_json"] or "{}").get("messages", []):
                st.markdown(f"**{message['role']}**")
                st.code(message["content"], language=None, wrap_lines=True)
    failed_checks = cell["checks_failed"] or ""
    st.caption(
        f"checks {cell['checks_passed']}/{cell['checks_total']}"
        + (f" · failed: {failed_checks}" if failed_checks else "")
        + f" · {cell['latency_ms'] or 0:,.0f} ms · "
        f"{format_cost(None if cell['cost_usd'] != cell['cost_usd'] else cell['cost_usd'])}"
    )


judge_audit = {
    (s["variant"], int(s["repeat"])): s
    for s in store.scores(run_id)
    if s["row_id"] == row_id and s["scorer"] == "judge"
}
left, right = st.columns(2)
for column, name in ((left, baseline), (right, variant)):
    with column:
        for _, cell in case_cells[case_cells["variant"] == name].iterrows():
            show_cell(cell, None if name == baseline else base_cell["output"])

target = case_cells[case_cells["variant"] == variant].iloc[0]
with st.form(f"review_{row_id}_{variant}"):
    st.markdown(f"**Review {variant}'s answer**")
    cols = st.columns([1, 1, 3])
    current = target["judge_score"] if target["judge_score"] == target["judge_score"] else None
    score = cols[0].number_input(
        "Your score", 1.0, 5.0, value=current, step=1.0, placeholder="keep the judge's"
    )
    thumbs = cols[1].radio("Thumbs", ["–", "👍", "👎"], horizontal=True)
    note = cols[2].text_input("Note", value=target["note"] or "")
    if st.form_submit_button("Save review"):
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
        values = {k: str(v) for k, v in case_input.items() if k != "id"}
        values.update({"note": why, "source": f"run {run_id}, {variant}"})
        try:
            new_id = append_case(ui.workspace().datasets_dir / dest, values)
            st.success(f"Added as {new_id} to datasets/{dest}.")
        except PromptDeckError as exc:
            st.error(str(exc))

st.subheader("Compare with another run")
same = [r for r in runs if r.id != run_id]
if not same:
    st.caption("Only one run so far: run the suite again later to see what changed.")
else:
    other_id = st.selectbox(
        "Earlier or later run",
        [r.id for r in same],
        key="res_other",
        format_func=lambda r: f"{by_id[r].name} · {r}",
    )
    other = load_cells(store, other_id)
    shared = sorted(set(other["variant"]) & set(variants)) if not other.empty else []
    if not shared:
        st.caption("That run has none of this run's variants.")
    else:
        name = st.selectbox("Variant", shared, key="res_other_variant")
        st.dataframe(run_changes(cells, other, name), hide_index=True, width="stretch")
