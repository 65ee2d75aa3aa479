"""Static checking of a program against an executor's operation table.

The executors run an unchecked fast path and call :func:`check_call` only when
something went wrong, so that a malformed program always fails with one precise
:class:`~reasoning.errors.ProgramError` naming the node (post-order index and
function), what it got and what is allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS
from reasoning.dsl.program import Call
from reasoning.errors import ProgramError
from reasoning.executor.ops import VALUE_TYPES, OpSpec

__all__ = ["check_call", "side_vocabulary", "post_order"]


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


def side_vocabulary(type_name: str) -> tuple[str, ...] | None:
    """The words a side input of ``type_name`` may take (CLEVR's vocabulary).

    ``None`` for a type outside CLEVR's (an operation registered with its own
    side-input type): any non-empty word is accepted and the operation decides.
    """
    if type_name == "Relation":
        return RELATIONS
    attr = VALUE_TYPES.get(type_name)
    return ATTRIBUTES[attr] if attr is not None else None


def _unknown(name: str, ops: Mapping[str, OpSpec]) -> str:
    close = difflib.get_close_matches(name, list(ops), n=3, cutoff=0.6)
    if close:
        return f"unknown function {name!r}; did you mean {', '.join(map(repr, close))}?"
    return f"unknown function {name!r}; known functions are {', '.join(sorted(ops))}"


def check_call(root: Call, ops: Mapping[str, OpSpec]) -> str:
    """Check every node of ``root`` and return the root's output type.

    Raises:
        ProgramError: ``"node 3 (filter_color): side input 0 'pink' is not a Color;
            allowed: [...]"`` and the like (unknown function, wrong number of
            inputs or side inputs, input of the wrong type, word not in the
            vocabulary, empty side input where a word is required).
    """
    out: dict[int, str] = {}
    for index, call in enumerate(post_order(root)):
        at = f"node {index} ({call.function})"
        spec = ops.get(call.function)
        if spec is None:
            raise ProgramError(f"{at}: {_unknown(call.function, ops)}")
        if len(call.args) != len(spec.inputs):
            raise ProgramError(
                f"{at}: takes {len(spec.inputs)} input(s) {list(spec.inputs)}, got {len(call.args)}"
            )
        for k, (child, want) in enumerate(zip(call.args, spec.inputs, strict=False)):
            got = out[id(child)]
            if got != want:
                raise ProgramError(
                    f"{at}: input {k} must be {want}, but {child.function} returns {got}"
                )
        n_side = len(spec.side_inputs)
        if len(call.values) > n_side or (not spec.optional_side and len(call.values) != n_side):
            expected = ", ".join(spec.side_inputs) or "none"
            fewer = " (or fewer: missing ones mean no constraint)" if spec.optional_side else ""
            raise ProgramError(
                f"{at}: takes {n_side} side input(s) ({expected}){fewer}, got {len(call.values)} {list(call.values)}"
            )
        for k, (value, vtype) in enumerate(zip(call.values, spec.side_inputs, strict=False)):
            vocab = side_vocabulary(vtype)
            if vocab is None and value:
                continue
            vocab = vocab or ()
            if value in vocab:
                continue
            may_be_empty = spec.optional_side and vtype != "Relation"
            if value == "" and may_be_empty:
                continue
            note = " or empty (no constraint)" if may_be_empty else ""
            raise ProgramError(
                f"{at}: side input {k} {value!r} is not a {vtype}; allowed: {list(vocab)}{note}"
            )
        if spec.optional_side and "Relation" in spec.side_inputs and not call.values:
            raise ProgramError(
                f"{at}: side input 0 (Relation) is required; allowed: {list(RELATIONS)}"
            )
        out[id(call)] = spec.output
    return out[id(root)]
