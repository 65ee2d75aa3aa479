"""``nesy data stats``: how big the scenes and how deep the programs of a CLEVR-format split are.

Example::

    nesy data stats --data data/nscl_train37 --split train
    nesy data stats --data data/nscl_deep --split test --templates default --templates reasoning/questions/templates_deep

Prints JSON: the scenes and their objects (fewest, most, how many scenes of
each size), the questions and their ground-truth programs' node count and depth
(:meth:`reasoning.dsl.Program.depth`: calls on the longest path from the answer
to ``scene``), each as fewest, most and a histogram; with ``--templates`` (a
folder or file, or ``default`` for the project's own set, repeatable) also the
largest depth and node count any program of that template set can have
(:func:`reasoning.questions.search.program_bounds`).  This is what a
generalisation test states: a test split whose scenes or programs lie beyond
every training scene or program (docs/results/nscl.md).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from physics.errors import DataError

__all__ = ["register", "run", "split_stats", "template_bounds"]


def _summary(counts: Counter[int]) -> dict[str, Any]:
    if not counts:
        return {"min": None, "max": None, "histogram": {}}
    return {"min": min(counts), "max": max(counts), "histogram": {str(k): counts[k] for k in sorted(counts)}}


def split_stats(data: str, split: str) -> dict[str, Any]:
    """Object counts of a split's scenes and node counts and depths of its questions' programs.

    A question without a valid program is left out of the counts and named under
    ``skipped`` (the first few), not fatal to the rest.

    Raises:
        DataError: no scenes file, or a questions file that is not one.
    """
    from benchmarks.commands.execute import load_questions
    from perception.datasets.clevr import find_layout
    from perception.scene_graph import load_scenes
    from reasoning.dsl import from_clevr
    from reasoning.errors import ProgramError

    layout = find_layout(data, split)
    if layout.scenes is None:
        raise DataError(f"{data}: split {split!r} has no scenes file")
    objects = Counter(len(s.objects) for s in load_scenes(layout.scenes))
    out: dict[str, Any] = {"data": data, "split": split, "scenes": sum(objects.values()), "objects": _summary(objects)}
    if layout.questions is not None:
        questions = load_questions(layout.questions)
        nodes: Counter[int] = Counter()
        depth: Counter[int] = Counter()
        skipped: list[str] = []
        for k, q in enumerate(questions):
            where = f"{layout.questions.name}: question {k}"
            try:
                if not isinstance(q, dict) or "program" not in q:
                    raise DataError(f"{where} lacks 'program'")
                program = from_clevr(q["program"], where=where)
            except (DataError, ProgramError) as err:
                skipped.append(str(err))
                continue
            nodes[len(program)] += 1
            depth[program.depth()] += 1
        out.update(questions=len(questions), program_nodes=_summary(nodes), program_depth=_summary(depth))
        if skipped:
            out["skipped"] = {"count": len(skipped), "first": skipped[:5]}
    return out

def template_bounds(path: str) -> dict[str, Any]:
    """The largest program depth and node count a template set (``default``: the project's own) can produce."""
    from reasoning.questions import load_templates
    from reasoning.questions.search import program_bounds

    bounds = [program_bounds(t) for t in load_templates(None if path == "default" else path)]
    return {"templates": path, "count": len(bounds), "max_depth": max(b[0] for b in bounds),
            "max_nodes": max(b[1] for b in bounds), "min_max_depth": min(b[0] for b in bounds)}


def run(args: argparse.Namespace) -> int:
    result = split_stats(args.data, args.split)
    if args.templates:
        result["template_bounds"] = [template_bounds(t) for t in args.templates]
    print(json.dumps(result, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.sub(
        "data",
        "stats",
        help="objects per scene and program size and depth of a CLEVR-format split",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--data", required=True, help="folder of a CLEVR-format split (nesy data clevr or official)")
    parser.add_argument("--split", default="train", help="split name in the file names (default: train)")
    parser.add_argument(
        "--templates", action="append", metavar="PATH",
        help="also the largest depth and node count programs of this template set can have (a folder or file, or "
        "'default' for the project's own; repeatable); min_max_depth is the shallowest template's bound",
    )
    parser.set_defaults(func=run)
