"""The video Dynamics interface: what happens next, and what if an object were absent.

CLEVRER's predictive and counterfactual questions (Yi, Gan et al., ICLR 2020)
need a dynamics provider; NS-DR uses a learned PropNet.  Here every provider
answers the same two calls on a video's observed :class:`VideoAnnotation`:

* :meth:`VideoDynamics.future` (``annotation, frames``): the ``frames`` frames
  after the last observed one and the collisions among them;
* :meth:`VideoDynamics.counterfactual` (``annotation, removed_object_id``): the
  whole video (observed and future frames) re-run without that object, as a
  :class:`~physics.worlds.clevrer_truth.Counterfactual` (trajectory, collisions,
  events by :func:`~physics.worlds.clevrer_events.derive_events`).

Providers are registered in :data:`VIDEO_DYNAMICS` (``--dynamics gt|propnet``);
each entry is a builder ``(truth, checkpoint[, settings]) -> VideoDynamics`` and
:func:`make_video_dynamics` calls it (``settings``: the provider's own options by
name, e.g. the PropNet's future ensemble; passed only when some are given):

* ``gt``: :class:`GroundTruthDynamics`, the recorded re-simulation of the world
  (a video's :class:`~physics.worlds.clevrer_truth.VideoTruth`);
* ``propnet``: the learned PropNet over object states
  (:mod:`physics.models.video_propnet`), from a checkpoint (default: the shipped one).

Collisions from states
----------------------
The world records a collision when two bodies' contact points touch in any
physics sub-step (:class:`~physics.worlds.clevrer_world.ClevrerWorld`); a
model that predicts object states per frame has no contact points.  Objects
here are of one size and stand on the floor with their centres at one height,
so touching is a question of footprints: a disc of radius 0.35 for spheres and
cylinders, a square of half-side 0.35 / sqrt(2) turned by its yaw for cubes.
:func:`state_collisions` calls a pair touching during frame ``f`` when their
footprints come within ``tolerance`` (0: touching or overlapping) at any of ``substeps`` states between
frames ``f - 1`` and ``f``, moved linearly towards frame ``f`` or on at the
velocity of frame ``f - 1`` (objects that bounce within the frame never meet
on the straight line between the two frames); a touch is a new collision when the
pair did not touch in the previous ``gap`` frames (the world's
``collision_gap`` rule), located at the centres' midpoint.  (A plain threshold
on centre distances, the simplest rule, agreed less: 0.88 F1 at its best
threshold on training videos.)  Objects passed in ``discs`` are discs of their
own radius whatever their shape: the learned PropNet's rollout so takes a cube
whose yaw was not perceived (``RolloutConfig.unknown_yaw_reach``).  :data:`CONTACT_TOLERANCE` was chosen on
training videos; the rule's agreement with the recorded collisions on true
states is measured in ``docs/results/clevrer.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from physics.errors import ConfigError, DataError
from physics.io import PathLike
from physics.registry import Registry
from physics.worlds.clevr_properties import SIZE_RADIUS
from physics.worlds.clevrer_annotation import Collision, FrameStates, VideoAnnotation
from physics.worlds.clevrer_truth import Counterfactual, VideoTruth
from physics.worlds.clevrer_world import ClevrerConfig

__all__ = [
    "VideoDynamics",
    "VIDEO_DYNAMICS",
    "register_video_dynamics",
    "make_video_dynamics",
    "GroundTruthDynamics",
    "state_collisions",
    "closest_approach",
    "vote_collisions",
    "match_collisions",
    "yaw_of",
    "footprint_gaps",
    "CONTACT_TOLERANCE",
    "HALF_EXTENT",
    "CUBE_MEAN_REACH",
    "COLLISION_GAP",
]

HALF_EXTENT = SIZE_RADIUS[ClevrerConfig().size]  # the one object size: disc radius / square half-side (0.35)
# a cube's footprint as a disc: the square's reach averaged over directions (a cube whose yaw is not known;
# physics.models.video_propnet's unknown_yaw_reach and contact_carry, reasoning's VideoScene.future_closest)
CUBE_MEAN_REACH = 0.315
CONTACT_TOLERANCE = 0.0  # footprints touching or overlapping; 0, 0.01, 0.02, 0.03 tried on training videos (docs/results/clevrer.md)
CONTACT_SUBSTEPS = 5  # states checked per frame (the world checks contacts every physics sub-step)
COLLISION_GAP = ClevrerConfig().collision_gap  # the world's rule: frames apart before a touch is a new collision
FPS = ClevrerConfig().fps  # frames per second of the videos (approach speeds)


@runtime_checkable
class VideoDynamics(Protocol):
    """A dynamics provider for one CLEVRER video's questions."""

    def future(self, annotation: VideoAnnotation, frames: int) -> tuple[tuple[FrameStates, ...], tuple[Collision, ...]]:
        """The ``frames`` frames after the last observed frame of ``annotation`` and the collisions among them."""
        ...

    def counterfactual(self, annotation: VideoAnnotation, removed_object_id: int) -> Counterfactual:
        """The whole video (observed + future frames) re-run without object ``removed_object_id``."""
        ...


DynamicsBuilder = Callable[..., VideoDynamics]  # (truth, checkpoint[, settings]) -> provider

VIDEO_DYNAMICS: Registry[DynamicsBuilder] = Registry(
    "video dynamics", modules=("physics.video_dynamics", "physics.models.video_propnet")
)


def register_video_dynamics(name: str, builder: DynamicsBuilder, *, help: str = "") -> DynamicsBuilder:
    """Register ``builder(truth, checkpoint[, settings]) -> VideoDynamics`` under ``name`` (``--dynamics NAME``)."""
    return VIDEO_DYNAMICS.register(name, builder, help=help)


def make_video_dynamics(name: str, *, truth: VideoTruth | None = None, checkpoint: PathLike | None = None,
                        settings: Mapping[str, Any] | None = None) -> VideoDynamics:
    """The provider ``name`` of :data:`VIDEO_DYNAMICS` for one video.

    Args:
        name: A registered name (``gt``, ``propnet``, ...).
        truth: The video's truth record (what ``gt`` answers from).
        checkpoint: A model file (learned providers; ``None``: the shipped one).
        settings: The provider's own options by name (``propnet``: fields of
            :class:`~physics.models.video_propnet.RolloutConfig`); empty or ``None``: its defaults.

    Raises:
        ConfigError: unknown name, what the provider needs is missing, or settings it does not take.
    """
    builder = VIDEO_DYNAMICS.get(name)
    return builder(truth, checkpoint, dict(settings)) if settings else builder(truth, checkpoint)


# ---------------------------------------------------------------------- ground truth
class GroundTruthDynamics:
    """The world's own answers: the recorded future and counterfactual re-simulations of one video.

    Args:
        truth: The video's truth record (``nesy data clevrer`` writes one per video).

    Raises (from the calls):
        DataError: the annotation is of another video, a negative number of future
            frames, or the video has no such object.  ``future`` returns at most the
            frames that were recorded.
    """

    def __init__(self, truth: VideoTruth) -> None:
        self.truth = truth

    def _check(self, annotation: VideoAnnotation) -> None:
        if annotation.scene_index != self.truth.scene_index:
            raise DataError(f"ground-truth dynamics of video {self.truth.scene_index} asked about video "
                            f"{annotation.scene_index}")

    def future(self, annotation: VideoAnnotation, frames: int) -> tuple[tuple[FrameStates, ...], tuple[Collision, ...]]:
        self._check(annotation)
        if frames < 0:
            raise DataError(f"video {self.truth.scene_index}: {frames} future frames asked for")
        states = self.truth.future_trajectory[:frames]  # the world recorded no more than it simulated
        last = states[-1].frame_id if states else -1
        return tuple(states), tuple(c for c in self.truth.future_collisions if c.frame_id <= last)

    def counterfactual(self, annotation: VideoAnnotation, removed_object_id: int) -> Counterfactual:
        self._check(annotation)
        return self.truth.counterfactual(removed_object_id)


def _ground_truth(truth: VideoTruth | None, checkpoint: PathLike | None,
                  settings: Mapping[str, Any] | None = None) -> VideoDynamics:
    if settings:
        raise ConfigError(f"--dynamics gt re-plays the world and takes no rollout settings, got {sorted(settings)}")
    if truth is None:
        raise ConfigError("--dynamics gt answers from the videos' truth files; none was given (truth_<split>/ missing?)")
    return GroundTruthDynamics(truth)


# ---------------------------------------------------------------------- the collision rule on states
def state_collisions(
    trajectory: Sequence[FrameStates],
    shapes: Mapping[int, str],
    tolerance: float = CONTACT_TOLERANCE,
    gap: int = COLLISION_GAP,
    substeps: int = CONTACT_SUBSTEPS,
    approach_speed: float = 0.0,
    fps: float = FPS,
    discs: Mapping[int, float] | None = None,
) -> tuple[Collision, ...]:
    """Collisions of a trajectory of object states, by the rule in the module docstring.

    Args:
        trajectory: Frames in order (consecutive frame ids; objects may be absent from some).
        shapes: ``object_id -> shape`` (``cube``: a square footprint turned by its yaw;
            anything else: a disc).
        tolerance: Footprints at most this far apart (scene units) touch.
        gap: A touch is a new collision when the pair did not touch in the previous ``gap`` frames.
        substeps: States checked per frame on each path (see the module docstring).
        approach_speed: With a positive value, a pair touches only when its centres also
            closed in at this speed or faster (scene units a second) over the frame or the
            frame before (the bounce path): footprints that lie close without closing in
            (resting side by side, sliding past) do not collide; meant for a ``tolerance``
            above 0 on predicted states.  0: no such test (the rule on true states).
        fps: Frames per second (approach speeds).
        discs: ``object_id -> radius``: these objects are discs of that radius, whatever
            their shape (a cube whose yaw is not known: see
            :attr:`~physics.models.video_propnet.RolloutConfig.unknown_yaw_reach`).

    Returns:
        Collisions in frame order (pairs sorted within a frame), ``object_ids`` sorted,
        located at the midpoint of the two centres.
    """
    if tolerance < 0 or gap < 1 or substeps < 1 or approach_speed < 0 or fps <= 0:
        raise ConfigError(f"state_collisions needs tolerance >= 0, gap >= 1, substeps >= 1, approach_speed >= 0, fps > 0; "
                          f"got {tolerance}, {gap}, {substeps}, {approach_speed}, {fps}")
    discs = dict(discs or {})
    bad = {k: r for k, r in discs.items() if not (math.isfinite(r) and r > 0)}
    if bad:
        raise ConfigError(f"state_collisions: disc radii must be finite numbers > 0, got {bad}")
    out: list[Collision] = []
    last_touch: dict[tuple[int, int], int] = {}
    prev: dict[int, np.ndarray] = {}
    prev2: dict[int, np.ndarray] = {}
    fractions = np.arange(1, substeps + 1) / substeps
    for fr in trajectory:
        now = {o.object_id: np.array([*o.location[:2], yaw_of(o.orientation)]) for o in fr.objects}
        ids = sorted(now)
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
        # every pair's footprints at every checked state of the frame, in one array: [K, 3] each
        sa: list[np.ndarray] = []
        sb: list[np.ndarray] = []
        owner: list[np.ndarray] = []
        for k, (a, b) in enumerate(pairs):
            if a not in prev or b not in prev:
                sa.append(now[a][None])
                sb.append(now[b][None])
                owner.append(np.array([k]))
                continue
            paths = [(_unwrapped(prev[a], now[a]), _unwrapped(prev[b], now[b]))]
            if a in prev2 and b in prev2:  # on, at the speed before: a bounce within the frame
                paths.append((_unwrapped(prev2[a], prev[a]), _unwrapped(prev2[b], prev[b])))
            for da, db in paths:
                sa.append(prev[a] + fractions[:, None] * da)
                sb.append(prev[b] + fractions[:, None] * db)
                owner.append(np.full(substeps, k))
        touching: set[int] = set()
        if pairs:
            rows = np.concatenate(owner)
            cube = np.array([[shapes.get(a) == "cube" and a not in discs, shapes.get(b) == "cube" and b not in discs]
                             for a, b in pairs])[rows]
            gaps = footprint_gaps(np.concatenate(sa), np.concatenate(sb), cube[:, 0], cube[:, 1])
            if discs:  # a disc of radius r reaches HALF_EXTENT - r less than the footprints' discs
                shrink = np.array([2.0 * HALF_EXTENT - discs.get(a, HALF_EXTENT) - discs.get(b, HALF_EXTENT)
                                   for a, b in pairs])
                gaps = gaps + shrink[rows]
            close = gaps <= tolerance
            if approach_speed > 0:
                close &= _closing(pairs, now, prev, prev2, fps)[rows] >= approach_speed
            touching = set(rows[close].tolist())
        by_id = fr.by_id()
        for k in sorted(touching):
            a, b = pairs[k]
            before = last_touch.get((a, b))
            if before is None or fr.frame_id - before > gap:
                mid = (np.asarray(by_id[a].location) + np.asarray(by_id[b].location)) / 2.0
                out.append(Collision((a, b), fr.frame_id, tuple(round(float(x), 5) + 0.0 for x in mid)))
            last_touch[(a, b)] = fr.frame_id
        prev2, prev = prev, now
    return tuple(out)


def closest_approach(
    trajectory: Sequence[FrameStates],
    pair: tuple[int, int],
    shapes: Mapping[int, str],
    discs: Mapping[int, float] | None = None,
) -> float | None:
    """The smallest footprint gap of ``pair`` over ``trajectory`` (scene units; negative: overlapping).

    Footprints as :func:`state_collisions` sees them at each frame's state (no substeps):
    a cube a square turned by its yaw unless ``discs`` gives it a radius, anything else a
    disc of :data:`HALF_EXTENT`.  Frames without both objects are skipped.

    Returns:
        The gap, or None when no frame holds both objects.

    >>> from physics.worlds.clevrer_annotation import ObjectState
    >>> def at(k, x): return ObjectState(k, (x, 0.0, 0.35), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), True)
    >>> frames = [FrameStates(f, (at(0, 0.0), at(1, 2.0 - 0.1 * f))) for f in range(5)]
    >>> round(closest_approach(frames, (0, 1), {0: "sphere", 1: "sphere"}), 3)
    0.9
    """
    a, b = pair
    discs = dict(discs or {})
    rows = []
    for fr in trajectory:
        by_id = fr.by_id()
        if a in by_id and b in by_id:
            rows.append([[*by_id[k].location[:2], yaw_of(by_id[k].orientation)] for k in (a, b)])
    if not rows:
        return None
    xy = np.asarray(rows, dtype=float)
    cube = [shapes.get(k) == "cube" and k not in discs for k in (a, b)]
    gaps = footprint_gaps(xy[:, 0], xy[:, 1], np.full(len(xy), cube[0]), np.full(len(xy), cube[1]))
    gaps = gaps + 2.0 * HALF_EXTENT - discs.get(a, HALF_EXTENT) - discs.get(b, HALF_EXTENT)
    return float(gaps.min())


def _closing(pairs: Sequence[tuple[int, int]], now: Mapping[int, np.ndarray], prev: Mapping[int, np.ndarray],
             prev2: Mapping[int, np.ndarray], fps: float) -> np.ndarray:
    """Per pair, the faster rate its centres closed in over this frame or the one before (units/s).

    0 at the first frame of either object, where no motion is known (no collision under the test).
    """
    out = np.zeros(len(pairs))
    for k, (a, b) in enumerate(pairs):
        if a not in prev or b not in prev:
            continue
        d_now = float(np.hypot(*(now[a][:2] - now[b][:2])))
        d_prev = float(np.hypot(*(prev[a][:2] - prev[b][:2])))
        rate = d_prev - d_now
        if a in prev2 and b in prev2:
            rate = max(rate, float(np.hypot(*(prev2[a][:2] - prev2[b][:2]))) - d_prev)
        out[k] = rate * fps
    return out


def vote_collisions(members: Sequence[Sequence[Collision]], votes: int, window: int) -> tuple[Collision, ...]:
    """The collisions that at least ``votes`` of an ensemble's rollouts agree on.

    Each member's collisions of a pair are grouped in frame order: an event joins the
    group whose first event lies at most ``window`` frames before it, else starts a new
    one.  A group found by at least ``votes`` distinct members is kept as one collision
    at its events' median frame (the lower median), located at their mean location.

    Args:
        members: Each rollout's collisions.
        votes: Members that must agree (1: the union; ``len(members)``: every one).
        window: Frames within which events of one pair are the same collision.

    Returns:
        Collisions in frame order (pairs sorted within a frame), ``object_ids`` sorted.
    """
    if votes < 1 or window < 0:
        raise ConfigError(f"vote_collisions needs votes >= 1 and window >= 0, got {votes}, {window}")
    by_pair: dict[tuple[int, ...], list[tuple[int, int, Collision]]] = {}
    for m, collisions in enumerate(members):
        for c in collisions:
            by_pair.setdefault(tuple(sorted(c.object_ids)), []).append((c.frame_id, m, c))
    out: list[Collision] = []
    for pair, events in by_pair.items():
        events.sort(key=lambda e: (e[0], e[1]))
        groups: list[list[tuple[int, int, Collision]]] = []
        for e in events:
            if groups and e[0] - groups[-1][0][0] <= window:
                groups[-1].append(e)
            else:
                groups.append([e])
        for g in groups:
            if len({m for _, m, _ in g}) < votes:
                continue
            frames = sorted(f for f, _, _ in g)
            where = np.mean([c.location for _, _, c in g], axis=0)
            out.append(Collision(pair, frames[(len(frames) - 1) // 2], tuple(round(float(x), 5) + 0.0 for x in where)))
    return tuple(sorted(out, key=lambda c: (c.frame_id, c.object_ids)))


def yaw_of(orientation: Sequence[float]) -> float:
    """Yaw (rotation about z) of Euler angles (x, y, z) or a quaternion (x, y, z, w)."""
    if len(orientation) == 4:
        x, y, z, w = orientation
        return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return float(orientation[2])


def _unwrapped(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``after - before`` for (x, y, yaw), the yaw difference taken the short way round."""
    d = after - before
    d[2] = (d[2] + math.pi) % (2.0 * math.pi) - math.pi
    return d


def footprint_gaps(a: np.ndarray, b: np.ndarray, cube_a: np.ndarray, cube_b: np.ndarray) -> np.ndarray:
    """Separation of footprints at (x, y, yaw) ``a`` and ``b`` ``[K, 3]`` (negative: overlapping) ``[K]``.

    Discs of radius :data:`HALF_EXTENT`; a cube (``cube_a`` / ``cube_b`` ``[K]`` bool) is a
    square of half-side ``HALF_EXTENT / sqrt(2)`` (CLEVR shrinks cubes so a turned one keeps
    its footprint).  Square against square is the separating-axis distance over the four
    edge normals (exact for faces, a lower bound corner to corner).
    """
    h, hc = HALF_EXTENT, HALF_EXTENT / math.sqrt(2.0)
    offset = b[:, :2] - a[:, :2]
    disc_disc = np.hypot(offset[:, 0], offset[:, 1]) - 2.0 * h
    ua, va = _axes(a[:, 2])
    ub, vb = _axes(b[:, 2])
    # square a against disc b, and square b against disc a
    sq_disc_a = _square_to_point(offset, ua, va, hc) - h
    sq_disc_b = _square_to_point(-offset, ub, vb, hc) - h
    sep = np.full(len(a), -np.inf)
    for ax in (ua, va, ub, vb):
        ext = hc * (np.abs(_dot(ax, ua)) + np.abs(_dot(ax, va)) + np.abs(_dot(ax, ub)) + np.abs(_dot(ax, vb)))
        sep = np.maximum(sep, np.abs(_dot(offset, ax)) - ext)
    return np.where(cube_a & cube_b, sep, np.where(cube_a, sq_disc_a, np.where(cube_b, sq_disc_b, disc_disc)))


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x * y).sum(axis=1)


def _axes(yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c, s], axis=1), np.stack([-s, c], axis=1)


def _square_to_point(rel: np.ndarray, u: np.ndarray, v: np.ndarray, half: float) -> np.ndarray:
    """Distance from points ``rel`` (relative to square centres) to squares of half-side ``half`` (axes u, v)."""
    q = np.abs(np.stack([_dot(rel, u), _dot(rel, v)], axis=1)) - half
    outside = np.hypot(np.maximum(q[:, 0], 0.0), np.maximum(q[:, 1], 0.0))
    return outside + np.minimum(q.max(axis=1), 0.0)


def match_collisions(
    predicted: Sequence[Collision], true: Sequence[Collision], window: int = 2
) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of predicted collision events.

    A predicted collision matches a true one of the same pair of objects at most
    ``window`` frames away (each used once; the nearest frame first, true events in order).
    """
    used: set[int] = set()
    tp = 0
    for c in true:
        pair = tuple(sorted(c.object_ids))
        best = None
        for i, p in enumerate(predicted):
            df = abs(p.frame_id - c.frame_id)
            if i in used or tuple(sorted(p.object_ids)) != pair or df > window:
                continue
            if best is None or df < best[0]:
                best = (df, i)
        if best is not None:
            used.add(best[1])
            tp += 1
    return tp, len(predicted) - tp, len(true) - tp


# registered last: reading the registry imports the learned providers, which import this module
register_video_dynamics("gt", _ground_truth, help="the world's re-simulation, from each video's truth file")
