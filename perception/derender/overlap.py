"""Drop detections that would overlap another object in 3D (a test-time choice of the derenderer).

CLEVR places objects on the ground with at least ``min_dist`` (0.25) between their
surfaces, so two real objects never share ground: the distance between their
centres on the ground is at least the sum of their radii.  The derenderer places
each detection on the ground (:meth:`~perception.derender.derenderer.Derenderer.place_objects`);
two detections that end up overlapping there cannot both be objects.  On Blender
renders such pairs are a floor shadow read as a small object beside the object that
casts it, or a second detection on a half-hidden object
(docs/results/derender.md, "Seventeenth session").  :func:`keep_apart` keeps, among
overlapping detections, the one with the larger mask -- the greedy order of
non-maximum suppression, on the ground instead of in the image.  With
``keep_score``, a detection whose centre score (its heat-map peak) is at least that
is kept whatever it overlaps: on the development seeds the shadows and second
detections the rule removes have peaks of 0.38-0.60 and the real objects it wrongly
dropped 0.80-0.88, an overlap that comes from a misplaced centre
(docs/results/derender.md, "Twentieth session").

>>> keep_apart([(0.0, 0.0), (0.5, 0.0), (3.0, 0.0)], [0.7, 0.35, 0.35], [900, 80, 300], min_gap=0.0)
[0, 2]
>>> keep_apart([(0.0, 0.0), (0.5, 0.0)], [0.7, 0.35], [900, 80], scores=[0.9, 0.85], keep_score=0.7)
[0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from physics.errors import ConfigError

__all__ = ["keep_apart"]


def keep_apart(
    ground_xy: Sequence[Sequence[float]] | np.ndarray,
    radii: Sequence[float] | np.ndarray,
    areas: Sequence[float] | np.ndarray,
    *,
    min_gap: float = 0.0,
    scores: Sequence[float] | np.ndarray | None = None,
    keep_score: float | None = None,
) -> list[int]:
    """Indices (ascending) of the detections kept when no two may be closer than ``min_gap``.

    Args:
        ground_xy: float [K, 2] each detection's centre on the ground (scene units).
        radii: float [K] each detection's radius (its predicted size class's).
        areas: float [K] each detection's mask area in pixels; larger masks are kept first
            (ties: the earlier detection).
        min_gap: the least gap between two kept objects' surfaces, ``|c_i - c_j| - r_i - r_j``;
            0 forbids overlap only (CLEVR's layouts keep 0.25; predicted centres are off by
            ~0.14 each, so 0 leaves room for that error).
        scores: float [K] each detection's centre score (heat-map probability); needed with
            ``keep_score``.
        keep_score: detections scoring at least this are kept even when they overlap (they
            still count against the later ones); None keeps none that way.

    Raises:
        ConfigError: ``min_gap`` or ``keep_score`` is not a finite number, ``keep_score`` comes
            without ``scores``, or the inputs differ in length or shape.
    """
    if not np.isfinite(min_gap):
        raise ConfigError(f"keep_apart: min_gap must be a finite number, got {min_gap!r}")
    if keep_score is not None and not np.isfinite(keep_score):
        raise ConfigError(f"keep_apart: keep_score must be a finite number or None, got {keep_score!r}")
    if keep_score is not None and scores is None:
        raise ConfigError("keep_apart: keep_score needs the detections' scores")
    xy = np.asarray(ground_xy, dtype=np.float64).reshape(-1, 2) if len(ground_xy) else np.zeros((0, 2))
    r = np.asarray(radii, dtype=np.float64).reshape(-1)
    a = np.asarray(areas, dtype=np.float64).reshape(-1)
    if not len(xy) == len(r) == len(a):
        raise ConfigError(f"keep_apart: {len(xy)} centres, {len(r)} radii and {len(a)} areas; expected one each")
    s = None if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if s is not None and len(s) != len(xy):
        raise ConfigError(f"keep_apart: {len(s)} scores for {len(xy)} detections; expected one each")
    order = sorted(range(len(xy)), key=lambda k: (-a[k], k))
    kept: list[int] = []
    for k in order:
        if keep_score is not None and s is not None and s[k] >= keep_score:
            kept.append(k)
        elif all(np.hypot(*(xy[k] - xy[j])) - r[k] - r[j] >= min_gap for j in kept):
            kept.append(k)
    return sorted(kept)
