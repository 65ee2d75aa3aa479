"""Model-based control on the dynamics worlds: Gymnasium tasks, planning models, planners.

Importing this package registers the environments with Gymnasium under
versioned ids and in :data:`TASKS` (the names ``nesy control --task`` takes)::

    >>> import gymnasium as gym
    >>> import physics.control
    >>> env = gym.make("nesy/BoxPush-v0")
    >>> obs, info = env.reset(seed=0)

Plan with a learned model (or ``"gt"``, the simulator) and a planner::

    from physics.control import make_planning_model, make_planner, run_episode, BoxPushEnv
    env = BoxPushEnv()
    result = run_episode(env, make_planning_model("propnet", "boxes"), make_planner("cem"), seed=0)
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym

from physics.control.envs import (
    BoxPushCornersEnv,
    BoxPushCornersTaskConfig,
    BoxPushEnv,
    BoxPushTaskConfig,
    ControlConfig,
    ControlEnv,
    RopeShapeEnv,
    RopeTaskConfig,
)
from physics.control.episode import (
    EpisodeResult,
    episode_seeds,
    run_episode,
    summarize,
    wilson_interval,
)
from physics.control.model import (
    GROUND_TRUTH,
    LearnedModel,
    PlanningModel,
    SimulatorModel,
    make_planning_model,
)
from physics.control.planners import (
    PLANNERS,
    CEMPlanner,
    GradientPlanner,
    HybridPlanner,
    MPPIPlanner,
    Planner,
    PlannerConfig,
    Problem,
    RandomPlanner,
    make_planner,
    register_planner,
)
from physics.registry import Registry

__all__ = [
    "ControlConfig",
    "BoxPushTaskConfig",
    "BoxPushCornersTaskConfig",
    "RopeTaskConfig",
    "ControlEnv",
    "BoxPushEnv",
    "BoxPushCornersEnv",
    "RopeShapeEnv",
    "Task",
    "TASKS",
    "register_task",
    "PlanningModel",
    "LearnedModel",
    "SimulatorModel",
    "make_planning_model",
    "GROUND_TRUTH",
    "Problem",
    "PlannerConfig",
    "Planner",
    "GradientPlanner",
    "CEMPlanner",
    "MPPIPlanner",
    "HybridPlanner",
    "RandomPlanner",
    "PLANNERS",
    "register_planner",
    "make_planner",
    "EpisodeResult",
    "run_episode",
    "episode_seeds",
    "summarize",
    "wilson_interval",
]


@dataclass(frozen=True)
class Task:
    """A control task: its environment class and its Gymnasium id."""

    env_cls: type[ControlEnv]
    gym_id: str


TASKS: Registry[Task] = Registry("control task")


def register_task(name: str, env_cls: type[ControlEnv], gym_id: str, *, help: str | None = None) -> Task:
    """Register ``env_cls`` as task ``name`` and with Gymnasium as ``gym_id`` (``nesy/Name-v0``)."""
    if gym_id not in gym.registry:
        gym.register(id=gym_id, entry_point=env_cls)
    doc = (env_cls.__doc__ or "").strip().splitlines()
    return TASKS.register(name, Task(env_cls, gym_id), help=help if help is not None else (doc[0] if doc else ""))


register_task("boxpush", BoxPushEnv, "nesy/BoxPush-v0", help="push a box onto a goal point (nesy/BoxPush-v0)")
register_task("boxpush-corners", BoxPushCornersEnv, "nesy/BoxPushCorners-v0",
              help="push a box onto a goal point, boxes as corner nodes (nesy/BoxPushCorners-v0)")
register_task("rope", RopeShapeEnv, "nesy/RopeShape-v0", help="drag a rope into a goal shape (nesy/RopeShape-v0)")
