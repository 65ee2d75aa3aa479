"""``nesy eval clevr``: a QA model's accuracy on a CLEVR-format split (see :mod:`benchmarks.eval_clevr`).

Examples::

    nesy eval clevr --data data/clevr --split test                       # NS-VQA, shipped parts
    nesy eval clevr --data data/clevr --perceiver derender --checkpoint runs/derender/derender.pt
    nesy eval clevr --data data/clevr --perception gt --parser-checkpoint runs/parser/parser.pt
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchmarks.config_flags import add_config_flags, config_from_args
from benchmarks.eval_clevr import ClevrEvalConfig, evaluate_clevr
from benchmarks.table import percent, print_table

__all__ = ["register"]


def run(args: argparse.Namespace) -> int:
    config = config_from_args(ClevrEvalConfig, args)
    print_summary(evaluate_clevr(config), config.out)
    return 0


def _all_attributes(accuracy: Any) -> float | None:
    return accuracy.get("all") if isinstance(accuracy, dict) else accuracy


def print_summary(result: dict[str, Any], out: str | None) -> None:
    """The terminal's view of an evaluation: accuracy per question type, then parser and perception."""
    acc, counts = result["accuracy"], result["counts"]
    rows = [[t.replace("_", " "), counts[t], percent(acc[t])] for t in counts]
    low, high = result["accuracy_interval"]
    rows.append(["overall", result["questions"], percent(acc["overall"])])
    print_table(rows, ["question type", "questions", "accuracy"],
                title=f"{result['questions']} questions on {result['scenes']} scenes, {result['seconds']} s")
    print(f"overall: 90% interval {percent(low)}-{percent(high)} (resampling scenes with their questions)")
    if "skipped" in result:
        s = result["skipped"]
        print(f"skipped {s['count']} malformed question(s), not counted; first: {s['first'][0]}", file=sys.stderr)
    if "unreadable_images" in result:
        s = result["unreadable_images"]
        print(f"{s['count']} image(s) could not be read; their questions count as wrong; first: {s['first'][0]}",
              file=sys.stderr)
    parts = []
    if "parser" in result:
        p = result["parser"]
        parts += [["parser: exact programs", percent(p["program_exact"])],
                  ["parser: right answers on true scenes", percent(p["program_answer"])],
                  ["parser: no valid program", percent(p["invalid"])]]
        if "unknown_word_questions" in p:
            words = ", ".join(list(p["unknown_words"])[:6])
            parts += [["parser: questions with unknown words", f"{p['unknown_word_questions']}" + (f" ({words})" if words else "")],
                      ["parser: questions not parsed (counted wrong)", f"{p['unparsed']}"]]
            if p["parse_errors"]:
                parts.append(["parser: parse errors", f"{p['parse_errors']}; first: {p['errors'][0]}"])
    if "perception" in result:
        m = result["perception"]
        parts += [["perception: detection precision", percent(m["detection_precision"])],
                  ["perception: detection recall", percent(m["detection_recall"])],
                  ["perception: all four attributes", percent(_all_attributes(m["attribute_accuracy"]))]]
        if m.get("scene_accuracy") is not None:
            parts.append(["perception: scenes fully right", percent(m["scene_accuracy"])])
        if m.get("position_error") is not None:
            parts.append(["perception: 3D position error (scene units)", f"{m['position_error']:.3f}"])
    families = result.get("per_family") or {}
    if families:
        worst = min(families, key=lambda k: families[k]["accuracy"])
        parts.append([f"question families: {len(families)}, lowest", f"{percent(families[worst]['accuracy'])} ({worst})"])
    if parts:
        print()
        print_table(parts)
    print(f"full result -> {out}" if out else "(--out FILE writes the full result as JSON)")


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
