"""The bounded Jinja2 sandbox that prompt templates render in.

Jinja2's sandbox keeps a template away from Python internals; it does not bound the work a
template does. Here every render has a budget, and a template that runs into it stops with
RenderLimit, whose message names the limit (prompts.py reports it as a TemplateError that
names the variant):

- time: RENDER_SECONDS of wall clock, and MAX_STEPS loop iterations, calls, filters and
  outputs, checked at each of them (a nested loop over range(100000) stops at a million);
- compiling: at most MAX_TEMPLATE_TAGS tags and MAX_TEMPLATE_NODES parts, nested no deeper
  than Python's stack allows;
- size: the output, each text and list built along the way, at most MAX_OUTPUT_CHARS
  characters or MAX_ITEMS items. Operations that would build something too large are
  refused before they allocate it: `'x' * 10**9`, `'x'|center(10**9)`, `'%999999999d' % 1`,
  `'{:>999999999}'.format(1)`, `s.replace('a', s)`, `2 ** 10**9`. Lists, dicts and sets
  cannot be changed in place (ImmutableSandboxedEnvironment), so a loop cannot double one.

`render_budget()` opens a budget for everything rendered inside it (one prompt, all its
messages); `render_text` renders one compiled template, counting what it generates.
"""

from __future__ import annotations

import functools
import re
import string
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import Namespace, generate_lorem_ipsum
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

RENDER_SECONDS = 2.0
MAX_STEPS = 1_000_000
# A rendered prompt past 8 Mi characters (about two million tokens) fits no model's context;
# it is twice the largest dataset cell (datasets.MAX_CELL_CHARS), so a cell always renders.
MAX_OUTPUT_CHARS = 8 * 1024 * 1024
MAX_ITEMS = 1_000_000
MAX_INT_BITS = 100_000  # about 30,000 digits
# Compiling costs about 0.1 ms a part: a prompt needs tens of tags, not thousands.
MAX_TEMPLATE_TAGS = 5_000
MAX_TEMPLATE_NODES = 30_000

# filters the compiler inserts (_Instrument)
_LOOP, _TEXT, _OUTPUT = "_promptdeck_loop", "_promptdeck_text", "_promptdeck_output"
# Filters that go through their input item by item, or build a list from it.
_ITEM_FILTERS = frozenset(
    {
        *("batch", "dictsort", "groupby", "items", "join", "list", "map", "max", "min"),
        *("reject", "rejectattr", "reverse", "select", "selectattr", "slice", "sort", "sum"),
        "unique",
    }
)
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


class RenderLimit(Exception):
    """A render ran into one of its bounds; the message says which."""


@dataclass
class _Budget:
    seconds: float
    deadline: float
    steps: int = 0
    values: int = 0  # characters of {{ expressions }}, wherever they are output
    output: int = 0  # characters the templates generated

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise RenderLimit(
                f"stopped after {MAX_STEPS:,} loop iterations and calls, the limit for "
                "rendering one prompt"
            )
        if time.monotonic() > self.deadline:
            raise RenderLimit(f"stopped after {self.seconds:g} s, the time limit for one prompt")


_BUDGET: ContextVar[_Budget | None] = ContextVar("promptdeck_render_budget", default=None)


@contextmanager
def render_budget(seconds: float = RENDER_SECONDS) -> Iterator[None]:
    """Bound every render inside the block together: time, steps and output."""
    token = _BUDGET.set(_Budget(seconds, time.monotonic() + seconds))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()


# --- sizes -------------------------------------------------------------------------------


def _too_big(what: str, size: float, limit: int, unit: str = "characters") -> RenderLimit:
    shown = f"{size:,.0f}" if size < 1e15 else "far more"
    return RenderLimit(
        f"{what} would have {shown} {unit}; the limit is {limit:,} (is a loop or a "
        "multiplication running away?)"
    )


def _text_size(value: object, limit: int = MAX_OUTPUT_CHARS) -> int:
    """About how many characters str(value) has, counting stops a little past `limit`. A
    list may hold the same big text a million times; counting never expands it further."""
    total, seen, stack = 0, 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        seen += 1
        if seen > MAX_ITEMS:
            raise _too_big("turning a list into text", seen, MAX_ITEMS, "items")
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, Namespace):
            stack.append(item.__dict__.get("_Namespace__attrs", {}))
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 24
    return total


def _check_text(value: object, what: str = "a text") -> None:
    size = len(value) if isinstance(value, str) else _text_size(value)
    if size > MAX_OUTPUT_CHARS:
        raise _too_big(what, size, MAX_OUTPUT_CHARS)


def _check_result(result: object) -> object:
    if isinstance(result, str | bytes) and len(result) > MAX_OUTPUT_CHARS:
        raise _too_big("a text", len(result), MAX_OUTPUT_CHARS)
    if isinstance(result, list | tuple | dict | set | frozenset) and len(result) > MAX_ITEMS:
        raise _too_big("a list", len(result), MAX_ITEMS, "items")
    return result


def _check_ints(args: Iterable[object], limit: int = MAX_OUTPUT_CHARS) -> None:
    """Whole-number arguments of builtin methods and filters are widths, counts and
    lengths: one past the output limit would only ever build something too large."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > limit:
            shown = f"{abs(arg):,}" if abs(arg) < 10**15 else "a huge number"
            raise RenderLimit(f"a width or count of {shown} is over the limit of {limit:,}")


def _check_items(value: object) -> None:
    sized = isinstance(value, str | bytes | list | tuple | dict | set | frozenset | range)
    if sized and len(value) > MAX_ITEMS:  # type: ignore[arg-type]
        raise _too_big("a list", len(value), MAX_ITEMS, "items")  # type: ignore[arg-type]


def _guarded_list(value: Iterable[object]) -> list[object]:
    items = []
    for item in value:
        _step()
        items.append(item)
        if len(items) > MAX_ITEMS:
            raise _too_big("a list", len(items), MAX_ITEMS, "items")
    return items


def _check_percent(fmt: str, args: object) -> None:
    """`fmt % args`: the widths and precisions it asks for, and the values it prints."""
    asked, star = 0, False
    for match in _PERCENT.finditer(fmt):
        for number in match.groups():
            if number == "*":
                star = True
            elif number:
                asked += int(number) if len(number) < 12 else 10**12
    values = args if isinstance(args, tuple) else (args,)
    if star:
        asked += sum(abs(a) for a in values if isinstance(a, int) and not isinstance(a, bool))
    size = len(fmt) + asked + (_text_size(args) if not isinstance(args, str) else len(args))
    if size > MAX_OUTPUT_CHARS:
        raise _too_big("a formatted text", size, MAX_OUTPUT_CHARS)


# --- operators, calls and filters -------------------------------------------------------


def _int_bits(value: int) -> int:
    return max(value.bit_length(), 1)


def _check_binop(op: str, left: Any, right: Any) -> None:
    """`left op right` for the operators that can build something far larger than their
    operands: the size it would have, checked before it is built."""
    seq, count = (left, right) if isinstance(right, int) else (right, left)
    ints = isinstance(left, int) and isinstance(right, int)
    size, limit, what, unit = 0, MAX_OUTPUT_CHARS, "a text", "characters"
    if op == "*" and isinstance(seq, str | bytes) and isinstance(count, int):
        size, what = len(seq) * count, "a repeated text"
    elif op == "*" and isinstance(seq, list | tuple) and isinstance(count, int):
        size, limit, what, unit = len(seq) * count, MAX_ITEMS, "a repeated list", "items"
    elif op in ("*", "**") and ints:
        bits = _int_bits(left) * right if op == "**" and abs(left) > 1 else 0
        size = _int_bits(left) + _int_bits(right) if op == "*" else max(bits, 0)
        limit, what, unit = MAX_INT_BITS, "a number", "bits"
    elif op == "+" and isinstance(left, str | bytes) and isinstance(right, str | bytes):
        size = len(left) + len(right)
    elif op == "+" and isinstance(left, list | tuple) and isinstance(right, list | tuple):
        size, limit, what, unit = len(left) + len(right), MAX_ITEMS, "a list", "items"
    elif op == "%" and isinstance(left, str):
        _check_percent(left, right)
    if size > limit:
        raise _too_big(what, size, limit, unit)


def _check_str_method(text: str | bytes, name: str, args: tuple[Any, ...]) -> None:
    """The str methods whose result can be much longer than the text and its arguments."""
    size = 0
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str | bytes) and isinstance(new, str | bytes):
            times = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
            size = len(text) + times * max(0, len(new) - len(old))
    elif name == "expandtabs":
        tab = args[0] if args and isinstance(args[0], int) else 8
        size = len(text) + text.count("\t" if isinstance(text, str) else b"\t") * tab  # type: ignore[arg-type]
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        size = len(text) * longest
    if size > MAX_OUTPUT_CHARS:
        raise _too_big(f"str.{name}", size, MAX_OUTPUT_CHARS)


def _check_join(separator: str, items: list[object]) -> None:
    size = len(separator) * len(items) + sum(_text_size(item) for item in items)
    if size > MAX_OUTPUT_CHARS:
        raise _too_big("a joined text", size, MAX_OUTPUT_CHARS)


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _filter_checks(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """What one call of a builtin filter could build beyond what it is given."""
    text = value if isinstance(value, str) else ""
    extra: float = 0
    if name == "replace" and isinstance(value, str) and len(args) >= 2:
        _check_str_method(value, "replace", (str(args[0]), str(args[1])))
    elif name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        extra = _lines(text) * (len(width) if isinstance(width, str) else width)
    elif name == "wordwrap":
        wrap = kwargs.get("wrapstring") or (args[3] if len(args) > 3 else None)
        width = args[0] if args else kwargs.get("width", 79)
        if isinstance(wrap, str) and isinstance(width, int):
            extra = (len(text) // max(width, 1) + _lines(text)) * len(wrap)
    elif name == "format" and isinstance(value, str):
        _check_percent(value, tuple(args) if args else kwargs)
    elif name == "sum" and isinstance(kwargs.get("start", args[1] if len(args) > 1 else 0), list):
        items = value if isinstance(value, list | tuple) else ()  # lists added up: one list
        total = sum(len(v) for v in items if isinstance(v, list | tuple))
        if total > MAX_ITEMS:
            raise _too_big("a list", total, MAX_ITEMS, "items")
    elif name in ("batch", "slice"):
        _check_ints(args[:1], MAX_ITEMS)
    if len(text) + extra > MAX_OUTPUT_CHARS:
        raise _too_big(f"the {name} filter", len(text) + extra, MAX_OUTPUT_CHARS)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    # @pass_context / @pass_eval_context / @pass_environment filters take that first
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        value: Any = args[skip] if len(args) > skip else None
        rest = args[skip + 1 :]
        _check_ints([*rest, *kwargs.values()])
        if name in _ITEM_FILTERS:
            _check_items(value)
            if name == "join" and not isinstance(value, str | list | tuple):
                value = _guarded_list(value)  # a generator (map, select): count its items
                args = (*args[:skip], value, *rest)
            if name == "join":
                separator = rest[0] if rest else kwargs.get("d", "")
                _check_join(str(separator), list(value))
        if isinstance(value, list | tuple | dict | set | frozenset | Namespace):
            _check_text(value, f"the value given to the {name} filter")
        _filter_checks(name, value, rest, kwargs)
        return _check_result(func(*args, **kwargs))

    return bounded


def _loop_guard(value: Any) -> _Guarded:
    return _Guarded(value)


class _Guarded:
    """A loop's iterable: every iteration is a step of the budget. Keeps len(), so that
    `loop.length` does not have to go through the items first."""

    def __init__(self, iterable: Any) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            _step()
            yield item

    def __len__(self) -> int:
        return len(self.iterable)


def _text_guard(value: Any) -> Any:
    """Around each part of a `~` concatenation, and around its result."""
    _step()
    _check_text(value, "a text joined with ~")
    return value


@jinja2.pass_context  # never folded into a constant when compiling: runs, and is counted
def _output(context: Any, value: Any) -> Any:
    return value


def _finalize(value: Any) -> Any:
    """Every {{ expression }} and literal text output, also inside macros and blocks that
    buffer it."""
    budget = _BUDGET.get()
    size = len(value) if isinstance(value, str) else _text_size(value)
    if budget is not None:
        budget.step()
        budget.values += size
        size = budget.values
    if size > MAX_OUTPUT_CHARS:
        raise _too_big("the rendered prompt", size, MAX_OUTPUT_CHARS)
    return value


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if n * max > 100_000:
        raise _too_big("lipsum()", n * max, 100_000, "words")
    return str(generate_lorem_ipsum(n, html, min, max))


class _BoundedFormatterMixin(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_ints(int(n) if len(n) < 12 else 10**12 for n in re.findall(r"\d+", format_spec))
        _check_text(value, "a formatted value")
        part = super().format_field(value, format_spec)
        self.written = getattr(self, "written", 0) + len(part)
        if self.written > MAX_OUTPUT_CHARS:
            raise _too_big("a formatted text", self.written, MAX_OUTPUT_CHARS)
        return part


class _Formatter(_BoundedFormatterMixin, SandboxedFormatter):
    pass


class _EscapeFormatter(_BoundedFormatterMixin, SandboxedEscapeFormatter):
    pass


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with every operator, call, filter, loop and output bounded."""

    intercepted_binops = frozenset(("*", "**", "+", "%"))

    def __init__(self) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP] = _loop_guard
        self.filters[_TEXT] = _text_guard
        self.filters[_OUTPUT] = _output
        self.globals["lipsum"] = _lipsum

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _step()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        if isinstance(__obj, types.BuiltinMethodType | types.MethodWrapperType):
            _check_ints([*args, *kwargs.values()])
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, str | bytes):
                if __obj.__name__ == "join" and args:
                    items = _guarded_list(args[0])
                    _check_join(str(owner), items)
                    args = (items, *args[1:])
                _check_str_method(owner, __obj.__name__, args)
        return _check_result(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """str.format and str.format_map through a formatter that counts what it writes
        (as Jinja's own wrapper does, with its sandboxed formatter)."""
        if super().wrap_str_format(value) is None:
            return None
        text: str = value.__self__
        escape = getattr(text, "escape", None)
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            formatter: SandboxedFormatter = (
                _EscapeFormatter(self, escape=escape)
                if isinstance(text, Markup)
                else _Formatter(self)
            )
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one mapping")
                return type(text)(formatter.vformat(text, (), args[0]))
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(wrapper, value)


def _wrap(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Instrument(NodeTransformer):
    """Puts a step into every loop, a size check on every `~`, and makes every output
    (literal text too) pass through _finalize when the template runs: otherwise what Jinja
    can work out when it compiles is never counted, and a loop in a macro could repeat it
    unseen."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _wrap(node.iter, _LOOP)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            _wrap(nodes.Const(n.data, lineno=n.lineno), _OUTPUT)
            if isinstance(n, nodes.TemplateData)
            else _wrap(n, _OUTPUT)
            for n in node.nodes
        ]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_wrap(n, _TEXT) for n in node.nodes]
        return _wrap(node, _TEXT)


ENV = BoundedEnvironment()


def compile_template(source: str) -> jinja2.Template:
    """A template compiled with its loops, texts and concatenations instrumented;
    TemplateSyntaxError (with its line) if it does not parse, RenderLimit if it is too large
    or too deeply nested to compile in reasonable time."""
    tags = source.count("{{") + source.count("{%")
    if tags > MAX_TEMPLATE_TAGS:
        raise RenderLimit(
            f"the template has {tags:,} tags ({{{{ }}}} and {{% %}}); the limit is "
            f"{MAX_TEMPLATE_TAGS:,}"
        )
    try:
        tree = ENV.parse(source)
        size = sum(1 for _ in tree.find_all(nodes.Node))
        if size > MAX_TEMPLATE_NODES:
            raise RenderLimit(
                f"the template's expressions have {size:,} parts; the limit is "
                f"{MAX_TEMPLATE_NODES:,}"
            )
        tree = _Instrument().visit(tree)
        tree.set_environment(ENV)
        return ENV.from_string(tree)
    except RecursionError:  # brackets or blocks nested hundreds deep
        raise RenderLimit("the template is nested too deeply") from None


def render_text(template: jinja2.Template, variables: Mapping[str, object]) -> str:
    """Render within the current budget (see render_budget), counting the output."""
    budget = _BUDGET.get()
    parts: list[str] = []
    size = 0
    for part in template.generate(dict(variables)):
        size += len(part)
        if budget is not None:
            budget.output += len(part)
            size = budget.output
        if size > MAX_OUTPUT_CHARS:
            raise _too_big("the rendered prompt", size, MAX_OUTPUT_CHARS)
        parts.append(part)
    return "".join(parts)
