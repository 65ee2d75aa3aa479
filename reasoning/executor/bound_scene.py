"""A scene bound once for fast symbolic execution: attribute and relation bitsets.

Object sets are Python ints used as bitsets over object indices (bit ``i`` set
means object ``i`` is in the set), so a filter is one AND, a union one OR and
``count`` is ``int.bit_count()``.  Binding a scene precomputes, once:

    all          int                        every object of the scene
    bits[a][v]   int  per attribute a, value v   objects whose attribute a is v
    values[a]    tuple[str] length N         attribute a of each object
    rel[R]       int per object i            rel[R][i] = objects j that are R of i
                                            (``relationships[R][i]`` of the scene)
    same[a]      int per object i            objects other than i sharing attribute a

``rel`` and ``same`` rows are computed when first read (most are never read,
and binding every row cost more than answering the ten questions CLEVR asks
about a scene).

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
from collections.abc import Callable, Mapping
from functools import partial
from operator import attrgetter
from typing import Any

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

    __slots__ = ("name", "n", "all", "bits", "values", "relationships", "_rel", "_same", "__weakref__")

    def __init__(
        self, scene: SceneGraph, vocabulary: Mapping[str, tuple[str, ...]] = ATTRIBUTES
    ) -> None:
        objects = scene.objects
        n = len(objects)
        self.name = scene.name  # no strong reference: the cache must not keep scenes alive
        self.n = n
        self.all = (1 << n) - 1
        self.values: dict[str, tuple[str, ...]] = {
            a: tuple(map(_GETTERS.get(a) or attrgetter(a), objects)) for a in vocabulary
        }
        self.bits: dict[str, dict[str, int]] = {}
        bit = _BITS[:n] if n <= len(_BITS) else [1 << i for i in range(n)]
        for a, allowed in vocabulary.items():
            table = dict.fromkeys(allowed, 0)
            for v, b in zip(self.values[a], bit, strict=True):
                if v in table:
                    table[v] |= b
                else:  # a word outside the vocabulary has its bitset too
                    table[v] = b
            self.bits[a] = table
        self.relationships = scene.relationships  # relationships[R][i]: the objects j
        self._rel: _Lazy | None = None
        self._same: _Lazy | None = None

    @property
    def rel(self) -> Mapping[str, Mapping[int, int]]:
        """``rel[R][i]``: the bitset of ``relationships[R][i]`` (rows made when first read)."""
        if self._rel is None:
            relationships = self.relationships
            self._rel = _Lazy(lambda r: _Lazy(partial(_related, relationships[r])))
        return self._rel

    @property
    def same(self) -> Mapping[str, Mapping[int, int]]:
        """``same[a][i]``: the other objects sharing object i's attribute a (made when first read)."""
        if self._same is None:
            self._same = _Lazy(self._same_rows)
        return self._same

    def _same_rows(self, attr: str) -> _Lazy:
        return _Lazy(partial(_same, self.bits[attr], self.values[attr]))

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


_BITS = [1 << i for i in range(64)]
_GETTERS = {a: attrgetter(a) for a in ATTRIBUTES}


def _related(rows: list[list[int]], i: int) -> int:
    """``rel[R][i]``: the bitset of ``relationships[R][i]``."""
    m = 0
    for j in rows[i]:
        m |= 1 << j
    return m


def _same(table: dict[str, int], column: tuple[str, ...], i: int) -> int:
    """``same[a][i]``: the other objects sharing object i's attribute."""
    return table[column[i]] & ~(1 << i)


class _Lazy(dict):
    """A dict whose entries are computed on first use (``make(key)``), then kept.

    ``rel`` and ``same`` are these, per relation or attribute and then per
    object: a question reads few of a scene's rows.  A bad key raises what the
    scene's own tables raise (``KeyError``, ``IndexError``, ``TypeError``).
    """

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[Any], Any]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self._make(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        """``self[key]`` (computed if need be), or ``default`` where the scene has no such key."""
        try:
            return self[key]
        except (KeyError, IndexError, TypeError):
            return default


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
