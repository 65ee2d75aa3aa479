"""Question families and question types, for tables that break accuracy down.

Two groupings are in use:

- the nine template *families* (one per template file): :data:`FAMILIES`;
- the five question *types* of the NS-VQA / CLEVR result tables, decided by
  the program's last function: :data:`QUESTION_TYPES`, via :func:`question_type`;
  which type a function answers is read from its catalogue signature (output
  and inputs), so a function added to the catalogue is typed without a list here.

Reference: Yi et al., "Neural-Symbolic VQA", NeurIPS 2018, Table 1 (Count,
Exist, Compare Number, Compare Attribute, Query Attribute).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from reasoning.dsl.catalogue import Catalogue, FunctionSpec
from reasoning.errors import ProgramError

__all__ = ["FAMILIES", "QUESTION_TYPES", "QUESTION_TYPE_LABELS", "question_type"]

FAMILIES: tuple[str, ...] = (
    "zero_hop",
    "one_hop",
    "two_hop",
    "three_hop",
    "single_and",
    "single_or",
    "compare_integer",
    "same_relate",
    "comparison",
)

QUESTION_TYPES: tuple[str, ...] = (
    "count",
    "exist",
    "compare_number",
    "compare_attribute",
    "query_attribute",
)

QUESTION_TYPE_LABELS = MappingProxyType(
    {
        "count": "Count",
        "exist": "Exist",
        "compare_number": "Compare Number",
        "compare_attribute": "Compare Attribute",
        "query_attribute": "Query Attribute",
    }
)


def _type_of(spec: FunctionSpec) -> str | None:
    """The question type a root function answers, from its catalogue signature.

    ``Integer`` -> count; ``Bool`` of one set or object -> exist; ``Bool`` of two
    integers -> compare number; ``Bool`` of two values or objects -> compare
    attribute; an attribute word -> query attribute; anything else answers nothing.
    """
    if not spec.terminal:
        return None
    if spec.output == "Integer":
        return "count"
    if spec.output == "Bool":
        if len(spec.inputs) == 1:
            return "exist"
        return "compare_number" if set(spec.inputs) == {"Integer"} else "compare_attribute"
    return "query_attribute"


# root function -> question type, for every terminal function of the catalogue
_BY_FUNCTION = MappingProxyType(
    {
        name: kind
        for name in Catalogue.default().names
        if (kind := _type_of(Catalogue.default().signature(name))) is not None
    }
)


def question_type(program: Any) -> str:
    """The question type of a program, from its last (root) function.

    Args:
        program: A :class:`~reasoning.dsl.program.Program`, a CLEVR node list
            (dicts with ``function`` or ``type``), or the root function name.

    Returns:
        One of :data:`QUESTION_TYPES`.

    Raises:
        ProgramError: an empty program or a root function that answers no question.

    >>> question_type([{"function": "scene", "inputs": []},
    ...                {"function": "count", "inputs": [0]}])
    'count'
    """
    if isinstance(program, str):
        name = program
    elif hasattr(program, "root"):
        name = program.root.function
    elif isinstance(program, Sequence) and program:
        last = program[-1]
        name = last.get("function", last.get("type")) if isinstance(last, Mapping) else None
    else:
        raise ProgramError(
            "question_type: expected a Program, a non-empty CLEVR node list or a function name"
        )
    try:
        return _BY_FUNCTION[name]
    except KeyError:
        raise ProgramError(
            f"question_type: root function {name!r} does not answer a question; "
            f"allowed roots: {', '.join(_BY_FUNCTION)}"
        ) from None
