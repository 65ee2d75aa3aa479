"""Learned dynamics, one suite per registered world (``dynamics-cradle``, ``dynamics-rope``, ...).

Each suite records a fresh held-out split of the world (``nesy data dynamics
--split test``, seed :data:`SEED`), rolls every learned simulator that ships a
checkpoint for the world out from the first frames (``nesy bench dynamics``),
and reports position MSE at horizons 1, 5, 10, 20 and over the whole rollout,
the error-against-horizon plot (the PropNet / DPI-Net papers' figure), a GIF
of the predictions beside the truth, and rollout steps per second beside the
ground-truth simulator's.
"""

from __future__ import annotations

from typing import Any

from benchmarks.dynamics_eval import shipped_models
from benchmarks.suites import SuiteContext, data_lock, figure, register_suite, speed_row, table

__all__ = ["run_dynamics", "SEED", "shipped_models"]

SEED = 5252  # held-out test trajectories of bench all; never used for training or choosing settings
HORIZONS = (1, 5, 10, 20)
PAPERS = ("PropNet (Li et al., ICRA 2019) and DPI-Net (Li et al., ICLR 2019) show rollout error as curves "
          "on their own worlds; no published figure is comparable to these worlds, so none is shown.")


def _available(world: str):
    def check() -> str | None:
        import importlib.util

        from physics.worlds.dynamics.particle_base import ParticleWorld
        from physics.worlds.dynamics.registry import WORLDS

        if issubclass(WORLDS.get(world), ParticleWorld) and importlib.util.find_spec("taichi") is None:
            return f"world {world!r} needs the particles extra (pip install 'nesy-physics[particles]')"
        return None if shipped_models(world) else f"no learned simulator ships a checkpoint for world {world!r}"

    return check


def run_dynamics(ctx: SuiteContext) -> dict[str, Any]:
    """Record the split, roll the shipped simulators out on it, lay out table, plot and GIF."""
    import torch

    from benchmarks.datasets.dynamics_builder import DynamicsDataConfig, build_dynamics_split
    from benchmarks.dynamics_eval import evaluate_dynamics, plot_errors, rollout_gif
    from physics.worlds.dynamics import load_split, measure_sim_speed, replay_errors

    torch.set_num_threads(ctx.threads)
    p = ctx.params
    world = p["world"]
    data = ctx.data / f"dynamics_{world}_seed{p['seed']}_n{p['n']}"
    with data_lock(data):
        build_dynamics_split(DynamicsDataConfig(world=world, n=p["n"], out=str(data), seed=p["seed"], split="test"),
                             progress=False)
    trajs = load_split(data, "test")
    models = shipped_models(world)
    sim = measure_sim_speed(world, steps=trajs[0].num_steps, repeats=p.get("sim_repeats", 1))
    sim["replay"] = replay_errors(trajs)
    result, preds = evaluate_dynamics(world, trajs, models, None, HORIZONS, sim)
    result["figures"] = {}
    png, gif = ctx.out / f"dynamics_{world}_error.png", ctx.out / f"dynamics_{world}_rollout.gif"
    plot_errors(result, png)
    rollout_gif(trajs[0], {k: v[0] for k, v in preds.items()}, gif)
    rows = []
    for name, r in result["models"].items():
        rows.append([name, *(f"{r['mse_at'][str(h)]:.2e}" if str(h) in r["mse_at"] else "-" for h in HORIZONS),
                     f"{r['mse_full']:.2e}", f"{r['steps_per_s']:.0f}"])
    rows.append(["simulator replay (floor)", *("" for _ in HORIZONS), f"{sim['replay']['mse_full']:.2e}",
                 f"{sim['steps_per_s']:.0f}"])
    data_cmd = f"nesy data dynamics --world {world} --n {p['n']} --seed {p['seed']} --split test --out {data}"
    from physics.worlds.dynamics.particle_base import ParticleWorld
    from physics.worlds.dynamics.registry import WORLDS

    engine = "Taichi MPM" if issubclass(WORLDS.get(world), ParticleWorld) else "pybullet"
    speed = [speed_row(f"ground-truth simulator ({world}, {engine})", sim["steps_per_s"], "steps/s",
                       "stepping, actions and reading positions")]
    speed += [speed_row(f"learned rollout ({name}, {world})", r["steps_per_s"], "steps/s", "one trajectory at a time")
              for name, r in result["models"].items()]
    return {
        "tables": [table(
            f"Learned dynamics, {world}: position MSE (m^2) against horizon, {len(trajs)} held-out trajectories "
            f"of {result['steps']} steps",
            ["model", *(f"MSE @{h}" for h in HORIZONS), "MSE full rollout", "steps/s"], rows,
            command=f"{data_cmd}; nesy bench dynamics --world {world} --data {data} --out R.json",
            seed=p["seed"], note=PAPERS,
        )],
        "figures": [figure(f"{world}: rollout error against horizon", png, ctx.out),
                    figure(f"{world}: learned simulators (right) beside the true rollout (left)", gif, ctx.out)],
        "speed": speed,
        "metrics": {"world": world, "trajectories": len(trajs), "steps": result["steps"],
                    "models": {k: {"mse_full": v["mse_full"], "mse_at": v["mse_at"], "mse_curve": v["mse_curve"],
                                   "steps_per_s": v["steps_per_s"]} for k, v in result["models"].items()},
                    "simulator_steps_per_s": sim["steps_per_s"], "replay_mse": sim["replay"]["mse_full"],
                    "data": data_cmd},
    }


def _register() -> None:
    from physics.worlds.dynamics.registry import WORLDS

    for world in WORLDS.names():
        register_suite(
            f"dynamics-{world}", run_dynamics,
            quick={"world": world, "n": 2, "seed": SEED, "sim_repeats": 1},
            full={"world": world, "n": 10, "seed": SEED, "sim_repeats": 3},
            available=_available(world), group="Learned dynamics",
            help=f"rollout error against horizon and speed of the shipped simulators on {world}",
        )


_register()
