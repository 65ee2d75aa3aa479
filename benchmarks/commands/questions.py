"""``nesy data questions``: CLEVR-style questions from templates for a scenes file.

Example::

    nesy data questions --scenes CLEVR_val_scenes.json --out CLEVR_val_questions.json
    nesy data questions --scenes S.json --out Q.json --templates ../shared/data/clevr/templates \\
        --synonyms ../shared/data/clevr/synonyms.json --per-scene 10 --seed 0 --check
    nesy data questions --synthetic 120 --out /tmp/q.json --templates ../shared/data/clevr/templates --check

Writes the official CLEVR questions JSON (``{"info", "questions"}``, atomically;
the same seed gives the same bytes) and prints a JSON summary: questions,
templates covered, answers and question types, and with ``--check`` how many
programs the symbolic executor answers exactly as the generator did.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.config_flags import add_config_flags, config_from_args, count
from physics.errors import ConfigError, DataError
from physics.io import check_writable
from reasoning.questions.config import GeneratorConfig

__all__ = ["register", "run", "check_questions"]


def check_questions(questions: list[dict[str, Any]], scenes: list[Any]) -> dict[str, Any]:
    """Run each question's program with :func:`reasoning.executor.execute` on its scene.

    Returns:
        ``{"checked", "agree", "agreement_percent", "mismatches": [first few]}``.
    """
    from reasoning.dsl import from_clevr
    from reasoning.executor import execute

    by_index = {s.image_index: s for s in scenes}
    agree, mismatches = 0, []
    for q in questions:
        result = execute(from_clevr(q["program"]), by_index[q["image_index"]], trace=False)
        if result.valid and result.answer == q["answer"]:
            agree += 1
        elif len(mismatches) < 5:
            mismatches.append(
                {
                    "question_index": q["question_index"],
                    "expected": q["answer"],
                    "executor": result.answer,
                }
            )
    n = len(questions)
    return {
        "checked": n,
        "agree": agree,
        "agreement_percent": round(100.0 * agree / n, 3) if n else None,
        "mismatches": mismatches,
    }


def run(args: argparse.Namespace) -> int:
    from perception.scene_graph import load_scenes, scenes_by_index
    from perception.synthetic import sample_scene_graphs
    from reasoning.questions import QuestionGenerator, question_type, save_questions

    if (args.scenes is None) == (args.synthetic is None):
        raise ConfigError("give exactly one of --scenes FILE or --synthetic N")
    check_writable(args.out)  # both outputs before any work: neither is written when the other cannot be
    if args.scenes_out is not None:
        check_writable(args.scenes_out)
        if Path(args.scenes_out).resolve() == Path(args.out).resolve():
            raise ConfigError(f"--scenes-out and --out name the same file ({args.out}); give two files")
    if args.scenes is not None:
        scenes = load_scenes(args.scenes)
        source = str(args.scenes)
        if not scenes:  # an empty questions file would be written without a word
            raise DataError(f"{Path(args.scenes).name} holds no scenes; there is nothing to ask about")
    else:
        scenes = sample_scene_graphs(args.synthetic, seed=args.seed)
        source = f"synthetic:{args.synthetic}:seed={args.seed}"
    scenes = [s if s.image_index is not None else _with_index(s, k) for k, s in enumerate(scenes)]
    scenes_by_index(scenes, args.scenes or "--synthetic")  # a question's image_index must name one scene

    gen = QuestionGenerator(
        templates=args.templates,
        synonyms=args.synonyms,
        metadata=args.metadata,
        config=config_from_args(GeneratorConfig, args),
    )
    start = time.perf_counter()
    questions = gen.generate(
        scenes, per_scene=args.per_scene, seed=args.seed, progress=not args.quiet
    )
    seconds = time.perf_counter() - start
    info = {
        "split": args.split,
        "version": "1.0",
        "generator": "nesy-physics reasoning.questions",
        "templates": str(args.templates or "nesy-physics default"),
        "scenes": source,
        "seed": args.seed,
    }
    save_questions(args.out, questions, info)
    if args.scenes_out is not None:
        from perception.scene_graph import save_scenes

        save_scenes(args.scenes_out, scenes, {**info, "questions": str(args.out)})

    covered = {(q["template_filename"], q["question_family_index"]) for q in questions}
    summary: dict[str, Any] = {
        "out": str(args.out),
        "scenes": len(scenes),
        "questions": len(questions),
        "templates": len(gen.templates),
        "templates_covered": len(covered),
        "seconds": round(seconds, 3),
        "questions_per_second": round(len(questions) / seconds, 1) if seconds > 0 else None,
        "question_types": dict(
            sorted(collections.Counter(question_type(q["program"]) for q in questions).items())
        ),
        "top_answers": dict(collections.Counter(q["answer"] for q in questions).most_common(10)),
    }
    if args.check:
        summary["executor_check"] = check_questions(questions, scenes)
    print(json.dumps(summary, indent=1))
    if args.check and summary["executor_check"]["agree"] != len(questions):
        return 1
    return 0


def _with_index(scene, k: int):
    from dataclasses import replace

    return replace(scene, image_index=k)


def register(groups) -> None:
    parser = groups.sub(
        "data",
        "questions",
        help="template questions (official CLEVR questions JSON) for a scenes file",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--scenes", type=Path, help="CLEVR scenes JSON ({'scenes': [...]} or one scene)"
    )
    parser.add_argument(
        "--synthetic", type=count(min=1), metavar="N", help="instead of --scenes: N synthetic scene graphs"
    )
    parser.add_argument(
        "--scenes-out", type=Path, default=None,
        help="also write the scenes the questions are about (CLEVR scenes JSON; e.g. with --synthetic, "
        "so that `nesy eval clevr --perception gt` can answer them)"
    )
    parser.add_argument("--out", type=Path, required=True, help="questions JSON to write")
    parser.add_argument(
        "--templates",
        type=Path,
        help="template folder in the CLEVR layout (default: the project's own)",
    )
    parser.add_argument("--synonyms", type=Path, help="synonyms JSON (default: the project's own)")
    parser.add_argument(
        "--metadata", type=Path, help="function catalogue metadata.json (default: CLEVR-v1.0)"
    )
    parser.add_argument(
        "--per-scene", type=count(min=1), default=10, help="templates instantiated per scene (default: 10)"
    )
    parser.add_argument("--seed", type=count(min=0), default=0, help="random seed (default: 0)")
    add_config_flags(parser, GeneratorConfig)  # balancing and search knobs, --split
    parser.add_argument(
        "--check", action="store_true", help="answer every program with the executor and compare"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
