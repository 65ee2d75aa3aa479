"""``nesy train parser``: train the NS-VQA question parser (supervised, then REINFORCE).

Examples::

    nesy train parser --out runs/parser/parser.pt          # synthetic data, fixed seeds
    nesy train parser --official-templates ../shared/data/clevr --programs 540   # ours + CLEVR's own language
    nesy train parser --data data/clevr_train --eval-data data/clevr_val --programs 270
    nesy train parser-curve --programs-list 90 180 270 540 1000 --figure docs/images/parser_data_efficiency.png

Without ``--data``, training questions are generated from ``--scenes`` synthetic
scenes (``perception.synthetic.sample_scene_graphs(scenes, seed=--data-seed)``)
by the project's question generator with the same seed (``--official-templates
DIR`` adds, over the same scenes, questions from the official CLEVR templates
and synonyms in ``DIR/templates`` and ``DIR/synonyms.json``); held-out evaluation
questions come from ``--eval-scenes`` scenes with ``--eval-seed`` (a seed never
used for training or tuning).  ``--data DIR`` reads a folder written by
``nesy data clevr`` / ``nesy data questions`` (one ``*questions*.json`` and one
``*scenes*.json``).

Writes the checkpoint ``--out`` (resumes if it exists, bit-identical to an
uninterrupted run; the flags must be the run's: only ``--threads`` and ``--device`` may change and
``--reinforce-steps`` may grow, anything else is refused by name), its metrics log
``OUT.jsonl`` and a JSON summary ``OUT.json`` (also printed): wall time per
stage, held-out program accuracy (exact match and executed-answer match).  The
command line and seeds are stored in the checkpoint metadata.

Under ``torchrun --nproc_per_node N -m benchmarks.cli train parser ...`` each
process trains on its share of every global batch (``--batch-size`` stays the
global size) in both stages, DistributedDataParallel averages the gradients,
the REINFORCE baseline follows the whole global batch's rewards, and rank 0
alone writes the files and the summary; the metadata records ``world_size``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import time
from pathlib import Path
from typing import Any

from benchmarks.config_flags import (
    AddItems,
    add_config_flags,
    config_from_args,
    count,
    refuse_repeats,
)
from physics.errors import ConfigError
from physics.io import atomic_write_json, check_writable, ensure_dir, torch_load
from physics.training import config_flags
from physics.training.distributed import shutdown_distributed, world_info
from reasoning.parser import (
    ParserConfig,
    ParserData,
    evaluate_parser,
    generate_parser_data,
    load_parser_data,
    train_parser,
)
from reasoning.parser.checkpoint import export_parser

__all__ = ["register", "run", "run_curve", "DEFAULT_DATA_SEED", "DEFAULT_EVAL_SEED"]

DEFAULT_DATA_SEED = 1  # training scenes and questions
DEFAULT_EVAL_SEED = 20261122  # held-out scenes and questions: never trained or tuned on


def _command_line(args: argparse.Namespace, cfg: ParserConfig, name: str = "parser") -> str:
    from benchmarks.commands.train_dynamics import _launcher

    parts = [*_launcher(), "train", name]
    for key in ("data", "eval_data", "templates", "official_templates", "out"):
        if getattr(args, key, None):
            parts += ["--" + key.replace("_", "-"), str(getattr(args, key))]
    for key in ("scenes", "per_scene", "data_seed", "eval_scenes", "eval_seed"):
        parts += ["--" + key.replace("_", "-"), str(getattr(args, key))]
    return shlex.join(parts + config_flags(cfg))


def _data(args: argparse.Namespace) -> tuple[ParserData, ParserData]:
    """Training and held-out data (folders, or generated with fixed seeds)."""
    progress = not args.quiet
    if args.data:
        train = load_parser_data(args.data)
    else:
        train = generate_parser_data(args.scenes, args.per_scene, args.data_seed, templates=args.templates,
                                     official=args.official_templates, progress=progress)
    if args.eval_data:
        held = load_parser_data(args.eval_data)
    elif args.eval_scenes > 0:
        if args.eval_seed == args.data_seed and not args.data:
            raise ConfigError(f"--eval-seed must differ from --data-seed (both {args.eval_seed}): held-out questions must be unseen")
        held = generate_parser_data(args.eval_scenes, args.per_scene, args.eval_seed, templates=args.templates,
                                    official=args.official_templates, progress=progress)
    else:
        held = ParserData(())
    return train, held


def _evaluate(parser, held: ParserData, beam_size: int) -> dict[str, Any]:
    if not held.examples:
        return {}
    t0 = time.perf_counter()
    ev = evaluate_parser(parser, held, beam_size=beam_size)
    ev["seconds"] = round(time.perf_counter() - t0, 2)
    return ev


def run(args: argparse.Namespace) -> int:
    from physics.models.training import resolve_device

    cfg = config_from_args(ParserConfig, args)
    resolve_device(cfg.device)  # an unknown device, or cuda without CUDA: one line, before any data is read
    out = Path(args.out)
    _check_outputs(out, args.export)
    train, held = _data(args)
    meta = {"command": _command_line(args, cfg), "data_seed": None if args.data else args.data_seed,
            "eval_seed": None if args.eval_data else args.eval_seed}
    t0 = time.perf_counter()
    try:
        metrics = train_parser(cfg, train, out=out, meta=meta, progress=not args.quiet)
        if not world_info().is_main:  # under torchrun rank 0 alone evaluates, writes and reports
            return 0
    finally:
        shutdown_distributed()
    wall = time.perf_counter() - t0
    parser = metrics.pop("parser")
    summary = {
        "checkpoint": str(out),
        "train_questions": len(train.examples),
        "wall_seconds": round(wall, 1),
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()},
        "held_out": _evaluate(parser, held, args.beam_size),
        "command": meta["command"],
    }
    atomic_write_json(out.with_suffix(".json"), summary, indent=1)
    if args.export:
        export_parser(out, args.export)
        summary["export"] = str(args.export)
    print(json.dumps({k: v for k, v in summary.items() if k != "held_out"} | {"held_out": {
        k: v for k, v in summary["held_out"].items() if k != "per_template"}}, indent=1))
    return 0


def _check_outputs(out: Path, export: str | None) -> None:
    """Refuse, before any data is read or made, outputs that cannot be written and a resume target that cannot be read.

    Raises:
        OutputError: ``--out``, its summary beside it or ``--export`` cannot be written.
        CheckpointError: ``--out`` exists but is no readable checkpoint (corrupt, truncated, not weights-only).
    """
    for path in (out, out.with_suffix(".json"), *([export] if export else [])):
        check_writable(path)
    if out.is_file():  # a resume: its checkpoint is checked in full by train_parser, after the data
        torch_load(out, "question-parser checkpoint")


def run_curve(args: argparse.Namespace) -> int:
    """Train one parser per N in ``--programs-list`` (with and without REINFORCE) and plot accuracy."""
    from reasoning.parser.figures import plot_data_efficiency

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("parser-curve trains one process's parsers; run it without torchrun "
                          "(torchrun ... train parser trains one parser on several processes)")
    base = config_from_args(ParserConfig, args)
    # before any data is made: a size given twice trained it twice into one file; a REINFORCE size that is not
    # among --programs-list was never trained, without a word
    refuse_repeats(args.programs_list, "--programs-list")
    if args.reinforce_programs is not None:
        refuse_repeats(args.reinforce_programs, "--reinforce-programs")
        stray = [n for n in args.reinforce_programs if n not in args.programs_list]
        if stray:
            raise ConfigError(f"--reinforce-programs {' '.join(map(str, args.reinforce_programs))}: "
                              f"{', '.join(map(str, stray))} not among --programs-list "
                              f"({' '.join(map(str, args.programs_list))}); each REINFORCE size is one of those")
    out_dir = ensure_dir(args.out_dir)  # the folder and the figure before any data is made
    check_writable(args.figure if args.figure else out_dir / "curve.png")
    train, held = _data(args)
    if not held.examples:
        raise ConfigError("parser-curve needs held-out questions (--eval-scenes > 0 or --eval-data)")
    rows = []
    with_rl = set(args.programs_list if args.reinforce_programs is None else args.reinforce_programs)
    for n in args.programs_list:
        for rl in (False, True) if base.reinforce_steps and base.reinforce_questions and n in with_rl else (False,):
            epochs = base.epochs
            if args.supervised_steps:  # same optimiser budget for every N
                epochs = max(1, round(args.supervised_steps / math.ceil(n / base.batch_size)))
            cfg = dataclasses.replace(base, programs=n, epochs=epochs, reinforce_steps=base.reinforce_steps if rl else 0)
            path = out_dir / f"parser_n{n}_{'rl' if rl else 'sup'}.pt"
            t0 = time.perf_counter()
            metrics = train_parser(cfg, train, out=path, meta={"command": _command_line(args, cfg, "parser-curve")},
                                   progress=not args.quiet)
            ev = _evaluate(metrics.pop("parser"), held, args.beam_size)
            rows.append({"programs": n, "reinforce": rl, "wall_seconds": round(time.perf_counter() - t0, 1),
                         "program_exact": ev["program_exact"], "answer_accuracy": ev["answer_accuracy"],
                         "held_out_questions": ev["questions"]})
            print(json.dumps(rows[-1]), flush=True)
            atomic_write_json(out_dir / "curve.json", {"rows": rows, "command": _command_line(args, base, "parser-curve")}, indent=1)
    figure = Path(args.figure) if args.figure else Path(args.out_dir) / "curve.png"
    plot_data_efficiency(rows, figure)
    print(json.dumps({"figure": str(figure), "rows": len(rows)}))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="folder with CLEVR questions (+ scenes) JSON; default: generate")
    parser.add_argument("--eval-data", default=None, help="folder with held-out questions + scenes; default: generate")
    parser.add_argument("--templates", default=None, help="template folder for generated data (default: the project's own)")
    parser.add_argument("--official-templates", default=None, metavar="DIR",
                        help="a CLEVR release folder (DIR/templates, DIR/synonyms.json, read in place): its questions "
                        "join the generated training and held-out data, over the same scenes")
    parser.add_argument("--scenes", type=count(min=1), default=2000, help="synthetic training scenes when --data is omitted (default: 2000)")
    parser.add_argument("--per-scene", type=count(min=1), default=10, help="templates instantiated per scene (default: 10)")
    parser.add_argument("--data-seed", type=count(min=0), default=DEFAULT_DATA_SEED, help=f"seed of generated training data (default: {DEFAULT_DATA_SEED})")
    parser.add_argument("--eval-scenes", type=count(min=0, zero="no evaluation"), default=150, help="synthetic held-out scenes (0: no evaluation; default: 150)")
    parser.add_argument("--eval-seed", type=count(min=0), default=DEFAULT_EVAL_SEED, help=f"seed of held-out data (default: {DEFAULT_EVAL_SEED})")
    parser.add_argument("--beam-size", type=count(min=1), default=1, help="beam size for evaluation (1: greedy, the default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(parser, ParserConfig)


def register(groups) -> None:
    p = groups.sub("train", "parser", help="train the NS-VQA question parser", description=__doc__.split("\n\n")[0])
    _common(p)
    p.add_argument("--out", default="runs/parser/parser.pt", help="checkpoint path; resumes if it exists (default: runs/parser/parser.pt)")
    p.add_argument("--export", default=None, help="write the finished parser, without training state, to this file")
    p.set_defaults(func=run)
    c = groups.sub("train", "parser-curve", help="parser accuracy vs number of supervised programs (plot)",
                   description="Train parsers for several supervised-set sizes, with and without REINFORCE, and plot held-out accuracy.")
    _common(c)
    c.add_argument("--programs-list", type=count(min=1), nargs="+", action=AddItems, default=[90, 180, 270, 540, 1000], help="supervised set sizes (default: 90 180 270 540 1000)")
    c.add_argument("--reinforce-programs", type=count(min=1), nargs="*", action=AddItems, default=None,
                   help="sizes that also get a REINFORCE run (default: all of --programs-list)")
    c.add_argument("--supervised-steps", type=count(min=1), default=None,
                   help="give every N this many supervised steps (epochs = steps / batches per epoch) instead of --epochs")
    c.add_argument("--out-dir", default="runs/parser_curve", help="folder for the checkpoints and curve.json (default: runs/parser_curve)")
    c.add_argument("--figure", default=None,
                   help="PNG to write (default: curve.png in --out-dir; the committed figure is docs/images/parser_data_efficiency.png)")
    c.set_defaults(func=run_curve)
