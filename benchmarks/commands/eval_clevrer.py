"""``nesy eval clevrer``: NS-DR accuracy per CLEVRER question type (see :mod:`benchmarks.eval_clevrer`).

Examples::

    nesy eval clevrer --data data/clevrer --split val --perception gt --dynamics gt --parser gt --out R.json
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.eval_clevrer import ClevrerEvalConfig, evaluate_clevrer, subtype_rows, table_rows
from benchmarks.table import print_table

__all__ = ["register", "print_summary"]


def run(args: argparse.Namespace) -> int:
    config = config_from_args(ClevrerEvalConfig, args)
    print_summary(evaluate_clevrer(config, progress=not args.quiet), config.out)
    return 0


def print_summary(result: dict[str, Any], out: str | None) -> None:
    """CLEVRER's table (per question; multiple choice per option and per question), then the descriptive subtypes."""
    rows, header = table_rows(result)
    print_table(rows, header, title=f"CLEVRER: {result['videos']} videos, {result['seconds']} s")
    subtypes = subtype_rows(result)
    if subtypes:
        print()
        print_table(subtypes, ["descriptive", "questions", "accuracy"])
    if result["invalid"] or result["errors"]:
        print(f"programs without an answer: {result['invalid']}; first errors: {result['errors'][:2]}")
    print(f"full result -> {out}" if out else "(--out FILE writes the full result as JSON)")


def register(groups) -> None:
    parser = groups.sub(
        "eval",
        "clevrer",
        help="NS-DR accuracy per CLEVRER question type (per option and per question)",
        description="Answer every question of a CLEVRER split with the chosen video perception, dynamics and "
        "question parser (registered names; gt reads the ground truth) and the symbolic video executor; report "
        "accuracy in the CLEVRER paper's layout with 90% intervals from resampling videos.",
    )
    add_config_flags(parser, ClevrerEvalConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
