import pytest

from promptdeck.workspace.yamlfile import parse_yaml


def test_a_key_given_twice_is_an_error_with_both_lines() -> None:
    with pytest.raises(
        ValueError, match=r"line 3: invalid YAML: duplicate key 'a' \(first on line 1\)"
    ):
        parse_yaml("a: 1\nb: 2\na: 3\n")


def test_merge_keys_load_and_may_be_overridden() -> None:
    text = (
        "defaults: &d {kind: openai, max_concurrency: 4}\n"
        "staging:\n  <<: *d\n  max_concurrency: 8\n"
    )
    assert parse_yaml(text)["staging"] == {"kind": "openai", "max_concurrency": 8}


def test_a_key_given_twice_next_to_a_merge_is_still_an_error() -> None:
    with pytest.raises(ValueError, match="duplicate key 'x'"):
        parse_yaml("d: &d {k: 1}\ne:\n  <<: *d\n  x: 1\n  x: 2\n")
