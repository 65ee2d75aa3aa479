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

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from physics.control.envs import (
    BoxPushCornersEnv,
    BoxPushCornersTaskConfig,
    BoxPushEnv,
    BoxPushTaskConfig,
    ControlConfig,
    ControlEnv,
    ParticleEnv,
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
from physics.control.fluidshake import FluidShakeEnv, FluidShakeTaskConfig
from physics.control.model import (
    GROUND_TRUTH,
    LearnedModel,
    PlanningModel,
    SimulatorModel,
    make_planning_model,
)
from physics.control.planners import (
    PLANNERS,
    PLANNING_THREADS,
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
from physics.control.ricegrip import RiceGripEnv, RiceGripTaskConfig
from physics.registry import Registry

__all__ = [
    "PLANNING_THREADS",
    "ControlConfig",
    "BoxPushTaskConfig",
    "BoxPushCornersTaskConfig",
    "RopeTaskConfig",
    "ControlEnv",
    "BoxPushEnv",
    "BoxPushCornersEnv",
    "RopeShapeEnv",
    "ParticleEnv",
    "FluidShakeTaskConfig",
    "FluidShakeEnv",
    "RiceGripTaskConfig",
    "RiceGripEnv",
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
    """A control task: its environment class and its Gymnasium id, and what the benchmark plans with.

    Attributes:
        model: The learned model ``nesy bench`` plans with (a shipped checkpoint of the task's world).
        planner: :class:`PlannerConfig` overrides of the benchmark's plans (a cheaper plan where the
            ground truth is slow).
    """

    env_cls: type[ControlEnv]
    gym_id: str
    model: str = "propnet"
    planner: dict[str, Any] = field(default_factory=dict)


TASKS: Registry[Task] = Registry("control task")


def register_task(name: str, env_cls: type[ControlEnv], gym_id: str, *, help: str | None = None,
                  model: str = "propnet", planner: dict[str, Any] | None = None) -> Task:
    """Register ``env_cls`` as task ``name`` and with Gymnasium as ``gym_id`` (``nesy/Name-v0``)."""
    if gym_id not in gym.registry:
        gym.register(id=gym_id, entry_point=env_cls)
    doc = (env_cls.__doc__ or "").strip().splitlines()
    return TASKS.register(name, Task(env_cls, gym_id, model, dict(planner or {})),
                          help=help if help is not None else (doc[0] if doc else ""))


register_task("boxpush", BoxPushEnv, "nesy/BoxPush-v0", help="push a box onto a goal point (nesy/BoxPush-v0)")
register_task("boxpush-corners", BoxPushCornersEnv, "nesy/BoxPushCorners-v0",
              help="push a box onto a goal point, boxes as corner nodes (nesy/BoxPushCorners-v0)")
register_task("rope", RopeShapeEnv, "nesy/RopeShape-v0", help="drag a rope into a goal shape (nesy/RopeShape-v0)")
PARTICLE_PLAN = {"samples": 8, "iterations": 2, "horizon": 3}  # the MPM ground truth: ~16 ms per recorded step
register_task("fluidshake", FluidShakeEnv, "nesy/FluidShake-v0", model="dpinet", planner=PARTICLE_PLAN,
              help="move a container until its fluid comes to a goal (particles extra; nesy/FluidShake-v0)")
register_task("ricegrip", RiceGripEnv, "nesy/RiceGrip-v0", model="dpinet", planner=PARTICLE_PLAN,
              help="squeeze a plastic block into a goal shape (particles extra; nesy/RiceGrip-v0)")
