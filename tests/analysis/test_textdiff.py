import pytest

from promptdeck.analysis.textdiff import word_diff_html


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
