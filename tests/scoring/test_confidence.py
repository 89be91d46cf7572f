import pytest

from promptdeck.scoring.confidence import LOGPROBS, from_logprobs, sample_agreement


def test_logprobs_badge() -> None:
    c = from_logprobs(0.811)
    assert c is not None and (c.method, c.badge) == (LOGPROBS, "confidence 0.81 · token logprobs")
    assert from_logprobs(None) is None


@pytest.mark.parametrize(
    ("outputs", "scores", "value", "method"),
    [
        (["a"], [4.0], None, None),
        (["x", "y", "z"], [4.0, 4.0, 2.0], 2 / 3, "agreement of 3 samples (judge)"),
        (["x", "y", "z", "w"], [5.0, 5.0, 5.0, 5.0], 1.0, "agreement of 4 samples (judge)"),
        (["abcd", "abcd"], [None, None], 1.0, "agreement of 2 samples (text)"),
        (["abcd", "wxyz"], [None, 3.0], 0.0, "agreement of 2 samples (text)"),
        (
            ["ab", "ac", "ab"],
            [None, None, None],
            (0.5 + 1.0 + 0.5) / 3,
            "agreement of 3 samples (text)",
        ),
    ],
)
def test_sample_agreement(
    outputs: list[str], scores: list[float | None], value: float | None, method: str | None
) -> None:
    c = sample_agreement(outputs, scores)
    if value is None:
        assert c is None
    else:
        assert c is not None and c.value == pytest.approx(value) and c.method == method
