"""``nesy train derender``: train NS-VQA's derenderer (proposals + attributes) on generated scenes.

Example::

    nesy data clevr --n 3000 --seed 1 --out data/clevr_train --split train
    nesy data clevr --n 300 --seed 2 --out data/clevr_val --split val
    nesy train derender --data data/clevr_train --eval-data data/clevr_val --out runs/derender

Writes ``OUT/proposal_train.pt`` and ``OUT/attribute_train.pt`` (resumable after
every epoch), ``OUT/metrics.jsonl`` (one line per epoch), ``OUT/derender.pt``
(the finished derenderer, loadable with
``perception.derender.load_derenderer``), ``OUT/eval.json`` with
``--eval-data``, and prints a JSON summary.  Rerunning the same command resumes
(bit-identically); a rerun with other training flags is refused by name (only
``--threads``, ``--out``, ``--stage``, ``--eval-data`` and ``--eval-limit`` may change).
``--stage proposal`` and ``--stage attribute`` train one network each, so the
two can run side by side in one OUT folder; the later finisher writes
``derender.pt``.  ``--attribute-masks proposal|mixed`` trains the attribute
network on the proposal network's own masks (or on those and the true ones);
``--proposal-from CKPT --attribute-init CKPT`` fine-tunes an earlier
derenderer's attribute network on its proposal network's masks.

Under ``torchrun --nproc_per_node N`` both networks split every global batch
across the processes (gloo on CPU, nccl with ``--device cuda``); rank 0 alone
writes files and prints the summary, and a resume needs the same N.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.config_flags import add_config_flags, config_from_args
from perception.derender.training import DerenderTrainConfig, command_line, train_derenderer
from physics.training.distributed import shutdown_distributed, world_info

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(DerenderTrainConfig, args)
    try:
        summary = train_derenderer(cfg, command=command_line(cfg), progress=not args.quiet)
        if not world_info().is_main:  # under torchrun rank 0 alone reports
            return 0
    finally:
        shutdown_distributed()
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "train",
        "derender",
        help="NS-VQA derenderer: object proposals and attribute network",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(parser, DerenderTrainConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)
