"""Scoring a derenderer: match predicted objects to ground truth, then count.

Objects are matched one-to-one with the Hungarian algorithm (Kuhn, 1955; scipy's
``linear_sum_assignment``) on the distance between image positions
(``pixel_coords``) when both scenes carry them, else between 3D positions; a
pair further apart than the threshold is no match.  Detection precision and
recall count matches; attribute accuracy and position error are measured over
matched pairs, as NS-VQA reports its derendering accuracy (Yi et al., 2018,
Sec. 4.1).

>>> from perception.scene_graph import SceneGraph, SceneObject
>>> a = SceneObject("cube", "red", "metal", "large", (0.0, 0.0, 0.7))
>>> b = SceneObject("sphere", "blue", "rubber", "small", (2.0, 1.0, 0.35))
>>> match_objects(SceneGraph((b, a)), SceneGraph((a, b)))
[(0, 1), (1, 0)]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.scene_graph import SceneGraph
from physics.errors import ConfigError, DataError
from physics.worlds.clevr_properties import ATTRIBUTES

__all__ = ["match_objects", "perception_metrics", "MAX_PIXEL_DISTANCE", "MAX_3D_DISTANCE"]

# CLEVR keeps object surfaces >= 0.25 apart, so centres of two small objects are
# >= 0.95 apart: a prediction within half of that belongs to one object only.
MAX_3D_DISTANCE = 0.5
# At CLEVR's 480 x 320 a small object spans ~25 px; 20 px keeps neighbours apart.
MAX_PIXEL_DISTANCE = 20.0


def _distances(pred: SceneGraph, gt: SceneGraph, by: str) -> np.ndarray:
    if by == "pixel":
        p = np.array([o.pixel_coords[:2] for o in pred.objects], dtype=float).reshape(-1, 2)
        g = np.array([o.pixel_coords[:2] for o in gt.objects], dtype=float).reshape(-1, 2)
    else:
        p = np.array([o.position for o in pred.objects], dtype=float).reshape(-1, 3)
        g = np.array([o.position for o in gt.objects], dtype=float).reshape(-1, 3)
    return np.linalg.norm(p[:, None, :] - g[None, :, :], axis=-1)


def _resolve_by(pred: SceneGraph, gt: SceneGraph, by: str) -> str:
    if by not in ("auto", "pixel", "3d"):
        raise ConfigError(f"match_objects: by must be 'auto', 'pixel' or '3d', got {by!r}")
    has_pixels = all(o.pixel_coords is not None for o in (*pred.objects, *gt.objects))
    if by == "pixel" and not has_pixels:
        raise DataError(f"match_objects: by='pixel' but {pred.name} or {gt.name} lacks pixel_coords")
    if by == "auto":
        return "pixel" if has_pixels else "3d"
    return by


def match_objects(
    pred: SceneGraph,
    gt: SceneGraph,
    *,
    by: str = "auto",
    max_distance: float | None = None,
) -> list[tuple[int, int]]:
    """One-to-one matching of predicted to ground-truth objects.

    Args:
        pred: predicted scene.
        gt: ground-truth scene.
        by: ``"pixel"`` (image distance of ``pixel_coords``), ``"3d"`` (distance
            of ``3d_coords``) or ``"auto"`` (pixel when every object of both
            scenes has ``pixel_coords``, else 3D).
        max_distance: pairs further apart are not matched; defaults to
            :data:`MAX_PIXEL_DISTANCE` or :data:`MAX_3D_DISTANCE`.

    Returns:
        (pred index, gt index) pairs sorted by pred index.
    """
    by = _resolve_by(pred, gt, by)
    if max_distance is None:
        max_distance = MAX_PIXEL_DISTANCE if by == "pixel" else MAX_3D_DISTANCE
    if len(pred) == 0 or len(gt) == 0:
        return []
    d = _distances(pred, gt, by)
    cost = np.where(d <= max_distance, d, 1e6)  # forbidden pairs are never preferred
    rows, cols = linear_sum_assignment(cost)
    return sorted((int(i), int(j)) for i, j in zip(rows, cols, strict=True) if d[i, j] <= max_distance)


def perception_metrics(
    preds: Sequence[SceneGraph],
    gts: Sequence[SceneGraph],
    *,
    by: str = "auto",
    max_distance: float | None = None,
) -> dict:
    """Detection, attribute and position scores of predicted scenes.

    Args:
        preds: predicted scenes, one per ground-truth scene, same order.
        gts: ground-truth scenes.
        by, max_distance: passed to :func:`match_objects`.

    Returns:
        ``{"detection_precision", "detection_recall", "attribute_accuracy":
        {shape, color, material, size, all}, "attribute_accuracy_by_shape": {true
        shape: {n, shape, color, material, size, all}} (the same scores over the
        matched objects of each true shape: under CLEVR-CoGenT, condition B gives
        cubes and cylinders the colours they never wore in A, so colour and shape
        on them, against spheres, is the direct test of composition),
        "attribute_confusion": {attribute: {true value: {predicted value: n}}}
        over the matched objects (what a wrong value was taken for),
        "position_error" (mean 3D distance
        of matched pairs, scene units), "pixel_error" (mean image distance, when
        pixel_coords exist), "n_scenes", "n_pred", "n_gt", "n_matched",
        "scene_accuracy" (share of scenes whose every object is found with all
        attributes right and nothing extra)}``.  Accuracies are fractions in
        [0, 1]; a value with nothing to average over is None (JSON null).
    """
    if len(preds) != len(gts):
        raise DataError(f"perception_metrics: {len(preds)} predicted scenes but {len(gts)} ground-truth scenes")
    n_pred = n_gt = n_matched = 0
    correct = {name: 0 for name in ATTRIBUTES}
    all_correct = 0
    by_shape: dict[str, dict[str, int]] = {}
    confusion: dict[str, dict[str, Counter[str]]] = {name: {} for name in ATTRIBUTES}
    pos_err: list[float] = []
    pix_err: list[float] = []
    perfect_scenes = 0
    for pred, gt in zip(preds, gts, strict=True):
        pairs = match_objects(pred, gt, by=by, max_distance=max_distance)
        n_pred += len(pred)
        n_gt += len(gt)
        n_matched += len(pairs)
        scene_ok = len(pairs) == len(pred) == len(gt)
        for i, j in pairs:
            p, g = pred.objects[i], gt.objects[j]
            ok = True
            cell = by_shape.setdefault(str(g.attribute("shape")), dict.fromkeys(("n", *ATTRIBUTES, "all"), 0))
            cell["n"] += 1
            for name in ATTRIBUTES:
                hit = p.attribute(name) == g.attribute(name)
                correct[name] += hit
                cell[name] += hit
                confusion[name].setdefault(str(g.attribute(name)), Counter())[str(p.attribute(name))] += 1
                ok &= hit
            all_correct += ok
            cell["all"] += ok
            scene_ok &= ok
            pos_err.append(math.dist(p.position, g.position))
            if p.pixel_coords is not None and g.pixel_coords is not None:
                pix_err.append(math.dist(p.pixel_coords[:2], g.pixel_coords[:2]))
        perfect_scenes += scene_ok

    def frac(a: float, b: float) -> float | None:
        return a / b if b else None

    acc = {name: frac(c, n_matched) for name, c in correct.items()}
    acc["all"] = frac(all_correct, n_matched)
    return {
        "detection_precision": frac(n_matched, n_pred),
        "detection_recall": frac(n_matched, n_gt),
        "attribute_accuracy": acc,
        "attribute_accuracy_by_shape": {
            shape: {"n": c["n"], **{name: frac(c[name], c["n"]) for name in (*ATTRIBUTES, "all")}}
            for shape, c in sorted(by_shape.items())
        },
        "attribute_confusion": {
            name: {true: dict(sorted(got.items())) for true, got in sorted(table.items())}
            for name, table in confusion.items()
        },
        "position_error": float(np.mean(pos_err)) if pos_err else None,
        "pixel_error": float(np.mean(pix_err)) if pix_err else None,
        "scene_accuracy": frac(perfect_scenes, len(gts)),
        "n_scenes": len(gts),
        "n_pred": n_pred,
        "n_gt": n_gt,
        "n_matched": n_matched,
    }
