"""Prompt variants: the demo prompts load; every broken file names its file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptdeck.errors import PromptFileError, TemplateError
from promptdeck.model.types import Message
from promptdeck.scoring.checks import Check
from promptdeck.workspace.prompts import (
    PromptVariant,
    load_prompts,
    load_variant,
    render_messages,
    template_variables,
    variant_from_dict,
)

REPO = Path(__file__).resolve().parents[2]
GOOD = "model: local/smollm2\nuser: 'Customer message: {{ input }}'\n"
TOP = (
    "description, model, params, system, user, messages, checks, fallback, tags, tools, "
    "output_schema, max_tool_rounds"
)
PARAMS = (
    "temperature, max_tokens, top_p, stop, seed, presence_penalty, frequency_penalty, "
    "response_format, top_k, repeat_penalty, logprobs, tool_choice, reasoning_effort, thinking"
)


def write(root: Path, relative: str, content: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- the demo prompts -------------------------------------------------------------------


def test_demo_prompts_load_without_errors() -> None:
    library = load_prompts(REPO / "prompts")
    assert library.errors == []
    assert sorted(library.variants) == [
        "orders/lookup",
        "orders/no_tool",
        "support/concise",
        "support/empathetic",
        "support/production",
    ]


@pytest.mark.parametrize("name", ["support/concise", "support/empathetic", "support/production"])
def test_demo_prompts_are_comparable(name: str) -> None:
    variant = load_prompts(REPO / "prompts").variants[name]
    assert variant.model == "local/smollm2"
    # Only the length of the answer differs between them (max_tokens, stop).
    same = {k: v for k, v in variant.params.items() if k not in ("max_tokens", "stop")}
    assert same == {"temperature": 0.2, "repeat_penalty": 1.1, "logprobs": True}
    assert template_variables(variant) == ["input"]
    messages = render_messages(variant, {"input": "Where is my order?", "category": "shipping"})
    assert messages[0].role == "system" and "Acme" in messages[0].content
    assert messages[-1] == Message("user", "Customer message: Where is my order?")
    # Every demo variant carries the same guardrails, so their pass rates compare.
    production = load_prompts(REPO / "prompts").variants["support/production"]
    assert variant.checks and variant.checks == production.checks


def test_production_is_the_baseline() -> None:
    variant = load_variant(REPO / "prompts/support/production.yaml", REPO / "prompts")
    assert variant.name == "support/production"
    assert variant.task == "support"
    assert variant.tags == ("baseline",)
    assert [c.label for c in variant.checks] == [
        "no AI disclaimer",
        "no condolences",
        "no placeholders or discounts",
        "no made-up phone numbers",
        "at most 60 words",
        "ends with a full sentence",
    ]
    for policy in ("30 days", "over $50", "5-7 business days"):
        assert policy in (variant.system or "")


# --- one file, every way it can be broken -----------------------------------------------

# (file content, line, field, message after "<path>, line N: ")
BROKEN: list[tuple[str, int, str | None, str]] = [
    (
        "model: local/smollm2\nparams:\n  temperature: 0.2\n max_tokens: 200\nuser: hi\n",
        4,
        None,
        "invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block mapping that starts on line 1)",
    ),
    (
        "model: local/smollm2\nuser: [unclosed\ntags: [a]\n",
        3,
        None,
        "invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that starts on line 2)",
    ),
    (
        "model: local/smollm2\nuser:\thi\n\tx: 1\n",
        2,
        None,
        "invalid YAML: found character '\\t' that cannot start any token",
    ),
    (
        GOOD + "sytem: Be kind.\n",
        3,
        "sytem",
        f"field 'sytem': unknown key; did you mean 'system'? Allowed: {TOP}",
    ),
    (GOOD + "owner: anna\n", 3, "owner", f"field 'owner': unknown key. Allowed: {TOP}"),
    (
        "model: local/smollm2\nparams:\n  temperature: 0.2\n  top_q: 40\nuser: hi\n",
        4,
        "params.top_q",
        f"field 'params.top_q': unknown parameter; did you mean 'top_p'? Allowed: {PARAMS}",
    ),
    (
        "model: local/smollm2\nparams: {temperature: hot}\nuser: hi\n",
        2,
        "params.temperature",
        "field 'params.temperature': must be a number, got text",
    ),
    (
        "model: local/smollm2\nparams:\n  temperature: 3\nuser: hi\n",
        3,
        "params.temperature",
        "field 'params.temperature': must be a number from 0 to 2, got 3",
    ),
    (
        "model: local/smollm2\nuser: hi\nparams:\n  max_tokens: 0\n",
        4,
        "params.max_tokens",
        "field 'params.max_tokens': must be a whole number >= 1, got 0",
    ),
    (
        "model: local/smollm2\nuser: hi\nparams:\n  max_tokens: 2.5\n",
        4,
        "params.max_tokens",
        "field 'params.max_tokens': must be a whole number, got a number",
    ),
    (
        "model: local/smollm2\nuser: hi\nparams: {stop: 5}\n",
        3,
        "params.stop",
        "field 'params.stop': must be text or a list of texts, got a number",
    ),
    (
        "model: local/smollm2\nuser: hi\nparams: {response_format: json}\n",
        3,
        "params.response_format",
        "field 'params.response_format': must be a mapping with a 'type', e.g. {type: json_object}",
    ),
    (
        "model: local/smollm2\nuser: hi\nparams: {logprobs: 1}\n",
        3,
        "params.logprobs",
        "field 'params.logprobs': must be true or false, got a number",
    ),
    (
        "model: local/smollm2\nuser: hi\nparams: [0.2]\n",
        3,
        "params",
        "field 'params': must be a mapping like {temperature: 0.2}, got [0.2]",
    ),
    (
        GOOD + "tags: baseline\n",
        3,
        "tags",
        "field 'tags': must be a list of texts, e.g. [baseline], got 'baseline'",
    ),
    (
        "description: 2024.5\n" + GOOD,
        1,
        "description",
        "field 'description': must be text, got a number",
    ),
    (
        "# the model line went missing\nuser: hi\n",
        2,
        "model",
        "field 'model': missing: every variant names its model, e.g. local/smollm2",
    ),
    (
        "model: smollm2\nuser: hi\n",
        1,
        "model",
        "field 'model': must be a model reference provider/model, got 'smollm2'",
    ),
    (
        "model: local/ smollm2\nuser: hi\n",
        1,
        "model",
        "field 'model': must be a model reference provider/model, got 'local/ smollm2'",
    ),
    (
        GOOD + "fallback: [openai/gpt-4o-mini]\n",
        3,
        "fallback",
        "field 'fallback': must be a model reference provider/model, got a list",
    ),
    (
        "model: local/smollm2\nsystem: Be kind.\nuser: |\n  Customer message:\n  {{ input }\n",
        5,
        "user",
        "field 'user': template syntax error: unexpected '}'",
    ),
    (
        "model: local/smollm2\nuser: 'Hi {{ input | shout }}'\n",
        2,
        "user",
        "field 'user': template syntax error: No filter named 'shout'.",
    ),
    (
        "- model: local/smollm2\n- user: hi\n",
        1,
        None,
        "a variant file must be a mapping of keys (model:, user:, ...), not a list",
    ),
    ("hello\n", 1, None, "a variant file must be a mapping of keys (model:, user:, ...), not text"),
    (
        "model: local/smollm2\nuser: hi\nmodel: openai/gpt-4o\n",
        3,
        "model",
        "field 'model': duplicate key (first on line 1)",
    ),
    (
        "model: local/smollm2\nsystem: Be kind.\n",
        1,
        "user",
        "field 'user': missing: a variant needs a user template (or messages)",
    ),
    (
        "model: local/smollm2\nuser: '   '\n",
        2,
        "user",
        "field 'user': missing: a variant needs a user template (or messages)",
    ),
    (
        "model: local/smollm2\nuser: [a, b]\n",
        2,
        "user",
        "field 'user': must be text (a template), got a list",
    ),
    (
        "model: local/smollm2\nuser: hi\nmessages:\n  - {role: user, content: hi}\n",
        2,
        "user",
        "field 'user': use either 'messages' or 'system'/'user', not both",
    ),
    (
        "model: local/smollm2\nmessages:\n  - {role: user, content: hi}\n"
        "  - {role: robot, content: hi}\n",
        4,
        "messages[1].role",
        "field 'messages[1].role': must be one of system, user, assistant, got 'robot'",
    ),
    (
        "model: local/smollm2\nmessages:\n  - role: user\n    content: hi\n    name: anna\n",
        5,
        "messages[0].name",
        "field 'messages[0].name': unknown key. Allowed: role, content",
    ),
    (
        "model: local/smollm2\nmessages:\n  - {role: system, content: hi}\n",
        2,
        "messages",
        "field 'messages': needs at least one message with role user",
    ),
    (
        "model: local/smollm2\nmessages:\n  - role: user\n    content: |\n      line one\n"
        "      {% if x %}\n",
        6,
        "messages[0].content",
        "field 'messages[0].content': template syntax error: Unexpected end of template. Jinja "
        "was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block "
        "that needs to be closed is 'if'.",
    ),
    (
        GOOD + "checks:\n  - {type: max_chars, value: 800}\n  - {type: regex, value: '('}\n",
        5,
        "checks[1]",
        "field 'checks[1]': regex check: invalid regular expression '(': "
        "missing ), unterminated subpattern at position 0",
    ),
    (
        GOOD + "checks:\n  - type: contians\n    value: refund\n",
        4,
        "checks[0]",
        "field 'checks[0]': unknown check type 'contians'; did you mean 'contains'? Known types: "
        "contains, equals, icontains, is_json, json_schema, max_chars, max_cost_usd, "
        "max_latency_ms, max_words, min_chars, no_tool_called, not_contains, regex, similar, "
        "starts_with, tool_args_valid, tool_called",
    ),
    (
        GOOD + "checks: {type: max_chars, value: 800}\n",
        3,
        "checks",
        "field 'checks': must be a list of checks, got a mapping",
    ),
]


@pytest.mark.parametrize(("content", "line", "field", "message"), BROKEN)
def test_broken_file(
    tmp_path: Path, content: str, line: int, field: str | None, message: str
) -> None:
    path = write(tmp_path, "support/broken.yaml", content)
    with pytest.raises(PromptFileError) as caught:
        load_variant(path, tmp_path)
    assert str(caught.value) == f"{path}, line {line}: {message}"
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(path), line, field)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty; a variant needs at least model and user"),
        ("# only a comment\n", "the file is empty; a variant needs at least model and user"),
    ],
)
def test_empty_file(tmp_path: Path, content: str, message: str) -> None:
    path = write(tmp_path, "support/empty.yaml", content)
    with pytest.raises(PromptFileError) as caught:
        load_variant(path, tmp_path)
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"model: local/smollm2\n\x89PNG\r\n\x1a\n\x00\x00\xff",
            "line 2: byte 21: not UTF-8 text (0x89); save the file as UTF-8",
        ),
        (
            b"model: local/smollm2\nuser: a\x00b\n",
            "line 2: invalid YAML: the character #x0000 is not allowed (binary data?)",
        ),
    ],
)
def test_binary_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, "support/image.yaml", content)
    with pytest.raises(PromptFileError) as caught:
        load_variant(path, tmp_path)
    assert str(caught.value) == f"{path}, {message}"


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "support/deep.yaml", "user: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(PromptFileError) as caught:
        load_variant(path, tmp_path)
    assert str(caught.value) == f"{path}: invalid YAML: nested too deeply"


def test_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "support/bom.yaml", "\ufeff" + GOOD)
    assert load_variant(path, tmp_path).model == "local/smollm2"


def test_full_variant(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "faq/multi.yml",
        "description: Multi-turn\n"
        "model: openrouter/meta-llama/llama-3.1-8b:free\n"
        'params: {temperature: 0, top_p: 1, stop: ["\\n\\n"], seed: 7, presence_penalty: -1,'
        " frequency_penalty: 0.5, max_tokens: 50, response_format: {type: json_object},"
        " logprobs: true}\n"
        "messages:\n"
        "  - {role: system, content: 'Answer about {{ product }}.'}\n"
        "  - {role: user, content: 'Hi'}\n"
        "  - {role: assistant, content: 'Hello!'}\n"
        "  - {role: user, content: '{{ question }}'}\n"
        "checks: [{type: is_json}]\n"
        "fallback: ollama/llama3.2:1b\n"
        "tags: [multi, json]\n",
    )
    variant = load_variant(path, tmp_path)
    assert variant == PromptVariant(
        name="faq/multi",
        path=str(path),
        model="openrouter/meta-llama/llama-3.1-8b:free",
        description="Multi-turn",
        params={
            "temperature": 0,
            "top_p": 1,
            "stop": ["\n\n"],
            "seed": 7,
            "presence_penalty": -1,
            "frequency_penalty": 0.5,
            "max_tokens": 50,
            "response_format": {"type": "json_object"},
            "logprobs": True,
        },
        messages=(
            Message("system", "Answer about {{ product }}."),
            Message("user", "Hi"),
            Message("assistant", "Hello!"),
            Message("user", "{{ question }}"),
        ),
        checks=(Check("is_json"),),
        fallback="ollama/llama3.2:1b",
        tags=("multi", "json"),
    )
    assert template_variables(variant) == ["product", "question"]
    assert render_messages(variant, {"product": "mugs", "question": "Dishwasher?"}) == (
        Message("system", "Answer about mugs."),
        Message("user", "Hi"),
        Message("assistant", "Hello!"),
        Message("user", "Dishwasher?"),
    )


# --- a whole folder ---------------------------------------------------------------------


def test_one_broken_file_does_not_hide_the_others(tmp_path: Path) -> None:
    write(tmp_path, "support/good.yaml", GOOD)
    write(tmp_path, "support/bad.yaml", GOOD + "temprature: 0.2\n")
    write(tmp_path, "billing/also_good.yml", GOOD)
    write(tmp_path, "billing/empty.yaml", "")
    write(tmp_path, "loose.yaml", GOOD)
    write(tmp_path, "support/.backup/old.yaml", "not: [valid")
    write(tmp_path, "support/notes.md", "not a variant")
    library = load_prompts(tmp_path)
    assert sorted(library.variants) == ["billing/also_good", "support/good"]
    assert [str(error) for error in library.errors] == [
        f"{tmp_path}/billing/empty.yaml: the file is empty; "
        "a variant needs at least model and user",
        f"{tmp_path}/loose.yaml: put each variant in a task folder: <task>/<variant>.yaml",
        f"{tmp_path}/support/bad.yaml, line 3: field 'temprature': unknown key; "
        "'temperature' is a model parameter: put it under params:",
    ]


def test_same_name_twice(tmp_path: Path) -> None:
    write(tmp_path, "support/short.yaml", GOOD)
    write(tmp_path, "support/short.yml", GOOD)
    library = load_prompts(tmp_path)
    assert list(library.variants) == ["support/short"]
    assert [str(error) for error in library.errors] == [
        f"{tmp_path}/support/short.yml: 'support/short' is already defined by "
        f"{tmp_path}/support/short.yaml"
    ]


def test_missing_folder_is_an_empty_library(tmp_path: Path) -> None:
    library = load_prompts(tmp_path / "nowhere")
    assert (library.variants, library.errors) == ({}, [])


# --- templates --------------------------------------------------------------------------


def scratch(user: str, system: str | None = None) -> PromptVariant:
    return variant_from_dict(
        {"model": "local/smollm2", "system": system, "user": user},
        name="scratch/playground",
        path="<playground>",
    )


def test_variant_from_dict_without_a_file() -> None:
    variant = scratch("Q: {{ input }}", system="")
    assert variant == PromptVariant(
        name="scratch/playground", path="<playground>", model="local/smollm2", user="Q: {{ input }}"
    )
    assert render_messages(variant, {"input": "hi"}) == (Message("user", "Q: hi"),)


def test_empty_ui_fields_mean_absent() -> None:
    # what empty text boxes and pickers give: "" and None
    data = {"model": "local/x", "user": "hi", "system": " ", "fallback": "", "description": None}
    variant = variant_from_dict(data, name="scratch/p", path="<ui>")
    assert (variant.system, variant.fallback, variant.description) == (None, None, "")


def test_variant_from_dict_errors_name_the_template_line() -> None:
    with pytest.raises(PromptFileError) as caught:
        scratch("line one\n{{ input ")
    assert str(caught.value) == (
        "<playground>: field 'user': template syntax error: unexpected end of template, "
        "expected 'end of print statement'. (line 2 of the template)"
    )


def test_variant_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(PromptFileError) as caught:
        variant_from_dict({"model": "local/x", "user": "hi", "modle": 1}, name="a/b", path="<ui>")
    assert str(caught.value) == (
        f"<ui>: field 'modle': unknown key; did you mean 'model'? Allowed: {TOP}"
    )


@pytest.mark.parametrize(
    ("user", "system", "variables"),
    [
        ("{{ input }}", None, ["input"]),
        ("{{ b }} {{ a }} {{ b }}", "About {{ product }}", ["a", "b", "product"]),
        ("{% for item in items %}{{ item.name }}{% endfor %}", None, ["items"]),
        ("{% set greeting = 'hi' %}{{ greeting }} {{ name | upper }}", None, ["name"]),
        ("No variables at all.", None, []),
    ],
)
def test_template_variables(user: str, system: str | None, variables: list[str]) -> None:
    assert template_variables(scratch(user, system)) == variables


def test_missing_variable_names_itself_and_the_variant() -> None:
    variant = scratch("{{ input }} from {{ customer_name }}", system="For {{ product }}")
    with pytest.raises(TemplateError) as caught:
        render_messages(variant, {"input": "hi"})
    assert str(caught.value) == (
        "scratch/playground: missing variable 'customer_name', 'product': the template uses it "
        "but the input has no such field (given: input)"
    )


def test_missing_attribute_is_a_template_error() -> None:
    with pytest.raises(TemplateError) as caught:
        render_messages(scratch("{{ order.total }}"), {"order": {"id": 1}})
    assert str(caught.value) == (
        "scratch/playground: user template: 'dict object' has no attribute 'total'"
    )


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ input.__class__ }}",
    ],
)
def test_sandbox_blocks_python_internals(template: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_messages(scratch(template), {"input": "x"})
    assert str(caught.value).startswith(
        "scratch/playground: user template: blocked by the sandbox: "
    )
    assert "is unsafe" in str(caught.value)


def test_runtime_failure_is_a_template_error() -> None:
    with pytest.raises(TemplateError) as caught:
        render_messages(scratch("{{ 1 / n }}"), {"n": 0})
    assert str(caught.value) == (
        "scratch/playground: user template: failed to render: division by zero"
    )


def test_render_keeps_text_and_drops_one_trailing_newline() -> None:
    variant = scratch("Customer message: {{ input }}\n", system="Be kind.\n")
    assert render_messages(variant, {"input": "<b>hi</b> & bye"}) == (
        Message("system", "Be kind."),
        Message("user", "Customer message: <b>hi</b> & bye"),
    )
