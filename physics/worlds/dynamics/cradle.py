"""Newton's cradle: balls on strings, momentum passed along the chain (PropNet).

Each ball is a pybullet multibody pendulum: a fixed base at its pivot and one
link (the ball) on a revolute joint about the y axis, so every ball swings in the
x-z plane and its string length is exact.  An episode lifts one or two balls at
one end by a seeded random angle and lets them go; with restitution 1 the impact
travels through the resting balls and the far end swings out.

Nodes: the balls ``0..B-1`` and, when ``include_pivots`` is set, the fixed
pivots ``B..2B-1``.  ``node_attr`` is the one-hot ``[ball, pivot]``.  Fixed
relations are the strings ball <-> pivot (both directions, ``edge_attr`` = string
length); the ball-ball contacts are *not* fixed relations: a learned model must
find them from proximity, as in PropNet.

Reference: Li et al., "Propagation Networks for Model-Based Control Under
Partial Observation", ICRA 2019, section V (Newton's cradle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physics.errors import ConfigError
from physics.worlds.dynamics.base import DynamicsWorld, WorldConfig
from physics.worlds.dynamics.registry import register_world

__all__ = ["CradleConfig", "NewtonsCradle"]

BALL, PIVOT = 0, 1  # node_attr columns


@dataclass(frozen=True)
class CradleConfig(WorldConfig):
    """Newton's cradle geometry and episode randomisation."""

    num_balls: int = field(default=5, metadata={"help": "balls in the cradle"})
    radius: float = field(default=0.05, metadata={"help": "ball radius (m)"})
    string_length: float = field(default=0.3, metadata={"help": "pivot to ball centre (m)"})
    # Balls nearly touch: a 1 mm gap (2% of the radius) lets bullet resolve the impacts
    # pair by pair, as in an ideal cradle.  Exactly touching balls are solved as one
    # contact island and the whole row swings off together at 40% of the lift angle
    # (measured); with the gap the far ball reaches the full lift angle and 97-99% of
    # the energy is left after 10 s (10 seeds).
    gap: float = field(default=0.001, metadata={"help": "gap between neighbouring balls at rest (m)"})
    mass: float = field(default=0.1, metadata={"help": "ball mass (kg)"})
    restitution: float = field(default=1.0, metadata={"help": "ball-ball restitution"})
    lift_angle_deg: tuple[float, ...] = field(
        default=(15.0, 45.0), metadata={"help": "range of the release angle (degrees)"}
    )
    lift_counts: tuple[int, ...] = field(default=(1, 2), metadata={"help": "how many end balls may be lifted"})
    include_pivots: bool = field(default=True, metadata={"help": "add the fixed pivots as nodes"})
    steps: int = field(default=150, metadata={"help": "recorded steps per rollout"})
    # Recorded at 30 Hz (8 physics steps of 1/240 s per frame), as PropNet records its
    # cradle: an impact crosses the 1 mm gaps one pair per physics step, so the whole
    # chain (4 contacts) is passed within one recorded frame in most impacts
    # (measured: at 60 Hz the far ball starts moving one frame after the impact in
    # most episodes, and a model can read the impact from the middle balls'
    # velocities instead of propagating it).
    frame_skip: int = field(default=8, metadata={"help": "physics steps per recorded step"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_balls < 2:
            raise ConfigError(f"CradleConfig.num_balls must be >= 2, got {self.num_balls}")
        for key in ("radius", "string_length", "mass"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"CradleConfig.{key} must be positive, got {getattr(self, key)}")
        if self.gap < 0:
            raise ConfigError(f"CradleConfig.gap must be >= 0, got {self.gap}")
        if not 0 <= self.restitution <= 1:
            raise ConfigError(f"CradleConfig.restitution must lie in [0, 1], got {self.restitution}")
        lo_hi = tuple(self.lift_angle_deg)
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1] < 90:
            raise ConfigError(
                f"CradleConfig.lift_angle_deg must be (low, high) with 0 < low <= high < 90, got {lo_hi}"
            )
        counts = tuple(self.lift_counts)
        if not counts or any(not 1 <= c < self.num_balls for c in counts):
            raise ConfigError(
                f"CradleConfig.lift_counts must hold values in 1..{self.num_balls - 1}, got {counts}"
            )


class NewtonsCradle(DynamicsWorld):
    """Newton's cradle with ``num_balls`` pendulums (see the module docstring)."""

    name = "cradle"
    config_cls = CradleConfig
    config: CradleConfig

    def __init__(self, config: CradleConfig | None = None) -> None:
        super().__init__(config)
        self._bodies: list[int] = []
        self.lifted: tuple[int, ...] = ()
        self.lift_angle = 0.0

    # ------------------------------------------------------------------ geometry
    def pivots(self) -> np.ndarray:
        """Fixed pivot positions ``[B, 3]``: a row along x, centred at the origin."""
        cfg = self.config
        b = cfg.num_balls
        x = (np.arange(b) - (b - 1) / 2) * (2 * cfg.radius + cfg.gap)
        z = np.full(b, cfg.string_length + cfg.radius + 0.05)  # balls hang 5 cm above z=0
        return np.stack([x, np.zeros(b), z], axis=1)

    def _engine_parameters(self) -> dict[str, Any]:
        # No positional error correction at contacts: with restitution 1 the
        # ERP push-out adds energy at every impact (measured: the swing grows
        # from 30 to 45 degrees within 3 s at the default ERP).
        return {"contactERP": 0.0, "restitutionVelocityThreshold": 1e-3}

    def _camera(self) -> tuple[list[float], float, float, float]:
        piv = self.pivots()
        target = [0.0, 0.0, float(piv[0, 2] - self.config.string_length / 2)]
        width = float(piv[-1, 0] - piv[0, 0]) + 2 * self.config.string_length
        return target, 0.9 * width, 0.0, -5.0

    # ------------------------------------------------------------------ hooks
    def _build(self, rng: np.random.Generator) -> None:
        cfg = self.config
        b = cfg.num_balls
        pb = self._pb
        down = [0.0, 0.0, -cfg.string_length]
        self._bodies = []
        colors = [0.75, 0.75, 0.8, 1.0]
        for pivot in self.pivots():
            col = self._call("createCollisionShape", pb.GEOM_SPHERE, radius=cfg.radius, collisionFramePosition=down)
            vis = self._call(  # the ball and a thin cylinder for its string
                "createVisualShapeArray",
                shapeTypes=[pb.GEOM_SPHERE, pb.GEOM_CYLINDER],
                radii=[cfg.radius, 0.05 * cfg.radius],
                lengths=[0.0, cfg.string_length],
                visualFramePositions=[down, [0.0, 0.0, -cfg.string_length / 2]],
                rgbaColors=[colors, [0.2, 0.2, 0.2, 1.0]],
            )
            body = self._call(
                "createMultiBody",
                baseMass=0.0,
                basePosition=pivot.tolist(),
                linkMasses=[cfg.mass],
                linkCollisionShapeIndices=[col],
                linkVisualShapeIndices=[vis],
                linkPositions=[[0.0, 0.0, 0.0]],
                linkOrientations=[[0.0, 0.0, 0.0, 1.0]],
                linkInertialFramePositions=[down],
                linkInertialFrameOrientations=[[0.0, 0.0, 0.0, 1.0]],
                linkParentIndices=[0],
                linkJointTypes=[pb.JOINT_REVOLUTE],
                linkJointAxis=[[0.0, 1.0, 0.0]],
            )
            # a free joint: switch off the default velocity motor, no damping, no friction
            self._call("setJointMotorControl2", body, 0, pb.VELOCITY_CONTROL, force=0.0)
            self._call(
                "changeDynamics", body, 0,
                restitution=cfg.restitution, lateralFriction=0.0, rollingFriction=0.0,
                spinningFriction=0.0, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0,
            )
            self._bodies.append(body)

        # lift k balls at one end by the same angle (positive joint angle swings toward -x)
        k = int(rng.choice(np.asarray(self.config.lift_counts)))
        left = bool(rng.integers(2))
        lo, hi = cfg.lift_angle_deg
        angle = float(np.radians(rng.uniform(lo, hi)))
        self.lifted = tuple(range(k)) if left else tuple(range(b - k, b))
        self.lift_angle = angle if left else -angle
        for i in self.lifted:
            self._call("resetJointState", self._bodies[i], 0, self.lift_angle, 0.0)

        n = 2 * b if cfg.include_pivots else b
        node_attr = np.zeros((n, 2), np.float32)
        node_attr[:b, BALL] = 1.0
        instance = np.full(n, -1, np.int64)
        instance[:b] = np.arange(b)
        if cfg.include_pivots:
            node_attr[b:, PIVOT] = 1.0
            balls, pivs = np.arange(b), np.arange(b, 2 * b)
            edges = np.stack([np.concatenate([balls, pivs]), np.concatenate([pivs, balls])])
        else:
            edges = np.zeros((2, 0), np.int64)
        self.node_attr = node_attr
        self.instance = instance
        self.edges = edges.astype(np.int64)
        self.edge_attr = np.full((self.edges.shape[1], 1), cfg.string_length, np.float32)
        self.observed = np.ones(n, bool)

    def _positions(self) -> np.ndarray:
        balls = np.array(
            [self._call("getLinkState", body, 0, computeForwardKinematics=1)[0] for body in self._bodies]
        )
        if self.config.include_pivots:
            return np.concatenate([balls, self.pivots()], axis=0)
        return balls

    def joint_angles(self) -> np.ndarray:
        """Current swing angle of each ball ``[B]`` (radians, positive toward -x)."""
        self._require_ready()
        return np.array([self._call("getJointState", body, 0)[0] for body in self._bodies])


register_world(NewtonsCradle, help="Newton's cradle: balls on strings pass an impact along the row")
