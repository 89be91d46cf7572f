"""A word-level diff of an answer against the baseline's, as escaped HTML."""

from __future__ import annotations

import difflib
import html
import re

_TOKENS = re.compile(r"\s+|[^\s]+")


def word_diff_html(baseline: str, other: str) -> str:
    """`other` with words the baseline lacks in <ins> and words it dropped in <del>."""
    a, b = _TOKENS.findall(baseline), _TOKENS.findall(other)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            out.append(f"<del>{html.escape(''.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{html.escape(''.join(b[j1:j2]))}</ins>")
        if op == "equal":
            out.append(html.escape("".join(b[j1:j2])))
    return "".join(out)
