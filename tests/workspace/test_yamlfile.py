import pytest

from promptdeck.workspace.yamlfile import MAX_YAML_CHARS, YAMLProblem, parse_yaml, parse_yaml_rows


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


# --- bounds: aliases, recursion, size ------------------------------------------------------


def laughs(levels: int, width: int = 10) -> str:
    """The "billion laughs": each level names the one before `width` times; under 700 bytes
    for 9 levels, 10**9 values once expanded."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def merge_laughs(levels: int) -> str:
    """The same with merge keys: each level merges the one before under ten new keys."""
    lines = ["m0: &m0 {a: 1, b: 2}"]
    for n in range(1, levels):
        keys = ", ".join(f"k{k}: *m{n - 1}" for k in range(10))
        lines.append(f"m{n}: &m{n} {{<<: *m{n - 1}, {keys}}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "line"),
    [(laughs(9), 5), (laughs(7, width=20), 4), (merge_laughs(9), 6)],
    ids=["billion-laughs", "wide", "merge-keys"],
)
def test_an_alias_bomb_is_refused_at_the_alias_that_crosses_the_bound(text: str, line: int) -> None:
    assert len(text) < 1000
    with pytest.raises(YAMLProblem) as info:
        parse_yaml(text)
    assert info.value.line == line
    assert str(info.value).startswith(f"line {line}: YAML refused: aliases (*name) expand to ")
    assert "the file writes out plus 100,000 (an alias bomb?)" in str(info.value)


def test_aliases_may_add_as_many_values_as_the_file_writes_out_and_some() -> None:
    assert len(parse_yaml(laughs(4))["l3"]) == 10  # aliases add 12,330 values
    rows = "base: &b {kind: openai, free: true}\nrows:\n" + "  - {<<: *b, n: 1}\n" * 25_000
    assert len(parse_yaml(rows)["rows"]) == 25_000  # aliases add 125,000 values to 100,000


@pytest.mark.parametrize(
    ("text", "line", "name"),
    [
        ("&a [*a]", 1, "a"),
        ("x: &x {y: *x}", 1, "x"),
        ("p:\n  q: &q\n    - 1\n    - <<: *q\n", 4, "q"),
        ("d: &d {<<: *d}", 1, "d"),
    ],
)
def test_a_recursive_alias_is_refused_with_its_line(text: str, line: int, name: str) -> None:
    with pytest.raises(YAMLProblem) as info:
        parse_yaml(text)
    assert str(info.value) == (
        f"line {line}: YAML refused: the alias *{name} is inside the value it names "
        "(a recursive alias, which never ends); remove it"
    )


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    text = "x: " + "a" * MAX_YAML_CHARS
    with pytest.raises(YAMLProblem, match=r"YAML files are read up to 4 MB.*\.csv or \.jsonl"):
        parse_yaml(text)


def test_a_syntax_error_in_a_large_file_still_names_its_line() -> None:
    text = "rows:\n" + "  - {a: 1, b: two}\n" * 20_000 + "  - {a: [1, 2}\n"
    with pytest.raises(YAMLProblem) as info:
        parse_yaml(text)
    assert info.value.line == 20_002 and "invalid YAML" in str(info.value)


# --- YAML 1.2 scalars -----------------------------------------------------------------------

CORE = [  # text as written in the file -> the value, YAML 1.2 core schema
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("Off", "Off"),
    ("y", "y"),
    ("true", True),
    ("False", False),
    ("TRUE", True),
    ("1:30", "1:30"),  # YAML 1.1: 90 (sexagesimal)
    ("2024-05-01", "2024-05-01"),  # YAML 1.1: a date
    ("010", 10),  # YAML 1.1: octal 8
    ("0o17", 15),
    ("0x1F", 31),
    ("-12", -12),
    ("1_000", "1_000"),
    ("1.10", 1.1),
    ("1e3", 1000.0),
    (".5", 0.5),
    ("-.inf", float("-inf")),
    ("~", None),
    ("null", None),
    ("", None),
    ("'no'", "no"),
    ("0b101", "0b101"),
]


@pytest.mark.parametrize(("written", "value"), CORE)
def test_scalars_follow_the_yaml_1_2_core_schema(written: str, value: object) -> None:
    assert parse_yaml(f"v: {written}\n") == {"v": value}
    assert type(parse_yaml(f"v: {written}\n")["v"]) is type(value)


def test_yaml_1_1_words_are_keys_too() -> None:
    assert parse_yaml("on: mean\nyes: 1\nno: [a]\n") == {"on": "mean", "yes": 1, "no": ["a"]}


def test_dataset_rows_keep_their_cells_as_written() -> None:
    text = (
        "- id: 007\n  expected: no\n  on: 1.10\n  when: 2024-05-01\n  n: 1e3\n"
        "  flag: true\n  empty:\n  nothing: null\n  nested: {score: 4, ok: true}\n"
        "  list: [1, yes]\n  quoted: 'x'\n"
    )
    assert parse_yaml_rows(text) == [
        {
            "id": "007",
            "expected": "no",
            "on": "1.10",
            "when": "2024-05-01",
            "n": "1e3",
            "flag": "true",
            "empty": None,
            "nothing": None,
            "nested": {"score": 4, "ok": True},  # deeper values are parsed as usual
            "list": [1, "yes"],
            "quoted": "x",
        }
    ]


def test_merge_keys_work_in_dataset_rows() -> None:
    text = "- &r {category: billing, tier: 1.10}\n- {<<: *r, input: hi}\n"
    assert parse_yaml_rows(text)[1] == {"category": "billing", "tier": "1.10", "input": "hi"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x: !!bool maybe\n", "line 1: invalid YAML: 'maybe' is not a valid bool"),
        ("x: !!timestamp soon\n", "line 1: invalid YAML: 'soon' is not a valid timestamp"),
        ("x: !!int twelve\n", "line 1: invalid YAML: 'twelve' is not a whole number"),
        ("x: !!float many\n", "line 1: invalid YAML: 'many' is not a number"),
        ("a: 1\nx: " + "9" * 5000 + "\n", "line 2: invalid YAML: '999"),
        ("x: !!python/name:os.system\n", "line 1: invalid YAML: could not determine a constructor"),
    ],
)
def test_values_yaml_cannot_read_are_errors_with_a_line(text: str, message: str) -> None:
    with pytest.raises(YAMLProblem) as info:
        parse_yaml(text)
    assert str(info.value).startswith(message)
