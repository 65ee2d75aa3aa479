"""Random well-typed programs drawn from an operation table, valid on a scene.

Used to test that the single and batched executors agree and to feed the
executor speed benchmark.  It stays beside :func:`reasoning.dsl.sample_program`
(which needs only a catalogue) because it draws from the executor's live
table (operations registered at run time included) and evaluates every
subtree on a bound scene while drawing, so its programs are answerable
questions; the benchmark's figures are measured on exactly these draws.  Programs are typed by construction: a node of type
``T`` is drawn among the operations whose output is ``T`` and that still fit in
the remaining depth budget; side inputs are drawn from CLEVR's vocabulary, and
the composite template nodes leave each attribute slot empty with probability
one half (and sometimes omit trailing slots), as instantiated templates do.

>>> import numpy as np
>>> p = random_program(np.random.default_rng(0))
>>> from reasoning.executor.check import check_call
>>> check_call(p.root, OPS) in ANSWER_TYPES
True
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from perception.scene_graph import SceneGraph
from reasoning.dsl.program import Call, Program
from reasoning.dsl.sampling import min_depths
from reasoning.executor.bound_scene import BoundScene, bind_scene
from reasoning.executor.check import side_vocabulary
from reasoning.executor.ops import ANSWER_TYPES, OPS, VALUE_TYPES, InvalidExecution, OpSpec

__all__ = ["ProgramSampler", "random_program", "random_programs", "DEFAULT_WEIGHTS"]

# Relative draw weights: filters and the scene are the bulk of real CLEVR programs,
# set algebra is rare; anything not listed weighs 1.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "scene": 3.0,
    "filter_color": 2.0,
    "filter_shape": 2.0,
    "filter_size": 1.5,
    "filter_material": 1.5,
    "union": 0.4,
    "intersect": 0.4,
}


_INVALID = object()  # marker: the subtree's execution is invalid on the scene


def _min_depths(ops: Mapping[str, OpSpec]) -> dict[str, int]:
    """Smallest tree height that yields each op (from the types' minimum depths)."""
    inf = 10**6
    by_type = min_depths(ops)
    return {
        name: 1 + max((by_type.get(t, inf) for t in s.inputs), default=0) for name, s in ops.items()
    }


class ProgramSampler:
    """Draws random well-typed programs from an operation table (tables built once).

    Args:
        ops: Operation table to draw from (operations with side-input types
            outside CLEVR's vocabulary are left out: there is nothing to draw).
        weights: Relative draw weights by function name (default 1).
        max_depth: Largest tree height.
    """

    def __init__(
        self,
        ops: Mapping[str, OpSpec] = OPS,
        weights: Mapping[str, float] = DEFAULT_WEIGHTS,
        max_depth: int = 7,
    ) -> None:
        # only operations whose side inputs have a vocabulary to draw from
        ops = {n: s for n, s in ops.items() if all(side_vocabulary(t) for t in s.side_inputs)}
        self.ops = ops
        self.max_depth = max_depth
        depth = _min_depths(ops)
        self._answer_types = sorted(
            t for t in ANSWER_TYPES if any(s.output == t for s in ops.values())
        )
        self._names = {
            (t, b): [n for n, s in ops.items() if s.output == t and depth[n] <= b]
            for t in {s.output for s in ops.values()}
            for b in range(max_depth + 1)
        }
        self._cumulative = {
            key: list(itertools.accumulate(weights.get(n, 1.0) for n in names))
            for key, names in self._names.items()
        }
        self._vocab = {t: side_vocabulary(t) for s in ops.values() for t in s.side_inputs}

    def sample(
        self,
        rng: np.random.Generator,
        *,
        root_type: str | None = None,
        scene: SceneGraph | None = None,
        retries: int = 30,
    ) -> Program:
        """One program whose root returns an answer type (``root_type`` if given).

        With a ``scene``, every subtree is evaluated on it while drawing.  When a
        ``unique`` gets several objects, filters on the attributes of one of them
        are added until one object is left (the way CLEVR's templates single an
        object out); a node whose execution is still invalid is drawn again, up
        to ``retries`` redraws per program, so most programs are valid questions
        about that scene.
        """
        if root_type is None:
            root_type = self._answer_types[int(rng.random() * len(self._answer_types))]
        ops, names_of, cumulative, vocab_of = self.ops, self._names, self._cumulative, self._vocab
        bs = bind_scene(scene) if scene is not None else None
        left = [
            retries if bs is not None else 0
        ]  # redraws left for the whole program (bounds the work)

        def draw(type_name: str, budget: int) -> tuple[Call, object]:
            names = names_of.get((type_name, budget))
            if not names:
                raise ValueError(f"no operation returns {type_name} within depth {budget}")
            cum = cumulative[(type_name, budget)]
            while True:
                call, value = draw_op(
                    names[bisect.bisect_right(cum, rng.random() * cum[-1])], budget
                )
                if value is not _INVALID or left[0] <= 0:
                    return call, value
                left[0] -= 1

        def draw_op(name: str, budget: int) -> tuple[Call, object]:
            spec = ops[name]
            drawn = [draw(t, budget - 1) for t in spec.inputs]
            args = tuple(c for c, _ in drawn)
            values = []
            for t in spec.side_inputs:
                vocab = vocab_of[t]
                if spec.optional_side and t != "Relation" and rng.random() < 0.5:
                    values.append("")
                else:
                    values.append(vocab[int(rng.random() * len(vocab))])
            if spec.optional_side and rng.random() < 0.2:
                while values and values[-1] == "":
                    values.pop()  # missing trailing slots mean "no constraint" too
            if bs is None:
                return Call(name, args, tuple(values)), None
            ins = [v for _, v in drawn]
            if any(v is _INVALID for v in ins):
                return Call(name, args, tuple(values)), _INVALID
            if name == "unique" and isinstance(ins[0], int) and ins[0] & (ins[0] - 1):
                args, ins = _single_out(rng, bs, args[0], ins[0])
            try:
                return Call(name, args, tuple(values)), spec.fn(bs, *ins, *values)
            except InvalidExecution:
                return Call(name, args, tuple(values)), _INVALID

        return Program(draw(root_type, self.max_depth)[0])

    def instantiate(
        self,
        shape: Program | Call,
        rng: np.random.Generator,
        *,
        scene: SceneGraph | None = None,
        tries: int = 10,
    ) -> Program:
        """``shape`` with fresh side inputs: a new question of the same template.

        Every non-empty side input is redrawn (empty composite slots stay empty, as
        a template's unused filter slots do).  With a ``scene``, filter words are
        mostly drawn from the objects in the filter's input set (CLEVR asks about
        what is there), and up to ``tries`` instantiations are drawn: the first
        one whose execution on the scene is valid is returned (else a blind draw).
        """
        root = shape.root if isinstance(shape, Program) else shape
        ops, vocab_of = self.ops, self._vocab
        bs = bind_scene(scene) if scene is not None else None

        def word(type_name: str, objs: object) -> str:
            """A word of ``type_name``; with a scene, mostly one that an object of ``objs`` has."""
            vocab = vocab_of[type_name]
            attr = VALUE_TYPES.get(type_name)
            if bs is not None and attr and isinstance(objs, int) and objs and rng.random() < 0.9:
                members = [i for i in range(objs.bit_length()) if objs >> i & 1]
                return bs.values[attr][members[int(rng.random() * len(members))]]
            return vocab[int(rng.random() * len(vocab))]

        def fill(call: Call) -> tuple[Call, object]:
            spec = ops[call.function]
            drawn = [fill(a) for a in call.args]
            ins = [v for _, v in drawn]
            objs = ins[0] if ins and spec.inputs[0] == "ObjectSet" else None
            values = []
            for v, t in zip(call.values, spec.side_inputs, strict=False):
                if not v:
                    values.append(v)
                elif t == "Relation":
                    values.append(word(t, None))
                    if bs is not None and isinstance(ins[0], int) and ins[0] < bs.n:
                        objs = bs.rel[values[-1]][ins[0]]
                else:
                    values.append(word(t, objs))
                    if bs is not None and isinstance(objs, int):
                        objs &= bs.bits[VALUE_TYPES[t]].get(values[-1], 0)
            new = Call(call.function, tuple(c for c, _ in drawn), tuple(values))
            if bs is None:
                return new, None
            try:
                return new, spec.fn(bs, *ins, *values)
            except InvalidExecution:
                raise  # abandon this draw at once (caught below)

        for _ in range(max(1, tries)):
            try:
                return Program(fill(root)[0])
            except InvalidExecution:
                continue  # this draw fails on the scene: draw again
        return Program(_fill_blind(root, rng, ops, vocab_of))


def _fill_blind(
    call: Call,
    rng: np.random.Generator,
    ops: Mapping[str, OpSpec],
    vocab_of: Mapping[str, tuple[str, ...]],
) -> Call:
    """``call`` with every non-empty side input redrawn uniformly from its vocabulary."""
    spec = ops[call.function]
    values = tuple(
        vocab_of[t][int(rng.random() * len(vocab_of[t]))] if v else v
        for v, t in zip(call.values, spec.side_inputs, strict=False)
    )
    return Call(call.function, tuple(_fill_blind(a, rng, ops, vocab_of) for a in call.args), values)


def _single_out(
    rng: np.random.Generator, bs: BoundScene, child: Call, objs: int
) -> tuple[tuple[Call], list[int]]:
    """Wrap ``child`` in filters on one member's attributes until it alone is left (if it can be)."""
    members = [i for i in range(objs.bit_length()) if objs >> i & 1]
    target = members[int(rng.random() * len(members))]
    attrs = list(VALUE_TYPES.values())
    rng.shuffle(attrs)
    for attr in attrs:
        if not objs & (objs - 1):
            break
        value = bs.values[attr][target]
        narrowed = objs & bs.bits[attr][value]
        if narrowed != objs:
            child, objs = Call(f"filter_{attr}", (child,), (value,)), narrowed
    return (child,), [objs]


def random_program(
    rng: np.random.Generator,
    *,
    max_depth: int = 7,
    ops: Mapping[str, OpSpec] = OPS,
    root_type: str | None = None,
    scene: SceneGraph | None = None,
) -> Program:
    """One random well-typed program (see :class:`ProgramSampler`; builds the tables each call)."""
    return ProgramSampler(ops, max_depth=max_depth).sample(rng, root_type=root_type, scene=scene)


def random_programs(
    n: int,
    seed: int = 0,
    *,
    max_depth: int = 7,
    ops: Mapping[str, OpSpec] = OPS,
    scenes: Sequence[SceneGraph] | None = None,
) -> list[Program]:
    """``n`` random programs from one seed (see :class:`ProgramSampler`).

    With ``scenes``, program ``k`` is drawn to be answerable on ``scenes[k % len(scenes)]``.
    """
    rng = np.random.default_rng(seed)
    sampler = ProgramSampler(ops, max_depth=max_depth)
    return [
        sampler.sample(rng, scene=scenes[k % len(scenes)] if scenes else None) for k in range(n)
    ]
