"""The expected-score judge (G-Eval): the score from the log-probs of the scale's tokens.

Pure parts on literal read-outs with exact numbers; the method's choice and its refusals
through the `CallFn` seam; one real judging call through the embedded SmolLM2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from promptdeck.model import local
from promptdeck.model.http import run_with_client
from promptdeck.model.policy import CallPolicy
from promptdeck.model.secrets import Secrets
from promptdeck.model.types import Answer, CallResult, ChatRequest, Message, Usage
from promptdeck.scoring.judge import (
    EXPECTED,
    SCORE_PROBE,
    VERDICT,
    Expected,
    JudgeSpec,
    Verdict,
    expected_params,
    expected_score,
    judge_method,
    parse_expected,
    score_schema,
)
from promptdeck.scoring.scorers import Graded, pointwise_prompt, pointwise_score
from promptdeck.workspace.providers_file import open_registry

RUBRIC = "5 = resolves the issue correctly and politely; 1 = wrong, rude or off-topic."
QUESTION = "Customer message: Can I return a lamp I bought 20 days ago?"
LN = math.log
# A read-out SmolLM2 really returned (a correct answer, the demo's long rubric's style).
SMOLLM2 = {"1": -1.14546854575336, "2": -2.3537853487318756, "3": -0.8693836458510162,
           "4": -3.2580860384291412, "5": -3.3336761720961334}  # fmt: skip


def read_out(logprobs: Mapping[str, float] | None, output: str = '{"score": 4}') -> str:
    return json.dumps({"output": output, "score_logprobs": logprobs})


# --- the expected score: exact numbers --------------------------------------------------


@pytest.mark.parametrize(
    ("logprobs", "scale", "score", "mass"),
    [
        ({"1": LN(0.05), "2": LN(0.10), "3": LN(0.30), "4": LN(0.40), "5": LN(0.15)},
         (1, 5), 3.5, 1.0),
        # The scale's tokens held half the probability: renormalised over the scale.
        ({"1": LN(0.25), "2": -math.inf, "3": -math.inf, "4": -math.inf, "5": LN(0.25)},
         (1, 5), 3.0, 0.5),
        ({"1": -2.0, "2": -2.0, "3": -2.0, "4": -2.0, "5": -2.0}, (1, 5), 3.0, 5 * math.exp(-2)),
        ({"0": LN(0.5), "1": LN(0.25), "2": LN(0.25)}, (0, 2), 0.75, 1.0),
        ({"1": 0.0, "2": -math.inf, "3": -math.inf, "4": -math.inf, "5": -math.inf},
         (1, 5), 1.0, 1.0),  # certain: the integer itself
        (SMOLLM2, (1, 5), 2.3145, 0.9064),
        # Extra keys (another scale's values) are ignored.
        ({"1": LN(0.5), "2": LN(0.5), "3": -1.0}, (1, 2), 1.5, 1.0),
    ],
    ids=["spread", "half-mass", "uniform", "zero-based", "certain", "smollm2", "extra-keys"],
)  # fmt: skip
def test_expected_score(
    logprobs: dict[str, float], scale: tuple[int, int], score: float, mass: float
) -> None:
    found = expected_score(logprobs, scale)
    assert isinstance(found, Expected)
    assert found.score == score
    assert found.mass == pytest.approx(mass, abs=5e-5)
    assert [v for v, _ in found.probabilities] == list(range(scale[0], scale[1] + 1))
    assert math.fsum(p for _, p in found.probabilities) == pytest.approx(1.0)


def test_expected_probabilities_are_exact() -> None:
    found = expected_score({"1": LN(0.05), "2": LN(0.1), "3": LN(0.3), "4": LN(0.4), "5": LN(0.15)})
    assert isinstance(found, Expected)
    assert [round(p, 12) for _, p in found.probabilities] == [0.05, 0.1, 0.3, 0.4, 0.15]


@pytest.mark.parametrize(
    ("logprobs", "why"),
    [
        ({"1": -1.0, "3": -1.0, "4": -1.0, "5": -1.0}, "no log-probability for score 2"),
        ({"1": -1.0, "2": 0.5, "3": -1.0, "4": -1.0, "5": -1.0}, "no log-probability for score 2"),
        ({"1": -1.0, "2": math.nan, "3": -1, "4": -1, "5": -1}, "no log-probability for score 2"),
        ({"1": True, "2": -1, "3": -1, "4": -1, "5": -1}, "no log-probability for score 1"),
        ({"1": "-1", "2": -1, "3": -1, "4": -1, "5": -1}, "no log-probability for score 1"),
        (dict.fromkeys("12345", -math.inf), "every score token has probability 0"),
    ],
    ids=["missing", "positive", "nan", "bool", "text", "all-zero"],
)
def test_no_expected_score_says_why(logprobs: dict[str, object], why: str) -> None:
    assert expected_score(logprobs) == why


# --- parsing the embedded provider's read-out ---------------------------------------------


SPREAD = {"1": LN(0.05), "2": LN(0.10), "3": LN(0.30), "4": LN(0.40), "5": LN(0.15)}


@pytest.mark.parametrize(
    ("raw", "score", "reasoning", "why"),
    [
        (
            read_out(SPREAD),
            3.5,
            "expected score 3.50 from the score token's probabilities (1: 0.05, 2: 0.10, "
            "3: 0.30, 4: 0.40, 5: 0.15; the model wrote 4; the scale's tokens held 100% of its "
            "probability there)",
            None,
        ),
        (
            read_out(SMOLLM2, '{ "score": 3}'),
            2.3145,
            "expected score 2.31 from the score token's probabilities (1: 0.35, 2: 0.10, "
            "3: 0.46, 4: 0.04, 5: 0.04; the model wrote 3; the scale's tokens held 91% of its "
            "probability there)",
            None,
        ),
        (read_out(None, '{"sc'), None, "", "the model never wrote the score (max_tokens?)"),
        (read_out({"1": -1.0, "2": -1.0}), None, "", "no log-probability for score 3"),
        ('{"reasoning": "fine", "score": 4}', None, "",
         "the output is not a score read-out (is the judge local?)"),
        ("not json", None, "", "the output is not a score read-out (is the judge local?)"),
        ("", None, "", "the output is not a score read-out (is the judge local?)"),
    ],
    ids=["spread", "smollm2", "no-score-token", "value-missing", "a-verdict", "text", "empty"],
)  # fmt: skip
def test_parse_expected(raw: str, score: float | None, reasoning: str, why: str | None) -> None:
    assert parse_expected(raw) == Verdict(score, reasoning, raw, why)


def test_an_unreadable_read_out_is_unscored_never_zero() -> None:
    verdict = parse_expected(read_out(None))
    assert verdict.score is None and not verdict.scored


# --- choosing the method ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "local", "scale", "chosen"),
    [
        (None, True, (1, 5), EXPECTED),  # the embedded model: expected by default
        (None, False, (1, 5), VERDICT),  # HTTP judges stay as they are
        (None, True, (1, 10), VERDICT),  # "10" is two tokens: no expected score
        (None, True, (0, 9), EXPECTED),
        (VERDICT, True, (1, 5), VERDICT),  # a suite may ask for the old method
        (EXPECTED, False, (1, 5), EXPECTED),  # asked for: refused when scoring (below)
    ],
)
def test_judge_method(method: str | None, local: bool, scale: tuple[int, int], chosen: str) -> None:
    spec = JudgeSpec("x/judge", RUBRIC, scale, method=method)
    assert judge_method(spec, local=local) == chosen


def test_the_read_out_request_names_every_scale_value() -> None:
    params = expected_params((1, 5))
    assert params[SCORE_PROBE] == {"key": "score", "values": ["1", "2", "3", "4", "5"]}
    assert params["response_format"]["json_schema"]["schema"] == score_schema((1, 5))
    assert (params["temperature"], params["max_tokens"]) == (0, 24)


def test_the_probe_param_is_the_providers() -> None:
    assert SCORE_PROBE == local.SCORE_PROBE  # two layers that may not import each other


def test_the_expected_prompt_asks_for_the_score_alone() -> None:
    spec = JudgeSpec("local/smollm2", RUBRIC)
    system, user = pointwise_prompt(spec, Graded(QUESTION), "Yes.", local=True)
    assert '{"score": <integer from 1 to 5>}' in system.content
    assert "reasoning" not in system.content
    assert user.content.endswith('Reply with only the JSON object {"score": <1-5>}.')
    verdict_system, _ = pointwise_prompt(spec, Graded(QUESTION), "Yes.", local=False)
    assert '"reasoning": "<one or two sentences>"' in verdict_system.content


# --- scoring through the CallFn seam ------------------------------------------------------


class Recorder:
    """A CallFn that answers every call with `text` and keeps what it was asked."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls: list[tuple[str, tuple[Message, ...], dict[str, Any]]] = []

    async def __call__(
        self, model_ref: str, messages: tuple[Message, ...], params: Mapping[str, Any]
    ) -> Answer:
        self.calls.append((model_ref, messages, dict(params)))
        result = CallResult(model_ref, self.text, Usage(500, 6), 900.0, 1000.0, 0.0)
        return Answer(result, ChatRequest("smollm2", messages, dict(params)))


def test_a_local_judge_scores_by_expected_score_and_keeps_the_evidence() -> None:
    call = Recorder(read_out(SPREAD))
    spec = JudgeSpec("local/smollm2", RUBRIC)
    score = run_with_client(pointwise_score(call, spec, Graded(QUESTION), "Yes.", local=True))
    assert (score.scorer, score.value, score.judge_model) == ("judge", 3.5, "local/smollm2")
    assert score.reason.startswith("expected score 3.50 from the score token's probabilities")
    assert score.raw == read_out(SPREAD)  # the read-out, verbatim: the score can be recomputed
    assert (score.latency_ms, score.cost_usd, score.cached) == (1000.0, 0.0, False)
    sent = json.loads(score.prompt_json or "")
    assert sent["params"] == expected_params((1, 5))
    assert sent["messages"][1]["content"].endswith('{"score": <1-5>}.')
    assert len(call.calls) == 1


@pytest.mark.parametrize(
    ("spec", "local", "why"),
    [
        (JudgeSpec("openai/gpt-4o-mini", RUBRIC, method=EXPECTED), False,
         "unscored: the expected-score method reads log-probs from a llama.cpp judge (a `kind: "
         "local` provider); openai/gpt-4o-mini is not one: use method: verdict"),
        (JudgeSpec("local/smollm2", RUBRIC, (1, 10), method=EXPECTED), True,
         "unscored: the expected-score method needs one-digit scores; the scale is 1-10"),
        (JudgeSpec("local/smollm2", RUBRIC, method="mean"), True,
         "unscored: unknown judge method 'mean': use expected or verdict"),
    ],
    ids=["http-judge", "two-digit-scale", "unknown"],
)  # fmt: skip
def test_a_method_that_cannot_judge_is_unscored_without_a_call(
    spec: JudgeSpec, local: bool, why: str
) -> None:
    call = Recorder(read_out(SPREAD))
    score = run_with_client(pointwise_score(call, spec, Graded(QUESTION), "Yes.", local=local))
    assert (score.value, score.reason, score.raw) == (None, why, None)
    assert call.calls == [] and json.loads(score.prompt_json or "")["messages"]


def test_the_verdict_method_on_a_local_judge_is_the_old_one() -> None:
    call = Recorder('{"reasoning": "Correct.", "score": 4}')
    spec = JudgeSpec("local/smollm2", RUBRIC, method=VERDICT)
    score = run_with_client(pointwise_score(call, spec, Graded(QUESTION), "Yes.", local=True))
    assert (score.value, score.reason) == (4, "Correct.")
    schema = call.calls[0][2]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["reasoning"]["maxLength"] == 300  # capped, as before
    assert SCORE_PROBE not in call.calls[0][2]


# --- the embedded model, for real ----------------------------------------------------------


GOOD = (
    "Yes: returns are accepted within 30 days of delivery, so you are still in time. Reply "
    "with your order number and I will start the return."
)
BAD = "No. Go away."


def test_the_embedded_judge_gives_an_expected_score(tmp_path: Path) -> None:
    """Real llama.cpp judging with SmolLM2-135M through the call policy, as a demo run judges.

    Reliable, and asserted: each verdict is scored, in range, continuous (not an integer),
    recomputable from its stored read-out, and the same when asked again (temperature 0).
    Not reliable, and not asserted: that the good answer scores higher. Measured on this
    machine it did not (GOOD 2.31, BAD 2.72), and bench/demo_signal.py finds this model
    scoring hand-written good replies above the demo's answers about as often as chance.
    """
    policy = CallPolicy(open_registry(tmp_path / "providers.yaml", Secrets()), max_retries=0)
    spec = JudgeSpec("local/smollm2", RUBRIC)
    graded = Graded(QUESTION, reference="Says yes: within the 30-day window.")
    local_judge = policy.is_local(spec.model)

    def judge(answer: str) -> tuple[float, str]:
        scoring = pointwise_score(policy.call, spec, graded, answer, local=local_judge)
        score = run_with_client(scoring)
        assert score.value is not None, score.reason
        assert 1 <= score.value <= 5 and score.value != round(score.value)
        assert score.reason.startswith(f"expected score {score.value:.2f} from the score token's")
        read = json.loads(score.raw or "")
        assert json.loads(read["output"])["score"] in range(1, 6)  # grammar-constrained
        assert set(read["score_logprobs"]) == {"1", "2", "3", "4", "5"}
        again = expected_score(read["score_logprobs"])
        assert isinstance(again, Expected) and again.score == score.value
        assert score.cost_usd == 0
        return score.value, score.reason

    good, bad = judge(GOOD), judge(BAD)
    print(f"\nSmolLM2 expected scores: good answer {good[0]}, bad answer {bad[0]}")
    assert judge(GOOD) == good  # deterministic at temperature 0
