"""Carry the fluid: move the container until the fluid's centre of mass rests at a goal (``nesy/FluidShake-v0``).

The environment wraps the ``fluidshake`` world that ``nesy data dynamics`` records
(Taichi MLS-MPM, 2-D): the action is the container's velocity along x, the one
degree of freedom of the world's own shaking policy.  The fluid lags behind a
moving container and sloshes on after it stops, so where the fluid goes is the
dynamics' question, not the container's.

Reference: Li et al., "Learning Particle Dynamics for Manipulating Rigid Bodies,
Deformable Objects, and Fluids", ICLR 2019 (FluidShake).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from physics.control.envs import ControlConfig, ParticleEnv
from physics.errors import ConfigError
from physics.worlds.dynamics.particle_base import FLUID

__all__ = ["FluidShakeTaskConfig", "FluidShakeEnv"]


@dataclass(frozen=True)
class FluidShakeTaskConfig(ControlConfig):
    """Fluid shaking: the fluid's centre of mass must reach a goal beside its start.

    The episode starts after the world has been left ``settle_steps`` recorded steps
    (the fluid settles from its start lattice).  The goal is where the fluid's centre
    of mass rests with the container moved ``shift`` along x: the start's centre of
    mass moved by ``shift``, a seeded length in ``goal_shift`` to either side (fluid at
    rest moves with its container, so the goal is reachable).  Distance: the fluid's
    centre of mass to the goal in (x, y); sloshing lifts the centre of mass (about
    1 cm at the world's largest speed), so the fluid has to arrive nearly calm.

    Attributes:
        goal_shift: Range (m) of the goal's distance along x from the settled start.
        settle_steps: Recorded steps the fluid settles before the episode starts.
        travel: The container's rail: its shift from the start stays within +-travel.
        max_speed: Container speed (m/s) of a normalised action of 1 (the world's largest).
    """

    max_steps: int = 30
    tolerance: float = 0.01
    goal_shift: tuple[float, float] = (0.06, 0.15)
    settle_steps: int = 40
    travel: float = 0.2
    max_speed: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.goal_shift
        if not 0 <= lo <= hi <= self.travel:
            raise ConfigError(f"FluidShakeTaskConfig.goal_shift must be (low, high) with 0 <= low <= high <= travel "
                              f"({self.travel}), got {self.goal_shift}")
        if self.settle_steps < 0 or not self.max_speed > 0:
            raise ConfigError("FluidShakeTaskConfig: settle_steps >= 0 and max_speed > 0 are required")


class FluidShakeEnv(ParticleEnv):
    """Move the container until the fluid's centre of mass reaches a goal (``nesy/FluidShake-v0``).

    Observation: every node's (x, y) (fluid particles, then the container's wall
    markers: the container's state), then the goal (x, y).  Action: the container's
    velocity along x, normalised to ``[-1, 1]`` (``max_speed``).
    """

    world_name = "fluidshake"
    config_cls = FluidShakeTaskConfig
    config: FluidShakeTaskConfig
    action_dim: ClassVar[int] = 1

    @property
    def goal_size(self) -> int:
        return 2

    @property
    def fluid(self) -> np.ndarray:
        """Node indices of the fluid particles."""
        return np.flatnonzero(self.world.node_attr[:, FLUID] > 0.5)

    def _velocity_map(self) -> np.ndarray:
        m = np.zeros((self.world.num_nodes, 2, 1))
        m[self.body_nodes(0), 0, 0] = 1.0  # the container is the world's one body
        return m

    def _rail(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nodes = self.body_nodes(0)
        shift = positions[nodes, 0].mean() - self._start[nodes, 0].mean()
        t = self.config.travel
        return np.array([shift]), np.array([-t]), np.array([t])

    def _prepare(self) -> None:
        for _ in range(self.config.settle_steps):
            self.world.step(None)

    def _sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.config.goal_shift
        shift = rng.uniform(lo, hi) * rng.choice([-1.0, 1.0])
        return self.world.state()[self.fluid].mean(axis=0) + np.array([shift, 0.0])

    def distance(self, positions: np.ndarray) -> float:
        return float(np.linalg.norm(positions[self.fluid].mean(axis=0) - self.goal))

    def cost(self, positions: Tensor) -> Tensor:
        """The fluid's centre-of-mass distance to the goal, averaged over the horizon with the last step doubled."""
        idx = torch.as_tensor(self.fluid, device=positions.device)
        per_step = (positions[:, :, idx].mean(dim=2) - positions.new_tensor(self.goal)).norm(dim=-1)
        return per_step.mean(dim=1) + per_step[:, -1]
