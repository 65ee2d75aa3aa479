"""Scoring a perceived video annotation against the true one.

Matching, frame by frame: the objects each annotation has inside the camera
view are matched one-to-one by the Hungarian algorithm on ground-plane
distance; pairs further apart than ``max_distance`` (CLEVR's 0.5, half the
least centre distance of two small objects) are no match.  Each perceived
object is then given the true object it was matched to in most frames (again
one-to-one, Hungarian on the match counts): its identity.

Scores (counts summed over frames, objects and videos before dividing):

* detection ``precision`` / ``recall``: per-frame matches over perceived /
  true objects inside the view;
* ``attribute_accuracy``: per true object seen, whether the perceived object
  holding its identity has its colour (material, shape; ``all`` three); a true
  object no perceived object stands for counts as wrong;
* ``identity_accuracy``: the fraction of (true object, frame in view) pairs
  matched to the perceived object holding that identity (IDF1's recall
  side); ``id_switches``: how often a true object's matched perceived object
  changes from one matched frame to its next;
* ``location_error`` (3-D, scene units) and ``velocity_error`` (units/s) over
  per-frame matches;
* ``collision`` precision / recall / F1: a perceived collision is right when
  the true objects behind its pair collide within ``frame_tolerance`` frames
  (each true collision is claimed once); the same for ``in`` / ``out`` events
  (:func:`~physics.worlds.clevrer_events.derive_events`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from physics.errors import ConfigError
from physics.worlds.clevrer_annotation import VideoAnnotation
from physics.worlds.clevrer_events import derive_events

__all__ = ["MAX_DISTANCE", "FRAME_TOLERANCE", "score_video", "summarize"]

MAX_DISTANCE = 0.5  # CLEVR's 3-D matching threshold (perception.derender.metrics.MAX_3D_DISTANCE)
FRAME_TOLERANCE = 2  # an event is found when its frame is within this many frames (issue 15)
_ATTRIBUTES = ("color", "material", "shape")


def _match_frame(pred: dict[int, np.ndarray], true: dict[int, np.ndarray], max_distance: float) -> list[tuple[int, int]]:
    """(perceived id, true id) pairs matched at one frame."""
    if not pred or not true:
        return []
    p_ids, t_ids = list(pred), list(true)
    cost = np.linalg.norm(np.stack([pred[i] for i in p_ids])[:, None, :2] - np.stack([true[j] for j in t_ids])[None, :, :2], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return [(p_ids[r], t_ids[c]) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= max_distance]


def _event_hits(pred: Iterable[tuple[int, tuple[int, ...]]], true: Sequence[tuple[int, tuple[int, ...]]], tolerance: int) -> int:
    """Perceived (frame, objects) events that claim a distinct true one with the same objects within ``tolerance``."""
    free = list(true)
    hits = 0
    for frame, objs in sorted(pred):
        options = [(abs(frame - tf), k) for k, (tf, to) in enumerate(free) if to == objs and abs(frame - tf) <= tolerance]
        if options:
            free.pop(min(options)[1])
            hits += 1
    return hits


def score_video(
    pred: VideoAnnotation,
    true: VideoAnnotation,
    *,
    max_distance: float = MAX_DISTANCE,
    frame_tolerance: int = FRAME_TOLERANCE,
) -> dict[str, Any]:
    """Counts for one video (rules in the module docstring); :func:`summarize` turns them into scores.

    Frames are paired by ``frame_id``; a frame only one side has counts its objects as unmatched.

    Returns:
        A JSON-ready dict of counts and sums (``objects``, ``frames``, ``matches``, ...).
    """
    if max_distance <= 0 or frame_tolerance < 0:
        raise ConfigError(f"score_video needs max_distance > 0 and frame_tolerance >= 0, got {max_distance}, {frame_tolerance}")
    pred_frames = {fr.frame_id: fr for fr in pred.motion_trajectory}
    counts: Counter[tuple[int, int]] = Counter()
    per_frame: list[list[tuple[int, int]]] = []
    c = Counter()
    loc_err = vel_err = 0.0
    for fr in true.motion_trajectory:
        t_in = {o.object_id: o for o in fr.objects if o.inside_camera_view}
        p_fr = pred_frames.get(fr.frame_id)
        p_in = {o.object_id: o for o in (p_fr.objects if p_fr else ()) if o.inside_camera_view}
        pairs = _match_frame({i: np.asarray(o.location) for i, o in p_in.items()},
                             {j: np.asarray(o.location) for j, o in t_in.items()}, max_distance)
        per_frame.append(pairs)
        c["true_in_view"] += len(t_in)
        c["pred_in_view"] += len(p_in)
        c["matches"] += len(pairs)
        for i, j in pairs:
            counts[i, j] += 1
            loc_err += float(np.linalg.norm(np.subtract(p_in[i].location, t_in[j].location)))
            vel_err += float(np.linalg.norm(np.subtract(p_in[i].velocity, t_in[j].velocity)))
    identity = _identities(counts)
    seen = sorted({o.object_id for fr in true.motion_trajectory for o in fr.objects if o.inside_camera_view})
    props_p = {p.object_id: p for p in pred.object_property}
    props_t = {p.object_id: p for p in true.object_property}
    owner = {j: i for i, j in identity.items()}
    for j in seen:
        c["objects"] += 1
        p = props_p.get(owner.get(j, -1))
        right = [p is not None and getattr(p, a) == getattr(props_t[j], a) for a in _ATTRIBUTES]
        for a, ok in zip(_ATTRIBUTES, right, strict=True):
            c[f"{a}_right"] += ok
        c["all_right"] += all(right)
        c["objects_found"] += p is not None
    last: dict[int, int] = {}
    for pairs in per_frame:
        for i, j in pairs:
            c["identity_right"] += identity.get(i) == j
            c["id_switches"] += j in last and last[j] != i
            last[j] = i
    out: dict[str, Any] = {"scene_index": true.scene_index, "frames": len(true.motion_trajectory), **dict(c),
                           "location_error_sum": loc_err, "velocity_error_sum": vel_err}
    out.update(_event_counts(pred, true, identity, frame_tolerance))
    return out


def _identities(counts: Counter[tuple[int, int]]) -> dict[int, int]:
    """Perceived id -> true id, one-to-one, maximising the frames matched (Hungarian on counts)."""
    if not counts:
        return {}
    p_ids = sorted({i for i, _ in counts})
    t_ids = sorted({j for _, j in counts})
    gain = np.array([[counts.get((i, j), 0) for j in t_ids] for i in p_ids], dtype=float)
    rows, cols = linear_sum_assignment(-gain)
    return {p_ids[r]: t_ids[c] for r, c in zip(rows, cols, strict=True) if gain[r, c] > 0}


def _event_counts(pred: VideoAnnotation, true: VideoAnnotation, identity: dict[int, int], tolerance: int) -> dict[str, int]:
    """Hits and totals of collisions and of in / out events, perceived ids mapped to true ones."""
    def mapped(objs: Iterable[int]) -> tuple[int, ...]:
        return tuple(sorted(identity.get(i, -1 - i) for i in objs))  # an object with no identity matches nothing

    out: dict[str, int] = {}
    pred_events = derive_events(pred.motion_trajectory, pred.collision) if pred.motion_trajectory else []
    true_events = derive_events(true.motion_trajectory, true.collision)
    for kind in ("collision", "in", "out"):
        p = [(e.frame, mapped(e.objects)) for e in pred_events if e.kind == kind]
        t = [(e.frame, e.objects) for e in true_events if e.kind == kind]
        out[f"{kind}_pred"], out[f"{kind}_true"], out[f"{kind}_hits"] = len(p), len(t), _event_hits(p, t, tolerance)
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _f1(hits: int, pred: int, true: int) -> dict[str, float | int | None]:
    p, r = _ratio(hits, pred), _ratio(hits, true)
    f1 = None if p is None or r is None else (0.0 if p + r == 0 else 2 * p * r / (p + r))
    return {"precision": p, "recall": r, "f1": f1, "hits": hits, "perceived": pred, "true": true}


def summarize(videos: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Scores over videos from :func:`score_video` counts (summed before dividing)."""
    total: Counter[str] = Counter()
    for v in videos:
        total.update({k: v for k, v in v.items() if isinstance(v, (int, float)) and k != "scene_index"})
    m = total["matches"]
    return {
        "videos": len(videos),
        "frames": int(total["frames"]),
        "objects": int(total["objects"]),
        "detection": {"precision": _ratio(m, total["pred_in_view"]), "recall": _ratio(m, total["true_in_view"])},
        "attribute_accuracy": {a: _ratio(total[f"{a}_right"], total["objects"]) for a in (*_ATTRIBUTES, "all")},
        "objects_found": _ratio(total["objects_found"], total["objects"]),
        "identity_accuracy": _ratio(total["identity_right"], total["true_in_view"]),
        "id_switches": int(total["id_switches"]),
        "location_error": _ratio(total["location_error_sum"], m),
        "velocity_error": _ratio(total["velocity_error_sum"], m),
        "events": {k: _f1(int(total[f"{k}_hits"]), int(total[f"{k}_pred"]), int(total[f"{k}_true"]))
                   for k in ("collision", "in", "out")},
    }
