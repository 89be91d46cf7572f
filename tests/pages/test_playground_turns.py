"""Playground turns: thinking apart from the answer, tool steps, follow-ups in every column,
and a conversation saved as an eval case, against the real test server."""

import csv
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.helpers import shown
from tests.llm_server import LLMServer, Scenario
from tests.pages.test_playground import finish, open_playground

TOOLS_VARIANT = """model: fake/{model}
params: {{max_tokens: 80}}
system: You look orders up.
user: "Customer message: {{{{ input }}}}"
tools:
  - name: get_order
    description: Look up an order by its id
    parameters: {{type: object, properties: {{order_id: {{type: string}}}}, required: [order_id]}}
    mock: '{{"status": "shipped", "order": "{{{{ args.order_id }}}}"}}'
"""
THOUGHT = ["The customer ", "wants their ", "order status."]


def run_columns(at: AppTest, variants: list[str], text: str) -> None:
    at.multiselect(key="pg_variants").set_value(variants).run()
    at.text_area(key="pg_in_input").input(text).run()
    at.button[0].click().run()
    finish(at)
    assert not at.exception, at.exception


def answers(at: AppTest) -> list[str]:
    """The answer in each column's box (the current turn's)."""
    keys = [f"pg_out_{i}" for i in range(len(at.session_state["pg_run"].snapshot()))]
    return [at.get_by_key(key).markdown[0].value for key in keys]


def test_thinking_is_shown_apart_from_the_answer(workspace: Path, llm_server: LLMServer) -> None:
    llm_server.set_scenario("alpha", Scenario(thinking=THOUGHT))
    at = open_playground()
    run_columns(at, ["t/alpha", "t/beta"], "Where is my parcel?")
    [thinking] = [e for e in at.expander if e.label.startswith("Thinking")]
    assert "first thought after" in thinking.label
    assert shown(thinking.caption[0].value) == "".join(THOUGHT)
    assert answers(at) == ["Echo: Customer message: Where is my parcel?"] * 2
    assert not any("order status" in m.value for m in at.markdown if "Echo" in m.value)
    metrics = [m.value for m in at.markdown if "TTFT" in m.value]
    assert "first thought" in metrics[0] and "(first answer token)" in metrics[0]
    assert f"{len(THOUGHT)} thinking" in metrics[0]  # the server counts one per piece
    assert "first thought" not in metrics[1]  # beta did not think


def test_a_tool_step_shows_its_name_arguments_and_result(
    workspace: Path, llm_server: LLMServer
) -> None:
    (workspace / "prompts" / "t" / "tools.yaml").write_text(TOOLS_VARIANT.format(model="alpha"))
    llm_server.set_scenario("alpha", Scenario(tool_calls=[("get_order", '{"order_id": "A17"}')]))
    at = open_playground()
    run_columns(at, ["t/tools"], "Where is A17?")
    [step] = [e for e in at.expander if "get_order" in shown(e.label)]
    assert step.label == "Tool call: **get\\_order**"  # escaped: the model's text as written
    codes = [json.loads(c.value) for c in step.code]
    assert codes == [{"order_id": "A17"}, {"status": "shipped", "order": "A17"}]
    assert answers(at) == ['Echo: {"status": "shipped", "order": "A17"}']
    [metrics] = [m.value for m in at.markdown if "TTFT" in m.value]
    assert "2 model calls" in metrics and "attempts" not in metrics  # a tool round, no retry


def test_a_follow_up_goes_to_every_column_with_its_own_history(
    workspace: Path, llm_server: LLMServer
) -> None:
    at = open_playground()
    run_columns(at, ["t/alpha", "t/beta", "t/gamma"], "Where is my parcel?")
    at.chat_input(key="pg_follow_up").set_value("And when does it arrive?").run()
    finish(at)
    assert not at.exception, at.exception
    assert answers(at) == ["Echo: And when does it arrive?"] * 3
    turns = [shown(e.label) for e in at.expander if e.label.startswith("Turn 1")]
    assert turns == ["Turn 1 · Customer message: Where is my parcel?"] * 3
    assert sum("**Turn 2**" in m.value for m in at.markdown) == 3
    # Each column continued its own conversation: its system prompt, first turn, answer (the
    # last request of each model is its follow-up).
    sent = {r.model: r.body["messages"] for r in llm_server.requests}
    assert sorted(sent) == ["alpha", "beta", "gamma"]
    for model, messages in sent.items():
        assert [(m["role"], m["content"]) for m in messages] == [
            ("system", f"You are {model}."),
            ("user", "Customer message: Where is my parcel?"),
            ("assistant", "Echo: Customer message: Where is my parcel?"),
            ("user", "And when does it arrive?"),
        ]
    # Run again: a fresh conversation; the last one's two turns are earlier runs, the
    # follow-up kept with its inputs.
    at.button[0].click().run()
    finish(at)
    assert not [e for e in at.expander if e.label.startswith("Turn ")]
    assert answers(at) == ["Echo: Customer message: Where is my parcel?"] * 3
    earlier = at.selectbox(key="pg_history").options
    assert len(earlier) == 2
    at.selectbox(key="pg_history").select_index(0).run()
    assert "And when does it arrive?" in [t.value for t in at.text]


def test_a_conversation_is_saved_as_an_eval_case(workspace: Path, llm_server: LLMServer) -> None:
    at = open_playground()
    run_columns(at, ["t/alpha", "t/beta"], "Where is my parcel?")
    at.chat_input(key="pg_follow_up").set_value("Thanks! And the invoice?").run()
    finish(at)
    at.selectbox(key="pg_case_column").select_index(1).run()
    at.text_input(key="pg_case_note").input("follow-up about invoices").run()
    at.button(key="pg_case_save").click().run()
    assert not at.exception, at.exception
    assert any("to datasets/playground\\_conversations\\.csv" in s.value for s in at.success)
    with (workspace / "datasets" / "playground_conversations.csv").open() as f:
        [row] = list(csv.DictReader(f))
    assert row["input"] == "Thanks! And the invoice?"
    assert json.loads(row["messages"]) == [
        {"role": "user", "content": "Customer message: Where is my parcel?"},
        {"role": "assistant", "content": "Echo: Customer message: Where is my parcel?"},
    ]
    assert (row["note"], row["source"]) == ("follow-up about invoices", "playground")


def test_thinking_and_tool_calls_are_shown_as_written(
    workspace: Path, llm_server: LLMServer
) -> None:
    """The model's thinking and tool call are untrusted text: Markdown, HTML and an image
    link in them are shown as typed, never rendered or fetched."""
    (workspace / "prompts" / "t" / "tools.yaml").write_text(TOOLS_VARIANT.format(model="alpha"))
    thought = "<b>bold</b> **not bold** ![x](http://example.com/x.png)"
    name = "get_<i>order</i>"
    llm_server.set_scenario(
        "alpha", Scenario(thinking=[thought], tool_calls=[(name, '{"order_id": "<script>"}')])
    )
    at = open_playground()
    run_columns(at, ["t/tools"], "Where is A17?")
    [thinking] = [e for e in at.expander if e.label.startswith("Thinking")]
    rounds = shown(thinking.caption[0].value).replace("  \n", "\n")
    assert rounds == f"{thought}\n\n{thought}"  # it thought before each of its 2 calls
    assert "<b>" not in thinking.caption[0].value.replace("\\<b\\>", "")
    [step] = [e for e in at.expander if e.label.startswith("Tool call")]
    assert shown(step.label) == f"Tool call: **{name}**"
    assert json.loads(step.code[0].value) == {"order_id": "<script>"}
    [warning] = step.warning
    assert "there is no tool named 'get_<i>order</i>'" in shown(warning.value)
    assert "<i>" not in warning.value.replace("\\<i\\>", "")


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_an_uploaded_image_goes_with_the_prompt_and_a_text_only_model_says_so(
    workspace: Path, llm_server: LLMServer
) -> None:
    (workspace / "prompts" / "t" / "local.yaml").write_text(
        "model: local/smollm2\nuser: 'Customer message: {{ input }}'\n"
    )
    at = open_playground()
    at.file_uploader(key="pg_image").set_value(("receipt.png", PNG, "image/png")).run()
    run_columns(at, ["t/alpha", "t/local"], "What does this receipt say?")
    [request] = [r for r in llm_server.requests if r.model == "alpha"]
    parts = request.body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    views = at.session_state["pg_run"].snapshot()
    assert views[0].status == "done"
    assert views[1].status == "error"
    assert "text only" in views[1].note and "receipt.png" in views[1].note


def test_an_upload_that_is_not_an_image_is_said_and_nothing_is_sent(
    workspace: Path, llm_server: LLMServer
) -> None:
    at = open_playground()
    at.file_uploader(key="pg_image").set_value(("notes.png", b"hello", "image/png")).run()
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    at.text_area(key="pg_in_input").input("What is this?").run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    said = [shown(w.value) for w in at.warning]
    assert any("notes.png is not a PNG, JPEG, GIF or WebP image" in w for w in said), said
    assert llm_server.requests == []
