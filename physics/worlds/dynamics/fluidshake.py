"""FluidShake: fluid in a container that the action shakes sideways (DPI-Net's FluidShake, 2-D MPM).

The container (floor and two side walls, one kinematic body whose walls are
marker nodes) slides along x at the velocity the action gives its nodes; the
fluid inside sloshes.  The walls are slip planes of unbounded height, so no
particle can leave the container.  The seeded random policy draws a new target
speed every ``shake_every`` steps, follows it with a low-pass filter, and turns
back before the container reaches ``travel``.

Reference: Li et al., ICLR 2019 (arXiv 1810.01566), Sec. 4 (FluidShake).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physics.errors import ConfigError
from physics.worlds.dynamics.particle_base import (
    FLUID,
    ParticleConfig,
    ParticleWorld,
    block,
    segment,
)
from physics.worlds.dynamics.registry import register_world

__all__ = ["FluidShakeConfig", "FluidShake"]


@dataclass(frozen=True)
class FluidShakeConfig(ParticleConfig):
    """Container, fluid and the shaking policy."""

    fluid_particles: int = field(default=450, metadata={"help": "about this many fluid particles"})
    width: float = field(default=0.35, metadata={"help": "inner width of the container (m)"})
    wall_height: float = field(default=0.25, metadata={"help": "height of the walls' marker nodes (m)"})
    travel: float = field(default=0.2, metadata={"help": "largest shift of the container from the centre (m)"})
    max_speed: float = field(default=0.6, metadata={"help": "largest container speed (m/s)"})
    shake_every: int = field(default=10, metadata={"help": "recorded steps between new target speeds"})
    smoothing: float = field(default=0.3, metadata={"help": "low-pass factor of the speed per step (0..1]"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fluid_particles < 16:
            raise ConfigError(f"FluidShakeConfig.fluid_particles must be >= 16, got {self.fluid_particles}")
        if not 0.1 <= self.width <= 0.6 or not 0 <= self.travel <= (0.9 - self.width) / 2:
            raise ConfigError(f"FluidShakeConfig: width {self.width} must lie in [0.1, 0.6] and travel {self.travel} "
                              f"in [0, {(0.9 - self.width) / 2:.3f}] (the container stays in the unit square)")
        if self.shake_every < 1 or not 0 < self.smoothing <= 1 or self.max_speed < 0:
            raise ConfigError("FluidShakeConfig: shake_every >= 1, smoothing in (0, 1] and max_speed >= 0 are required")


class FluidShake(ParticleWorld):
    """Fluid in a container shaken sideways by the action (2-D MLS-MPM)."""

    name = "fluidshake"
    config_cls = FluidShakeConfig
    config: FluidShakeConfig

    def _build(self, rng: np.random.Generator) -> None:
        cfg = self.config
        dx = cfg.dx
        sp = dx / 2
        floor = 3 * dx
        lo, hi = 0.5 - cfg.width / 2, 0.5 + cfg.width / 2
        depth = cfg.fluid_particles * sp * sp / (cfg.width - sp)
        self._add_particles(block(np.array([lo + sp / 2, floor]), np.array([cfg.width - sp, depth]), sp), FLUID)
        ss = cfg.shell_spacing * dx
        shell = np.concatenate([
            segment((lo, floor), (hi, floor), ss),
            segment((lo, floor + ss), (lo, floor + cfg.wall_height), ss),
            segment((hi, floor + ss), (hi, floor + cfg.wall_height), ss),
        ])
        self._container = self._add_body(shell, planes=[(0.0, 1.0, floor), (1.0, 0.0, lo), (-1.0, 0.0, -hi)])
        self._speed = 0.0
        self._target = float(rng.uniform(-cfg.max_speed, cfg.max_speed))

    def container_offset(self) -> float:
        """The container's shift along x from the centre (m)."""
        return float(self._bodies[self._container].offset[0])

    def _sample_action(self) -> np.ndarray:
        cfg = self.config
        if self._t and self._t % cfg.shake_every == 0:
            self._target = float(self._rng.uniform(-cfg.max_speed, cfg.max_speed))
        self._speed += cfg.smoothing * (self._target - self._speed)
        ahead = self.container_offset() + self._speed * self.dt
        if abs(ahead) > cfg.travel:  # turn back at the end of the travel
            self._speed = -np.sign(ahead) * min(abs(self._speed), cfg.max_speed)
            self._target = -self._target if np.sign(self._target) == np.sign(ahead) else self._target
        action = np.zeros((self.num_nodes, 2))
        action[self._shell_range(self._container), 0] = self._speed
        return action


register_world(FluidShake, help="fluid in a container shaken by the action (Taichi MPM, 2-D)")
