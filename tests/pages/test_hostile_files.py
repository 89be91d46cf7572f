"""Hostile workspace files on the pages that read them: a recursive YAML alias in a prompt or
a dataset is an error naming the file and the line, not a crashed page; a template that
would spin forever stops at its limit in the Prompts preview."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers import shown
from tests.pages.conftest import open_page
from tests.pages.test_prompts import open_prompts

RECURSIVE = "- id: r1\n  category: billing\n  input: &a [*a]\n"


def test_a_recursive_alias_in_a_dataset_is_named_on_the_datasets_page(workspace: Path) -> None:
    (workspace / "datasets" / "aaa_loop.yaml").write_text(RECURSIVE)
    at = open_page("pages/datasets.py")
    message = "datasets/aaa_loop.yaml: line 3: YAML refused: the alias *a is inside the value"
    assert any(message in shown(e.value) for e in at.error), [e.value for e in at.error]
    at.selectbox(key="ds_path").select_index(0).run()  # the broken one, listed first
    assert not at.exception
    assert "cannot be loaded" in at.warning[0].value


def test_a_recursive_alias_in_a_prompt_is_named_on_the_prompts_page(workspace: Path) -> None:
    path = workspace / "prompts" / "t" / "loop.yaml"
    path.write_text("model: fake/x\nuser: hi\ntags: &t [a, *t]\n")
    at = open_prompts("t/loop")
    assert any(
        "line 3: YAML refused: the alias *t is inside the value it names" in shown(e.value)
        for e in at.error
    ), [e.value for e in at.error]


def test_a_runaway_template_stops_in_the_preview_and_the_page_goes_on(workspace: Path) -> None:
    spin = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    (workspace / "prompts" / "t" / "spin.yaml").write_text(f"model: fake/x\nuser: '{spin}'\n")
    started = time.monotonic()
    at = open_prompts("t/spin")
    assert time.monotonic() - started < 30  # the page ran to its end (default_timeout: 30 s)
    warnings = [shown(w.value) for w in at.warning]
    assert any(
        "t/spin: user template: stopped after 1,000,000 loop iterations" in w for w in warnings
    )
    at.selectbox(key="pp_variant").set_value("t/alpha").run()
    assert not at.exception
    assert any(t.value.startswith("Customer message: ") for t in at.text)
