"""The one type-checker of programs against function signatures.

:meth:`reasoning.dsl.Catalogue.check` (the catalogue's view: templates with
``<C>`` parameters, composites allowed or not) and
:func:`reasoning.executor.check.check_call` (an executor's operation table,
which also reads trailing composite slots left out as "no constraint") both call
:func:`check_nodes`, so a malformed program gets the same message from every
part of the project: the node (post-order index and function), what it got and
what is allowed, e.g. ``"node 1 (filter_color): side input 0 'pink' is not a
Color; allowed: ['gray', 'red', ...]"``.

A signature is anything with the fields of
:class:`~reasoning.dsl.catalogue.FunctionSpec` used here (``inputs``,
``side_inputs``, ``output``, ``template_only``): catalogue entries and executor
operations alike.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from reasoning.dsl.program import Call
from reasoning.errors import ProgramError

__all__ = [
    "Signature",
    "check_nodes",
    "post_order",
    "is_placeholder",
    "unknown_function",
    "NEVER_EMPTY",
    "alternatives",
    "compatible",
]

# Template parameters are written <C>, <R2>, <Z3> in the CLEVR templates.
_PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9_]*>")

# A composite template node may leave an attribute slot empty (""): the question
# does not mention that attribute, and the CLEVR generator drops the filter when it
# expands ``filter_unique`` and friends. A relation is always named, never empty.
NEVER_EMPTY = frozenset({"Relation"})


class Signature(Protocol):
    """What the checker reads of a function: a catalogue entry or an executor operation."""

    @property
    def inputs(self) -> tuple[str, ...]: ...

    @property
    def side_inputs(self) -> tuple[str, ...]: ...

    @property
    def output(self) -> str: ...

    @property
    def template_only(self) -> bool: ...


def alternatives(type_name: str) -> tuple[str, ...]:
    """The types a union type such as ``"ObjectSet|EventSet"`` stands for (one for a plain type).

    CLEVRER's executor is dynamically typed: ``count`` counts objects or events,
    ``unique`` returns an object or an event. Its catalogue writes such inputs and
    outputs as unions; CLEVR's catalogue has none.
    """
    return tuple(type_name.split("|"))


def compatible(got: str, want: str) -> bool:
    """Whether a child returning ``got`` may feed an input of type ``want``.

    Plain types must be equal; with unions, one alternative in common suffices
    (the operation checks the actual value when the program runs).
    """
    return got == want or bool(set(alternatives(got)) & set(alternatives(want)))


def is_placeholder(value: str) -> bool:
    """Whether a side input is a template parameter such as ``<C>`` or ``<R2>``."""
    return _PLACEHOLDER.fullmatch(value) is not None


def post_order(root: Call) -> list[Call]:
    """The nodes of ``root`` in post-order (CLEVR node-list order), without recursion."""
    out: list[Call] = []
    stack = [root]
    while stack:
        call = stack.pop()
        out.append(call)
        stack.extend(call.args)
    out.reverse()  # reversed right-to-left pre-order is left-to-right post-order
    return out


def unknown_function(name: str, known: Sequence[str], *, at: str = "") -> str:
    """``"unknown function 'x'; did you mean ...?"`` (or the list of known functions).

    ``at`` (e.g. ``"token 3"``) says where the name was met: ``"unknown function 'x' at token 3; ..."``.
    """
    head = f"unknown function {name!r}" + (f" at {at}" if at else "")
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    if close:
        return f"{head}; did you mean {', '.join(map(repr, close))}?"
    return f"{head}; known functions are {', '.join(known)}"


def check_nodes(
    nodes: Sequence[Call],
    signatures: Mapping[str, Signature],
    vocabulary: Callable[[str], tuple[str, ...] | None],
    *,
    allow_placeholders: bool | None = None,
    allow_composites: bool = True,
    missing_slots: bool = False,
) -> str:
    """Check every node (in post-order, children first) and return the last node's output type.

    Every node must name a known function, have as many children as it has
    inputs, children whose output types equal the input types, and one side
    input per side-input type, each a word of that type's vocabulary. A
    template-only composite may leave attribute slots empty (``""``); its
    relation slot must be filled.

    Args:
        nodes: The program's nodes in post-order (see :func:`post_order`).
        signatures: Function name -> signature.
        vocabulary: Side-input type -> its words, or ``None`` for a type without a
            vocabulary (any non-empty word passes and the implementation decides).
        allow_placeholders: ``True``/``False``: template parameters (``<C>``) are
            accepted / refused with a message saying so; ``None``: they are
            ordinary words (an executor knows nothing of templates).
        allow_composites: Accept template-only composite nodes.
        missing_slots: A composite may also leave trailing slots out altogether
            (the executors read a missing slot as "no constraint").

    Raises:
        ProgramError: naming the node (post-order index and function) and what is allowed.
    """
    out: dict[int, str] = {}  # id(call) -> output type
    for index, call in enumerate(nodes):
        at = f"node {index} ({call.function})"
        if not isinstance(call.function, str):
            raise ProgramError(f"{at}: function name must be a string, got {call.function!r}")
        spec = signatures.get(call.function)
        if spec is None:
            raise ProgramError(f"{at}: {unknown_function(call.function, tuple(signatures))}")
        if spec.template_only and not allow_composites:
            raise ProgramError(
                f"{at}: {call.function} is a template-only composite; instantiated programs "
                "spell it out with relate / filter_<attribute> and unique / count / exist "
                "(pass allow_composites=True to accept it)"
            )
        if len(call.args) != len(spec.inputs):
            raise ProgramError(
                f"{at}: takes {len(spec.inputs)} input(s) {list(spec.inputs)}, got {len(call.args)}"
            )
        for k, (child, want) in enumerate(zip(call.args, spec.inputs, strict=True)):
            got = out[id(child)]
            if not compatible(got, want):
                raise ProgramError(
                    f"{at}: input {k} must be {want}, but {child.function} returns {got}"
                )
        _check_side_inputs(at, call, spec, vocabulary, allow_placeholders, missing_slots)
        out[id(call)] = spec.output
    return out[id(nodes[-1])]


def _check_side_inputs(
    at: str,
    call: Call,
    spec: Signature,
    vocabulary: Callable[[str], tuple[str, ...] | None],
    allow_placeholders: bool | None,
    missing_slots: bool,
) -> None:
    side, values = spec.side_inputs, call.values
    optional = spec.template_only
    fewer_ok = optional and missing_slots
    if len(values) > len(side) or (not fewer_ok and len(values) != len(side)):
        expected = ", ".join(side) or "none"
        fewer = " (or fewer: missing ones mean no constraint)" if fewer_ok else ""
        raise ProgramError(
            f"{at}: takes {len(side)} side input(s) ({expected}){fewer}, "
            f"got {len(values)} {list(values)}"
        )
    for k, (value, vtype) in enumerate(zip(values, side, strict=False)):
        if not isinstance(value, str):
            raise ProgramError(f"{at}: side input {k} must be a string, got {value!r}")
        vocab = vocabulary(vtype)
        if vocab is None:
            if value:
                continue
            vocab = ()
        if value in vocab:
            continue
        may_be_empty = optional and vtype not in NEVER_EMPTY
        if allow_placeholders is not None and is_placeholder(value):
            if allow_placeholders:
                continue
            raise ProgramError(
                f"{at}: side input {k} is the template parameter {value!r}; "
                f"an instantiated program needs a {vtype} from {list(vocab)} "
                f"(pass allow_placeholders=True to check templates)"
            )
        if value == "" and may_be_empty:
            continue
        note = " or empty ('_')" if may_be_empty else ""
        raise ProgramError(
            f"{at}: side input {k} {value!r} is not a {vtype}; allowed: {list(vocab)}{note}"
        )
    if fewer_ok:
        required = [k for k, t in enumerate(side) if t in NEVER_EMPTY]
        if required and len(values) <= required[-1]:
            k = next(r for r in required if r >= len(values))
            vocab = vocabulary(side[k]) or ()
            raise ProgramError(
                f"{at}: side input {k} ({side[k]}) is required; allowed: {list(vocab)}"
            )
