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

from collections.abc import Mapping

from perception.scene_graph import SceneGraph
from reasoning.dsl.program import Call, Program
from reasoning.errors import ExecutionError
from reasoning.executor.bound_scene import BoundScene, bind_scene
from reasoning.executor.check import check_call
from reasoning.executor.ops import ANSWER_TYPES, BOOL, OPS, InvalidExecution, OpSpec
from reasoning.executor.result import ExecutionResult, TraceStep, format_answer, render_value

__all__ = ["SymbolicExecutor", "execute", "default_executor"]


class _Malformed(Exception):
    """Internal: the fast path found a node that does not fit its signature."""


_FAST_FAILURES = (_Malformed, KeyError, TypeError, IndexError, AttributeError)


class SymbolicExecutor:
    """Runs programs on scenes with a table of operations.

    Args:
        ops: Operation table (name -> :class:`~reasoning.executor.ops.OpSpec`);
            the CLEVR v1.0 table :data:`~reasoning.executor.ops.OPS` by default.
    """

    def __init__(self, ops: Mapping[str, OpSpec] | None = None) -> None:
        self.ops: dict[str, OpSpec] = dict(OPS if ops is None else ops)
        # name -> (fn, input types, max side inputs, min side inputs); output types by name
        self._fast = {
            name: (
                s.fn,
                s.inputs,
                len(s.side_inputs),
                (1 if "Relation" in s.side_inputs else 0)
                if s.optional_side
                else len(s.side_inputs),
            )
            for name, s in self.ops.items()
        }
        self._out = {name: s.output for name, s in self.ops.items()}
        self._eval = _make_fast_eval(self._fast, self._out)

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
            except (KeyError, TypeError, IndexError, AttributeError) as exc:
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


def _make_fast_eval(fast: dict, out: dict):
    """The fast recursive evaluator over ``fast`` (name -> fn, input types, most, least side inputs).

    A closure so that the hot loop reads only locals; it checks each node's arity,
    side-input count and child output types inline and raises on anything unusual.
    """

    def ev(call: Call, bs: BoundScene) -> object:
        fn, want, most, least = fast[call.function]
        args = call.args
        values = call.values
        n = len(args)
        if n != len(want) or not least <= len(values) <= most:
            raise _Malformed
        if n == 1:
            a = args[0]
            if out[a.function] != want[0]:
                raise _Malformed
            return fn(bs, ev(a, bs), *values)
        if n == 0:
            return fn(bs, *values)
        ins = []
        for a, w in zip(args, want, strict=True):
            if out[a.function] != w:
                raise _Malformed
            ins.append(ev(a, bs))
        return fn(bs, *ins, *values)

    return ev


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
