"""Tools, thinking, images and structured output through the real providers and the real
wire formats (tests/llm_server.py): OpenAI, Azure and Anthropic."""

from __future__ import annotations

import json
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from promptdeck.model.anthropic import AnthropicProvider
from promptdeck.model.call import stream_call
from promptdeck.model.http import run_with_client
from promptdeck.model.openai_compat import AzureProvider, OpenAIProvider
from promptdeck.model.pricing import PriceTable
from promptdeck.model.types import (
    CallResult,
    ChatRequest,
    Image,
    Message,
    Provider,
    Thinking,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from tests.llm_server import (
    LLMServer,
    Scenario,
    collect,
    conversation_error,
    schema_value,
    split_pieces,
    thinking_signature,
)

APIS = ["openai", "azure", "anthropic"]
KEY = "sk-test-0123456789"  # long enough to be masked only where it appears
MODEL = "m"  # the model on every route (Azure: the deployment)
WEATHER = Tool(
    "get_weather",
    "The current weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
)
CLOCK = Tool(
    "get_time",
    "The time in a zone.",
    {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
)
ASK = Message("user", "Paris weather today?")
PNG = Image("image/png", "iVBORw0KGgo=", source="cat.png")
VERDICT = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string"},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "label": {"enum": ["good", "bad"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "ok": {"type": "boolean"},
    },
    "required": ["reasoning", "score", "label", "tags", "ok"],
    "additionalProperties": False,
}


def provider(kind: str, server: LLMServer) -> Provider:
    if kind == "openai":
        return OpenAIProvider("openai", server.openai_url, api_key=KEY)
    if kind == "azure":
        return AzureProvider("azure", server.url, api_version="2024-10-21", api_key=KEY)
    return AnthropicProvider("anthropic", server.url, api_key=KEY)


def call(kind: str, server: LLMServer, request: ChatRequest) -> CallResult:
    return run_with_client(
        stream_call(
            provider(kind, server),
            request,
            model_ref=f"{kind}/{MODEL}",
            prices=PriceTable({}),
            max_retries=0,
        )
    )


def ask(*messages: Message, tools: tuple[Tool, ...] = (WEATHER,), **params: Any) -> ChatRequest:
    return ChatRequest(MODEL, messages or (ASK,), {"max_tokens": 200, **params}, tools)


def answered(first: CallResult, result: str) -> tuple[Message, ...]:
    """The conversation after the model's tool calls, each answered with `result`."""
    calls = Message(
        "assistant",
        first.text,
        tool_calls=first.tool_calls,
        thinking=first.thinking,
        signature=first.signature,
    )
    results = tuple(
        Message("tool", result, tool_call_id=c.id, name=c.name) for c in first.tool_calls
    )
    return (ASK, calls, *results)


# --- tool calls ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", APIS)
def test_a_tool_call_is_assembled_with_id_name_and_arguments(
    llm_server: LLMServer, kind: str
) -> None:
    result = call(kind, llm_server, ask())
    assert result.ok, result.error
    [tool_call] = result.tool_calls
    assert tool_call.id.startswith("toolu_" if kind == "anthropic" else "call_")
    assert tool_call.name == "get_weather"
    # Built from the schema's required properties: a word of the user's message.
    assert json.loads(tool_call.arguments) == {"city": "Paris"}
    assert result.text == ""
    assert result.ttft_ms is not None  # a tool call is the answer's first token


@pytest.mark.parametrize("kind", APIS)
def test_tool_call_arguments_stream_in_pieces_after_the_id_and_name(
    llm_server: LLMServer, kind: str
) -> None:
    chunks = collect(provider(kind, llm_server), ask()).chunks
    deltas = [c for c in chunks if isinstance(c, ToolCallDelta)]
    first, *rest = deltas
    assert first.id is not None and first.name == "get_weather" and first.arguments == ""
    pieces = [d.arguments for d in rest if d.arguments]
    assert len(pieces) >= 3
    assert all(d.id is None and d.name is None for d in rest)
    assert json.loads("".join(pieces)) == {"city": "Paris"}
    assert not [c for c in chunks if isinstance(c, str)]  # no text instead of the calls


@pytest.mark.parametrize("kind", APIS)
def test_scenario_tool_calls_come_in_order_with_distinct_ids(
    llm_server: LLMServer, kind: str
) -> None:
    calls = [("get_weather", '{"city": "Oslo"}'), ("get_time", '{"zone": "CET"}')]
    llm_server.set_scenario(MODEL, Scenario(tool_calls=calls))
    result = call(kind, llm_server, ask(tools=(WEATHER, CLOCK)))
    assert [(c.name, c.arguments) for c in result.tool_calls] == calls
    assert len({c.id for c in result.tool_calls}) == 2


@pytest.mark.parametrize("kind", APIS)
def test_the_second_round_echoes_the_tool_result(llm_server: LLMServer, kind: str) -> None:
    first = call(kind, llm_server, ask())
    second = call(kind, llm_server, ask(*answered(first, "Sunny, 21 degrees")))
    assert second.ok, second.error
    assert second.tool_calls == ()
    assert second.text == "Echo: Sunny, 21 degrees"
    # The cell keeps its name across rounds: a turn of tool results is not a user message.
    assert llm_server.requests[-1].message == ASK.content


@pytest.mark.parametrize("kind", APIS)
def test_a_model_that_never_stops_calling_tools(llm_server: LLMServer, kind: str) -> None:
    llm_server.set_scenario(MODEL, Scenario(tool_rounds=99))
    conversation = [ASK]
    ids = []
    for round_ in range(3):
        result = call(kind, llm_server, ask(*conversation))
        assert [c.name for c in result.tool_calls] == ["get_weather"], round_
        ids += [c.id for c in result.tool_calls]
        conversation += [
            Message("assistant", "", tool_calls=result.tool_calls),
            *(Message("tool", f"result {round_}", tool_call_id=c.id) for c in result.tool_calls),
        ]
    assert len(set(ids)) == 3  # every round's call has its own id


@pytest.mark.parametrize("kind", APIS)
def test_tool_choice_none_and_no_tools_get_text(llm_server: LLMServer, kind: str) -> None:
    assert call(kind, llm_server, ask(tool_choice="none")).text == "Echo: Paris weather today?"
    without = call(kind, llm_server, ask(tools=(), tool_choice="required"))
    assert (without.text, without.tool_calls) == ("Echo: Paris weather today?", ())
    assert "tool_choice" not in llm_server.requests[-1].body  # refused without tools


@pytest.mark.parametrize("kind", APIS)
def test_a_named_tool_choice_calls_that_tool(llm_server: LLMServer, kind: str) -> None:
    forced = {"type": "function", "function": {"name": "get_time"}}
    result = call(kind, llm_server, ask(tools=(WEATHER, CLOCK), tool_choice=forced))
    assert [(c.name, json.loads(c.arguments)) for c in result.tool_calls] == [
        ("get_time", {"zone": "Paris"})
    ]


def test_anthropic_tool_without_input_gets_empty_object(llm_server: LLMServer) -> None:
    # The API streams no input_json_delta text for a tool without parameters.
    llm_server.set_scenario(MODEL, Scenario(tool_calls=[("get_weather", "")]))
    result = call("anthropic", llm_server, ask())
    assert [c.arguments for c in result.tool_calls] == ["{}"]


# --- what is sent --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai", "azure"])
def test_openai_body_carries_tools_calls_results_and_images(
    llm_server: LLMServer, kind: str
) -> None:
    calls = (ToolCall("call_1", "get_weather", '{"city": "Paris"}'), ToolCall("call_2", "x", "{}"))
    request = ask(
        Message("system", "Be brief."),
        Message("user", "What is this?", images=(PNG,)),
        Message("assistant", "", tool_calls=calls, thinking="hmm", signature="s"),
        Message("tool", "Sunny", tool_call_id="call_1", name="get_weather"),
        Message("tool", "done", tool_call_id="call_2", name="x"),
        Message("assistant", "It is sunny."),
        Message("user", "Thanks"),
        tool_choice="required",
        reasoning_effort="low",
    )
    assert call(kind, llm_server, request).ok
    body = llm_server.requests[-1].body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The current weather in a city.",
                "parameters": dict(WEATHER.parameters),
            },
        }
    ]
    assert body["tool_choice"] == "required"
    assert body["reasoning_effort"] == "low"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": "",  # not null: llama-cpp-python's server refuses a null content
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "x", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "done"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "Thanks"},
    ]


def test_anthropic_body_carries_tools_thinking_results_and_images(llm_server: LLMServer) -> None:
    calls = (
        ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("toolu_2", "get_weather", "not json"),
    )
    thought = "The user wants the weather."
    request = ask(
        Message("system", "Be brief."),
        Message("user", "What is this?", images=(PNG,)),
        Message(
            "assistant",
            "Let me look.",
            tool_calls=calls,
            thinking=thought,
            signature=thinking_signature(thought),
        ),
        Message("tool", "Sunny", tool_call_id="toolu_1", name="get_weather"),
        Message("tool", "bad arguments", tool_call_id="toolu_2", name="get_weather"),
        tool_choice="auto",
        reasoning_effort="high",
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    result = call("anthropic", llm_server, request)
    assert result.ok, result.error
    body = llm_server.requests[-1].body
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "input_schema": dict(WEATHER.parameters),
        }
    ]
    assert body["tool_choice"] == {"type": "auto"}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert "reasoning_effort" not in body
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": thought, "signature": thinking_signature(thought)},
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "bad arguments"},
            ],
        },
    ]
    assert result.text == "Echo: bad arguments"  # the last tool result's words


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
    ids=["auto", "required", "none", "function"],
)
def test_anthropic_tool_choice(llm_server: LLMServer, choice: object, sent: object) -> None:
    call("anthropic", llm_server, ask(tool_choice=choice))
    assert llm_server.requests[-1].body["tool_choice"] == sent


def test_a_plain_conversation_is_sent_as_before(llm_server: LLMServer) -> None:
    messages = (Message("system", "S"), Message("user", "U"), Message("assistant", "A"), ASK)
    call("openai", llm_server, ask(*messages, tools=()))
    call("anthropic", llm_server, ask(*messages, tools=()))
    openai, anthropic = (r.body for r in llm_server.requests)
    assert openai["messages"] == [{"role": m.role, "content": m.content} for m in messages]
    assert anthropic["messages"] == [{"role": m.role, "content": m.content} for m in messages[1:]]
    assert "tools" not in openai and "tools" not in anthropic


# --- the server checks conversations as the APIs do ------------------------------------------


@pytest.mark.parametrize("kind", APIS)
def test_an_unanswered_tool_call_is_refused(llm_server: LLMServer, kind: str) -> None:
    first = call(kind, llm_server, ask())
    unanswered = (ASK, Message("assistant", "", tool_calls=first.tool_calls), Message("user", "?"))
    result = call(kind, llm_server, ask(*unanswered))
    assert result.status == 400
    assert first.tool_calls[0].id in (result.error or "")


def test_anthropic_refuses_a_tool_turn_without_its_thinking(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODEL, Scenario(thinking=["Weather: ", "call the tool."]))
    thinking = {"type": "enabled", "budget_tokens": 1024}
    first = call("anthropic", llm_server, ask(thinking=thinking))
    assert first.signature == thinking_signature("Weather: call the tool.")
    with_thinking = call("anthropic", llm_server, ask(*answered(first, "Rain"), thinking=thinking))
    assert with_thinking.text == "Echo: Rain"
    bare = answered(first, "Rain")
    bare = (bare[0], Message("assistant", "", tool_calls=first.tool_calls), *bare[2:])
    refused = call("anthropic", llm_server, ask(*bare, thinking=thinking))
    assert refused.status == 400
    assert "must start with a thinking block" in (refused.error or "")


@pytest.mark.parametrize(
    ("kind", "messages", "said"),
    [
        ("openai", [{"role": "tool", "tool_call_id": "c1", "content": "x"}], "preceeding"),
        (
            "openai",
            [
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
                {"role": "tool", "tool_call_id": "c2", "content": "x"},
            ],
            "'c2' not found",
        ),
        (
            "anthropic",
            [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}],
            "unexpected `tool_use_id`",
        ),
        (
            "anthropic",
            [{"role": "assistant", "content": [{"type": "thinking", "thinking": "a"}]}],
            "Invalid `signature`",
        ),
    ],
    ids=["orphan-result", "unknown-id", "anthropic-orphan", "bad-signature"],
)
def test_the_server_refuses_what_the_apis_refuse(
    kind: str, messages: list[dict[str, Any]], said: str
) -> None:
    refusal = conversation_error(kind, {"messages": [{"role": "user", "content": "hi"}, *messages]})
    assert refusal is not None and said in refusal["error"]["message"]


# --- thinking ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", APIS)
def test_thinking_arrives_apart_from_the_answer(llm_server: LLMServer, kind: str) -> None:
    llm_server.set_scenario(MODEL, Scenario(thinking=["The user ", "asks about ", "Paris."]))
    result = call(kind, llm_server, ask(tools=()))
    assert result.ok, result.error
    assert result.thinking == "The user asks about Paris."
    assert result.text == "Echo: Paris weather today?"
    assert result.thinking_ms is not None and result.ttft_ms is not None
    assert result.thinking_ms <= result.ttft_ms
    assert result.usage is not None and not result.usage.estimated
    if kind == "anthropic":
        assert result.signature == thinking_signature(result.thinking)
        assert result.usage.output_tokens == 3 + 4
    else:
        assert result.usage.reasoning_tokens == 3
        assert result.usage.output_tokens == 3 + 4  # reasoning is part of the output


@pytest.mark.parametrize("kind", ["openai", "azure"])
def test_openrouters_reasoning_field(llm_server: LLMServer, kind: str) -> None:
    llm_server.set_scenario(MODEL, Scenario(thinking=["Hm."], thinking_field="reasoning"))
    chunks = collect(provider(kind, llm_server), ask(tools=())).chunks
    assert chunks[0] == Thinking("Hm.")
    assert "".join(c for c in chunks if isinstance(c, str)) == "Echo: Paris weather today?"


@pytest.mark.parametrize("kind", APIS)
def test_thinking_comes_before_tool_calls(llm_server: LLMServer, kind: str) -> None:
    llm_server.set_scenario(MODEL, Scenario(thinking=["Need ", "the tool."]))
    chunks = collect(provider(kind, llm_server), ask()).chunks
    kinds = [type(c).__name__ for c in chunks]
    assert kinds.index("ToolCallDelta") > max(i for i, k in enumerate(kinds) if k == "Thinking")
    assert "str" not in kinds


def test_without_thinking_no_reasoning_tokens_are_reported(llm_server: LLMServer) -> None:
    assert call("openai", llm_server, ask(tools=())).usage.reasoning_tokens is None  # type: ignore[union-attr]


# --- structured output ---------------------------------------------------------------------


def schema_format(kind: str) -> dict[str, Any]:
    if kind == "json_object":
        return {"type": "json_object", "schema": VERDICT}
    return {"type": "json_schema", "json_schema": {"name": "verdict", "schema": VERDICT}}


@pytest.mark.parametrize(
    ("kind", "fmt"),
    [
        ("openai", "json_schema"),
        ("azure", "json_schema"),
        ("openai", "json_object"),
        ("anthropic", "json_schema"),
    ],
)
def test_a_schema_answer_validates(llm_server: LLMServer, kind: str, fmt: str) -> None:
    request = ask(
        Message("user", "Grade this answer"), tools=(), response_format=schema_format(fmt)
    )
    chunks = collect(provider(kind, llm_server), request).chunks
    texts = [c for c in chunks if isinstance(c, str)]
    assert len(texts) >= 3  # streamed in pieces
    document = json.loads("".join(texts))
    jsonschema.validate(document, VERDICT)
    assert document["reasoning"] in ("Grade", "this", "answer")
    if kind == "anthropic":
        sent = llm_server.requests[-1].body
        assert sent["output_config"] == {"format": {"type": "json_schema", "schema": VERDICT}}
        assert "response_format" not in sent


@pytest.mark.parametrize("kind", APIS)
def test_omit_field_leaves_exactly_that_field_out(llm_server: LLMServer, kind: str) -> None:
    llm_server.set_scenario(MODEL, Scenario(omit_field={"row 2": "score"}))
    fmt = schema_format("json_schema")
    texts = {}
    for row in ("row 1", "row 2", "row 3"):
        texts[row] = call(
            kind, llm_server, ask(Message("user", row), tools=(), response_format=fmt)
        ).text
    errors = {
        row: list(jsonschema.Draft202012Validator(VERDICT).iter_errors(json.loads(t)))
        for row, t in texts.items()
    }
    assert not errors["row 1"] and not errors["row 3"]
    assert [e.message for e in errors["row 2"]] == ["'score' is a required property"]


def test_anthropic_json_object_sends_no_format(llm_server: LLMServer) -> None:
    call("anthropic", llm_server, ask(tools=(), response_format={"type": "json_object"}))
    body = llm_server.requests[-1].body
    assert "output_config" not in body and "response_format" not in body


def test_schema_values_follow_refs_bounds_and_formats() -> None:
    schema = {
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"n": {"type": "number", "exclusiveMinimum": 3}},
                "required": ["n"],
            }
        },
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2},
            "when": {"type": "string", "format": "date"},
            "note": {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 5}]},
            "count": {"type": ["integer", "null"], "maximum": 0},
            "fixed": {"const": "x"},
        },
        "required": ["items", "when"],
    }
    value = schema_value(schema, ["hi"])
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
    assert value["note"] == "hihih" and value["count"] == 0 and len(value["items"]) == 2
    assert schema_value(schema, ["hi"], all_properties=False).keys() == {"items", "when"}


def test_split_pieces() -> None:
    assert split_pieces("abcd") == ["a", "bc", "d"]
    assert split_pieces("{}") == ["{", "}"]
    assert split_pieces("") == [""]
    long = "x" * 100
    assert "".join(split_pieces(long)) == long and len(split_pieces(long)) == 7


# --- images --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", APIS)
def test_an_image_is_accepted_and_its_text_read(llm_server: LLMServer, kind: str) -> None:
    result = call(kind, llm_server, ask(Message("user", "Describe it", images=(PNG,)), tools=()))
    assert result.text == "Echo: Describe it"
    assert result.usage is not None and result.usage.input_tokens == 2  # the text's words


@pytest.mark.parametrize("kind", APIS)
def test_an_image_on_a_text_only_model_says_what_to_do(llm_server: LLMServer, kind: str) -> None:
    llm_server.set_scenario(MODEL, Scenario(accepts_images=False))
    result = call(kind, llm_server, ask(Message("user", "Describe it", images=(PNG,)), tools=()))
    assert result.status == 400 and result.error_kind == "http_status"
    assert "refused the image" in (result.error or "")
    assert "choose a model that accepts images, or remove the image" in (result.error or "")
    assert result.attempts == 1
    # Without the image the same model answers.
    assert call(kind, llm_server, ask(Message("user", "Describe it"), tools=())).ok


def test_a_400_without_images_is_left_as_it_was(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODEL, Scenario(fail_statuses=[400]))
    result = call("openai", llm_server, ask(tools=()))
    assert result.error is not None and "image" not in result.error
