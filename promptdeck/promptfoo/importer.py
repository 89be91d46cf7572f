"""Import a promptfooconfig.yaml as PromptDeck files under a workspace folder DIR.

    DIR/prompts/<task>/<variant>.yaml    one per (prompt x provider) pair promptfoo would run
    DIR/datasets/<name>.csv              one row per test
    DIR/datasets/<name>.suite.yaml       the variants, the dataset and the judge

Naming: <name> (and <task>) is the config file's stem, or its folder's name for the default
`promptfooconfig.yaml`. A variant is named after the prompt's label and the provider's label
(or model), with only the part that tells the pairs apart; a pair whose prompt and provider
share a `task/variant` label (as `export-promptfoo` writes them) keeps that name.

What maps is in `config.py`, `checks.py` and `tools.py` (a provider's tools, tool_choice and
JSON-schema response format); every other item is reported in `ImportResult.unmapped` with its
place, and the import still writes what it could. A promptfoo tool has no mock: the variant
gets one that says so, and the tool is listed there as something to complete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptdeck.errors import ConfigError, PromptFileError
from promptdeck.model.registry import ProviderConfig, builtin_configs
from promptdeck.promptfoo.checks import Mapped, map_tests
from promptdeck.promptfoo.config import PARAM_NAMES, Unmapped, dump_yaml, model_from_provider_id
from promptdeck.promptfoo.testcases import PromptfooTest, TestReader, local_paths
from promptdeck.promptfoo.tools import (
    output_schema_from_config,
    tool_choice_from_config,
    tools_from_config,
)
from promptdeck.workspace.fileio import atomic_write, read_text
from promptdeck.workspace.prompts import OUTPUT_SCHEMA_CHECK, variant_from_dict
from promptdeck.workspace.yamlfile import parse_yaml

CONFIG_KEYS = (  # the rest (scenarios, env, ...) is reported
    "description",
    "prompts",
    "providers",
    "targets",
    "tests",
    "defaultTest",
)
_TEXT_SUFFIXES = ("", ".txt", ".md", ".j2")
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ImportResult:
    written: tuple[Path, ...]
    variants: tuple[str, ...]
    rows: int
    unmapped: tuple[Unmapped, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Prompt:
    refs: tuple[str, ...]  # what a `prompts:` filter can name it by: label, id, file://path
    key: str  # its label (or file name) for the variant name
    messages: tuple[tuple[str, str], ...]
    where: str


@dataclass(frozen=True)
class Provider:
    refs: tuple[str, ...]  # label and id, as a test's `providers:` filter names them
    key: str
    model: str
    params: Mapping[str, Any]
    prompts: tuple[str, ...] | None
    where: str
    tools: tuple[Mapping[str, Any], ...] = ()
    output_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Pair:
    name: str
    prompt: Prompt
    provider: Provider


@dataclass
class _Context:
    config: Path
    presets: Mapping[str, ProviderConfig]
    unmapped: dict[str, Unmapped] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def report(self, where: str, reason: str) -> None:
        item = Unmapped(where, reason)
        self.unmapped.setdefault(str(item), item)  # a defaultTest item counts once, not per test

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.config}: {message}")


def import_promptfoo(
    config: Path,
    out: Path,
    *,
    force: bool = False,
    name: str | None = None,
    presets: Mapping[str, ProviderConfig] | None = None,
) -> ImportResult:
    """Convert `config` into files under `out`; refuses to overwrite unless `force`."""
    ctx = _Context(config, builtin_configs() if presets is None else presets)
    data = _load(config)
    name = slug(
        name or (config.parent.resolve().name if config.stem == "promptfooconfig" else config.stem)
    )
    for key in data:
        if key not in CONFIG_KEYS:
            ctx.report(str(key), "not supported by PromptDeck; ignored")
    if data.get("prompts") is None:
        raise ctx.fail("'prompts' is missing: promptfoo needs at least one prompt")
    prompts = read_prompts(data["prompts"], ctx)
    providers = read_providers(data.get("providers", data.get("targets")), ctx)
    reader = TestReader(config, ctx.report, ctx.notes.append)
    tests = reader.read(data.get("tests"), data.get("defaultTest"))
    pairs = pair_up(prompts, providers, name, ctx)
    mapped = map_tests(tests, pairs, ctx.report, ctx.notes.append)
    files = _files(out, name, pairs, mapped, tests, ctx)
    written = write_files(files, force=force)
    variants = tuple(v for v in mapped.checks if out / "prompts" / f"{v}.yaml" in files)
    rows = len(mapped.rows)
    return ImportResult(written, variants, rows, tuple(ctx.unmapped.values()), tuple(ctx.notes))


def _load(config: Path) -> dict[str, Any]:
    try:
        data = parse_yaml(read_text(config))
    except ValueError as exc:
        raise ConfigError(f"{config}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{config}: a promptfoo config is a mapping (prompts:, providers:, ...)")
    return data


def slug(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip()).strip("-.").lower()
    return cleaned[:60].rstrip("-.") or "imported"


# --- prompts ------------------------------------------------------------------------------


def read_prompts(raw: object, ctx: _Context) -> list[Prompt]:
    """Every prompt promptfoo would use, in order; a prompt made by code is reported."""
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, dict):  # the map form: {file://path: label}
        raw = [{"id": k, "label": v} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise ctx.fail("'prompts' must be a prompt, a list of prompts or a file:// path")
    prompts: list[Prompt] = []
    for index, item in enumerate(raw):
        where = f"prompts[{index}]"
        if isinstance(item, str):
            item = {"raw": item} if not item.startswith("file://") else {"id": item}
        if not isinstance(item, dict):
            raise ctx.fail(f"{where}: a prompt is text or a mapping with raw/id, got {item!r}")
        label = item.get("label")
        if label is not None and not isinstance(label, str):
            raise ctx.fail(f"{where}.label must be text")
        if isinstance(item.get("raw"), str):
            refs = tuple(str(r) for r in (label, item.get("id")) if r)
            prompts.extend(_prompt(item["raw"], refs, label or f"prompt{index + 1}", where, ctx))
        elif isinstance(item.get("id"), str) and item["id"].startswith("file://"):
            prompts.extend(_prompts_from_file(item["id"], label, where, ctx))
        else:
            ctx.report(where, "only text prompts and file:// prompts can be imported")
    return prompts


def _prompt(text: str, refs: tuple[str, ...], key: str, where: str, ctx: _Context) -> list[Prompt]:
    messages: tuple[tuple[str, str], ...] = (("user", text),)
    if text.lstrip().startswith("["):
        try:
            chat = json.loads(text)
        except json.JSONDecodeError:
            chat = None  # a text prompt that starts with a bracket
        if chat is not None:
            return _chat(chat, refs, key, where, ctx)
    return [Prompt(refs, key, messages, where)]


def _chat(chat: object, refs: tuple[str, ...], key: str, where: str, ctx: _Context) -> list[Prompt]:
    if not isinstance(chat, list) or not chat:
        ctx.report(where, "a chat prompt must be a list of {role, content} messages")
        return []
    messages = []
    for index, message in enumerate(chat):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in _ROLES or not isinstance(content, str):
            ctx.report(f"{where}[{index}]", "only system/user/assistant messages with text content")
            return []
        messages.append((str(role), content))
    return [Prompt(refs, key, tuple(messages), where)]


def _prompts_from_file(ref: str, label: str | None, where: str, ctx: _Context) -> list[Prompt]:
    pattern = ref.removeprefix("file://")
    if ":" in pattern and not pattern.startswith(("/", ".")) and pattern.count(":") == 1:
        ctx.report(where, f"{ref}: a prompt made by a function is not supported")
        return []
    try:
        paths = local_paths(ctx.config.parent, ref)
    except ValueError as exc:
        raise ctx.fail(f"{where}: {exc}") from None
    prompts: list[Prompt] = []
    for path in paths:
        if path.suffix not in (*_TEXT_SUFFIXES, ".json", ".yaml", ".yml"):
            ctx.report(where, f"{path.name}: prompts from {path.suffix} files are not supported")
            continue
        prompts.extend(_prompts_from_path(path, label, ref, where, ctx))
    if not paths:
        raise ctx.fail(f"{where}: no file matches {ref}")
    return prompts


def _prompts_from_path(
    path: Path, label: str | None, ref: str, where: str, ctx: _Context
) -> list[Prompt]:
    try:
        text = read_text(path)
    except ValueError as exc:
        raise ctx.fail(f"{where}: {path}: {exc}") from None
    shown = f"file://{path.relative_to(ctx.config.parent).as_posix()}"
    refs = tuple(dict.fromkeys(r for r in (label, ref, shown) if r))
    key = label or path.stem
    if path.suffix == ".json":
        return _prompt(text, refs, key, where, ctx)
    if path.suffix in (".yaml", ".yml"):
        try:
            return _chat(parse_yaml(text), refs, key, where, ctx)
        except ValueError as exc:
            raise ctx.fail(f"{where}: {path}: {exc}") from None
    # promptfoo splits a text file into several prompts at lines of `---`
    parts = [p.strip() for p in re.split(r"^\s*---\s*$", text, flags=re.M) if p.strip()]
    prompts = []
    for n, part in enumerate(parts, start=1):
        prompts.extend(_prompt(part, refs, key if len(parts) == 1 else f"{key}-{n}", where, ctx))
    return prompts


# --- providers ----------------------------------------------------------------------------


def read_providers(raw: object, ctx: _Context) -> list[Provider]:
    if raw is None:
        raise ctx.fail("'providers' is missing: promptfoo needs at least one provider")
    items = raw if isinstance(raw, list) else [raw]
    providers = []
    for index, item in enumerate(items):
        where = f"providers[{index}]" if isinstance(raw, list) else "providers"
        if isinstance(item, dict) and "id" not in item and len(item) == 1:
            [(ident, options)] = item.items()  # the map form: {openai:gpt-4o: {config: ...}}
            item = {"id": ident, **(options if isinstance(options, dict) else {})}
        if isinstance(item, str):
            item = {"id": item}
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ctx.fail(f"{where}: a provider is an id or a mapping with an 'id'")
        provider = _provider(item, where, ctx)
        if provider is not None:
            providers.append(provider)
    return providers


def _provider(item: Mapping[str, Any], where: str, ctx: _Context) -> Provider | None:
    for key in item:
        if key not in ("id", "label", "config", "prompts"):
            ctx.report(f"{where}.{key}", "not supported by PromptDeck; ignored")
    config = item.get("config") or {}
    if not isinstance(config, dict):
        raise ctx.fail(f"{where}.config must be a mapping")
    base_url = config.get("apiBaseUrl")
    try:
        model = model_from_provider_id(item["id"], base_url, ctx.presets)
    except ValueError as exc:
        ctx.report(where, str(exc))
        return None
    params: dict[str, Any] = {}
    tools: list[dict[str, Any]] = []
    output_schema = None
    for key, value in config.items():
        at = f"{where}.config.{key}"
        if key == "tools":
            tools = tools_from_config(value, at, ctx.report)
        elif key in ("response_format", "output_format") and _json_schema(value):
            output_schema = output_schema_from_config(key, value, at, ctx.report)
        elif key == "tool_choice":
            params["tool_choice"] = tool_choice_from_config(value)
        elif key in PARAM_NAMES:
            params[PARAM_NAMES[key]] = value
        elif key == "apiKey":
            ctx.report(at, "keys are never imported: set the env variable")
        elif key == "functionToolCallbacks":
            ctx.report(at, "runs JavaScript as the tools; PromptDeck's tools answer with mocks")
        elif key != "apiBaseUrl":
            ctx.report(at, "not a PromptDeck model parameter; ignored")
    label = item.get("label")
    prompts = item.get("prompts")
    if prompts is not None and not (
        isinstance(prompts, list) and all(isinstance(p, str) for p in prompts)
    ):
        raise ctx.fail(f"{where}.prompts must be a list of prompt labels")
    refs = tuple(str(r) for r in (label, item["id"]) if r)
    key = str(label) if label else model.rpartition("/")[2]
    found = tuple(prompts) if prompts else None
    return Provider(refs, key, model, params, found, where, tuple(tools), output_schema)


def _json_schema(value: object) -> bool:
    """A response format asking for a JSON schema (a file:// one too): PromptDeck's
    output_schema. Others (json_object) are the response_format parameter."""
    return isinstance(value, str) or (
        isinstance(value, dict) and value.get("type") == "json_schema"
    )


# --- variants -----------------------------------------------------------------------------

_TASK_VARIANT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*")


def pair_up(
    prompts: list[Prompt], providers: list[Provider], task: str, ctx: _Context
) -> list[Pair]:
    """The (prompt x provider) pairs promptfoo runs, honouring a provider's `prompts:` filter."""
    combos = [
        (prompt, provider)
        for provider in providers
        for prompt in prompts
        if provider.prompts is None or set(provider.prompts) & set(prompt.refs)
    ]
    several_prompts = len({id(p) for p, _ in combos}) > 1
    several_providers = len({id(p) for _, p in combos}) > 1
    pairs: list[Pair] = []
    taken: set[str] = set()
    for prompt, provider in combos:
        if prompt.key == provider.key and _TASK_VARIANT.fullmatch(prompt.key):
            name = prompt.key  # written by export-promptfoo: keep the original name
        else:
            parts = [prompt.key] if several_prompts or not several_providers else []
            parts += [provider.key] if several_providers else []
            name = f"{task}/{'__'.join(slug(part) for part in parts)}"
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}-{n}", n + 1
        taken.add(unique)
        pairs.append(Pair(unique, prompt, provider))
    if not pairs:
        ctx.report("providers", "no (prompt x provider) pair could be imported: no variants")
    return pairs


def variant_data(pair: Pair, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The variant file's content: `system`/`user` when the chat has that shape, else messages."""
    data: dict[str, Any] = {
        "description": f"Imported from promptfoo: {pair.prompt.where} on {pair.provider.where}",
        "model": pair.provider.model,
    }
    if pair.provider.params:
        data["params"] = dict(pair.provider.params)
    roles = [role for role, _ in pair.prompt.messages]
    if roles in (["user"], ["system", "user"]):
        data.update(dict(pair.prompt.messages))
    else:
        data["messages"] = [{"role": r, "content": c} for r, c in pair.prompt.messages]
    if pair.provider.tools:
        data["tools"] = [dict(tool) for tool in pair.provider.tools]
    schema = pair.provider.output_schema
    if schema is not None:
        data["output_schema"] = dict(schema)
        # PromptDeck checks an output_schema by itself: the exported is-json is that check
        implied = {"type": "json_schema", "value": schema, "name": OUTPUT_SCHEMA_CHECK}
        checks = [check for check in checks if check != implied]
    if checks:
        data["checks"] = checks
    return data


def _valid_variant(path: Path, pair: Pair, data: dict[str, Any], ctx: _Context) -> bool:
    """Whether PromptDeck loads the variant; a bad parameter is dropped, a bad template skips it."""
    while True:
        try:
            variant_from_dict(data, name=pair.name, path=str(path))
            return True
        except PromptFileError as exc:
            param = (exc.field or "").removeprefix("params.")
            if exc.field and exc.field.startswith("params.") and param in data.get("params", {}):
                ctx.report(f"{pair.provider.where}.config.{param}", exc.detail)
                del data["params"][param]
                continue
            ctx.report(pair.prompt.where, f"{pair.name} not imported: {exc.field}: {exc.detail}")
            return False


# --- files --------------------------------------------------------------------------------


def _files(
    out: Path,
    name: str,
    pairs: list[Pair],
    mapped: Mapped,
    tests: list[PromptfooTest],
    ctx: _Context,
) -> dict[Path, str]:
    files: dict[Path, str] = {}
    variants = []
    for pair in pairs:
        path = out / "prompts" / f"{pair.name}.yaml"
        data = variant_data(pair, mapped.checks[pair.name])
        if _valid_variant(path, pair, data, ctx):
            files[path] = dump_yaml(data)
            variants.append(pair.name)
    if not mapped.rows:
        ctx.report("tests", "no tests: no dataset or suite written")
        return files
    files[out / "datasets" / f"{name}.csv"] = mapped.csv()
    if variants:
        suite: dict[str, Any] = {
            "dataset": f"{name}.csv",
            "variants": variants,
            "baseline": variants[0],
        }
        if mapped.rubric:
            suite["judge"] = {"model": _judge(mapped.grader, pairs, ctx), "rubric": mapped.rubric}
        files[out / "datasets" / f"{name}.suite.yaml"] = dump_yaml(suite)
    return files


def _judge(grader: str | None, pairs: list[Pair], ctx: _Context) -> str:
    if grader is not None:
        try:
            return model_from_provider_id(grader, None, ctx.presets)
        except ValueError as exc:
            ctx.report("grading provider", str(exc))
    judge = pairs[0].provider.model
    ctx.notes.append(f"judge model: no usable grading provider given; using {judge}")
    return judge


def write_files(files: Mapping[Path, str], *, force: bool) -> tuple[Path, ...]:
    """Write every file atomically; with one already there and no `force`, write none."""
    existing = [path for path in files if path.exists()]
    if existing and not force:
        raise ConfigError(
            f"{existing[0]} already exists; nothing was written. Use --force to overwrite it"
            + (f" and {len(existing) - 1} more" if len(existing) > 1 else "")
        )
    for path, text in files.items():
        atomic_write(path, text)
    return tuple(files)
