"""``nesy execute``: answer a CLEVR questions file on a CLEVR scenes file.

Example::

    nesy execute --scenes CLEVR_val_scenes.json --questions CLEVR_val_questions.json --out answers.json

Each question's ``program`` (CLEVR node list) runs on the scene whose
``image_index`` matches the question's.  Writes, atomically, a JSON list of
``{"question_index", "answer"}`` (``null`` where the execution is invalid) and
prints a JSON summary, with the accuracy when the questions carry answers.
``--batched`` (the default) uses the vectorised executor, ``--no-batched`` the
one-at-a-time executor; both give the same answers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from perception.scene_graph import SceneGraph, load_scenes
from physics.errors import DataError
from physics.io import atomic_write_json, read_json
from reasoning.dsl import Program, from_clevr
from reasoning.errors import ProgramError
from reasoning.executor import default_executor, execute_batch

__all__ = ["register", "run", "load_questions", "scenes_by_index", "normalise_answer"]


def scenes_by_index(scenes: list[SceneGraph], path: str | Path) -> dict[int, SceneGraph]:
    """Scenes keyed by ``image_index`` (their position in the file when they carry none).

    Raises:
        DataError: two scenes share an ``image_index``.
    """
    out: dict[int, SceneGraph] = {}
    for k, scene in enumerate(scenes):
        key = scene.image_index if scene.image_index is not None else k
        if key in out:
            raise DataError(
                f"{Path(path).name}: scenes {k} and an earlier one share image_index {key}"
            )
        out[key] = scene
    return out


def normalise_answer(value: Any) -> str:
    """A given answer in CLEVR's normalised form (``True`` -> ``"yes"``, ``2`` -> ``"2"``)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).strip().lower()


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    """The ``questions`` list of a CLEVR questions file (or a bare list of questions).

    Raises:
        DataError: unreadable JSON, or not a questions file.
    """
    data = read_json(path, "CLEVR questions file")
    name = Path(path).name
    if isinstance(data, Mapping) and "questions" in data:
        data = data["questions"]
    if not isinstance(data, list):
        raise DataError(f"{name}: expected a CLEVR questions file (key 'questions' holding a list)")
    return data


def _parse(
    questions: list[Any],
    scenes: Mapping[int, SceneGraph],
    qpath: str,
    spath: str,
    progress: bool = False,
) -> tuple[list[Program], list[SceneGraph], list[int], list[str | None]]:
    """Programs, their scenes, question indices and given answers; errors name the question."""
    qname, sname = Path(qpath).name, Path(spath).name
    programs, chosen, indices, given = [], [], [], []
    bar = tqdm(questions, desc="programs", unit="q", disable=not progress, mininterval=1.0)
    for k, q in enumerate(bar):
        if not isinstance(q, Mapping):
            raise DataError(f"{qname}: question {k} must be a JSON object, got {type(q).__name__}")
        qi = q.get("question_index", k)
        where = f"{qname}: question {qi}"
        if "program" not in q:
            raise DataError(f"{where}: missing field 'program' (a CLEVR node list)")
        image = q.get("image_index")
        if isinstance(image, bool) or not isinstance(image, int):
            raise DataError(f"{where}: 'image_index' must be an integer, got {image!r}")
        scene = scenes.get(image)
        if scene is None:
            known = sorted(scenes)
            span = f"{known[0]}..{known[-1]}" if known else "none"
            raise DataError(
                f"{where}: image_index {image} is not in {sname} (image indices {span})"
            )
        program = from_clevr(q["program"], where=where)
        try:
            default_executor.check(program)
        except ProgramError as exc:
            raise ProgramError(f"{where}: {exc}") from None
        programs.append(program)
        chosen.append(scene)
        indices.append(qi)
        given.append(normalise_answer(q["answer"]) if q.get("answer") is not None else None)
    return programs, chosen, indices, given


def run(args: argparse.Namespace) -> int:
    scene_list = load_scenes(args.scenes)
    scenes = scenes_by_index(scene_list, args.scenes)
    questions = load_questions(args.questions)
    programs, chosen, indices, given = _parse(
        questions, scenes, args.questions, args.scenes, progress=not args.quiet
    )
    t0 = time.perf_counter()
    if args.batched:
        positions = {id(s): k for k, s in enumerate(scene_list)}
        answers = execute_batch(programs, scene_list, [positions[id(s)] for s in chosen])
    else:
        answers = [
            default_executor.execute(p, s, trace=False).answer
            for p, s in tqdm(
                list(zip(programs, chosen, strict=True)),
                desc="questions",
                unit="q",
                disable=args.quiet,
            )
        ]
    seconds = time.perf_counter() - t0
    atomic_write_json(
        args.out,
        [{"question_index": qi, "answer": a} for qi, a in zip(indices, answers, strict=True)],
    )
    summary: dict[str, Any] = {
        "questions": len(programs),
        "invalid": sum(a is None for a in answers),
        "mode": "batched" if args.batched else "single",
        "seconds": round(seconds, 4),
        "out": str(args.out),
    }
    scored = [(a, g) for a, g in zip(answers, given, strict=True) if g is not None]
    if scored:
        summary["answered_with_ground_truth"] = len(scored)
        summary["accuracy"] = round(sum(a == g for a, g in scored) / len(scored), 6)
    print(json.dumps(summary, indent=1))
    return 0


def register(groups) -> None:
    parser = groups.command(
        "execute",
        help="answer a CLEVR questions file on a CLEVR scenes file (symbolic executor)",
        description="Run each question's program on the scene with its image_index; write "
        "[{question_index, answer}] as JSON (null = invalid) and print a summary with accuracy "
        "when the questions carry answers.",
    )
    parser.add_argument("--scenes", required=True, help="CLEVR scenes JSON ({'scenes': [...]})")
    parser.add_argument(
        "--questions", required=True, help="CLEVR questions JSON ({'questions': [...]})"
    )
    parser.add_argument("--out", required=True, help="answers JSON to write (atomically)")
    parser.add_argument(
        "--batched",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="vectorised executor (default) or one question at a time (same answers)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
