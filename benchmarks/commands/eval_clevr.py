"""``nesy eval clevr``: a QA model's accuracy on a CLEVR-format split (see :mod:`benchmarks.eval_clevr`).

Examples::

    nesy eval clevr --data data/clevr --split test                       # NS-VQA, shipped parts
    nesy eval clevr --data data/clevr --perceiver derender --checkpoint runs/derender/derender.pt
    nesy eval clevr --data data/clevr --perception gt --parser-checkpoint runs/parser/parser.pt
"""

from __future__ import annotations

import argparse
import json

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.eval_clevr import ClevrEvalConfig, evaluate_clevr

__all__ = ["register"]


def run(args: argparse.Namespace) -> int:
    result = evaluate_clevr(config_from_args(ClevrEvalConfig, args))
    acc = result["accuracy"]
    print(json.dumps(result, indent=1))
    print(f"overall accuracy {acc['overall']:.4f} on {result['questions']} questions "
          f"({result['scenes']} scenes)")
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "eval",
        "clevr",
        help="QA model accuracy per question type, parser and perception scores",
        description="Answer every question of a CLEVR-format split with a registered QA model "
        "(--model; perception from any registered --perceiver or the ground truth, shipped weights or "
        "--checkpoint PATH; parser shipped, --parser-checkpoint PATH or the ground truth) and report "
        "accuracy overall and per question type, program accuracy, detection precision/recall, "
        "attribute accuracy and 3D position error as JSON.",
    )
    add_config_flags(parser, ClevrEvalConfig)
    parser.set_defaults(func=run)
