"""``nesy control``: model-predictive control on a Gymnasium task with a learned or true model.

Example::

    nesy control --task boxpush --model propnet --planner cem --episodes 50 --seed 1000 --out R.json

Each episode resets the task from its own seed (drawn from ``--seed``), then
plans every control step with ``--planner`` through ``--model`` (``gt``: the
simulator itself; else a learned simulator from the shipped checkpoint of the
task's world, or ``--checkpoint``), executes the first action and re-plans.
``R.json`` holds the success rate with its 90% Wilson interval, the final
distance to the goal, the planning time per control step and every episode;
``R.gif`` shows the first episode (the true world, left; the positions the model
imagined for the executed plan, right).  The JSON is rewritten after every
episode, so ``--resume`` continues a killed run.

Data the planner collects (DAgger-style; :mod:`physics.control.collect`)::

    nesy control --task boxpush --model propnet --planner cem --episodes 40 --seed 21 --explore 0.3 \
        --record data/boxes_dagger --record-split train --out data/boxes_dagger/train.json
    nesy train dynamics --world boxes --model propnet --data data/boxes --data data/boxes_dagger ...

``--record DIR`` writes every episode's true world steps (positions, per-node
actions) as ``DIR/<split>/traj_*.npz`` with its ``index.json``, the layout ``nesy
data dynamics`` writes; ``--explore S`` adds Gaussian noise of std ``S`` to each
executed normalised action.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.config_flags import (
    add_config_flags,
    config_from_args,
    count,
    number,
    registry_argument,
)
from benchmarks.table import percent, print_table
from physics.errors import ConfigError, DataError
from physics.io import atomic_write_json, check_writable, ensure_dir, read_json

__all__ = ["register", "run"]


def _settings(args: argparse.Namespace, planner_cfg, task_cfg) -> dict:
    """What makes two runs' episodes the same (as JSON stores it: tuples become lists)."""
    extra = {"explore": args.explore} if args.explore else {}
    return json.loads(json.dumps({
        **extra,
        "task": args.task,
        "model": args.model,
        "planner": args.planner,
        "seed": args.seed,
        "checkpoint": args.checkpoint,
        "planner_config": dataclasses.asdict(planner_cfg),
        "task_config": dataclasses.asdict(task_cfg),
    }))


def episode_gif(result, path: Path) -> None:
    """The true world's frames beside the imagined end of each executed plan (top view)."""
    import imageio.v2 as imageio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    images = []
    for k, frame in enumerate(result.frames):
        fig, axes = plt.subplots(1, 2 if result.imagined else 1, figsize=(5.2 if result.imagined else 2.6, 2.6), dpi=70)
        axes = np.atleast_1d(axes)
        axes[0].imshow(frame)
        axes[0].set_title(f"world, step {k}", fontsize=8)
        if result.imagined:
            plan = result.imagined[min(k, len(result.imagined) - 1)]  # [T, N, D]
            up = 1 if plan.shape[-1] == 2 else -1  # 2-D particle worlds: y up, as the world draws them
            for t in range(plan.shape[0]):
                axes[1].scatter(plan[t, :, 0], up * plan[t, :, 1], s=6, c=np.arange(plan.shape[1]) % 10, cmap="tab10",
                                alpha=min(1.0, 0.2 + 0.8 * (t + 1) / plan.shape[0]))
            axes[1].set_aspect("equal")
            axes[1].set_title("imagined plan", fontsize=8)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        fig.canvas.draw()
        images.append(np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy())
        plt.close(fig)
    imageio.mimsave(path, images, duration=100, loop=0)


_EPISODE_KEYS = ("seed", "success", "final_distance", "start_distance", "steps", "plan_seconds_mean")


def _episode_fault(d: dict[str, Any], max_steps: Any) -> str | None:
    """What is wrong with the types of a resumed episode record (None: nothing), in words.

    A hand-edited or damaged record was a TypeError deep in the resume (``"steps": "2"``), or asked
    for a list of that many plan times (``"steps": 10**12``).
    """
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    rules = {"seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
             "success": (lambda v: isinstance(v, bool), "true or false"),
             "final_distance": (number, "a number"), "start_distance": (number, "a number"),
             "plan_seconds_mean": (number, "a number"),
             "plan_cpu_seconds_mean": (lambda v: v is None or number(v), "a number or null")}
    for key, (ok, what) in rules.items():
        if key in d and not ok(d[key]):
            return f"{key} must be {what}, got {d[key]!r}"
    steps, most = d["steps"], max_steps if isinstance(max_steps, int) else None
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0 or (most is not None and steps > most):
        return f"steps must be an integer in [0, {most if most is not None else 'max_steps'}], got {steps!r}"
    return None


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"planner_config": {"horizon": 20}}`` -> ``{"planner_config.horizon": 20}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _resumable(old: Any, out: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The episodes of an earlier ``--out`` that ``--resume`` continues.

    A resume continues the run the file holds, so its settings must be the file's: a run with
    others is refused (before, it started over and overwrote the file's episodes without a word).

    Raises:
        DataError: the file is not a control result, or an episode record lacks a field (names the file).
        ConfigError: the file's run had other settings (each one named, the file's value and this run's).
    """
    if (not isinstance(old, dict) or not isinstance(old.get("settings"), dict)
            or not isinstance(old.get("per_episode", []), list)):
        raise DataError(f"--resume: {out} is not a nesy control result (an object with 'settings' and "
                        "'per_episode'); give another --out or delete it")
    if old["settings"] != settings:
        was, now = _flat(old["settings"]), _flat(settings)
        diff = "; ".join(f"{k}: {was.get(k)!r} in the file, {now.get(k)!r} now"
                         for k in dict.fromkeys([*now, *was]) if was.get(k) != now.get(k))
        raise ConfigError(f"--resume: {out} holds a run with other settings ({diff}); resume with the run's "
                          "flags, or give another --out")
    episodes = old.get("per_episode", [])
    for k, d in enumerate(episodes):
        missing = [key for key in _EPISODE_KEYS if not isinstance(d, dict) or key not in d]
        if missing:
            raise DataError(f"--resume: {out}: episode {k} lacks {', '.join(missing)}; give another --out or delete it")
        fault = _episode_fault(d, settings.get("task_config", {}).get("max_steps"))
        if fault:
            raise DataError(f"--resume: {out}: episode {k}: {fault}; give another --out or delete it")
    return episodes


def _check_unused(args: argparse.Namespace, planner_cls: type) -> None:
    """Refuse an option the run would not read, in one line naming it and the option that makes it unused.

    ``--planner random --checkpoint FILE`` would run the baseline, never open FILE and record it in the
    settings as if it had been used; ``--model gt`` and ``--focus`` (learned models only), and
    ``--record-split`` without ``--record``, the same.  ``--model`` is required; a planner without a model
    takes ``gt`` only (every documented baseline gives ``--model gt --planner random``): a learned model named
    there would be recorded as if it had planned.
    """
    if args.checkpoint is not None and not planner_cls.needs_model:
        raise ConfigError(f"--checkpoint {args.checkpoint}: --planner {args.planner} plans without a model and never "
                          "reads it; drop --checkpoint")
    if args.checkpoint is not None and args.model == "gt":
        raise ConfigError(f"--checkpoint {args.checkpoint}: --model gt is the simulator and reads no file; drop "
                          "--checkpoint or name a learned --model")
    if args.focus is not None and (args.model == "gt" or not planner_cls.needs_model):
        why = "--model gt simulates every object" if args.model == "gt" else f"--planner {args.planner} plans without a model"
        raise ConfigError(f"--focus {args.focus}: {why} (--focus applies to learned models); drop --focus")
    if args.record_split is not None and not args.record:
        raise ConfigError(f"--record-split {args.record_split}: given without --record, nothing is recorded; add "
                          "--record DIR or drop --record-split")
    if args.model != "gt" and not planner_cls.needs_model:
        raise ConfigError(f"--model {args.model}: --planner {args.planner} plans without a model and never loads it; "
                          "give --model gt for the baseline")


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from physics.control import (
        PLANNERS,
        TASKS,
        episode_seeds,
        make_planner,
        make_planning_model,
        run_episode,
    )
    from physics.control.collect import SplitWriter
    from physics.control.episode import EpisodeResult
    from physics.control.planners import PlannerConfig

    torch.set_num_threads(args.threads)
    check_writable(args.out)  # not after the episodes
    task = TASKS.get(args.task)
    _check_unused(args, PLANNERS.get(args.planner))
    planner_cfg = config_from_args(PlannerConfig, args)
    overrides = {k: getattr(args, k) for k in ("repeat", "max_steps", "tolerance", "focus") if getattr(args, k) is not None}
    if args.side_weight is not None:
        if not hasattr(task.env_cls.config_cls(), "side_weight"):
            raise ConfigError(f"--side-weight: task {args.task!r} has no side term (box pushing tasks only)")
        overrides["side_weight"] = args.side_weight
    if args.approach is not None:
        if not hasattr(task.env_cls.config_cls(), "approach_path"):
            raise ConfigError(f"--approach: task {args.task!r} has no approach term (box pushing tasks only)")
        overrides["approach_path"] = args.approach
    task_cfg = dataclasses.replace(task.env_cls.config_cls(), **overrides)
    planner = make_planner(args.planner, planner_cfg)
    env = task.env_cls(task_cfg)
    model = make_planning_model(args.model, env.checkpoint_world, args.checkpoint) if planner.needs_model else None
    out = Path(args.out)
    ensure_dir(out.parent)
    settings = _settings(args, planner_cfg, task_cfg)
    done: list[dict] = []
    if args.resume and out.is_file():
        done = _resumable(read_json(out), out, settings)[: args.episodes]
    writer = SplitWriter(args.record, args.record_split or "train", args.episodes, settings) if args.record else None
    if writer is not None:  # both files hold the same first episodes (a kill may fall between their writes)
        done = done[: writer.count]
        writer.truncate(len(done))
    seeds = episode_seeds(args.seed, args.episodes)
    results = [EpisodeResult(d["seed"], d["success"], d["final_distance"], d["start_distance"], d["steps"],
                             [d["plan_seconds_mean"]] * d["steps"],
                             [d["plan_cpu_seconds_mean"]] * d["steps"] if d.get("plan_cpu_seconds_mean") is not None else [])
               for d in done]
    gif = out.with_suffix(".gif")
    bar = tqdm(total=args.episodes, initial=len(done), desc=f"{args.task} {args.model} {args.planner}",
               unit="episode", disable=args.quiet)
    try:
        with bar:
            for i in range(len(done), args.episodes):
                record = i == 0 and not args.no_gif
                r = run_episode(env, model, planner, seeds[i], record=record, explore=args.explore,
                                trajectory=writer is not None)
                if writer is not None:
                    writer.add(r.trajectory)
                if record:
                    episode_gif(r, gif)
                results.append(r)
                bar.update()
                bar.set_postfix(success=f"{sum(x.success for x in results)}/{len(results)}")
                _write(out, settings, results, args, complete=len(results) == args.episodes, gif=gif)
    finally:
        env.close()
    _summary(read_json(out), out)
    return 0


def _write(out: Path, settings: dict, results: list, args: argparse.Namespace, *, complete: bool, gif: Path) -> None:
    from physics.control import TASKS, summarize

    atomic_write_json(out, {
        "task": args.task,
        "gym_id": TASKS.get(args.task).gym_id,
        "model": args.model,
        "planner": args.planner,
        "complete": complete,
        **summarize(results),
        "settings": settings,
        "command": "nesy " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["control"] else None,
        "gif": None if args.no_gif else str(gif),
        "per_episode": [r.to_dict() for r in results],
    }, indent=1)


def _summary(result: dict, out: Path) -> None:
    lo, hi = result["success_interval_90"]
    rows = [[result["task"], result["model"], result["planner"], result["episodes"], f"{percent(result['success_rate'], 0)} ({percent(lo, 0)}-{percent(hi, 0)})",
             f"{result['final_distance_mean']:.3f}", f"{result['plan_seconds_per_step_mean']:.3f}",
             "-" if result.get("plan_cpu_seconds_per_step_mean") is None else f"{result['plan_cpu_seconds_per_step_mean']:.3f}"]]
    print_table(rows, ["task", "model", "planner", "episodes", "success (90% CI)", "final dist (m)", "plan s/step",
                       "plan CPU s/step"],
                title=f"model-predictive control, seed {result['settings']['seed']}")
    print(f"full result -> {out}" + (f"; GIF -> {result['gif']}" if result.get("gif") else ""))


def register(groups) -> None:
    from physics.control import PLANNERS, PLANNING_THREADS, TASKS
    from physics.control.envs import APPROACH_PATHS
    from physics.control.planners import PlannerConfig
    from physics.models.base import MODELS

    parser = groups.command("control", help="model-predictive control on a Gymnasium task (learned or true model)",
                            description=__doc__.split("\n\n")[0])
    registry_argument(parser, "--task", registry=TASKS, required=True, help="control task")
    parser.add_argument("--model", required=True,
                        help=f"planning model: gt (the simulator) or a learned simulator ({', '.join(MODELS.names())})")
    registry_argument(parser, "--planner", registry=PLANNERS, default="cem", help="planner (default: cem)")
    parser.add_argument("--episodes", type=count(min=1), default=50, help="episodes (default: 50)")
    parser.add_argument("--seed", type=count(min=0), default=0, help="evaluation seed; episode seeds are drawn from it (default: 0)")
    parser.add_argument("--out", required=True, help="result JSON (the GIF goes beside it)")
    parser.add_argument("--checkpoint", default=None, help="learned model file (default: the shipped WORLD_MODEL.pt)")
    add_config_flags(parser, PlannerConfig)
    parser.add_argument("--repeat", type=count(min=1), default=None, help="world steps per control step (task default)")
    parser.add_argument("--max-steps", type=count(min=1), default=None, help="control steps per episode (task default)")
    parser.add_argument("--tolerance", type=number, default=None, help="success distance in m (task default)")
    parser.add_argument("--focus", type=number, default=None,
                        help="learned models simulate only objects within this many m of the actuated node "
                        "(task default; boxpush-corners: 0.25)")
    parser.add_argument("--side-weight", type=number, default=None,
                        help="box tasks: planner cost weight of the pusher within reach of the box but not behind it "
                        "(task default)")
    parser.add_argument("--approach", default=None, choices=APPROACH_PATHS,
                        help="box tasks: the pusher's way to the spot behind the box in the planner's cost, straight "
                        "(through the box) or around (round its reach disk) (task default)")
    parser.add_argument("--explore", type=number, default=0.0,
                        help="std of Gaussian noise on each executed normalised action (data collection; default 0)")
    parser.add_argument("--record", default=None, metavar="DIR",
                        help="write each episode's true world steps as a dynamics data split under DIR (DAgger data)")
    parser.add_argument("--record-split", default=None, choices=("train", "valid", "test"),
                        help="split of --record (default: train; only with --record)")
    parser.add_argument("--threads", type=count(min=1), default=PLANNING_THREADS,
                        help=f"torch CPU threads (default {PLANNING_THREADS}: small graphs gain nothing from more)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the episodes already in --out; a run with other settings (task, model, "
                        "planner, seed, checkpoint, planner and task flags) is refused, naming each")
    parser.add_argument("--no-gif", action="store_true", help="skip the GIF of the first episode")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)

