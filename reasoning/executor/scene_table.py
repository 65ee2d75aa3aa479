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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perception.scene_graph import SceneGraph
from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS
from reasoning.executor.bound_scene import bind_scene

__all__ = ["SceneTable", "WORDS", "WORD_CODE", "ANY", "ATTRS", "MAX_OBJECTS"]

MAX_OBJECTS = 64  # bits in a uint64 object set
ATTRS: tuple[str, ...] = tuple(ATTRIBUTES)  # attribute order of attr_codes / same_bits
WORDS: tuple[tuple[str, str], ...] = tuple((a, v) for a in ATTRS for v in ATTRIBUTES[a])
WORD_CODE: dict[tuple[str, str], int] = {w: k for k, w in enumerate(WORDS)}
ANY = len(WORDS)  # value_bits column meaning "no constraint"


class SceneTable:
    """The bitset tensors of a list of scenes (see the module docstring).

    Args:
        scenes: The scenes; scene ``k`` of the list is row ``k``.
    """

    def __init__(self, scenes: Sequence[SceneGraph]) -> None:
        self.n_scenes = len(scenes)
        sizes = [len(s) for s in scenes]
        self.fits = np.array([n <= MAX_OBJECTS for n in sizes], dtype=bool)
        n_max = max([n for n in sizes if n <= MAX_OBJECTS], default=0)
        self.max_objects = max(1, n_max)
        N = self.max_objects
        value_rows, code_rows, rel_rows, same_rows, all_rows = [], [], [], [], []
        codes_of = [{v: WORD_CODE[(a, v)] for v in ATTRIBUTES[a]} for a in ATTRS]
        empty_codes = [[0] * len(ATTRS)] * N
        empty_row = [0] * N
        for k, (scene, n) in enumerate(zip(scenes, sizes, strict=False)):
            bs = bind_scene(scene) if n <= MAX_OBJECTS else None
            if bs is not None and any(len(bs.bits[a]) != len(ATTRIBUTES[a]) for a in ATTRS):
                bs = None  # a word outside the CLEVR vocabulary: leave it to the single executor
                self.fits[k] = False
            if bs is None:
                value_rows.append([0] * (ANY + 1))
                code_rows.append(empty_codes)
                rel_rows.append([empty_row] * len(RELATIONS))
                same_rows.append([empty_row] * len(ATTRS))
                all_rows.append(0)
                continue
            pad = [0] * (N - n)
            value_rows.append([bs.bits[a].get(v, 0) for a, v in WORDS] + [bs.all])
            columns = [[codes_of[k].get(v, 0) for v in bs.values[a]] for k, a in enumerate(ATTRS)]
            code_rows.append(
                [list(c) for c in zip(*columns, strict=False)] + [[0] * len(ATTRS)] * (N - n)
            )
            rel_rows.append(
                [list(bs.rel.get(r, ())) + pad if r in bs.rel else empty_row for r in RELATIONS]
            )
            same_rows.append([list(bs.same[a]) + pad for a in ATTRS])
            all_rows.append(bs.all)
        S, A, R = self.n_scenes, len(ATTRS), len(RELATIONS)
        self.value_bits = np.array(value_rows, dtype=np.uint64).reshape(S, ANY + 1)
        self.attr_codes = np.array(code_rows, dtype=np.int64).reshape(S, N, A)
        self.rel_bits = np.array(rel_rows, dtype=np.uint64).reshape(S, R, N)
        self.same_bits = np.array(same_rows, dtype=np.uint64).reshape(S, A, N)
        self.all_bits = np.array(all_rows, dtype=np.uint64).reshape(S)
        # flat views for single-gather indexing in the plans
        self.value_flat = self.value_bits.reshape(-1)
        self.attr_flat = self.attr_codes.reshape(-1)
        self.rel_flat = self.rel_bits.reshape(-1)
        self.same_flat = self.same_bits.reshape(-1)

    def __len__(self) -> int:
        return self.n_scenes
