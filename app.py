"""Home: what is configured, the prompt tasks found, a one-minute start, recent calls."""

import pandas as pd
import streamlit as st

from promptdeck import ui
from promptdeck.errors import PromptDeckError
from promptdeck.evals import demo
from promptdeck.model.pricing import format_cost

ui.frame("Home")
st.title("PromptDeck")
st.caption("Edit prompt variants, stream them side by side, and measure every answer.")

library = ui.prompt_library()
registry = ui.registry_or_error()
ready, local_text = ui.local_status()

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("One-minute start")
    st.markdown(
        "1. **Playground**: three variants of the demo support prompt are selected. Type a "
        "customer message (or fill one from `datasets/`) and press **Run**: all answers "
        "stream at once, each with time to first token, latency, tokens, cost and checks.\n"
        "2. **Evaluate**: pick `support_tickets.suite.yaml`, a sample of 20, press **Run**: "
        "every answer is judged against the rubric while you watch.\n"
        "3. **Results**: is a variant better than production, where, and do the gates pass? "
        "Drill into a case, correct the judge, export a report.\n"
        "4. **Prompts**: edit a variant (the preview shows it rendered with a real ticket), "
        "save it back to its YAML file, and go again. For real decisions, connect a stronger "
        "model: set `OPENAI_API_KEY` and use `openai/gpt-4o-mini` (test it in **Settings**)."
    )
    links = st.columns(4)
    for column, (path, label, icon) in zip(links, ui.PAGES[1:5], strict=True):
        column.page_link(path, label=label, icon=icon)
with right:
    st.subheader("Embedded model")
    if ready:
        st.success(local_text, icon=":material/memory:")
    else:
        st.warning(local_text, icon=":material/memory:")
    store = ui.store()
    where = "in the team's PostgreSQL database" if store.engine == "postgresql" else "in"
    st.caption(f"Runs, reviews and history are kept {where} {ui.code(store.location)}.")

st.subheader("Prompt tasks")
ui.show_prompt_errors(library)
if library.variants:
    tasks = pd.DataFrame(
        [
            {
                "task": v.name.split("/")[0],
                "variant": v.name.split("/")[1],
                "model": v.model,
                "tags": ", ".join(v.tags),
                "description": v.description,
            }
            for v in library.variants.values()
        ]
    )
    st.dataframe(tasks, hide_index=True, width="stretch")
else:
    st.info(
        "No prompt variants yet: create one on the Prompts page, or add a YAML file under "
        "`prompts/<task>/` (see README)."
    )

if registry is not None:
    st.subheader("Providers")
    editor = ui.can_edit()  # a viewer sees no key, not even masked
    statuses = pd.DataFrame(
        [
            {
                "provider": s.name,
                "what": s.label,
                "kind": s.kind,
                "base URL": s.base_url,  # masked by the registry: never a user:password@
                "key variable": s.key_env or "",
                "key": s.key_display,
                "key goes to": s.key_goes_to,
                "server": s.server or "–",
                "ready": s.ready,
            }
            for s in registry.statuses()
        ]
    )
    if not editor:
        statuses = statuses.drop(columns=["key variable", "key"])
    st.dataframe(statuses, hide_index=True, width="stretch")
    st.caption(
        "Ready: its key is set (or it needs none) and, for a server on this machine, something "
        "listens on its port. Whether the model answers: test it in Settings."
    )
    st.page_link(
        "pages/settings.py",
        label="Test a connection, choose the default judge, the embedded model file: Settings",
        icon=":material/settings:",
    )

runs = ui.store().list_runs(8)
st.subheader("Recent eval runs")
if runs:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run": r.id,
                    "suite": r.name,
                    "status": r.status,
                    "cells": r.total_cells,
                    "started": r.created[:19].replace("T", " "),
                    "run by": ui.who(r.author),
                }
                for r in runs
            ]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    try:  # the same one click as on the Results page, which then shows the run's progress
        demo_plan = (
            demo.demo_plan(ui.workspace(), registry)
            if registry is not None and demo.has_demo_suite(ui.workspace())
            else None
        )
    except PromptDeckError:
        demo_plan = None  # the Results page says why
    if demo_plan is not None and registry is not None and ui.can_edit():
        st.caption(
            f"No eval run yet. The demo eval compares {len(demo_plan.variants)} support prompts "
            f"on {len(demo_plan.cases)} tickets on the embedded model, judge included."
        )
        if st.button("Run the demo eval", type="primary", icon=":material/play_arrow:"):
            ui.require_editor("run evals")
            job = demo.start_demo(demo_plan, registry, ui.store(), ui.jobs())
            st.session_state.ev_run = job.run_id
            st.switch_page("pages/results.py", query_params={"run": job.run_id})
    else:
        st.caption("No eval run yet: plan one on the Evaluate page.")

calls = ui.store().recent_calls(10)
st.subheader("Recent calls")
if calls:
    table = pd.DataFrame(
        [
            {
                "when": c["created"][:19].replace("T", " "),
                "variant": c["variant"],
                "model": c["model"],
                "TTFT": c["ttft_ms"],
                "latency": c["latency_ms"],
                "output tokens": c["output_tokens"],
                "cost": format_cost(c["cost_usd"]),
                "error": c["error_kind"] or "",
                "thumbs": {1: "👍", -1: "👎"}.get(c["thumbs"] or 0, ""),
            }
            for c in calls
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "TTFT": st.column_config.NumberColumn(format="%.0f ms"),
            "latency": st.column_config.NumberColumn(format="%.0f ms"),
        },
    )
else:
    st.caption("No calls yet: every Playground answer is recorded here with its timings.")
