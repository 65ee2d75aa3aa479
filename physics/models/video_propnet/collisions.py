"""Collisions read off rolled-out states: edge, reach, near-miss and look-ahead rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from physics.errors import ConfigError
from physics.models.video_propnet.config import (
    NEAR_MISS_FEATURES,
    NEAR_MISS_MAX_GAP,
    NEAR_MISS_SPAN,
    RolloutConfig,
)
from physics.models.video_propnet.trajectories import _shapes
from physics.video_dynamics import HALF_EXTENT, footprint_gaps, state_collisions, yaw_of
from physics.worlds.clevrer_annotation import Collision, FrameStates, VideoAnnotation


def edge_collisions(annotation: VideoAnnotation, frames: Sequence[FrameStates], future: Sequence[Collision],
                    edge_frames: int, tolerance: float, discs: Mapping[int, float] | None = None) -> list[Collision]:
    """The collisions of ``annotation``'s last ``edge_frames`` observed frames still in contact at the first future frame.

    A pair counts when the annotation records a collision of it after frame
    ``last - edge_frames`` (``last`` the last observed frame), its footprints touch in the
    frame ``last + 1`` of ``frames`` (:func:`~physics.video_dynamics.state_collisions` on
    that frame alone: ``tolerance``, ``discs``) and ``future`` has no collision of it; each
    is dated ``last + 1``, located at the midpoint of the two centres there
    (:attr:`RolloutConfig.edge_frames`).  No such frame in ``frames``: none.
    """
    if edge_frames < 0:
        raise ConfigError(f"edge_frames must be >= 0, got {edge_frames}")
    last = annotation.motion_trajectory[-1].frame_id
    first = next((fr for fr in frames if fr.frame_id == last + 1), None)
    if not edge_frames or first is None:
        return []
    touching = {c.object_ids: c for c in state_collisions([first], _shapes(annotation), tolerance, discs=discs)}
    have = {tuple(sorted(c.object_ids)) for c in future}
    out: list[Collision] = []
    for c in annotation.collision:
        pair = tuple(sorted(c.object_ids))
        if c.frame_id > last - edge_frames and pair in touching and pair not in have:
            out.append(touching[pair])
            have.add(pair)
    return out


def unrecorded_edge_collisions(annotation: VideoAnnotation, frames: Sequence[FrameStates], ruled: Sequence[Collision],
                               future: Sequence[Collision], gap: int, tolerance: float,
                               discs: Mapping[int, float] | None = None) -> list[Collision]:
    """The touches ``ruled`` dates at the last observed frame that the annotation lacks, still touching after it.

    ``ruled`` is the future collision rule over ``frames`` (observed and predicted).  A pair counts when ``ruled``
    has a collision of it dated ``last`` (the annotation's last observed frame), the annotation records no
    collision of it in the frames ``last - gap .. last``, its footprints touch in the frame ``last + 1`` of
    ``frames`` (:func:`~physics.video_dynamics.state_collisions` on that frame alone: ``tolerance``, ``discs``),
    and ``future`` has no collision of it; each is dated ``last + 1``, located at the midpoint of the two centres
    there (:attr:`RolloutConfig.edge_unrecorded`).  No such frame in ``frames``: none.
    """
    last = annotation.motion_trajectory[-1].frame_id
    first = next((fr for fr in frames if fr.frame_id == last + 1), None)
    if first is None:
        return []
    touching = {c.object_ids: c for c in state_collisions([first], _shapes(annotation), tolerance, discs=discs)}
    recorded = {tuple(sorted(c.object_ids)) for c in annotation.collision if c.frame_id >= last - gap}
    have = {tuple(sorted(c.object_ids)) for c in future}
    out: list[Collision] = []
    for c in ruled:
        pair = tuple(sorted(c.object_ids))
        if c.frame_id == last and pair in touching and pair not in recorded and pair not in have:
            out.append(touching[pair])
            have.add(pair)
    return out


def _reach_collisions(frames: Sequence[FrameStates], shapes: Mapping[int, str], cfg: RolloutConfig, last: int,
                      future: Sequence[Collision], discs: Mapping[int, float] | None = None) -> list[Collision]:
    """The near passes ``future_reach`` adds to a future rollout's collisions (:attr:`RolloutConfig.future_reach`).

    The collision rule with tolerance ``cfg.future_reach`` over ``frames``; a touch it dates after ``last`` (the
    pair's gap fell below the reach inside the predicted frames) is added unless ``future`` already has a
    collision of the pair within ``collision_gap`` frames of it.  A touch it dates at or before ``last`` (the pair
    already that near in the observed frames) adds nothing and removes nothing.
    """
    have: dict[tuple[int, ...], list[int]] = {}
    for c in future:
        have.setdefault(tuple(sorted(c.object_ids)), []).append(c.frame_id)
    out: list[Collision] = []
    for c in state_collisions(frames, shapes, cfg.future_reach, cfg.collision_gap, approach_speed=cfg.approach_speed,
                              fps=cfg.fps, discs=discs):
        pair = tuple(sorted(c.object_ids))
        if c.frame_id > last and all(abs(c.frame_id - f) > cfg.collision_gap for f in have.get(pair, ())):
            out.append(c)
            have.setdefault(pair, []).append(c.frame_id)
    return out


def _counterfactual_reach_collisions(frames: Sequence[FrameStates], shapes: Mapping[int, str], cfg: RolloutConfig,
                                     last: int, have: Sequence[Collision], discs: Mapping[int, float] | None = None,
                                     ) -> list[Collision]:
    """The near passes ``counterfactual_reach`` adds to a counterfactual's collisions (:attr:`RolloutConfig.counterfactual_reach`).

    The collision rule with tolerance ``cfg.counterfactual_reach`` over the counterfactual's ``frames``; a touch it
    dates after ``last`` (the last observed frame) is added unless ``have`` already holds a collision of the pair
    within ``collision_gap`` frames of it.  A touch dated at or before ``last`` (inside the video, or the pair
    already that near at its end) adds nothing and removes nothing.
    """
    near: dict[tuple[int, ...], list[int]] = {}
    for c in have:
        near.setdefault(tuple(sorted(c.object_ids)), []).append(c.frame_id)
    out: list[Collision] = []
    for c in state_collisions(frames, shapes, cfg.counterfactual_reach, cfg.collision_gap, fps=cfg.fps, discs=discs):
        pair = tuple(sorted(c.object_ids))
        if c.frame_id > last and all(abs(c.frame_id - f) > cfg.collision_gap for f in near.get(pair, ())):
            out.append(c)
            near.setdefault(pair, []).append(c.frame_id)
    return out


def _pair_gaps(frames: Sequence[FrameStates], shapes: Mapping[int, str], discs: Mapping[int, float] | None = None,
               ) -> tuple[list[dict[tuple[int, int], float]], list[dict[tuple[int, int], tuple[float, ...]]]]:
    """Per frame, each pair's footprint gap (as the state rule, ``discs`` included) and its centres' midpoint."""
    discs = dict(discs or {})
    gaps: list[dict[tuple[int, int], float]] = []
    mids: list[dict[tuple[int, int], tuple[float, ...]]] = []
    for fr in frames:
        by = fr.by_id()
        ids = sorted(by)
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
        if not pairs:
            gaps.append({})
            mids.append({})
            continue
        xa = np.array([[*by[a].location[:2], yaw_of(by[a].orientation)] for a, _ in pairs])
        xb = np.array([[*by[b].location[:2], yaw_of(by[b].orientation)] for _, b in pairs])
        cube_a = np.array([shapes.get(a) == "cube" and a not in discs for a, _ in pairs])
        cube_b = np.array([shapes.get(b) == "cube" and b not in discs for _, b in pairs])
        g = footprint_gaps(xa, xb, cube_a, cube_b)
        g = g + np.array([2.0 * HALF_EXTENT - discs.get(a, HALF_EXTENT) - discs.get(b, HALF_EXTENT) for a, b in pairs])
        gaps.append(dict(zip(pairs, g.tolist(), strict=True)))
        mids.append({(a, b): tuple(round(float(x), 5) + 0.0 for x in (np.asarray(by[a].location) + np.asarray(by[b].location)) / 2.0)
                     for a, b in pairs})
    return gaps, mids


def near_miss_candidates(frames: Sequence[FrameStates], shapes: Mapping[int, str], tolerance: float, fps: float,
                         eligible: Callable[[tuple[int, int], int], bool], discs: Mapping[int, float] | None = None,
                         start: int | None = None) -> list[tuple[Collision, tuple[float, float, float, float]]]:
    """The rollout's near misses, each with its score features (:attr:`RolloutConfig.near_miss`).

    A near miss of a pair is a frame ``s`` (not the first or last of ``frames``) where its footprint
    gap ``g`` is a local minimum (``g(s - 1) >= g < g(s + 1)``), above ``tolerance`` (the state rule
    finds no touch there) and at most ``NEAR_MISS_MAX_GAP``, with ``eligible(pair, frame_id)``
    true.  Features: ``g`` (units), the closing speed over the ``NEAR_MISS_SPAN`` frames before
    (units/s; fewer frames where the pair is not there as long), the seconds from ``start`` (a
    frame id: the first predicted frame; ``None``: the first frame of ``frames``) to ``s``, and
    the pair's spheres (0-2).  Each as a :class:`Collision` dated ``s`` at the centres' midpoint.
    """
    if len(frames) < 3:
        return []
    gaps, mids = _pair_gaps(frames, shapes, discs)
    t0 = frames[0].frame_id if start is None else start
    out = []
    for s in range(1, len(frames) - 1):
        f = frames[s].frame_id
        for pair, g in gaps[s].items():
            before, after = gaps[s - 1].get(pair), gaps[s + 1].get(pair)
            if (before is None or after is None or not tolerance < g <= NEAR_MISS_MAX_GAP or before < g or after <= g
                    or not eligible(pair, f)):
                continue
            k = max(j for j in range(1, NEAR_MISS_SPAN + 1) if s - j >= 0 and all(pair in gaps[s - i] for i in range(1, j + 1)))
            speed = (gaps[s - k][pair] - g) * fps / k
            spheres = sum(shapes.get(o) == "sphere" for o in pair)
            out.append((Collision(pair, f, mids[s][pair]), (g, speed, (f - t0) / fps, float(spheres))))
    return out


def near_miss_collisions(candidates: Sequence[tuple[Collision, tuple[float, float, float, float]]],
                         weights: Sequence[float], ruled: Sequence[Collision], collision_gap: int) -> list[Collision]:
    """The near misses (:func:`near_miss_candidates`) whose score ``w0 + w . features`` is above 0.

    One of a pair within ``collision_gap`` frames of a collision ``ruled`` (or one taken here)
    already has is skipped; the best-scored first.
    """
    if len(weights) != 1 + NEAR_MISS_FEATURES:
        raise ConfigError(f"near_miss needs {1 + NEAR_MISS_FEATURES} weights (bias, gap, closing speed, seconds, "
                          f"spheres), got {len(weights)}")
    dates: dict[tuple[int, ...], list[int]] = {}
    for c in ruled:
        dates.setdefault(tuple(sorted(c.object_ids)), []).append(c.frame_id)
    scored = [(weights[0] + float(np.dot(weights[1:], x)), c) for c, x in candidates]
    out = []
    for score, c in sorted(scored, key=lambda t: -t[0]):
        pair = tuple(sorted(c.object_ids))
        if score <= 0 or any(abs(c.frame_id - d) <= collision_gap for d in dates.get(pair, ())):
            continue
        dates.setdefault(pair, []).append(c.frame_id)
        out.append(c)
    return sorted(out, key=lambda c: (c.frame_id, c.object_ids))


def lookahead_collisions(frames: Sequence[FrameStates], shapes: Mapping[int, str], lookahead: int,
                         min_speed: float, fps: float, tolerance: float, collision_gap: int,
                         ruled: Sequence[Collision], eligible: Callable[[tuple[int, int], int], bool], discs: Mapping[int, float] | None = None,
                         ) -> list[Collision]:
    """Near misses of closing pairs, by a tolerance that grows with the closing speed (:attr:`RolloutConfig.lookahead`).

    At each frame ``f`` (after the first) and each pair present at ``f`` and ``f - 1`` with
    ``eligible(pair, frame_id)`` true: the footprint gap ``g`` (centres' footprints,
    :func:`~physics.video_dynamics.footprint_gaps`, ``discs`` as the state rule) is above
    ``tolerance``, it closed by ``c = g(f - 1) - g(f)`` units over the frame with
    ``c * fps >= min_speed``, and ``g - lookahead * c <= tolerance``: the pair would touch
    within ``lookahead`` frames at that rate.  Such a pair is a collision dated at its
    smallest gap among frames ``f .. f + lookahead`` (where eligible), located at the centres'
    midpoint there, unless ``ruled`` (the state rule's collisions) or an earlier one found
    here has a collision of the pair within ``collision_gap`` frames of that date.

    Returns:
        The added collisions in frame order, ``object_ids`` sorted.

    Raises:
        ConfigError: ``lookahead`` < 0, ``min_speed`` <= 0, ``fps`` <= 0, ``tolerance`` < 0
            or ``collision_gap`` < 1.
    """
    if lookahead < 0 or not min_speed > 0 or not fps > 0 or tolerance < 0 or collision_gap < 1:
        raise ConfigError(f"lookahead_collisions needs lookahead >= 0, min_speed > 0, fps > 0, tolerance >= 0 and "
                          f"collision_gap >= 1; got {lookahead}, {min_speed}, {fps}, {tolerance}, {collision_gap}")
    if not lookahead or len(frames) < 2:
        return []
    gaps, mids = _pair_gaps(frames, shapes, discs)
    dates: dict[tuple[int, int], list[int]] = {}
    for c in ruled:
        dates.setdefault(tuple(sorted(c.object_ids)), []).append(c.frame_id)
    out: list[Collision] = []
    for t in range(1, len(frames)):
        f = frames[t].frame_id
        for pair, g in gaps[t].items():
            before = gaps[t - 1].get(pair)
            if before is None or g <= tolerance or not eligible(pair, f):
                continue
            closing = before - g
            if closing * fps < min_speed or g - lookahead * closing > tolerance:
                continue
            window = [s for s in range(t, min(t + lookahead, len(frames) - 1) + 1)
                      if pair in gaps[s] and eligible(pair, frames[s].frame_id)]
            best = min(window, key=lambda s: gaps[s][pair])
            date = frames[best].frame_id
            if any(abs(date - d) <= collision_gap for d in dates.get(pair, ())):
                continue
            dates.setdefault(pair, []).append(date)
            out.append(Collision(pair, date, mids[best][pair]))
    return sorted(out, key=lambda c: (c.frame_id, c.object_ids))
