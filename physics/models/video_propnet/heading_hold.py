"""Free objects of a future rollout kept on their heading (``RolloutConfig.heading_hold``; off by default).

In the world an object sliding or rolling on the floor with no other object near it moves on a straight line,
while the learned PropNet's step turns it a little every frame (by about 2-3 degrees over 20-30 frames on CLEVRER-style
videos; docs/results/clevrer.md), so a near pass the world makes drifts off its collision course.  With the option
on, an object whose footprint stays ``heading_hold_clearance`` or farther from every other object's, before and
after a predicted step, keeps the heading of its last step; the PropNet's step length (its speed) stands, and
near another object the PropNet's whole step stands (contacts are the learned model's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from physics.models.video_propnet.config import HEADING_HOLDS, REST_STEP
from physics.video_dynamics import CUBE_MEAN_REACH, HALF_EXTENT

__all__ = ["HEADING_HOLDS", "HeadingHold"]


class HeadingHold:
    """Turns the free moving objects' predicted steps onto their last heading (see the module docstring).

    Args:
        mode: ``"spheres"``: free spheres only; ``"all"``: every free moving object.
        clearance: Footprint gap (scene units) from every other object that makes an object free.
        shapes: Shape of each object of the rollout's state, in its order.
    """

    def __init__(self, mode: str, clearance: float, shapes: Sequence[str]) -> None:
        self.clearance = clearance
        self.reach = np.array([CUBE_MEAN_REACH if s == "cube" else HALF_EXTENT for s in shapes])
        self.held = np.array([mode == "all" or s == "sphere" for s in shapes], bool)

    def free(self, xy: np.ndarray, i: int) -> bool:
        """Whether object ``i`` of ``xy`` ``[N, 2]`` (NaN rows absent) is ``clearance`` or more from every other."""
        here = ~np.isnan(xy[:, 0])
        here[i] = False
        gaps = np.linalg.norm(xy[here] - xy[i], axis=1) - self.reach[here] - self.reach[i]
        return bool((gaps >= self.clearance).all())

    def step(self, state: np.ndarray, predicted: np.ndarray, f: int) -> None:
        """Turn the free objects' steps into frame ``f`` onto their last heading (``state`` ``[T, N, 3]``, in place)."""
        if f < 2:
            return
        for i in np.flatnonzero(predicted[f] & self.held):
            before, older, now = state[f - 1, i, :2], state[f - 2, i, :2], state[f, i, :2]
            if np.isnan(before).any() or np.isnan(older).any() or np.isnan(now).any():
                continue
            last = before - older
            length = float(np.hypot(*last))
            if length < REST_STEP:  # at rest: no heading to keep
                continue
            if not (self.free(state[f - 1, :, :2], i) and self.free(state[f, :, :2], i)):
                continue
            state[f, i, :2] = before + last / length * float(np.hypot(*(now - before)))
