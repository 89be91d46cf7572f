"""Edits of a YAML mapping file whose diff is only the entries that changed.

`edit_text(text, plan, where=...)`: `plan` gets the file as ruamel.yaml round-trip data
and returns its Changes (`section: {key: value}` set, or removed with None). Each changed
entry is rendered by ruamel.yaml with the file's indentation and spliced in over its own
lines (a new one after the last entry of its section; a new section at the end), so
comments, blank lines, quoting and key order elsewhere stay byte for byte and `git diff`
shows the entries alone. The spliced text must load as the same data as ruamel's
whole-file round trip; when it does not (a layout the splice does not know, e.g. a flow
`{...}` section), the round trip is used instead.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from promptdeck.errors import ConfigError
from promptdeck.workspace.yamlfile import parse_yaml


@dataclass(frozen=True)
class Change:
    """Set `section: {key: value}` (None: remove the key)."""

    section: str
    key: str
    value: Any


def round_trip_yaml() -> YAML:
    """ruamel.yaml in round-trip mode: comments, key order and quoting survive."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long lines
    return yaml


def edit_text(
    text: str,
    plan: Callable[[CommentedMap], list[Change]],
    *,
    where: str,
    sections: tuple[str, ...],
) -> str:
    """`text` (LF line endings; a mapping of `sections`, each a mapping) with `plan`'s
    changes, as the module docstring says. ConfigError if it is not valid YAML or not
    such a mapping (`where` names the file)."""
    yaml = round_trip_yaml()
    try:
        doc = yaml.load(text) if text.strip() else None
    except YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML, so it was not changed: {exc}") from None
    doc = CommentedMap() if doc is None else doc
    if not isinstance(doc, CommentedMap) or not all(
        isinstance(doc.get(s) or {}, dict) for s in sections
    ):
        names = " and ".join(f"'{s}:'" for s in sections)
        raise ConfigError(f"{where}: the file and its {names} must be mappings")
    _set_indent(yaml, text, doc, sections)
    lines = text.split("\n")
    changes = plan(doc)
    spans = [_span(doc, lines, change) for change in changes]  # where they are now
    parents = {c.section: doc.get(c.section) for c in changes}
    for change in changes:
        section = doc.get(change.section)
        if change.value is None:
            del section[change.key]
        else:
            if section is None:
                section = doc[change.section] = CommentedMap()
            section[change.key] = change.value
    whole = _dump(yaml, doc)
    spliced = _splice(yaml, lines, changes, spans, parents)
    same = spliced is not None and _same_data(spliced, whole, sections)
    return spliced if spliced is not None and same else whole


def _set_indent(yaml: YAML, text: str, doc: CommentedMap, sections: tuple[str, ...]) -> None:
    """Indent as the file does: its sections' keys, and its block sequences' dashes."""
    indent = 2
    for name in sections:
        section = doc.get(name)
        if isinstance(section, CommentedMap) and section and not section.fa.flow_style():
            indent = section.lc.key(next(iter(section)))[1] or 2
            break
    try:
        _, seq_indent, dash = load_yaml_guess_indent(text)
    except YAMLError:
        seq_indent, dash = None, None
    if dash is None or seq_indent is None:
        yaml.indent(mapping=indent, sequence=indent, offset=0)
    else:
        yaml.indent(mapping=indent, sequence=seq_indent, offset=dash)


Span = tuple[int, int, bool] | None  # lines [start, stop) to replace; a new section?


def _span(doc: CommentedMap, lines: list[str], change: Change) -> Span:
    """Where `change` goes in the file as it is: the lines of its entry (without the blank
    lines and comments after it), or the place to insert a new one; None when the section
    is not a block mapping."""
    if change.section not in doc:
        end = _trim(lines, 0, len(lines))
        return end, end, True
    if doc.fa.flow_style():
        return None
    roots = list(doc)
    header = doc.lc.key(change.section)[0]
    after = roots.index(change.section) + 1
    end = doc.lc.key(roots[after])[0] if after < len(roots) else len(lines)
    section = doc[change.section]
    if section is None:
        return header + 1, header + 1, False
    if section.fa.flow_style():
        return None
    keys = list(section)
    if change.key not in section:
        stop = _trim(lines, header + 1, end)
        return stop, stop, False
    start = section.lc.key(change.key)[0]
    index = keys.index(change.key)
    stop = section.lc.key(keys[index + 1])[0] if index + 1 < len(keys) else end
    return start, _trim(lines, start + 1, stop), False


def _trim(lines: list[str], low: int, high: int) -> int:
    """`high` moved up over blank and comment-only lines, not above `low`."""
    while high > low and (not lines[high - 1].strip() or lines[high - 1].lstrip()[0] == "#"):
        high -= 1
    return high


def _splice(
    yaml: YAML,
    lines: list[str],
    changes: list[Change],
    spans: list[Span],
    parents: Mapping[str, Any],
) -> str | None:
    """The file with each change's lines replaced by its rendering; None if one cannot be."""
    edits: dict[tuple[int, int], list[str]] = {}
    for change, span in zip(changes, spans, strict=True):
        if span is None:
            return None
        start, stop, new_section = span
        block = edits.setdefault((start, stop), [])
        if new_section and f"{change.section}:" not in block:
            block.append(f"{change.section}:")
        if change.value is not None:
            block += _render(yaml, change, parents.get(change.section))
    out = list(lines)
    for (start, stop), block in sorted(edits.items(), reverse=True):
        out[start:stop] = block
    return "\n".join(out) + ("\n" if out and out[-1] else "")


def _render(yaml: YAML, change: Change, parent: Any) -> list[str]:
    """`key: value` as it appears under its section: no comment lines before or after it
    (those stay where they are in the file), its own line's comment kept."""
    inner = CommentedMap()
    inner[change.key] = copy.deepcopy(change.value)
    own = parent.ca.items.get(change.key) if isinstance(parent, CommentedMap) else None
    if own and own[2] is not None:
        inner.ca.items[change.key] = [None, None, own[2], None]
    _cut_tails(inner, change.key)
    lines = _dump(yaml, CommentedMap([(change.section, inner)])).split("\n")[1:]
    start, stop = 0, _trim(lines, 0, len(lines))
    while start < stop and (not lines[start].strip() or lines[start].lstrip()[0] == "#"):
        start += 1
    return lines[start:stop]


def _cut_tails(container: Any, key: Any) -> None:
    """ruamel keeps the blank lines and comments that follow an item (up to the next one)
    on the item's deepest last value: cut each such comment to its own line's part."""
    while True:
        slot = 0 if isinstance(container, CommentedSeq) else 2
        entry = container.ca.items.get(key)
        if entry is not None and entry[slot] is not None:
            token = entry[slot]
            value = token.value if token.value.startswith("#") else ""
            entry[slot] = (
                CommentToken(value.split("\n", 1)[0] + "\n", token.start_mark) if value else None
            )
        container.ca.end = []
        child = container[key]
        if isinstance(child, CommentedMap) and child and not child.fa.flow_style():
            container, key = child, list(child)[-1]
        elif isinstance(child, CommentedSeq) and child and not child.fa.flow_style():
            container, key = child, len(child) - 1
        else:
            return


def _dump(yaml: YAML, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _same_data(text: str, reference: str, sections: tuple[str, ...]) -> bool:
    """Do both load as the same data? (An emptied section is `section:` in the splice and
    `section: {}` in ruamel's output: both mean none.)"""

    def data(text: str) -> Any:
        loaded = parse_yaml(text) or {}
        if not isinstance(loaded, dict):
            return loaded
        return {k: (v or {}) if k in sections else v for k, v in loaded.items()}

    try:
        return bool(data(text) == data(reference))
    except ValueError:
        return False
