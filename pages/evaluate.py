"""Evaluate: plan an eval (suite or dataset, sample, variants), run it in the background,
watch progress and the results grid fill; the run survives page switches and refreshes."""

from typing import Any

import pandas as pd
import streamlit as st

from promptdeck import ui
from promptdeck.analysis.calibration import describe, run_agreement
from promptdeck.analysis.cells import cell_rows
from promptdeck.analysis.needs import suite_needs
from promptdeck.errors import PromptDeckError
from promptdeck.evals.plan import EvalPlan, build_plan, estimate, graded
from promptdeck.evals.sequential import Budget
from promptdeck.evals.start import RunOptions, start_in_background, start_until_decided
from promptdeck.evals.suite import DEFAULT_RUBRIC, SampleSpec, Suite, find_suites, load_suite
from promptdeck.evals.timing import estimate_time
from promptdeck.model.pricing import format_cost
from promptdeck.scoring.confidence import Confidence, from_logprobs, sample_agreement
from promptdeck.scoring.judge import LOCAL_JUDGE_NOTICE, JudgeSpec
from promptdeck.scoring.scorers import check_label, pointwise_prompt
from promptdeck.store.rows import ResultRow, ScoreRow
from promptdeck.store.settings import Settings, load_settings
from promptdeck.workspace.datasets import find_datasets, load_dataset
from promptdeck.workspace.prompt_edit import baseline_of, default_selection
from promptdeck.workspace.prompts import render_messages

ui.frame("Evaluate")
st.title("Evaluate")

workspace = ui.workspace()
library = ui.prompt_library()
ui.show_prompt_errors(library)
registry = ui.registry_or_stop()
store = ui.store()
jobs = ui.jobs()
try:
    saved = load_settings(store)  # the defaults chosen on the Settings page
except PromptDeckError as exc:
    st.error(ui.plain(exc))
    saved = Settings()


def choose_suite() -> Suite | None:
    """The suite file picked, or one built here from a dataset; None when not ready."""
    suites = find_suites(workspace.datasets_dir)
    source = st.radio(
        "Start from",
        ["A suite file", "A dataset"],
        horizontal=True,
        index=0 if suites else 1,
        key="ev_source",
    )
    if source == "A suite file":
        if not suites:
            st.info("No `*.suite.yaml` in `datasets/` yet: start from a dataset instead.")
            return None
        path = st.selectbox("Suite", suites, format_func=lambda p: p.name, key="ev_suite")
        try:
            return load_suite(path)
        except PromptDeckError as exc:
            st.error(ui.plain(exc))
            return None
    datasets = find_datasets(workspace.datasets_dir)
    if not datasets:
        st.info("No dataset in `datasets/`: add a CSV, JSONL or YAML file with an `input` column.")
        return None
    path = st.selectbox("Dataset", datasets, format_func=lambda p: p.name, key="ev_dataset")
    names = sorted(library.variants)
    variants = st.multiselect(
        "Variants",
        names,
        key="ev_variants",
        default=default_selection(library),
    )
    if not variants:
        st.info("Pick the variants to compare.")
        return None
    chosen = baseline_of(library, variants)
    baseline = st.selectbox(
        "Baseline",
        variants,
        index=variants.index(chosen) if chosen in variants else 0,
        key="ev_baseline",
        help="Defaults to the variant tagged `baseline` (Prompts page: Mark as baseline).",
    )
    return Suite(path=None, dataset=path, variants=tuple(variants), baseline=baseline)


def sample_controls(suite: Suite) -> tuple[int | None, int, str | None, int] | None:
    """The sample's size, seed, stratum column and repeats; None when the dataset does not
    load (said here, and the run below stays on screen)."""
    try:
        dataset = load_dataset(suite.dataset)
    except PromptDeckError as exc:
        st.error(ui.plain(exc))
        return None
    cols = st.columns(4)
    n = cols[0].number_input(
        "Sample size (rows)",
        1,
        len(dataset.cases),
        min(suite.sample.n or 20, len(dataset.cases)),
        key=f"ev_n:{suite.dataset.name}",  # per dataset: a size clamped by another one stays there
    )
    seed = cols[1].number_input("Seed", 0, 10**9, suite.sample.seed, key="ev_seed")
    options = ["(none)", *[c for c in dataset.columns if c != "id"]]
    default = suite.sample.stratify if suite.sample.stratify in options else "(none)"
    stratify = cols[2].selectbox("Stratify by", options, options.index(default), key="ev_strat")
    repeats = cols[3].number_input("Repeats per cell", 1, 20, suite.repeats, key="ev_repeats")
    return int(n), int(seed), None if stratify == "(none)" else stratify, int(repeats)


def judge_controls(suite: Suite) -> JudgeSpec | None:
    """The judge, as the suite sets it, editable here: model, mode and the rubric text."""
    base = suite.judge or JudgeSpec(saved.judge_model, DEFAULT_RUBRIC)
    # A suite file's judge fields are its own: switching to a dataset shows the defaults.
    scope = f":{suite.path.name}" if suite.path else ""
    on = st.toggle(
        "Judge every answer",
        value=True,
        key=f"ev_judge_on{scope}",
        help="An LLM scores each answer against the rubric",
    )
    if not on:
        return None
    cols = st.columns([2, 2, 1])
    model = cols[0].text_input("Judge model", base.model, key=f"ev_judge_model{scope}")
    modes = ["pointwise", "pairwise"]
    mode = cols[1].radio(
        "Mode",
        modes,
        modes.index(base.mode),
        horizontal=True,
        key=f"ev_judge_mode{scope}",
        help="pairwise: each variant against the baseline, asked in both orders",
    )
    low, high = base.scale
    cols[2].markdown(f"Scale  \n**{low}–{high}**")
    rubric = st.text_area("Rubric", base.rubric, height=160, key=f"ev_rubric{scope}")
    if ui.is_demo_model(model):
        st.info(LOCAL_JUDGE_NOTICE, icon=":material/info:")
    return JudgeSpec(model, rubric, base.scale, mode)


def show_judge_prompt(plan: EvalPlan) -> None:
    judge = plan.suite.judge
    if judge is None or not plan.cases:
        return
    case, variant = plan.cases[0], plan.variants[0]
    messages = pointwise_prompt(
        judge,
        graded(case, render_messages(variant, case.values)),
        "(the variant's answer goes here)",
        local=registry.is_local(judge.model),
    )
    with st.expander("The judge's exact prompt, for the first sampled row"):
        for m in messages:
            st.markdown(f"**{ui.plain(m.role)}**")
            st.code(m.content, language=None, wrap_lines=True)


def show_plan(plan: EvalPlan, concurrency: int) -> None:
    models = {v.model for v in plan.variants} | (
        {plan.suite.judge.model} if plan.suite.judge else set()
    )
    latency = {m: store.typical_latency_ms(m) for m in models}
    est = estimate(plan, registry.prices)
    took = estimate_time(store, plan, concurrency, latency, est.judge_calls)
    cols = st.columns(4)
    cols[0].metric("Rows", len(plan.cases))
    tools = est.calls > est.answers
    cols[1].metric(
        "Model calls",
        f"≤ {est.calls + est.judge_calls}" if tools else est.calls + est.judge_calls,
        help=f"{est.answers} answers + {est.judge_calls} judge verdicts"
        + (f"; with tool rounds up to {est.calls} calls for the answers" if tools else ""),
    )
    cost = "unknown" if est.cost_usd is None else f"≤ {format_cost(est.cost_usd)}"
    cols[2].metric(
        "Cost",
        cost,
        help="upper bound: every call using its max_tokens"
        + ("; what the tools' mocks return is not counted" if est.tool_results_uncounted else "")
        + (f"; no price for {', '.join(est.unpriced_models)}" if est.unpriced_models else ""),
    )
    if took is None:
        when, how = "no history yet", "No call of these models has been timed here yet."
    elif took.runs:
        when = took.text()
        how = (
            f"Measured: seconds per cell of the last {took.runs} finished run(s) of this kind "
            f"on this machine (same models, max_tokens, judge, {concurrency} in flight), "
            "slowest and fastest half, times the cells planned."
        )
    else:
        when = took.text()
        how = (
            "Rough: the median single-call latency of each model, divided by the calls in "
            "flight. No finished run of this kind yet; the live ETA corrects it."
        )
    cols[3].metric("Time", when, help=how)
    counts = pd.DataFrame(plan.category_counts().items(), columns=["category", "rows"])
    st.dataframe(counts.set_index("category").T, width="stretch")
    for need in suite_needs(store, plan.suite.to_dict()):
        enough = need.rows is not None and len(plan.cases) >= need.rows
        (st.caption if enough else st.info)(ui.plain(need.advice(len(plan.cases))))


def growth_controls(plan: EvalPlan) -> Budget | None:
    """Run until decided: the option and its budget (None: a fixed sample)."""
    if not plan.suite.gates:
        return None
    on = st.toggle(
        "Run until the gates are decided",
        key="ev_grow",
        help="Adds rows in seeded, stratified batches and stops as soon as every gate is "
        "decided (with intervals that stay valid however often they are looked at), or when "
        "the budget is spent. The sample size above is not used then.",
    )
    if not on:
        return None
    cols = st.columns(3)
    total = plan.dataset.rows
    max_rows = cols[0].number_input("Row budget", 1, total, total, key="ev_grow_rows")
    max_cost = cols[1].number_input(
        "Cost budget (USD)", 0.0, None, None, key="ev_grow_cost", placeholder="none"
    )
    batch = cols[2].number_input("Rows per look", 1, total, min(10, total), key="ev_grow_batch")
    return Budget(int(max_rows), None if max_cost is None else float(max_cost), int(batch))


def start(plan: EvalPlan, concurrency: int, budget: Budget | None) -> None:
    """Start the run in the background (or resume the unfinished run of the same plan), or
    a run that grows until its gates are decided."""
    ui.require_editor("run evals")
    options = RunOptions(concurrency=concurrency, use_cache=saved.use_cache)
    if budget is not None:
        job = start_until_decided(registry, store, jobs, plan, options, budget)
    else:
        job = start_in_background(registry, store, jobs, plan, options)
    st.session_state.ev_run = job.run_id
    st.query_params["run"] = job.run_id


run_id = st.query_params.get("run") or st.session_state.get("ev_run")
if run_id:  # keep the run in the URL, so a refresh or a shared link reattaches to it
    st.session_state.ev_run = st.query_params["run"] = run_id


def plan_panel() -> None:
    """Plan a run and start it: editors only (a viewer is told where results are)."""
    if not ui.can_edit():
        st.info(
            "Planning and running evals is for editors: you are a viewer of this workspace. A "
            "run's answers show here when its link has `?run=`; its results are on the Results "
            "page.",
            icon=":material/lock:",
        )
        st.page_link("pages/results.py", label="Open Results", icon=":material/insights:")
        return
    with st.expander("Plan a new run", expanded=run_id is None):
        suite = choose_suite()
        sampling = sample_controls(suite) if suite is not None else None
        if suite is not None and sampling is not None:
            n, seed, stratify, repeats = sampling
            suite = Suite(
                suite.path,
                suite.dataset,
                suite.variants,
                SampleSpec(n=n, stratify=stratify, seed=seed, floor=suite.sample.floor),
                suite.baseline,
                repeats,
                judge_controls(suite),
                suite.gates,
            )
            concurrency = st.slider(
                "Calls in flight per provider", 1, 32, saved.concurrency, key="ev_conc"
            )
            try:
                plan = build_plan(suite, library)
            except PromptDeckError as exc:
                st.error(ui.plain(exc))
            else:
                show_plan(plan, concurrency)
                show_judge_prompt(plan)
                budget = growth_controls(plan)
                st.button(
                    "Run",
                    type="primary",
                    icon=":material/play_arrow:",
                    on_click=start,
                    args=(plan, concurrency, budget),
                )


plan_panel()


def progress_panel(run_id: str) -> None:
    try:
        record = store.get_run(run_id)
    except PromptDeckError as exc:
        st.warning(ui.plain(exc))
        return
    job = jobs.get(run_id)
    running = job is not None and job.running
    results = store.results(run_id)
    st.subheader(f"Run {record.id} · {ui.plain(record.name)}")
    done, total = len(results), record.total_cells
    errors = sum(r["error"] is not None for r in results)
    p = job.progress if job else None
    detail = f"{done}/{total} cells · {errors} errors"
    if p is not None:
        eta = f" · ETA {p.eta_s:,.0f} s" if running and p.eta_s is not None else ""
        spend = format_cost(p.spend_usd) + (" + unknown" if p.unpriced else "")
        detail += f" · {p.cached} cached · {p.elapsed_s:,.0f} s{eta} · spend {spend}"
    st.progress(done / total if total else 1.0, text=detail)
    if job is not None and running:
        ui.cancel_button(job)
    elif record.status != "done":
        why = ui.plain(job.error) if job and job.error else f"status: {record.status}"
        st.warning(
            f"This run did not finish ({why}). Plan the same run above and press Run "
            "to start again, or resume it from the command line: "
            f"`python -m promptdeck run <suite>` resumes unfinished runs."
        )
    else:
        st.success(f"Done: {total} cells, {errors} errors.")
        st.page_link(
            "pages/results.py",
            label="Open this run in Results",
            icon=":material/insights:",
            query_params={"run": run_id},
        )
    results_grid(run_id, results)
    if errors:
        with st.expander(f"Errors ({errors})", expanded=errors <= 5):
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "row": r["row_id"],
                            "variant": r["variant"],
                            "kind": r["error_kind"],
                            "error": r["error"],
                        }
                        for r in results
                        if r["error"]
                    ]
                ),
                hide_index=True,
                width="stretch",
            )
    if live and not running:
        st.rerun()  # the run just ended: redraw the page once, and stop polling


def results_grid(run_id: str, results: list[ResultRow]) -> None:
    if not results:
        st.caption("Waiting for the first cell…")
        return
    scores = store.scores(run_id)
    frame = pd.DataFrame(cell_rows(run_id, results, scores))
    frame["answer"] = [
        f"⚠️ {e}" if e else o for o, e in zip(frame["output"], frame["error"], strict=True)
    ]
    frame["judge"] = [
        _verdict(s, r) for s, r in zip(frame["judge_score"], frame["judge_reason"], strict=True)
    ]
    frame["checks"] = [
        f"{p}/{t}" if t else ""
        for p, t in zip(frame["checks_passed"], frame["checks_total"], strict=True)
    ]
    frame["tools"] = [ui.tool_marker(calls) for calls in frame["tool_calls"]]
    shown = ["answer", "judge", "checks"] + (["tools"] if frame["tools"].any() else [])
    wide = frame.pivot_table(
        index=["row_id", "category", "repeat"],
        columns="variant",
        values=shown,
        aggfunc="first",
    )
    wide.columns = [
        f"{variant} · {what}" if what != "answer" else variant for what, variant in wide.columns
    ]
    wide = wide[sorted(wide.columns)].fillna("…").reset_index()  # …: not answered yet
    if frame["repeat"].max() == 0:
        wide = wide.drop(columns="repeat")
    st.dataframe(wide, hide_index=True, width="stretch", height=min(500, 38 + 35 * len(wide)))
    calibration = run_agreement(
        store.get_run(run_id).snapshot.get("cases", []), scores, store.score_overrides(run_id)
    )
    if calibration is not None:
        st.info(describe(calibration), icon=":material/balance:")
    cell_details(frame, scores)


def cell_confidence(frame: pd.DataFrame, cell: "pd.Series[Any]") -> Confidence | None:
    """Token logprobs where the provider gave them, else agreement across repeats."""
    value = cell["confidence"]
    if isinstance(value, int | float) and value == value:  # not None, not NaN
        return from_logprobs(float(value))
    same = frame[(frame["row_id"] == cell["row_id"]) & (frame["variant"] == cell["variant"])]
    scores = [None if s != s else float(s) for s in same["judge_score"]]
    return sample_agreement(list(same["output"]), scores)


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _verdict(score: Any, reason: Any) -> str:
    if pd.isna(reason):  # no judge
        return ""
    return "unscored" if pd.isna(score) else f"{float(score):g}"


def cell_details(frame: pd.DataFrame, scores: list[ScoreRow]) -> None:
    rows = sorted(frame["row_id"].unique())
    row = st.selectbox(
        "Look at one case",
        rows,
        key="ev_detail_row",
        index=None,
        placeholder="Pick a row to see every answer, verdict and check",
    )
    if row is None:
        return
    mine = frame[frame["row_id"] == row]
    for column, (_, cell) in zip(st.columns(len(mine)), mine.iterrows(), strict=True):
        with column:
            repeat = f" · repeat {cell['repeat']}" if cell["repeat"] else ""
            st.markdown(f"**{ui.plain(cell['variant'])}**{repeat}")
            ui.show_tool_calls(cell["tool_calls"])
            ui.show_thinking(cell["thinking"] or "", _number(cell["thinking_ms"]))
            box = st.container(border=True, height=220)
            box.markdown(ui.answer_markdown(str(cell["answer"])))
            verdict = _verdict(cell["judge_score"], cell["judge_reason"])
            if verdict:
                st.markdown(f"**Judge: {verdict}** — {ui.plain(cell['judge_reason'])}")
            key = (row, cell["variant"], cell["repeat"])
            for s in scores:
                label = check_label(s["scorer"])
                if label is not None and (s["row_id"], s["variant"], s["repeat"]) == key:
                    mark = "✅ " if s["passed"] else "❌ "
                    st.caption(f"{mark}{ui.plain(label)}: {ui.plain(s['reason'])}")
            confidence = cell_confidence(frame, cell)
            if confidence is not None:
                st.caption(f"🎯 {confidence.badge}")
            extras = " · cached" if cell["cached"] else ""
            extras += " · fallback model" if cell["fallback_used"] else ""
            cost = format_cost(None if cell["cost_usd"] != cell["cost_usd"] else cell["cost_usd"])
            latency = cell["latency_ms"] if cell["latency_ms"] == cell["latency_ms"] else 0
            st.caption(
                f"{latency:,.0f} ms · {cell['output_tokens'] or 0:.0f} tokens · {cost}{extras}"
            )


if run_id:
    live = (job := jobs.get(run_id)) is not None and job.running
    st.fragment(run_every=0.5 if live else None)(progress_panel)(run_id)
elif not library.variants:
    st.info("Add prompt variants under `prompts/<task>/` first.")
