"""The symbolic CLEVR executor: one program on one scene, with an optional trace.

Semantics are those of the CLEVR question engine (Johnson et al., "CLEVR: A
Diagnostic Dataset for Compositional Language and Elementary Visual Reasoning",
CVPR 2017) as used by NS-VQA (Yi et al., NeurIPS 2018): see
:mod:`reasoning.executor.ops`.

Two evaluators share the operation table:

* the fast path (``trace=False``, :mod:`reasoning.executor.fast_eval`) recurses
  over the :class:`~reasoning.dsl.Call` tree with one specialised closure per
  operation that type-checks and dispatches each child in one dict lookup;
  vocabulary words are checked by the bitset lookups themselves;
* the traced path runs the node list in order (a tree's post-order, or a DAG's
  own list as the official engine runs it: each node once, unread nodes too)
  and records a :class:`~reasoning.executor.result.TraceStep` per node.

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

from collections.abc import Mapping, Sequence

from perception.scene_graph import SceneGraph
from reasoning.dsl.program import Call, Program
from reasoning.errors import ExecutionError, ProgramError
from reasoning.executor.bound_scene import BoundScene, bind_scene
from reasoning.executor.check import check_call, post_order
from reasoning.executor.fast_eval import Malformed, make_fast_eval
from reasoning.executor.ops import (
    _VERSION,
    ANSWER_TYPES,
    BOOL,
    OPS,
    InvalidExecution,
    OpSpec,
    table_version,
)
from reasoning.executor.result import ExecutionResult, TraceStep, format_answer, render_value

__all__ = ["SymbolicExecutor", "execute", "default_executor"]


_YES_NO = {True: "yes", False: "no"}
_FAST_FAILURES = (Malformed, KeyError, TypeError, ValueError, IndexError, AttributeError)


class SymbolicExecutor:
    """Runs programs on scenes with a table of operations.

    Args:
        ops: Operation table (name -> :class:`~reasoning.executor.ops.OpSpec`).
            By default the live CLEVR v1.0 table :data:`~reasoning.executor.ops.OPS`:
            operations added later with :func:`~reasoning.executor.ops.register`
            are seen at the next call.
    """

    def __init__(self, ops: Mapping[str, OpSpec] | None = None) -> None:
        self._live = ops is None
        self._build(OPS if ops is None else ops)

    def _build(self, ops: Mapping[str, OpSpec]) -> None:
        self.ops: dict[str, OpSpec] = dict(ops)
        self._out = {name: s.output for name, s in self.ops.items()}
        self._evals = make_fast_eval(self.ops)
        # root function -> answer formatter (None: the op does not return an answer type)
        self._format = {
            name: (_YES_NO.__getitem__ if t == BOOL else str) if t in ANSWER_TYPES else None
            for name, t in self._out.items()
        }
        self._version = table_version()

    def _refresh(self) -> None:
        if self._live and self._version != table_version():
            self._build(OPS)

    # ------------------------------------------------------------------ public API
    def check(self, program: Program | Call) -> str:
        """Type-check ``program`` against this table; return its output type.

        Raises:
            ProgramError: naming the node index, function and what is allowed.
        """
        self._refresh()
        if isinstance(program, Program) and program.graph is not None:
            return self._check_graph(program.graph)
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
        if self._live and self._version != _VERSION[0]:
            self._build(OPS)
        if type(program) is Program:
            if program.graph is not None:
                return self._run_graph(program.graph, bind_scene(scene), keep_trace=trace)
            root = program.root
        else:
            root = _root(program)
        bs = bind_scene(scene)
        evals = self._evals
        if trace:
            try:
                evals[root.function](root, bs)  # cheap; on success every node fits its signature
                checked = True
            except (InvalidExecution, *_FAST_FAILURES):
                checked = False
            return self._traced(root, bs, checked=checked)
        try:
            value = evals[root.function](root, bs)
        except (InvalidExecution, *_FAST_FAILURES):
            return self._traced(root, bs, keep_trace=False)
        fmt = self._format[root.function]
        if fmt is None:  # not an answer type: the traced path says why
            return self._traced(root, bs, keep_trace=False)
        return ExecutionResult(fmt(value), True)

    def answer(self, program: Program | Call, scene: SceneGraph) -> str | None:
        """Just the normalised answer (``None`` when invalid); raises like :meth:`execute`."""
        return self.execute(program, scene, trace=False).answer

    # ------------------------------------------------------------------ evaluators
    def _traced(
        self, root: Call, bs: BoundScene, *, keep_trace: bool = True, checked: bool = False
    ) -> ExecutionResult:
        """Post-order evaluation of a tree; checks the program first unless ``checked``."""
        out_type = self._out[root.function] if checked else check_call(root, self.ops)
        graph: list[tuple[Call, tuple[int, ...]]] = []
        index: dict[int, int] = {}  # id(call) -> post-order position
        for call in post_order(root):
            graph.append((call, tuple(index[id(a)] for a in call.args)))
            index[id(call)] = len(graph) - 1
        return self._evaluate(graph, bs, out_type, keep_trace)

    def _check_graph(self, graph: tuple[tuple[Call, tuple[int, ...]], ...]) -> str:
        """Type-check a DAG node list: the root and every node nobody reads (the rest lie below)."""
        read = {j for _, inputs in graph for j in inputs}
        for index, (call, _) in enumerate(graph[:-1]):
            if index not in read:
                try:
                    check_call(call, self.ops)
                except ProgramError as exc:
                    raise ProgramError(f"unread node {index}: {exc}") from None
        return check_call(graph[-1][0], self.ops)

    def _run_graph(
        self, graph: tuple[tuple[Call, tuple[int, ...]], ...], bs: BoundScene, *, keep_trace: bool
    ) -> ExecutionResult:
        """A DAG node list run as the official CLEVR engine runs it.

        Every node is evaluated once, in list order, from the outputs of the
        nodes it reads; nodes nobody reads are evaluated too, and the first
        invalid node makes the execution invalid (the official engine stops
        there and answers ``__INVALID__``).  The answer is the last node's output;
        trace indices are the node list's own.
        """
        if self._live and self._version != _VERSION[0]:
            self._build(OPS)
        return self._evaluate(graph, bs, self._check_graph(graph), keep_trace)

    def _evaluate(
        self,
        graph: Sequence[tuple[Call, tuple[int, ...]]],
        bs: BoundScene,
        out_type: str,
        keep_trace: bool,
    ) -> ExecutionResult:
        """Every node in list order from its inputs' outputs; the last one answers."""
        ops = self.ops
        outs: list[object] = []
        steps: list[TraceStep] = []
        for index, (call, inputs) in enumerate(graph):
            spec = ops[call.function]
            try:
                value = spec.fn(bs, *[outs[j] for j in inputs], *call.values)
            except InvalidExecution as exc:
                reason = f"node {index} ({call.function}): {exc}"
                return ExecutionResult(None, False, reason, steps)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                raise ExecutionError(
                    f"{bs.name}: node {index} ({call.function}) failed: {type(exc).__name__}: {exc}"
                ) from None
            outs.append(value)
            if keep_trace:
                steps.append(TraceStep(index, call, spec.output, render_value(value, spec.output)))
        if out_type not in ANSWER_TYPES:
            reason = (
                f"node {len(graph) - 1} ({graph[-1][0].function}): the program ends in "
                f"{out_type}, not an answer type ({', '.join(sorted(ANSWER_TYPES))})"
            )
            return ExecutionResult(None, False, reason, steps)
        return ExecutionResult(format_answer(outs[-1], out_type), True, None, steps)


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
