"""Model-based control, one suite per registered control task (``control-boxpush``, ``control-rope``, ...).

Each suite runs closed-loop episodes of the task (``nesy control``) from episode
seeds drawn from :data:`SEED`: CEM through the task's shipped learned model
(PropNet; DPI-Net on the particle tasks, with the task's cheaper plan), and
random actions as the baseline, and reports the success rate with its
90% Wilson interval, the final distance and the planning time per control step,
with a bar chart of success.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from typing import Any

from benchmarks.suites import SuiteContext, figure, register_suite, save_png, speed_row, table

__all__ = ["run_control", "SEED"]

SEED = 5353  # evaluation seed of bench all; episode seeds are drawn from it (never used for tuning)
PAPERS = ("PropNet (Li et al., ICRA 2019) reports control on its own box-pushing and rope set-ups; "
          "their success criteria differ from these tasks', so no published figure is shown.")


def _available(task: str, model: str):
    def check() -> str | None:
        from physics.control import TASKS, ParticleEnv
        from physics.control.model import default_checkpoint

        cls = TASKS.get(task).env_cls
        if issubclass(cls, ParticleEnv) and importlib.util.find_spec("taichi") is None:
            return "the particle worlds need the particles extra: pip install -e '.[particles]'"
        world = cls.checkpoint_world_for(cls.config_cls())
        if not default_checkpoint(model, world).is_file():
            return f"no shipped {model} checkpoint for world {world!r} (task {task!r})"
        return None

    return check


def _plot(rows: list[tuple[str, dict[str, Any]]], task: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.6), dpi=90)
    names = [name for name, _ in rows]
    rates = [100 * s["success_rate"] for _, s in rows]
    lo = [100 * (s["success_rate"] - s["success_interval_90"][0]) for _, s in rows]
    hi = [100 * (s["success_interval_90"][1] - s["success_rate"]) for _, s in rows]
    ax.bar(names, rates, yerr=[lo, hi], capsize=4, color=["#4c72b0", "#bbbbbb"][: len(rows)])
    ax.set_ylim(0, 105)
    ax.set_ylabel("success (%)")
    ax.set_title(f"{task}: success with 90% interval", fontsize=9)
    save_png(fig, path)


def run_control(ctx: SuiteContext) -> dict[str, Any]:
    """Episodes with the learned model and CEM, then with random actions; table and success chart."""
    import torch

    from physics.control import (
        TASKS,
        episode_seeds,
        make_planner,
        make_planning_model,
        run_episode,
        summarize,
    )
    from physics.control.planners import PlannerConfig

    torch.set_num_threads(ctx.threads)
    p = ctx.params
    task = TASKS.get(p["task"])
    config = task.env_cls.config_cls()
    if p.get("max_steps"):
        config = dataclasses.replace(config, max_steps=p["max_steps"])
    env = task.env_cls(config)
    plan_cfg = PlannerConfig(**p.get("planner", {}))
    seeds = episode_seeds(p["seed"], p["episodes"])
    runs: list[tuple[str, dict[str, Any]]] = []
    speed = []
    try:
        for model_name, planner_name, episodes in ((p["model"], "cem", p["episodes"]),
                                                   ("gt", "random", p["random_episodes"])):
            planner = make_planner(planner_name, plan_cfg)
            model = make_planning_model(model_name, env.checkpoint_world) if planner.needs_model else None
            t0 = time.perf_counter()
            results = [run_episode(env, model, planner, s) for s in episode_seeds(p["seed"], episodes)]
            summary = summarize(results) | {"seconds": round(time.perf_counter() - t0, 2)}
            label = f"{model_name} + {planner_name}" if planner.needs_model else "random actions"
            runs.append((label, summary))
            if planner.needs_model:
                speed.append(speed_row(f"planning, {p['task']} ({model_name} + {planner_name})",
                                       1.0 / max(summary["plan_seconds_per_step_mean"], 1e-9), "control steps/s",
                                       "one control step = one plan of the whole horizon"))
    finally:
        env.close()
    rows = []
    for label, s in runs:
        lo, hi = s["success_interval_90"]
        rows.append([label, s["episodes"], f"{s['successes']}/{s['episodes']} = {100 * s['success_rate']:.0f}%",
                     f"{100 * lo:.0f}-{100 * hi:.0f}%", f"{s['final_distance_mean']:.3f}",
                     f"{s['start_distance_mean']:.3f}", f"{s['plan_seconds_per_step_mean']:.2f}"])
    png = ctx.out / f"control_{p['task']}_success.png"
    _plot(runs, p["task"], png)
    flags = "".join(f" --{k.replace('_', '-')} {v}" for k, v in p.get("planner", {}).items())
    flags += f" --max-steps {p['max_steps']}" if p.get("max_steps") else ""
    cmd = (f"nesy control --task {p['task']} --model {p['model']} --planner cem --episodes {p['episodes']} "
           f"--seed {p['seed']}{flags} --out R.json; nesy control --task {p['task']} --model gt --planner random "
           f"--episodes {p['random_episodes']} --seed {p['seed']}{flags} --out R_random.json")
    return {
        "tables": [table(
            f"Model-predictive control, {p['task']} ({task.gym_id}): success within {env.config.max_steps} "
            "control steps",
            ["planning", "episodes", "success", "90% interval", "final distance (m)", "start distance (m)",
             "plan s / step"], rows, command=cmd, seed=p["seed"], note=PAPERS,
        )],
        "figures": [figure(f"{p['task']}: success rate", png, ctx.out)],
        "speed": speed,
        "metrics": {"task": p["task"], "runs": dict(runs), "episode_seeds": seeds},
    }


def _register() -> None:
    from physics.control import TASKS, ParticleEnv

    for name in TASKS.names():
        task = TASKS.get(name)
        extra = {"planner": task.planner} if task.planner else {}
        # a plan on the MPM worlds costs seconds: the quick run stops after 5 control steps, the full one after 5 episodes
        slow = issubclass(task.env_cls, ParticleEnv)
        register_suite(
            f"control-{name}", run_control,
            quick={"task": name, "model": task.model, "episodes": 1 if slow else 2, "random_episodes": 2, "seed": SEED,
                   **extra, **({"max_steps": 5} if slow else {})},
            full={"task": name, "model": task.model, "episodes": 5 if slow else 20, "random_episodes": 20,
                  "seed": SEED, **extra},
            available=_available(name, task.model), group="Model-based control",
            help=f"success of CEM through the shipped {task.model} on {name}, beside random actions",
        )


_register()
