"""Box pushing: a velocity-driven pusher shoves boxes on a floor, partially observed (PropNet).

``num_boxes`` boxes of seeded random footprint lie at a seeded random,
non-overlapping layout; the pusher, a heavy frictionless cylinder, starts at a
free spot among them and moves with the commanded planar velocity, set before
every physics step, so it behaves as a kinematic body that the boxes cannot stop.
The random policy heads for one of the three boxes nearest to the pusher, chosen
at random again every ``goal_every`` steps, with low-pass-filtered noise on the
velocity, capped at ``max_speed``.

Nodes (``box_nodes="centre"``, PropNet's setting): one per box (its centre of
mass) and the pusher last.  ``node_attr`` is ``[box, pusher, size_x, size_y,
size_z]`` (the one-hot type, then the box's full extents in its own frame; the
pusher's are its diameter, diameter, height).  ``instance`` is the box id (the
pusher gets ``num_boxes``).  There are no fixed relations: every interaction is a
contact.  Box yaw is then not part of the state (positions stay ``[N, 3]`` per the
Trajectory contract).

With ``box_nodes="corners"`` (DPI-Net style particles per rigid body) each box
is four nodes at its corners at mid-height, so the state carries the yaw; the
four share the box's ``instance`` and are linked by fixed relations (all ordered
pairs within a box, ``edge_attr`` = rest distance).

``observed`` marks a seeded random subset of the boxes (all nodes of a box) plus
the pusher, PropNet's partially observable setting.

Reference: Li et al., "Propagation Networks for Model-Based Control Under
Partial Observation", ICRA 2019, section V (box pushing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physics.errors import ConfigError
from physics.worlds.dynamics.base import DynamicsWorld, WorldConfig
from physics.worlds.dynamics.registry import register_world

__all__ = ["BoxPushConfig", "BoxPushing"]

BOX, PUSHER = 0, 1  # node_attr type columns; columns 2..4 hold the extents
BOX_NODES = ("centre", "corners")
NEAREST_TARGETS = 3  # the policy pushes nearby boxes, so most episodes move several within a few seconds
CORNERS = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) / 2  # times (size_x, size_y)


@dataclass(frozen=True)
class BoxPushConfig(WorldConfig):
    """Boxes, pusher and the random pushing policy."""

    num_boxes: int = field(default=12, metadata={"help": "boxes on the floor (PropNet: 10-20)"})
    box_size: tuple[float, ...] = field(
        default=(0.04, 0.08), metadata={"help": "range of a box's side length in x and y (m)"}
    )
    box_height: float = field(default=0.04, metadata={"help": "box height (m)"})
    box_mass: float = field(default=0.1, metadata={"help": "box mass (kg)"})
    friction: float = field(default=0.5, metadata={"help": "box-floor and box-box friction coefficient"})
    layout: float = field(default=0.3, metadata={"help": "half side of the square the boxes are placed in (m)"})
    pusher_radius: float = field(default=0.03, metadata={"help": "pusher cylinder radius (m)"})
    max_speed: float = field(default=0.2, metadata={"help": "largest pusher speed (m/s)"})
    speed_noise: float = field(default=0.05, metadata={"help": "std of the velocity noise (m/s)"})
    action_smoothing: float = field(default=0.2, metadata={"help": "low-pass factor of the velocity per step (0..1]"})
    goal_every: int = field(default=40, metadata={"help": "recorded steps between new target boxes"})
    observed_fraction: float = field(default=0.5, metadata={"help": "fraction of boxes a model may see"})
    steps: int = field(default=150, metadata={"help": "recorded steps per rollout"})
    box_nodes: str = field(
        default="centre", metadata={"help": "nodes per box: its centre, or its 4 corners", "choices": BOX_NODES}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_boxes < 1:
            raise ConfigError(f"BoxPushConfig.num_boxes must be >= 1, got {self.num_boxes}")
        size = tuple(self.box_size)
        if len(size) != 2 or not 0 < size[0] <= size[1]:
            raise ConfigError(f"BoxPushConfig.box_size must be (low, high) with 0 < low <= high, got {size}")
        for key in ("box_height", "box_mass", "layout", "pusher_radius", "max_speed", "goal_every"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"BoxPushConfig.{key} must be positive, got {getattr(self, key)}")
        if self.friction < 0 or self.speed_noise < 0:
            raise ConfigError("BoxPushConfig.friction and speed_noise must be >= 0")
        if not 0 < self.action_smoothing <= 1:
            raise ConfigError(f"BoxPushConfig.action_smoothing must lie in (0, 1], got {self.action_smoothing}")
        if self.box_nodes not in BOX_NODES:
            raise ConfigError(f"BoxPushConfig.box_nodes must be one of {BOX_NODES}, got {self.box_nodes!r}")
        if not 0 <= self.observed_fraction <= 1:
            raise ConfigError(f"BoxPushConfig.observed_fraction must lie in [0, 1], got {self.observed_fraction}")


class BoxPushing(DynamicsWorld):
    """Boxes shoved by a kinematic pusher (see the module docstring)."""

    name = "boxes"
    config_cls = BoxPushConfig
    config: BoxPushConfig

    def __init__(self, config: BoxPushConfig | None = None) -> None:
        super().__init__(config)
        self._boxes: list[int] = []
        self._pusher = -1
        self._sizes = np.zeros((0, 2))
        self._velocity = np.zeros(3)
        self._target = 0
        self._t = 0

    @property
    def pusher_node(self) -> int:
        """Index of the pusher's node (the last one)."""
        per_box = 4 if self.config.box_nodes == "corners" else 1
        return per_box * self.config.num_boxes

    def _actuated_node(self) -> int:
        return self.pusher_node

    def _camera(self) -> tuple[list[float], float, float, float]:
        return [0.0, 0.0, 0.0], 3.2 * self.config.layout, 0.0, -89.0

    # ------------------------------------------------------------------ hooks
    def _build(self, rng: np.random.Generator) -> None:
        cfg = self.config
        pb = self._pb
        plane = self._call("createCollisionShape", pb.GEOM_PLANE)
        floor = self._call("createMultiBody", 0.0, plane)
        self._call("changeDynamics", floor, -1, lateralFriction=cfg.friction)

        sizes, centres, yaws = self._layout(rng)
        self._boxes = []
        for (sx, sy), (x, y), yaw in zip(sizes, centres, yaws, strict=True):
            half = [sx / 2, sy / 2, cfg.box_height / 2]
            col = self._call("createCollisionShape", pb.GEOM_BOX, halfExtents=half)
            vis = self._call("createVisualShape", pb.GEOM_BOX, halfExtents=half, rgbaColor=[0.2, 0.6, 0.3, 1.0])
            body = self._call(
                "createMultiBody", cfg.box_mass, col, vis, [float(x), float(y), cfg.box_height / 2],
                pb.getQuaternionFromEuler([0.0, 0.0, float(yaw)]),
            )
            self._call("changeDynamics", body, -1, lateralFriction=cfg.friction)
            self._boxes.append(body)

        start = self._pusher_start(rng, sizes, centres)
        height = 1.5 * cfg.box_height
        col = self._call("createCollisionShape", pb.GEOM_CYLINDER, radius=cfg.pusher_radius, height=height)
        vis = self._call(
            "createVisualShape", pb.GEOM_CYLINDER, radius=cfg.pusher_radius, length=height,
            rgbaColor=[0.8, 0.1, 0.1, 1.0],
        )
        # heavy (10x all boxes together) so that contacts barely slow it between velocity resets
        mass = 10.0 * cfg.box_mass * cfg.num_boxes
        self._pusher = self._call("createMultiBody", mass, col, vis, [float(start[0]), float(start[1]), height / 2])
        self._call("changeDynamics", self._pusher, -1, lateralFriction=0.0, linearDamping=0.0, angularDamping=0.0)

        b = cfg.num_boxes
        self._sizes = sizes
        per_box = 4 if cfg.box_nodes == "corners" else 1
        box_of = np.repeat(np.arange(b), per_box)  # box id of every box node
        p = self.pusher_node
        node_attr = np.zeros((p + 1, 5), np.float32)
        node_attr[:p, BOX] = 1.0
        node_attr[:p, 2:4] = sizes[box_of]
        node_attr[:p, 4] = cfg.box_height
        node_attr[p, PUSHER] = 1.0
        node_attr[p, 2:] = [2 * cfg.pusher_radius, 2 * cfg.pusher_radius, height]
        self.node_attr = node_attr
        self.instance = np.append(box_of, b).astype(np.int64)
        if per_box == 1:
            self.edges = np.zeros((2, 0), np.int64)
            self.edge_attr = np.zeros((0, 1), np.float32)
        else:  # rigid: every ordered pair of a box's corners, at its rest distance
            i, j = np.nonzero(~np.eye(4, dtype=bool))
            self.edges = np.concatenate([np.stack([4 * k + i, 4 * k + j]) for k in range(b)], axis=1).astype(np.int64)
            local = CORNERS[None] * sizes[:, None]  # [B, 4, 2]
            rest = np.linalg.norm(local[:, i] - local[:, j], axis=-1).reshape(-1, 1)
            self.edge_attr = rest.astype(np.float32)
        seen_boxes = np.zeros(b, bool)
        seen = max(1, int(round(cfg.observed_fraction * b))) if cfg.observed_fraction > 0 else 0
        seen_boxes[rng.permutation(b)[:seen]] = True
        self.observed = np.append(seen_boxes[box_of], True)

        self._velocity = np.zeros(3)
        self._t = 0
        self._target = self._pick_target()

    def _layout(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Box footprints ``[B, 2]``, centres ``[B, 2]`` and yaws ``[B]`` that do not overlap."""
        cfg = self.config
        lo, hi = cfg.box_size
        sizes = rng.uniform(lo, hi, size=(cfg.num_boxes, 2))
        reach = np.linalg.norm(sizes, axis=1) / 2  # circumscribed radius: a safe no-overlap test
        centres: list[np.ndarray] = []
        for i in range(cfg.num_boxes):
            for _ in range(2000):
                xy = rng.uniform(-cfg.layout, cfg.layout, size=2)
                if all(np.linalg.norm(xy - c) > reach[i] + reach[j] + 0.005 for j, c in enumerate(centres)):
                    centres.append(xy)
                    break
            else:
                raise ConfigError(
                    f"cannot place {cfg.num_boxes} boxes of up to {hi} m in a layout of half side "
                    f"{cfg.layout} m; lower num_boxes or box_size, or raise layout"
                )
        yaws = rng.uniform(-np.pi, np.pi, size=cfg.num_boxes)
        return sizes, np.array(centres), yaws

    def _pusher_start(self, rng: np.random.Generator, sizes: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """A free spot among the boxes; else a point on a circle clear of them all."""
        cfg = self.config
        need = np.linalg.norm(sizes, axis=1) / 2 + cfg.pusher_radius + 0.01
        for _ in range(1000):
            xy = rng.uniform(-cfg.layout, cfg.layout, size=2)
            if (np.linalg.norm(centres - xy, axis=1) > need).all():
                return xy
        bearing = float(rng.uniform(-np.pi, np.pi))
        clear = np.sqrt(2) * (cfg.layout + cfg.box_size[1] / 2) + cfg.pusher_radius + 0.01
        return clear * np.array([np.cos(bearing), np.sin(bearing)])

    def _positions(self) -> np.ndarray:
        poses = [self._call("getBasePositionAndOrientation", body) for body in self._boxes + [self._pusher]]
        pos = np.array([p for p, _ in poses])
        if self.config.box_nodes == "centre":
            return pos
        local = np.zeros((len(self._boxes), 4, 3))
        local[..., :2] = CORNERS[None] * self._sizes[:, None]
        rot = np.array([self._pb.getMatrixFromQuaternion(q) for _, q in poses[:-1]]).reshape(-1, 3, 3)
        corners = pos[:-1, None] + np.einsum("bij,bkj->bki", rot, local)
        return np.concatenate([corners.reshape(-1, 3), pos[-1:]], axis=0)

    def _apply_action(self, action: np.ndarray) -> None:
        v = action[self.pusher_node]
        self._call("resetBaseVelocity", self._pusher, [float(v[0]), float(v[1]), 0.0], [0.0, 0.0, 0.0])

    def _pick_target(self) -> int:
        """One of the (up to) three boxes nearest to the pusher, at random."""
        pos = np.array(
            [self._call("getBasePositionAndOrientation", body)[0][:2] for body in self._boxes + [self._pusher]]
        )
        nearest = np.argsort(np.linalg.norm(pos[:-1] - pos[-1], axis=1), kind="stable")[:NEAREST_TARGETS]
        return int(self._rng.choice(nearest))

    def _sample_action(self) -> np.ndarray:
        cfg = self.config
        if self._t and self._t % cfg.goal_every == 0:
            self._target = self._pick_target()
        self._t += 1
        here = np.asarray(self._call("getBasePositionAndOrientation", self._pusher)[0][:2])
        goal = np.asarray(self._call("getBasePositionAndOrientation", self._boxes[self._target])[0][:2])
        to_goal = goal - here
        dist = np.linalg.norm(to_goal)
        # head for the target box and keep pushing through it along the same line
        direction = to_goal / dist if dist > 1e-6 else np.zeros(2)
        want = cfg.max_speed * direction + self._rng.normal(0.0, cfg.speed_noise, size=2)
        self._velocity[:2] += cfg.action_smoothing * (want - self._velocity[:2])
        speed = np.linalg.norm(self._velocity[:2])
        if speed > cfg.max_speed:
            self._velocity[:2] *= cfg.max_speed / speed
        action = np.zeros((self.num_nodes, 3))
        action[self.pusher_node] = self._velocity
        return action


register_world(BoxPushing, help="boxes shoved by a kinematic pusher, partially observed")
