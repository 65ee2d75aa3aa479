"""``nesy bench dynamics``: rollout error and speed of learned simulators on held-out data.

Example::

    nesy data dynamics --world cradle --n 10 --out data/cradle --split test
    nesy bench dynamics --world cradle --data data/cradle --out results/cradle.json --models in,propnet

Rolls each model out on the ``test`` split (trajectories from their own seeds),
reports position MSE at several horizons and over the full rollout, rollout speed
beside the ground-truth simulator's and the simulator's own replay error (a floor
for the MSE), and writes ``R.json`` plus ``R.png`` (error against horizon) and
``R.gif`` (predicted beside true).  Keys: see
:mod:`benchmarks.dynamics_eval`.  Checkpoints come from ``--checkpoints DIR``
(``DIR/WORLD_MODEL.pt`` or ``DIR/WORLD_MODEL/model.pt``), by default the ones
shipped in ``physics/models/checkpoints``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.config_flags import registry_argument
from benchmarks.dynamics_eval import evaluate_dynamics, plot_errors, rollout_gif
from physics.errors import ConfigError
from physics.io import atomic_write_json
from physics.models import MODELS
from physics.worlds.dynamics.registry import WORLDS

__all__ = ["register", "run"]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--horizons expects comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"--horizons must be positive integers, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    import torch

    from physics.worlds.dynamics import load_split, measure_sim_speed, replay_errors

    torch.set_num_threads(args.threads)
    WORLDS.get(args.world)
    models = MODELS.names() if args.models is None else [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise ConfigError(f"--models: no model named in {args.models!r}; choose one of {', '.join(MODELS)}")
    for m in models:
        if m not in MODELS:
            raise ConfigError(f"--models: {MODELS.unknown_message(m)}")
    trajs = load_split(args.data, args.split)
    if args.max_trajectories:
        trajs = trajs[: args.max_trajectories]
    sim = measure_sim_speed(args.world, steps=trajs[0].num_steps)
    sim["replay"] = replay_errors(trajs)
    result, preds = evaluate_dynamics(args.world, trajs, models, args.checkpoints, _int_list(args.horizons), sim)
    out = Path(args.out)
    result = {"world": result.pop("world"), "data": str(args.data), "split": args.split, **result}
    png, gif = out.with_suffix(".png"), out.with_suffix(".gif")
    plot_errors(result, png)
    if not args.no_gif:
        rollout_gif(trajs[0], {k: v[0] for k, v in preds.items()}, gif)
    result["figures"] = {"error_png": str(png), "rollout_gif": None if args.no_gif else str(gif)}
    atomic_write_json(out, result, indent=1)
    brief = {k: {"mse_full": v["mse_full"], "mse_at": v["mse_at"], "steps_per_s": v["steps_per_s"]}
             for k, v in result["models"].items()}
    print(json.dumps({"out": str(out), "simulator_steps_per_s": sim["steps_per_s"],
                      "simulator_replay_mse_full": sim["replay"]["mse_full"], "models": brief}, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "bench",
        "dynamics",
        help="rollout error and speed of learned simulators against the simulator",
        description=__doc__.split("\n\n")[0],
    )
    registry_argument(parser, "--world", registry=WORLDS, required=True, help="world the data comes from")
    parser.add_argument("--data", required=True, help="folder written by `nesy data dynamics`")
    parser.add_argument("--out", required=True, help="result JSON; the PNG and GIF go beside it")
    registry_argument(parser, "--models", registry=MODELS, many=True, default=None,
                      help="comma-separated simulators (default: all)")
    parser.add_argument("--checkpoints", default=None, help="folder of checkpoints (default: the shipped ones)")
    parser.add_argument("--split", default="test", help="held-out split (default: test)")
    parser.add_argument("--horizons", default="1,5,10,20", help="comma-separated horizons for mse_at")
    parser.add_argument("--max-trajectories", type=int, default=0, help="use only the first N trajectories (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-gif", action="store_true", help="skip the GIF")
    parser.set_defaults(func=run)
