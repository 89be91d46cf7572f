import random
import re
import time
from html import escape

import pytest

from promptdeck.analysis.textdiff import MAX_DIFF_WORDS, word_diff_html, word_opcodes


@pytest.mark.parametrize(
    ("base", "other", "html"),
    [
        ("same text", "same text", "same text"),
        ("refund in 5 days", "refund in 7 days", "refund in <del>5</del><ins>7</ins> days"),
        ("hello", "hello there", "hello<ins> there</ins>"),
        ("a <b>", "a <script>", "a <del>&lt;b&gt;</del><ins>&lt;script&gt;</ins>"),
        ("", "new", "<ins>new</ins>"),
    ],
)
def test_word_diff(base: str, other: str, html: str) -> None:
    assert word_diff_html(base, other) == html


def apply(a: list[str], b: list[str]) -> None:
    """The opcodes cover both sides in order, and equal parts are equal."""
    i = j = 0
    for op, i1, i2, j1, j2 in word_opcodes(a, b):
        assert (i1, j1) == (i, j) and op in ("equal", "replace", "delete", "insert")
        assert (op == "equal") == (a[i1:i2] == b[j1:j2])
        i, j = i2, j2
    assert (i, j) == (len(a), len(b))


def test_opcodes_are_a_valid_diff_for_random_edits() -> None:
    rng = random.Random(7)
    words = ["the", "a", "refund", "order", "is", "of", "to", "you", "5", "7", "\n", " ", ""]
    for _ in range(2000):
        a = [rng.choice(words) for _ in range(rng.randint(0, 40))]
        b = list(a)
        for _ in range(rng.randint(0, 8)):
            k = rng.randint(0, len(b))
            if rng.random() < 0.5 and b:
                del b[min(k, len(b) - 1)]
            else:
                b.insert(k, rng.choice(words))
        apply(a, b)


def near_identical(words: int, seed: int = 1) -> tuple[str, str]:
    """An answer, and the same answer with every tenth word reworded."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(300)] + ["the", "a", "to", "of", "and"] * 30
    base = [rng.choice(vocabulary) for _ in range(words)]
    other = [w.upper() if k % 10 == 0 else w for k, w in enumerate(base)]
    return " ".join(base), " ".join(other)


@pytest.mark.parametrize("words", [1_500, 3_000, 9_000])
def test_near_identical_long_answers_diff_in_linear_time(words: int) -> None:
    """Before (difflib on the whole answers): 10 s at 1,500 words, over 300 s at 3,000."""
    base, other = near_identical(words)
    started = time.process_time()
    html = word_diff_html(base, other)
    assert time.process_time() - started < 1
    assert html.count("<ins>") == html.count("<del>") == words // 10
    text = html.replace("<ins>", "").replace("</ins>", "")
    assert re.sub(r"<del>.*?</del>", "", text) == other


def test_answers_that_share_nothing_are_one_replacement() -> None:
    a, b = " ".join(["x"] * 9000), " ".join(["y"] * 9000)
    started = time.process_time()
    assert word_diff_html(a, b) == f"<del>{a}</del><ins>{b}</ins>"
    assert time.process_time() - started < 1


def test_past_the_cap_the_answer_is_shown_escaped_without_a_diff() -> None:
    other = "<img src=x onerror=alert(1)> " * 5_000  # 20,000 tokens and more
    html = word_diff_html("short", other)
    assert html.startswith("<p><em>Too long to compare word by word (")
    assert "the limit is 20,000" in html
    assert "<img" not in html and html.endswith(escape(other))
    assert MAX_DIFF_WORDS == 20_000


@pytest.mark.parametrize("size", [3, 300, 3_000])
def test_untrusted_text_is_escaped_in_every_part(size: int) -> None:
    evil = "<script>alert(1)</script> & <b onmouseover=x>"
    base = " ".join(f"w{i}" for i in range(size)) + " " + evil
    other = evil + " " + " ".join(f"w{i}" for i in range(size)) + " <i>new</i>"
    html = word_diff_html(base, other)
    tags = re.findall(r"<[^>]*>", html)
    assert set(tags) <= {"<ins>", "</ins>", "<del>", "</del>"}, tags
