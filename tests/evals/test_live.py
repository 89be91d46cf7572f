import socket
from pathlib import Path

import pytest

from promptdeck.evals.live import LiveRun, plan_columns
from promptdeck.evals.plan import Cell
from promptdeck.evals.runner import Runner
from promptdeck.model.http import run_with_client
from promptdeck.model.registry import ProviderConfig, Registry
from promptdeck.store.db import Store
from promptdeck.workspace.datasets import Case
from tests.helpers import server_registry, variant
from tests.llm_server import LLMServer, Scenario

WORDS = [f"w{i} " for i in range(20)]


def test_columns_stream_concurrently(llm_server: LLMServer, tmp_path: Path) -> None:
    for model in ("a", "b", "c"):
        llm_server.set_scenario(model, Scenario(tokens=WORDS, token_delay=0.02))
    registry = server_registry(llm_server)
    variants = [variant(f"t/{m}", f"fake/{m}") for m in ("a", "b", "c")]
    run = LiveRun(
        plan_columns(variants, {"input": "hi"}), registry, Store(tmp_path / "s.sqlite")
    ).start()
    seen_all_streaming = False
    while not run.wait(0.01):
        views = run.snapshot()
        if all(v.status == "streaming" and v.text for v in views):
            seen_all_streaming = True  # every column had text before any finished
    views = run.snapshot()
    assert llm_server.max_in_flight == 3
    assert seen_all_streaming
    assert [v.status for v in views] == ["done"] * 3
    assert all(v.text == "".join(WORDS) for v in views)
    assert all(v.call_id is not None for v in views)


def test_an_error_stays_in_its_column(llm_server: LLMServer, tmp_path: Path) -> None:
    llm_server.set_scenario("bad", Scenario(fail_statuses=[401]))
    registry = server_registry(llm_server)
    variants = [
        variant("t/good", "fake/good"),
        variant("t/bad", "fake/bad"),
        variant("t/vars", "fake/good", user="{{ input }} {{ customer }}"),
    ]
    store = Store(tmp_path / "s.sqlite")
    run = LiveRun(plan_columns(variants, {"input": "hi"}), registry, store).start()
    assert run.wait(10)
    good, bad, missing = run.snapshot()
    assert (good.status, good.text) == ("done", "Echo: hi")
    assert bad.status == "error" and "refused the API key (HTTP 401)" in bad.note
    assert missing.status == "error" and "'customer'" in missing.note
    assert missing.call_id is None
    assert len(store.recent_calls()) == 2  # the column that never ran made no call


def test_stop_keeps_what_arrived(llm_server: LLMServer, tmp_path: Path) -> None:
    llm_server.set_scenario("slow", Scenario(tokens=WORDS, token_delay=0.2))
    registry = server_registry(llm_server)
    store = Store(tmp_path / "s.sqlite")
    run = LiveRun(
        plan_columns([variant("t/slow", "fake/slow")], {"input": "x"}), registry, store
    ).start()
    while not run.snapshot()[0].text.startswith("w0 w1"):
        assert not run.wait(0.01)
    run.stop()
    assert run.wait(5)
    [view] = run.snapshot()
    assert view.status == "stopped"
    assert view.text.startswith("w0 w1") and len(view.text) < len("".join(WORDS))
    assert view.result is not None and view.result.ttft_ms is not None
    [row] = store.recent_calls()
    assert (row["output"], row["error_kind"]) == (view.text, "stopped")


def test_checks_run_on_the_finished_answer(llm_server: LLMServer) -> None:
    registry = server_registry(llm_server)
    checked = variant(
        "t/c",
        "fake/x",
        checks=[{"type": "contains", "value": "Echo"}, {"type": "max_chars", "value": 3}],
    )
    run = LiveRun(plan_columns([checked], {"input": "hello"}), registry, None).start()
    assert run.wait(10)
    [view] = run.snapshot()
    assert [c.passed for c in view.checks] == [True, False]


def closed_port_registry(llm_server: LLMServer) -> Registry:
    """The test server's providers plus `down`, an OpenAI-compatible URL nobody listens on."""
    registry = server_registry(llm_server)
    with socket.socket() as s:  # bound, then closed: connecting is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry.configs["down"] = ProviderConfig(
        "down", "openai", f"http://127.0.0.1:{port}/v1", requires_key=False
    )
    return registry


@pytest.mark.parametrize(
    ("primary", "why"),
    [("fake/bad", "refused the API key (HTTP 401)"), ("down/m", "could not connect")],
    ids=["401", "connection-refused"],
)
def test_a_failing_primary_falls_back_exactly_as_an_eval_cell(
    llm_server: LLMServer, tmp_path: Path, primary: str, why: str
) -> None:
    llm_server.set_scenario("bad", Scenario(fail_statuses=[401] * 10))
    registry = closed_port_registry(llm_server)
    store = Store(tmp_path / "s.sqlite")
    guarded = variant("t/guarded", primary, fallback="fake/good")
    run = LiveRun(plan_columns([guarded], {"input": "hi"}), registry, store).start()
    assert run.wait(30)
    [view] = run.snapshot()
    assert (view.status, view.text, view.model_ref) == ("done", "Echo: hi", "fake/good")
    assert view.fallback_from == primary
    assert view.note.startswith("Answered by the fallback fake/good: ") and why in view.note
    [row] = store.recent_calls()
    assert (row["model"], row["fallback_used"], row["output"]) == ("fake/good", 1, "Echo: hi")
    # The same variant as an eval cell: the same answer, model and mark.
    cell = run_with_client(
        Runner(registry, store, use_cache=False).run_cell(
            Cell(Case("r1", {"input": "hi"}), guarded)
        )
    )
    assert (cell.result.text, cell.result.model_ref, cell.fallback_used) == (
        view.text, view.model_ref, True,
    )  # fmt: skip


def test_when_the_fallback_fails_too_the_column_says_both(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    llm_server.set_scenario("bad", Scenario(fail_statuses=[401] * 10))
    registry = closed_port_registry(llm_server)
    guarded = variant("t/guarded", "fake/bad", fallback="down/m")
    run = LiveRun(plan_columns([guarded], {"input": "hi"}), registry, None).start()
    assert run.wait(30)
    [view] = run.snapshot()
    assert (view.status, view.model_ref, view.fallback_from) == ("error", "fake/bad", None)
    assert "HTTP 401" in view.note and "the fallback down/m failed too" in view.note
