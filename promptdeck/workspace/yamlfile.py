"""Parsing YAML strictly: a key given twice is an error (not "last one wins"), and every error
is one line with its line number. (Decoding the file's bytes is fileio's `read_text`.)"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping names the same key twice; the mark points at the second one."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: keys it brings
                continue  # may be overridden here, which is the point of a merge
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str | int | float | bool) and key in seen:
                raise DuplicateKeyError(
                    problem=f"duplicate key {key!r} (first on line {seen[key]})",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Like yaml.safe_load, but duplicate keys raise (with the line of the second one)."""
    return yaml.load(text, Loader=_StrictLoader)


def parse_yaml(text: str) -> Any:
    """Strict YAML; ValueError gives the line and what is wrong, in one line."""
    try:
        return load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark, start = exc.problem_mark or exc.context_mark, exc.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        message = f"{where}invalid YAML: {exc.problem or exc.context}"
        if exc.context and mark and start and start.line != mark.line:
            # an unclosed quote or bracket shows up lines after the real mistake
            message += f" ({exc.context} that starts on line {start.line + 1})"
        raise ValueError(message) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ValueError(
            f"line {line}: invalid YAML: the character #x{code:04x} is not allowed (binary data?)"
        ) from None
    except RecursionError:  # thousands of nested brackets exhaust the parser's stack
        raise ValueError("invalid YAML: nested too deeply") from None
