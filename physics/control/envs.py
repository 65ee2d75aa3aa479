"""Gymnasium faces of the dynamics worlds: push a box to a goal, drag a rope into a shape (and, in
:mod:`physics.control.fluidshake` and :mod:`physics.control.ricegrip`, carry a fluid, squeeze a block).

Each environment wraps the very :class:`~physics.worlds.dynamics.DynamicsWorld`
class that ``nesy data dynamics`` records (one world, two faces), so a model
trained by ``nesy train dynamics`` on that world plans in its environment.  A
control step holds the action for ``repeat`` recorded world steps.

Both tasks share one contract (:class:`ControlEnv`):

* ``reset(seed=s)`` rebuilds the scene from a world seed drawn from ``s`` and
  samples the goal from the same seed; the same ``s`` gives the same episode.
* the action is a normalised vector in ``[-1, 1]^A`` (``action_dim``, 2 unless a
  task says otherwise), scaled to the world's actuator (the pusher's velocity, the
  pull on the rope's head, a particle world's body velocities: :class:`ParticleEnv`);
* the observation is every node's position (``N * D``, D = 3, or 2 on the particle
  worlds) then the goal's coordinates, float32;
* ``reward = -distance`` to the goal every step (metres, the task's distance
  below); ``terminated`` when ``distance < tolerance`` (``info["success"]``);
  ``truncated`` after ``max_steps`` control steps.

For planners the environment also exposes what a model needs: the position
history of recorded steps (:meth:`ControlEnv.history`), the static arrays of the
scene, the per-node world actions of a control sequence
(:meth:`ControlEnv.node_actions`) and a differentiable cost of predicted
positions (:meth:`ControlEnv.cost`).

Reference: Li et al., "Propagation Networks for Model-Based Control Under
Partial Observation", ICRA 2019 (box pushing and rope manipulation by MPC).
"""

from __future__ import annotations

from abc import abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from physics.config_types import check_field_types
from physics.errors import ConfigError
from physics.worlds.dynamics import BoxPushing, DynamicsWorld, Rope, make_world

__all__ = [
    "ControlConfig", "BoxPushTaskConfig", "BoxPushCornersTaskConfig", "RopeTaskConfig", "ControlEnv", "BoxPushEnv",
    "BoxPushCornersEnv", "RopeShapeEnv", "ParticleEnv", "APPROACH_PATHS", "around_distance",
]

HISTORY = 8  # recorded frames kept for the models (they read the last history + 1)
APPROACH_PATHS = ("straight", "around")  # BoxPushTaskConfig.approach_path


@dataclass(frozen=True)
class ControlConfig:
    """What every control task shares.

    Attributes:
        repeat: Recorded world steps per control step (the action is held).
        max_steps: Control steps per episode before truncation.
        tolerance: Goal distance (m) below which the episode succeeds.
        world: Overrides of the world's preset config (``{"num_boxes": 8}``).
        focus: When set, learned planning models simulate only the objects whose
            centre lies within ``focus`` m of the actuated node (and the task's
            own object); the others hold still in the imagined rollouts
            (:meth:`ControlEnv.focus_nodes`).  ``None``: every node.
    """

    repeat: int = 4
    max_steps: int = 40
    tolerance: float = 0.03
    world: dict[str, Any] = field(default_factory=dict)
    focus: float | None = None

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        for key in ("repeat", "max_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{type(self).__name__}.{key} must be >= 1, got {getattr(self, key)}")
        if not self.tolerance > 0:
            raise ConfigError(f"{type(self).__name__}.tolerance must be positive, got {self.tolerance}")
        if self.focus is not None and not self.focus > 0:
            raise ConfigError(f"{type(self).__name__}.focus must be positive or None, got {self.focus}")


@dataclass(frozen=True)
class BoxPushTaskConfig(ControlConfig):
    """Box pushing: the box nearest to the pusher must reach a goal ``goal_distance`` away.

    Attributes:
        goal_distance: Range (m) of the goal's distance from the box's start.
        approach_weight: Planner cost weight of the pusher's distance to the point
            behind the box (the side opposite the goal), which guides the pusher
            to the box before the box term can move.
        kinematic_pusher: Learned planning models move the pusher by its commanded
            velocity (the world sets it before every physics step) instead of
            predicting it; the boxes' motion stays the model's
            (:meth:`ControlEnv.kinematic_node`).
        side_weight: Planner cost weight of the pusher coming within reach of the
            box anywhere but behind it: ``side_weight * relu(reach - d) * (1 - cos) / 2``
            with ``d`` the pusher's distance to the box centre, ``reach`` the box's
            half diagonal plus the pusher's radius (no contact beyond it) and ``cos``
            the alignment of pusher -> box with box -> goal (1 behind the box).  It
            makes the pusher go round a box it would otherwise graze and push away.
        approach_path: How the ``approach_weight`` term measures the pusher's way
            to the spot behind the box: ``straight`` (the straight-line distance,
            which points through the box when the pusher starts on the goal side)
            or ``around`` (the shortest path that keeps out of the box's reach disk:
            the straight line while the spot is in view, else the tangent to that
            disk plus the arc round it).  With the side term, ``straight`` leaves a
            pusher opposite the spot with no preferred way round, and it dithers; and
            its pull to the spot (the reach disk's edge) draws a pushing pusher back
            out of contact, which ``around`` does not (no radial cost inside the disk).
    """

    max_steps: int = 40
    goal_distance: tuple[float, float] = (0.08, 0.12)
    approach_weight: float = 0.3
    kinematic_pusher: bool = False
    side_weight: float = 2.0  # dev seed 4812, learned PropNet + CEM: 10/12 episodes against 7/12 without it
    approach_path: str = "around"  # dev seed 5533 (docs/results/control.md, tenth session)

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.goal_distance
        if not 0 < lo <= hi:
            raise ConfigError(f"BoxPushTaskConfig.goal_distance must be (low, high) with 0 < low <= high, got {self.goal_distance}")
        for key in ("approach_weight", "side_weight"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"{type(self).__name__}.{key} must be >= 0, got {getattr(self, key)}")
        if self.approach_path not in APPROACH_PATHS:
            raise ConfigError(f"{type(self).__name__}.approach_path must be one of {APPROACH_PATHS}, got {self.approach_path!r}")


@dataclass(frozen=True)
class BoxPushCornersTaskConfig(BoxPushTaskConfig):
    """Box pushing on corner nodes: :class:`BoxPushTaskConfig` with the world's ``box_nodes="corners"``.

    The pusher is kinematic in the planning models by default (``kinematic_pusher``).
    ``focus`` defaults to 0.25 m: within a 5-step horizon (1/3 s) the pusher moves
    at most 0.067 m, so a box whose centre lies farther than 0.25 m cannot be
    reached even through a touching box (pusher radius 0.03 m, box half
    diagonals up to 0.057 m).
    """

    world: dict[str, Any] = field(default_factory=lambda: {"box_nodes": "corners"})
    focus: float | None = 0.25
    kinematic_pusher: bool = True
    side_weight: float = 0.0  # measured on centre nodes only; the corner task keeps its measured cost
    approach_path: str = "straight"  # likewise

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.world.get("box_nodes", "centre") != "corners":
            raise ConfigError(f"BoxPushCornersTaskConfig.world must keep box_nodes='corners', got {self.world!r}")


@dataclass(frozen=True)
class RopeTaskConfig(ControlConfig):
    """Rope shaping: every bead must reach its place in a goal shape.

    The goal is a shape the rope itself reaches: from the episode's start the
    world is run ``goal_steps`` recorded steps under a constant pull of
    ``goal_force`` times the largest force in a seeded random direction, then
    left ``settle_steps`` to come to rest; the bead positions there are the goal
    (then the world is rebuilt at the start).  Distance: mean bead distance.
    """

    max_steps: int = 40
    tolerance: float = 0.05  # mean over the beads, 1.25 bead spacings
    goal_steps: int = 30  # at the largest pull the rope's head slides 0.07-0.33 m (seeds 0-9)
    goal_force: float = 1.0  # below about 0.7 the pull hardly beats the floor's friction
    settle_steps: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.goal_steps < 1 or self.settle_steps < 0 or not 0 < self.goal_force <= 1:
            raise ConfigError("RopeTaskConfig: goal_steps >= 1, settle_steps >= 0 and goal_force in (0, 1] are required")


class ControlEnv(gym.Env):
    """A goal-reaching task on one dynamics world (see the module docstring).

    Args:
        config: The task's config (the class's defaults when ``None``).
        render_mode: ``None`` or ``"rgb_array"`` (the world's TinyRenderer image).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15}
    world_name: ClassVar[str] = ""
    config_cls: ClassVar[type[ControlConfig]] = ControlConfig
    action_dim: ClassVar[int] = 2  # size of the normalised action

    def __init__(self, config: ControlConfig | None = None, render_mode: str | None = None) -> None:
        config = self.config_cls() if config is None else config
        if not isinstance(config, self.config_cls):
            raise ConfigError(f"{type(self).__name__} takes a {self.config_cls.__name__}, got {type(config).__name__}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config
        self.render_mode = render_mode
        self.world: DynamicsWorld = make_world(self.world_name, **config.world)
        self.world.reset(0)
        n, g = self.world.num_nodes, self.goal_size
        bound = np.float32(self.world.config.bound)
        self.observation_space = gym.spaces.Box(-bound, bound, shape=(self.world.dim * n + g,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.action_dim,), dtype=np.float32)
        self.goal = np.zeros(g)
        self._frames: deque[np.ndarray] = deque(maxlen=HISTORY)
        self._steps = 0

    # ------------------------------------------------------------------ task hooks
    @property
    @abstractmethod
    def goal_size(self) -> int:
        """Length of the goal part of the observation."""

    @property
    @abstractmethod
    def actuated_node(self) -> int:
        """Node whose action row the control drives."""

    @property
    @abstractmethod
    def action_scale(self) -> float:
        """World units of a normalised action of 1 (m/s or N)."""

    @classmethod
    def checkpoint_world_for(cls, config: ControlConfig) -> str:
        """The name the learned models of this task under ``config`` are kept under (the world's, by default)."""
        return cls.world_name

    @property
    def checkpoint_world(self) -> str:
        """:meth:`checkpoint_world_for` of this environment's config (``make_planning_model``'s world)."""
        return self.checkpoint_world_for(self.config)

    def focus_nodes(self, positions: Tensor) -> Tensor | None:
        """Nodes a learned model must simulate at ``positions`` ``[N, 3]``: bool ``[N]``, or ``None`` (all).

        With ``config.focus`` set: every node of an object (``world.instance``)
        whose mean position lies within ``focus`` (planar) of the actuated node,
        the actuated node, and the nodes of :meth:`_focus_always`.
        """
        if self.config.focus is None:
            return None
        inst = torch.as_tensor(self.world.instance, dtype=torch.long, device=positions.device)
        xy = positions[:, :2].detach()
        ids, group = torch.unique(inst, return_inverse=True)
        count = torch.bincount(group, minlength=len(ids)).clamp(min=1)[:, None].to(xy.dtype)
        centre = torch.zeros(len(ids), 2, dtype=xy.dtype, device=xy.device).index_add_(0, group, xy) / count
        near = (centre - xy[self.actuated_node]).norm(dim=-1) <= self.config.focus
        keep = near[group] & (inst >= 0)
        keep[self.actuated_node] = True
        for node in self._focus_always():
            keep[node] = True
        return keep

    def _focus_always(self) -> list[int]:
        """Nodes that every focused rollout keeps (the task's own object)."""
        return []

    def kinematic_node(self) -> tuple[int, float] | None:
        """``(node, dt)`` when the actuated node moves by exactly its world action times ``dt``
        per recorded step (a velocity-controlled body): learned models then move it so
        instead of predicting it.  ``None``: the model predicts every node."""
        return None

    @abstractmethod
    def _sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """A goal for the freshly reset world (the world may be stepped and reset again)."""

    @abstractmethod
    def distance(self, positions: np.ndarray) -> float:
        """Distance (m) of node positions ``[N, 3]`` to the goal."""

    @abstractmethod
    def cost(self, positions: Tensor) -> Tensor:
        """Differentiable planning cost of predicted positions ``[B, T, N, 3]`` -> ``[B]``."""

    # ------------------------------------------------------------------ gymnasium
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._start_episode(int(self.np_random.integers(0, 2**31 - 1)))
        state = self.world.state()
        self._frames.clear()
        self._frames.extend([state] * HISTORY)  # at rest: zero velocity
        self._steps = 0
        return self._obs(), self._info(state)

    def _start_episode(self, world_seed: int) -> None:
        """Build the episode's world from ``world_seed`` and sample its goal from the same seed."""
        self.world.reset(world_seed)
        self.goal = self._goal_from(world_seed)
        self.world.reset(world_seed)  # the goal sampler may have run the world

    def _goal_from(self, world_seed: int) -> np.ndarray:
        return np.asarray(self._sample_goal(np.random.default_rng([world_seed, 1])), dtype=np.float64)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,) or not np.isfinite(a).all():
            raise ConfigError(f"{type(self).__name__}: action must be {self.action_dim} finite numbers, got {action!r}")
        full = self._node_action(np.clip(a, -1.0, 1.0))
        for _ in range(self.config.repeat):
            self.world.step(full)
            self._frames.append(self.world.state())
        self._steps += 1
        state = self._frames[-1]
        info = self._info(state)
        truncated = self._steps >= self.config.max_steps
        return self._obs(), -info["distance"], bool(info["success"]), truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.world.render(160, 160)

    def close(self) -> None:
        self.world.close()

    # ------------------------------------------------------------------ for planners
    def history(self, frames: int) -> np.ndarray:
        """The last ``frames`` recorded positions ``[frames, N, D]``, oldest first."""
        if not 1 <= frames <= HISTORY:
            raise ConfigError(f"history: frames must lie in 1..{HISTORY}, got {frames}")
        return np.stack(list(self._frames)[-frames:])

    def static(self) -> dict[str, np.ndarray]:
        """The scene's static arrays (``node_attr``, ``edges``, ``edge_attr``, ``instance``, ``observed``)."""
        w = self.world
        return {"node_attr": w.node_attr, "edges": w.edges, "edge_attr": w.edge_attr,
                "instance": w.instance, "observed": w.observed}

    def node_actions(self, actions: Tensor) -> Tensor:
        """Per-node world actions ``[B, T * repeat, N, 3]`` of control sequences ``[B, T, 2]``.

        Differentiable in ``actions`` (planners take gradients through it).
        """
        b, t, _ = actions.shape
        out = actions.new_zeros(b, t, self.world.num_nodes, 3)
        rows = torch.cat([actions.clamp(-1.0, 1.0) * self.action_scale, actions.new_zeros(b, t, 1)], dim=-1)
        out = out.index_copy(2, torch.tensor([self.actuated_node], device=actions.device), rows[:, :, None])
        return out.repeat_interleave(self.config.repeat, dim=1)

    def world_action(self, action: np.ndarray) -> np.ndarray:
        """The per-node world action ``[N, D]`` of one normalised action ``[A]`` (clipped), as recorded."""
        return self._node_action(np.clip(np.asarray(action, dtype=np.float64).reshape(self.action_dim), -1.0, 1.0))

    # ------------------------------------------------------------------ helpers
    def _node_action(self, a: np.ndarray) -> np.ndarray:
        full = np.zeros((self.world.num_nodes, 3))
        full[self.actuated_node, :2] = a * self.action_scale
        return full

    def _obs(self) -> np.ndarray:
        bound = self.observation_space.high[0]
        obs = np.concatenate([self._frames[-1].reshape(-1), self.goal.reshape(-1)])
        return np.clip(obs, -bound, bound).astype(np.float32)

    def _info(self, state: np.ndarray) -> dict[str, Any]:
        d = self.distance(state)
        return {"distance": d, "success": d < self.config.tolerance, "world_seed": self.world.seed}


class BoxPushEnv(ControlEnv):
    """Push the box nearest to the pusher onto a goal point (``nesy/BoxPush-v0``).

    Observation: every node's position, then the goal ``(x, y)``.  Distance: the
    target box centre's planar distance to the goal.  The target box is
    ``info["target"]`` / :attr:`target`.
    """

    world_name = "boxes"
    config_cls = BoxPushTaskConfig
    config: BoxPushTaskConfig
    world: BoxPushing

    def __init__(self, config: BoxPushTaskConfig | None = None, render_mode: str | None = None) -> None:
        self.target = 0
        super().__init__(config, render_mode)

    @property
    def goal_size(self) -> int:
        return 2

    @property
    def actuated_node(self) -> int:
        return self.world.pusher_node

    @property
    def action_scale(self) -> float:
        return self.world.config.max_speed

    @property
    def box_node_count(self) -> int:
        """Nodes per box: 1 (its centre) or 4 (its corners, ``box_nodes="corners"``)."""
        return 4 if self.world.config.box_nodes == "corners" else 1

    @classmethod
    def checkpoint_world_for(cls, config: ControlConfig) -> str:
        """``boxes`` for centre nodes, ``boxes_corners`` for corner nodes (their models differ)."""
        return "boxes_corners" if config.world.get("box_nodes", "centre") == "corners" else "boxes"

    def box_centres(self, positions: np.ndarray) -> np.ndarray:
        """Planar box centres ``[num_boxes, 2]`` of node positions ``[N, 3]`` (corner nodes averaged)."""
        k = self.box_node_count
        return positions[: self.actuated_node, :2].reshape(-1, k, 2).mean(axis=1)

    def kinematic_node(self) -> tuple[int, float] | None:
        return (self.actuated_node, self.world.dt) if self.config.kinematic_pusher else None

    def _focus_always(self) -> list[int]:
        k = self.box_node_count
        return list(range(k * self.target, k * (self.target + 1)))

    def _sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        state = self.world.state()
        centres = self.box_centres(state)
        self.target = int(np.argmin(np.linalg.norm(centres - state[self.actuated_node, :2], axis=1)))
        lo, hi = self.config.goal_distance
        limit = self.world.config.layout
        for _ in range(100):  # a goal inside the layout square
            angle = rng.uniform(-np.pi, np.pi)
            goal = centres[self.target] + rng.uniform(lo, hi) * np.array([np.cos(angle), np.sin(angle)])
            if np.abs(goal).max() <= limit:
                return goal
        return np.clip(goal, -limit, limit)

    def distance(self, positions: np.ndarray) -> float:
        return float(np.linalg.norm(self.box_centres(positions)[self.target] - self.goal))

    def cost(self, positions: Tensor) -> Tensor:
        """Mean over the horizon of the box's goal distance, last step doubled, plus the
        pusher's distance to the spot behind the box (``approach_weight``) and its
        coming within reach of the box elsewhere (``side_weight``).

        With corner nodes the box's position is the mean of its four corners.
        """
        goal = positions.new_tensor(self.goal)
        k = self.box_node_count
        box = positions[:, :, k * self.target: k * (self.target + 1), :2].mean(dim=2)
        pusher = positions[:, :, self.actuated_node, :2]
        to_goal = goal - box
        dist = to_goal.norm(dim=-1)
        size = self.world.node_attr[k * self.target, 2:4]
        reach = 0.5 * float(np.linalg.norm(size)) + self.world.config.pusher_radius
        behind = box - reach * to_goal / dist.clamp(min=1e-6)[..., None]
        approach = (pusher - behind).norm(dim=-1)
        if self.config.approach_path == "around":
            approach = around_distance(pusher - box, behind - box, approach, reach)
        per_step = dist + self.config.approach_weight * approach
        if self.config.side_weight > 0:
            away = box - pusher
            near = away.norm(dim=-1)
            cos = (away * to_goal).sum(dim=-1) / (near * dist).clamp(min=1e-9)
            per_step = per_step + self.config.side_weight * torch.relu(reach - near) * (1 - cos) / 2
        return per_step.mean(dim=1) + per_step[:, -1]

    def _info(self, state: np.ndarray) -> dict[str, Any]:
        return super()._info(state) | {"target": self.target}


def around_distance(offset: Tensor, spot: Tensor, straight: Tensor, radius: float) -> Tensor:
    """Shortest planar path from ``offset`` to ``spot`` (both ``[..., 2]``, relative to a disk's
    centre; ``spot`` on the circle of ``radius``) that does not cross the disk.

    ``straight`` is ``|offset - spot|``, returned where the spot is in view.  From
    outside the disk, when the spot hides behind it: the tangent ``sqrt(r^2 - R^2)``
    plus the arc ``R * (phi - alpha)`` (``phi`` the angle between the two, ``alpha =
    acos(R / r)`` the tangent point's).  From inside the disk only the arc ``R * phi``
    counts: a pusher in contact behind the box (``phi = 0``) is where it should be, and
    is not pulled back out of contact to the circle.  Continuous, with finite gradients.
    """
    r = offset.norm(dim=-1)
    eps = 1e-6
    cos_phi = (offset * spot).sum(dim=-1) / (r * radius).clamp(min=1e-9)
    phi = torch.acos(cos_phi.clamp(-1 + eps, 1 - eps))
    alpha = torch.acos((radius / r.clamp(min=radius)).clamp(-1 + eps, 1 - eps))
    tangent = torch.sqrt((r * r - radius * radius).clamp(min=1e-10))
    outside = torch.where(phi <= alpha, straight, tangent + radius * (phi - alpha))
    inside = radius * phi
    return torch.where(r >= radius, outside, inside)


class BoxPushCornersEnv(BoxPushEnv):
    """Push a box onto a goal point, boxes as four corner nodes (``nesy/BoxPushCorners-v0``).

    The same task as :class:`BoxPushEnv` on the ``boxes`` world with
    ``box_nodes="corners"`` (DPI-Net's particles per rigid body): the state
    carries every box's yaw.  The box's position is the mean of its corners;
    ``info["target"]`` is the box's index (its nodes are ``4 * target .. 4 * target + 3``).
    """

    config_cls = BoxPushCornersTaskConfig
    config: BoxPushCornersTaskConfig


class RopeShapeEnv(ControlEnv):
    """Drag the rope by its head until its beads lie on a goal shape (``nesy/RopeShape-v0``).

    Observation: every node's position (beads, then obstacle axes), then the goal
    beads ``(x, y)``.  Distance: mean planar distance of the beads to their goal places.
    """

    world_name = "rope"
    config_cls = RopeTaskConfig
    config: RopeTaskConfig
    world: Rope

    @property
    def goal_size(self) -> int:
        return 2 * self.world.config.num_beads

    @property
    def actuated_node(self) -> int:
        return 0

    @property
    def action_scale(self) -> float:
        return self.world.config.max_force

    def _sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        angle = rng.uniform(-np.pi, np.pi)
        pull = np.array([np.cos(angle), np.sin(angle)]) * cfg.goal_force
        for _ in range(cfg.goal_steps):
            self.world.step(self._node_action(pull))
        for _ in range(cfg.settle_steps):
            self.world.step(None)
        return self.world.state()[: self.world.config.num_beads, :2].reshape(-1)

    def distance(self, positions: np.ndarray) -> float:
        beads = positions[: self.world.config.num_beads, :2]
        return float(np.linalg.norm(beads - self.goal.reshape(-1, 2), axis=1).mean())

    def cost(self, positions: Tensor) -> Tensor:
        """Mean bead distance to the goal, averaged over the horizon with the last step doubled."""
        b = self.world.config.num_beads
        goal = positions.new_tensor(self.goal.reshape(-1, 2))
        per_step = (positions[:, :, :b, :2] - goal).norm(dim=-1).mean(dim=-1)
        return per_step.mean(dim=1) + per_step[:, -1]


class ParticleEnv(ControlEnv):
    """A task on a 2-D particle world (Taichi MLS-MPM) whose action moves kinematic bodies on rails.

    The normalised action ``a`` ``[A]`` gives each degree of freedom a speed ``a * dof_speed``
    (m/s); :meth:`_velocity_map` turns those into per-node velocities (the world's action: a
    body's marker nodes carry its velocity).  Each degree of freedom has a position (its
    bodies' shift from the episode's start) that stays within :meth:`_rail`'s bounds: a speed
    that would leave them is cut to reach the bound within the control step, both when the
    world steps and in :meth:`node_actions`, so planners see the rail ends as they are.
    Learned models move every wall marker by its action (:meth:`kinematic_node`), as
    rollouts prescribe the kinematic bodies.  ``config.focus`` does not apply (the fluid or
    plastic is one object).
    """

    dof_speed: ClassVar[str] = "max_speed"  # the task config field of the speed at |a| = 1

    def __init__(self, config: ControlConfig | None = None, render_mode: str | None = None) -> None:
        super().__init__(config, render_mode)
        if self.config.focus is not None:
            raise ConfigError(f"{type(self).__name__}: focus does not apply to particle tasks, got {self.config.focus}")
        self._start = self.world.state()
        self._map = self._velocity_map()

    @property
    def actuated_node(self) -> int:
        return int(np.flatnonzero(np.abs(self._map).sum(axis=(1, 2)) > 0)[0])

    @property
    def action_scale(self) -> float:
        return float(getattr(self.config, self.dof_speed))

    def _start_episode(self, world_seed: int) -> None:
        """As :meth:`ControlEnv._start_episode`, but the episode starts after :meth:`_prepare`, and the
        goal sampler's run is undone by restoring the MPM state (not by rebuilding and preparing again)."""
        self.world.reset(world_seed)
        self._start = self.world.state()
        self._map = self._velocity_map()
        self._prepare()
        self._start = self.world.state()
        saved = self.world.save_state()
        self.goal = self._goal_from(world_seed)
        self.world.restore_state(saved)
        self.world.discard_state(saved)

    def _prepare(self) -> None:
        """Bring the fresh world to the episode's start (the particles settle from their lattice)."""

    @abstractmethod
    def _velocity_map(self) -> np.ndarray:
        """``[N, D, A]``: node velocity per unit speed of each degree of freedom."""

    @abstractmethod
    def _rail(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions ``[A]`` of the degrees of freedom at node ``positions`` and their bounds (low, high)."""

    def kinematic_node(self) -> tuple[np.ndarray, float]:
        """Every wall marker (the moving bodies and the fixed walls) moves by its action times ``dt``."""
        return np.flatnonzero(self.world.node_attr[:, -1] > 0.5), self.world.dt

    def focus_nodes(self, positions: Tensor) -> None:
        return None

    def node_actions(self, actions: Tensor) -> Tensor:
        """Per-node world actions ``[B, T * repeat, N, 2]`` of control sequences ``[B, T, A]``, on the rails."""
        pos, lo, hi = (actions.new_tensor(x) for x in self._rail(self.world.state()))
        span = self.world.dt * self.config.repeat
        speeds = []
        for k in range(actions.shape[1]):
            nxt = torch.minimum(torch.maximum(pos + actions[:, k].clamp(-1.0, 1.0) * self.action_scale * span, lo), hi)
            speeds.append((nxt - pos) / span)
            pos = nxt
        v = torch.stack(speeds, dim=1)  # [B, T, A] m/s
        out = torch.einsum("nda,bta->btnd", actions.new_tensor(self._map), v)
        return out.repeat_interleave(self.config.repeat, dim=1)

    def _node_action(self, a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.node_actions(torch.as_tensor(a, dtype=torch.float64).reshape(1, 1, -1))[0, 0].numpy()

    def body_nodes(self, body: int) -> np.ndarray:
        """Node indices of kinematic body ``body``'s markers (in the world's build order)."""
        first = int(self.world.instance[self.world.node_attr[:, -1] < 0.5].max(initial=-1)) + 1
        return np.flatnonzero((self.world.instance == first + body) & (self.world.node_attr[:, -1] > 0.5))
