"""The fast evaluator of the single-question executor (``trace=False``).

One specialised closure per operation evaluates a node: it unpacks the node's
children and side inputs by shape (a wrong count raises ``ValueError``) and finds
each child's evaluator in a dict holding only the operations that return the
input type it needs, so one lookup both type-checks and dispatches the child.
The hottest CLEVR operations are *fused*: their semantics are inlined so that a
node costs one Python call instead of two (evaluator + operation function).
Anything unusual raises; :class:`~reasoning.executor.symbolic.SymbolicExecutor`
then runs the checked, traced path, which calls the functions of
:mod:`reasoning.executor.ops`.  The tests compare both paths on thousands of
random programs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reasoning.dsl.program import Call
from reasoning.executor.bound_scene import BoundScene
from reasoning.executor.ops import BUILTIN_FNS, VALUE_TYPES, InvalidExecution, OpSpec

__all__ = ["make_fast_eval", "Malformed", "Evaluator"]

Evaluator = Callable[[Call, BoundScene], object]


class Malformed(Exception):
    """A node does not fit its signature (the checked path names the fault)."""


def make_fast_eval(ops: Mapping[str, OpSpec]) -> Evaluator:
    """The fast recursive evaluator: one specialised closure per operation.

    Each node evaluator unpacks its children and side inputs by shape (a wrong
    count raises ``ValueError``) and finds each child's evaluator in a dict that
    holds only the operations returning the input type it needs, so one lookup
    both type-checks and dispatches the child.  Anything unusual raises; the
    caller then runs the checked, traced path.
    """
    evals: dict[str, Evaluator] = {}
    # input type -> {function name: evaluator} of the operations returning that type
    by_output: dict[str, dict[str, Evaluator]] = {}
    for spec in ops.values():
        by_output.setdefault(spec.output, {})
        for t in spec.inputs:
            by_output.setdefault(t, {})
    for name, spec in ops.items():
        kids = [by_output[t] for t in spec.inputs]
        fused = _FUSED.get(name)
        # a fused evaluator inlines the built-in semantics; a replaced op keeps its own function
        if fused is not None and spec.fn is BUILTIN_FNS.get(name):
            evals[name] = fused(kids)
        else:
            evals[name] = _node_eval(spec, kids)
        by_output[spec.output][name] = evals[name]

    def run(root: Call, bs: BoundScene) -> object:
        return evals[root.function](root, bs)

    return run


def _node_eval(spec: OpSpec, kids: list[dict]) -> Evaluator:
    """The evaluator of one operation's nodes (see :func:`make_fast_eval`)."""
    fn = spec.fn
    n_in, n_side = len(spec.inputs), len(spec.side_inputs)
    if spec.optional_side:
        least = 1 if "Relation" in spec.side_inputs else 0
        if n_in == 1:
            (k0,) = kids

            def ev_optional(call: Call, bs: BoundScene) -> object:
                (a,) = call.args
                values = call.values
                if not least <= len(values) <= n_side:
                    raise Malformed
                return fn(bs, k0[a.function](a, bs), *values)

            return ev_optional
    elif n_in == 0 and n_side == 0:

        def ev0(call: Call, bs: BoundScene) -> object:
            if call.args or call.values:
                raise Malformed
            return fn(bs)

        return ev0
    elif n_in == 1 and n_side == 0:
        (k0,) = kids

        def ev1(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            if call.values:
                raise Malformed
            return fn(bs, k0[a.function](a, bs))

        return ev1
    elif n_in == 1 and n_side == 1:
        (k0,) = kids

        def ev1v(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            (v,) = call.values
            return fn(bs, k0[a.function](a, bs), v)

        return ev1v
    elif n_in == 2 and n_side == 0:
        k0, k1 = kids

        def ev2(call: Call, bs: BoundScene) -> object:
            a, b = call.args
            if call.values:
                raise Malformed
            return fn(bs, k0[a.function](a, bs), k1[b.function](b, bs))

        return ev2

    def ev_any(call: Call, bs: BoundScene) -> object:
        args, values = call.args, call.values
        if len(args) != n_in or not (
            len(values) <= n_side if spec.optional_side else len(values) == n_side
        ):
            raise Malformed
        return fn(bs, *(k[a.function](a, bs) for k, a in zip(kids, args, strict=True)), *values)

    return ev_any


# ---------------------------------------------------------------------- fused evaluators
# The hottest CLEVR operations with their semantics inlined, so a node costs one
# Python call instead of two.  They must equal the functions in ``ops.py`` (the
# traced path uses those); the tests compare both paths on thousands of programs.
def _fused_scene(kids: list[dict]) -> Evaluator:
    def ev(call: Call, bs: BoundScene) -> object:
        if call.args or call.values:
            raise Malformed
        return bs.all

    return ev


def _fused_filter(attr: str) -> Callable[[list[dict]], Evaluator]:
    def build(kids: list[dict]) -> Evaluator:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            (v,) = call.values
            return k0[a.function](a, bs) & bs.bits[attr][v]

        return ev

    return build


def _fused_unique(kids: list[dict]) -> Evaluator:
    (k0,) = kids

    def ev(call: Call, bs: BoundScene) -> object:
        (a,) = call.args
        if call.values:
            raise Malformed
        x = k0[a.function](a, bs)
        if x and not x & (x - 1):
            return x.bit_length() - 1
        raise InvalidExecution  # the traced path reports the node and the set size

    return ev


def _fused_relate(kids: list[dict]) -> Evaluator:
    (k0,) = kids

    def ev(call: Call, bs: BoundScene) -> object:
        (a,) = call.args
        (r,) = call.values
        return bs.rel[r][k0[a.function](a, bs)]

    return ev


def _fused_set_to(
    convert: Callable[[int], object],
) -> Callable[[list[dict]], Evaluator]:
    def build(kids: list[dict]) -> Evaluator:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            if call.values:
                raise Malformed
            return convert(k0[a.function](a, bs))

        return ev

    return build


def _fused_object_table(table: str, attr: str) -> Callable[[list[dict]], Evaluator]:
    def build(kids: list[dict]) -> Evaluator:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            if call.values:
                raise Malformed
            return getattr(bs, table)[attr][k0[a.function](a, bs)]

        return ev

    return build


_FUSED: dict[str, Callable[[list[dict]], Evaluator]] = {
    "scene": _fused_scene,
    "unique": _fused_unique,
    "relate": _fused_relate,
    "count": _fused_set_to(int.bit_count),
    "exist": _fused_set_to(bool),
    **{f"filter_{a}": _fused_filter(a) for a in VALUE_TYPES.values()},
    **{f"query_{a}": _fused_object_table("values", a) for a in VALUE_TYPES.values()},
    **{f"same_{a}": _fused_object_table("same", a) for a in VALUE_TYPES.values()},
}
