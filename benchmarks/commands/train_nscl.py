"""``nesy train nscl``: learn visual concepts from images, questions and answers (NS-CL).

Example::

    nesy data clevr --n 1000 --seed 31 --split train --out data/nscl_train
    nesy data clevr --n 100 --seed 32 --split val --out data/nscl_val
    nesy train nscl --data data/nscl_train --eval-data data/nscl_val --eval-split val --out runs/nscl/nscl.pt

Reads the split's images, instance masks and questions (programs and answers;
never the scene files' attribute fields), trains the concept learner through
the quasi-symbolic executor with a curriculum, and writes the checkpoint
``--out`` after every epoch (resumable: rerun the same command; only
``--threads`` may change), ``OUT.jsonl`` (one line per epoch) and ``OUT.json``
(the summary, also shown as a table).  ``--objects proposals`` cuts the objects
of both splits with the derenderer's proposal masks matched to the true ones
(what ``nesy eval clevr --model nscl`` sees from pixels) instead of the true masks.
``--programs parser`` takes every question's program (of ``--eval-data`` too) from
the shipped question parser instead of the questions file; ``--programs none`` reads
no program at all and learns a parser from random weights by REINFORCE beside the
concepts (``reasoning.nscl.joint``; the checkpoint holds both models, resumable alike).
Several ``--data`` folders train together; ``--cache DIR`` keeps the objects read
(images decoded, proposals run) for later runs over the same splits.

Under ``torchrun --nproc_per_node N`` each process trains on its share of every
batch (DistributedDataParallel: gloo on CPU, nccl with ``--device cuda``); rank 0
alone writes the cache (the others wait, then read it), the checkpoint and the summary.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks.config_flags import AddItems, add_config_flags, config_from_args, count
from benchmarks.table import print_table
from physics.io import atomic_write_json

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    import torch

    from physics.models.training import resolve_device
    from physics.training.distributed import init_distributed, shutdown_distributed
    from reasoning.nscl import NSCLTrainConfig

    config = config_from_args(NSCLTrainConfig, args)
    torch.set_num_threads(config.threads)  # reading (proposals) too: idle threads spin on a loaded machine
    init_distributed(resolve_device(config.device))  # under torchrun: join the group before the cache is read
    try:
        return _run(args, config)
    finally:
        shutdown_distributed()


def _run(args: argparse.Namespace, config) -> int:
    import torch.distributed as dist

    from physics.training import config_flags
    from physics.training.distributed import world_info
    from reasoning.nscl import NSCLTrainConfig, load_split, train_nscl
    from reasoning.nscl.data import join_sets

    world = world_info()
    proposals = None
    if args.objects == "proposals":
        from perception.derender import load_default_derenderer

        proposals = load_default_derenderer()
    read = {"progress": not args.quiet and world.is_main, "objects": args.objects, "proposals": proposals,
            "crop_size": config.detail_size or config.crop_size, "context_size": config.context_size,
            "others_mask": config.others_mask, "programs": config.programs}
    if config.programs == "parser":  # one parser for every split read
        from reasoning.parser import load_default_parser

        read["parser"] = load_default_parser()
    if args.cache:
        read["cache"] = args.cache
    if args.cache and not world.is_main:
        dist.barrier()  # rank 0 writes the cache; the others then read it
    train = join_sets([load_split(d, args.split, limit_images=args.limit_images, **read) for d in args.data])
    valid = load_split(args.eval_data, args.eval_split, **read) if args.eval_data else None
    if args.cache and world.is_main and world.size > 1:
        dist.barrier()  # the cache is whole: the others may read it
    for name, part in (("training", train), ("--eval-data", valid)):
        if part is not None and part.skipped and world.is_main:
            print(f"skipped {len(part.skipped)} question(s) of the {name} split, not used; first: {part.skipped[0]}",
                  file=sys.stderr)
    parts = ["nesy", "train", "nscl", "--data", *map(str, args.data), "--split", args.split]
    if args.eval_data:
        parts += ["--eval-data", str(args.eval_data), "--eval-split", args.eval_split]
    if args.limit_images:
        parts += ["--limit-images", str(args.limit_images)]
    if args.objects != "masks":
        parts += ["--objects", args.objects]
    parts += ["--out", str(args.out), *config_flags(config, skip=("threads", "device"), defaults=NSCLTrainConfig())]
    command = shlex.join(parts)
    model, meta = train_nscl(train, config, args.out, valid=valid, command=command, progress=not args.quiet)
    last = meta["history"][-1] if meta["history"] else {}
    summary = {
        "out": str(args.out),
        "train_images": len(train.crops),
        "train_questions": len(train),
        "skipped_questions": len(train.skipped),
        "programs": config.programs,
        "objects": args.objects,
        "train_objects_from_proposals": train.from_proposals,
        "train_objects_from_masks": train.from_masks,
        "epochs": config.epochs,
        "seconds": meta["seconds"],
        "train_accuracy": last.get("train_accuracy"),
        "valid_accuracy": last.get("valid_accuracy"),
    }
    if not world.is_main:  # under torchrun rank 0 alone writes the summary and reports
        return 0
    atomic_write_json(Path(args.out).with_suffix(".json"), {**summary, "history": meta["history"]}, indent=1)
    print_table([[k, v] for k, v in summary.items()], ["", "NS-CL training"])
    return 0




def register(groups) -> None:
    parser = groups.sub("train", "nscl", help="NS-CL: concepts from questions and answers", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", required=True, nargs="+", action=AddItems,
        help="CLEVR-format folder(s) with images, instance masks and questions (several: trained on together)",
    )
    parser.add_argument("--split", default="train", help="split of --data (default: train)")
    parser.add_argument("--eval-data", default=None, help="held-out folder scored after every epoch")
    parser.add_argument("--eval-split", default="val", help="split of --eval-data (default: val)")
    parser.add_argument("--limit-images", type=count(min=0, zero="all"), default=0, help="use the first N images only (0: all, the default)")
    from reasoning.nscl.data import OBJECT_SOURCES

    parser.add_argument(
        "--objects", choices=OBJECT_SOURCES, default="masks",
        help="cut objects with the true masks (masks, the default), or with the derenderer's proposals matched to "
        "them (proposals)",
    )
    parser.add_argument("--out", default="runs/nscl/nscl.pt", help="checkpoint (resumed when it exists; default: runs/nscl/nscl.pt)")
    parser.add_argument(
        "--cache", default=None,
        help="folder that keeps the objects read from each split (reused while images and proposal weights match)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    from reasoning.nscl.train import NSCLTrainConfig

    add_config_flags(parser, NSCLTrainConfig)
    parser.set_defaults(func=run)
