"""A word-level diff of an answer against the baseline's, as escaped HTML.

Linear in the answers' length: the common start and end are set aside, words that occur
once in each side anchor the rest (the longest chain of them in the same order, as in
patience diff; in repetitive text, runs of a few words that occur once), and only the short
stretches between anchors are compared word by word (difflib, whose cost grows with the
square of a stretch). The work has a budget in
proportion to the input; a stretch left when it runs out is shown as replaced. Past
MAX_DIFF_WORDS words and spaces a side there is no word diff: the answer is shown as it is,
with a note. Every piece of either answer is escaped: the result goes into the page as HTML.
"""

from __future__ import annotations

import bisect
import difflib
import html
import re
from collections import Counter
from collections.abc import Hashable, Sequence

_TOKENS = re.compile(r"\s+|[^\s]+")
MAX_DIFF_WORDS = 20_000  # words and spaces, each side: about 10,000 words of prose
_SMALL = 10_000  # a stretch of a × b tokens that difflib compares directly
_WORK = 50  # the budget: token comparisons per token of input
_RUNS = (1, 4, 12)  # anchors: single tokens, then runs of 2 and 6 words with their spaces

Op = tuple[str, int, int, int, int]  # difflib's opcode: tag, a[i1:i2] -> b[j1:j2]


def word_diff_html(baseline: str, other: str) -> str:
    """`other` with words the baseline lacks in <ins> and words it dropped in <del>."""
    a, b = _TOKENS.findall(baseline), _TOKENS.findall(other)
    longest = max(len(a), len(b))
    if longest > MAX_DIFF_WORDS:
        why = f"{longest:,} words and spaces; the limit is {MAX_DIFF_WORDS:,}"
        return f"<p><em>Too long to compare word by word ({why}).</em></p>{html.escape(other)}"
    out = []
    for op, i1, i2, j1, j2 in word_opcodes(a, b):
        if op in ("delete", "replace"):
            out.append(f"<del>{html.escape(''.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{html.escape(''.join(b[j1:j2]))}</ins>")
        if op == "equal":
            out.append(html.escape("".join(b[j1:j2])))
    return "".join(out)


def word_opcodes(a: Sequence[str], b: Sequence[str]) -> list[Op]:
    """difflib-style opcodes (equal, replace, delete, insert) turning `a` into `b`, in order,
    in time linear in len(a) + len(b)."""
    budget = _WORK * (len(a) + len(b)) + _SMALL
    ops: list[Op] = []
    # a stack of regions to diff and of opcodes to emit, in reverse order of output
    todo: list[Op] = [("diff", 0, len(a), 0, len(b))]
    while todo:
        tag, a1, a2, b1, b2 = todo.pop()
        if tag != "diff":
            ops.append((tag, a1, a2, b1, b2))
            continue
        head = _common(a, b, a1, a2, b1, b2, step=1)
        tail = _common(a, b, a1 + head, a2, b1 + head, b2, step=-1)
        ops.append(("equal", a1, a1 + head, b1, b1 + head))
        todo.append(("equal", a2 - tail, a2, b2 - tail, b2))
        a1, b1, a2, b2 = a1 + head, b1 + head, a2 - tail, b2 - tail
        budget -= (a2 - a1) + (b2 - b1)
        anchors, size = [], 1
        for size in _RUNS:  # single words first; in repetitive text, runs of a few
            if budget <= 0 or a1 == a2 or b1 == b2:
                break
            budget -= size * ((a2 - a1) + (b2 - b1))
            anchors = _anchors(a, b, a1, a2, b1, b2, size)
            if anchors:
                break
        if not anchors:
            cost = (a2 - a1) * (b2 - b1)
            if 0 < cost <= min(_SMALL, budget):
                budget -= cost
                matcher = difflib.SequenceMatcher(None, a[a1:a2], b[b1:b2], autojunk=False)
                ops.extend(
                    (t, a1 + i, a1 + j, b1 + k, b1 + m) for t, i, j, k, m in matcher.get_opcodes()
                )
            else:
                ops.append(("replace", a1, a2, b1, b2))
            continue
        regions: list[Op] = []
        for i, j in anchors:
            regions += [("diff", a1, i, b1, j), ("equal", i, i + size, j, j + size)]
            a1, b1 = i + size, j + size
        regions.append(("diff", a1, a2, b1, b2))
        todo.extend(reversed(regions))
    return _merge(ops)


def _common(
    a: Sequence[str], b: Sequence[str], a1: int, a2: int, b1: int, b2: int, *, step: int
) -> int:
    """How many tokens the regions share at their start (step 1) or end (step -1)."""
    n, most = 0, min(a2 - a1, b2 - b1)
    if step == 1:
        while n < most and a[a1 + n] == b[b1 + n]:
            n += 1
    else:
        while n < most and a[a2 - 1 - n] == b[b2 - 1 - n]:
            n += 1
    return n


def _anchors(
    a: Sequence[str], b: Sequence[str], a1: int, a2: int, b1: int, b2: int, size: int
) -> list[tuple[int, int]]:
    """(i, j) of the runs of `size` tokens that occur once in a[a1:a2] and once in
    b[b1:b2]: the longest chain of them in the same order on both sides, none overlapping."""

    def runs(seq: Sequence[str], start: int, end: int) -> list[Hashable]:
        if size == 1:
            return list(seq[start:end])
        return [tuple(seq[i : i + size]) for i in range(start, end - size + 1)]

    in_a, in_b = runs(a, a1, a2), runs(b, b1, b2)
    count_a, count_b = Counter(in_a), Counter(in_b)
    where_b = {run: b1 + k for k, run in enumerate(in_b) if count_b[run] == 1}
    pairs = [
        (a1 + k, where_b[run]) for k, run in enumerate(in_a) if count_a[run] == 1 and run in where_b
    ]
    chain = _longest_increasing(pairs)
    kept: list[tuple[int, int]] = []
    for i, j in chain:  # runs longer than a token may overlap: keep those that do not
        if not kept or (i >= kept[-1][0] + size and j >= kept[-1][1] + size):
            kept.append((i, j))
    return kept


def _longest_increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest run of `pairs` (in order of i) whose j increase: patience sorting."""
    tops: list[int] = []  # the smallest j that ends a run of each length
    ends: list[int] = []  # the index in pairs of that run's end
    back: list[int] = []
    for k, (_, j) in enumerate(pairs):
        length = bisect.bisect_left(tops, j)
        back.append(ends[length - 1] if length else -1)
        if length == len(tops):
            tops.append(j)
            ends.append(k)
        else:
            tops[length], ends[length] = j, k
    chain: list[tuple[int, int]] = []
    k = ends[-1] if ends else -1
    while k >= 0:
        chain.append(pairs[k])
        k = back[k]
    return chain[::-1]


def _merge(ops: list[Op]) -> list[Op]:
    """Adjacent opcodes of one kind as one; a delete next to an insert as a replace."""
    merged: list[Op] = []
    for tag, i1, i2, j1, j2 in ops:
        if i1 == i2 and j1 == j2:
            continue
        if merged and (merged[-1][0] == "equal") == (tag == "equal"):
            last, p1, _, q1, _ = merged[-1]
            merged[-1] = (last, p1, i2, q1, j2)
        else:
            merged.append((tag, i1, i2, j1, j2))
    return [_retag(op) for op in merged]


def _retag(op: Op) -> Op:
    tag, i1, i2, j1, j2 = op
    if tag == "equal":
        return op
    return ("replace" if i1 < i2 and j1 < j2 else "delete" if i1 < i2 else "insert", i1, i2, j1, j2)
