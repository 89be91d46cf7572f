"""What promptfoo and PromptDeck have in common: provider ids, assertions and checks.

promptfoo (https://promptfoo.dev) configures an eval in one `promptfooconfig.yaml`; PromptDeck
spreads the same things over variant files, a dataset and a suite. The tables here translate
the pieces that mean the same in both, both ways; `promptfoo_import` and `promptfoo_export`
walk the files. Whatever has no counterpart is reported item by item as an `Unmapped`, with
where it is, instead of being dropped silently or failing the whole conversion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from promptdeck.model.registry import ProviderConfig
from promptdeck.promptfoo.tools import (
    tool_check_from_javascript,
    tool_check_javascript,
    tool_checks_from_trajectory,
)

# promptfoo provider prefixes whose model name PromptDeck passes on unchanged; the middle
# part (chat, messages, ...) only picks the API, and PromptDeck always uses the chat API.
_PROVIDER_PREFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "openai": ("openai", ("chat",)),
    "anthropic": ("anthropic", ("messages",)),
    "ollama": ("ollama", ("chat", "completion")),
    "azure": ("azure", ("chat",)),
    "azureopenai": ("azure", ("chat",)),
    "openrouter": ("openrouter", ()),
}
# The promptfoo id PromptDeck writes for each provider it can name natively.
_EXPORT_PREFIX = {
    "openai": "openai:chat:",
    "anthropic": "anthropic:messages:",
    "ollama": "ollama:chat:",
    "azure": "azure:chat:",
    "openrouter": "openrouter:",
}
_CODE_PROVIDERS = {
    "python": "runs Python code",
    "exec": "runs a shell command",
    "file": "is loaded from a code or config file",
    "http": "is an HTTP webhook",
    "https": "is an HTTP webhook",
    "webhook": "is an HTTP webhook",
    "js": "runs JavaScript code",
}

# promptfoo provider config key -> PromptDeck param (Ollama names max_tokens num_predict)
PARAM_NAMES = {
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "num_predict": "max_tokens",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "stop": "stop",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "response_format": "response_format",
    "repeat_penalty": "repeat_penalty",
    "tool_choice": "tool_choice",
    "reasoning_effort": "reasoning_effort",
    "thinking": "thinking",
}


@dataclass(frozen=True)
class Unmapped:
    """One thing that was not converted, and where it is (`tests[3].assert[1]`)."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def model_from_provider_id(
    provider_id: str, base_url: str | None, presets: Mapping[str, ProviderConfig]
) -> str:
    """The PromptDeck model reference for a promptfoo provider id; ValueError says why not.

    `openai:chat:m` with an `apiBaseUrl` that one of PromptDeck's providers serves (Ollama,
    vLLM, a llama.cpp server, ...) becomes that provider's reference, e.g. `vllm/m`.
    """
    prefix, _, rest = provider_id.partition(":")
    if prefix in _CODE_PROVIDERS or provider_id.startswith("file://"):
        kind = "file" if provider_id.startswith("file://") else prefix
        raise ValueError(f"provider '{provider_id}' {_CODE_PROVIDERS[kind]}; PromptDeck cannot")
    if prefix not in _PROVIDER_PREFIXES or not rest:
        raise ValueError(f"provider '{provider_id}' has no PromptDeck equivalent")
    name, apis = _PROVIDER_PREFIXES[prefix]
    api, _, model = rest.partition(":")
    if apis and api in apis and model:
        rest = model
    elif api in ("completion", "embedding", "embeddings", "assistant", "responses", "image"):
        raise ValueError(f"provider '{provider_id}': the {api} API is not supported (chat only)")
    if base_url:
        preset = next(
            (p for p in presets.values() if p.base_url.rstrip("/") == base_url.rstrip("/")), None
        )
        if preset is None:
            raise ValueError(
                f"provider '{provider_id}' at {base_url}: declare that server in "
                "providers.yaml and use its name as the model's provider"
            )
        name = preset.name
    return f"{name}/{rest}"


def provider_id_for(model: str, presets: Mapping[str, ProviderConfig]) -> tuple[str, str | None]:
    """The promptfoo provider id (and apiBaseUrl, if any) that calls PromptDeck's `model`.

    Providers promptfoo does not know by name (vLLM, LM Studio, providers.yaml entries) speak
    the OpenAI wire format, so promptfoo's openai provider reaches them at their base URL."""
    name, _, rest = model.partition("/")
    if name in _EXPORT_PREFIX:
        return _EXPORT_PREFIX[name] + rest, None
    preset = presets.get(name)
    if preset is None or not preset.base_url:
        raise ValueError(f"{model}: PromptDeck provider '{name}' has no URL promptfoo could call")
    return f"openai:chat:{rest}", preset.base_url


# --- assertions <-> checks ----------------------------------------------------------------

# promptfoo assertion type -> (PromptDeck check type, extra check options)
_DIRECT: dict[str, tuple[str, dict[str, Any]]] = {
    "contains": ("contains", {}),
    "contains-all": ("contains", {}),
    "icontains": ("icontains", {}),
    "icontains-all": ("icontains", {}),
    "not-contains": ("not_contains", {}),
    "not-contains-any": ("not_contains", {}),
    "not-icontains": ("not_contains", {"case_sensitive": False}),
    "not-icontains-any": ("not_contains", {"case_sensitive": False}),
    "regex": ("regex", {}),
    "starts-with": ("starts_with", {}),
    "equals": ("equals", {}),
}
_WHY_NOT = {
    "contains-json": "PromptDeck has no contains-json check (is_json would fail answers with "
    "text around the JSON)",
    "contains-any": "PromptDeck's contains needs every value, not any one of them",
    "icontains-any": "PromptDeck's icontains needs every value, not any one of them",
    "tool-call-f1": "tool-call-f1 scores the set of tools called against a list (F1); "
    "PromptDeck has no such score: use tool_called and no_tool_called checks",
    "is-valid-function-call": "checks a legacy function call (config.functions); PromptDeck's "
    "tool_args_valid is promptfoo's is-valid-openai-tools-call",
    "is-valid-openai-function-call": "checks a legacy function call (config.functions); "
    "PromptDeck's tool_args_valid is promptfoo's is-valid-openai-tools-call",
    "trajectory:tool-sequence": "PromptDeck has no check on the order of tool calls",
}
_TRAJECTORY = ("trajectory:tool-used", "not-trajectory:tool-used", "trajectory:tool-args-match")
# The JavaScript assertions the exporter writes for the length checks promptfoo lacks.
_LENGTH_JS = {
    "min_chars": "output.trim().length >= {}",
    "max_chars": "output.trim().length <= {}",
}
_LENGTH_JS_PATTERN = re.compile(r"output\.trim\(\)\.length (<=|>=) (\d+)")


def checks_from_assertion(assertion: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checks for one deterministic assertion: one, except for a trajectory:tool-used
    naming several tools (a tool_called check each). ValueError says why there are none."""
    kind = str(assertion.get("type"))
    if kind in _TRAJECTORY:
        return tool_checks_from_trajectory(kind, assertion.get("value"))
    return [check_from_assertion(assertion)]


def check_from_assertion(assertion: Mapping[str, Any]) -> dict[str, Any]:
    """A check (as the mapping `parse_check` reads) for one deterministic assertion.

    ValueError says why there is none. llm-rubric is not a check: the caller handles it."""
    kind = str(assertion.get("type"))
    if kind in _TRAJECTORY:
        found = tool_checks_from_trajectory(kind, assertion.get("value"))
        if len(found) > 1:
            raise ValueError(f"{kind} names several tools: read it with checks_from_assertion")
        return found[0]
    value, threshold = assertion.get("value"), assertion.get("threshold")
    if isinstance(value, int | float) and not isinstance(value, bool) and kind in _DIRECT:
        value = str(value)  # `equals: 42` in YAML compares the text 42
    if kind in _DIRECT:
        check_type, options = _DIRECT[kind]
        if isinstance(value, list) and kind not in ("equals", "regex", "starts-with"):
            return {"type": check_type, "value": [str(v) for v in value], **options}
        if not isinstance(value, str):
            raise ValueError(f"{kind} needs a text value here, got {type(value).__name__}")
        return {"type": check_type, "value": value, **options}
    if kind == "is-json":
        if value is None:
            return {"type": "is_json"}
        if isinstance(value, dict):
            return {"type": "json_schema", "value": value}
        raise ValueError("is-json with a schema from a file is not supported")
    if kind == "similar":
        if not isinstance(value, str):
            raise ValueError("similar needs a text value")
        return {"type": "similar", "value": value, "threshold": _fraction(threshold, 0.8)}
    if kind in ("latency", "cost"):
        if not isinstance(threshold, int | float) or isinstance(threshold, bool):
            raise ValueError(f"{kind} needs a numeric threshold")
        check = "max_latency_ms" if kind == "latency" else "max_cost_usd"
        return {"type": check, "value": threshold}
    if kind == "word-count" and isinstance(value, dict) and set(value) == {"max"}:
        return {"type": "max_words", "value": value["max"]}
    if kind == "is-valid-openai-tools-call":
        return {"type": "tool_args_valid"}
    if kind == "javascript" and isinstance(value, str):
        match = _LENGTH_JS_PATTERN.fullmatch(value.strip())
        if match:
            check = "max_chars" if match[1] == "<=" else "min_chars"
            return {"type": check, "value": int(match[2])}
        tool_check = tool_check_from_javascript(value)
        if tool_check is not None:
            return tool_check
    raise ValueError(_WHY_NOT.get(kind, f"{kind} assertion is not supported"))


def _fraction(value: object, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return default


def assertions_from_check(check: Mapping[str, Any], expected: str | None) -> list[dict[str, Any]]:
    """promptfoo assertions for one PromptDeck check (as a mapping); ValueError says why not.

    `expected` is the row's reference answer, for equals/similar checks without a value."""
    kind, value = check["type"], check.get("value")
    insensitive = check.get("case_sensitive") is False
    texts = list(value) if isinstance(value, list | tuple) else [value]
    if kind in ("contains", "icontains"):
        base = "icontains" if kind == "icontains" or insensitive else "contains"
        return [{"type": base + "-all", "value": texts} if len(texts) > 1 else _one(base, value)]
    if kind == "not_contains":
        base = "not-icontains" if insensitive else "not-contains"
        return [{"type": base + "-any", "value": texts} if len(texts) > 1 else _one(base, value)]
    if kind in ("regex", "starts_with", "equals"):
        if insensitive:
            raise ValueError(f"{kind} with case_sensitive: false has no promptfoo equivalent")
        if kind == "equals" and value is None:
            texts = [expected] if expected else []
        name = {"starts_with": "starts-with"}.get(kind, kind)
        return [{"type": name, "value": text} for text in texts]
    if kind == "similar":
        target = value if value is not None else expected
        threshold = check.get("threshold")
        found = {"threshold": threshold} if threshold is not None else {}
        return [{"type": "similar", "value": target, **found}] if target else []
    if kind in ("tool_called", "no_tool_called"):
        return [{"type": "javascript", "value": tool_check_javascript(check)}]
    return [_other_assertion(kind, value)]


def _one(kind: str, value: object) -> dict[str, Any]:
    return {"type": kind, "value": value[0] if isinstance(value, list | tuple) else value}


def _other_assertion(kind: str, value: Any) -> dict[str, Any]:
    if kind == "is_json":
        return {"type": "is-json"}
    if kind == "json_schema":
        return {"type": "is-json", "value": value}
    if kind == "max_words":
        return {"type": "word-count", "value": {"max": value}}
    if kind in _LENGTH_JS:
        return {"type": "javascript", "value": _LENGTH_JS[kind].format(value)}
    if kind == "max_latency_ms":
        return {"type": "latency", "threshold": value}
    if kind == "max_cost_usd":
        return {"type": "cost", "threshold": value}
    if kind == "tool_args_valid":
        return {"type": "is-valid-openai-tools-call"}
    raise ValueError(f"{kind} check has no promptfoo equivalent")


# --- YAML out -----------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True  # `&id001` anchors confuse people reading the file; repeat the value


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # block style keeps prompts and rubrics readable; YAML cannot block a trailing-space line
    if "\n" in text and not any(line != line.rstrip() for line in text.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", text)


_Dumper.add_representer(str, _text)


def dump_yaml(data: object) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
