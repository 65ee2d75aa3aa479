"""The quasi-symbolic executor: CLEVR programs run softly over concept scores (NS-CL).

The Neuro-Symbolic Concept Learner (Mao et al., ICLR 2019) answers a question by
running its program over *probabilities* instead of sets, so that the answer's
likelihood is differentiable in the object features and concept embeddings that
produced them.  This module is that executor, for the same programs and the same
catalogue as the symbolic one (:mod:`reasoning.executor.ops`); it is the
``soft`` mode of the function table (:mod:`reasoning.dsl.function_table`).

Scenes come as concept *logits* (:class:`SoftScenes`): per object and attribute
group one logit per concept (``sigmoid`` is the probability that the object has
that concept, ``softmax`` over the group its classification), and per relation
and object pair one logit (``[s, i, j]``: object ``j`` is R of object ``i``, as
``relationships[R][i]`` lists).  Values are batched over programs (``G`` rows):

==============  =====================  ===========================================
type            tensor                 meaning
==============  =====================  ===========================================
ObjectSet       ``[G, N]`` in [0, 1]   probability that each object is in the set
Object          ``[G, N]``, sums to 1  which object it is
Integer         ``[G, N + 1]``         distribution over the counts 0..N
Bool            ``[G]`` in [0, 1]      probability of "yes"
Color, ...      ``[G, V]``, sums to 1  distribution over the group's words
==============  =====================  ===========================================

The operations follow the paper: ``filter`` is the minimum of the set and the
concept's probability, ``intersect``/``union`` minimum/maximum, ``unique`` a
softmax over the set's log-probabilities (the set normalised), ``relate`` the
object distribution pushed through the relation's probabilities, ``exist`` the
maximum, ``query`` the object distribution times each object's classification.
``count`` is the sum of the set's probabilities -- the mean of the distribution
this executor keeps, the exact distribution of that many independent draws
(Poisson-binomial), so that a count answer has a likelihood and
``equal_integer``/``less_than``/``greater_than`` are the exact probabilities of
the comparison.  ``same_*`` weighs every other object by the probability that it
shares the object's value.

With hard scores (:meth:`SoftScenes.from_scene_graphs`: logits of +-``margin``)
every value is a 0/1 set, a one-hot object or a one-hot answer, and the
answers are exactly the symbolic executor's on every valid question (a test
runs thousands).  An operation without a soft form is refused with a
:class:`~reasoning.errors.ProgramError` naming it; :func:`attach_soft` adds one.

>>> from perception.synthetic import sample_scene_graphs
>>> from reasoning.dsl import parse_program
>>> scenes = sample_scene_graphs(2, seed=0)
>>> out = soft_execute([parse_program("count(scene())")] * 2, SoftScenes.from_scene_graphs(scenes), [0, 1])
>>> list(out.answers) == [str(len(s)) for s in scenes]
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from torch import Tensor

from perception.scene_graph import SceneGraph
from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS
from reasoning.dsl.function_table import register_mode
from reasoning.dsl.program import Call, Program
from reasoning.dsl.typecheck import post_order
from reasoning.errors import ProgramError
from reasoning.executor.check import check_call
from reasoning.executor.ops import (
    ANSWER_TYPES,
    BOOL,
    INTEGER,
    OPS,
    SLOTS,
    VALUE_TYPES,
    implementation_table,
)

__all__ = [
    "SoftScenes",
    "SoftContext",
    "SoftOutputs",
    "SOFT_OPS",
    "attach_soft",
    "soft_execute",
    "check_soft",
]

_TINY = 1e-12  # keeps logs and divisions finite where a probability is exactly 0
_RELATION = OPS["relate"].side_inputs[0]  # the side-input type whose words are relations, not concepts


@dataclass(frozen=True)
class SoftScenes:
    """A batch of ``S`` scenes as concept logits, padded to ``N`` objects.

    Attributes:
        present: ``[S, N]`` 1.0 for a real object, 0.0 for padding.
        attributes: attribute -> ``[S, N, V]`` logits over ``vocabulary[attribute]``.
        relations: ``[S, len(relation_names), N, N]`` logits; ``[s, r, i, j]``: object
            ``j`` is relation r of object ``i``.
        vocabulary: attribute -> its words, in the order of the logits.
        relation_names: The relations, in the order of ``relations``.
    """

    present: Tensor
    attributes: Mapping[str, Tensor]
    relations: Tensor
    vocabulary: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: ATTRIBUTES)
    relation_names: tuple[str, ...] = RELATIONS

    def __post_init__(self) -> None:
        s, n = self.present.shape
        if set(self.attributes) != set(self.vocabulary):
            raise ProgramError(
                f"SoftScenes: attributes {sorted(self.attributes)} do not match the "
                f"vocabulary's {sorted(self.vocabulary)}"
            )
        for a, logits in self.attributes.items():
            if tuple(logits.shape) != (s, n, len(self.vocabulary[a])):
                raise ProgramError(
                    f"SoftScenes: {a} logits have shape {tuple(logits.shape)}, expected "
                    f"{(s, n, len(self.vocabulary[a]))}"
                )
        if tuple(self.relations.shape) != (s, len(self.relation_names), n, n):
            raise ProgramError(
                f"SoftScenes: relation logits have shape {tuple(self.relations.shape)}, "
                f"expected {(s, len(self.relation_names), n, n)}"
            )

    @property
    def num_objects(self) -> int:
        """``N``: the padded number of objects per scene."""
        return self.present.shape[1]

    @classmethod
    def cat(cls, parts: Sequence[SoftScenes]) -> SoftScenes:
        """One batch of the scenes of ``parts`` (same vocabulary), padded to the largest.

        Padding objects are absent (``present`` 0), so no operation ever selects them.
        """
        if not parts:
            raise ProgramError("SoftScenes.cat: no scenes to join")
        first = parts[0]
        n = max(p.num_objects for p in parts)

        def pad(t: Tensor, dims: tuple[int, ...]) -> Tensor:
            widths: list[int] = []
            for d in reversed(range(t.dim())):
                widths += [0, n - t.shape[d] if d in dims else 0]
            return torch.nn.functional.pad(t, widths)

        return cls(
            torch.cat([pad(p.present, (1,)) for p in parts]),
            {a: torch.cat([pad(p.attributes[a], (1,)) for p in parts]) for a in first.attributes},
            torch.cat([pad(p.relations, (2, 3)) for p in parts]),
            first.vocabulary,
            first.relation_names,
        )

    @classmethod
    def from_scene_graphs(
        cls,
        scenes: Sequence[SceneGraph],
        *,
        margin: float = 30.0,
        dtype: torch.dtype = torch.float32,
        vocabulary: Mapping[str, tuple[str, ...]] = ATTRIBUTES,
    ) -> SoftScenes:
        """Hard scores from scene graphs: logit ``+margin`` where true, ``-margin`` where not.

        Raises:
            ProgramError: a scene holds a value outside ``vocabulary`` or lacks a relation.
        """
        n = max((len(s) for s in scenes), default=0)
        present = torch.zeros(len(scenes), n, dtype=dtype)
        attributes = {
            a: torch.full((len(scenes), n, len(words)), -margin, dtype=dtype)
            for a, words in vocabulary.items()
        }
        relations = torch.full((len(scenes), len(RELATIONS), n, n), -margin, dtype=dtype)
        index = {a: {w: k for k, w in enumerate(words)} for a, words in vocabulary.items()}
        for s, scene in enumerate(scenes):
            present[s, : len(scene)] = 1.0
            for i, obj in enumerate(scene.objects):
                for a, codes in index.items():
                    value = obj.attribute(a)
                    if value not in codes:
                        raise ProgramError(
                            f"{scene.name}: object {i} has {a} {value!r}, not one of {list(codes)}"
                        )
                    attributes[a][s, i, codes[value]] = margin
            for r, name in enumerate(RELATIONS):
                rows = scene.relationships.get(name)
                if rows is None:
                    raise ProgramError(f"{scene.name}: no {name!r} relationships")
                for i, js in enumerate(rows):
                    relations[s, r, i, list(js)] = margin
        return cls(present, attributes, relations, vocabulary)


class SoftContext:
    """What a soft operation reads: the scenes, and which scene each row of the group is on."""

    def __init__(self, scenes: SoftScenes, scene_index: Tensor) -> None:
        self.scenes = scenes
        self.scene_index = scene_index
        self.present = scenes.present[scene_index]  # [G, N]
        self._codes = {a: {w: k for k, w in enumerate(ws)} for a, ws in scenes.vocabulary.items()}
        self._relations = {r: k for k, r in enumerate(scenes.relation_names)}
        self._cache: dict[tuple, Tensor] = {}

    def codes(self, attribute: str, words: Sequence[str]) -> Tensor:
        """The vocabulary indices of ``words`` (one per row) for ``attribute``."""
        table = self._codes[attribute]
        try:
            return torch.tensor([table[w] for w in words], dtype=torch.long, device=self.present.device)
        except KeyError as exc:
            raise ProgramError(
                f"soft executor: {exc.args[0]!r} is not a {attribute}; known: {list(table)}"
            ) from None

    def concept(self, attribute: str, words: Sequence[str]) -> Tensor:
        """``[G, N]``: probability that each object has the row's concept (sigmoid of its logit)."""
        logits = self.scenes.attributes[attribute]
        rows = logits[self.scene_index, :, self.codes(attribute, words)]
        return torch.sigmoid(rows) * self.present

    def classification(self, attribute: str) -> Tensor:
        """``[G, N, V]``: each object's distribution over the attribute's words."""
        key = ("class", attribute)
        if key not in self._cache:
            logits = self.scenes.attributes[attribute][self.scene_index]
            # softmax written out: ATen's kernel goes parallel even on tiny tensors, and
            # on a busy machine its thread barrier costs milliseconds per call
            e = (logits - logits.amax(-1, keepdim=True)).exp()
            self._cache[key] = e / e.sum(-1, keepdim=True)
        return self._cache[key]

    def relation(self, words: Sequence[str]) -> Tensor:
        """``[G, N, N]``: ``[g, i, j]`` probability that object j is the row's relation of object i."""
        try:
            codes = torch.tensor([self._relations[w] for w in words], dtype=torch.long, device=self.present.device)
        except KeyError as exc:
            raise ProgramError(
                f"soft executor: {exc.args[0]!r} is not a relation; known: {list(self._relations)}"
            ) from None
        probs = torch.sigmoid(self.scenes.relations[self.scene_index, codes])
        return probs * self.present[:, None, :]


# ---------------------------------------------------------------------- operations
SoftOp = Callable[..., Tensor]  # (context, *inputs, *side-input columns) -> value


def _scene(ctx: SoftContext) -> Tensor:
    return ctx.present


def _filter(attr: str) -> SoftOp:
    def filter_attr(ctx: SoftContext, objs: Tensor, words: Sequence[str]) -> Tensor:
        return torch.minimum(objs, ctx.concept(attr, words))

    return filter_attr


def _unique(ctx: SoftContext, objs: Tensor) -> Tensor:
    return objs / objs.sum(-1, keepdim=True).clamp_min(_TINY)  # softmax of log-probabilities


def _relate(ctx: SoftContext, obj: Tensor, relations: Sequence[str]) -> Tensor:
    return torch.einsum("gi,gij->gj", obj, ctx.relation(relations))


def _union(ctx: SoftContext, a: Tensor, b: Tensor) -> Tensor:
    return torch.maximum(a, b)


def _intersect(ctx: SoftContext, a: Tensor, b: Tensor) -> Tensor:
    return torch.minimum(a, b)


def _count(ctx: SoftContext, objs: Tensor) -> Tensor:
    """The distribution of the number of objects drawn, each with its own probability."""
    g, n = objs.shape
    dist = torch.zeros(g, n + 1, dtype=objs.dtype, device=objs.device)
    dist[:, 0] = 1.0
    for i in range(n):
        p = objs[:, i : i + 1]
        shifted = torch.cat([torch.zeros(g, 1, dtype=objs.dtype, device=objs.device), dist[:, :-1]], dim=1)
        dist = dist * (1 - p) + shifted * p
    return dist


def _exist(ctx: SoftContext, objs: Tensor) -> Tensor:
    return objs.max(-1).values if objs.shape[1] else objs.new_zeros(objs.shape[0])


def _query(attr: str) -> SoftOp:
    def query_attr(ctx: SoftContext, obj: Tensor) -> Tensor:
        return torch.einsum("gi,giv->gv", obj, ctx.classification(attr))

    return query_attr


def _equal(ctx: SoftContext, a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1)


def _less(ctx: SoftContext, a: Tensor, b: Tensor) -> Tensor:
    """P(a < b) for independent counts: each count of b times the mass of a below it."""
    return (b * (a.cumsum(-1) - a)).sum(-1)


def _greater(ctx: SoftContext, a: Tensor, b: Tensor) -> Tensor:
    return _less(ctx, b, a)


def _same(attr: str) -> SoftOp:
    def same_attr(ctx: SoftContext, obj: Tensor) -> Tensor:
        cls = ctx.classification(attr)  # [G, N, V]
        shares = torch.einsum("giv,gjv->gij", cls, cls)
        shares = shares * (1 - torch.eye(obj.shape[1], dtype=obj.dtype, device=obj.device))  # never the object itself
        return torch.einsum("gi,gij->gj", obj, shares) * ctx.present

    return same_attr


def _constrain(ctx: SoftContext, objs: Tensor, columns: Sequence[Sequence[str]]) -> Tensor:
    """Filter by each non-empty [Size, Color, Material, Shape] slot (rows may leave slots empty)."""
    for attr, words in zip(SLOTS, columns, strict=False):
        if not any(words):
            continue
        keep = torch.tensor([bool(w) for w in words], device=objs.device)
        probs = ctx.concept(attr, [w or ctx.scenes.vocabulary[attr][0] for w in words])
        objs = torch.where(keep[:, None], torch.minimum(objs, probs), objs)
    return objs


def _filter_composite(ctx: SoftContext, objs: Tensor, *columns: Sequence[str]) -> Tensor:
    return _constrain(ctx, objs, columns)


def _relate_filter(ctx: SoftContext, obj: Tensor, relations: Sequence[str], *columns) -> Tensor:
    return _constrain(ctx, _relate(ctx, obj, relations), columns)


def _then(first: SoftOp, then: SoftOp) -> SoftOp:
    def composed(ctx: SoftContext, *args) -> Tensor:
        return then(ctx, first(ctx, *args))

    return composed


_SOFT: dict[str, SoftOp] = implementation_table(
    filter_attr=_filter,
    query_attr=_query,
    equal_attr=_equal,
    same_attr=_same,
    scene=_scene,
    unique=_unique,
    relate=_relate,
    union=_union,
    intersect=_intersect,
    count=_count,
    exist=_exist,
    equal_integer=_equal,
    less_than=_less,
    greater_than=_greater,
    equal_object=_equal,
    filter=_filter_composite,
    filter_unique=_then(_filter_composite, _unique),
    filter_count=_then(_filter_composite, _count),
    filter_exist=_then(_filter_composite, _exist),
    relate_filter=_relate_filter,
    relate_filter_unique=_then(_relate_filter, _unique),
    relate_filter_count=_then(_relate_filter, _count),
    relate_filter_exist=_then(_relate_filter, _exist),
)

SOFT_OPS: Mapping[str, SoftOp] = MappingProxyType(_SOFT)


def attach_soft(name: str, fn: SoftOp) -> None:
    """Give catalogue operation ``name`` its soft form.

    ``fn(context, *inputs, *side_inputs)`` gets each input as a batched tensor
    (see the module docstring) and each side input as one word per row.

    Raises:
        ProgramError: ``name`` has no symbolic operation (add it to the catalogue
            and :func:`~reasoning.executor.ops.attach` it first).
    """
    if name not in OPS:
        raise ProgramError(f"attach_soft: {name!r} is not an operation of the executor table")
    _SOFT[name] = fn


register_mode("soft", lambda: _SOFT.keys())


# ---------------------------------------------------------------------- running
@dataclass(frozen=True)
class SoftOutputs:
    """The soft executor's results for a batch of programs.

    Attributes:
        types: Per program, the output type of its root.
        values: Per program, its root value (a row of the batched tensor: see the
            module docstring); differentiable in the scenes' logits.
        answers: Per program, the most likely answer in CLEVR's normalised form
            (``None`` for a program that ends in an object or a set).
    """

    types: tuple[str, ...]
    values: tuple[Tensor, ...]
    answers: tuple[str | None, ...]
    vocabulary: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: ATTRIBUTES)

    def log_prob(self, answers: Sequence[str]) -> Tensor:
        """``[B]``: the log-likelihood of each given answer (``-inf``-free: clamped at 1e-12).

        Raises:
            ProgramError: an answer of the wrong kind for its program (``"7"`` for a
                yes/no question, a word outside the vocabulary, a program without an answer).
        """
        if len(answers) != len(self.values):
            raise ProgramError(f"log_prob: {len(answers)} answers for {len(self.values)} programs")
        out = []
        for k, (t, v, a) in enumerate(zip(self.types, self.values, answers, strict=True)):
            out.append(torch.log(_answer_prob(t, v, a, self.vocabulary, k).clamp_min(_TINY)))
        return torch.stack(out) if out else torch.zeros(0)


def _answer_prob(t: str, value: Tensor, answer: str, vocabulary, k: int) -> Tensor:
    if t == BOOL:
        if answer not in ("yes", "no"):
            raise ProgramError(f"log_prob: program {k} answers yes/no, got {answer!r}")
        return value if answer == "yes" else 1 - value
    if t == INTEGER:
        if not answer.isdigit():
            raise ProgramError(f"log_prob: program {k} answers a count, got {answer!r}")
        n = int(answer)
        return value[n] if n < value.shape[0] else value.new_zeros(())
    attr = VALUE_TYPES.get(t)
    if attr is None:
        raise ProgramError(f"log_prob: program {k} ends in a {t}, which is no answer")
    words = vocabulary[attr]
    if answer not in words:
        raise ProgramError(f"log_prob: program {k} answers a {attr}, got {answer!r}")
    return value[words.index(answer)]


def _node_list(program: Program) -> tuple[list[Call], list[tuple[int, ...]]]:
    """A program's nodes in execution order and the positions each reads."""
    if program.graph is not None:
        return [c for c, _ in program.graph], [tuple(ins) for _, ins in program.graph]
    calls = post_order(program.root)
    position: dict[int, int] = {}
    inputs = []
    for k, call in enumerate(calls):
        inputs.append(tuple(position[id(a)] for a in call.args))
        position[id(call)] = k
    return calls, inputs


def _answer(t: str, value: Tensor, vocabulary) -> str | None:
    if t not in ANSWER_TYPES:
        return None
    value = value.detach()
    if t == BOOL:
        return "yes" if float(value) > 0.5 else "no"
    if t == INTEGER:
        return str(int(value.argmax()))
    return vocabulary[VALUE_TYPES[t]][int(value.argmax())]


def check_soft(program: Program, scenes: SoftScenes, scene_index: int, position: int = 0) -> tuple[list[Call], list[tuple[int, ...]]]:
    """Refuse, running nothing, what :func:`soft_execute` would refuse of ``program`` on row ``scene_index``.

    Args:
        program: The program.
        scenes: The scenes it would run on (their vocabulary and relations decide its words).
        scene_index: The row of ``scenes`` it would run on.
        position: Its place in a batch, for the messages (``program 3``).

    Returns:
        Its nodes in execution order and the positions each reads.

    Raises:
        ProgramError: a scene index out of range, a malformed program (the symbolic
            executor's message), an operation without a soft form, or a side-input word
            outside the scenes' vocabulary or relations.
    """
    n_scenes = scenes.present.shape[0]
    if not 0 <= scene_index < n_scenes:
        raise ProgramError(f"soft_execute: program {position} names scene {scene_index}, but there are {n_scenes}")
    check_call(program.root, OPS)
    calls, inputs = _node_list(program)
    for call in calls:
        if call.function not in _SOFT:
            raise ProgramError(
                f"soft executor: operation {call.function!r} (program {position}) has no soft form; "
                "add one with reasoning.executor.soft.attach_soft"
            )
        _check_words(call, scenes, position)
    return calls, inputs


def _check_words(call: Call, scenes: SoftScenes, position: int) -> None:
    """Each side-input word of ``call`` is one of the scenes' (an empty composite slot is no constraint)."""
    for word, kind in zip(call.values, OPS[call.function].side_inputs, strict=False):
        if not word:
            continue
        if kind == _RELATION:
            known: Sequence[str] | None = scenes.relation_names
            name = "relation"
        else:
            name = VALUE_TYPES.get(kind, "")
            known = scenes.vocabulary.get(name) if name else None  # a type of its own: the operation decides
            if name and known is None:
                raise ProgramError(f"soft executor: program {position} filters by {name}, which the scenes have no "
                                   f"concepts of; they have {list(scenes.vocabulary)}")
        if known is not None and word not in known:
            raise ProgramError(f"soft executor: {word!r} is not a {name}; known: {list(known)} (program {position}, "
                               f"{call.function})")


def soft_execute(
    programs: Sequence[Program],
    scenes: SoftScenes,
    scene_indices: Sequence[int],
) -> SoftOutputs:
    """Run each program softly on its scene, batched by program structure.

    Programs of one structure (same functions, same wiring) run together: each
    node is one batched tensor operation for the whole group, its side inputs
    one column of words.  Every program is checked (:func:`check_soft`) before any runs.

    Args:
        programs: Programs (trees or official DAGs), type-checked against the catalogue.
        scenes: The scenes' concept logits.
        scene_indices: Per program, the row of ``scenes`` it runs on.

    Raises:
        ProgramError: a malformed program (the symbolic executor's message), an
            operation without a soft form, a word outside the vocabulary, or a
            scene index out of range.
    """
    if len(programs) != len(scene_indices):
        raise ProgramError(f"soft_execute: {len(programs)} programs, {len(scene_indices)} scene indices")
    groups: dict[tuple, list[int]] = {}
    lists = []
    for k, (program, s) in enumerate(zip(programs, scene_indices, strict=True)):
        calls, inputs = check_soft(program, scenes, s, k)
        lists.append((calls, inputs))
        key = tuple((c.function, ins, len(c.values)) for c, ins in zip(calls, inputs, strict=True))
        groups.setdefault(key, []).append(k)

    types: list[str] = [""] * len(programs)
    values: list[Tensor | None] = [None] * len(programs)
    for members in groups.values():
        index = torch.tensor([scene_indices[k] for k in members], dtype=torch.long, device=scenes.present.device)
        ctx = SoftContext(scenes, index)
        calls0, inputs = lists[members[0]]
        outs: list[Tensor] = []
        for pos, (call, ins) in enumerate(zip(calls0, inputs, strict=True)):
            columns = [
                [lists[k][0][pos].values[j] for k in members] for j in range(len(call.values))
            ]
            outs.append(_SOFT[call.function](ctx, *(outs[i] for i in ins), *columns))
        root_type = OPS[calls0[-1].function].output
        for row, k in enumerate(members):
            types[k], values[k] = root_type, outs[-1][row]
    answers = tuple(_answer(t, v, scenes.vocabulary) for t, v in zip(types, values, strict=True))
    return SoftOutputs(tuple(types), tuple(values), answers, scenes.vocabulary)  # type: ignore[arg-type]

