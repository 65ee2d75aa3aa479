"""FluidFall: two blobs of fluid fall into a tank and merge (DPI-Net's FluidFall, in 2-D MPM).

Two disks of fluid (radii and places drawn from the seed, one above the other)
start at rest and fall under gravity into a tank whose floor and side walls are
static marker nodes.  About 190-500 fluid particles plus the tank's shell.

Reference: Li et al., "Learning Particle Dynamics for Manipulating Rigid Bodies,
Deformable Objects, and Fluids", ICLR 2019 (arXiv 1810.01566), Sec. 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physics.errors import ConfigError
from physics.worlds.dynamics.particle_base import FLUID, ParticleConfig, ParticleWorld, disk
from physics.worlds.dynamics.registry import register_world

__all__ = ["FluidFallConfig", "FluidFall"]


@dataclass(frozen=True)
class FluidFallConfig(ParticleConfig):
    """Blob sizes and the tank."""

    min_radius: float = field(default=0.045, metadata={"help": "smallest blob radius (m)"})
    max_radius: float = field(default=0.065, metadata={"help": "largest blob radius (m)"})
    tank: tuple[float, float] = field(default=(0.2, 0.8), metadata={"help": "x of the tank's side walls (m)"})
    # one cell outside the planes: where the grid boundary (and the clamp at 2 cells) stops the fluid,
    # so no recorded fluid lies past the markers (docs/results/particles.md, session 9)
    wall_marker_offset: float = field(default=1.0, metadata={
        "help": "how far the floor and side-wall markers sit outside the walls' boundary planes, in grid cells "
                "(0: on the planes)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.min_radius <= self.max_radius <= 0.12:
            raise ConfigError(f"FluidFallConfig radii must satisfy 0 < min_radius <= max_radius <= 0.12, "
                              f"got {self.min_radius}, {self.max_radius}")
        lo, hi = self.tank
        if not 0.05 <= lo < hi <= 0.95 or hi - lo < 4 * self.max_radius:
            raise ConfigError(f"FluidFallConfig.tank {self.tank} must lie in [0.05, 0.95] and hold two blobs side by side")


class FluidFall(ParticleWorld):
    """Two fluid blobs fall into a tank and merge (2-D MLS-MPM)."""

    name = "fluidfall"
    config_cls = FluidFallConfig
    config: FluidFallConfig

    def _build(self, rng: np.random.Generator) -> None:
        cfg = self.config
        dx = cfg.dx
        lo, hi = cfg.tank
        floor = 3 * dx
        r1, r2 = rng.uniform(cfg.min_radius, cfg.max_radius, size=2)
        mid = 0.5 * (lo + hi)
        x1 = mid + rng.uniform(-0.5, 0.5) * (hi - lo - 2 * r1) * 0.5
        x2 = np.clip(x1 + rng.uniform(-1.0, 1.0) * r1, lo + r2 + dx, hi - r2 - dx)
        y1 = floor + r1 + rng.uniform(0.03, 0.1)
        y2 = y1 + r1 + r2 + rng.uniform(0.03, 0.12)
        self._add_particles(disk((x1, y1), r1, dx / 2), FLUID)
        self._add_particles(disk((x2, y2), r2, dx / 2), FLUID)
        self._domain_walls(sides=(lo, hi), height=0.45)


register_world(FluidFall, help="two fluid blobs fall into a tank and merge (Taichi MPM, 2-D)")
