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
shipped in ``physics/models/checkpoints``.  Each model's rollout on a particle world
is projected back inside the container the wall markers outline when its
checkpoint declares it (``ModelConfig.wall_projection``, part of that model);
``--wall-projection`` / ``--no-wall-projection`` force one setting for every model.  Without ``--split`` the ``test``
split is benched, or the only split the folder holds.  The terminal gets a
short table; the JSON goes to ``--out``.  A trajectory file that cannot be read
(corrupt, NaN) is named on stderr and in ``skipped_trajectories`` and left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.config_flags import comma_items, count, registry_argument
from benchmarks.dynamics_eval import (
    checkpoint_folder,
    evaluate_dynamics,
    plot_errors,
    rollout_gif,
    shipped_models,
)
from benchmarks.table import print_table
from physics.errors import ConfigError, DataError
from physics.io import atomic_write_json, check_writable
from physics.models import MODELS
from physics.worlds.dynamics.registry import WORLDS

__all__ = ["register", "run"]


DEFAULT_HORIZONS = "1,5,10,20"  # steps after the history at which mse_at reports the error


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--horizons expects comma-separated integers, got {text!r}") from None
    twice = [v for i, v in enumerate(values) if v in values[:i]]  # 5,05 too: one horizon
    if twice:
        raise ConfigError(f"--horizons {text!r}: {twice[0]} given twice; name each once")
    if not values or min(values) < 1:
        raise ConfigError(f"--horizons must be positive integers, got {text!r}")
    return values


def find_split(root: str, split: str | None) -> str:
    """The split to bench: ``split`` when given, else ``test``, else the only split in ``root``.

    Raises:
        DataError: no split given and ``root`` holds no ``test`` split and not exactly one other.
    """
    from physics.worlds.dynamics.splits import INDEX_NAME, SPLITS

    if split is not None:
        return split
    found = [s for s in SPLITS if (Path(root) / s / INDEX_NAME).is_file()]
    if "test" in found or not found:
        return "test"  # a missing folder is named by load_split's own error
    if len(found) == 1:
        return found[0]
    raise DataError(f"{root} holds splits {', '.join(found)} and no test split; choose one with --split")


def _projection_note(result: dict) -> str:
    """The title's note on the wall projection: forced for every model, or the models that declare it."""
    if result.get("wall_projection") is True:
        return ", wall projection on"
    if result.get("wall_projection") is False:
        return ", wall projection forced off"
    declared = [name for name, r in result["models"].items() if r.get("wall_projection")]
    return f", wall projection declared by {', '.join(declared)}" if declared else ""


def print_summary(result: dict, out: Path) -> None:
    """Per model: full-rollout MSE, MSE at each horizon and speed; the simulator's floor and speed below."""
    horizons = [str(h) for h in result["horizons"]]
    rows = []
    for name, r in result["models"].items():
        rows.append([name, f"{r['mse_full']:.2e}", *(f"{r['mse_at'][h]:.2e}" if h in r["mse_at"] else "-"
                                                     for h in horizons), f"{r['steps_per_s']:.0f}"])
    sim = result["ground_truth"]
    replay = f"{sim['replay']['mse_full']:.2e}" if sim.get("replay") else "not run"
    rigid, tank = "rigidity_error" in sim, "left_container" in sim
    for row, r in zip(rows, result["models"].values(), strict=True):
        row += [f"{r['rigidity_error']:.1e}"] if rigid else []
        row += [f"{100 * r['left_container']:.1f}%"] if tank else []
    rows.append(["simulator replay", replay, *("" for _ in horizons), f"{sim['steps_per_s']:.1f}",
                 *([f"{sim['rigidity_error']:.1e}"] if rigid else []),
                 *([f"{100 * sim['left_container']:.1f}%"] if tank else [])])
    print_table(rows, ["model", "MSE full", *(f"MSE @{h}" for h in horizons), "steps/s",
                       *(["rigidity (m)"] if rigid else []), *(["left tank"] if tank else [])],
                title=f"{result['world']}: {result['trajectories']} trajectories of {result['steps']} steps "
                f"({result['data']}, split {result['split']}), position MSE in m^2"
                + _projection_note(result))
    figures = [f for f in result["figures"].values() if f]
    print(f"full result -> {out}" + (f"; figures -> {', '.join(figures)}" if figures else ""))


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from physics.worlds.dynamics import load_split, measure_sim_speed, replay_errors

    torch.set_num_threads(args.threads)
    WORLDS.get(args.world)
    checkpoint_folder(args.checkpoints)  # a file or a missing folder is named before any data is read
    check_writable(args.out)  # not after the rollouts
    if args.models is None:  # every model with a checkpoint for this world
        models = shipped_models(args.world, args.checkpoints)
        if not models:
            raise ConfigError(f"no model has a checkpoint for world {args.world!r} under "
                              f"{args.checkpoints or 'the shipped checkpoints'}; train one with nesy train dynamics")
    else:
        models = comma_items(args.models, "--models")
    if not models:
        raise ConfigError(f"--models: no model named in {args.models!r}; choose one of {', '.join(MODELS)}")
    for m in models:
        if m not in MODELS:
            raise ConfigError(f"--models: {MODELS.unknown_message(m)}")
    horizons = _int_list(DEFAULT_HORIZONS if args.horizons is None else args.horizons)
    split = find_split(args.data, args.split)
    skipped: list[str] = []  # a corrupt trajectory is reported and left out, not the end of the benchmark
    trajs = load_split(args.data, split, skipped=skipped)
    for why in skipped:
        print(f"skipped trajectory: {why}", file=sys.stderr)
    if args.max_trajectories:
        trajs = trajs[: args.max_trajectories]
    longest = min(t.num_steps for t in trajs) - 1  # steps after the first; a model's history takes more
    if args.horizons is not None and max(horizons) > longest:  # asked for: mse_at would leave it out without a word
        raise ConfigError(f"--horizons {args.horizons}: the shortest trajectory of {args.data} ({split}) has "
                          f"{longest} steps to predict; each horizon must be <= {longest}")
    stages = tqdm(total=2 + len(models), desc="simulator speed", unit="stage", disable=args.quiet)
    with stages:
        sim = measure_sim_speed(args.world, steps=trajs[0].num_steps)
        stages.update()
        if not args.skip_replay:
            stages.set_description(f"simulator replay of {len(trajs)}")
            sim["replay"] = replay_errors(trajs)
        stages.update()
        result: dict = {}
        preds: dict = {}
        for name in models:
            stages.set_description(f"rollouts of {name}")
            part, part_preds = evaluate_dynamics(args.world, trajs, [name], args.checkpoints, horizons, sim,
                                                 wall_projection=args.wall_projection)
            result = part | {"models": result.get("models", {}) | part["models"]}
            preds |= part_preds
            stages.update()
    for name, r in result["models"].items():  # a model's history shortens its rollout: say which horizons it lacks
        lacking = [h for h in horizons if h not in r["mse_at"] and str(h) not in r["mse_at"]]
        if lacking:
            print(f"nesy bench dynamics: note: model {name}'s rollouts predict {len(r['mse_curve'])} steps after its "
                  f"history; horizon(s) {', '.join(map(str, lacking))} left out of its mse_at", file=sys.stderr)
    out = Path(args.out)
    result = {"world": result.pop("world"), "data": str(args.data), "split": split, **result}
    if skipped:  # only then: a clean data set gives the same JSON as before
        result["skipped_trajectories"] = skipped
    png, gif = out.with_suffix(".png"), out.with_suffix(".gif")
    plot_errors(result, png)
    if not args.no_gif:
        rollout_gif(trajs[0], {k: v[0] for k, v in preds.items()}, gif)
    result["figures"] = {"error_png": str(png), "rollout_gif": None if args.no_gif else str(gif)}
    atomic_write_json(out, result, indent=1)
    print_summary(result, out)
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
                      help="comma-separated simulators (default: every one with a checkpoint for the world)")
    parser.add_argument("--checkpoints", default=None, help="folder of checkpoints (default: the shipped ones)")
    parser.add_argument("--split", default=None,
                        help="split to bench (default: test, or the only split the folder holds)")
    parser.add_argument("--horizons", default=None, help=f"comma-separated horizons (steps) for mse_at, each at most the "
                        f"shortest trajectory's steps (default: {DEFAULT_HORIZONS}; those past a rollout are noted)")
    parser.add_argument("--max-trajectories", type=count(min=0, zero="all"), default=0, help="use only the first N trajectories (0: all, the default)")
    parser.add_argument("--threads", type=count(min=1), default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--no-gif", action="store_true", help="skip the GIF")
    parser.add_argument("--skip-replay", action="store_true",
                        help="do not re-simulate the trajectories for the replay floor (slow particle worlds)")
    parser.add_argument("--wall-projection", action=argparse.BooleanOptionalAction, default=None,
                        help="project predicted particles back inside the container the wall markers outline "
                        "(--no-wall-projection: never), the same for every model (particle worlds only; default: "
                        "each model as its checkpoint declares, ModelConfig.wall_projection, off unless declared)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
