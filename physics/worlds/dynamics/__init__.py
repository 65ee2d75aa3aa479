"""PropNet's dynamics worlds in pybullet: Newton's cradle, rope, box pushing.

Each world is a seeded, deterministic :class:`DynamicsWorld` that records its
rollouts as :class:`~physics.trajectory.Trajectory` objects and registers itself
with ``register_world`` (one call in its module); ``make_world`` builds one by
name from :data:`WORLDS`, ``load_split`` reads a data set written by ``nesy data dynamics``,
``measure_sim_speed`` times the ground-truth simulator, and ``replay_errors``
measures how far it drifts from its own recordings (a floor for learned rollouts).
"""

from physics.worlds.dynamics.base import DynamicsWorld, WorldConfig
from physics.worlds.dynamics.box_push import BoxPushConfig, BoxPushing
from physics.worlds.dynamics.cradle import CradleConfig, NewtonsCradle
from physics.worlds.dynamics.registry import (
    WORLDS,
    make_world,
    register_world,
    world_class,
    world_config,
)
from physics.worlds.dynamics.replay import replay, replay_errors
from physics.worlds.dynamics.rope import Rope, RopeConfig
from physics.worlds.dynamics.speed import measure_sim_speed
from physics.worlds.dynamics.splits import generate_split, load_split, read_index, trajectory_seed

__all__ = [
    "DynamicsWorld",
    "WorldConfig",
    "CradleConfig",
    "NewtonsCradle",
    "RopeConfig",
    "BoxPushConfig",
    "BoxPushing",
    "Rope",
    "WORLDS",
    "register_world",
    "make_world",
    "world_class",
    "world_config",
    "measure_sim_speed",
    "replay",
    "replay_errors",
    "load_split",
    "generate_split",
    "read_index",
    "trajectory_seed",
]
