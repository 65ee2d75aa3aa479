"""The generator's own evaluator: CLEVR functions on a bound scene, for partial programs.

The question generator has to run *partial* template programs thousands of
times per scene (to check constraints and to enumerate parameter values, as
CLEVR's ``generate_questions.py`` does).  It reads the scene through the same
binding as the executor (:class:`~reasoning.executor.bound_scene.BoundScene`:
one integer bitset per attribute value, relation and ``same_*`` row), and adds
what only the search needs: every filter key present in the scene and a memo
of parameter options (:class:`SceneIndex`).

It is the ``question engine`` mode of the function table
(:mod:`reasoning.dsl.function_table`; declared in :mod:`reasoning.questions.search`,
which expands the composite nodes).  Its implementations differ from the
executor's in calling convention only, which is why they are a mode of their
own: an invalid step *returns* :data:`INVALID` instead of raising, so the
search pays for no exception on the branches it drops, and a word the binding
does not hold (a vocabulary from another ``metadata.json``) selects nothing
instead of failing.

Values by type: ``ObjectSet`` -> ``int`` bitmask; ``Object`` -> object index;
``Integer`` -> ``int``; ``Bool`` -> ``bool``; attributes -> ``str``.

The semantics are CLEVR's question engine: ``same_*`` excludes the object
itself; ``relate`` reads ``scene.relationships[R][i]`` (the objects that are R
of object ``i``).  The tests check this evaluator against
:mod:`reasoning.executor` on every generated question.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import product
from typing import Any

from perception.scene_graph import SceneGraph
from reasoning.executor.bound_scene import bind_scene
from reasoning.executor.ops import SLOTS

__all__ = [
    "INVALID",
    "SceneIndex",
    "apply",
    "run_nodes",
    "FUNCTIONS",
    "EngineFunction",
    "ATTRS",
    "FilterKey",
]

INVALID = "__INVALID__"  # CLEVR's marker for an invalid execution

# Attribute order of filter keys: the composite nodes' side-input order in the catalogue.
ATTRS: tuple[str, ...] = SLOTS

FilterKey = tuple[str | None, str | None, str | None, str | None]  # (size, color, material, shape)

# An implementation of the question-engine mode: (index, input values, side inputs) -> output.
EngineFunction = Callable[["SceneIndex", Sequence[Any], Sequence[str]], Any]


class SceneIndex:
    """A scene's executor binding plus what the search needs, built once per scene.

    Attributes:
        n: Number of objects.
        all: Bitmask of every object.
        bits: attribute -> value -> bitmask (the binding's, see ``BoundScene``).
        values: attribute -> per object its value.
        rel: Relation name -> per object ``i`` the bitmask of objects that are R of i.
        same: attribute -> per object ``i`` the other objects sharing its value.
        filters: Every filter key that matches at least one object -> its bitmask,
            including the empty key ``(None, None, None, None)`` (all objects).
            Keys are in a fixed order (objects in order, then the 16 attribute masks),
            so enumeration is deterministic.
    """

    __slots__ = (
        "n",
        "all",
        "bits",
        "values",
        "rel",
        "same",
        "filters",
        "scene",
        "cache",
        "_absent",
    )

    def __init__(self, scene: SceneGraph) -> None:
        bound = bind_scene(scene)
        self.scene = scene
        self._absent = None  # filter keys matching no object, filled lazily by the search
        self.cache: dict[Any, Any] = {}  # the search's per-scene memo of filter options
        self.n, self.all = bound.n, bound.all
        self.bits, self.values, self.rel, self.same = (
            bound.bits,
            bound.values,
            bound.rel,
            bound.same,
        )
        self.filters: dict[FilterKey, int] = {}
        keep_masks = list(product((False, True), repeat=len(ATTRS)))
        for i, vals in enumerate(zip(*(self.values[a] for a in ATTRS), strict=True)):
            for keep in keep_masks:
                key = tuple(v if k else None for v, k in zip(vals, keep, strict=True))
                self.filters[key] = self.filters.get(key, 0) | (1 << i)  # type: ignore[index]

    def filter_mask(self, key: Sequence[str | None]) -> int:
        """Objects matching a filter key (``None`` entries match anything)."""
        m = self.all
        for a, v in zip(ATTRS, key, strict=True):
            if v is not None:
                m &= self.bits[a].get(v, 0)
        return m


def _unique(ix: SceneIndex, args: Sequence[Any], values: Sequence[str]) -> Any:
    m = args[0]
    if m == 0 or m & (m - 1):
        return INVALID
    return m.bit_length() - 1


def _filter(attr: str) -> EngineFunction:
    def fn(ix: SceneIndex, args: Sequence[Any], values: Sequence[str]) -> Any:
        return args[0] & ix.bits[attr].get(values[0], 0)

    return fn


def _query(attr: str) -> EngineFunction:
    def fn(ix: SceneIndex, args: Sequence[Any], values: Sequence[str]) -> Any:
        return ix.values[attr][args[0]]

    return fn


def _same(attr: str) -> EngineFunction:
    def fn(ix: SceneIndex, args: Sequence[Any], values: Sequence[str]) -> Any:
        return ix.same[attr][args[0]]

    return fn


def _relate(ix: SceneIndex, args: Sequence[Any], values: Sequence[str]) -> Any:
    rows = ix.rel.get(values[0])
    return INVALID if rows is None else rows[args[0]]


def _equal(ix: SceneIndex, args: Sequence[Any], values: Sequence[str]) -> Any:
    return args[0] == args[1]


FUNCTIONS: Mapping[str, EngineFunction] = {
    "scene": lambda ix, args, values: ix.all,
    "unique": _unique,
    "relate": _relate,
    "union": lambda ix, args, values: args[0] | args[1],
    "intersect": lambda ix, args, values: args[0] & args[1],
    "count": lambda ix, args, values: args[0].bit_count(),
    "exist": lambda ix, args, values: args[0] != 0,
    "less_than": lambda ix, args, values: args[0] < args[1],
    "greater_than": lambda ix, args, values: args[0] > args[1],
    **{f"filter_{a}": _filter(a) for a in ATTRS},
    **{f"query_{a}": _query(a) for a in ATTRS},
    **{f"same_{a}": _same(a) for a in ATTRS},
    **{f"equal_{a}": _equal for a in (*ATTRS, "integer", "object")},
}


def apply(ix: SceneIndex, function: str, args: Sequence[Any], values: Sequence[str] = ()) -> Any:
    """One basic function on already-evaluated inputs (:data:`INVALID` propagates)."""
    if any(a is INVALID for a in args):
        return INVALID
    return FUNCTIONS[function](ix, args, values)


def run_nodes(
    ix: SceneIndex,
    nodes: Sequence[Mapping[str, Any]],
    functions: Mapping[str, EngineFunction] | None = None,
) -> list[Any]:
    """Run a basic CLEVR node list (``function``, ``inputs``, ``value_inputs``).

    Args:
        ix: The indexed scene.
        nodes: The node list.
        functions: The implementations to use (default :data:`FUNCTIONS`; a copy
            with more entries runs operations a catalogue extension adds).

    Returns every node's output; stops at the first invalid node, as CLEVR does,
    so the last element is the answer or :data:`INVALID`.
    """
    table = FUNCTIONS if functions is None else functions
    outs: list[Any] = []
    for n in nodes:  # inputs are never INVALID here: the loop stops at the first one
        out = table[n["function"]](ix, [outs[i] for i in n["inputs"]], n.get("value_inputs", ()))
        outs.append(out)
        if out is INVALID:
            break
    return outs
