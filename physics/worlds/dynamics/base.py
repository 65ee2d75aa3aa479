"""DynamicsWorld: the seeded pybullet world that PropNet-style data sets are made of.

The base class owns the algorithm (connect, reset, step with a held action,
record a rollout as a :class:`~physics.trajectory.Trajectory`); each world fills
in a few hooks, the way PyG's ``MessagePassing.propagate`` calls ``message``:

``_build(rng)``
    create the bodies for one episode and set the static arrays
    (``node_attr``, ``instance``, ``edges``, ``edge_attr``, ``observed``);
``_positions()``
    node positions ``[N, 3]`` of the current state;
``_apply_action(action)``
    push the per-node action ``[N, 3]`` into the simulator (called before every
    physics step, because pybullet clears external forces after each one);
``_sample_action()``
    the next action of the world's seeded random policy (zeros when passive).

Every episode rebuilds the scene in a fresh ``resetSimulation``, so a rollout
depends only on its seed and the config: same seed, identical arrays, whatever
ran before in the same process.

Reference: Li et al., "Propagation Networks for Model-Based Control Under
Partial Observation", ICRA 2019 (the rope, box pushing and Newton's cradle worlds).
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError
from physics.trajectory import Trajectory

__all__ = ["WorldConfig", "DynamicsWorld", "pybullet_module"]


def pybullet_module():
    """The ``pybullet`` module, imported on first use without its build banner."""
    from physics.worlds._pybullet import pybullet

    return pybullet


@dataclass(frozen=True)
class WorldConfig:
    """Settings every dynamics world shares (subclasses add their own fields)."""

    physics_dt: float = field(default=1.0 / 240.0, metadata={"help": "fixed physics time step (s)"})
    frame_skip: int = field(default=4, metadata={"help": "physics steps per recorded step"})
    solver_iterations: int = field(default=50, metadata={"help": "constraint solver iterations per step"})
    steps: int = field(default=100, metadata={"help": "recorded steps per rollout"})
    gravity: float = field(default=9.81, metadata={"help": "gravity (m/s^2), pointing down -z"})
    bound: float = field(default=5.0, metadata={"help": "|position| above this means the state exploded (m)"})

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        checks = {
            "physics_dt": self.physics_dt > 0,
            "frame_skip": self.frame_skip >= 1,
            "solver_iterations": self.solver_iterations >= 1,
            "steps": self.steps >= 1,
            "gravity": self.gravity >= 0,
            "bound": self.bound > 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"{type(self).__name__}.{key} = {getattr(self, key)!r} is not allowed; "
                                  "it must be positive (gravity: >= 0)")

    @classmethod
    def recorded_defaults(cls) -> dict[str, Any]:
        """Values that a recorded config lacking a setting had (data written before the setting existed).

        A replay of old data fills them in instead of the preset, which may have changed since.
        """
        return {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready field values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


class DynamicsWorld(ABC):
    """A seeded, deterministic pybullet world recorded as node positions.

    Each instance owns one pybullet ``DIRECT`` client, disconnected by
    :meth:`close` (also on ``__del__`` and when used as a context manager).

    Args:
        config: The world's frozen config (its class's defaults when ``None``).

    Attributes (valid after :meth:`reset`):
        node_attr: float32 ``[N, A]`` static node features (type one-hot, sizes).
        instance: int64 ``[N]`` object id of each node (-1: none).
        edges: int64 ``[2, E]`` fixed relations, sender in row 0.
        edge_attr: float32 ``[E, B]`` features of the fixed relations.
        observed: bool ``[N]`` nodes a partially observed model may see.

    Example:
        >>> from physics.worlds.dynamics import make_world
        >>> with make_world("cradle", steps=10) as world:
        ...     traj = world.rollout(seed=0)
        >>> traj.positions.shape
        (10, 10, 3)
    """

    name: ClassVar[str] = "world"
    config_cls: ClassVar[type[WorldConfig]] = WorldConfig
    dim: ClassVar[int] = 3  # spatial dimensions D of positions and actions (2 for the 2-D particle worlds)

    def __init__(self, config: WorldConfig | None = None) -> None:
        config = self.config_cls() if config is None else config
        if not isinstance(config, self.config_cls):
            raise ConfigError(
                f"world {self.name!r} takes a {self.config_cls.__name__}, got {type(config).__name__}"
            )
        self.config = config
        self._pb = pybullet_module()
        self._cid = self._pb.connect(self._pb.DIRECT)
        self._pid = os.getpid()
        self._ready = False
        self.seed: int | None = None
        self.node_attr = np.zeros((0, 0), np.float32)
        self.instance = np.zeros(0, np.int64)
        self.edges = np.zeros((2, 0), np.int64)
        self.edge_attr = np.zeros((0, 1), np.float32)
        self.observed = np.zeros(0, bool)
        self._rng = np.random.default_rng(0)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Disconnect the pybullet client (safe to call twice)."""
        if getattr(self, "_cid", -1) >= 0 and getattr(self, "_pid", None) == os.getpid():
            try:
                self._pb.disconnect(physicsClientId=self._cid)
            except self._pb.error:
                pass
        self._cid = -1
        self._ready = False

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> DynamicsWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn_name: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``pybullet.<fn_name>`` on this world's client."""
        if self._cid < 0:
            raise StateError(f"world {self.name!r} is closed; make a new one")
        return getattr(self._pb, fn_name)(*args, physicsClientId=self._cid, **kwargs)

    # ------------------------------------------------------------------ public API
    @property
    def dt(self) -> float:
        """Seconds between recorded steps (physics_dt * frame_skip)."""
        return self.config.physics_dt * self.config.frame_skip

    @property
    def num_nodes(self) -> int:
        return int(self.node_attr.shape[0])

    def reset(self, seed: int) -> None:
        """Start a new episode: rebuild the scene from ``seed`` alone."""
        seed = int(seed)
        if seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed}")
        cfg = self.config
        self._call("resetSimulation")
        self._call(
            "setPhysicsEngineParameter",
            fixedTimeStep=cfg.physics_dt,
            numSubSteps=0,
            numSolverIterations=cfg.solver_iterations,
            deterministicOverlappingPairs=1,
            **self._engine_parameters(),
        )
        self._call("setGravity", 0.0, 0.0, -cfg.gravity)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._build(self._rng)
        self._ready = True

    def step(self, action: np.ndarray | None = None) -> None:
        """Advance one recorded step (``frame_skip`` physics steps) holding ``action``.

        Args:
            action: ``[N, 3]`` per-node action (the Trajectory convention; rows of
                nodes the world does not actuate are ignored), ``[3]`` for the
                world's actuated node, or ``None`` for no action.
        """
        full = self._full_action(action)
        for _ in range(self.config.frame_skip):
            self._apply_action(full)
            self._call("stepSimulation")

    def state(self) -> np.ndarray:
        """Node positions ``[N, D]`` (float64, metres)."""
        self._require_ready()
        return self._positions()

    def save_state(self) -> Any:
        """A snapshot of the simulation that :meth:`restore_state` returns to (planning on the true world).

        Pybullet worlds keep it inside the client: free it with :meth:`discard_state`.
        """
        self._require_ready()
        return self._call("saveState")

    def restore_state(self, saved: Any) -> None:
        """Return to the snapshot ``saved`` of :meth:`save_state` (it stays valid)."""
        self._call("restoreState", saved)

    def discard_state(self, saved: Any) -> None:
        """Free the snapshot ``saved``."""
        self._call("removeState", saved)

    def render(self, width: int = 160, height: int = 120) -> np.ndarray:
        """Render the scene with pybullet's TinyRenderer (CPU).

        Returns:
            uint8 ``[height, width, 3]`` RGB image.
        """
        self._require_ready()
        if width < 1 or height < 1:
            raise ConfigError(f"render size must be positive, got {width}x{height}")
        target, distance, yaw, pitch = self._camera()
        view = self._pb.computeViewMatrixFromYawPitchRoll(target, distance, yaw, pitch, 0.0, 2)
        proj = self._pb.computeProjectionMatrixFOV(45.0, width / height, 0.01, 20.0)
        _, _, rgba, _, _ = self._call(
            "getCameraImage", width, height, view, proj, renderer=self._pb.ER_TINY_RENDERER
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3].copy()

    def sample_action(self) -> np.ndarray:
        """The next ``[N, D]`` action of the world's seeded random policy."""
        self._require_ready()
        return np.asarray(self._sample_action(), dtype=np.float64).reshape(self.num_nodes, self.dim)

    def rollout(self, seed: int, steps: int | None = None) -> Trajectory:
        """Reset to ``seed`` and record ``steps`` states under the random policy.

        ``positions[t]`` is the state before ``actions[t]`` is applied; the state
        advances ``frame_skip`` physics steps between records.

        Raises:
            StateError: the simulation left ``config.bound`` or produced NaN.
        """
        steps = self.config.steps if steps is None else int(steps)
        if steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        self.reset(seed)
        n = self.num_nodes
        positions = np.empty((steps, n, self.dim), np.float64)
        actions = np.empty((steps, n, self.dim), np.float64)
        for t in range(steps):
            positions[t] = self.state()
            actions[t] = self.sample_action()
            self.step(actions[t])
        worst = np.abs(positions).max(initial=0.0)
        if not np.isfinite(positions).all() or worst > self.config.bound:
            raise StateError(
                f"world {self.name!r} seed {seed}: simulation exploded (max |position| {worst:.3g} m, "
                f"bound {self.config.bound} m); lower physics_dt or raise solver_iterations"
            )
        meta = {
            "name": f"{self.name}-{seed}",
            "world": self.name,
            "seed": int(seed),
            "steps": steps,
            "config": self.config.to_dict(),
        }
        arrays = {
            "positions": positions,
            "node_attr": self.node_attr,
            "instance": self.instance,
            "edges": self.edges,
            "edge_attr": self.edge_attr,
            "actions": actions,
            "observed": self.observed,
        }
        return Trajectory.from_arrays(arrays, self.dt, meta)

    def render_rollout(
        self, seed: int, steps: int | None = None, *, width: int = 160, height: int = 120, every: int = 2
    ) -> np.ndarray:
        """Frames of the same episode :meth:`rollout` records for ``seed`` (for GIFs).

        Rendering reads the scene only, so the episode is identical to the
        recorded one.

        Returns:
            uint8 ``[F, height, width, 3]``: one frame every ``every`` recorded steps.
        """
        steps = self.config.steps if steps is None else int(steps)
        if steps < 1 or every < 1:
            raise ConfigError(f"steps and every must be >= 1, got steps={steps}, every={every}")
        self.reset(seed)
        frames = []
        for t in range(steps):
            if t % every == 0:
                frames.append(self.render(width, height))
            self.step(self.sample_action())
        return np.stack(frames)

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _build(self, rng: np.random.Generator) -> None:
        """Create the episode's bodies and set the static arrays."""

    @abstractmethod
    def _positions(self) -> np.ndarray:
        """Current node positions ``[N, 3]``."""

    def _apply_action(self, action: np.ndarray) -> None:
        """Apply the ``[N, 3]`` action before one physics step (passive: nothing)."""
        return None

    def _sample_action(self) -> np.ndarray:
        """Next action of the random policy (passive worlds: zeros)."""
        return np.zeros((self.num_nodes, self.dim))

    def _engine_parameters(self) -> dict[str, Any]:
        """Extra ``setPhysicsEngineParameter`` keywords for this world."""
        return {}

    def _camera(self) -> tuple[list[float], float, float, float]:
        """(target, distance, yaw, pitch) of the render camera."""
        return [0.0, 0.0, 0.0], 1.5, 0.0, -45.0

    def _actuated_node(self) -> int | None:
        """Index of the node a ``[3]`` action drives (None: the world is passive)."""
        return None

    # ------------------------------------------------------------------ helpers
    def _require_ready(self) -> None:
        if not self._ready:
            raise StateError(f"world {self.name!r} has no episode yet; call reset(seed) first")

    def _full_action(self, action: np.ndarray | None) -> np.ndarray:
        self._require_ready()
        n, d = self.num_nodes, self.dim
        if action is None:
            return np.zeros((n, d))
        action = np.asarray(action, dtype=np.float64)
        if action.shape == (d,):
            node = self._actuated_node()
            if node is None:
                raise StateError(f"world {self.name!r} has no actuated node; pass None or an [N={n}, {d}] action")
            full = np.zeros((n, d))
            full[node] = action
            action = full
        if action.shape != (n, d):
            raise StateError(f"world {self.name!r}: action must be [{n}, {d}] or [{d}], got {action.shape}")
        if not np.isfinite(action).all():
            raise StateError(f"world {self.name!r}: action holds NaN or inf")
        return action
