"""Parsing YAML strictly, with YAML 1.2 scalars, and within bounds: the one YAML reader of
prompts, datasets, suites, providers.yaml and promptfoo configs. (Decoding the file's bytes
is fileio's `read_text`.)

- Strict: a key given twice is an error (not "last one wins"); every error is a YAMLProblem
  (a ValueError) of one line with its line number.
- YAML 1.2 core-schema scalars: only true/false are booleans (`yes`, `no`, `on`, `off` are
  text), `1:30` is text, not a sexagesimal 90, and dates stay text. So `on: mean` in a gate
  and `expected: no` in a dataset mean what they say. `parse_yaml_rows` (datasets) keeps
  every cell of a row as written: `1.10` and `007` stay text, as in a CSV file.
- Bounded: at most MAX_YAML_CHARS characters; aliases (`*name`) may add as many values as
  the file writes out itself, plus MAX_ALIAS_VALUES (a "billion laughs" of a few hundred
  bytes would otherwise expand to billions of values downstream); an alias inside the
  value it names (`&a [*a]`) is refused, since every consumer of such data loops forever.
  Merge keys (`<<: *defaults`) keep working.

libyaml, when PyYAML has it, scans the text (several times faster than pure Python); the
nodes are composed here in Python, where aliases are counted. For a syntax error in a small
file the pure-Python parser runs again, since its messages are the clearer ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

try:
    from yaml import cyaml

    _CParser: Any = getattr(cyaml, "CParser", None)
except ImportError:  # PyYAML built without libyaml
    _CParser = None

MAX_YAML_CHARS = 4 * 1024 * 1024
MAX_ALIAS_VALUES = 100_000
_REPARSE_CHARS = 256 * 1024  # re-read a broken file with the pure-Python parser up to this

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"


class YAMLProblem(ValueError):
    """YAML that cannot be used; `line` (from 1) where known, `detail` the problem alone."""

    def __init__(self, detail: str, line: int | None = None) -> None:
        self.detail = detail
        self.line = line
        super().__init__(f"line {line}: {detail}" if line else detail)


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping names the same key twice; the mark points at the second one."""


class LimitError(yaml.MarkedYAMLError):
    """Valid YAML refused: its aliases expand too far, or one is inside the value it names."""


class _CoreResolver(BaseResolver):
    """The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1023-core-schema), plus `<<`."""


for _tag, _pattern, _first in (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        "-+0123456789.",
    ),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("merge", r"<<", "<"),
):
    _CoreResolver.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), list(_first)
    )


class _BoundedComposer(Composer):
    """Composes nodes while counting the values that aliases add, before anything expands
    them (the node graph of an alias bomb is small; what is built from it is not)."""

    check_event: Callable[..., bool]  # from the parser it is mixed with
    peek_event: Callable[[], Any]

    def _bound(self, text_depth: int | None) -> None:
        self._open: set[str] = set()  # anchors whose value is being composed
        self._sizes: dict[str, int] = {}  # anchor -> values in its expanded value
        self._values = 0  # values written out in the file
        self._aliased = 0  # values that aliases add
        self._depth = 0
        self._text_depth = text_depth

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            if event.anchor in self._open:
                raise LimitError(
                    problem=f"the alias *{event.anchor} is inside the value it names "
                    "(a recursive alias, which never ends); remove it",
                    problem_mark=event.start_mark,
                )
            node = super().compose_node(parent, index)  # an unknown alias raises
            self._aliased += self._sizes.get(event.anchor, 1)
            budget = MAX_ALIAS_VALUES + self._values
            if self._aliased > budget:
                raise LimitError(
                    problem=f"aliases (*name) expand to {self._aliased:,} values here, more "
                    f"than the {self._values:,} the file writes out plus {MAX_ALIAS_VALUES:,} "
                    "(an alias bomb?); write the values out, or use fewer aliases",
                    problem_mark=event.start_mark,
                )
            return node
        anchor = self.peek_event().anchor
        before = self._values + self._aliased
        self._values += 1
        self._depth += 1
        if anchor is not None:
            self._open.add(anchor)
        node = super().compose_node(parent, index)
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self._values + self._aliased - before
        self._depth -= 1
        return node

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        tag: str = super().resolve(kind, value, implicit)  # type: ignore[misc]
        if (
            self._depth == self._text_depth
            and kind is yaml.ScalarNode
            and implicit[0]  # plain, not quoted: a quoted scalar is text already
            and tag not in (_NULL, _MERGE)
        ):
            return _STR
        return tag


class _StrictConstructor(SafeConstructor):
    strict_keys = True

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not self.strict_keys or not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:  # `<<: *defaults`: keys it brings
                continue  # may be overridden here, which is the point of a merge
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str | int | float | bool) and key in seen:
                raise DuplicateKeyError(
                    problem=f"duplicate key {key!r} (first on line {seen[key]})",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_core_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))  # type: ignore[no-untyped-call]
        digits = text.lstrip("+-")
        base = {"0o": 8, "0x": 16}.get(digits[:2], 10)  # "010" is ten in YAML 1.2
        try:
            value = int(digits[2:] if base != 10 else digits, base)
        except ValueError:  # an explicit !!int that is not one, or thousands of digits
            raise ConstructorError(
                problem=f"{_short(text)} is not a whole number YAML can read",
                problem_mark=node.start_mark,
            ) from None
        return -value if text.startswith("-") else value

    def construct_core_float(self, node: yaml.ScalarNode) -> float:
        text = str(self.construct_scalar(node)).lower()  # type: ignore[no-untyped-call]
        if text.endswith(".inf"):
            return -math.inf if text.startswith("-") else math.inf
        if text == ".nan":
            return math.nan
        try:
            return float(text)
        except ValueError:
            raise ConstructorError(
                problem=f"{_short(text)} is not a number", problem_mark=node.start_mark
            ) from None

    def construct_checked(self, node: yaml.Node) -> Any:
        """An explicitly tagged !!bool or !!timestamp whose text is not one: a YAML error
        with its line, instead of the KeyError or ValueError PyYAML lets out."""
        make = SafeConstructor.yaml_constructors[node.tag]
        try:
            return make(self, node)
        except (KeyError, ValueError, AttributeError, OverflowError):
            raise ConstructorError(
                problem=f"{_short(str(node.value))} is not a valid {node.tag.rsplit(':', 1)[-1]}",
                problem_mark=node.start_mark,
            ) from None


for _tag, _construct in (
    ("int", _StrictConstructor.construct_core_int),
    ("float", _StrictConstructor.construct_core_float),
    ("bool", _StrictConstructor.construct_checked),
    ("timestamp", _StrictConstructor.construct_checked),
):
    _StrictConstructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _construct)  # type: ignore[type-var]


class _PyLoader(Reader, Scanner, Parser, _BoundedComposer, _StrictConstructor, _CoreResolver):
    def __init__(self, text: str, text_depth: int | None) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        _CoreResolver.__init__(self)
        self._bound(text_depth)


_Loader: type[_PyLoader] = _PyLoader
if _CParser is not None:

    class _CLoader(_BoundedComposer, _CParser, _StrictConstructor, _CoreResolver):  # type: ignore[misc]
        """libyaml's events, composed (and bounded) in Python."""

        def __init__(self, text: str, text_depth: int | None) -> None:
            _CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            _CoreResolver.__init__(self)
            self._bound(text_depth)

    _Loader = _CLoader  # type: ignore[assignment]


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:39] + "…")


def parse_yaml(text: str) -> Any:
    """Strict, bounded YAML 1.2 data; YAMLProblem (a ValueError) gives the line and what is
    wrong, in one line."""
    return parse_yaml_document(text)[1]


def parse_yaml_rows(text: str) -> Any:
    """Like parse_yaml, for a dataset (a list of rows): each row's keys and plain values
    are kept as written (`no`, `1.10`, `007`, `2024-05-01` are text, as in a CSV file);
    an empty value or `null` is null; values nested deeper are parsed as usual."""
    return _load(text, strict_keys=True, text_depth=3)[1]


def parse_yaml_document(text: str, *, strict_keys: bool = True) -> tuple[yaml.Node | None, Any]:
    """The root node (marks give the line of every key and value; merge keys are already
    flattened into their mappings) and the data. `strict_keys=False` leaves duplicate keys
    to the caller, which may name them better (the prompt loader names the field)."""
    return _load(text, strict_keys=strict_keys, text_depth=None)


def _load(text: str, *, strict_keys: bool, text_depth: int | None) -> tuple[yaml.Node | None, Any]:
    if len(text) > MAX_YAML_CHARS:
        raise YAMLProblem(
            f"the file has {len(text) / 2**20:.1f} MB of text; YAML files are read up to "
            f"{MAX_YAML_CHARS // 2**20} MB. Put a large dataset in a .csv or .jsonl file"
        )
    try:
        return _compose_and_construct(_Loader, text, strict_keys, text_depth)
    except yaml.MarkedYAMLError as exc:
        syntax = isinstance(exc, yaml.scanner.ScannerError | yaml.parser.ParserError)
        if not (syntax and _Loader is not _PyLoader and len(text) <= _REPARSE_CHARS):
            raise _problem(exc) from None
    except (yaml.YAMLError, RecursionError) as exc:  # a bad character; deep nesting
        raise _problem(exc, text) from None
    try:  # the same syntax error, in PyYAML's own words
        return _compose_and_construct(_PyLoader, text, strict_keys, text_depth)
    except (yaml.YAMLError, RecursionError) as exc:
        raise _problem(exc, text) from None


def _compose_and_construct(
    loader_class: type[_PyLoader], text: str, strict_keys: bool, text_depth: int | None
) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(text, text_depth)
    loader.strict_keys = strict_keys
    try:
        node = loader.get_single_node()  # type: ignore[no-untyped-call]
        return node, None if node is None else loader.construct_document(node)  # type: ignore[no-untyped-call]
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def _problem(exc: BaseException, text: str = "") -> YAMLProblem:
    if isinstance(exc, RecursionError):  # thousands of nested brackets exhaust the stack
        return YAMLProblem("invalid YAML: nested too deeply")
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        found = text.find(char)
        line = text.count("\n", 0, found) + 1 if found >= 0 else None
        return YAMLProblem(
            f"invalid YAML: the character #x{ord(char):04x} is not allowed (binary data?)", line
        )
    if not isinstance(exc, yaml.MarkedYAMLError):
        return YAMLProblem(f"invalid YAML: {exc}")
    mark, start = exc.problem_mark or exc.context_mark, exc.context_mark
    line = mark.line + 1 if mark else None
    if isinstance(exc, LimitError):
        return YAMLProblem(f"YAML refused: {exc.problem}", line)
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.context and mark and start and start.line != mark.line:
        # an unclosed quote or bracket shows up lines after the real mistake
        message += f" ({exc.context} that starts on line {start.line + 1})"
    return YAMLProblem(message, line)
