"""Many scenes as padded bitset tensors, for the batched executor.

Object sets are ``uint64`` bitsets (bit ``i`` = object ``i``), so a scene may
hold at most :data:`MAX_OBJECTS` objects here (CLEVR scenes hold 3 to 10);
questions on larger scenes are answered by the single-question executor.

Fields (S scenes, N = max objects, V vocabulary words, A = 4 attributes, R relations)::

    value_bits  uint64 [S, V + 1]  objects with word v; column V ("any") = all objects
    attr_codes  int64  [S, N, A]   word code of attribute a of object i (0 on padding)
    rel_bits    uint64 [S, R, N]   rel_bits[s, r, i] = objects j that are R of object i
    same_bits   uint64 [S, A, N]   objects other than i sharing attribute a with i
    all_bits    uint64 [S]         every object of the scene
    fits        bool   [S]         scene has at most MAX_OBJECTS objects, all CLEVR words

Word codes enumerate ``(attribute, value)`` pairs of the CLEVR vocabulary in
:data:`WORDS` order; relations are coded in :data:`RELATIONS` order.

Why this index stays beside :class:`~reasoning.executor.bound_scene.BoundScene`
(the one per-scene binding, which the single executor, the program sampler and
the question engine share): it is the same bitsets laid out for *many* scenes
at once as padded ``uint64`` arrays, built in a few vectorised passes, so a
batched plan gathers every question's tables with one fancy index. Building it
from ``BoundScene`` objects would bind every scene in Python first, which is the
cost the batched executor exists to avoid; the tests check both forms answer alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import attrgetter

import numpy as np

from perception.scene_graph import SceneGraph
from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS

__all__ = ["SceneTable", "WORDS", "WORD_CODE", "ANY", "ATTRS", "MAX_OBJECTS"]

MAX_OBJECTS = 64  # bits in a uint64 object set
ATTRS: tuple[str, ...] = tuple(ATTRIBUTES)  # attribute order of attr_codes / same_bits
WORDS: tuple[tuple[str, str], ...] = tuple((a, v) for a in ATTRS for v in ATTRIBUTES[a])
WORD_CODE: dict[tuple[str, str], int] = {w: k for k, w in enumerate(WORDS)}
ANY = len(WORDS)  # value_bits column meaning "no constraint"
_CODES = [{v: WORD_CODE[(a, v)] for v in ATTRIBUTES[a]} for a in ATTRS]


def _objects(scenes: Sequence[SceneGraph], fits: np.ndarray) -> tuple:
    """(kept scene ids [K], kept scenes, scene row [T], position in scene [T], codes [T, A]).

    Raises:
        KeyError: an object has a word outside the CLEVR vocabulary.
    """
    kept_ids = np.flatnonzero(fits)
    kept = [scenes[k] for k in kept_ids.tolist()]
    kept_n = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
    objects = [o for sc in kept for o in sc.objects]
    T = len(objects)
    row = np.repeat(kept_ids, kept_n)
    pos = np.arange(T, dtype=np.int64) - np.repeat(np.cumsum(kept_n) - kept_n, kept_n)
    codes = np.empty((T, len(ATTRS)), dtype=np.int64)
    for j, a in enumerate(ATTRS):
        codes[:, j] = np.fromiter(
            map(_CODES[j].__getitem__, map(attrgetter(a), objects)), dtype=np.int64, count=T
        )
    return kept_ids, kept, row, pos, codes


class SceneTable:
    """The bitset tensors of a list of scenes (see the module docstring).

    Args:
        scenes: The scenes; scene ``k`` of the list is row ``k``.
    """

    def __init__(self, scenes: Sequence[SceneGraph]) -> None:
        S, A, R = len(scenes), len(ATTRS), len(RELATIONS)
        self.n_scenes = S
        sizes = np.fromiter(map(len, scenes), dtype=np.int64, count=S)
        fits = sizes <= MAX_OBJECTS
        try:
            kept_ids, kept, row, pos, codes = _objects(scenes, fits)
        except (
            KeyError
        ):  # a word outside the CLEVR vocabulary: those scenes go to the single executor
            for k in np.flatnonzero(fits).tolist():
                objs = scenes[k].objects
                if any(o.attribute(a) not in _CODES[j] for o in objs for j, a in enumerate(ATTRS)):
                    fits[k] = False
            kept_ids, kept, row, pos, codes = _objects(scenes, fits)
        self.fits = fits
        kept_n = sizes[kept_ids]
        N = self.max_objects = max(1, int(kept_n.max(initial=0)))
        bit = np.left_shift(np.uint64(1), pos.astype(np.uint64))

        self.attr_codes = np.zeros((S, N, A), dtype=np.int64)
        self.attr_codes[row, pos] = codes
        self.all_bits = np.zeros(S, dtype=np.uint64)
        np.bitwise_or.at(self.all_bits, row, bit)
        self.value_bits = np.zeros((S, ANY + 1), dtype=np.uint64)
        for j in range(A):
            np.bitwise_or.at(self.value_bits, (row, codes[:, j]), bit)
        self.value_bits[:, ANY] = self.all_bits
        self.same_bits = np.zeros((S, A, N), dtype=np.uint64)
        for j in range(A):
            self.same_bits[row, j, pos] = self.value_bits[row, codes[:, j]] & ~bit

        # ---- relations: relationships[R][i] lists, flattened in (scene, relation, i) order
        rows = [
            js
            for sc, m in zip(kept, kept_n.tolist(), strict=True)
            for r in RELATIONS
            for js in (sc.relationships.get(r) or [[]] * m)
        ]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        targets = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
        block = np.repeat(kept_n, R)  # objects per (scene, relation) block
        row_scene = np.repeat(np.repeat(kept_ids, R), block)
        row_rel = np.repeat(np.tile(np.arange(R, dtype=np.int64), len(kept)), block)
        row_i = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(block) - block, block)
        row_flat = (row_scene * R + row_rel) * N + row_i
        self.rel_bits = np.zeros((S, R, N), dtype=np.uint64)
        np.bitwise_or.at(
            self.rel_bits.reshape(-1),
            np.repeat(row_flat, lengths),
            np.left_shift(np.uint64(1), targets.astype(np.uint64)),
        )

        # flat views for single-gather indexing in the plans
        self.value_flat = self.value_bits.reshape(-1)
        self.attr_flat = self.attr_codes.reshape(-1)
        self.rel_flat = self.rel_bits.reshape(-1)
        self.same_flat = self.same_bits.reshape(-1)

    def __len__(self) -> int:
        return self.n_scenes
