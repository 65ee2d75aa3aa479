"""The batched CLEVR executor: many questions at once as vectorised bitset plans.

Questions are grouped by program structure; each structure is compiled once
into a plan of array operations, and all questions of a group run together:
every object set is one ``uint64`` bitset per question (a ``[Q]`` array), side
inputs are per-question integer codes (a ``[Q, P]`` array), scene tables are
gathered per question from a :class:`~reasoning.executor.scene_table.SceneTable`,
filters are ANDs, ``count`` is ``np.bitwise_count`` and ``unique`` checks a
popcount of one.  Answers are identical to the single executor's
(:mod:`reasoning.executor.symbolic`), which the tests check on thousands of
random programs.

To keep groups large, structures are canonicalised before grouping (filter
chains merge into one node, ``query_*`` / ``same_*`` take the attribute as a
parameter, composite template nodes expand): see :mod:`reasoning.executor.encode`.

Three stages, timed separately by the speed benchmark:

1. :func:`compile_batch` -- encode each program into (structure key, codes)
   (Python work per question, like parsing) and group them: a :class:`BatchPlan`;
2. :class:`SceneTable` -- tensorise the scenes once;
3. :meth:`BatchPlan.run` -- the vectorised execution.

Programs the plan cannot vectorise (an operation registered in
:data:`~reasoning.executor.ops.OPS` without a batched form, or a scene larger
than 64 objects) are answered by the single executor, so results never differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from perception.scene_graph import SceneGraph
from physics.errors import DataError
from physics.worlds.clevr_properties import RELATIONS
from reasoning.dsl.program import Call, Program
from reasoning.errors import ProgramError
from reasoning.executor.encode import ARITY, N_PARAMS, encode
from reasoning.executor.scene_table import ANY, ATTRS, MAX_OBJECTS, WORDS, SceneTable
from reasoning.executor.symbolic import default_executor

__all__ = ["execute_batch", "compile_batch", "BatchPlan", "SceneTable"]


# ---------------------------------------------------------------------- plans
@dataclass(frozen=True)
class _Step:
    op: str  # canonical token
    ins: tuple[int, ...]  # register indices of the inputs
    cols: tuple[int, ...]  # parameter columns


def _compile(key: tuple) -> tuple[list[_Step], int]:
    """Turn a canonical pre-order key into post-order steps; returns (steps, parameter count)."""
    steps: list[_Step] = []
    pos = 1  # key[0] is the root kind
    col = 0

    def node() -> int:
        nonlocal pos, col
        token = key[pos]
        pos += 1
        if token[0] == "F" and token != "F":
            width = int(token[1:])
            cols = tuple(range(col, col + width))
            col += width
            child = node()
            steps.append(_Step("F", (child,), cols))
            return len(steps) - 1
        n_params = N_PARAMS.get(token, 0)
        cols = tuple(range(col, col + n_params))
        col += n_params
        ins = tuple(node() for _ in range(ARITY[token]))
        steps.append(_Step(token, ins, cols))
        return len(steps) - 1

    node()
    return steps, col


_INT_WORDS = np.array([str(k) for k in range(MAX_OBJECTS + 1)], dtype=object)
_VALUE_WORDS = np.array([v for _, v in WORDS] + [""], dtype=object)
_YES_NO = np.array(["no", "yes"], dtype=object)


class _Group:
    """The arrays one group of questions runs on (all shaped [Q] unless noted)."""

    __slots__ = ("table", "sidx", "params", "regs", "valid", "vbase")

    def __init__(self, table: SceneTable, sidx: np.ndarray, params: np.ndarray) -> None:
        self.table = table
        self.sidx = sidx  # scene row per question
        self.params = params  # [Q, P] word / relation / attribute / operator codes
        self.regs: list[np.ndarray] = []  # output of each executed step
        self.valid = np.ones(sidx.shape[0], dtype=bool)
        self.vbase = sidx * (ANY + 1)  # row offsets into value_flat


_ONE = np.uint64(1)
_A, _R = len(ATTRS), len(RELATIONS)


# One vectorised function per canonical token: (group, step) -> output array [Q].
def _v_scene(g: _Group, st: _Step) -> np.ndarray:
    return g.table.all_bits[g.sidx]


def _v_filter(g: _Group, st: _Step) -> np.ndarray:
    out = g.regs[st.ins[0]]
    for c in st.cols:
        out = out & g.table.value_flat[g.vbase + g.params[:, c]]
    return out


def _v_unique(g: _Group, st: _Step) -> np.ndarray:
    x = g.regs[st.ins[0]]
    ok = np.bitwise_count(x) == 1
    g.valid &= ok
    return np.where(ok, np.bitwise_count(x - _ONE), 0).astype(
        np.int64
    )  # bit index of the one object


def _v_count(g: _Group, st: _Step) -> np.ndarray:
    return np.bitwise_count(g.regs[st.ins[0]]).astype(np.int64)


def _v_exist(g: _Group, st: _Step) -> np.ndarray:
    return g.regs[st.ins[0]] != 0


def _v_union(g: _Group, st: _Step) -> np.ndarray:
    return g.regs[st.ins[0]] | g.regs[st.ins[1]]


def _v_intersect(g: _Group, st: _Step) -> np.ndarray:
    return g.regs[st.ins[0]] & g.regs[st.ins[1]]


def _v_relate(g: _Group, st: _Step) -> np.ndarray:
    t = g.table
    return t.rel_flat[(g.sidx * _R + g.params[:, st.cols[0]]) * t.max_objects + g.regs[st.ins[0]]]


def _v_same(g: _Group, st: _Step) -> np.ndarray:
    t = g.table
    return t.same_flat[(g.sidx * _A + g.params[:, st.cols[0]]) * t.max_objects + g.regs[st.ins[0]]]


def _v_query(g: _Group, st: _Step) -> np.ndarray:
    t = g.table
    return t.attr_flat[(g.sidx * t.max_objects + g.regs[st.ins[0]]) * _A + g.params[:, st.cols[0]]]


def _v_equal(g: _Group, st: _Step) -> np.ndarray:
    return g.regs[st.ins[0]] == g.regs[st.ins[1]]


def _v_compare(g: _Group, st: _Step) -> np.ndarray:
    a, b, op = g.regs[st.ins[0]], g.regs[st.ins[1]], g.params[:, st.cols[0]]
    return np.where(op == 0, a == b, np.where(op == 1, a < b, a > b))


_VECTOR_OPS = {
    "S": _v_scene,
    "F": _v_filter,
    "U": _v_unique,
    "C": _v_count,
    "E": _v_exist,
    "OR": _v_union,
    "AND": _v_intersect,
    "R": _v_relate,
    "SM": _v_same,
    "Q": _v_query,
    "EQ": _v_equal,
    "CMP": _v_compare,
}


def _run_steps(
    steps: list[_Step], kind: str, table: SceneTable, sidx: np.ndarray, params: np.ndarray
) -> np.ndarray:
    """Execute one group; returns an object array of answers (None where invalid). Shapes: [Q]."""
    q = sidx.shape[0]
    g = _Group(table, sidx, params)
    regs = g.regs
    for st in steps:
        regs.append(_VECTOR_OPS[st.op](g, st))
    valid = g.valid
    root = regs[-1]
    if kind == "Bool":
        answers = _YES_NO[root.astype(np.int64)]
    elif kind == "Integer":
        answers = _INT_WORDS[root]
    elif kind == "Value":
        answers = _VALUE_WORDS[root]
    else:
        return np.full(q, None, dtype=object)
    answers[~valid] = None
    return answers


_PLANS: dict[tuple, tuple[list[_Step], int]] = {}  # compiled once per canonical structure


@dataclass
class BatchPlan:
    """Programs encoded and grouped by canonical structure (see :func:`compile_batch`).

    Attributes:
        n: Number of programs.
        groups: structure key -> (program positions [Q] int64, parameter codes [Q, P] int64).
        fallback: Positions of programs answered by the single executor.
        programs: The programs (kept for the fallback).
    """

    n: int
    groups: dict[tuple, tuple[np.ndarray, np.ndarray]]
    fallback: list[int]
    programs: Sequence[Program | Call] = field(repr=False)

    def run(
        self,
        table: SceneTable,
        scene_indices: Sequence[int] | np.ndarray,
        scenes: Sequence[SceneGraph] | None = None,
    ) -> list[str | None]:
        """Answer every program on its scene (``table`` row ``scene_indices[k]``).

        Args:
            table: The tensorised scenes.
            scene_indices: Row of ``table`` for each program, [n].
            scenes: The scenes themselves, needed only for fallback programs and
                scenes the table cannot hold.

        Returns:
            One normalised answer per program, ``None`` where the execution is invalid.
        """
        sidx_all = np.asarray(scene_indices, dtype=np.int64)
        if sidx_all.shape != (self.n,):
            raise DataError(
                f"scene_indices must hold one index per program ({self.n}), got shape {sidx_all.shape}"
            )
        if self.n and (sidx_all.min() < 0 or sidx_all.max() >= len(table)):
            bad = int(np.flatnonzero((sidx_all < 0) | (sidx_all >= len(table)))[0])
            raise DataError(
                f"program {bad}: scene index {int(sidx_all[bad])} is out of range 0..{len(table) - 1}"
            )
        out = np.full(self.n, None, dtype=object)
        slow = list(self.fallback)
        all_fit = bool(table.fits.all())
        for key, (pos, params) in self.groups.items():
            if key not in _PLANS:
                _PLANS[key] = _compile(key)
            steps, _ = _PLANS[key]
            sidx = sidx_all[pos]
            if not all_fit:
                fit = table.fits[sidx]
                slow.extend(pos[~fit].tolist())
                pos, params, sidx = pos[fit], params[fit], sidx[fit]
            out[pos] = _run_steps(steps, key[0], table, sidx, params)
        if slow:
            if scenes is None:
                raise DataError(
                    f"{len(slow)} program(s) need the single executor; pass the scenes to BatchPlan.run"
                )
            for k in slow:
                out[k] = default_executor.execute(
                    self.programs[k], scenes[int(sidx_all[k])], trace=False
                ).answer
        return out.tolist()


def _tree_like(graph: tuple[tuple[Call, tuple[int, ...]], ...]) -> bool:
    """Whether a DAG answers as its tree expansion: every node nobody reads is a bare ``scene``.

    Shared nodes are pure, so evaluating them once per reader changes nothing;
    only an unread node that can be invalid (the official engine stops at it)
    needs the single executor's in-order run.
    """
    read = {j for _, inputs in graph for j in inputs}
    return all(
        k in read or (call.function == "scene" and not call.args and not call.values)
        for k, (call, _) in enumerate(graph[:-1])
    )


def compile_batch(programs: Sequence[Program | Call]) -> BatchPlan:
    """Encode and group programs by canonical structure.

    Raises:
        ProgramError: a program is malformed; the message starts with its position
            (``"program 12: node 3 (filter_color): ..."``).
    """
    groups: dict[tuple, tuple[list[int], list[list[int]]]] = {}
    fallback: list[int] = []
    for k, program in enumerate(programs):
        root = program.root if isinstance(program, Program) else program
        try:
            if isinstance(program, Program) and program.graph is not None and not _tree_like(
                program.graph
            ):
                default_executor.check(program)  # raises for a malformed DAG
                enc = None
            else:
                enc = encode(root)
        except ProgramError as exc:
            raise ProgramError(f"program {k}: {exc}") from None
        if enc is None:
            fallback.append(k)
            continue
        key, params = enc
        g = groups.get(key)
        if g is None:
            groups[key] = ([k], [params])
        else:
            g[0].append(k)
            g[1].append(params)
    arrays = {}
    for key, (pos, rows) in groups.items():
        p = np.array(rows, dtype=np.int64)
        arrays[key] = (np.array(pos, dtype=np.int64), p.reshape(len(pos), -1))
    return BatchPlan(len(programs), arrays, fallback, programs)


def execute_batch(
    programs: Sequence[Program | Call],
    scenes: Sequence[SceneGraph] | SceneTable,
    scene_indices: Sequence[int],
    *,
    scene_list: Sequence[SceneGraph] | None = None,
) -> list[str | None]:
    """Answer ``programs[k]`` on ``scenes[scene_indices[k]]`` for every k, vectorised.

    Args:
        programs: The programs.
        scenes: The scenes, or an already built :class:`SceneTable` of them
            (then pass ``scene_list`` too if some programs may need the fallback).
        scene_indices: Index into ``scenes`` per program.

    Returns:
        Normalised answers (``"yes"``, ``"3"``, ``"red"``), ``None`` where invalid;
        exactly what :func:`~reasoning.executor.execute` answers one by one.

    Raises:
        ProgramError: a malformed program (its position and node are named).
        DataError: ``scene_indices`` of the wrong length or out of range.
    """
    if len(scene_indices) != len(programs):
        raise DataError(
            f"execute_batch: {len(programs)} programs but {len(scene_indices)} scene indices"
        )
    plan = compile_batch(programs)
    if isinstance(scenes, SceneTable):
        return plan.run(scenes, scene_indices, scene_list)
    return plan.run(SceneTable(scenes), scene_indices, scenes)
