"""Rope: a bead chain on the floor, dragged by one end around fixed cylinders (PropNet).

The rope is one pybullet multibody (Featherstone, exact joints): bead ``0`` rides
on three light prismatic joints (x, y, z) and a revolute joint about the vertical
axis, and bead ``k`` hangs on a vertical revolute joint placed ``link_length``
ahead of bead ``k - 1``.  Neighbouring bead centres are therefore always exactly
``link_length`` apart while the rope bends freely in the floor plane, and every
joint axis stays vertical (the rope cannot roll about its own axis); a little
joint friction gives it bending resistance.  Two fixed
cylinders stand in the way.  The action is a horizontal force on bead 0 from a
seeded random policy: a low-pass-filtered pull toward a goal re-drawn every
``goal_every`` steps, plus noise, capped at ``max_force``.

Nodes: the beads ``0..R-1`` (bead 0 actuated) and one node per obstacle (its axis
at bead height).  ``node_attr`` is the one-hot ``[rope, obstacle, actuated]``.
Fixed relations link consecutive beads (both directions, ``edge_attr`` = link
length); rope-obstacle contacts are left for the model to find.

Reference: Li et al., "Propagation Networks for Model-Based Control Under
Partial Observation", ICRA 2019, section V (rope manipulation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physics.errors import ConfigError
from physics.worlds.dynamics.base import DynamicsWorld, WorldConfig
from physics.worlds.dynamics.registry import register_world

__all__ = ["RopeConfig", "Rope"]

ROPE, OBSTACLE, ACTUATED = 0, 1, 2  # node_attr columns
HEAD_LINK = 3  # links 0-2 are the x, y, z carriers; bead k is link HEAD_LINK + k
PRISMATIC_MASS = 1e-3  # kg, each carrier link (5% of a bead)


@dataclass(frozen=True)
class RopeConfig(WorldConfig):
    """Rope geometry, obstacles and the random dragging policy."""

    num_beads: int = field(default=15, metadata={"help": "rope particles"})
    link_length: float = field(default=0.04, metadata={"help": "distance between bead centres (m); bead radius is half"})
    bead_mass: float = field(default=0.02, metadata={"help": "mass of one bead (kg)"})
    # Coulomb friction in every joint: the rope keeps a bend instead of whipping.
    bend_friction: float = field(default=0.001, metadata={"help": "joint friction torque (N m)"})
    floor_friction: float = field(default=0.2, metadata={"help": "bead-floor friction coefficient"})
    num_obstacles: int = field(default=2, metadata={"help": "fixed cylinders"})
    obstacle_radius: float = field(default=0.05, metadata={"help": "cylinder radius (m)"})
    arena: float = field(default=0.4, metadata={"help": "half side of the square the goals are drawn in (m)"})
    max_force: float = field(default=0.5, metadata={"help": "largest pull on bead 0 (N)"})
    action_gain: float = field(default=2.0, metadata={"help": "pull per metre to the goal (N/m)"})
    action_noise: float = field(default=0.1, metadata={"help": "std of the force noise (N)"})
    action_smoothing: float = field(default=0.2, metadata={"help": "low-pass factor of the force per step (0..1]"})
    goal_every: int = field(default=40, metadata={"help": "recorded steps between new goals"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_beads < 2:
            raise ConfigError(f"RopeConfig.num_beads must be >= 2, got {self.num_beads}")
        if self.num_obstacles < 0:
            raise ConfigError(f"RopeConfig.num_obstacles must be >= 0, got {self.num_obstacles}")
        for key in ("link_length", "bead_mass", "obstacle_radius", "arena", "goal_every"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"RopeConfig.{key} must be positive, got {getattr(self, key)}")
        for key in ("bend_friction", "floor_friction", "max_force", "action_gain", "action_noise"):
            if getattr(self, key) < 0:
                raise ConfigError(f"RopeConfig.{key} must be >= 0, got {getattr(self, key)}")
        if not 0 < self.action_smoothing <= 1:
            raise ConfigError(f"RopeConfig.action_smoothing must lie in (0, 1], got {self.action_smoothing}")


class Rope(DynamicsWorld):
    """A bead rope dragged by one end among fixed cylinders (see the module docstring)."""

    name = "rope"
    config_cls = RopeConfig
    config: RopeConfig

    def __init__(self, config: RopeConfig | None = None) -> None:
        super().__init__(config)
        self._rope = -1
        self.obstacles = np.zeros((0, 3))
        self._force = np.zeros(3)
        self._goal = np.zeros(2)
        self._t = 0

    def _camera(self) -> tuple[list[float], float, float, float]:
        return [0.0, 0.0, 0.0], 2.4 * self.config.arena, 0.0, -89.0

    def _actuated_node(self) -> int:
        return 0

    # ------------------------------------------------------------------ hooks
    def _build(self, rng: np.random.Generator) -> None:
        cfg = self.config
        pb = self._pb
        r = cfg.link_length / 2
        plane = self._call("createCollisionShape", pb.GEOM_PLANE)
        floor = self._call("createMultiBody", 0.0, plane)
        self._call("changeDynamics", floor, -1, lateralFriction=cfg.floor_friction)

        # the rope starts straight, centred near the origin, at a random heading
        b = cfg.num_beads
        yaw = float(rng.uniform(-np.pi, np.pi))
        centre = rng.uniform(-0.1, 0.1, size=2)
        heading = np.array([np.cos(yaw), np.sin(yaw)])
        start = centre - heading * cfg.link_length * (b - 1) / 2
        beads = start + np.outer(np.arange(b), heading) * cfg.link_length

        sphere = self._call("createCollisionShape", pb.GEOM_SPHERE, radius=r)
        bead_vis = self._call("createVisualShape", pb.GEOM_SPHERE, radius=r, rgbaColor=[0.9, 0.5, 0.1, 1.0])
        head_vis = self._call("createVisualShape", pb.GEOM_SPHERE, radius=r, rgbaColor=[0.8, 0.1, 0.1, 1.0])
        # A fixed, shapeless root carries three light prismatic links (x, y, z) and then the
        # beads on vertical revolute joints: the rope slides, turns and presses on the floor,
        # but cannot roll about its own axis.  (With bead 0 as a free base it did: the chain is
        # stiff in torsion, so rolling tilted every joint axis and the rope stopped bending in
        # the floor plane, a state the positions do not show.)
        n_links = HEAD_LINK + b
        carriers = [[0.0, 0.0, 0.0]] * HEAD_LINK
        self._rope = self._call(
            "createMultiBody",
            baseMass=0.0,
            basePosition=[0.0, 0.0, r],
            linkMasses=[PRISMATIC_MASS] * HEAD_LINK + [cfg.bead_mass] * b,
            linkCollisionShapeIndices=[-1] * HEAD_LINK + [sphere] * b,
            linkVisualShapeIndices=[-1] * HEAD_LINK + [head_vis] + [bead_vis] * (b - 1),
            linkPositions=carriers + [[0.0, 0.0, 0.0]] + [[cfg.link_length, 0.0, 0.0]] * (b - 1),
            linkOrientations=[[0.0, 0.0, 0.0, 1.0]] * n_links,
            linkInertialFramePositions=[[0.0, 0.0, 0.0]] * n_links,
            linkInertialFrameOrientations=[[0.0, 0.0, 0.0, 1.0]] * n_links,
            linkParentIndices=list(range(n_links)),  # 1-based: link j hangs on link j - 1 (0 is the root)
            linkJointTypes=[pb.JOINT_PRISMATIC] * HEAD_LINK + [pb.JOINT_REVOLUTE] * b,
            linkJointAxis=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] + [[0.0, 0.0, 1.0]] * b,
        )
        for j, value in enumerate([float(start[0]), float(start[1]), 0.0, yaw]):
            self._call("resetJointState", self._rope, j, value)
        for j in range(n_links):
            # free carrier and head joints; on the others a velocity motor with a small force acts as joint friction
            force = cfg.bend_friction if j > HEAD_LINK else 0.0
            self._call("setJointMotorControl2", self._rope, j, pb.VELOCITY_CONTROL, force=force)
        for j in range(HEAD_LINK, HEAD_LINK + b):  # light drag so a released rope settles instead of sliding on
            self._call(
                "changeDynamics", self._rope, j,
                lateralFriction=cfg.floor_friction, linearDamping=0.1, angularDamping=0.1,
            )

        self.obstacles = self._place_obstacles(rng, beads)
        height = 4 * r
        cyl = self._call("createCollisionShape", pb.GEOM_CYLINDER, radius=cfg.obstacle_radius, height=height)
        cyl_vis = self._call(
            "createVisualShape", pb.GEOM_CYLINDER, radius=cfg.obstacle_radius, length=height,
            rgbaColor=[0.3, 0.3, 0.8, 1.0],
        )
        for x, y, _ in self.obstacles:
            self._call("createMultiBody", 0.0, cyl, cyl_vis, [float(x), float(y), height / 2])

        o = cfg.num_obstacles
        n = b + o
        node_attr = np.zeros((n, 3), np.float32)
        node_attr[1:b, ROPE] = 1.0
        node_attr[0, ACTUATED] = 1.0
        node_attr[b:, OBSTACLE] = 1.0
        self.node_attr = node_attr
        self.instance = np.concatenate([np.zeros(b, np.int64), 1 + np.arange(o, dtype=np.int64)])
        chain = np.arange(b - 1)
        self.edges = np.stack([np.concatenate([chain, chain + 1]), np.concatenate([chain + 1, chain])]).astype(np.int64)
        self.edge_attr = np.full((self.edges.shape[1], 1), cfg.link_length, np.float32)
        self.observed = np.ones(n, bool)

        self._force = np.zeros(3)
        self._goal = rng.uniform(-cfg.arena, cfg.arena, size=2)
        self._t = 0

    def _place_obstacles(self, rng: np.random.Generator, beads: np.ndarray) -> np.ndarray:
        """Obstacle axes ``[O, 3]`` (z = bead height), clear of the rope and of each other."""
        cfg = self.config
        clearance = cfg.obstacle_radius + cfg.link_length  # a bead fits between rope and cylinder
        placed: list[np.ndarray] = []
        for _ in range(1000 * max(cfg.num_obstacles, 1)):
            if len(placed) == cfg.num_obstacles:
                break
            xy = rng.uniform(-0.75 * cfg.arena, 0.75 * cfg.arena, size=2)
            if np.linalg.norm(beads - xy, axis=1).min() < clearance:
                continue
            if any(np.linalg.norm(xy - q) < 2 * clearance for q in placed):
                continue
            placed.append(xy)
        else:
            raise ConfigError(
                f"cannot place {cfg.num_obstacles} obstacles of radius {cfg.obstacle_radius} in an arena "
                f"of half side {cfg.arena}; lower num_obstacles or obstacle_radius"
            )
        xy = np.array(placed).reshape(-1, 2)
        return np.concatenate([xy, np.full((len(xy), 1), cfg.link_length / 2)], axis=1)

    def _positions(self) -> np.ndarray:
        links = range(HEAD_LINK, HEAD_LINK + self.config.num_beads)
        states = self._call("getLinkStates", self._rope, list(links), computeForwardKinematics=1)
        beads = np.array([s[4] for s in states])
        return np.concatenate([beads, self.obstacles], axis=0)

    def _head(self) -> np.ndarray:
        return np.asarray(self._call("getLinkState", self._rope, HEAD_LINK, computeForwardKinematics=1)[4])

    def _apply_action(self, action: np.ndarray) -> None:
        force = action[0]
        if force.any():
            self._call(
                "applyExternalForce", self._rope, HEAD_LINK, force.tolist(), self._head().tolist(), self._pb.WORLD_FRAME
            )

    def _sample_action(self) -> np.ndarray:
        cfg = self.config
        if self._t and self._t % cfg.goal_every == 0:
            self._goal = self._rng.uniform(-cfg.arena, cfg.arena, size=2)
        self._t += 1
        head = self._head()[:2]
        target = cfg.action_gain * (self._goal - head) + self._rng.normal(0.0, cfg.action_noise, size=2)
        self._force[:2] += cfg.action_smoothing * (target - self._force[:2])
        norm = np.linalg.norm(self._force[:2])
        if norm > cfg.max_force:
            self._force[:2] *= cfg.max_force / norm
        action = np.zeros((self.num_nodes, 3))
        action[0] = self._force
        return action


register_world(Rope, help="a bead rope dragged by one end around fixed cylinders")
