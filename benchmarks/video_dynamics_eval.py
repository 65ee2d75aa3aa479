"""Scores of a video Dynamics provider on CLEVRER-style videos with truth files.

For every video of a ``nesy data clevrer`` split (annotation + truth):

* ``collision_rule``: how well the state collision rule
  (:func:`physics.video_dynamics.state_collisions`) reproduces the recorded
  collisions on the *true* states (observed + future frames and every true
  counterfactual): a ceiling for any provider whose collisions come from states;
* ``future``: the provider's ``future`` over the truth's future frames:
  collision events against the truth (same pair, within ``window`` frames;
  precision, recall, F1) and the centres' distance on the floor to the truth
  per predicted frame (``position_error_curve``, mean over objects, scene
  units; ``position_error_at`` a few horizons), and the same split by what
  each object does in the truth's future (``position_error_by_group``:
  ``sliding``, moving at the last observed frame and in no future collision, so
  its error is the free slide's, friction alone; ``colliding``, in a future
  collision; ``resting``, neither), each with its ``objects`` count;
* ``counterfactual``: one counterfactual per object: collision events of the
  whole re-run against the truth's, and the same for the *changed* collisions
  only (those that differ from the factual video: what a counterfactual
  question probes; copying the video scores zero there);
* ``contact_response`` (providers with a ``collision_impulses`` method, the learned
  PropNet): at every recorded collision, the velocity change of each of its objects
  over the step into it, in the truth and in the model's one-step prediction from
  true states; ``median_ratio`` of predicted to true and ``share_over_half`` (the
  predicted change is more than half the true one), over the changes above
  ``IMPULSE_MIN`` units/s.  A model that only carries objects on scores near 0;
* ``free_slide``: every object moving at the last observed frame (at least ``SLIDE_MIN_SPEED``
  units/s over its last ``SLIDE_SPEED_FRAMES`` frames) and in no recorded collision from those frames
  to ``SLIDE_HORIZON`` frames after it (:func:`free_slides`): the provider's travel over those frames
  against the truth's (``travel_ratio``; below 1 a slide that stops short) and its end-point error,
  medians by the object's speed at the cut (``by_speed``) and over the fast ones
  (``FAST_SLIDE`` units/s and faster, ``fast``; ``median_ratio_error`` is the median of
  |ratio - 1|).  A friction the model learned wrong for fast objects shows here before any
  question does (the late entrants of the predictive questions, ``docs/results/clevrer.md``);
* ``speed``: wall seconds per future and per counterfactual, and predicted frames per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from physics.video_dynamics import FPS, VideoDynamics, match_collisions, state_collisions
from physics.worlds.clevrer_annotation import Collision, FrameStates, VideoAnnotation
from physics.worlds.clevrer_truth import VideoTruth
from reasoning.executor.video_scene import (
    MOVING_SPEED,  # moving, as the executor's filter_moving reads it
)

__all__ = ["evaluate_video_dynamics", "contact_response", "object_groups", "free_slides", "free_slide_summary", "prf",
           "plot_position_error", "HORIZONS", "GROUPS"]

HORIZONS = (1, 5, 10, 25, 50)
GROUPS = ("sliding", "colliding", "resting")
IMPULSE_MIN = 0.3  # units/s: a collision's velocity change counted in contact_response
SLIDE_HORIZON = 20  # frames of a free slide scored (free_slide)
SLIDE_SPEED_FRAMES = 3  # frames before the cut over which a slide's speed is measured
SLIDE_MIN_SPEED = 0.3  # units/s: slower objects are not scored as slides
FAST_SLIDE = 2.0  # units/s: the fast slides summarised apart
SLIDE_BINS = ((0.3, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, float("inf")))


def prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    """Precision, recall and F1 (``None`` where undefined) with the counts."""
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"precision": p, "recall": r, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def _changed(collisions: Sequence[Collision], factual: Sequence[Collision], window: int) -> list[Collision]:
    """The collisions with no counterpart (same pair within ``window`` frames) in ``factual``."""
    return [c for c in collisions if match_collisions([c], factual, window)[0] == 0]


def evaluate_video_dynamics(
    videos: Sequence[tuple[VideoAnnotation, VideoTruth]],
    provider: Callable[[VideoTruth], VideoDynamics],
    window: int = 2,
    horizons: Sequence[int] = HORIZONS,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``provider(truth)`` on ``videos`` (keys in the module docstring)."""
    counts = {k: np.zeros(3, int) for k in ("rule", "future", "cf", "cf_changed")}
    curves: list[list[float]] = []
    grouped: dict[str, list[list[float]]] = {g: [] for g in GROUPS}
    impulses: list[tuple[float, float]] = []
    slides: list[dict[str, float]] = []
    responds = False
    t_future = t_cf = 0.0
    n_cf = future_frames = 0
    for ann, truth in tqdm(videos, desc="video dynamics", unit="video", disable=not progress):
        shapes = {p.object_id: p.shape for p in ann.object_property}
        factual_frames = tuple(ann.motion_trajectory) + tuple(truth.future_trajectory)
        factual = tuple(ann.collision) + tuple(truth.future_collisions)
        counts["rule"] += match_collisions(state_collisions(factual_frames, shapes), factual, window)
        for cf in truth.counterfactuals:
            counts["rule"] += match_collisions(state_collisions(cf.trajectory, shapes), cf.collisions, window)
        dyn = provider(truth)
        if hasattr(dyn, "collision_impulses"):
            responds = True
            impulses += dyn.collision_impulses(ann, truth)
        frames = len(truth.future_trajectory)
        start = time.perf_counter()
        states, collisions = dyn.future(ann, frames)
        t_future += time.perf_counter() - start
        future_frames += frames
        counts["future"] += match_collisions(collisions, truth.future_collisions, window)
        curves.append(_position_errors(states, truth.future_trajectory))
        slides += free_slides(ann, truth, states)
        groups = object_groups(ann, truth)
        for oid, errors in _object_errors(states, truth.future_trajectory).items():
            if oid in groups:
                grouped[groups[oid]].append(errors)
        for p in ann.object_property:
            start = time.perf_counter()
            cf = dyn.counterfactual(ann, p.object_id)
            t_cf += time.perf_counter() - start
            n_cf += 1
            true_cf = truth.counterfactual(p.object_id)
            counts["cf"] += match_collisions(cf.collisions, true_cf.collisions, window)
            kept = [c for c in factual if p.object_id not in c.object_ids]
            counts["cf_changed"] += match_collisions(
                _changed(cf.collisions, kept, window), _changed(true_cf.collisions, kept, window), window
            )
    length = min((len(c) for c in curves), default=0)
    curve = np.mean([c[:length] for c in curves], axis=0) if length else np.zeros(0)
    return {
        "videos": len(videos),
        "window": window,
        "collision_rule": prf(*counts["rule"].tolist()),
        "future": {
            "frames": length,
            "collisions": prf(*counts["future"].tolist()),
            "true_collisions": int(counts["future"][0] + counts["future"][2]),
            "position_error_at": {int(h): float(curve[h - 1]) for h in horizons if h <= length},
            "position_error_curve": [float(x) for x in curve],
            "position_error_by_group": {g: _group_curve(grouped[g], horizons) for g in GROUPS},
        },
        "counterfactual": {
            "runs": n_cf,
            "collisions": prf(*counts["cf"].tolist()),
            "changed_collisions": prf(*counts["cf_changed"].tolist()),
        },
        "contact_response": contact_response(impulses) if responds else None,
        "free_slide": free_slide_summary(slides),
        "speed": {
            "seconds_per_future": t_future / max(len(videos), 1),
            "seconds_per_counterfactual": t_cf / max(n_cf, 1),
            "future_frames_per_s": future_frames / t_future if t_future > 0 else None,
        },
    }


def contact_response(impulses: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Summary of (true, predicted) velocity changes at collisions (see the module docstring)."""
    r = np.array([x for x in impulses if x[0] > IMPULSE_MIN], float).reshape(-1, 2)
    if not len(r):
        return {"changes": 0, "median_true": None, "median_predicted": None, "median_ratio": None, "share_over_half": None}
    return {"changes": len(r), "median_true": float(np.median(r[:, 0])), "median_predicted": float(np.median(r[:, 1])),
            "median_ratio": float(np.median(r[:, 1] / r[:, 0])), "share_over_half": float(np.mean(r[:, 1] > 0.5 * r[:, 0]))}


def free_slides(annotation: VideoAnnotation, truth: VideoTruth, states: Sequence[FrameStates],
                horizon: int = SLIDE_HORIZON) -> list[dict[str, float]]:
    """The free slides of one video's future (module docstring): per object, its ``speed`` at the cut
    (units/s), the truth's ``travel`` over ``horizon`` frames, the provider's ``travel_ratio`` to it and
    the ``end_error`` (floor distances, scene units).  ``states`` are the provider's future frames,
    the first one the frame after the last observed; a video whose observed or future frames are too
    few gives none.
    """
    obs, fut = annotation.motion_trajectory, truth.future_trajectory
    if len(obs) <= SLIDE_SPEED_FRAMES or len(fut) < horizon or len(states) < horizon:
        return []
    last = obs[-1].frame_id
    struck = {k for c in (*annotation.collision, *truth.future_collisions)
              if last - SLIDE_SPEED_FRAMES <= c.frame_id <= last + horizon for k in c.object_ids}
    before, now = obs[-1 - SLIDE_SPEED_FRAMES].by_id(), obs[-1].by_id()
    end_true, end_pred = fut[horizon - 1].by_id(), states[horizon - 1].by_id()
    out = []
    for oid, o in now.items():
        if oid in struck or not all(oid in d for d in (before, end_true, end_pred)):
            continue
        p0 = np.asarray(o.location[:2], float)
        speed = float(np.linalg.norm(p0 - np.asarray(before[oid].location[:2], float))) / SLIDE_SPEED_FRAMES * FPS
        if speed < SLIDE_MIN_SPEED:
            continue
        t1, q1 = np.asarray(end_true[oid].location[:2], float), np.asarray(end_pred[oid].location[:2], float)
        travel = float(np.linalg.norm(t1 - p0))
        out.append({"speed": speed, "travel": travel,
                    "travel_ratio": float(np.linalg.norm(q1 - p0)) / max(travel, 1e-6),
                    "end_error": float(np.linalg.norm(q1 - t1))})
    return out


def free_slide_summary(slides: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Medians of :func:`free_slides` rows by speed (``by_speed``, keyed ``"lo-hi"`` units/s) and over the fast ones."""

    def part(rows: Sequence[dict[str, float]]) -> dict[str, Any]:
        if not rows:
            return {"objects": 0, "median_travel_ratio": None, "median_end_error": None, "median_ratio_error": None}
        ratio = np.array([r["travel_ratio"] for r in rows])
        return {"objects": len(rows), "median_travel_ratio": float(np.median(ratio)),
                "median_end_error": float(np.median([r["end_error"] for r in rows])),
                "median_ratio_error": float(np.median(np.abs(ratio - 1.0)))}

    by_speed = {f"{lo:g}-{hi:g}": part([r for r in slides if lo <= r["speed"] < hi]) for lo, hi in SLIDE_BINS}
    return {"horizon": SLIDE_HORIZON, "objects": len(slides), "by_speed": by_speed,
            "fast": {"min_speed": FAST_SLIDE, **part([r for r in slides if r["speed"] >= FAST_SLIDE])}}


def object_groups(annotation: VideoAnnotation, truth: VideoTruth) -> dict[int, str]:
    """``object_id -> group`` of the objects present at the last observed frame (groups: module docstring)."""
    last = annotation.motion_trajectory[-1] if annotation.motion_trajectory else None
    if last is None:
        return {}
    struck = {k for c in truth.future_collisions for k in c.object_ids}
    out = {}
    for o in last.objects:
        if o.object_id in struck:
            out[o.object_id] = "colliding"
        else:
            out[o.object_id] = "sliding" if float(np.hypot(*o.velocity[:2])) > MOVING_SPEED else "resting"
    return out


def _object_errors(pred: Sequence[FrameStates], true: Sequence[FrameStates]) -> dict[int, list[float]]:
    """Per object present in every frame of both: its floor distance to the truth per frame."""
    out: dict[int, list[float]] = {}
    n = min(len(pred), len(true))
    for k, (p, t) in enumerate(zip(pred[:n], true[:n], strict=True)):
        tb = t.by_id()
        for o in p.objects:
            if o.object_id in tb and len(out.setdefault(o.object_id, [])) == k:
                out[o.object_id].append(float(np.hypot(o.location[0] - tb[o.object_id].location[0],
                                                       o.location[1] - tb[o.object_id].location[1])))
    return {k: v for k, v in out.items() if len(v) == n}


def _group_curve(errors: list[list[float]], horizons: Sequence[int]) -> dict[str, Any]:
    """Mean error of a group's objects at each horizon within their common length."""
    length = min((len(e) for e in errors), default=0)
    curve = np.mean([e[:length] for e in errors], axis=0) if length else np.zeros(0)
    return {"objects": len(errors), "position_error_at": {int(h): float(curve[h - 1]) for h in horizons if h <= length}}


def _position_errors(pred: Sequence[FrameStates], true: Sequence[FrameStates]) -> list[float]:
    """Per frame: mean floor distance between predicted and true centres of the objects in both."""
    out = []
    for p, t in zip(pred, true, strict=False):
        tb = t.by_id()
        d = [float(np.hypot(o.location[0] - tb[o.object_id].location[0], o.location[1] - tb[o.object_id].location[1]))
             for o in p.objects if o.object_id in tb]
        out.append(float(np.mean(d)) if d else 0.0)
    return out


def plot_position_error(results: dict[str, dict[str, Any]], path: Any) -> None:
    """PNG: mean position error against horizon, one line per provider."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.dynamics_eval import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
    for name, r in results.items():
        curve = r["future"]["position_error_curve"]
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("horizon (frames after the last observed one, 25 per second)")
    ax.set_ylabel("mean centre error (scene units)")
    n = next(iter(results.values()))["videos"] if results else 0
    ax.set_title(f"CLEVRER future: position error, {n} held-out videos")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
