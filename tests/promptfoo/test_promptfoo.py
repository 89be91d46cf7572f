"""promptfoo interop: import configs into PromptDeck files, export suites as promptfoo configs.

Exports are validated against promptfoo's own config schema (vendored, see
tests/promptfoo/README.md); imports are read back with PromptDeck's own loaders.
"""

from __future__ import annotations

import json
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
from promptdeck.promptfoo.config import check_from_assertion, model_from_provider_id
from promptdeck.promptfoo.exporter import export_promptfoo
from promptdeck.promptfoo.importer import import_promptfoo
from promptdeck.promptfoo.testcases import assertion_from_text
from promptdeck.workspace.datasets import load_dataset
from promptdeck.workspace.prompts import load_prompts

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
SCHEMA = json.loads((HERE / "config-schema.json").read_text())
WORKSPACE = HERE / "workspace"
COMMON_CHECKS = [
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
