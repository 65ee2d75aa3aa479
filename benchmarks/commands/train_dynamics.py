"""``nesy train dynamics``: train a learned simulator (any of ``--model``) on a world's data.

Example::

    nesy data dynamics --world cradle --n 40 --out data/cradle --split train
    nesy data dynamics --world cradle --n 6 --out data/cradle --split valid
    nesy train dynamics --world cradle --model propnet --data data/cradle --epochs 20 --out runs/cradle_propnet

``--data`` may be given several times: the runs' train (and valid) splits are
pooled, e.g. a random policy's data and the episodes a planner collected
(``nesy control --record``); ``--init FILE`` starts from a saved model's weights
(fine-tuning), ``--rollout-steps K`` trains on K-step rollouts.

Writes ``OUT/checkpoint.pt`` (every epoch; ``--resume`` continues from it),
``OUT/model.pt`` (best validation epoch), ``OUT/loss.jsonl``; a resume with other
training flags than the run's is refused (``--threads`` and ``--device`` may change); ``--export FILE``
copies the best model to FILE (how the shipped checkpoints were made).  The
exact command line and seed are stored in the checkpoint metadata.  Prints a
JSON summary.

On several processes (DistributedDataParallel; ``--batch-size`` stays the global batch)::

    torchrun --nproc_per_node 2 -m benchmarks.cli train dynamics --world cradle --model propnet \
        --data data/cradle --epochs 20 --out runs/cradle_propnet_ddp
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

from benchmarks.config_flags import (
    add_config_flags,
    config_from_args,
    refuse_repeats,
    registry_argument,
)
from physics.errors import ConfigError
from physics.io import atomic_write_bytes, check_writable
from physics.models import MODELS, PRESETS, TrainConfig, make_model, preset, train
from physics.settings import json_value, parse_settings
from physics.training import config_flags
from physics.training.distributed import shutdown_distributed, world_info

__all__ = ["register", "run", "check_export", "report_run"]


def _command_line(args: argparse.Namespace, cfg: TrainConfig, out: Path) -> str:
    """The full command that reproduces this run, every training setting spelled out."""
    parts = [*_launcher(), "train", "dynamics", "--world", args.world, "--model", args.model]
    for folder in args.data:
        parts += ["--data", str(folder)]
    parts += ["--out", str(out)]
    # left out when off, so the command reads as one without these flags (the wall projection only matters to the
    # rollout check)
    skip = () if cfg.select_rollouts else ("select_rollouts",)
    skip += () if cfg.select_rollouts and cfg.wall_projection else ("wall_projection",)
    skip += () if cfg.select_rollouts and cfg.select_max_outside < 1.0 else ("select_max_outside",)
    skip += () if cfg.rebuild_edges else ("rebuild_edges",)
    skip += () if cfg.wall_penalty else ("wall_penalty",)
    skip += () if cfg.own_rollouts else ("own_rollouts", "own_samples")
    skip += () if cfg.velocity_weight else ("velocity_weight",)
    skip += () if cfg.bulk_weight else ("bulk_weight",)
    skip += () if cfg.average_last else ("average_last",)
    skip += () if cfg.keep_epochs else ("keep_epochs",)
    skip += () if cfg.ema_decay else ("ema_decay",)
    parts += config_flags(cfg, skip=skip)
    for item in args.set or []:
        parts += ["--set", item]
    return shlex.join(parts)  # without --resume: a resumed run ends with the same weights


def _launcher() -> list[str]:
    """``nesy``, or the torchrun line that started this process (torchrun sets these variables)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return ["nesy"]
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    nodes = ["--nnodes", str(world // per_node)] if world > per_node else []
    return ["torchrun", *nodes, "--nproc_per_node", str(per_node), "-m", "benchmarks.cli"]


def run(args: argparse.Namespace) -> int:
    from physics.worlds.dynamics import load_split, read_index
    from physics.worlds.dynamics.splits import INDEX_NAME

    cfg = config_from_args(TrainConfig, args)
    PRESETS.get(args.world), MODELS.get(args.model)  # name errors before any data is read
    check_export(args.export)
    overrides = parse_settings(args.set, keys="a model config field", value=json_value)  # and --set's
    refuse_repeats([str(Path(folder).resolve()) for folder in args.data], "--data", " ".join(args.data))
    train_trajs, valid_trajs = [], []
    for folder in args.data:
        world = read_index(folder, "train")["world"]
        if world != args.world:  # the preset, the graph and the checkpoint's name would all be another world's
            raise ConfigError(f"--data {folder} holds {world!r} trajectories (its train/index.json), not "
                              f"--world {args.world}'s; give --world {world} or another --data")
        train_trajs += load_split(folder, "train")
        if (Path(folder) / "valid" / INDEX_NAME).exists():  # none: no validation; a damaged one is an error
            valid_trajs += load_split(folder, "valid")
    t0 = train_trajs[0]
    mcfg = preset(
        args.world,
        args.model,
        dim=int(t0.positions.shape[2]),
        node_attr_dim=int(t0.node_attr.shape[1]),
        edge_attr_dim=int(t0.edge_attr.shape[1]),
        **overrides,
    )
    import torch

    torch.manual_seed(cfg.seed)
    model = make_model(args.model, mcfg)
    out = Path(args.out or f"runs/dynamics/{args.world}_{args.model}")
    meta = {
        "command": _command_line(args, cfg, out),
        "seed": cfg.seed,
        "world": args.world,
        "data": str(args.data[0]) if len(args.data) == 1 else [str(d) for d in args.data],
        "train_trajectories": len(train_trajs),
        "data_seed": t0.meta.get("seed"),
    }
    try:
        summary = train(model, train_trajs, valid_trajs, out, cfg, resume=args.resume, meta=meta,
                        progress=not args.quiet)
        if not world_info().is_main:  # under torchrun rank 0 alone exports and reports
            return 0
    finally:
        shutdown_distributed()
    report_run(summary, out, args.export)
    return 0


def check_export(export: str | None) -> None:
    """Refuse, before any training, an ``--export`` path that could not be written (a folder, a file in its way).

    Raises:
        OutputError: naming the path and why.
    """
    if export:
        check_writable(export)


def report_run(summary: dict, out: Path, export: str | None) -> None:
    """Copy the best ``OUT/model.pt`` to ``export`` atomically (when given) and print the run's summary as JSON."""
    if export:
        atomic_write_bytes(export, (out / "model.pt").read_bytes())
        summary["files"]["export"] = str(export)
    summary.pop("history")
    print(json.dumps(summary, indent=1))


def register(groups) -> None:
    parser = groups.sub(
        "train",
        "dynamics",
        help="train a learned simulator on a dynamics data set",
        description=__doc__.split("\n\n")[0],
    )
    registry_argument(parser, "--world", registry=PRESETS, required=True, help="world the data comes from (its model preset)")
    registry_argument(parser, "--model", registry=MODELS, required=True, help="simulator to train")
    parser.add_argument("--data", required=True, action="append",
                        help="folder written by `nesy data dynamics` or `nesy control --record` (train and valid "
                        "splits); repeat to pool several")
    parser.add_argument("--out", default=None, help="run folder (default: runs/dynamics/WORLD_MODEL)")
    parser.add_argument(
        "--resume", action="store_true",
        help="continue from OUT/checkpoint.pt (bit-identical to an uninterrupted run; only --threads and --device "
        "may differ from the run's flags)",
    )
    parser.add_argument("--export", default=None, help="copy the best model.pt to this file")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="change a model config field from the world preset (repeatable), e.g. --set hidden=128",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(parser, TrainConfig)
    parser.set_defaults(func=run)


