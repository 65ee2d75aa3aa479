"""The symbolic CLEVR executor: one program on one scene, with an optional trace.

Semantics are those of the CLEVR question engine (Johnson et al., "CLEVR: A
Diagnostic Dataset for Compositional Language and Elementary Visual Reasoning",
CVPR 2017) as used by NS-VQA (Yi et al., NeurIPS 2018): see
:mod:`reasoning.executor.ops`.

Two evaluators share the operation table:

* the fast path (``trace=False``) recurses over the :class:`~reasoning.dsl.Call`
  tree and checks each node's arity and input types inline (one dict lookup per
  child); vocabulary words are checked by the bitset lookups themselves;
* the traced path walks the post-order node list with a value stack and
  records a :class:`~reasoning.executor.result.TraceStep` per node.

Whenever the fast path meets anything unusual (a malformed node, an invalid
``unique``) it defers to :func:`~reasoning.executor.check.check_call` and the
traced path, so error messages and invalidity reasons are the same in both
modes.

>>> from reasoning.dsl import parse_program
>>> from perception.synthetic import sample_scene_graph
>>> r = execute(parse_program("exist(scene())"), sample_scene_graph(seed=0))
>>> r.answer, r.valid
('yes', True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from perception.scene_graph import SceneGraph
from reasoning.dsl.program import Call, Program
from reasoning.errors import ExecutionError
from reasoning.executor.bound_scene import BoundScene, bind_scene
from reasoning.executor.check import check_call
from reasoning.executor.ops import ANSWER_TYPES, BOOL, OPS, VALUE_TYPES, InvalidExecution, OpSpec
from reasoning.executor.result import ExecutionResult, TraceStep, format_answer, render_value

__all__ = ["SymbolicExecutor", "execute", "default_executor"]


class _Malformed(Exception):
    """Internal: the fast path found a node that does not fit its signature."""


_FAST_FAILURES = (_Malformed, KeyError, TypeError, ValueError, IndexError, AttributeError)


class SymbolicExecutor:
    """Runs programs on scenes with a table of operations.

    Args:
        ops: Operation table (name -> :class:`~reasoning.executor.ops.OpSpec`);
            the CLEVR v1.0 table :data:`~reasoning.executor.ops.OPS` by default.
    """

    def __init__(self, ops: Mapping[str, OpSpec] | None = None) -> None:
        self.ops: dict[str, OpSpec] = dict(OPS if ops is None else ops)
        # name -> (fn, input types, max side inputs, min side inputs); output types by name
        self._out = {name: s.output for name, s in self.ops.items()}
        self._eval = _make_fast_eval(self.ops)

    # ------------------------------------------------------------------ public API
    def check(self, program: Program | Call) -> str:
        """Type-check ``program`` against this table; return its output type.

        Raises:
            ProgramError: naming the node index, function and what is allowed.
        """
        return check_call(_root(program), self.ops)

    def execute(
        self, program: Program | Call, scene: SceneGraph, *, trace: bool = True
    ) -> ExecutionResult:
        """Run ``program`` on ``scene``.

        Args:
            program: The program (or its root call).
            scene: The scene; bound once and cached (see :func:`bind_scene`).
            trace: Record every node's output (slower; off for bulk answering).

        Returns:
            The :class:`ExecutionResult`; invalid executions are results, not errors.

        Raises:
            ProgramError: the program is malformed for this table (names the node).
            ExecutionError: an operation failed for another reason on this scene.
        """
        root = _root(program)
        bs = bind_scene(scene)
        if trace:
            return self._traced(root, bs)
        try:
            value = self._eval(root, bs)
        except InvalidExecution:
            return self._traced(root, bs, keep_trace=False)
        except _FAST_FAILURES:
            return self._traced(root, bs, keep_trace=False)
        out_type = self._out[root.function]
        if out_type not in ANSWER_TYPES:
            return self._traced(root, bs, keep_trace=False)
        if out_type == BOOL:
            return ExecutionResult("yes" if value else "no", True)
        return ExecutionResult(str(value), True)

    def answer(self, program: Program | Call, scene: SceneGraph) -> str | None:
        """Just the normalised answer (``None`` when invalid); raises like :meth:`execute`."""
        return self.execute(program, scene, trace=False).answer

    # ------------------------------------------------------------------ evaluators
    def _traced(self, root: Call, bs: BoundScene, *, keep_trace: bool = True) -> ExecutionResult:
        """Post-order evaluation with a value stack; checks the program first."""
        out_type = check_call(root, self.ops)
        steps: list[TraceStep] = []
        stack: list[object] = []
        for index, call in enumerate(root.walk()):
            spec = self.ops[call.function]
            n = len(call.args)
            ins = stack[len(stack) - n :] if n else []
            if n:
                del stack[len(stack) - n :]
            try:
                value = spec.fn(bs, *ins, *call.values)
            except InvalidExecution as exc:
                reason = f"node {index} ({call.function}): {exc}"
                return ExecutionResult(None, False, reason, steps if keep_trace else [])
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                raise ExecutionError(
                    f"{bs.name}: node {index} ({call.function}) failed: {type(exc).__name__}: {exc}"
                ) from None
            stack.append(value)
            if keep_trace:
                steps.append(TraceStep(index, call, spec.output, render_value(value, spec.output)))
        value = stack[-1]
        if out_type not in ANSWER_TYPES:
            reason = (
                f"node {index} ({root.function}): the program ends in "
                f"{out_type}, not an answer type ({', '.join(sorted(ANSWER_TYPES))})"
            )
            return ExecutionResult(None, False, reason, steps)
        return ExecutionResult(format_answer(value, out_type), True, None, steps)


def _make_fast_eval(ops: Mapping[str, OpSpec]) -> Callable[[Call, BoundScene], object]:
    """The fast recursive evaluator: one specialised closure per operation.

    Each node evaluator unpacks its children and side inputs by shape (a wrong
    count raises ``ValueError``) and finds each child's evaluator in a dict that
    holds only the operations returning the input type it needs, so one lookup
    both type-checks and dispatches the child.  Anything unusual raises; the
    caller then runs the checked, traced path.
    """
    evals: dict[str, Callable[[Call, BoundScene], object]] = {}
    # input type -> {function name: evaluator} of the operations returning that type
    by_output: dict[str, dict[str, Callable[[Call, BoundScene], object]]] = {}
    for spec in ops.values():
        by_output.setdefault(spec.output, {})
        for t in spec.inputs:
            by_output.setdefault(t, {})
    for name, spec in ops.items():
        kids = [by_output[t] for t in spec.inputs]
        fused = _FUSED.get(name)
        # a fused evaluator inlines the built-in semantics; a replaced op keeps its own function
        if fused is not None and OPS.get(name) is not None and spec.fn is OPS[name].fn:
            evals[name] = fused(kids)
        else:
            evals[name] = _node_eval(spec, kids)
        by_output[spec.output][name] = evals[name]

    def run(root: Call, bs: BoundScene) -> object:
        return evals[root.function](root, bs)

    return run


def _node_eval(spec: OpSpec, kids: list[dict]) -> Callable[[Call, BoundScene], object]:
    """The evaluator of one operation's nodes (see :func:`_make_fast_eval`)."""
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
                    raise _Malformed
                return fn(bs, k0[a.function](a, bs), *values)

            return ev_optional
    elif n_in == 0 and n_side == 0:

        def ev0(call: Call, bs: BoundScene) -> object:
            if call.args or call.values:
                raise _Malformed
            return fn(bs)

        return ev0
    elif n_in == 1 and n_side == 0:
        (k0,) = kids

        def ev1(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            if call.values:
                raise _Malformed
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
                raise _Malformed
            return fn(bs, k0[a.function](a, bs), k1[b.function](b, bs))

        return ev2

    def ev_any(call: Call, bs: BoundScene) -> object:
        args, values = call.args, call.values
        if len(args) != n_in or not (
            len(values) <= n_side if spec.optional_side else len(values) == n_side
        ):
            raise _Malformed
        return fn(bs, *(k[a.function](a, bs) for k, a in zip(kids, args, strict=True)), *values)

    return ev_any


# ---------------------------------------------------------------------- fused evaluators
# The hottest CLEVR operations with their semantics inlined, so a node costs one
# Python call instead of two.  They must equal the functions in ``ops.py`` (the
# traced path uses those); the tests compare both paths on thousands of programs.
def _fused_scene(kids: list[dict]) -> Callable[[Call, BoundScene], object]:
    def ev(call: Call, bs: BoundScene) -> object:
        if call.args or call.values:
            raise _Malformed
        return bs.all

    return ev


def _fused_filter(attr: str) -> Callable[[list[dict]], Callable[[Call, BoundScene], object]]:
    def build(kids: list[dict]) -> Callable[[Call, BoundScene], object]:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            (v,) = call.values
            return k0[a.function](a, bs) & bs.bits[attr][v]

        return ev

    return build


def _fused_unique(kids: list[dict]) -> Callable[[Call, BoundScene], object]:
    (k0,) = kids

    def ev(call: Call, bs: BoundScene) -> object:
        (a,) = call.args
        if call.values:
            raise _Malformed
        x = k0[a.function](a, bs)
        if x and not x & (x - 1):
            return x.bit_length() - 1
        raise InvalidExecution  # the traced path reports the node and the set size

    return ev


def _fused_relate(kids: list[dict]) -> Callable[[Call, BoundScene], object]:
    (k0,) = kids

    def ev(call: Call, bs: BoundScene) -> object:
        (a,) = call.args
        (r,) = call.values
        return bs.rel[r][k0[a.function](a, bs)]

    return ev


def _fused_set_to(
    convert: Callable[[int], object],
) -> Callable[[list[dict]], Callable[[Call, BoundScene], object]]:
    def build(kids: list[dict]) -> Callable[[Call, BoundScene], object]:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            if call.values:
                raise _Malformed
            return convert(k0[a.function](a, bs))

        return ev

    return build


def _fused_object_table(
    table: str, attr: str
) -> Callable[[list[dict]], Callable[[Call, BoundScene], object]]:
    def build(kids: list[dict]) -> Callable[[Call, BoundScene], object]:
        (k0,) = kids

        def ev(call: Call, bs: BoundScene) -> object:
            (a,) = call.args
            if call.values:
                raise _Malformed
            return getattr(bs, table)[attr][k0[a.function](a, bs)]

        return ev

    return build


_FUSED: dict[str, Callable[[list[dict]], Callable[[Call, BoundScene], object]]] = {
    "scene": _fused_scene,
    "unique": _fused_unique,
    "relate": _fused_relate,
    "count": _fused_set_to(int.bit_count),
    "exist": _fused_set_to(bool),
    **{f"filter_{a}": _fused_filter(a) for a in VALUE_TYPES.values()},
    **{f"query_{a}": _fused_object_table("values", a) for a in VALUE_TYPES.values()},
    **{f"same_{a}": _fused_object_table("same", a) for a in VALUE_TYPES.values()},
}


def _root(program: Program | Call) -> Call:
    if isinstance(program, Program):
        return program.root
    if isinstance(program, Call):
        return program
    raise TypeError(f"expected a Program or Call, got {type(program).__name__}")


default_executor = SymbolicExecutor()


def execute(program: Program | Call, scene: SceneGraph, *, trace: bool = True) -> ExecutionResult:
    """Run ``program`` on ``scene`` with the default CLEVR executor (see :class:`SymbolicExecutor`)."""
    return default_executor.execute(program, scene, trace=trace)
