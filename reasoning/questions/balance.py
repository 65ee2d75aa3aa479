"""Answer balancing within a question family (template), as CLEVR does it.

A generator that keeps every valid question is heavily skewed: "no" dominates
``exist`` questions, 0 and 1 dominate counts.  CLEVR keeps, per template, how
many accepted questions gave each answer, and rejects a new question when its
answer is over-represented.  The rule (``generate_questions.py``):

- reject when ``count[a] > ratio * runner_up`` where ``runner_up`` is the
  second-largest count over the answer domain (ratio 1.1): the leading answer
  may lead the next one by at most 10 %;
- reject when ``count[a] > median_factor * max(median, median_floor)``
  (5 x max(median, 5)): no answer runs far ahead of the typical one.

The search then tries other parameter values, so a rejected answer usually
turns into a question with a rarer answer rather than into no question.

>>> b = AnswerBalancer((True, False))
>>> b.accepts(True); b.add(True); b.accepts(True), b.accepts(False)
True
(False, True)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from reasoning.dsl import Catalogue

__all__ = ["AnswerBalancer", "answer_domain", "MAX_COUNT_ANSWER"]

# The count answers CLEVR balances integer questions over (0..10).
MAX_COUNT_ANSWER = 10


def answer_domain(catalogue: Catalogue, function: str) -> tuple[Any, ...]:
    """Every answer a program ending in ``function`` can give, for answer balancing.

    ``Bool`` -> ``(True, False)``; ``Integer`` -> ``0..10`` (as CLEVR balances
    counts); a vocabulary type -> its words; any other type -> ``()``.

    >>> answer_domain(Catalogue.default(), "query_size")
    ('small', 'large')

    Raises:
        ProgramError: ``function`` is not in the catalogue.
    """
    out = catalogue.signature(function).output
    if out == "Bool":
        return (True, False)
    if out == "Integer":
        return tuple(range(MAX_COUNT_ANSWER + 1))
    if out in catalogue.vocabulary_types():
        return catalogue.values(out)
    return ()


class AnswerBalancer:
    """Answer counts of one template and the CLEVR rejection rule.

    Args:
        domain: Every answer the template can give (counts start at 0).
        ratio: Leader-over-runner-up bound.
        median_factor: Bound relative to the median count.
        median_floor: Smallest median the median rule uses.
    """

    def __init__(
        self,
        domain: Iterable[Hashable],
        ratio: float = 1.1,
        median_factor: float = 5.0,
        median_floor: int = 5,
    ) -> None:
        self.counts: dict[Hashable, int] = {a: 0 for a in domain}
        self.ratio = ratio
        self.median_factor = median_factor
        self.median_floor = median_floor

    def accepts(self, answer: Hashable) -> bool:
        """Whether a question with ``answer`` may be kept now."""
        c = self.counts.get(answer, 0)
        vals = sorted(self.counts.values()) or [0]
        runner_up = vals[-2] if len(vals) >= 2 else vals[-1]
        median = max(vals[len(vals) // 2], self.median_floor)
        return not (c > self.ratio * runner_up or c > self.median_factor * median)

    def add(self, answer: Hashable) -> None:
        """Count one accepted question with ``answer``."""
        self.counts[answer] = self.counts.get(answer, 0) + 1
