"""Ground-truth simulator speed: the yardstick for learned simulators' rollouts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from physics.errors import ConfigError
from physics.worlds.dynamics.base import DynamicsWorld
from physics.worlds.dynamics.registry import make_world

__all__ = ["measure_sim_speed"]


def measure_sim_speed(
    world: str | DynamicsWorld,
    steps: int = 200,
    *,
    seed: int = 0,
    repeats: int = 3,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Time rollouts of a ground-truth world (random policy, state read every step).

    The time covers stepping, applying actions and reading positions, the work a
    learned simulator replaces; scene construction (``reset``) is excluded.

    Args:
        world: A world name (built from its preset) or a world instance.
        steps: Recorded steps per timed rollout.
        seed: Episode seed.
        repeats: Timed rollouts; the fastest counts (least disturbed by other load).
        overrides: Config fields for a world given by name, e.g. a data set's
            ``traj.meta["config"]``, so the timing matches that data.

    Returns:
        ``{"world", "steps", "frame_skip", "physics_dt", "seconds",
        "steps_per_s" (recorded steps), "physics_steps_per_s", "nodes"}``.
    """
    if steps < 1 or repeats < 1:
        raise ConfigError(f"steps and repeats must be >= 1, got steps={steps}, repeats={repeats}")
    own = isinstance(world, str)
    w = make_world(world, **dict(overrides or {})) if own else world
    try:
        best = float("inf")
        for _ in range(repeats):
            w.reset(seed)
            start = time.perf_counter()
            for _ in range(steps):
                w.state()
                w.step(w.sample_action())
            best = min(best, time.perf_counter() - start)
        fs = w.config.frame_skip
        return {
            "world": w.name,
            "steps": steps,
            "frame_skip": fs,
            "physics_dt": w.config.physics_dt,
            "nodes": w.num_nodes,
            "seconds": best,
            "steps_per_s": steps / best,
            "physics_steps_per_s": steps * fs / best,
        }
    finally:
        if own:
            w.close()
