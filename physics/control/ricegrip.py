"""Shape the dough: squeeze the plastic block until it takes a goal shape (``nesy/RiceGrip-v0``).

The environment wraps the ``ricegrip`` world that ``nesy data dynamics`` records
(Taichi MLS-MPM, 2-D, snow-like plasticity: the block keeps the dent it is given):
the action is the grippers' closing speed of the world's own policy, both closing
(or opening) symmetrically.  The policy's common vertical drift is left out: no
goal uses it, and a sticky gripper moved up or down only smears the block.  A
squeeze cannot be undone, so pressing too deep fails the episode for good.

Reference: Li et al., "Learning Particle Dynamics for Manipulating Rigid Bodies,
Deformable Objects, and Fluids", ICLR 2019 (RiceGrip).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from physics.control.envs import ControlConfig, ParticleEnv
from physics.errors import ConfigError
from physics.worlds.dynamics.particle_base import PLASTIC

__all__ = ["RiceGripTaskConfig", "RiceGripEnv"]


@dataclass(frozen=True)
class RiceGripTaskConfig(ControlConfig):
    """Grip shaping: every particle of the block must reach its place in a goal shape.

    The episode starts with the block settled (``settle_steps`` recorded steps) and
    the grippers closed to its sides (at ``goal_speed``).  The goal is a shape the
    grippers themselves make from there: both close at ``goal_speed`` until each has
    pressed a seeded fraction ``squeeze`` of the block's half width into it, then hold
    ``settle_steps``; the particle positions there are the goal (then the world
    returns to the start).
    The block's size is fixed (``world``), so the observation keeps one size; the
    grippers' height is the world's seeded one.  Distance: mean particle distance to
    the goal places.

    Attributes:
        squeeze: Range of the goal's press per gripper, as a fraction of the block's half width.
        goal_speed: Closing speed (m/s) of the goal's squeeze.
        settle_steps: Recorded steps the block settles before the episode, and held after the goal's squeeze.
        max_speed: Closing speed (m/s) of each gripper at a normalised action of 1.
    """

    max_steps: int = 20
    tolerance: float = 0.01  # dev seed 11: pressing to the goal depth at other speeds comes within 0.8-1.0 cm, the block still flowing
    world: dict[str, Any] = field(default_factory=lambda: {"block_width": (0.14, 0.14), "block_height": (0.16, 0.16)})
    squeeze: tuple[float, float] = (0.3, 0.45)  # from 30%: smaller squeezes leave goals near the start, which random pressing passes through (control.md, eleventh session)
    goal_speed: float = 0.15
    settle_steps: int = 5
    max_speed: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.squeeze
        if not 0 < lo <= hi < 0.5:
            raise ConfigError(f"RiceGripTaskConfig.squeeze must be (low, high) with 0 < low <= high < 0.5, got {self.squeeze}")
        if not (self.goal_speed > 0 and self.max_speed > 0 and self.settle_steps >= 0):
            raise ConfigError("RiceGripTaskConfig: goal_speed > 0, max_speed > 0 and settle_steps >= 0 are required")
        for key in ("block_width", "block_height"):
            rng = self.world.get(key)
            if rng is None or rng[0] != rng[1]:
                raise ConfigError(f"RiceGripTaskConfig.world must fix {key} to one size (low == high), got {rng!r}")


class RiceGripEnv(ParticleEnv):
    """Squeeze the plastic block into a goal shape (``nesy/RiceGrip-v0``).

    Observation: every node's (x, y) (plastic particles, floor markers, the two
    grippers' outlines: their state), then the goal places of the particles.
    Action (normalised to ``[-1, 1]``, ``max_speed``): the grippers' closing speed
    (each moves inwards; negative opens).
    """

    world_name = "ricegrip"
    config_cls = RiceGripTaskConfig
    config: RiceGripTaskConfig
    action_dim: ClassVar[int] = 1

    @property
    def goal_size(self) -> int:
        return 2 * len(self.plastic)

    @property
    def plastic(self) -> np.ndarray:
        """Node indices of the plastic particles."""
        return np.flatnonzero(self.world.node_attr[:, PLASTIC] > 0.5)

    def _grippers(self) -> tuple[np.ndarray, np.ndarray]:
        """The left and the right gripper's marker nodes (bodies 1 and 2: after the floor and walls)."""
        a, b = self.body_nodes(1), self.body_nodes(2)
        return (a, b) if self._start[a, 0].mean() < self._start[b, 0].mean() else (b, a)

    def _velocity_map(self) -> np.ndarray:
        m = np.zeros((self.world.num_nodes, 2, 1))
        left, right = self._grippers()
        m[left, 0, 0], m[right, 0, 0] = 1.0, -1.0  # closing: both inwards
        return m

    def _rail(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        left, right = self._grippers()
        start = self._start
        closed = positions[left, 0].mean() - start[left, 0].mean()
        half_gap = (start[right, 0].min() - start[left, 0].max()) / 2
        return np.array([closed]), np.array([-0.03]), np.array([half_gap - 0.01])  # the grippers stay 2 cm apart

    def _prepare(self) -> None:
        """The block settles ``settle_steps``, then the grippers close at ``goal_speed`` to its sides."""
        cfg = self.config
        for _ in range(cfg.settle_steps):
            self.world.step(None)
        state = self.world.state()
        left, _ = self._grippers()
        gap = state[self.plastic, 0].min() - state[left, 0].max()
        self._press(gap, cfg.goal_speed)
        self.world.step(None)

    def _press(self, depth: float, speed: float) -> None:
        """Close both grippers by ``depth`` (m) each at ``speed`` (m/s), in whole recorded steps."""
        action = self._map[:, :, 0] * speed
        for _ in range(max(0, int(round(depth / (speed * self.world.dt))))):
            self.world.step(action)

    def _sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        block = self._start[self.plastic, 0]
        self._press(rng.uniform(*cfg.squeeze) * (block.max() - block.min()) / 2, cfg.goal_speed)
        for _ in range(cfg.settle_steps):
            self.world.step(None)
        return self.world.state()[self.plastic].reshape(-1)

    def distance(self, positions: np.ndarray) -> float:
        return float(np.linalg.norm(positions[self.plastic] - self.goal.reshape(-1, 2), axis=1).mean())

    def cost(self, positions: Tensor) -> Tensor:
        """Mean particle distance to the goal places, averaged over the horizon with the last step doubled."""
        idx = positions.new_tensor(self.plastic).long()
        goal = positions.new_tensor(self.goal.reshape(-1, 2))
        per_step = (positions[:, :, idx] - goal).norm(dim=-1).mean(dim=-1)
        return per_step.mean(dim=1) + per_step[:, -1]
