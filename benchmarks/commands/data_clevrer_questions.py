"""``nesy data clevrer-questions``: CLEVRER questions (official JSON) for videos ``nesy data clevrer`` wrote.

Example::

    nesy data clevrer --n 30 --seed 5 --split val --width 96 --height 64 --out data/clevrer
    nesy data clevrer-questions --data data/clevrer --split val          # -> data/clevrer/validation.json

Descriptive, explanatory, predictive and counterfactual questions with their
programs (CLEVRER postfix tokens) and answers, balanced per video (see
:mod:`benchmarks.datasets.clevrer_questions`); rerunning resumes an interrupted
run with the same bytes. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.datasets.clevrer_questions import (
    ClevrerQuestionsDataConfig,
    build_clevrer_questions,
)

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    summary = build_clevrer_questions(config_from_args(ClevrerQuestionsDataConfig, args), progress=not args.quiet)
    for why in summary["skipped"]:  # on the terminal too, as bench dynamics says a trajectory it skipped
        print(f"skipped video: {why}", file=sys.stderr)
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "data",
        "clevrer-questions",
        help="CLEVRER questions of the four types (official JSON) for a folder of videos",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(parser, ClevrerQuestionsDataConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
