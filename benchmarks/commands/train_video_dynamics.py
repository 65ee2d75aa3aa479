"""``nesy train video-dynamics``: the learned PropNet over CLEVRER object states.

Example::

    nesy data clevrer --n 200 --seed 1501 --split train --no-render --out data/clevrer_dyn
    nesy train video-dynamics --data data/clevrer_dyn --split train --out runs/clevrer_propnet \\
        --epochs 30 --threads 1 --export clevrer_propnet.pt

Reads the annotations and truth files of one split of a ``nesy data clevrer``
folder (observed and future frames of every video; frames are not needed, so
``--no-render`` data is enough), or a trajectory file of ``nesy data
video-trajectories`` (``--split`` unused), holds out the last ``--valid-fraction`` of the
videos (with their counterfactuals) for the loop's validation, and trains with the shared training loop
(:func:`physics.models.training.train`): ``OUT/checkpoint.pt`` every epoch
(``--resume`` continues from it, bit-identical), ``OUT/model.pt`` the best
validation epoch, ``OUT/loss.jsonl``.  The exact command is stored in the
checkpoint.  Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from benchmarks.commands.train_dynamics import check_export, report_run
from benchmarks.config_flags import (
    add_config_flags,
    config_from_args,
    count,
    number,
    registry_argument,
)
from physics.io import ensure_dir
from physics.models import MODELS, TrainConfig
from physics.settings import json_value, parse_settings
from physics.training import config_flags

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    from physics.errors import ConfigError
    from physics.models.video_propnet import (
        check_valid_fraction,
        grow_spin_input,
        load_trajectory_pack,
        load_video_split,
        train_video_model,
    )

    cfg = config_from_args(TrainConfig, args)
    MODELS.get(args.model)
    check_export(args.export)
    check_valid_fraction(args.valid_fraction)
    overrides = parse_settings(args.set, keys="a model config field", value=json_value)  # before any data is read
    if args.grow_spin and not cfg.init:
        raise ConfigError("--grow-spin zeroes the spin-channel weights of the --init model; give --init FILE")
    if Path(args.data).is_file():
        if args.counterfactuals:
            raise ConfigError(f"--counterfactuals reads truth files; {args.data} is a trajectory file, which holds "
                              "them when `nesy data video-trajectories --counterfactuals` made it")
        trajs = load_trajectory_pack(args.data)
        keep = list(dict.fromkeys(t.meta.get("video") for t in trajs))[: args.n]
        videos = [t for t in trajs if t.meta.get("video") in set(keep)]
    else:
        videos = load_video_split(args.data, args.split, limit=args.n)
    found = len(keep) if Path(args.data).is_file() else len(videos)
    if args.n is not None and found < args.n:
        print(f"note: --n {args.n} asked for {args.n} videos; {args.data} ({args.split}) holds {found}: "
              f"training on {found}", file=sys.stderr)
    out = Path(args.out)
    init = cfg.init
    if args.grow_spin:  # the run starts from the grown copy (a resume finds it written)
        grown = out / "init_grown_spin.pt"
        if not (args.resume and (out / "checkpoint.pt").is_file()):
            from physics.models.resolver import load_model, save_model

            start, start_meta = load_model(cfg.init)
            ensure_dir(out)
            save_model(grown, grow_spin_input(start), {**start_meta, "grown_spin_from": str(cfg.init)})
        cfg = dataclasses.replace(cfg, init=str(grown))
    words = ["nesy", "train", "video-dynamics", "--model", args.model, "--data", str(args.data), "--split", args.split,
             "--out", str(out), "--valid-fraction", str(args.valid_fraction)]
    if args.n is not None:
        words += ["--n", str(args.n)]
    if args.counterfactuals:
        words += ["--counterfactuals"]
    if args.contact_weight != 1.0:
        words += ["--contact-weight", str(args.contact_weight), "--contact-after", str(args.contact_after)]
        if args.contact_lead:
            words += ["--contact-lead", str(args.contact_lead)]
    words += config_flags(dataclasses.replace(cfg, init=init))
    if args.grow_spin:
        words += ["--grow-spin"]
    for item in args.set or []:
        words += ["--set", item]
    meta = {"command": shlex.join(words), "seed": cfg.seed, "data": str(args.data), "split": args.split}
    summary = train_video_model(args.model, videos, out, cfg, valid_fraction=args.valid_fraction,
                                overrides=overrides, resume=args.resume, meta=meta,
                                progress=not args.quiet, counterfactuals=args.counterfactuals,
                                contact_weight=args.contact_weight, contact_after=args.contact_after,
                                contact_lead=args.contact_lead)
    report_run(summary, out, args.export)
    return 0


def register(groups) -> None:
    parser = groups.sub("train", "video-dynamics", help="learned PropNet over CLEVRER object states",
                        description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder written by `nesy data clevrer` (annotations and truth), "
                        "or a .npz of `nesy data video-trajectories`")
    parser.add_argument("--split", default="train", help="split to train on (default: train)")
    parser.add_argument("--n", type=count(min=1), default=None, help="use the first N videos (default: all)")
    parser.add_argument("--valid-fraction", type=number, default=0.1,
                        help="last share of the videos held out for validation (default: 0.1)")
    registry_argument(parser, "--model", registry=MODELS, default="propnet", help="simulator to train (default: propnet)")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (bit-identical)")
    parser.add_argument("--export", default=None, help="copy the best model.pt to this file")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="change a model config field from the clevrer preset (repeatable), e.g. --set hidden=128")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--counterfactuals", action="store_true",
                        help="train on each video's counterfactual re-runs too (truth files)")
    parser.add_argument("--contact-weight", type=number, default=1.0,
                        help="relative chance of drawing a step around a recorded collision (default: 1, no preference)")
    parser.add_argument("--contact-after", type=count(min=0), default=10,
                        help="frames after a collision that count as around it (default: 10)")
    parser.add_argument("--contact-lead", type=count(min=0), default=0,
                        help="with --rollout-steps K > 1: a sample around a collision starts up to this many frames "
                        "before it, so the unroll holds the contact and what follows (default: 0, the window may "
                        "end at the contact)")
    parser.add_argument("--grow-spin", action="store_true",
                        help="with --init: zero the init model's weights on the action's spin channel first (written to "
                        "OUT/init_grown_spin.pt), so a model trained without the spin input starts unchanged on a "
                        "`nesy data video-trajectories --spin` pack (default: off)")
    add_config_flags(parser, TrainConfig)
    parser.set_defaults(func=run)
