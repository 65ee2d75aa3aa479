"""A scene bound once for fast symbolic execution: attribute and relation bitsets.

Object sets are Python ints used as bitsets over object indices (bit ``i`` set
means object ``i`` is in the set), so a filter is one AND, a union one OR and
``count`` is ``int.bit_count()``.  Binding a scene precomputes, once:

    all          int                        every object of the scene
    bits[a][v]   int  per attribute a, value v   objects whose attribute a is v
    values[a]    tuple[str] length N         attribute a of each object
    rel[R]       tuple[int] length N         rel[R][i] = objects j that are R of i
                                            (``relationships[R][i]`` of the scene)
    same[a]      tuple[int] length N         objects other than i sharing attribute a

The idea of binding the scene once and dispatching operations by name follows
the Concepts library's domain executor; the semantics follow the CLEVR question
engine (Johnson et al., CVPR 2017).

This is the one per-scene index of the project: the symbolic executor, the
program sampler and the question generator's engine
(:class:`reasoning.questions.engine.SceneIndex`) all read it;
:class:`~reasoning.executor.scene_table.SceneTable` holds the same bitsets for
many scenes at once as arrays, for the batched executor.

Bindings are cached per :class:`~perception.scene_graph.SceneGraph` object in a
small LRU keyed by ``id`` and guarded by a weak reference, so executing many
questions on the same scene binds it once and a collected scene never leaks.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Mapping

from perception.scene_graph import SceneGraph
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = ["BoundScene", "bind_scene", "clear_binding_cache", "CACHE_SIZE"]

CACHE_SIZE = 8192  # scenes kept bound; CLEVR's val split has 15k scenes, a batch rarely spans more


class BoundScene:
    """Bitset tables of one scene (see the module docstring for the fields).

    Args:
        scene: The validated scene.
        vocabulary: Attribute values that always get a (possibly empty) bitset,
            so filtering on a value absent from this scene gives the empty set
            while an unknown word still fails the lookup.
    """

    __slots__ = ("name", "n", "all", "bits", "values", "rel", "same", "__weakref__")

    def __init__(
        self, scene: SceneGraph, vocabulary: Mapping[str, tuple[str, ...]] = ATTRIBUTES
    ) -> None:
        objects = scene.objects
        n = len(objects)
        self.name = scene.name  # no strong reference: the cache must not keep scenes alive
        self.n = n
        self.all = (1 << n) - 1
        self.values: dict[str, tuple[str, ...]] = {
            a: tuple(o.attribute(a) for o in objects) for a in vocabulary
        }
        self.bits: dict[str, dict[str, int]] = {}
        self.same: dict[str, tuple[int, ...]] = {}
        for a, allowed in vocabulary.items():
            table = dict.fromkeys(allowed, 0)
            for i, v in enumerate(self.values[a]):
                table[v] = table.get(v, 0) | (1 << i)
            self.bits[a] = table
            self.same[a] = tuple(table[v] & ~(1 << i) for i, v in enumerate(self.values[a]))
        self.rel: dict[str, tuple[int, ...]] = {}
        for name, rows in scene.relationships.items():
            masks = []
            for js in rows:
                m = 0
                for j in js:
                    m |= 1 << j
                masks.append(m)
            self.rel[name] = tuple(masks)

    def members(self, objs: int) -> list[int]:
        """The object indices of bitset ``objs``, ascending."""
        out = []
        i = 0
        while objs:
            if objs & 1:
                out.append(i)
            objs >>= 1
            i += 1
        return out


_CACHE: OrderedDict[int, tuple[weakref.ref, BoundScene]] = OrderedDict()


def bind_scene(scene: SceneGraph) -> BoundScene:
    """The cached :class:`BoundScene` of ``scene`` (bound on first use)."""
    key = id(scene)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is scene:
        _CACHE.move_to_end(key)
        return hit[1]
    bound = BoundScene(scene)
    _CACHE[key] = (weakref.ref(scene), bound)
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return bound


def clear_binding_cache() -> None:
    """Forget every cached binding (for benchmarks that time binding itself)."""
    _CACHE.clear()
