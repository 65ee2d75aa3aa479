"""Random well-typed programs drawn from a catalogue.

Used to fuzz the text and token formats and the parser, and to make training
sequences for program parsers. Sampling is type-directed: to build a value of
type ``T`` pick a catalogue function whose output is ``T`` and that can still be
completed within the remaining depth, then build its inputs the same way. Every
program returned passes :meth:`Catalogue.check`.

Why there are two samplers: this one needs nothing but a catalogue (any
``metadata.json``, before any executor implements it), draws template
composites with their full slot lists as the templates write them, and uses
the standard library's ``random``. :class:`reasoning.executor.ProgramSampler`
draws from the executor's live operation table and *runs* every subtree on a
bound scene while drawing, so its programs are valid questions about that scene;
the executor speed benchmark's figures are measured on its draws. Both share
:func:`min_depths`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from reasoning.dsl.catalogue import Catalogue, FunctionSpec
from reasoning.dsl.program import Call, Program
from reasoning.dsl.typecheck import Signature
from reasoning.errors import ProgramError

__all__ = ["sample_program", "min_depths"]

_UNREACHABLE = 10**9


def min_depths(catalogue: Catalogue | Mapping[str, Signature]) -> dict[str, int]:
    """The depth of the shallowest program producing each type (unreachable types omitted).

    ``scene()`` has depth 1, so with the CLEVR catalogue ``ObjectSet`` is 1,
    ``Object`` is 2 (``unique(scene())``) and ``Color`` is 3.

    Args:
        catalogue: A catalogue, or any function name -> signature table (an
            executor's operation table).
    """
    if isinstance(catalogue, Catalogue):
        specs: list[Signature] = [catalogue.signature(n) for n in catalogue.names]
    else:
        specs = list(catalogue.values())
    best: dict[str, int] = {}
    changed = True
    while changed:  # Bellman-Ford style fixed point over the function signatures
        changed = False
        for spec in specs:
            need = 1 + max((best.get(t, _UNREACHABLE) for t in spec.inputs), default=0)
            if need < best.get(spec.output, _UNREACHABLE):
                best[spec.output] = need
                changed = True
    return best


def sample_program(
    catalogue: Catalogue,
    rng: random.Random,
    *,
    output: str | None = None,
    max_depth: int = 6,
    template_only: bool = False,
    empty_rate: float = 0.3,
) -> Program:
    """Draw one random program that type-checks against ``catalogue``.

    Args:
        catalogue: The functions to draw from.
        rng: The random source (seed it for reproducible programs).
        output: Type of the root; default: any type of a terminal function.
        max_depth: Deepest nesting allowed (``scene()`` alone has depth 1).
        template_only: Also draw composite template nodes (``filter_count`` ...).
        empty_rate: Probability that an attribute slot of a composite node is left empty.

    Returns:
        A program whose root outputs ``output``.

    Raises:
        ProgramError: No program of type ``output`` fits in ``max_depth``.
    """
    depths = min_depths(catalogue)
    specs = [
        catalogue.signature(n)
        for n in catalogue.names
        if template_only or not catalogue.signature(n).template_only
    ]
    if output is None:
        roots = sorted(
            {
                s.output
                for s in specs
                if s.terminal and depths.get(s.output, _UNREACHABLE) <= max_depth
            }
        )
        if not roots:
            raise ProgramError(f"no terminal type can be produced within depth {max_depth}")
        output = rng.choice(roots)
    if depths.get(output, _UNREACHABLE) > max_depth:
        raise ProgramError(
            f"no program of type {output!r} fits in depth {max_depth}; "
            f"reachable types and their minimum depths: {depths}"
        )

    def fits(spec: FunctionSpec, budget: int) -> bool:
        return 1 + max((depths.get(t, _UNREACHABLE) for t in spec.inputs), default=0) <= budget

    def build(want: str, budget: int) -> Call:
        choices = [s for s in specs if s.output == want and fits(s, budget)]
        if not choices:  # only template-only functions reach this type: use them
            choices = [
                catalogue.signature(n)
                for n in catalogue.names
                if catalogue.signature(n).output == want and fits(catalogue.signature(n), budget)
            ]
        spec = rng.choice(choices)
        args = tuple(build(t, budget - 1) for t in spec.inputs)
        values = []
        for k, t in enumerate(spec.side_inputs):
            if spec.may_be_empty(k) and rng.random() < empty_rate:
                values.append("")
            else:
                values.append(rng.choice(catalogue.values(t)))
        return Call(spec.name, args, tuple(values))

    return Program(build(output, max_depth))
