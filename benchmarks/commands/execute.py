"""``nesy execute``: answer a CLEVR questions file on a CLEVR scenes file.

Example::

    nesy execute --scenes CLEVR_val_scenes.json --questions CLEVR_val_questions.json --out answers.json

Each question's ``program`` (CLEVR node list, DAGs as the official generator
writes them included) runs on the scene whose ``image_index`` matches the
question's.  Writes, atomically, a JSON list of ``{"question_index", "answer"}``
(``null`` where the execution is invalid) and prints a JSON summary, with the
accuracy when the questions carry answers.  Programs are answered straight from
the node lists (:func:`reasoning.executor.answer_node_lists`); ``--batched``
(the default) uses the vectorised executor, ``--no-batched`` the one-at-a-time
executor; both give the same answers.

A question that cannot run (a malformed program, an unknown ``image_index``)
does not stop the others: its record gets ``"error"`` (the one-line message)
and a null answer, errors are printed to stderr (up to :data:`MAX_ERRORS_SHOWN`;
``--quiet`` prints none), the command ends with the count of answered, invalid,
wrong and failed questions and exits with status 1 when any failed.
``--strict`` stops at an error instead (status 2, nothing written).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from perception.scene_graph import SceneGraph, load_scenes, scenes_by_index
from physics.errors import DataError, NesyError
from physics.io import atomic_write_json, read_json
from reasoning.errors import ExecutionError
from reasoning.executor.node_lists import answer_node_lists
from reasoning.executor.result import given_answer

__all__ = ["register", "run", "load_questions", "scenes_by_index", "normalise_answer"]

MAX_ERRORS_SHOWN = 20  # error lines printed; every error is in the answers file


def normalise_answer(value: Any) -> str:
    """A given answer in CLEVR's normalised form (``True`` -> ``"yes"``, ``2`` -> ``"2"``); see :func:`given_answer`."""
    return given_answer(value, "answer")


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


def _prepare(
    questions: list[Any],
    scenes: Mapping[int, SceneGraph],
    qpath: str,
    spath: str,
    *,
    strict: bool,
) -> tuple[list[dict[str, Any]], list[tuple[int, Any, SceneGraph, str]]]:
    """One record per question, and the (record position, node list, scene, name) of the others.

    A question that is not an object, repeats an earlier question's ``question_index``, has no
    program, names no known scene or gives an answer that is no string, count or boolean gets its
    own ``error`` (with ``strict``, the first such
    error is raised).
    """
    qname, sname = Path(qpath).name, Path(spath).name
    records: list[dict[str, Any]] = []
    runnable: list[tuple[int, Any, SceneGraph, str]] = []
    first: dict[Any, int] = {}  # question_index -> position of the question that gave it first
    for k, q in enumerate(questions):
        qi = q.get("question_index", k) if isinstance(q, Mapping) else k
        record: dict[str, Any] = {"question_index": qi, "answer": None}
        records.append(record)
        where = f"{qname}: question {qi}"
        try:
            if isinstance(qi, Hashable) and first.setdefault(qi, k) != k:
                raise DataError(f"{where}: question_index {qi!r} given twice (first by question {first[qi]} of "
                                f"the file, position {k} now); answered once")
            scene = _scene_of(q, k, where, scenes, qname, sname)
            given = None if q.get("answer") is None else given_answer(q["answer"], where)
        except DataError as exc:
            if strict:
                raise
            record["error"] = str(exc)
            continue
        if given is not None:
            record["given"] = given
        runnable.append((k, q["program"], scene, where))
    return records, runnable


def _scene_of(
    q: Any, k: int, where: str, scenes: Mapping[int, SceneGraph], qname: str, sname: str
) -> SceneGraph:
    """The scene question ``k`` asks about; errors name the question."""
    if not isinstance(q, Mapping):
        raise DataError(f"{qname}: question {k} must be a JSON object, got {type(q).__name__}")
    if "program" not in q:
        raise DataError(f"{where}: missing field 'program' (a CLEVR node list)")
    image = q.get("image_index")
    if isinstance(image, bool) or not isinstance(image, int):
        raise DataError(f"{where}: 'image_index' must be an integer, got {image!r}")
    scene = scenes.get(image)
    if scene is None:
        known = sorted(scenes)
        span = f"{known[0]}..{known[-1]}" if known else "none"
        raise DataError(f"{where}: image_index {image} is not in {sname} (image indices {span})")
    return scene


def _answer_all(
    runnable: list[tuple[int, Any, SceneGraph, str]],
    records: list[dict[str, Any]],
    scene_list: list[SceneGraph],
    *,
    batched: bool,
    strict: bool,
) -> None:
    """Fill in each runnable record's answer (or its error) in place."""
    positions = {id(s): k for k, s in enumerate(scene_list)}
    node_lists = [nodes for _, nodes, _, _ in runnable]
    indices = [positions[id(s)] for _, _, s, _ in runnable]
    names = [where for _, _, _, where in runnable]
    errors: dict[int, NesyError] = {}
    try:
        answers = answer_node_lists(
            node_lists,
            scene_list,
            indices,
            batched=batched,
            names=names,
            errors=None if strict else errors,
        )
    except ExecutionError:
        if strict or not batched:
            raise
        errors.clear()  # one question failed inside a batch: answer one by one to isolate it
        answers = answer_node_lists(
            node_lists, scene_list, indices, batched=False, names=names, errors=errors
        )
    for j, ((k, _, _, _), a) in enumerate(zip(runnable, answers, strict=True)):
        records[k]["answer"] = a
        if j in errors:
            records[k]["error"] = str(errors[j])


def run(args: argparse.Namespace) -> int:
    bad_scenes: list[str] = []
    scene_list = load_scenes(args.scenes, skipped=None if args.strict else bad_scenes)
    scenes = scenes_by_index(scene_list, args.scenes)
    questions = load_questions(args.questions)
    records, runnable = _prepare(
        questions, scenes, args.questions, args.scenes, strict=args.strict
    )
    t0 = time.perf_counter()
    _answer_all(runnable, records, scene_list, batched=args.batched, strict=args.strict)
    seconds = time.perf_counter() - t0
    given = [r.pop("given", None) for r in records]
    atomic_write_json(args.out, records)
    errors = [r for r in records if "error" in r]
    answered = sum(r["answer"] is not None for r in records)
    scored = [(r, g) for r, g in zip(records, given, strict=True) if g is not None]
    wrong = sum(r["answer"] != g for r, g in scored if "error" not in r)
    summary: dict[str, Any] = {
        "questions": len(records),
        "answered": answered,
        "invalid": len(records) - answered - len(errors),
        "errors": len(errors),
        "mode": "batched" if args.batched else "single",
        "seconds": round(seconds, 4),
        "out": str(args.out),
    }
    if bad_scenes:  # their questions are errors ("no scene with image_index ...")
        summary["skipped_scenes"] = len(bad_scenes)
    if scored:
        summary["answered_with_ground_truth"] = len(scored)
        summary["wrong"] = wrong
        summary["accuracy"] = round(
            sum(r["answer"] == g for r, g in scored if "error" not in r) / len(scored), 6
        )
    print(json.dumps(summary, indent=1))
    for message in [] if args.quiet else bad_scenes[:MAX_ERRORS_SHOWN]:
        print(f"skipped scene: {message}", file=sys.stderr)
    for r in [] if args.quiet else errors[:MAX_ERRORS_SHOWN]:
        print(f"error: {r['error']}", file=sys.stderr)
    if len(errors) > MAX_ERRORS_SHOWN and not args.quiet:
        print(
            f"... and {len(errors) - MAX_ERRORS_SHOWN} more errors (each is in {args.out})",
            file=sys.stderr,
        )
    counts = f"answered {answered}, invalid {summary['invalid']}"
    if scored:
        counts += f", wrong {wrong}"
    print(f"{counts}, errors {len(errors)} of {len(records)} questions", file=sys.stderr)
    return 1 if errors else 0


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
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first question with an error (default: record it and go on)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no error lines (the final counts are still printed)"
    )
    parser.set_defaults(func=run)
