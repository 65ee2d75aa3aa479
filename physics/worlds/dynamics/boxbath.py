"""BoxBath: a rigid box dropped into a bath of about 1,000 fluid particles (DPI-Net's BoxBath, 2-D MPM).

The box is a lattice of particles kept rigid by the simulator: after every MPM
substep its particles are projected to the rotation and translation closest to
them (shape matching, momentum kept), so it exchanges momentum with the fluid
through the grid yet never deforms.  ``instance`` is 0 on the box's particles.

Reference: Li et al., ICLR 2019 (arXiv 1810.01566), Sec. 4 (BoxBath).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physics.errors import ConfigError
from physics.worlds.dynamics.particle_base import FLUID, RIGID, ParticleConfig, ParticleWorld, block
from physics.worlds.dynamics.registry import register_world

__all__ = ["BoxBathConfig", "BoxBath"]


@dataclass(frozen=True)
class BoxBathConfig(ParticleConfig):
    """The bath and the box."""

    fluid_particles: int = field(default=1000, metadata={"help": "about this many fluid particles"})
    tank: tuple[float, float] = field(default=(0.25, 0.75), metadata={"help": "x of the tank's side walls (m)"})
    min_side: float = field(default=0.07, metadata={"help": "smallest box side (m)"})
    max_side: float = field(default=0.09, metadata={"help": "largest box side (m)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fluid_particles < 16:
            raise ConfigError(f"BoxBathConfig.fluid_particles must be >= 16, got {self.fluid_particles}")
        if not 0 < self.min_side <= self.max_side:
            raise ConfigError(f"BoxBathConfig sides must satisfy 0 < min_side <= max_side, got {self.min_side}, {self.max_side}")
        lo, hi = self.tank
        if not 0.05 <= lo < hi <= 0.95 or hi - lo < 2 * self.max_side:
            raise ConfigError(f"BoxBathConfig.tank {self.tank} must lie in [0.05, 0.95] and be twice the box wide")


class BoxBath(ParticleWorld):
    """A rigid box dropped into a fluid bath (2-D MLS-MPM, box kept rigid by shape matching)."""

    name = "boxbath"
    config_cls = BoxBathConfig
    config: BoxBathConfig

    def _build(self, rng: np.random.Generator) -> None:
        cfg = self.config
        dx = cfg.dx
        sp = dx / 2
        lo, hi = cfg.tank
        floor = 3 * dx
        width = hi - lo - sp
        depth = cfg.fluid_particles * sp * sp / width
        self._add_particles(block(np.array([lo + sp / 2, floor]), np.array([width, depth]), sp), FLUID)
        side = rng.uniform(cfg.min_side, cfg.max_side)
        angle = rng.uniform(-np.pi / 4, np.pi / 4)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        local = block(np.array([-side / 2, -side / 2]), np.array([side, side]), sp)
        half = side / np.sqrt(2)
        cx = rng.uniform(lo + half + dx, hi - half - dx)
        cy = floor + depth + half + rng.uniform(0.02, 0.1)
        self._add_particles(local @ rot.T + np.array([cx, cy]), RIGID, rigid=True)
        self._domain_walls(sides=(lo, hi), height=depth + 0.25)


register_world(BoxBath, help="a rigid box dropped into ~1,000 fluid particles (Taichi MPM, 2-D)")
