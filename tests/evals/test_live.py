from pathlib import Path

from promptdeck.evals.live import LiveRun, plan_columns
from promptdeck.store.sqlite import Store
from tests.helpers import server_registry, variant
from tests.llm_server import LLMServer, Scenario

WORDS = [f"w{i} " for i in range(20)]


def test_columns_stream_concurrently(llm_server: LLMServer, tmp_path: Path) -> None:
    for model in ("a", "b", "c"):
        llm_server.set_scenario(model, Scenario(tokens=WORDS, token_delay=0.02))
    registry = server_registry(llm_server)
    variants = [variant(f"t/{m}", f"fake/{m}") for m in ("a", "b", "c")]
    run = LiveRun(
        plan_columns(variants, {"input": "hi"}, registry), registry, Store(tmp_path / "s.sqlite")
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
    run = LiveRun(plan_columns(variants, {"input": "hi"}, registry), registry, store).start()
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
        plan_columns([variant("t/slow", "fake/slow")], {"input": "x"}, registry), registry, store
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
    run = LiveRun(plan_columns([checked], {"input": "hello"}, registry), registry, None).start()
    assert run.wait(10)
    [view] = run.snapshot()
    assert [c.passed for c in view.checks] == [True, False]
