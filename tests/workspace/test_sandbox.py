"""Templates render with bounded work (workspace/sandbox.py): a runaway loop or a huge text
is a TemplateError naming the variant and the limit, raised within about a second, and the
next render works as usual."""

from __future__ import annotations

import resource
import time

import pytest

from promptdeck.errors import PromptFileError, TemplateError
from promptdeck.workspace.prompts import PromptVariant, render_messages, variant_from_dict
from promptdeck.workspace.sandbox import MAX_OUTPUT_CHARS, RENDER_SECONDS

STEPS = "stopped after 1,000,000 loop iterations and calls"
TIME = f"stopped after {RENDER_SECONDS:g} s, the time limit for one prompt"
TOO_BIG = "; the limit is 8,388,608"

HOSTILE = [
    # CPU: loops and recursion
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", STEPS),
    ("{% for x in 'x' * 5000000 %}{% endfor %}", STEPS),
    (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(60) }}",
        "stopped after",
    ),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nested too deeply"),
    # memory: one operation that would allocate gigabytes
    ("{{ 'x' * 10**9 }}", "a repeated text would have 1,000,000,000 characters" + TOO_BIG),
    ("{{ ['x'] * 10**8 }}", "a repeated list would have 100,000,000 items; the limit is 1,000,000"),
    ("{{ 2 ** (10**9) }}", "a number would have 2,000,000,000 bits; the limit is 100,000"),
    ("{{ 'x'|center(10**9) }}", "a width or count of 1,000,000,000 is over the limit"),
    ("{{ 'x'.ljust(10**9) }}", "a width or count of 1,000,000,000 is over the limit"),
    ("{{ (2).to_bytes(10**9, 'big') }}", "a width or count of 1,000,000,000"),
    ("{{ '%999999999d' % 1 }}", "a formatted text would have 1,000,000,011 characters"),
    ("{{ '%s'|format('x' * 8000000) ~ ('%s'|format('x' * 8000000)) }}", TOO_BIG),
    ("{{ '{:>999999999}'.format(1) }}", "a width or count of 999,999,999 is over the limit"),
    ("{% set s = 'x' * 1000000 %}{{ s.replace('x', s) }}", "str.replace would have"),
    ("{% set s = 'x' * 1000000 %}{{ s|replace('x', s) }}", "str.replace would have"),
    ("{{ (['y' * 8000000] * 1000)|join(',') }}", "a joined text would have 8,000,003,000"),
    ("{{ ','.join(['y' * 8000000] * 1000) }}", "a joined text would have"),
    ("{{ 'a'|indent(10**7) }}", "a width or count of 10,000,000 is over the limit"),
    ("{{ ('a\n' * 100000)|indent('x' * 1000) }}", "the indent filter would have"),
    ("{{ range(10)|slice(10**7)|list }}", "a width or count of 10,000,000"),
    ("{{ lipsum(10**6) }}", "lipsum() would have 100,000,000 words; the limit is 100,000"),
    ("{{ ('x' * 8000000)|list|length }}", "a list would have 8,000,000 items"),
    # memory: growth, a step at a time
    (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "a text joined with ~ would have 16,777,216 characters" + TOO_BIG,
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "a text would have 16,777,216 characters" + TOO_BIG,
    ),
    (
        "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}"
        "{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}",
        "turning a list into text would have",
    ),
    ("{% set l = [1] %}{{ l.append(l) }}", "blocked by the sandbox: access to attribute 'append'"),
    # output: what the loops write, also where a macro or {% set %} collects it
    ("{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}", "the rendered prompt would have"),
    (
        "{% macro m() %}{% for i in range(100000) %}{{ '" + "q" * 200 + "' }}{% endfor %}"
        "{% endmacro %}{{ m() }}",
        "the rendered prompt would have",
    ),
    (
        "{% set s %}{% for i in range(100000) %}{% for j in range(10) %}" + "z" * 100
        + "{% endfor %}{% endfor %}{% endset %}{{ s|length }}",
        "the rendered prompt would have",
    ),
]  # fmt: skip


def scratch(user: str) -> PromptVariant:
    return variant_from_dict({"model": "fake/m", "user": user}, name="evil/x", path="x")


@pytest.mark.parametrize(("template", "message"), HOSTILE)
def test_a_hostile_template_stops_at_a_named_limit(template: str, message: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render_messages(scratch(template), {"input": "hi"})
    took = time.monotonic() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert str(caught.value).startswith("evil/x: user template: ")
    assert message in str(caught.value)
    assert took < RENDER_SECONDS + 3  # the deadline, with room for a loaded machine
    assert grown_mb < 300
    # and the next render is as usual
    assert render_messages(scratch("Q: {{ input }}"), {"input": "hi"})[0].content == "Q: hi"


AS_BEFORE = [
    ("{% for i in range(3) %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}", "0,1,2"),
    ("{{ items|length }} {{ items|join(', ') }} {{ items|map('upper')|join }}", "2 a, b AB"),
    ("{{ '%05.1f' % 3.14159 }} {{ '{:>4}|{}'.format('a', 2) }}", "003.1    a|2"),
    ("{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ [0] * 2 }} {{ [1] + [2] }}", "1024 ababab [0, 0] [1, 2]"),
    ("{{ 'a' ~ 1 }} {{ 7 % 3 }} {{ 10 // 3 }} {{ -2 }}", "a1 1 3 -2"),
    (
        "{% set ns = namespace(n=0) %}{% for x in items %}{% set ns.n = ns.n + 1 %}{% endfor %}"
        "{{ ns.n }}",
        "2",
    ),
    ("{% macro greet(n) %}Hi {{ n }}{% endmacro %}{{ greet(input) }}", "Hi doc"),
    ("{% filter upper %}{{ input }}{% endfilter %} {{ input|center(7) }}", "DOC   doc  "),
    ("{{ {'b': 1, 'a': 2}|dictsort }}", "[('a', 2), ('b', 1)]"),
    ("{{ items|batch(1)|list }}", "[['a'], ['b']]"),
    ("{% for k in items recursive %}{{ k }}{% endfor %}{{ 'x'.join(items) }}", "abaxb"),
    ("{{ input|replace('o', '0') }} {{ input|indent(2, first=True) }}", "d0c   doc"),
]


@pytest.mark.parametrize(("template", "output"), AS_BEFORE)
def test_templates_still_render_as_before(template: str, output: str) -> None:
    [message] = render_messages(scratch(template), {"input": "doc", "items": ["a", "b"]})
    assert message.content == output


def test_a_cell_at_the_dataset_limit_renders_twice_over() -> None:
    cell = "word " * 800_000  # 4 MB, the largest CSV cell
    messages = render_messages(scratch("A: {{ doc }}\nB: {{ doc }}"), {"doc": cell})
    assert len(messages[0].content) == 2 * len(cell) + 7 <= MAX_OUTPUT_CHARS


def test_the_budget_covers_all_messages_of_a_prompt() -> None:
    half = "x" * (MAX_OUTPUT_CHARS // 2 + 10)
    variant = variant_from_dict(
        {"model": "fake/m", "system": "{{ doc }}", "user": "{{ doc }}"}, name="t/two", path="x"
    )
    with pytest.raises(TemplateError, match=r"^t/two: user template: the rendered prompt would"):
        render_messages(variant, {"doc": half})


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ a }} " * 6_000, "the template has 6,000 tags ({{ }} and {% %}); the limit is 5,000"),
        (
            "{{ [" + "a, " * 40_000 + "a] }}",
            "the template's expressions have 40,003 parts; the limit is 30,000",
        ),
        ("{{ " + "a + " * 20_000 + "a }}", "the template is nested too deeply"),
        ("{{ " + "(" * 3_000 + "1" + ")" * 3_000 + " }}", "the template is nested too deeply"),
        ("{% if a %}" * 1_000 + "x" + "{% endif %}" * 1_000, "the template is nested too deeply"),
    ],
)
def test_a_template_too_large_to_compile_is_refused_when_the_prompt_loads(
    template: str, message: str
) -> None:
    started = time.monotonic()
    with pytest.raises(PromptFileError) as caught:
        scratch(template)
    assert time.monotonic() - started < 3
    assert str(caught.value) == f"x: field 'user': {message}"
