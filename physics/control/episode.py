"""Closed-loop episodes: plan, act the first action, observe, re-plan (MPC); and their statistics.

:func:`run_episode` runs one episode of a control environment with a planning
model and a planner (optionally with exploration noise on the executed action,
and recording the true world transitions as a :class:`~physics.trajectory.Trajectory`
for DAgger-style training, see :mod:`physics.control.collect`);
:func:`summarize` sums many up: success rate with a 90% Wilson interval, final
distance to the goal, planning time per control step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from physics.control.adapt import OnlineCorrection
from physics.control.envs import ControlEnv
from physics.control.model import PlanningModel
from physics.control.planners import Planner, Problem
from physics.errors import ConfigError
from physics.trajectory import Trajectory

__all__ = ["EpisodeResult", "run_episode", "episode_seeds", "wilson_interval", "summarize", "Z90"]

Z90 = 1.6449  # two-sided 90% normal quantile


@dataclass
class EpisodeResult:
    """One episode: its seed, outcome and timings (frames only when recorded)."""

    seed: int
    success: bool
    final_distance: float
    start_distance: float
    steps: int
    plan_seconds: list[float]
    plan_cpu_seconds: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    imagined: list[np.ndarray] = field(default_factory=list)
    trajectory: Trajectory | None = None
    adapt_gains: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "success": self.success,
            "final_distance": self.final_distance,
            "start_distance": self.start_distance,
            "steps": self.steps,
            "plan_seconds_mean": float(np.mean(self.plan_seconds)) if self.plan_seconds else 0.0,
            "plan_cpu_seconds_mean": float(np.mean(self.plan_cpu_seconds)) if self.plan_cpu_seconds else None,
        } | ({"adapt_gains_final": [round(g, 4) for g in self.adapt_gains]} if self.adapt_gains else {})


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """``episodes`` environment seeds drawn from evaluation seed ``seed`` (disjoint streams per seed)."""
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(episodes, np.uint32)]


def problem_for(env: ControlEnv, model: PlanningModel, horizon: int,
                correction: OnlineCorrection | None = None) -> Problem:
    """The planning problem of ``env``'s current state under ``model`` (horizon in control steps),
    the predictions corrected by ``correction`` when given (online adaptation)."""
    history = torch.as_tensor(env.history(model.history_frames), dtype=torch.float32)

    def cost(actions: torch.Tensor) -> torch.Tensor:
        return env.cost(predicted(env, model, history, actions, correction))

    return Problem(horizon=horizon, action_dim=int(env.action_space.shape[0]), cost=cost,
                   differentiable=model.differentiable)


def predicted(env: ControlEnv, model: PlanningModel, history: torch.Tensor, actions: torch.Tensor,
              correction: OnlineCorrection | None = None) -> torch.Tensor:
    """Positions ``[B, T * repeat, N, 3]`` the planner expects of control sequences ``actions`` ``[B, T, 2]``."""
    out = model.predict(history, env.node_actions(actions))
    return out if correction is None else correction.apply(history[-1], out)


def make_correction(env: ControlEnv, model: PlanningModel | None, planner: Planner) -> OnlineCorrection | None:
    """The online adaptation ``planner.config.adapt`` asks for, or ``None`` (off, no model, or an exact model)."""
    c = planner.config
    if c.adapt == "none" or model is None or not planner.needs_model or model.exact:
        return None
    return OnlineCorrection(model, env.actuated_node, c.horizon * env.config.repeat, c.adapt, c.adapt_window,
                            c.adapt_prior, c.adapt_max_gain)


def run_episode(
    env: ControlEnv,
    model: PlanningModel | None,
    planner: Planner,
    seed: int,
    *,
    record: bool = False,
    explore: float = 0.0,
    trajectory: bool = False,
) -> EpisodeResult:
    """One closed-loop episode from ``env.reset(seed=seed)``.

    Args:
        env: The task (its ``max_steps`` bounds the episode).
        model: The planning model (``None`` only for planners that need none).
        planner: Reset here with ``seed``.
        seed: The environment seed of the episode.
        record: Keep rendered frames of the true world and, per step, the
            positions the model predicted for the executed plan.
        explore: Std of Gaussian noise added to each executed normalised action
            (clipped to ``[-1, 1]``; drawn from ``seed``; 0: the plan as it is).
            Data collection uses it to visit the states around the planner's path.
        trajectory: Also return the true world's recorded steps (every world step,
            its per-node action) as ``EpisodeResult.trajectory``, the format
            ``nesy train dynamics`` reads.

    The planner's ``config.adapt`` turns on online adaptation of a learned model
    (:mod:`physics.control.adapt`): its predictions are corrected by a gain fitted,
    before every plan, to what the world did so far in the episode; that fit's
    time counts as planning time.

    Returns:
        The :class:`EpisodeResult` (success = the goal reached within the episode).

    Raises:
        ConfigError: ``explore`` is negative.
    """
    if not explore >= 0:
        raise ConfigError(f"run_episode: explore must be >= 0, got {explore}")
    _, info = env.reset(seed=seed)
    start = float(info["distance"])
    planner.reset(seed)
    if model is not None:
        model.bind(env)
    correction = make_correction(env, model, planner)
    if correction is not None:
        correction.start(env.history(1)[0])
    noise = np.random.default_rng([int(seed), 7])
    times: list[float] = []
    cpu: list[float] = []
    frames = [env.world.render(160, 160)] if record else []
    imagined: list[np.ndarray] = []
    states, actions = [env.history(1)[0]], []
    done = False
    steps = 0
    while not done:
        tic, cpu_tic = time.perf_counter(), time.process_time()
        if planner.needs_model:
            if correction is not None:
                correction.update()
            problem = problem_for(env, model, planner.config.horizon, correction)
        else:
            problem = Problem(planner.config.horizon, int(env.action_space.shape[0]), lambda a: a.sum((1, 2)), False)
        plan = planner.plan(problem)
        times.append(time.perf_counter() - tic)
        cpu.append(time.process_time() - cpu_tic)
        if record and planner.needs_model:
            with torch.no_grad():
                history = torch.as_tensor(env.history(model.history_frames), dtype=torch.float32)
                imagined.append(predicted(env, model, history, plan[None], correction)[0].numpy())
        act = plan[0].numpy().astype(np.float64)
        if explore > 0:
            act = np.clip(act + explore * noise.standard_normal(act.shape), -1.0, 1.0)
        _, _, terminated, truncated, info = env.step(act)
        if correction is not None:
            correction.record(env.history(env.config.repeat), [env.world_action(act)] * env.config.repeat)
        if trajectory:
            states.extend(env.history(env.config.repeat))
            actions.extend([env.world_action(act)] * env.config.repeat)
        steps += 1
        if record:
            frames.append(env.world.render(160, 160))
        done = terminated or truncated
    traj = _trajectory(env, states, actions, seed, planner.name, getattr(model, "name", None), explore) if trajectory else None
    return EpisodeResult(seed=seed, success=bool(info["success"]), final_distance=float(info["distance"]),
                         start_distance=start, steps=steps, plan_seconds=times, plan_cpu_seconds=cpu, frames=frames, imagined=imagined,
                         trajectory=traj, adapt_gains=[] if correction is None else correction.gains.tolist())


def _trajectory(env: ControlEnv, states: list[np.ndarray], actions: list[np.ndarray], seed: int, planner: str,
                model: str | None, explore: float) -> Trajectory:
    """The recorded world steps of an episode (the last state's action is zero: it has no successor)."""
    w = env.world
    meta = {
        "name": f"{w.name}-{w.seed}",
        "world": w.name,
        "seed": int(w.seed),
        "steps": len(states),
        "config": w.config.to_dict(),
        "policy": {"task": type(env).__name__, "episode_seed": int(seed), "planner": planner, "model": model,
                   "explore": float(explore)},
    }
    arrays = {
        "positions": np.stack(states),
        "node_attr": w.node_attr,
        "instance": w.instance,
        "edges": w.edges,
        "edge_attr": w.edge_attr,
        "actions": np.stack([*actions, np.zeros_like(states[0])]),
        "observed": w.observed,
    }
    return Trajectory.from_arrays(arrays, w.dt, meta)


def wilson_interval(successes: int, n: int, z: float = Z90) -> tuple[float, float]:
    """Wilson score interval of a success rate (90% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    """Success rate (with its 90% interval), distances and planning time per control step."""
    n = len(results)
    wins = sum(r.success for r in results)
    times = np.concatenate([r.plan_seconds for r in results]) if results else np.zeros(0)
    cpu = np.concatenate([r.plan_cpu_seconds for r in results]) if results else np.zeros(0)
    lo, hi = wilson_interval(wins, n)
    final = np.array([r.final_distance for r in results])
    return {
        "episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else 0.0,
        "success_interval_90": [lo, hi],
        "final_distance_mean": float(final.mean()) if n else None,
        "final_distance_median": float(np.median(final)) if n else None,
        "start_distance_mean": float(np.mean([r.start_distance for r in results])) if n else None,
        "plan_seconds_per_step_mean": float(times.mean()) if times.size else 0.0,
        "plan_seconds_per_step_p95": float(np.percentile(times, 95)) if times.size else 0.0,
        # CPU time of this process while planning: what the planning costs, whatever else the machine runs
        "plan_cpu_seconds_per_step_mean": float(cpu.mean()) if cpu.size else None,
        "plan_cpu_seconds_per_step_p95": float(np.percentile(cpu, 95)) if cpu.size else None,
        "control_steps": int(times.size),
    }
