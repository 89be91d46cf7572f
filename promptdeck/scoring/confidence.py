"""How sure is an answer? Two honest sources, each named where it is shown.

- "token logprobs": the geometric-mean probability of the answer's tokens, from providers
  that return log-probabilities (a variant asks with `params: {logprobs: true}`).
- "agreement of k samples": with k ≥ 2 repeats of a cell, the share of answers that agree
  with the most common one: on the judge's score when there is one, else on the text
  (mean pairwise similarity).
"""

from __future__ import annotations

import difflib
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

LOGPROBS = "token logprobs"


@dataclass(frozen=True)
class Confidence:
    value: float  # 0..1
    method: str

    @property
    def badge(self) -> str:
        return f"confidence {self.value:.2f} · {self.method}"


def from_logprobs(value: float | None) -> Confidence | None:
    return None if value is None else Confidence(value, LOGPROBS)


def sample_agreement(outputs: Sequence[str], scores: Sequence[float | None]) -> Confidence | None:
    """Agreement among k ≥ 2 answers to the same case (None for fewer)."""
    k = len(outputs)
    if k < 2:
        return None
    judged = [s for s in scores if s is not None]
    if len(judged) >= 2:
        modal = Counter(judged).most_common(1)[0][1]
        return Confidence(modal / len(judged), f"agreement of {len(judged)} samples (judge)")
    pairs = list(itertools.combinations(outputs, 2))
    mean = sum(difflib.SequenceMatcher(None, a, b).ratio() for a, b in pairs) / len(pairs)
    return Confidence(mean, f"agreement of {k} samples (text)")
