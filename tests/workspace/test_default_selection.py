"""What the Playground and Evaluate pick when nothing is picked yet."""

from __future__ import annotations

import pytest

from promptdeck.workspace.prompt_edit import baseline_of, default_selection
from promptdeck.workspace.prompts import PromptLibrary
from tests.helpers import variant


def library(*names: str, baseline: str | None = None) -> PromptLibrary:
    return PromptLibrary(
        variants={
            n: variant(n, "local/smollm2", tags=["baseline"] if n == baseline else [])
            for n in names
        }
    )


def test_adding_a_variant_never_pushes_the_baseline_out() -> None:
    three = ("support/production", "support/concise", "support/empathetic")
    lib = library(*three, baseline="support/production")
    assert default_selection(lib) == ["support/production", "support/concise", "support/empathetic"]
    lib = library(*three, "support/apologetic", baseline="support/production")
    picked = default_selection(lib)
    assert picked[0] == "support/production" and len(picked) == 3  # "apologetic" sorts first
    assert baseline_of(lib, picked) == "support/production"


@pytest.mark.parametrize(
    ("names", "baseline", "expected"),
    [
        (("a/x", "b/base", "b/y"), "b/base", ["b/base", "b/y"]),  # the baseline's task
        (("a/x", "a/y", "b/z"), None, ["a/x", "a/y"]),  # no baseline: the first task
        ((), None, []),
    ],
)
def test_the_task_of_the_baseline_is_picked(
    names: tuple[str, ...], baseline: str | None, expected: list[str]
) -> None:
    assert default_selection(library(*names, baseline=baseline)) == expected
