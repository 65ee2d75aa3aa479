"""The dynamics provider :class:`PropNetVideoDynamics`: future and counterfactual rollouts of the video PropNet."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from physics.errors import ConfigError, DataError
from physics.graph.builder import GraphBuilder
from physics.io import PathLike
from physics.models.base import DynamicsModel
from physics.models.resolver import load_model
from physics.models.video_propnet.collisions import (
    _counterfactual_reach_collisions,
    _reach_collisions,
    edge_collisions,
    lookahead_collisions,
    near_miss_candidates,
    near_miss_collisions,
    unrecorded_edge_collisions,
)
from physics.models.video_propnet.config import (
    NODE_ATTR_DIM,
    SHIPPED_CHECKPOINT,
    STATE_DIM,
    RolloutConfig,
    rollout_config,
)
from physics.models.video_propnet.rollout import _Rollout, _Run
from physics.models.video_propnet.trajectories import (
    _attributes,
    _observed_cubes,
    _shapes,
    _tracks,
    launch_actions,
    unknown_yaw_cubes,
)
from physics.video_dynamics import (
    register_video_dynamics,
    state_collisions,
    vote_collisions,
)
from physics.worlds.camera import Camera
from physics.worlds.clevrer_annotation import Collision, FrameStates, VideoAnnotation
from physics.worlds.clevrer_events import derive_events
from physics.worlds.clevrer_truth import Counterfactual, VideoTruth
from physics.worlds.clevrer_world import ClevrerConfig


class PropNetVideoDynamics(_Rollout):
    """Future and counterfactual frames from a learned PropNet over object states.

    Args:
        model: A simulator trained on :func:`video_trajectory` data (``dim`` 3, shape and material attributes).
        config: Rollout settings.
        camera: Decides ``inside_camera_view`` of predicted states (default: the CLEVRER world's).

    >>> dyn = PropNetVideoDynamics.load()  # the shipped checkpoint
    """

    def __init__(self, model: DynamicsModel, config: RolloutConfig = RolloutConfig(), camera: Camera | None = None) -> None:
        cfg = model.config
        if cfg.dim != STATE_DIM or cfg.node_attr_dim != NODE_ATTR_DIM or cfg.edge_attr_dim != 0:
            raise ConfigError(f"a video PropNet needs dim {STATE_DIM}, node_attr_dim {NODE_ATTR_DIM}, edge_attr_dim 0; "
                              f"the model has {cfg.dim}, {cfg.node_attr_dim}, {cfg.edge_attr_dim}")
        self.model = model.eval()
        self.config = config
        world = ClevrerConfig()
        self.camera = camera or world.camera.with_size(world.width, world.height)
        self.builder = GraphBuilder(cfg.graph)
        self.history = cfg.graph.history
        if config.start_fit and config.start_fit < self.history + 2:  # refused here, not at the first rollout
            raise ConfigError(f"start_fit {config.start_fit} frames cannot fit the model's history of "
                              f"{self.history + 1} frames; need >= {self.history + 2}", settings=("start_fit",))

    @classmethod
    def load(cls, checkpoint: PathLike | None = None, config: RolloutConfig = RolloutConfig()) -> PropNetVideoDynamics:
        """From a model file (``None``: the shipped ``clevrer_propnet.pt``).

        Raises:
            CheckpointError: missing or damaged file.
        """
        return cls(_load_cached(str(checkpoint or SHIPPED_CHECKPOINT)), config)

    # ------------------------------------------------------------------ the interface
    def future(self, annotation: VideoAnnotation, frames: int) -> tuple[tuple[FrameStates, ...], tuple[Collision, ...]]:
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
            raise ConfigError(f"future frames must be a non-negative integer, got {frames!r}")
        cfg = self.config
        runs = self.future_runs(annotation, frames)
        members = [self.future_collisions(annotation, run.frames) for run in runs]
        voted = vote_collisions(members, cfg.votes, cfg.vote_window) if cfg.ensemble > 1 else members[0]
        return runs[0].frames[-frames:] if frames else (), voted

    def future_runs(self, annotation: VideoAnnotation, frames: int) -> list[_Run]:
        """Every ensemble member's future rollout, member 0 the plain one (see :class:`RolloutConfig`'s ``ensemble``)."""
        cfg = self.config
        n = len({p.object_id for p in annotation.object_property})
        rng = np.random.default_rng([cfg.ensemble_seed, max(annotation.scene_index, 0)])
        perturbed = cfg.ensemble_shift > 0 or cfg.ensemble_turn > 0 or cfg.ensemble_speed > 0
        runs = []
        for k in range(cfg.ensemble):
            back = min(k % cfg.ensemble_starts, len(annotation.motion_trajectory) - 1)
            jitter = None
            if k and perturbed:
                jitter = (rng.normal(0.0, cfg.ensemble_shift, (n, 2)), rng.normal(0.0, cfg.ensemble_turn, n),
                          rng.normal(0.0, cfg.ensemble_speed, n))
            runs.append(self._run(annotation, removed=None, extra=frames, back=back, jitter=jitter))
        return runs

    def future_collisions(self, annotation: VideoAnnotation, frames: Sequence[FrameStates]) -> tuple[Collision, ...]:
        """The collisions after the last observed frame of a future rollout, by the future rule."""
        cfg = self.config
        tol = cfg.contact_tolerance if cfg.future_tolerance is None else cfg.future_tolerance
        collisions = state_collisions(frames, _shapes(annotation), tol, cfg.collision_gap,
                                      approach_speed=cfg.approach_speed, fps=cfg.fps, discs=self._discs(annotation))
        last = annotation.motion_trajectory[-1].frame_id
        if cfg.lookahead:
            ahead = lookahead_collisions(frames, _shapes(annotation), cfg.lookahead, cfg.lookahead_min_speed, cfg.fps, tol,
                                         cfg.collision_gap, collisions, lambda pair, f: f > last,
                                         self._discs(annotation))
            collisions = tuple(sorted((*collisions, *ahead), key=lambda c: (c.frame_id, c.object_ids)))
        future = tuple(c for c in collisions if c.frame_id > last)
        if cfg.future_reach:
            future = tuple(sorted((*future, *_reach_collisions(frames, _shapes(annotation), cfg, last, future,
                                                               self._discs(annotation))),
                                  key=lambda c: (c.frame_id, c.object_ids)))
        if cfg.near_miss:
            near = near_miss_candidates(frames, _shapes(annotation), tol, cfg.fps, lambda pair, f: f > last,
                                        self._discs(annotation), start=last + 1)
            added = near_miss_collisions(near, cfg.near_miss, collisions, cfg.collision_gap)
            future = tuple(sorted((*future, *added), key=lambda c: (c.frame_id, c.object_ids)))
        edge = edge_collisions(annotation, frames, future, cfg.edge_frames,
                               tol if cfg.edge_tolerance is None else cfg.edge_tolerance, self._discs(annotation))
        if cfg.edge_unrecorded:
            edge += unrecorded_edge_collisions(annotation, frames, collisions, (*future, *edge), cfg.collision_gap,
                                               tol if cfg.edge_tolerance is None else cfg.edge_tolerance,
                                               self._discs(annotation))
        return tuple(sorted((*edge, *future), key=lambda c: c.frame_id)) if edge else future

    def counterfactual(self, annotation: VideoAnnotation, removed_object_id: int) -> Counterfactual:
        ids = {p.object_id for p in annotation.object_property}
        if removed_object_id not in ids:
            raise DataError(f"video {annotation.scene_index} has no object {removed_object_id} to remove (ids {sorted(ids)})")
        run = self._run(annotation, removed=removed_object_id, extra=self.config.future_frames)
        ruled = state_collisions(run.frames, _shapes(annotation), self.config.contact_tolerance, self.config.collision_gap,
                                 discs=self._discs(annotation))
        kept = [c for c in annotation.collision
                if removed_object_id not in c.object_ids and all(run.followed(k, c.frame_id) for k in c.object_ids)]
        kept += [c for c in ruled if not all(run.followed(k, c.frame_id) for k in c.object_ids)]
        cfg = self.config
        if cfg.lookahead and cfg.lookahead_scope == "all":
            kept += lookahead_collisions(run.frames, _shapes(annotation), cfg.lookahead, cfg.lookahead_min_speed, cfg.fps,
                                         cfg.contact_tolerance, cfg.collision_gap, (*ruled, *kept),
                                         lambda pair, f: not all(run.followed(k, f) for k in pair),
                                         self._discs(annotation))
        if cfg.near_miss and cfg.near_miss_scope == "all":
            moved = np.flatnonzero(run.predicted.any(axis=1))
            near = near_miss_candidates(run.frames, _shapes(annotation), cfg.contact_tolerance, cfg.fps,
                                        lambda pair, f: not all(run.followed(k, f) for k in pair), self._discs(annotation),
                                        start=run.first + int(moved[0]) if len(moved) else None)
            kept += near_miss_collisions(near, cfg.near_miss, (*ruled, *kept), cfg.collision_gap)
        if cfg.counterfactual_reach:
            kept += _counterfactual_reach_collisions(run.frames, _shapes(annotation), cfg,
                                                     annotation.motion_trajectory[-1].frame_id, kept,
                                                     self._discs(annotation))
        collisions = tuple(sorted(kept, key=lambda c: (c.frame_id, tuple(sorted(c.object_ids)))))
        last = annotation.motion_trajectory[-1].frame_id
        events = derive_events(run.frames, collisions, end_frame=last)
        return Counterfactual(removed_object_id, run.frames, collisions, tuple(events))

    def _discs(self, annotation: VideoAnnotation) -> dict[int, float]:
        """Objects the collision rule takes as discs of ``unknown_yaw_reach``: the cubes ``yaw_discs`` names."""
        reach = self.config.unknown_yaw_reach
        if reach <= 0:
            return {}
        cubes = _observed_cubes(annotation) if self.config.yaw_discs == "cubes" else unknown_yaw_cubes(annotation)
        return dict.fromkeys(cubes, reach)

    def collision_impulses(self, annotation: VideoAnnotation, truth: VideoTruth) -> list[tuple[float, float]]:
        """Per recorded collision and each of its objects: (true, predicted) velocity change, units/s.

        A diagnostic of the model's contact response with true states in: at the step into
        the first frame a collision is recorded (frame ``c - 1`` to ``c``, observed and future
        collisions), the change of the object's velocity over the previous step's in the
        truth, and in the model's one-step prediction from the true history.  A model that
        only carries objects on (inertia and friction) predicts a change near 0 there.
        Collisions within the model's history of the first frame are skipped.
        """
        frames = (*annotation.motion_trajectory, *truth.future_trajectory)
        tracks = _tracks(annotation, frames)
        ids = sorted(tracks)
        state = np.stack([tracks[k].xyt for k in ids], axis=1)
        actions = launch_actions(state)
        attrs = _attributes(annotation)
        first, fps = frames[0].frame_id, self.config.fps
        out = []
        cache: dict[int, np.ndarray | None] = {}
        for c in (*annotation.collision, *truth.future_collisions):
            t = c.frame_id - first - 1
            if (t < self.history + 1 or t + 1 >= len(frames) or len(c.object_ids) != 2
                    or any(k not in tracks for k in c.object_ids)):  # an object never tracked: nothing to compare
                continue
            if t not in cache:
                cache[t] = self._step(state, actions, attrs, ids, t)
            pred = cache[t]
            for k in c.object_ids:
                i = ids.index(k)
                before = state[t, i, :2] - state[t - 1, i, :2]
                if pred is None or np.isnan(pred[i, 0]) or np.isnan(state[t + 1, i, 0]) or np.isnan(before).any():
                    continue
                out.append((float(np.linalg.norm(state[t + 1, i, :2] - state[t, i, :2] - before) * fps),
                            float(np.linalg.norm(pred[i, :2] - state[t, i, :2] - before) * fps)))
        return out


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> DynamicsModel:
    model, _meta = load_model(path)
    return model


def _propnet(truth: VideoTruth | None, checkpoint: PathLike | None,
             settings: Mapping[str, Any] | None = None) -> PropNetVideoDynamics:
    return PropNetVideoDynamics.load(checkpoint, rollout_config(settings))


register_video_dynamics("propnet", _propnet, help="learned PropNet over object states (the shipped checkpoint unless one is given)")
