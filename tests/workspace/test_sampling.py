from collections import Counter

import pytest

from promptdeck.errors import DatasetError
from promptdeck.workspace.datasets import Case
from promptdeck.workspace.sampling import (
    allocation,
    count_strata,
    largest_remainder,
    sample_cases,
    sample_size,
    stratified_order,
)

SIZES = {"billing": 70, "shipping": 50, "returns": 35, "account": 25, "technical": 15, "legal": 5}


def make_cases(sizes: dict[str, int], column: str = "category") -> list[Case]:
    # interleaved, so that the dataset's order is not the strata's order
    cases: list[Case] = []
    left = dict(sizes)
    while any(left.values()):
        for name in sizes:
            if left[name]:
                i = len(cases)
                cases.append(Case(f"r{i:03d}", {"id": f"r{i:03d}", column: name, "input": "x"}))
                left[name] -= 1
    return cases


@pytest.mark.parametrize(
    ("counts", "n", "floor", "expected"),
    [
        ({"a": 50, "b": 30, "c": 20}, 10, 1, {"a": 5, "b": 3, "c": 2}),
        ({"a": 90, "b": 10}, 10, 1, {"a": 9, "b": 1}),
        # ties in the remainders go to the alphabetically first stratum
        ({"y": 5, "x": 5}, 5, 0, {"x": 3, "y": 2}),
        (
            SIZES,
            60,
            1,
            {**SIZES, "billing": 21, "shipping": 15, "returns": 10}
            | {"account": 8, "technical": 4, "legal": 2},
        ),
        # the floor lifts small strata; the rest is shared by the others
        ({"a": 97, "b": 2, "c": 1}, 10, 1, {"a": 8, "b": 1, "c": 1}),
        ({"a": 97, "b": 2, "c": 1}, 10, 0, {"a": 10, "b": 0, "c": 0}),
        # pinning a at its floor pushes b below its floor: both pinned
        ({"a": 2, "b": 5, "c": 13}, 8, 2, {"a": 2, "b": 2, "c": 4}),
        # a stratum smaller than the floor gives all it has
        ({"a": 1, "b": 20}, 6, 3, {"a": 1, "b": 5}),
        # n too small for every floor: the largest strata first, then by name
        ({"a": 5, "b": 3, "c": 3, "d": 1}, 2, 1, {"a": 1, "b": 1, "c": 0, "d": 0}),
        ({"a": 10, "b": 10, "c": 10}, 5, 2, {"a": 2, "b": 2, "c": 1}),
        ({"a": 5, "b": 3, "c": 3, "d": 1}, 4, 1, {"a": 1, "b": 1, "c": 1, "d": 1}),
        # n at or above the total: everything
        ({"a": 2, "b": 3}, 5, 1, {"a": 2, "b": 3}),
        ({"a": 2, "b": 3}, 9, 1, {"a": 2, "b": 3}),
        ({"a": 0, "b": 4}, 2, 1, {"a": 0, "b": 2}),
        ({"a": 3, "b": 4}, 0, 1, {"a": 0, "b": 0}),
        ({}, 3, 1, {}),
    ],
)
def test_allocation(counts: dict[str, int], n: int, floor: int, expected: dict[str, int]) -> None:
    result = allocation(counts, n, floor)
    assert result == expected
    assert sum(result.values()) == min(n, sum(counts.values()))
    assert all(0 <= result[k] <= counts[k] for k in counts)


@pytest.mark.parametrize(
    ("weights", "n", "expected"),
    [
        ({"a": 1, "b": 1, "c": 1}, 2, {"a": 1, "b": 1, "c": 0}),
        ({"a": 1, "b": 2}, 4, {"a": 1, "b": 3}),
        ({"a": 0, "b": 0}, 0, {"a": 0, "b": 0}),
    ],
)
def test_largest_remainder(weights: dict[str, int], n: int, expected: dict[str, int]) -> None:
    assert largest_remainder(weights, n) == expected


@pytest.mark.parametrize(
    ("counts", "n", "floor"), [({"a": 1}, -1, 1), ({"a": 1}, 1, -1), ({"a": -1}, 1, 1)]
)
def test_allocation_rejects_negatives(counts: dict[str, int], n: int, floor: int) -> None:
    with pytest.raises(DatasetError, match="must be 0 or more"):
        allocation(counts, n, floor)


def test_sample_is_proportional_and_exact() -> None:
    cases = make_cases(SIZES)
    assert len(cases) == 200
    sample = sample_cases(cases, n=60, seed=7)
    assert len(sample) == 60
    assert Counter(c.category for c in sample) == allocation(SIZES, 60)
    assert len({c.id for c in sample}) == 60


def test_sample_is_seeded_and_in_dataset_order() -> None:
    cases = make_cases(SIZES)
    first = [c.id for c in sample_cases(cases, n=30, seed=1)]
    assert first == [c.id for c in sample_cases(cases, n=30, seed=1)]
    assert first == sorted(first)  # ids follow the dataset's order
    assert first != [c.id for c in sample_cases(cases, n=30, seed=2)]
    assert first != [c.id for c in sample_cases(cases, n=30, seed=1, stratify=None)]


def test_floor_when_n_is_smaller_than_the_strata() -> None:
    sample = sample_cases(make_cases(SIZES), n=3, seed=0)
    assert sorted(c.category for c in sample) == ["billing", "returns", "shipping"]
    # 6 strata × floor 2 = 12 rows: n=12 gives each exactly 2; n=11 leaves the smallest 1
    for n, legal in ((12, 2), (11, 1)):
        sample = sample_cases(make_cases(SIZES), n=n, seed=0, floor=2)
        assert Counter(c.category for c in sample) == dict.fromkeys(SIZES, 2) | {"legal": legal}
        assert Counter(c.category for c in sample) == allocation(SIZES, n, floor=2)


@pytest.mark.parametrize(
    ("fraction", "size"), [(0.1, 20), (0.5, 100), (1.0, 200), (0.0001, 1), (0.0125, 3)]
)
def test_fraction(fraction: float, size: int) -> None:
    cases = make_cases(SIZES)
    assert len(sample_cases(cases, fraction=fraction, seed=3)) == size


def test_everything_when_n_covers_the_rows_or_nothing_is_asked() -> None:
    cases = make_cases({"a": 3, "b": 2})
    assert sample_cases(cases) == cases
    assert sample_cases(cases, n=5) == cases
    assert sample_cases(cases, n=50, seed=9) == cases
    assert sample_cases(cases, n=0) == []
    assert sample_cases([], n=3) == []


@pytest.mark.parametrize(
    ("total", "n", "fraction", "size"),
    [
        (10, None, None, 10),
        (10, 3, None, 3),
        (10, 30, None, 10),
        (10, None, 0.25, 3),
        (10, None, 0.35, 4),
        (0, None, 0.5, 0),
    ],
)
def test_sample_size(total: int, n: int | None, fraction: float | None, size: int) -> None:
    assert sample_size(total, n=n, fraction=fraction) == size


@pytest.mark.parametrize(
    ("n", "fraction", "message"),
    [
        (5, 0.5, "give n or fraction, not both"),
        (-1, None, "n must be 0 or more, got -1"),
        (None, 0.0, "fraction must be above 0 and at most 1, got 0.0"),
        (None, 1.5, "fraction must be above 0 and at most 1, got 1.5"),
    ],
)
def test_bad_sample_arguments(n: int | None, fraction: float | None, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        sample_cases(make_cases({"a": 3}), n=n, fraction=fraction)


def test_empty_values_form_their_own_stratum() -> None:
    cases = make_cases({"a": 6, "": 3, " ": 1})
    assert count_strata(cases) == {"(none)": 4, "a": 6}
    assert Counter(c.category.strip() for c in sample_cases(cases, n=5)) == {"a": 3, "": 2}


def test_stratify_by_another_column() -> None:
    cases = make_cases({"pro": 8, "free": 2}, column="plan")
    assert count_strata(cases, "plan") == {"free": 2, "pro": 8}
    sample = sample_cases(cases, n=5, stratify="plan", seed=4)
    assert Counter(c.values["plan"] for c in sample) == {"pro": 4, "free": 1}


def test_missing_stratify_column_names_the_columns() -> None:
    with pytest.raises(DatasetError) as info:
        sample_cases(make_cases({"a": 3}), n=2, stratify="segment")
    assert str(info.value) == (
        "cannot stratify by 'segment': the dataset has no such column "
        "(columns: id, category, input)"
    )


def test_without_a_category_column_the_rows_are_one_stratum() -> None:
    cases = make_cases({"pro": 8, "free": 2}, column="plan")
    assert count_strata(cases) == {"(none)": 10}
    assert count_strata(cases, None) == {"(none)": 10}
    assert [c.id for c in sample_cases(cases, n=4, seed=5)] == [
        c.id for c in sample_cases(cases, n=4, seed=5, stratify=None)
    ]


def test_every_prefix_of_the_stratified_order_is_a_stratified_sample() -> None:
    sizes = {"billing": 50, "returns": 30, "shipping": 15, "other": 5}
    cases = [Case(f"{k}{i}", {"category": k}) for k, n in sizes.items() for i in range(n)]
    order = stratified_order(cases, seed=7)
    assert sorted(c.id for c in order) == sorted(c.id for c in cases)  # every row, once
    assert {c.category for c in order[:4]} == set(sizes)  # every stratum at once
    for n in range(4, len(cases) + 1):
        counts = Counter(c.category for c in order[:n])
        for k, size in sizes.items():  # within one row of its share, floor of 1 kept
            share = n * size / len(cases)
            assert counts[k] >= 1 and abs(counts[k] - share) <= 1.5, (n, k, counts[k], share)
    assert [c.id for c in stratified_order(cases, seed=7)] == [c.id for c in order]
    assert [c.id for c in stratified_order(cases, seed=8)] != [c.id for c in order]
