"""promptfoo interop: import configs into PromptDeck files, export suites as promptfoo configs.

Exports are validated against promptfoo's own config schema (vendored, see
tests/promptfoo/README.md); imports are read back with PromptDeck's own loaders.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from promptdeck.errors import ConfigError
from promptdeck.evals.suite import load_suite
from promptdeck.model.registry import builtin_configs
from promptdeck.model.types import ToolStep
from promptdeck.promptfoo.config import (
    assertions_from_check,
    check_from_assertion,
    checks_from_assertion,
    model_from_provider_id,
)
from promptdeck.promptfoo.exporter import export_promptfoo
from promptdeck.promptfoo.importer import import_promptfoo
from promptdeck.promptfoo.testcases import assertion_from_text
from promptdeck.scoring.checks import parse_check, run_checks
from promptdeck.workspace.datasets import load_dataset
from promptdeck.workspace.prompts import load_prompts

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
SCHEMA = json.loads((HERE / "config-schema.json").read_text())
WORKSPACE = HERE / "workspace"
COMMON_CHECKS: list[dict[str, Any]] = [
    {"type": "not_contains", "value": "as an AI", "case_sensitive": False},
    {"type": "max_latency_ms", "value": 5000},
    {"type": "max_cost_usd", "value": 0.01},
    {"type": "regex", "value": "^[A-Z]", "name": "capitalised"},
    {"type": "equals"},
]

SIMILAR_NOTE = (
    "promptfoo compares embeddings, PromptDeck compares the characters (difflib ratio); "
    "the same threshold passes fewer paraphrases: review it"
)


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def validate_promptfoo(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = read_yaml(path)
    jsonschema.validate(config, SCHEMA)
    return config


# --- import -------------------------------------------------------------------------------


def test_import_maps_every_feature_of_the_full_config(tmp_path: Path) -> None:
    result = import_promptfoo(HERE / "full" / "promptfooconfig.yaml", tmp_path)
    names = [
        f"full/{p}__{m}" for m in ("gpt-4o-mini", "haiku") for p in ("plain", "concise", "chat")
    ]
    assert result.variants == tuple(names)
    assert (result.unmapped, result.notes, result.rows) == ((), (), 5)
    assert result.written == (
        *(tmp_path / "prompts" / f"{name}.yaml" for name in names),
        tmp_path / "datasets" / "full.csv",
        tmp_path / "datasets" / "full.suite.yaml",
    )
    library = load_prompts(tmp_path / "prompts")
    assert library.errors == [] and sorted(library.variants) == sorted(names)
    templates = {
        "plain": (None, "Answer briefly: {{question}}", ()),
        "concise": (None, "Answer in one word, in a {{tone}} tone: {{question}}", ()),
        "chat": ("You are a {{tone}} geography tutor.", "{{question}}", ()),
    }
    for name in names:
        variant = library.variants[name]
        haiku = name.endswith("haiku")
        assert variant.model == (
            "anthropic/claude-3-5-haiku-latest" if haiku else "openai/gpt-4o-mini"
        )
        assert variant.params == ({"temperature": 0.2, "max_tokens": 300} if haiku else {})
        prompt = name.split("/")[1].split("__")[0]
        assert (variant.system, variant.user, variant.messages) == templates[prompt]
        assert [c.type for c in variant.checks] == [c["type"] for c in COMMON_CHECKS]
        assert read_yaml(Path(variant.path))["checks"] == COMMON_CHECKS
    dataset = load_dataset(tmp_path / "datasets" / "full.csv")
    assert [dict(c.values) for c in dataset.cases] == [
        row(q, desc, cat, exp, rubric, answer)
        for q, desc, cat, exp, rubric, answer in [
            ("France", "France", "europe", "Paris", "", ""),
            ("Italy", "Italy", "europe", "Rome", "", ""),
            ("Kenya", "Kenya", "africa", "Nairobi", "Names Nairobi and nothing else.", ""),
            ("Peru", "", "americas", "Lima", "", ""),
            ("Japan", "Capital of Japan", "asia", "Tokyo", "", "Tokyo"),
        ]
    ]
    suite = load_suite(tmp_path / "datasets" / "full.suite.yaml")
    assert suite.variants == tuple(names) and suite.baseline == names[0]
    assert suite.dataset == tmp_path / "datasets" / "full.csv"
    assert suite.judge is not None
    assert (suite.judge.model, suite.judge.rubric) == (
        "openai/gpt-4o",
        "Names the capital city correctly.",
    )


def row(
    country: str, description: str, category: str, expected: str, rubric: str, answer: str
) -> dict[str, str]:
    return {
        "tone": "friendly",
        "question": f"What is the capital of {country}?",
        "description": description,
        "category": category,
        "expected": expected,
        "rubric": rubric,
        "answer": answer,
    }


UNSUPPORTED = [
    "scenarios: not supported by PromptDeck; ignored",
    "prompts[1]: file://make_prompt.py:build: a prompt made by a function is not supported",
    "prompts[2]: prompt.js: prompts from .js files are not supported",
    "providers[1]: provider 'python:my_provider.py' runs Python code; PromptDeck cannot",
    "providers[2]: provider 'exec:./run.sh' runs a shell command; PromptDeck cannot",
    "providers[3]: provider 'https://example.com/api' is an HTTP webhook; PromptDeck cannot",
    "providers[4]: provider 'file://provider.js' is loaded from a code or config file; "
    "PromptDeck cannot",
    "providers[5]: provider 'bedrock:anthropic.claude-v2' has no PromptDeck equivalent",
    "providers[6].config.apiKey: keys are never imported: set the env variable",
    "providers[6].config.keep_alive: not a PromptDeck model parameter; ignored",
    "tests[1].threshold: not supported by PromptDeck; ignored",
    "tests[0].assert[0]: javascript assertion is not supported",
    "tests[0].assert[1]: python assertion is not supported",
    "tests[0].assert[2]: PromptDeck has no contains-json check (is_json would fail answers "
    "with text around the JSON)",
    "tests[0].assert[4].weight: not supported by PromptDeck; ignored",
    "tests[1].assert[1]: rouge-n assertion is not supported",
    "tests[1].assert[2]: not-regex assertion is not supported",
    "tests[0].assert[3]: contains with a value that differs by test; PromptDeck checks have "
    "one value for every row",
    "tests[0].assert[4]: equals with a value that differs by test, not on every test "
    "(or clashing with 'expected')",
    "tests[1].assert[0]: contains with a value that differs by test; PromptDeck checks have "
    "one value for every row",
]


def test_unsupported_items_are_reported_one_by_one_and_the_rest_is_written(
    tmp_path: Path,
) -> None:
    result = import_promptfoo(HERE / "unsupported" / "promptfooconfig.yaml", tmp_path)
    assert [str(item) for item in result.unmapped] == UNSUPPORTED
    assert result.variants == ("unsupported/gpt-4o-mini", "unsupported/llama3.2")
    library = load_prompts(tmp_path / "prompts")
    assert library.errors == []
    llama = library.variants["unsupported/llama3.2"]
    assert (llama.model, llama.params, llama.checks) == ("ollama/llama3.2", {"max_tokens": 128}, ())
    assert "not-a-real-key" not in "".join(p.read_text() for p in result.written)
    rows = load_dataset(tmp_path / "datasets" / "unsupported.csv").cases
    assert [dict(c.values) for c in rows] == [{"text": "hello"}, {"text": "world"}]
    assert load_suite(tmp_path / "datasets" / "unsupported.suite.yaml").judge is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("not_a_mapping.yaml", "a promptfoo config is a mapping"),
        ("bad_yaml.yaml", "line 2: invalid YAML"),
        ("no_providers.yaml", "'providers' is missing"),
        ("assert_without_type.yaml", "tests[0].assert[0] must be a mapping with a 'type'"),
        ("var_glob_without_match.yaml", "tests[0].vars.text: no file matches file://none*.txt"),
        ("missing_tests_file.yaml", "nowhere.csv: cannot read"),
        ("duplicate_key.yaml", "duplicate key 'prompts'"),
        ("tests_not_a_list.yaml", "'tests' must be a list of tests or a file path"),
        ("absent.yaml", "absent.yaml: cannot read"),
    ],
)
def test_malformed_configs_raise_config_errors_naming_the_file(
    tmp_path: Path, name: str, expected: str
) -> None:
    config = HERE / "malformed" / name
    with pytest.raises(ConfigError) as caught:
        import_promptfoo(config, tmp_path / "out")
    assert str(caught.value).startswith(str(config)) and expected in str(caught.value)
    assert not (tmp_path / "out").exists()


def write_config(folder: Path, text: str, **files: str) -> Path:
    """A promptfooconfig.yaml in `folder/cfg` with `files` beside it (names use __ for /)."""
    config = folder / "cfg" / "promptfooconfig.yaml"
    for name, content in {"promptfooconfig.yaml": text, **files}.items():
        path = config.parent / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return config


BASE = "prompts: ['Say {{x}}']\nproviders: [openai:gpt-4o-mini]\n"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("tests: [{vars: {x: file://../secret.txt}}]", "tests[0].vars.x: file://../secret.txt"),
        ("tests: [{vars: {x: file://SECRET}}]", "tests[0].vars.x: file://"),
        ("tests: file://../*.txt", "tests: file://../*.txt"),
        ("defaultTest: file://../secret.txt", "defaultTest: file://../secret.txt"),
        ("tests: [{vars: {x: file://link.txt}}]", "tests[0].vars.x: file://link.txt"),
        (
            "tests: [{vars: {x: a}, assert: [{type: contains, value: file://../secret.txt}]}]",
            "tests[0].assert[0]: file://../secret.txt",
        ),
    ],
)
def test_files_outside_the_config_folder_are_refused(tmp_path: Path, text: str, where: str) -> None:
    # an import copies what it reads into the workspace: ~/.env must not land in a dataset
    (tmp_path / "secret.txt").write_text("API_KEY=sk-secret\n")
    text = text.replace("SECRET", str(tmp_path / "secret.txt"))
    config = write_config(tmp_path, BASE + text)
    (config.parent / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ConfigError) as caught:
        import_promptfoo(config, tmp_path / "out")
    assert f"{config}: {where}" in str(caught.value)
    assert "is outside the config's folder" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_prompt_files_outside_the_config_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("Say {{x}}")
    config = write_config(tmp_path, "prompts: file://../p.txt\nproviders: [openai:gpt-4o]\n")
    with pytest.raises(ConfigError, match=r"prompts\[0\]: file://\.\./p\.txt is outside"):
        import_promptfoo(config, tmp_path / "out")


def test_an_absolute_glob_inside_the_config_folder_is_read(tmp_path: Path) -> None:
    config = write_config(tmp_path, BASE, **{"t__a.csv": "x\nhi\n"})
    config.write_text(BASE + f"tests: file://{config.parent}/t/*.csv\n")
    assert import_promptfoo(config, tmp_path / "out").rows == 1


def test_assertion_values_are_read_from_files_as_promptfoo_does(tmp_path: Path) -> None:
    tests = """tests:
  - vars: {x: a}
    assert:
      - {type: llm-rubric, value: file://rubric.txt}
      - {type: is-json, value: file://schema.json}
      - {type: contains-all, value: file://words.yaml}
      - {type: contains, value: file://value.py}
"""
    config = write_config(
        tmp_path,
        BASE + tests,
        **{
            "rubric.txt": "Is polite.\n",
            "schema.json": '{"type": "object"}',
            "words.yaml": "[a, b]",
        },
    )
    result = import_promptfoo(config, tmp_path / "out")
    assert [str(i) for i in result.unmapped] == [
        "tests[0].assert[3]: the value file://value.py is computed by code; not mapped"
    ]
    variant = load_prompts(tmp_path / "out" / "prompts").variants["cfg/prompt1"]
    assert [(c.type, c.value) for c in variant.checks] == [
        ("json_schema", {"type": "object"}),
        ("contains", ("a", "b")),
    ]
    judge = load_suite(tmp_path / "out" / "datasets" / "cfg.suite.yaml").judge
    assert judge is not None and judge.rubric == "Is polite.\n"


def test_transformed_answers_keep_no_check(tmp_path: Path) -> None:
    # promptfoo asserts on the transformed answer; PromptDeck would check another text
    tests = """defaultTest:
  assert: [{type: not-contains, value: oops}]
tests:
  - vars: {x: a}
    assert:
      - {type: contains, value: A, transform: output.toUpperCase()}
      - {type: contains, value: a}
  - vars: {x: b}
    options: {transform: output.toUpperCase()}
    assert: [{type: contains, value: a}]
"""
    result = import_promptfoo(write_config(tmp_path, BASE + tests), tmp_path / "out")
    assert [str(i) for i in result.unmapped] == [
        "defaultTest.assert[0]: options.transform changes the answer first; not mapped",
        "tests[1].assert[0]: options.transform changes the answer first; not mapped",
        "tests[0].assert[0].transform: PromptDeck checks the answer as it came; not mapped",
        "defaultTest.assert[0]: not_contains with a value that differs by test; PromptDeck "
        "checks have one value for every row",
        "tests[0].assert[1]: contains with a value that differs by test; PromptDeck checks "
        "have one value for every row",
    ]
    assert load_prompts(tmp_path / "out" / "prompts").variants["cfg/prompt1"].checks == ()


def test_a_var_file_that_is_not_text_is_reported(tmp_path: Path) -> None:
    config = write_config(tmp_path, BASE + "tests: [{vars: {x: file://cat.png}}]\n")
    (config.parent / "cat.png").write_bytes(b"\x89PNG\r\n\x00")
    result = import_promptfoo(config, tmp_path / "out")
    assert [str(i) for i in result.unmapped] == [
        "tests[0].vars.x: file://cat.png is not text; kept as the literal text"
    ]


def test_existing_files_are_not_overwritten_without_force(tmp_path: Path) -> None:
    config = HERE / "full" / "promptfooconfig.yaml"
    suite = tmp_path / "datasets" / "full.suite.yaml"
    suite.parent.mkdir()
    suite.write_text("mine\n")
    with pytest.raises(ConfigError, match=r"full\.suite\.yaml already exists; nothing was"):
        import_promptfoo(config, tmp_path)
    assert suite.read_text() == "mine\n" and not (tmp_path / "prompts").exists()
    import_promptfoo(config, tmp_path, force=True)
    assert load_suite(suite).variants[0] == "full/plain__gpt-4o-mini"


@pytest.mark.parametrize(
    ("cell", "assertion"),
    [
        ("Paris", {"type": "equals", "value": "Paris"}),
        ("equals: Paris", {"type": "equals", "value": "Paris"}),
        ("contains: foo", {"type": "contains", "value": "foo"}),
        ("icontains:Foo", {"type": "icontains", "value": "Foo"}),
        ("not-contains: bar", {"type": "not-contains", "value": "bar"}),
        ("contains-all: a, b", {"type": "contains-all", "value": ["a", "b"]}),
        ("regex: ^\\d+$", {"type": "regex", "value": "^\\d+$"}),
        ("is-json", {"type": "is-json"}),
        ("starts-with: Hi", {"type": "starts-with", "value": "Hi", "threshold": 0.75}),
        ("similar(0.9): a cat", {"type": "similar", "value": "a cat", "threshold": 0.9}),
        ("similar: a cat", {"type": "similar", "value": "a cat", "threshold": 0.8}),
        ("llm-rubric: is kind", {"type": "llm-rubric", "value": "is kind"}),
        ("grade: is kind", {"type": "llm-rubric", "value": "is kind"}),
        ("javascript: output.length > 2", {"type": "javascript", "value": "output.length > 2"}),
        ("fn: x", {"type": "javascript", "value": "x"}),
        ("python: len(output)", {"type": "python", "value": "len(output)"}),
        ("containsfoo", {"type": "equals", "value": "containsfoo"}),
        ("is-valid-openai-tools-call", {"type": "is-valid-openai-tools-call"}),
        ("trajectory:tool-used:get_order", {"type": "trajectory:tool-used", "value": "get_order"}),
    ],
)
def test_csv_expected_cells_parse_like_promptfoo(cell: str, assertion: dict[str, Any]) -> None:
    assert assertion_from_text(cell) == assertion


@pytest.mark.parametrize(
    ("assertion", "check"),
    [
        ({"type": "contains", "value": "a"}, {"type": "contains", "value": "a"}),
        ({"type": "contains-all", "value": ["a", "b"]}, {"type": "contains", "value": ["a", "b"]}),
        ({"type": "icontains", "value": "a"}, {"type": "icontains", "value": "a"}),
        ({"type": "not-contains", "value": "a"}, {"type": "not_contains", "value": "a"}),
        (
            {"type": "not-icontains", "value": "a"},
            {"type": "not_contains", "value": "a", "case_sensitive": False},
        ),
        ({"type": "regex", "value": "^x"}, {"type": "regex", "value": "^x"}),
        ({"type": "equals", "value": 42}, {"type": "equals", "value": "42"}),
        ({"type": "is-json"}, {"type": "is_json"}),
        (
            {"type": "is-json", "value": {"type": "object"}},
            {"type": "json_schema", "value": {"type": "object"}},
        ),
        (
            {"type": "similar", "value": "x", "threshold": 0.7},
            {"type": "similar", "value": "x", "threshold": 0.7},
        ),
        ({"type": "similar", "value": "x"}, {"type": "similar", "value": "x", "threshold": 0.8}),
        ({"type": "latency", "threshold": 900}, {"type": "max_latency_ms", "value": 900}),
        ({"type": "cost", "threshold": 0.5}, {"type": "max_cost_usd", "value": 0.5}),
        ({"type": "word-count", "value": {"max": 9}}, {"type": "max_words", "value": 9}),
        (
            {"type": "javascript", "value": "output.trim().length <= 80"},
            {"type": "max_chars", "value": 80},
        ),
        ({"type": "starts-with", "value": "Hi"}, {"type": "starts_with", "value": "Hi"}),
    ],
)
def test_assertions_map_to_checks(assertion: dict[str, Any], check: dict[str, Any]) -> None:
    assert check_from_assertion(assertion) == check


@pytest.mark.parametrize(
    ("assertion", "reason"),
    [
        ({"type": "contains-json"}, "PromptDeck has no contains-json check"),
        ({"type": "contains-any", "value": ["a"]}, "needs every value, not any one"),
        ({"type": "not-regex", "value": "x"}, "not-regex assertion is not supported"),
        ({"type": "latency"}, "latency needs a numeric threshold"),
        ({"type": "javascript", "value": "output.length"}, "javascript assertion is not"),
        ({"type": "is-json", "value": "file://schema.json"}, "schema from a file"),
    ],
)
def test_assertions_without_a_check_say_why(assertion: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_from_assertion(assertion)


@pytest.mark.parametrize(
    ("provider", "base_url", "model"),
    [
        ("openai:gpt-4o-mini", None, "openai/gpt-4o-mini"),
        ("openai:chat:gpt-4o-mini", None, "openai/gpt-4o-mini"),
        ("anthropic:messages:claude-3-5-haiku-latest", None, "anthropic/claude-3-5-haiku-latest"),
        ("ollama:chat:llama3.2", None, "ollama/llama3.2"),
        ("ollama:chat:llama3.2:1b", None, "ollama/llama3.2:1b"),
        ("azure:chat:my-deployment", None, "azure/my-deployment"),
        ("openrouter:meta-llama/llama-3-8b", None, "openrouter/meta-llama/llama-3-8b"),
        ("openai:chat:smollm2", "http://127.0.0.1:8080/v1", "llamacpp/smollm2"),
    ],
)
def test_provider_ids_map_to_model_references(
    monkeypatch: pytest.MonkeyPatch, provider: str, base_url: str | None, model: str
) -> None:
    monkeypatch.delenv("LLAMACPP_BASE_URL", raising=False)
    assert model_from_provider_id(provider, base_url, builtin_configs()) == model


# --- export -------------------------------------------------------------------------------


def test_export_is_a_valid_promptfoo_config(tmp_path: Path) -> None:
    out = tmp_path / "promptfooconfig.yaml"
    result = export_promptfoo(
        WORKSPACE / "datasets" / "qa.suite.yaml", out, prompts_dir=WORKSPACE / "prompts"
    )
    config = validate_promptfoo(out)
    assert [str(item) for item in result.unmapped] == [
        "gates: promptfoo has no regression gates; not exported",
        "sample: all 3 rows exported; --sampled exports the suite's sample",
        "judge.scale: promptfoo's llm-rubric grades pass/fail (0-1), not on a scale",
        f"qa/strict.checks[7]: exported, but {SIMILAR_NOTE}",
    ]
    assert [p["label"] for p in config["prompts"]] == ["qa/base", "qa/strict", "qa/chatty"]
    assert config["prompts"][1]["raw"] == "{{ question }} Reply in JSON."
    assert json.loads(config["prompts"][0]["raw"]) == [
        {"role": "system", "content": "You are a precise assistant. Answer with one word.\n"},
        {"role": "user", "content": "Question: {{ question }}\n"},
    ]
    assert config["providers"][2] == {
        "id": "ollama:chat:llama3.2",
        "label": "qa/chatty",
        "prompts": ["qa/chatty"],
        "config": {"num_predict": 64, "repeat_penalty": 1.1, "seed": 7},
    }
    assert config["defaultTest"] == {"options": {"provider": "openai:chat:gpt-4o"}}
    # base and chatty share their checks; strict has its own: each row twice, one per group
    assert result.tests == len(config["tests"]) == 6
    assert [t["providers"] for t in config["tests"][:2]] == [
        ["qa/base", "qa/chatty"],
        ["qa/strict"],
    ]
    first = config["tests"][0]
    assert (first["vars"], first["metadata"]) == (
        {"question": "What is 2 + 2?"},
        {"id": "q1", "category": "math"},
    )
    assert first["assert"][:2] == [
        {"type": "equals", "value": "4"},
        {"type": "not-icontains-any", "value": ["as an AI", "language model"]},
    ]
    assert config["tests"][-1]["assert"][-1] == {
        "type": "llm-rubric",
        "value": "Must name Rome and nothing else.",
    }


@pytest.mark.parametrize("name", ["full", "unsupported"])
def test_the_import_fixtures_are_valid_promptfoo(name: str) -> None:
    validate_promptfoo(HERE / name / "promptfooconfig.yaml")


@pytest.mark.parametrize(
    "config",
    [
        {"providers": ["openai:gpt-4o"]},  # no prompts
        {"prompts": ["hi"], "providers": ["openai:gpt-4o"], "testz": []},
        {"prompts": ["hi"], "tests": [{"assert": [{"value": "no type"}]}]},
    ],
)
def test_the_vendored_schema_rejects_what_promptfoo_rejects(config: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, SCHEMA)


def test_export_of_the_sample_only(tmp_path: Path) -> None:
    out = tmp_path / "sampled.yaml"
    result = export_promptfoo(
        WORKSPACE / "datasets" / "qa.suite.yaml",
        out,
        prompts_dir=WORKSPACE / "prompts",
        sampled=True,
    )
    validate_promptfoo(out)
    assert result.tests == 4  # 2 sampled rows x 2 check groups


def test_export_of_the_demo_suite_with_the_local_model(tmp_path: Path) -> None:
    out = tmp_path / "demo.yaml"
    result = export_promptfoo(
        REPO / "datasets" / "support_tickets.suite.yaml",
        out,
        prompts_dir=REPO / "prompts",
        presets=builtin_configs(),
    )
    config = validate_promptfoo(out)
    assert {p["id"] for p in config["providers"]} == {"openai:chat:smollm2"}
    assert any(str(i).endswith("is called as llamacpp/smollm2 (a server)") for i in result.unmapped)
    assert any(".params.logprobs: no promptfoo equivalent" in str(i) for i in result.unmapped)


def test_export_then_import_gives_the_suite_back(tmp_path: Path) -> None:
    out = tmp_path / "promptfooconfig.yaml"
    export_promptfoo(
        WORKSPACE / "datasets" / "qa.suite.yaml", out, prompts_dir=WORKSPACE / "prompts"
    )
    result = import_promptfoo(out, tmp_path / "ws", name="qa")
    assert (result.unmapped, result.notes) == ((), (f"similar: {SIMILAR_NOTE}",))
    before = load_prompts(WORKSPACE / "prompts").variants
    after = load_prompts(tmp_path / "ws" / "prompts").variants
    assert sorted(after) == sorted(before)
    for name, variant in before.items():
        again = after[name]
        for part in ("model", "params", "system", "user", "messages", "checks"):
            assert getattr(again, part) == getattr(variant, part), (name, part)
    original = load_suite(WORKSPACE / "datasets" / "qa.suite.yaml")
    imported = load_suite(tmp_path / "ws" / "datasets" / "qa.suite.yaml")
    assert imported.variants == original.variants and imported.baseline == original.baseline
    assert imported.judge is not None and original.judge is not None
    assert (imported.judge.model, imported.judge.rubric) == (
        original.judge.model,
        original.judge.rubric,
    )
    rows = [c.values for c in load_dataset(imported.dataset).cases]
    assert rows == [c.values for c in load_dataset(original.dataset).cases]


def test_export_refuses_to_overwrite_and_names_unknown_variants(tmp_path: Path) -> None:
    out = tmp_path / "exists.yaml"
    out.write_text("keep\n")
    suite = WORKSPACE / "datasets" / "qa.suite.yaml"
    with pytest.raises(ConfigError, match=r"exists\.yaml already exists"):
        export_promptfoo(suite, out, prompts_dir=WORKSPACE / "prompts")
    assert out.read_text() == "keep\n"
    with pytest.raises(ConfigError, match="unknown variant 'qa/base'"):
        export_promptfoo(suite, tmp_path / "new.yaml", prompts_dir=tmp_path)


# --- command line -------------------------------------------------------------------------


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "promptdeck", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_import_prints_what_it_wrote_and_what_it_did_not_map(tmp_path: Path) -> None:
    full = cli(
        tmp_path, "import-promptfoo", str(HERE / "full" / "promptfooconfig.yaml"), "--out", "ws"
    )
    assert full.returncode == 0, full.stderr
    lines = full.stdout.splitlines()
    assert lines[0] == "wrote ws/prompts/full/plain__gpt-4o-mini.yaml"
    assert lines[-1] == "imported 6 variants and 5 rows; 0 items not mapped"
    assert "wrote ws/datasets/full.suite.yaml" in lines

    config = str(HERE / "unsupported" / "promptfooconfig.yaml")
    partial = cli(tmp_path, "import-promptfoo", config, "--out", "ws2")
    assert partial.returncode == 0, partial.stderr
    reported = [line for line in partial.stdout.splitlines() if line.startswith("not mapped: ")]
    assert reported == [f"not mapped: {item}" for item in UNSUPPORTED]

    again = cli(tmp_path, "import-promptfoo", config, "--out", "ws2")
    assert again.returncode == 2 and again.stdout == ""
    assert "ws2/prompts/unsupported/gpt-4o-mini.yaml already exists" in again.stderr
    assert cli(tmp_path, "import-promptfoo", config, "--out", "ws2", "--force").returncode == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["import-promptfoo", str(HERE / "malformed" / "bad_yaml.yaml"), "--out", "x"], "line 2"),
        (["import-promptfoo", "missing.yaml", "--out", "x"], "missing.yaml: cannot read"),
        (["import-promptfoo", str(HERE / "full" / "promptfooconfig.yaml")], "--out"),
        (["export-promptfoo", "datasets/none.suite.yaml", "--out", "x.yaml"], "none.suite.yaml"),
        (["export-promptfoo", "datasets/qa.suite.yaml"], "--out"),
    ],
)
def test_cli_usage_and_config_errors_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    done = cli(tmp_path, *args)
    assert done.returncode == 2 and expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.yaml").exists()


def test_cli_export_writes_a_valid_config(tmp_path: Path) -> None:
    shutil.copytree(WORKSPACE, tmp_path / "ws")
    done = cli(tmp_path / "ws", "export-promptfoo", "datasets/qa.suite.yaml", "--out", "pf.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "not exported: gates: promptfoo has no regression gates; not exported",
        "not exported: sample: all 3 rows exported; --sampled exports the suite's sample",
        "not exported: judge.scale: promptfoo's llm-rubric grades pass/fail (0-1), not on a scale",
        f"not exported: qa/strict.checks[7]: exported, but {SIMILAR_NOTE}",
        "wrote pf.yaml: 6 tests; 4 items not exported",
    ]
    validate_promptfoo(tmp_path / "ws" / "pf.yaml")


def test_a_password_in_a_base_url_is_never_exported(tmp_path: Path) -> None:
    presets = builtin_configs()
    presets["llamacpp"] = replace(
        presets["llamacpp"], base_url="http://ops:hunter2-pw@127.0.0.1:8080/v1"
    )
    out = tmp_path / "demo.yaml"
    result = export_promptfoo(
        REPO / "datasets" / "support_tickets.suite.yaml",
        out,
        prompts_dir=REPO / "prompts",
        presets=presets,
    )
    config = validate_promptfoo(out)
    assert "hunter2" not in out.read_text()
    assert {p["config"]["apiBaseUrl"] for p in config["providers"]} == {"http://127.0.0.1:8080/v1"}
    assert any("credentials are not exported" in str(i) for i in result.unmapped)


# --- tools, structured output and tool checks ---------------------------------------------

TOOLS_WORKSPACE = HERE / "tools_workspace"
MOCK_NOT_EXPORTED = (
    "the mock is not exported: promptfoo has no mocked tool results (functionToolCallbacks run "
    "JavaScript and their result becomes the answer), so a promptfoo test ends at the model's "
    "first tool calls"
)
TOOLS_CALL_NOTE = (
    "promptfoo's is-valid-openai-tools-call also fails an answer that calls no tool, which "
    "PromptDeck's tool_args_valid passes"
)


def no_mock(provider: int, index: int, name: str) -> str:
    return (
        f"providers[{provider}].config.tools[{index}]: {name} has no mock in promptfoo: its "
        "mock is a placeholder that says so; write what the tool should return"
    )


def export_tools(tmp_path: Path) -> tuple[Path, list[str]]:
    out = tmp_path / "promptfooconfig.yaml"
    result = export_promptfoo(
        TOOLS_WORKSPACE / "datasets" / "orders.suite.yaml",
        out,
        prompts_dir=TOOLS_WORKSPACE / "prompts",
    )
    return out, [str(item) for item in result.unmapped]


def test_export_maps_tools_tool_choice_output_schema_and_tool_checks(tmp_path: Path) -> None:
    out, unmapped = export_tools(tmp_path)
    config = validate_promptfoo(out)
    assert unmapped == [
        f"orders/agent.tools[0].mock: get_order: {MOCK_NOT_EXPORTED}",
        f"orders/agent.tools[1].mock: cancel_order: {MOCK_NOT_EXPORTED}",
        "orders/agent.max_tool_rounds: promptfoo runs no tool rounds",
        f"orders/agent.checks[3]: exported, but {TOOLS_CALL_NOTE}",
        f"orders/claude.tools[0].mock: get_order: {MOCK_NOT_EXPORTED}",
        "orders/claude.checks[2]: exported, but it reads OpenAI's tool calls, and promptfoo's "
        "anthropic provider answers with tool_use blocks: it fails there",
    ]
    get_order = {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": "Look up an order by its id",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
    agent, claude = (p["config"] for p in config["providers"])
    assert agent["tools"][0] == get_order and claude["tools"] == [get_order]
    assert [t["function"]["name"] for t in agent["tools"]] == ["get_order", "cancel_order"]
    assert (agent["tool_choice"], agent["reasoning_effort"]) == ("auto", "low")
    assert claude["tool_choice"] == {"type": "function", "function": {"name": "get_order"}}
    assert claude["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    reply = {"type": "object", "properties": {"reply": {"type": "string"}}, "required": ["reply"]}
    assert agent["response_format"]["type"] == "json_schema"
    assert agent["response_format"]["json_schema"]["schema"]["required"] == ["reply"]
    assert claude["output_format"] == {"type": "json_schema", "schema": reply}
    assert "mock" not in out.read_text()
    first = config["tests"][0]  # orders/agent's checks on the first row
    assert first["providers"] == ["orders/agent"]
    kinds = [(a["type"], a.get("metric")) for a in first["assert"]]
    assert kinds == [
        ("javascript", None),
        ("javascript", None),
        ("javascript", "never cancels"),
        ("is-valid-openai-tools-call", None),
        ("is-json", "output_schema"),
    ]
    assert first["assert"][1]["value"].startswith(
        '// PromptDeck check: {"type": "tool_called", "name": "get_order", '
        '"args": {"order_id": "A1"}, "times": 1}\n'
    )


def test_tools_round_trip_keeps_all_but_the_mocks(tmp_path: Path) -> None:
    out, _ = export_tools(tmp_path)
    result = import_promptfoo(out, tmp_path / "ws", name="orders")
    assert [str(item) for item in result.unmapped] == [
        no_mock(0, 0, "get_order"),
        no_mock(0, 1, "cancel_order"),
        no_mock(1, 0, "get_order"),
    ]
    assert result.notes == (f"tool_args_valid: {TOOLS_CALL_NOTE}",)
    before = load_prompts(TOOLS_WORKSPACE / "prompts").variants
    after = load_prompts(tmp_path / "ws" / "prompts")
    assert after.errors == [] and sorted(after.variants) == sorted(before)
    for name, variant in before.items():
        again = after.variants[name]
        for part in ("model", "params", "system", "user", "messages", "checks", "output_schema"):
            assert getattr(again, part) == getattr(variant, part), (name, part)
        assert [replace(t, mock="") for t in again.tools] == [
            replace(t, mock="") for t in variant.tools
        ]
        assert [t.mock for t in again.tools] == [
            f'{{"note": "no mock for {t.name}: edit this template"}}' for t in variant.tools
        ]
    assert before["orders/agent"].max_tool_rounds == 3  # listed as not exported
    assert after.variants["orders/agent"].max_tool_rounds == 5
    assert before["orders/claude"].params["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_order"},
    }


TOOLS_UNMAPPED = [
    "providers[0].config.tools[0].function.strict: PromptDeck sends the schema without strict; "
    "not kept",
    no_mock(0, 0, "get_order"),
    no_mock(0, 1, "refund"),
    "providers[0].config.response_format.json_schema.strict: not kept: PromptDeck sends the "
    "schema without it",
    "providers[0].config.functionToolCallbacks: runs JavaScript as the tools; PromptDeck's "
    "tools answer with mocks",
    no_mock(1, 0, "get_order"),
    "providers[1].config.tools[1]: only function tools can be imported (type: function)",
    "tests[0].assert[0]: tool-call-f1 scores the set of tools called against a list (F1); "
    "PromptDeck has no such score: use tool_called and no_tool_called checks",
    "tests[0].assert[1]: PromptDeck has no check on the order of tool calls",
    "tests[0].assert[2]: trajectory:tool-used with a pattern (get_*): PromptDeck's checks name "
    "one tool",
    "tests[0].assert[3]: trajectory:tool-args-match with mode exact: PromptDeck matches args as "
    "a subset",
    "tests[0].assert[4]: checks a legacy function call (config.functions); PromptDeck's "
    "tool_args_valid is promptfoo's is-valid-openai-tools-call",
    "tests[0].assert[5]: javascript assertion is not supported",
    "tests[0].assert[6].metric: a tool_called check's name is the tool; metric not kept",
]


def test_import_of_tools_structured_output_and_tool_assertions(tmp_path: Path) -> None:
    config = HERE / "tools" / "promptfooconfig.yaml"
    validate_promptfoo(config)
    result = import_promptfoo(config, tmp_path)
    assert [str(item) for item in result.unmapped] == TOOLS_UNMAPPED
    assert result.notes == (f"tool_args_valid: {TOOLS_CALL_NOTE}",)
    library = load_prompts(tmp_path / "prompts")
    assert library.errors == []
    gpt, claude = (library.variants[f"tools/{m}"] for m in ("gpt-4.1-mini", "claude-sonnet-4-5"))
    assert gpt.params == {"temperature": 0, "reasoning_effort": "low", "tool_choice": "required"}
    assert claude.params == {
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tool_choice": {"type": "function", "function": {"name": "get_order"}},
    }
    order_id = {"type": "object", "properties": {"order_id": {"type": "string"}}}
    assert [(t.name, t.description) for t in gpt.tools] == [
        ("get_order", "Look up an order by its id"),
        ("refund", ""),
    ]
    assert gpt.tools[0].parameters == {
        **order_id,
        "required": ["order_id"],
        "additionalProperties": False,
    }
    assert [(t.name, t.parameters) for t in claude.tools] == [
        ("get_order", {**order_id, "required": ["order_id"]})
    ]
    assert gpt.tools[1].mock == '{"note": "no mock for refund: edit this template"}'
    answer = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    assert (gpt.output_schema, claude.output_schema) == (answer, None)
    shared = [
        ("tool_args_valid", "", None, None, None),
        ("tool_called", "get_order", None, None, None),
        ("tool_called", "get_order", None, None, 1),
        ("tool_called", "get_order", None, {"order_id": "A1"}, None),
        ("no_tool_called", "", ("refund",), None, None),
        ("json_schema", "", {"type": "object", "required": ["answer"]}, None, None),
    ]
    for variant in (gpt, claude):
        found = [(c.type, c.name, c.value, c.args, c.times) for c in variant.checks]
        automatic = [("json_schema", "output_schema", answer, None, None)]
        assert found == shared + (automatic if variant is gpt else [])


@pytest.mark.parametrize(
    ("assertion", "checks"),
    [
        ({"type": "is-valid-openai-tools-call"}, [{"type": "tool_args_valid"}]),
        (
            {"type": "trajectory:tool-used", "value": "get_order"},
            [{"type": "tool_called", "name": "get_order"}],
        ),
        (
            {"type": "trajectory:tool-used", "value": ["get_order", "refund"]},
            [
                {"type": "tool_called", "name": "get_order"},
                {"type": "tool_called", "name": "refund"},
            ],
        ),
        (
            {"type": "trajectory:tool-used", "value": {"name": "get_order", "min": 2, "max": 2}},
            [{"type": "tool_called", "name": "get_order", "times": 2}],
        ),
        (
            {"type": "trajectory:tool-used", "value": {"pattern": "refund", "min": 0, "max": 0}},
            [{"type": "tool_called", "name": "refund", "times": 0}],
        ),
        (
            {"type": "not-trajectory:tool-used", "value": "refund"},
            [{"type": "no_tool_called", "value": ["refund"]}],
        ),
        ({"type": "not-trajectory:tool-used", "value": "*"}, [{"type": "no_tool_called"}]),
        (
            {
                "type": "trajectory:tool-args-match",
                "value": {"name": "get_order", "arguments": {"order_id": "A1", "opts": [1]}},
            },
            [{"type": "tool_called", "name": "get_order", "args": {"order_id": "A1", "opts": [1]}}],
        ),
    ],
)
def test_tool_assertions_map_to_checks(
    assertion: dict[str, Any], checks: list[dict[str, Any]]
) -> None:
    assert checks_from_assertion(assertion) == checks
    if len(checks) == 1:
        assert check_from_assertion(assertion) == checks[0]


@pytest.mark.parametrize(
    ("assertion", "reason"),
    [
        ({"type": "tool-call-f1", "value": ["a"]}, "tool-call-f1 scores the set of tools"),
        ({"type": "is-valid-function-call"}, "checks a legacy function call"),
        ({"type": "trajectory:tool-sequence", "value": ["a"]}, "no check on the order"),
        ({"type": "trajectory:step-count", "value": {"max": 2}}, "step-count assertion is not"),
        ({"type": "trajectory:tool-used", "value": "get_*"}, "with a pattern"),
        ({"type": "trajectory:tool-used", "value": []}, "needs a tool name"),
        (
            {"type": "trajectory:tool-used", "value": {"name": "a", "min": 2}},
            "from 2 to None times",
        ),
        ({"type": "trajectory:tool-used", "value": {"name": "a", "type": "tool"}}, "with type"),
        ({"type": "not-trajectory:tool-used", "value": {"name": "a", "max": 1}}, "with a count"),
        (
            {
                "type": "trajectory:tool-args-match",
                "value": {"name": "a", "args": {"x": 1}, "ignore": "y"},
            },
            "with ignore has no PromptDeck equivalent",
        ),
        (
            {
                "type": "trajectory:tool-args-match",
                "value": {"name": "a", "args": {"x": [{"y": 1}]}},
            },
            "a mapping inside a list",
        ),
        ({"type": "trajectory:tool-used", "value": ["a", "b"]}, "names several tools"),
    ],
)
def test_tool_assertions_without_a_check_say_why(assertion: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_from_assertion(assertion)


TOOL_CHECKS: list[dict[str, Any]] = [
    {"type": "tool_called", "name": "get_order"},
    {"type": "tool_called", "name": "get_order", "times": 2},
    {"type": "tool_called", "name": "get_order", "args": {"order_id": "A1"}},
    {"type": "tool_called", "name": "get_order", "args": {"opts": {"fast": True}}, "times": 1},
    {"type": "tool_called", "name": "get_order", "args": {"order_id": "{{ id }} {% x %} {#"}},
    {"type": "tool_called", "name": "refund"},
    {"type": "no_tool_called"},
    {"type": "no_tool_called", "value": ["refund", "cancel"]},
    {"type": "no_tool_called", "value": "get_order", "name": "never looks up"},
]
# (name, arguments) of each call, and the reply as promptfoo's providers give it
CALLS: list[list[tuple[str, dict[str, Any]]]] = [
    [],
    [("get_order", {"order_id": "A1", "opts": {"fast": True, "cache": False}})],
    [("get_order", {"order_id": "A1"}), ("get_order", {"order_id": "B2"})],
    [("refund", {"order_id": "A1"}), ("get_order", {"order_id": "{{ id }} {% x %} {#"})],
]


def openai_output(calls: list[tuple[str, dict[str, Any]]], text: str | None) -> object:
    tool_calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
        for i, (n, a) in enumerate(calls)
    ]
    if not calls:
        return text or ""
    return {"role": "assistant", "content": text, "tool_calls": tool_calls} if text else tool_calls


def anthropic_output(calls: list[tuple[str, dict[str, Any]]]) -> str:
    blocks = ["Let me look that up."] + [
        json.dumps({"type": "tool_use", "id": f"t{i}", "name": n, "input": a})
        for i, (n, a) in enumerate(calls)
    ]
    return "\n\n".join(blocks)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_tool_check_javascript_agrees_with_promptdecks_checks(tmp_path: Path) -> None:
    # promptfoo runs a multi-line javascript value as the body of
    # new Function('output', 'context', 'process', body); so does this harness
    harness = tmp_path / "run.js"
    harness.write_text(
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "console.log(JSON.stringify(cases.map(([code, output]) =>\n"
        "  new Function('output', 'context', 'process', code)(output, {}, process))));\n"
    )
    cases, wanted = [], []
    for check in TOOL_CHECKS:
        [assertion] = assertions_from_check(check, None)
        code = assertion["value"]
        assert not re.search(r"\{[{%#]", code)  # promptfoo renders it as Nunjucks first
        assert check_from_assertion(assertion) == {
            k: v for k, v in check.items() if k != "name"
        } | ({"name": check["name"]} if check["type"] == "tool_called" else {})
        parsed = parse_check(check)
        for calls in CALLS:
            steps = [ToolStep(1, f"c{i}", n, a, "{}") for i, (n, a) in enumerate(calls)]
            [result] = run_checks([parsed], "ok", tool_steps=steps)
            for output in (openai_output(calls, None), openai_output(calls, "Looking."),
                           anthropic_output(calls)):  # fmt: skip
                cases.append([code, output])
                wanted.append(result.passed)
    done = subprocess.run(
        ["node", str(harness)], input=json.dumps(cases), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == wanted


def test_a_changed_tool_check_javascript_is_not_mapped() -> None:
    [assertion] = assertions_from_check({"type": "tool_called", "name": "get_order"}, None)
    changed = assertion["value"].replace(">= 1", ">= 2")
    with pytest.raises(ValueError, match="tool_called check, but changed since; not mapped"):
        check_from_assertion({"type": "javascript", "value": changed})
    with pytest.raises(ValueError, match="javascript assertion is not supported"):
        check_from_assertion({"type": "javascript", "value": "output[0].function.name === 'x'"})


def test_provider_tool_settings_without_a_place_are_reported(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """prompts: ['Say {{x}}']
providers:
  - id: openai:gpt-4o-mini
    config:
      tools:
        - {type: function, function: {name: "bad name"}}
        - {type: function, function: {name: ok, parameters: {type: string}}}
        - {type: function, function: {name: fine, extra: 1}, cache_control: {}}
        - just text
      tool_choice: {type: function, function: {name: ok}}
      response_format: {type: json_object}
  - id: openai:gpt-4o
    config:
      tools: file://tools.json
      tool_choice: auto
      response_format: file://format.json
  - id: anthropic:messages:claude-3-5-haiku-latest
    config:
      output_format: {type: json_schema, schema: {type: nope}}
tests: [{vars: {x: a}}]
""",
    )
    result = import_promptfoo(config, tmp_path / "out")
    assert [str(item) for item in result.unmapped] == [
        "providers[0].config.tools[0]: name: 'bad name' is not a tool name: use 1-64 letters, "
        "digits, _ or - (no spaces); tool not imported",
        "providers[0].config.tools[1]: parameters.type: must be object: a tool's arguments are "
        "named (type: object, properties: ...); tool not imported",
        "providers[0].config.tools[2].cache_control: not supported by PromptDeck; ignored",
        "providers[0].config.tools[2].function.extra: not supported by PromptDeck; ignored",
        no_mock(0, 2, "fine"),
        "providers[0].config.tools[3]: a tool is a mapping {type: function, function: {...}}; "
        "not imported",
        "providers[1].config.tools: tools from a file are not supported; not imported",
        "providers[1].config.response_format: a response_format from a file is not supported; "
        "not imported",
        "providers[2].config.output_format: schema.type: is not a valid JSON schema: 'nope' is "
        "not valid under any of the given schemas; not imported",
        "providers[0].config.tool_choice: names no tool: 'ok'. Allowed: auto, none, required, fine",
        "providers[1].config.tool_choice: the variant declares no tools: add tools:",
    ]
    variants = load_prompts(tmp_path / "out" / "prompts").variants
    first = variants["cfg/gpt-4o-mini"]
    assert [t.name for t in first.tools] == ["fine"]
    assert first.params == {"response_format": {"type": "json_object"}}
    assert variants["cfg/gpt-4o"].params == {}
