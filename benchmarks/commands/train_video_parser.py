"""``nesy train video-parser``: the NS-VQA question parser on CLEVRER questions (supervised).

Examples::

    nesy data clevrer --n 60 --seed 1 --split train --width 96 --height 64 --out data/clevrer_train
    nesy data clevrer-questions --data data/clevrer_train --split train --descriptive 20 --explanatory 4 --counterfactual 6
    nesy train video-parser --data data/clevrer_train --split train --eval-data data/clevrer_val --eval-split val \\
        --out runs/video_parser/parser.pt --export reasoning/parser/checkpoints/video_parser.pt

Reads the questions ``nesy data clevrer-questions`` wrote for ``--split`` of
``--data`` (only the question file is read: videos rendered small, or any size,
give the same questions) and trains one parser on every distinct question text
and every distinct option text (:mod:`reasoning.parser.video`): supervised on
their programs, with the shared training loop (a checkpoint every
``--checkpoint-every`` steps; ``--out`` resumes if it exists). CLEVRER questions
come with their programs, so there is no REINFORCE stage.

Writes the checkpoint ``--out``, its metrics log ``OUT.jsonl`` and a JSON summary
``OUT.json`` (also printed): wall time, final loss and, with ``--eval-data``,
held-out program exact match per question type (a multiple-choice question
counts when its program and every option's are exact). Answer accuracy comes
from ``nesy eval clevrer --parser model --parser-checkpoint OUT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import time
from pathlib import Path

from benchmarks.config_flags import add_config_flags, config_from_args, count, flag_type
from physics.errors import ConfigError
from physics.io import atomic_write_json, check_writable, read_json
from physics.training import config_flags
from physics.training.distributed import shutdown_distributed, world_info
from reasoning.parser import ParserConfig, train_parser
from reasoning.parser.checkpoint import export_parser
from reasoning.parser.video import (
    VideoQuestionParser,
    evaluate_video_parser,
    load_video_parser_data,
)
from reasoning.questions.clevrer import question_path

__all__ = ["register", "run", "VIDEO_DEFAULTS"]

# A smaller model than the CLEVR parser's (the shipped file stays under 3 MB), every
# training text supervised, no REINFORCE (every question carries its program).
VIDEO_DEFAULTS = {"embedding_dim": 64, "hidden_dim": 128, "epochs": 30, "reinforce_questions": 0, "threads": 1}


def _command_line(args: argparse.Namespace, cfg: ParserConfig) -> str:
    parts = ["nesy", "train", "video-parser"]
    for key in ("data", "split", "eval_data", "eval_split", "out"):
        if getattr(args, key, None):
            parts += ["--" + key.replace("_", "-"), str(getattr(args, key))]
    return shlex.join(parts + config_flags(cfg))


def run(args: argparse.Namespace) -> int:
    for path in (args.out, Path(args.out).with_suffix(".json"), *([args.export] if args.export else [])):
        check_writable(path)  # before the data and the epochs
    data = load_video_parser_data(args.data, args.split)
    n = len(data.examples) if args.programs is None else args.programs
    if n > len(data.examples):
        raise ConfigError(f"--programs {n}: {question_path(args.data, args.split)} has only {len(data.examples)} "
                          "distinct question and option texts")
    held_questions = None  # read before any training: a held-out file that cannot be read is named first
    if args.eval_data:
        held_questions = read_json(question_path(args.eval_data, args.eval_split), "CLEVRER questions file")
    overrides = {k: getattr(args, k) for k in VIDEO_DEFAULTS}
    cfg = config_from_args(ParserConfig, args, programs=n, reinforce_steps=0, **overrides)
    out = Path(args.out)
    meta = {"command": _command_line(args, cfg), "data": str(args.data), "split": args.split}
    t0 = time.perf_counter()
    try:
        metrics = train_parser(cfg, data, out=out, meta=meta, progress=not args.quiet)
        if not world_info().is_main:  # under torchrun rank 0 alone evaluates, writes and reports
            return 0
    finally:
        shutdown_distributed()
    wall = time.perf_counter() - t0
    parser = VideoQuestionParser(metrics.pop("parser"), beam_size=args.beam_size)
    held: dict = {}
    if held_questions is not None:
        t1 = time.perf_counter()
        held = evaluate_video_parser(parser, held_questions)
        held["seconds"] = round(time.perf_counter() - t1, 2)
    summary = {
        "checkpoint": str(out),
        "train_texts": len(data.examples),
        "wall_seconds": round(wall, 1),
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()},
        "held_out": held,
        "command": meta["command"],
    }
    atomic_write_json(out.with_suffix(".json"), summary, indent=1)
    if args.export:
        export_parser(out, args.export)
        summary["export"] = str(args.export)
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    p = groups.sub("train", "video-parser", help="train the NS-VQA question parser on CLEVRER questions",
                   description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder with the questions nesy data clevrer-questions wrote")
    p.add_argument("--split", default="train", help="split of --data (default: train)")
    p.add_argument("--eval-data", default=None, help="held-out folder (its questions) scored after training")
    p.add_argument("--eval-split", default="val", help="split of --eval-data (default: val)")
    p.add_argument("--out", default="runs/video_parser/parser.pt", help="checkpoint path; resumes if it exists (default: runs/video_parser/parser.pt)")
    p.add_argument("--export", default=None, help="write the finished parser, without training state, to this file")
    p.add_argument("--programs", type=count(min=1), default=None,
                   help="supervised texts, spread over question types (default: every distinct text)")
    p.add_argument("--beam-size", type=count(min=1), default=1, help="beam size for evaluation (1: greedy, the default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    fields = {f.name: f for f in dataclasses.fields(ParserConfig)}
    for name, default in VIDEO_DEFAULTS.items():
        p.add_argument("--" + name.replace("_", "-"), type=flag_type(type(default), fields[name]), default=default,
                       help=f"{fields[name].metadata['help']} (default: {default})")
    add_config_flags(p, ParserConfig, skip=(*VIDEO_DEFAULTS, "programs", "reinforce_steps"))
    p.set_defaults(func=run)
