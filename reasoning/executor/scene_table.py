"""Many scenes as padded bitset tensors, for the batched executor and node-list answering.

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

``value_bits``, ``all_bits`` and ``fits`` are built when the table is made (about
3 us per CLEVR scene: the objects' words are read with C-level ``attrgetter`` /
``dict.get`` maps and OR-ed into place with one ``np.bitwise_or.at``);
``attr_codes``, ``same_bits`` and ``rel_bits`` when first read (the relation
rows, about 80 indices per CLEVR scene, cost twice the rest together, and a
batch without ``relate`` never reads them).  Single-mode answering of node lists
(:mod:`reasoning.executor.node_lists`) reads :func:`value_rows`, the same value
bitsets as Python ints per scene, built in Python, in place of a ``BoundScene``
per scene.

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

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property, reduce
from itertools import chain, cycle, repeat
from operator import attrgetter, itemgetter, or_

import numpy as np

from perception.scene_graph import SceneGraph
from physics.worlds.clevr_properties import ATTRIBUTES, RELATIONS

__all__ = ["SceneTable", "RowBits", "value_rows", "WORDS", "WORD_CODE", "ANY", "ATTRS", "MAX_OBJECTS"]

MAX_OBJECTS = 64  # bits in a uint64 object set
ATTRS: tuple[str, ...] = tuple(ATTRIBUTES)  # attribute order of attr_codes / same_bits
WORDS: tuple[tuple[str, str], ...] = tuple((a, v) for a in ATTRS for v in ATTRIBUTES[a])
WORD_CODE: dict[tuple[str, str], int] = {w: k for k, w in enumerate(WORDS)}
ANY = len(WORDS)  # value_bits column meaning "no constraint"
_CODES = [{v: WORD_CODE[(a, v)] for v in ATTRIBUTES[a]} for a in ATTRS]


_OBJECTS, _RELATIONSHIPS = attrgetter("objects"), attrgetter("relationships")
_WORDS_OF = attrgetter(*ATTRS) if len(ATTRS) > 1 else (lambda o: (getattr(o, ATTRS[0]),))
_ROWS_OF = itemgetter(*RELATIONS) if len(RELATIONS) > 1 else (lambda r: (r[RELATIONS[0]],))


_BIT = {i: 1 << i for i in range(MAX_OBJECTS)}  # object index -> its bit


class RowBits(dict):
    """A relationship row (a tuple of object indices) -> its bitset, computed on first use.

    OR-ing a row's bits one index at a time costs several times one lookup, and
    CLEVR scenes of up to ten objects share most of their rows.  A row holding an
    index outside ``0..63`` (or not an integer) raises ``KeyError`` and is not stored.
    """

    def __missing__(self, row: tuple) -> int:
        bits = self[row] = reduce(or_, map(_BIT.__getitem__, row), 0)
        return bits


def _block(relationships: Mapping, name: str, m: int) -> list:
    """``relationships[name]`` as exactly ``m`` rows (a missing relation: empty rows)."""
    rows = list(relationships.get(name) or ())[:m]
    return rows + [[]] * (m - len(rows))


def _value_rows_source(n_attrs: int) -> str:
    """Source of :func:`value_rows`, unrolled over the attributes (as namedtuple writes its)."""
    names = ", ".join(f"a{k}" for k in range(n_attrs))
    ors = "; ".join(f"vb[C{k}[a{k}]] |= bit" for k in range(n_attrs))
    return f"""def value_rows(scenes):
    out = []
    for objects in map(OBJECTS, scenes):
        if len(objects) > MAX_OBJECTS:
            out.append(None)
            continue
        vb = [0] * (ANY + 1)
        bit = 1
        try:
            for ({names},) in map(WORDS_OF, objects):
                {ors}
                bit <<= 1
        except (KeyError, TypeError):  # a word outside the vocabulary
            out.append(None)
            continue
        vb[ANY] = bit - 1
        out.append(vb)
    return out
"""


def _make_value_rows() -> Callable[[Sequence[SceneGraph]], list[list[int] | None]]:
    env: dict[str, object] = {
        "OBJECTS": _OBJECTS,
        "WORDS_OF": _WORDS_OF,
        "MAX_OBJECTS": MAX_OBJECTS,
        "ANY": ANY,
        **{f"C{k}": codes for k, codes in enumerate(_CODES)},
    }
    exec(_value_rows_source(len(ATTRS)), env)  # noqa: S102 -- source built here from ATTRS
    fn: Callable = env["value_rows"]  # type: ignore[assignment]
    fn.__doc__ = """``value_bits`` of each scene as a list of Python ints (``None``: the scene does not fit).

    Row ``k`` equals ``SceneTable(scenes).value_bits[k]`` (where ``fits[k]``),
    built in Python one object at a time: for single-question answering, which
    reads the rows as Python ints, this is cheaper than building the arrays and
    converting them back (about 3 against 5 us per CLEVR scene).
    """
    return fn


value_rows = _make_value_rows()


class SceneTable:
    """The bitset tensors of a list of scenes (see the module docstring).

    ``value_bits``, ``all_bits`` and ``fits`` are built at once (every plan and
    the single-question answering of :mod:`~reasoning.executor.node_lists` read
    them); ``attr_codes``, ``same_bits`` and ``rel_bits`` (and their flat views)
    are built when first read, since many batches read none of them.

    Args:
        scenes: The scenes; scene ``k`` of the list is row ``k``.
    """

    def __init__(self, scenes: Sequence[SceneGraph]) -> None:
        S, A = len(scenes), len(ATTRS)
        self.n_scenes = S
        self.objects: list = list(map(_OBJECTS, scenes))  # each scene's objects
        self.relationships: list = list(map(_RELATIONSHIPS, scenes))  # each scene's own
        sizes = np.fromiter(map(len, self.objects), dtype=np.int64, count=S)
        objects = list(chain.from_iterable(self.objects))
        T = len(objects)
        row = np.repeat(np.arange(S, dtype=np.int64), sizes)
        pos = np.arange(T, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        codes = np.fromiter(
            map(dict.get, cycle(_CODES), chain.from_iterable(map(_WORDS_OF, objects)), repeat(-1)),
            dtype=np.int64,
            count=T * A,
        ).reshape(T, A)
        # a scene fits: at most MAX_OBJECTS objects, every word in the CLEVR vocabulary
        fits = sizes <= MAX_OBJECTS
        fits[row[(codes < 0).any(axis=1)]] = False
        keep = fits[row]
        if not keep.all():
            row, pos, codes = row[keep], pos[keep], codes[keep]
        self.fits = fits
        self._sizes = sizes
        kept_n = sizes[fits]
        self.max_objects = max(1, int(kept_n.max(initial=0)))
        self._row, self._pos, self._codes = row, pos, codes
        self._bit = np.left_shift(np.uint64(1), pos.astype(np.uint64))

        full = np.where(sizes >= 64, np.uint64(2**64 - 1), 0).astype(np.uint64)
        small = sizes < 64
        full[small] = np.left_shift(np.uint64(1), sizes[small].astype(np.uint64)) - np.uint64(1)
        self.all_bits = np.where(fits, full, np.uint64(0)).astype(np.uint64)
        self.value_bits = np.zeros((S, ANY + 1), dtype=np.uint64)
        self.value_flat = self.value_bits.reshape(-1)
        if T:
            cells = (row * (ANY + 1))[:, None] + codes
            np.bitwise_or.at(self.value_flat, cells.reshape(-1), np.repeat(self._bit, A))
        self.value_bits[:, ANY] = self.all_bits

    @cached_property
    def attr_codes(self) -> np.ndarray:
        """``int64 [S, N, A]``: word code of attribute a of object i (0 on padding)."""
        out = np.zeros((self.n_scenes, self.max_objects, len(ATTRS)), dtype=np.int64)
        out[self._row, self._pos] = self._codes
        return out

    @cached_property
    def same_bits(self) -> np.ndarray:
        """``uint64 [S, A, N]``: objects other than i sharing attribute a with i."""
        out = np.zeros((self.n_scenes, len(ATTRS), self.max_objects), dtype=np.uint64)
        row, pos, codes, bit = self._row, self._pos, self._codes, self._bit
        for j in range(len(ATTRS)):
            out[row, j, pos] = self.value_bits[row, codes[:, j]] & ~bit
        return out

    @cached_property
    def rel_bits(self) -> np.ndarray:
        """``uint64 [S, R, N]``: ``rel_bits[s, r, i]`` = objects j that are R of object i."""
        S, R, N = self.n_scenes, len(RELATIONS), self.max_objects
        kept_ids = np.flatnonzero(self.fits)
        kept_n = self._sizes[kept_ids]
        rels = [self.relationships[k] for k in kept_ids.tolist()]
        try:  # every scene holds every relation with one row per object (SceneGraph's own)
            blocks = list(chain.from_iterable(map(_ROWS_OF, rels)))
            ok = np.array_equal(
                np.fromiter(map(len, blocks), dtype=np.int64, count=len(blocks)),
                np.repeat(kept_n, R),
            )
        except KeyError:
            ok = False
        if not ok:  # a relation missing (an empty table then) or rows of another length
            blocks = [
                _block(r, name, m)
                for r, m in zip(rels, kept_n.tolist(), strict=True)
                for name in RELATIONS
            ]
        rows = list(chain.from_iterable(blocks))
        block = np.repeat(kept_n, R)  # objects per (scene, relation) block
        row_scene = np.repeat(np.repeat(kept_ids, R), block)
        row_rel = np.repeat(np.tile(np.arange(R, dtype=np.int64), len(rels)), block)
        row_i = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(block) - block, block)
        cell = (row_scene * R + row_rel) * N + row_i
        out = np.zeros((S, R, N), dtype=np.uint64)
        try:  # each distinct row OR-ed once (CLEVR scenes share most of their rows)
            bits = np.fromiter(
                map(RowBits().__getitem__, map(tuple, rows)), dtype=np.uint64, count=len(rows)
            )
            out.reshape(-1)[cell] = bits
            return out
        except (KeyError, TypeError, OverflowError):  # an index outside 0..63: the general path
            pass
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        targets = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
        np.bitwise_or.at(
            out.reshape(-1),
            np.repeat(cell, lengths),
            np.left_shift(np.uint64(1), targets.astype(np.uint64)),
        )
        return out

    @cached_property
    def attr_flat(self) -> np.ndarray:
        return self.attr_codes.reshape(-1)

    @cached_property
    def rel_flat(self) -> np.ndarray:
        return self.rel_bits.reshape(-1)

    @cached_property
    def same_flat(self) -> np.ndarray:
        return self.same_bits.reshape(-1)

    def __len__(self) -> int:
        return self.n_scenes
