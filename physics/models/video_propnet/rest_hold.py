"""Resting objects held in place in a future rollout (``RolloutConfig.rest_hold``; off by default).

The learned PropNet pushes apart objects that rest against each other at the video's end; with the option on,
an object at rest at the last observed frame keeps its place until another object comes near
(:class:`RestHold`; ``docs/results/clevrer.md``, thirty-first session, nsdr18).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from physics.models.video_propnet.config import REST_STEP
from physics.video_dynamics import CUBE_MEAN_REACH, HALF_EXTENT

__all__ = ["RestHold"]


class RestHold:
    """Keeps the objects at rest at the video's end in place in a future rollout (``RolloutConfig.rest_hold``).

    The learned PropNet pushes apart objects resting against each other at the video's end (a cube at rest
    touching another resting object can accelerate to nearly 1 unit/s with no collision, and the collision
    the world then makes with it is missed; ``docs/results/clevrer.md``, thirty-first session, nsdr18).  An
    object whose last observed step is below :data:`REST_STEP` keeps its last centre and orientation while every
    object not held stays ``distance`` or farther from its footprint (at the step's start and end; held objects
    never release each other); once one comes nearer it is released, for the rest of the rollout, to the PropNet
    (a push is the learned model's).

    Args:
        distance: Footprint gap (scene units) from every other object within which the hold ends.
        shapes: Shape of each object of the rollout's state, in its order.
    """

    def __init__(self, distance: float, shapes: Sequence[str]) -> None:
        self.distance = distance
        self.reach = np.array([CUBE_MEAN_REACH if s == "cube" else HALF_EXTENT for s in shapes])
        self.held: np.ndarray | None = None

    def _clear(self, xy: np.ndarray, here: np.ndarray, i: int) -> bool:
        others = ~np.isnan(xy[:, 0]) & ~self.held  # held objects never release each other
        others[i] = False
        gaps = np.linalg.norm(xy[others] - here, axis=1) - self.reach[others] - self.reach[i]
        return bool((gaps >= self.distance).all())

    def step(self, state: np.ndarray, predicted: np.ndarray, f: int) -> None:
        """Hold the resting objects predicted at frame ``f`` (``state`` ``[T, N, 3]``, in place; the first call,
        at the first predicted frame, finds which objects rest)."""
        if self.held is None:
            if f < 2:
                self.held = np.zeros(state.shape[1], bool)
                return
            last, before = state[f - 1, :, :2], state[f - 2, :, :2]
            ok = ~np.isnan(last[:, 0]) & ~np.isnan(before[:, 0])
            steps = np.where(ok, np.linalg.norm(np.nan_to_num(last - before), axis=1), np.inf)
            self.held = steps < REST_STEP
        for i in np.flatnonzero(self.held & predicted[f]):
            here = state[f - 1, i, :2]
            if self._clear(state[f - 1, :, :2], here, i) and self._clear(state[f, :, :2], here, i):
                state[f, i] = state[f - 1, i]
            else:
                self.held[i] = False
