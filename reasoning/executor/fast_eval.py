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

from reasoning.dsl.function_table import register_mode
from reasoning.dsl.program import Call
from reasoning.executor.bound_scene import BoundScene
from reasoning.executor.ops import BUILTIN_FNS, OPS, SLOTS, VALUE_TYPES, InvalidExecution, OpSpec

__all__ = ["make_fast_eval", "Malformed", "Evaluator"]

Evaluator = Callable[[Call, BoundScene], object]


class Malformed(Exception):
    """A node does not fit its signature (the checked path names the fault)."""


def make_fast_eval(ops: Mapping[str, OpSpec]) -> dict[str, Evaluator]:
    """The fast evaluators, one specialised closure per operation, by function name.

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
            evals[name] = fused(kids, ops)
        else:
            evals[name] = _node_eval(spec, kids)
        by_output[spec.output][name] = evals[name]
    return evals


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
# The hottest CLEVR operations with their semantics inlined, so a node costs at
# most one Python call (a chain of filters costs one call in all).  They must
# equal the functions in ``ops.py`` (the traced path uses those); the tests
# compare both paths on thousands of programs.
Builder = Callable[[list[dict], Mapping[str, OpSpec]], Evaluator]
_SLOTS = SLOTS  # composite side-input order (after Relation), from the catalogue
_FILTER_ATTR = {f"filter_{a}": a for a in VALUE_TYPES.values()}


def _one(x: int) -> int:
    """The index of the single object of bitset ``x`` (CLEVR's ``unique``)."""
    if x and not x & (x - 1):
        return x.bit_length() - 1
    raise InvalidExecution  # the traced path reports the node and the set size


def _fused_scene(kids: list[dict], ops: Mapping[str, OpSpec]) -> Evaluator:
    def ev(call: Call, bs: BoundScene) -> object:
        if call.args or call.values:
            raise Malformed
        return bs.all

    return ev


def _fused_filter(attr: str) -> Builder:
    def build(kids: list[dict], ops: Mapping[str, OpSpec]) -> Evaluator:
        (k0,) = kids
        # filters below this one that still have their built-in function join the chain
        chain = {n: a for n, a in _FILTER_ATTR.items() if n in ops and ops[n].fn is BUILTIN_FNS[n]}

        def ev(call: Call, bs: BoundScene) -> object:
            bits = bs.bits
            (v,) = call.values
            mask = bits[attr][v]
            (node,) = call.args
            below = chain.get(node.function)
            while below is not None:
                (v,) = node.values
                mask &= bits[below][v]
                (node,) = node.args
                below = chain.get(node.function)
            return k0[node.function](node, bs) & mask

        return ev

    return build


def _fused_slots(finish: Callable[[int], object] | None) -> Builder:
    """``filter`` / ``filter_unique`` / ``filter_count`` / ``filter_exist`` with their slots inlined."""

    def build(kids: list[dict], ops: Mapping[str, OpSpec]) -> Evaluator:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            values = call.values
            if len(values) > 4:
                raise Malformed
            (a,) = call.args
            x = k0[a.function](a, bs)
            if values:
                bits = bs.bits
                for attr, v in zip(_SLOTS, values, strict=False):
                    if v:
                        x &= bits[attr][v]
            return x if finish is None else finish(x)

        return ev

    return build


def _fused_relate_slots(finish: Callable[[int], object] | None) -> Builder:
    """``relate_filter`` and its ``_unique`` / ``_count`` / ``_exist`` forms, inlined."""

    def build(kids: list[dict], ops: Mapping[str, OpSpec]) -> Evaluator:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            values = call.values
            if not 1 <= len(values) <= 5:
                raise Malformed
            (a,) = call.args
            x = bs.rel[values[0]][k0[a.function](a, bs)]  # "" is no relation: KeyError
            bits = bs.bits
            for attr, v in zip(_SLOTS, values[1:], strict=False):
                if v:
                    x &= bits[attr][v]
            return x if finish is None else finish(x)

        return ev

    return build


def _fused_unary(finish: Callable[[int], object]) -> Builder:
    def build(kids: list[dict], ops: Mapping[str, OpSpec]) -> Evaluator:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            if call.values:
                raise Malformed
            return finish(k0[a.function](a, bs))

        return ev

    return build


def _fused_relate(kids: list[dict], ops: Mapping[str, OpSpec]) -> Evaluator:
    (k0,) = kids

    def ev(call: Call, bs: BoundScene) -> object:
        (a,) = call.args
        (r,) = call.values
        return bs.rel[r][k0[a.function](a, bs)]

    return ev


def _fused_lookup(table: str, attr: str) -> Builder:
    """``query_<attr>`` (table ``values``) or ``same_<attr>`` (table ``same``): one lookup per object."""

    def build(kids: list[dict], ops: Mapping[str, OpSpec]) -> Evaluator:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            if call.values:
                raise Malformed
            return getattr(bs, table)[attr][k0[a.function](a, bs)]

        return ev

    return build


_FUSED: dict[str, Builder] = {
    "scene": _fused_scene,
    "unique": _fused_unary(_one),
    "count": _fused_unary(int.bit_count),
    "exist": _fused_unary(bool),
    "relate": _fused_relate,
    **{f"filter_{a}": _fused_filter(a) for a in VALUE_TYPES.values()},
    **{f"query_{a}": _fused_lookup("values", a) for a in VALUE_TYPES.values()},
    **{f"same_{a}": _fused_lookup("same", a) for a in VALUE_TYPES.values()},
    "filter": _fused_slots(None),
    "filter_unique": _fused_slots(_one),
    "filter_count": _fused_slots(int.bit_count),
    "filter_exist": _fused_slots(bool),
    "relate_filter": _fused_relate_slots(None),
    "relate_filter_unique": _fused_relate_slots(_one),
    "relate_filter_count": _fused_relate_slots(int.bit_count),
    "relate_filter_exist": _fused_relate_slots(bool),
}

# The "fast single" mode of the function table (reasoning.dsl.function_table): the fused
# evaluators, and the generic one (calling the symbolic function) for every other operation.
register_mode("fast single", lambda: {*_FUSED, *make_fast_eval(OPS)})
