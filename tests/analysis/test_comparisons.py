"""Results-page comparisons: one family per variant across its categories."""

import pandas as pd

from promptdeck.analysis.results import comparison_frame, comparisons


def cells(deltas: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for category, values in deltas.items():
        for i, d in enumerate(values):
            base = 3.0 + (i % 3) * 0.5
            for variant, score in (("base", base), ("new", base + d)):
                row = {"row_id": f"{category}{i:03d}", "category": category, "variant": variant}
                rows.append({**row, "judge_score": score, "failed": False})
    return pd.DataFrame(rows)


def test_per_category_verdicts_share_one_family() -> None:
    gain, noise = [1.0, 0.5, 1.5] * 20, [0.5, -0.5, 0.0] * 20
    table = comparison_frame(comparisons(cells({"a": gain, "b": noise, "c": noise, "d": noise}),
                                         "base"))  # fmt: skip
    levels = dict(zip(table["category"], table["level"], strict=True))
    assert levels == {"(all)": 0.95, "a": 0.9875, "b": 0.9875, "c": 0.9875, "d": 0.9875}
    verdicts = dict(zip(table["category"], table["verdict"], strict=True))
    assert verdicts["a"] == "better" and {verdicts[c] for c in "bcd"} == {"underpowered"}
    summary = dict(zip(table["category"], table["summary"], strict=True))
    assert "(98.8% CI" in summary["b"] and "(95% CI" in summary["(all)"]
    assert set(table.columns) >= {"low", "high", "mde", "sd", "level"}


def test_scale_and_anytime_reach_the_comparisons() -> None:
    data = cells({"a": [0.0] * 40})
    [overall, _] = comparisons(data, "base")
    [wide, _] = comparisons(data, "base", scale=(1, 10))
    [running, _] = comparisons(data, "base", anytime=True)
    assert overall.ci is not None and wide.ci is not None and running.ci is not None
    assert wide.ci.low < overall.ci.low  # type: ignore[operator]
    assert running.anytime and "anytime CI" in running.summary
