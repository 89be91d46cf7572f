"""What an eval will do before it does it: the sampled cases, the cells, and an estimate.

Everything that can be wrong with a suite (unknown variant, a template variable that no
dataset column provides, a bad sample) is found here, before any model call is made.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from promptdeck.errors import ConfigError
from promptdeck.evals.suite import Suite
from promptdeck.model.pricing import PriceTable
from promptdeck.model.types import DEFAULT_MAX_TOKENS, Message, estimate_tokens
from promptdeck.scoring.scorers import Graded, question_of
from promptdeck.workspace.dataset_sample import load_sample
from promptdeck.workspace.datasets import (
    Case,
    Dataset,
    DatasetSample,
    check_variables,
    load_dataset,
)
from promptdeck.workspace.fileio import MISSING, fingerprint_file
from promptdeck.workspace.prompts import (
    PromptLibrary,
    PromptVariant,
    render_messages,
    template_variables,
)
from promptdeck.workspace.sampling import sample_cases


@dataclass(frozen=True)
class Cell:
    case: Case
    variant: PromptVariant
    repeat: int = 0

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.case.id, self.variant.name, self.repeat)


@dataclass(frozen=True)
class EvalPlan:
    suite: Suite
    # every row loaded, or (a sample asked for) only the sampled rows: `every_case` reads all
    dataset: Dataset | DatasetSample
    cases: tuple[Case, ...]
    variants: tuple[PromptVariant, ...]

    @property
    def repeats(self) -> int:
        return self.suite.repeats

    @property
    def folder(self) -> Path:
        """Where the dataset is: its image columns are paths relative to it."""
        return self.dataset.path.parent

    def cells(self) -> list[Cell]:
        """Case by case, so the results grid fills row by row."""
        return [
            Cell(c, v, r) for c in self.cases for v in self.variants for r in range(self.repeats)
        ]

    def category_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(c.category or "(none)" for c in self.cases).items()))

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to read the run later, even after prompts or data change."""
        data = {
            "suite": self.suite.to_dict(),
            "dataset": {"path": str(self.dataset.path), "columns": list(self.dataset.columns)},
            "cases": [{"id": c.id, **c.values} for c in self.cases],
            "variants": {v.name: variant_snapshot(v) for v in self.variants},
        }
        data["fingerprint"] = hashlib.sha256(
            json.dumps(data, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        # Which version of each variant file ran (the file history's fingerprint), kept out
        # of the plan's fingerprint: a comment edit does not make a different plan.
        data["files"] = {
            v.name: found
            for v in self.variants
            if (found := fingerprint_file(Path(v.path))) != MISSING
        }
        return data


def every_case(plan: EvalPlan) -> tuple[Case, ...]:
    """Every row of the plan's dataset (for runs that grow past the sample): a plan built
    for a sample read only its sample, so the file is read whole now (`whole` keeps it)."""
    dataset = plan.dataset
    return dataset.cases if isinstance(dataset, Dataset) else load_dataset(dataset.path).cases


def whole(plan: EvalPlan) -> EvalPlan:
    """The plan with every row of its dataset loaded (its cases unchanged)."""
    if isinstance(plan.dataset, Dataset):
        return plan
    return replace(plan, dataset=load_dataset(plan.dataset.path))


def graded(case: Case, messages: Sequence[Message]) -> Graded:
    """What the judge sees of `case`: the question as rendered, its reference and rubric."""
    return Graded(
        question_of(messages),
        reference=case.values.get("expected") or None,
        rubric=case.values.get("rubric") or None,
    )


def variant_snapshot(v: PromptVariant) -> dict[str, Any]:
    """The variant as the run used it. Tools (mocks included) and the output schema are in
    it only when the variant has them, so a plan without them keeps its old fingerprint, and
    a changed mock is a new plan, never the resumption of an old one."""
    snapshot: dict[str, Any] = {
        "model": v.model,
        "params": dict(v.params),
        "system": v.system,
        "user": v.user,
        "messages": [{"role": m.role, "content": m.content} for m in v.messages],
        "checks": [c.label for c in v.checks],
        "fallback": v.fallback,
        "path": v.path,
    }
    if v.tools:
        snapshot["tools"] = [
            {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
            | {"mock": t.mock}
            for t in v.tools
        ]
        snapshot["max_tool_rounds"] = v.max_tool_rounds
    if v.output_schema is not None:
        snapshot["output_schema"] = dict(v.output_schema)
    return snapshot


def build_plan(
    suite: Suite,
    prompts: PromptLibrary,
    *,
    n: int | None = None,
    seed: int | None = None,
    repeats: int | None = None,
) -> EvalPlan:
    """Resolve variants, load and sample the dataset; overrides win over the suite. With a
    sample, only the sampled rows are read (`load_sample`: the rows `sample_cases` picks
    from the whole dataset, in two streaming passes), so a million-row file costs seconds
    and megabytes; without one, every row is loaded."""
    missing = [name for name in suite.variants if name not in prompts.variants]
    if missing:
        raise ConfigError(_missing_variants(suite, prompts, missing))
    variants = tuple(prompts.variants[name] for name in suite.variants)
    sample = suite.sample
    if n is not None:
        sample = replace(sample, n=n, fraction=None)
    if seed is not None:
        sample = replace(sample, seed=seed)
    suite = replace(suite, sample=sample, repeats=repeats or suite.repeats)
    dataset: Dataset | DatasetSample
    if sample.n is None and sample.fraction is None:
        dataset = load_dataset(suite.dataset)
        cases = dataset.cases
    else:
        dataset = load_sample(
            suite.dataset,
            n=sample.n,
            fraction=sample.fraction,
            seed=sample.seed,
            stratify=sample.stratify,
            floor=sample.floor,
        )
        cases = dataset.sample
    problems = check_variables(dataset, {v.name: template_variables(v) for v in variants})
    if problems:
        raise ConfigError("; ".join(problems))
    if isinstance(dataset, Dataset):  # every row: checks the stratify column, keeps them all
        cases = tuple(sample_cases(cases, stratify=sample.stratify))
    return EvalPlan(suite, dataset, cases, variants)


@dataclass(frozen=True)
class Estimate:
    """`calls`: the answers' model calls, at most: a variant with tools makes up to
    max_tool_rounds + 1 calls per answer. `cost_usd`: their upper bound, every call using
    its max_tokens and reading everything the earlier rounds wrote; what the tools' mocks
    return is not in it (`tool_results_uncounted`): it is known only once they run."""

    calls: int
    judge_calls: int
    cost_usd: float | None  # None: a model has no price
    unpriced_models: tuple[str, ...]
    answers: int = 0  # cells: one answer each
    tool_results_uncounted: bool = False


def judge_calls(plan: EvalPlan) -> int:
    """Pointwise: one verdict per answer. Pairwise: two per non-baseline answer (order swapped)."""
    judge = plan.suite.judge
    if judge is None:
        return 0
    if judge.mode == "pointwise":
        return len(plan.cells())
    others = sum(v.name != plan.suite.baseline for v in plan.variants)
    return 2 * others * len(plan.cases) * plan.repeats


def estimate(plan: EvalPlan, prices: PriceTable) -> Estimate:
    """Calls and the most they can cost (the time is evals.timing's)."""
    cost = 0.0
    unpriced: set[str] = set()
    judge = plan.suite.judge
    n_judge = judge_calls(plan)
    cells = plan.cells()  # built once: the loop below runs over every cell
    calls = 0
    for cell in cells:
        v = cell.variant
        prompt_tokens = estimate_tokens(
            "".join(m.content for m in render_messages(v, cell.case.values))
        )
        max_out = int(v.params.get("max_tokens", DEFAULT_MAX_TOKENS))
        rounds = v.max_tool_rounds + 1 if v.tools else 1
        calls += rounds
        price = prices.price(v.model)
        if price is None:
            unpriced.add(v.model)
        else:
            for done in range(rounds):  # round `done` reads what the earlier ones wrote
                read = prompt_tokens + done * max_out
                cost += (read * price.input_per_mtok + max_out * price.output_per_mtok) / 1e6
        if judge is not None and n_judge:
            # A verdict reads the question, the answer and the rubric (~prompt + answer).
            share = n_judge / len(cells)
            judge_price = prices.price(judge.model)
            if judge_price is None:
                unpriced.add(judge.model)
            else:
                judge_in = prompt_tokens + max_out + estimate_tokens(judge.rubric) + 150
                cost += (
                    share
                    * (judge_in * judge_price.input_per_mtok + 300 * judge_price.output_per_mtok)
                    / 1e6
                )
    return Estimate(
        calls=calls,
        judge_calls=n_judge,
        cost_usd=None if unpriced else cost,
        unpriced_models=tuple(sorted(unpriced)),
        answers=len(cells),
        tool_results_uncounted=any(v.tools for v in plan.variants),
    )


def _missing_variants(suite: Suite, prompts: PromptLibrary, missing: list[str]) -> str:
    """Why each missing variant is missing: its file did not load (and where), or no file."""
    where = f"{suite.path}: 'variants': " if suite.path else ""
    broken = {Path(e.path).with_suffix("").as_posix(): e for e in prompts.errors}
    reasons = []
    for name in missing:
        error = next((e for path, e in broken.items() if path.endswith(f"/{name}")), None)
        reasons.append(
            f"{name}: its file could not be loaded: {error}"
            if error
            else f"{name}: no prompts/{name}.yaml"
        )
    known = ", ".join(sorted(prompts.variants)) or "none"
    return f"{where}unknown variant(s): {'; '.join(reasons)} (known: {known})"
