"""How a suite file is read: YAML 1.2 scalars (the gate option `on: mean` needs no quotes),
merge keys, and bounded aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptdeck.errors import ConfigError
from promptdeck.evals.suite import load_suite


def suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.suite.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_gate_option_on_mean_needs_no_quotes(tmp_path: Path) -> None:
    path = suite(
        tmp_path,
        "dataset: qa.csv\nvariants: [t/a, t/b]\nbaseline: t/a\n"
        "judge: {model: fake/judge, rubric: Score 1-5}\n"
        "gates:\n  - {metric: judge_score, max_drop: 0.2, on: mean}\n",
    )
    assert load_suite(path).gates == ({"metric": "judge_score", "max_drop": 0.2, "on": "mean"},)


def test_merge_keys_share_settings_in_a_suite(tmp_path: Path) -> None:
    path = suite(
        tmp_path,
        "dataset: qa.csv\nvariants: [t/a, t/b]\n"
        "sample: &s {n: 10, seed: 7}\n"
        "gates:\n  - &g {metric: judge_score, max_drop: 0.2}\n  - {<<: *g, category: billing}\n"
        "judge: {model: fake/judge, rubric: Score 1-5}\n",
    )
    loaded = load_suite(path)
    assert (loaded.sample.n, loaded.sample.seed) == (10, 7)
    assert loaded.gates[1] == {"metric": "judge_score", "max_drop": 0.2, "category": "billing"}


def test_a_gate_error_names_its_line_after_a_merge(tmp_path: Path) -> None:
    path = suite(
        tmp_path,
        "dataset: qa.csv\nvariants: [t/a, t/b]\n"
        "gates:\n  - &g {metric: judge_score, max_drop: 0.2}\n  - {<<: *g, colour: red}\n",
    )
    with pytest.raises(ConfigError, match=r"s\.suite\.yaml, line 5: 'gates\[1\]\.colour'"):
        load_suite(path)


def test_a_recursive_alias_in_a_suite_names_the_file_and_line(tmp_path: Path) -> None:
    path = suite(tmp_path, "dataset: qa.csv\nvariants: [t/a]\ngates: &g [*g]\n")
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert str(info.value) == (
        f"{path}: line 3: YAML refused: the alias *g is inside the value it names "
        "(a recursive alias, which never ends); remove it"
    )


def test_the_judge_method_is_read_and_checked(tmp_path: Path) -> None:
    base = "dataset: d.csv\nvariants: [t/a]\njudge: {model: local/smollm2, rubric: r%s}\n"
    (tmp_path / "d.csv").write_text("id,input\nr1,hi\n")
    good = tmp_path / "good.suite.yaml"
    good.write_text(base % ", method: verdict")
    suite = load_suite(good)
    assert suite.judge is not None and suite.judge.method == "verdict"
    assert suite.to_dict()["judge"]["method"] == "verdict"
    plain = tmp_path / "plain.suite.yaml"
    plain.write_text(base % "")
    assert "method" not in load_suite(plain).to_dict()["judge"]  # old fingerprints unchanged
    bad = tmp_path / "bad.suite.yaml"
    bad.write_text(base % ", method: vibes")
    with pytest.raises(ConfigError, match="method must be expected or verdict"):
        load_suite(bad)
