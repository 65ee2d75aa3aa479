"""RiceGrip: two grippers squeeze a block of plastic material (DPI-Net's RiceGrip, 2-D MPM).

A block of snow-like elasto-plastic particles (it keeps the dent it is given)
sits on the floor between two rectangular grippers, kinematic bodies whose
outlines are marker nodes.  The action is each gripper's velocity: the seeded
policy closes them at a random speed to a random squeeze depth, holds, and
opens them again, with a random common vertical drift.

Reference: Li et al., ICLR 2019 (arXiv 1810.01566), Sec. 4 (RiceGrip).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physics.errors import ConfigError
from physics.worlds.dynamics.particle_base import (
    PLASTIC,
    ParticleConfig,
    ParticleWorld,
    block,
    segment,
)
from physics.worlds.dynamics.registry import register_world

__all__ = ["RiceGripConfig", "RiceGrip"]


@dataclass(frozen=True)
class RiceGripConfig(ParticleConfig):
    """Block, grippers and the squeezing policy."""

    steps: int = field(default=80, metadata={"help": "recorded steps per rollout"})
    block_width: tuple[float, float] = field(default=(0.12, 0.16), metadata={"help": "range of the block width (m)"})
    block_height: tuple[float, float] = field(default=(0.14, 0.18), metadata={"help": "range of the block height (m)"})
    gripper_size: tuple[float, float] = field(default=(0.04, 0.12), metadata={"help": "gripper width, height (m)"})
    speed: tuple[float, float] = field(default=(0.1, 0.2), metadata={"help": "range of the closing speed (m/s)"})
    squeeze: tuple[float, float] = field(default=(0.2, 0.4), metadata={"help": "range of the squeeze, fraction of the width"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("block_width", "block_height", "speed", "squeeze"):
            lo, hi = getattr(self, key)
            if not 0 < lo <= hi:
                raise ConfigError(f"RiceGripConfig.{key} must be a range 0 < low <= high, got {getattr(self, key)}")
        if self.block_width[1] + 2 * self.gripper_size[0] > 0.7 or self.squeeze[1] >= 0.5:
            raise ConfigError("RiceGripConfig: block plus grippers must fit in 0.7 m and squeeze stay below 0.5")


class RiceGrip(ParticleWorld):
    """Two grippers squeeze a plastic block (2-D MLS-MPM, snow-like plasticity)."""

    name = "ricegrip"
    config_cls = RiceGripConfig
    config: RiceGripConfig

    def _build(self, rng: np.random.Generator) -> None:
        cfg = self.config
        dx = cfg.dx
        sp = dx / 2
        floor = 3 * dx
        w = rng.uniform(*cfg.block_width)
        h = rng.uniform(*cfg.block_height)
        self._add_particles(block(np.array([0.5 - w / 2, floor]), np.array([w, h]), sp), PLASTIC)
        self._domain_walls(sides=(0.1, 0.9), height=0.05)
        gw, gh = cfg.gripper_size
        bottom = floor + rng.uniform(0.01, max(0.011, h - gh))
        gap = 2 * dx
        self._grippers = []
        for side in (-1, 1):
            inner = 0.5 + side * (w / 2 + gap)
            x0, x1 = (inner - gw, inner) if side < 0 else (inner, inner + gw)
            outline = np.concatenate([
                segment((x0, bottom), (x1, bottom), dx), segment((x1, bottom), (x1, bottom + gh), dx),
                segment((x1, bottom + gh), (x0, bottom + gh), dx), segment((x0, bottom + gh), (x0, bottom), dx),
            ])
            outline = np.unique(np.round(outline, 9), axis=0)
            self._grippers.append(self._add_body(outline, rects=[(x0, bottom, x1, bottom + gh)]))
        speed = rng.uniform(*cfg.speed)
        close_steps = max(1, int(round((rng.uniform(*cfg.squeeze) * w / 2 + gap) / (speed * self.dt))))
        hold = int(rng.integers(3, 10))
        self._plan = (speed, close_steps, hold, float(rng.uniform(-0.05, 0.1)))

    def _sample_action(self) -> np.ndarray:
        speed, close_steps, hold, lift = self._plan
        t = self._t
        if t < close_steps:
            vx, vy = speed, 0.0
        elif t < close_steps + hold:
            vx, vy = 0.0, lift
        elif t < 2 * close_steps + hold:
            vx, vy = -speed, lift
        else:
            vx, vy = 0.0, 0.0
        action = np.zeros((self.num_nodes, 2))
        for side, body in zip((-1, 1), self._grippers, strict=True):
            action[self._shell_range(body)] = (-side * vx, vy)
        return action


register_world(RiceGrip, help="two grippers squeeze a plastic block (Taichi MPM, 2-D)")
