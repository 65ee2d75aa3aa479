"""A physical prior for the free slide of a future rollout (``RolloutConfig.free_slide``; off by default).

The learned PropNet's free slide after the video drifts from the world's friction (objects more than 1.2 units
from every other; ``docs/results/clevrer.md``, thirtieth session, nsdr16): a rolling sphere at 1-2 units/s loses
about 0.017-0.021 units/s a frame in the rollout against the truth's 0.010-0.014, so fast spheres stall short
of collisions the world makes; a cube or cylinder below 1 unit/s loses 0.03-0.06 against the truth's 0.095, so
it creeps on.  The world's friction is one law: a sliding object (every cube and cylinder, a sphere not yet
rolling) decelerates by :data:`SLIDE_DECEL`, a rolling sphere by :data:`ROLL_DECEL` (both fitted on the truth
of tune pool 98562, never on a gate pool).  With the option on, an object of a future rollout whose
footprints stay ``free_slide_clearance`` or farther from every other object's, before and after the step, moves
on along its last step, that step's speed less the prior's deceleration; near another object the PropNet's step
stands (contacts are the learned model's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from physics.models.video_propnet.config import FREE_SLIDES, REST_STEP
from physics.video_dynamics import CUBE_MEAN_REACH, HALF_EXTENT

__all__ = ["FREE_SLIDES", "ROLL_DECEL", "SLIDE_DECEL", "FreeSlide", "prior_deceleration"]

# Deceleration (units/s lost a frame at 25 fps) against speed (units/s), a quadratic (highest power first) fitted
# to the medians by speed of objects 1.2 units or more from every other in the truth of tune pool 98562 (observed
# and future frames, 3 frames or more from their collisions; nsdr16, docs/results/clevrer.md): sliding, cubes and
# cylinders (0.097 at 0.75 units/s, 0.109 at 2.5, 0.146 at 5, 0.182 at 8: Coulomb friction and a drag), within
# 0.005 of each median; rolling, spheres 15 frames or more after their last collision (0.0046 at 0.25, 0.0096 at
# 1.25, 0.021 at 2.5, 0.039 at 3.5), within 0.0012.
SLIDE_DECEL = (0.00042, 0.0085, 0.088)
ROLL_DECEL = (0.0027, 0.0, 0.005)


def prior_deceleration(speed: float, rolling: bool) -> float:
    """The world's deceleration (units/s a frame, never below 0) of a free object at ``speed`` units/s."""
    return max(float(np.polyval(ROLL_DECEL if rolling else SLIDE_DECEL, speed)), 0.0)


class FreeSlide:
    """Moves the free objects of a future rollout by the friction prior, step by step (see the module docstring).

    Args:
        mode: ``"spheres"``: rolling spheres only; ``"all"``: every free object (sliding ones by
            :data:`SLIDE_DECEL`).
        clearance: Footprint gap (scene units) from every other object that makes an object free.
        shapes: Shape of each object of the rollout's state, in its order.
        fps: Frames per second.
    """

    def __init__(self, mode: str, clearance: float, shapes: Sequence[str], fps: int) -> None:
        self.mode, self.clearance, self.fps = mode, clearance, fps
        self.spheres = np.array([s == "sphere" for s in shapes], bool)
        self.reach = np.array([CUBE_MEAN_REACH if s == "cube" else HALF_EXTENT for s in shapes])

    def free(self, xy: np.ndarray, i: int) -> bool:
        """Whether object ``i`` of ``xy`` ``[N, 2]`` (NaN rows absent) is ``clearance`` or more from every other."""
        here = ~np.isnan(xy[:, 0])
        here[i] = False
        gaps = np.linalg.norm(xy[here] - xy[i], axis=1) - self.reach[here] - self.reach[i]
        return bool((gaps >= self.clearance).all())

    def step(self, state: np.ndarray, predicted: np.ndarray, f: int, sliding: Callable[[int], bool]) -> None:
        """Re-place the free objects predicted at frame ``f`` (``state`` ``[T, N, 3]``, in place).

        ``sliding(i)``: whether sphere ``i`` still slides at frame ``f - 1`` (called once a step for
        each moving sphere, in increasing ``f``, as :meth:`PropNetVideoDynamics._sliding` needs).
        """
        if f < 2:
            return
        for i in np.flatnonzero(predicted[f]):
            before, older = state[f - 1, i, :2], state[f - 2, i, :2]
            if np.isnan(before).any() or np.isnan(older).any():
                continue
            last = before - older
            step = float(np.hypot(*last))
            if step < REST_STEP:  # at rest: the PropNet's step stands
                continue
            rolling = bool(self.spheres[i]) and not sliding(i)
            if self.mode == "spheres" and not rolling:
                continue
            if not (self.free(state[f - 1, :, :2], i) and self.free(state[f, :, :2], i)):
                continue
            speed = step * self.fps
            new = max(speed - prior_deceleration(speed, rolling), 0.0) / self.fps
            state[f, i, :2] = before + last / step * new

