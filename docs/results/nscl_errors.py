"""Where an NS-CL model's wrong answers come from: truth substituted for parts of what it perceived.

Run from the repository root on a development split (never a held-out one)::

    PYTHONPATH=$PWD python docs/results/nscl_errors.py DATA SPLIT CHECKPOINT OUT.json

Every image is perceived once as ``nesy eval clevr --model nscl`` does (proposals,
concept scores); the proposals are matched to the true objects by pixel position,
as the concept probe matches them.  Then the ground-truth programs run through the
soft executor over the learned scores and over copies in which parts are replaced
by hard true ones (logit +-30 on the matched objects): the true relations, the true
value of one attribute group, all four groups, everything.  The gain of each
substitution is what that part costs.  The scene files' attributes are read here,
at evaluation only, as the probe reads them.  The JSON holds per variant the right
answers by question type, the object misreads (``group:true->read(shape)``) and the
detection counts.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from perception.datasets.clevr import find_layout
from perception.derender.metrics import match_objects
from perception.image_io import load_image
from perception.scene_graph import load_scenes
from physics.errors import DataError
from physics.io import atomic_write_json, read_json
from reasoning.dsl import from_clevr
from reasoning.executor.soft import SoftScenes, soft_execute
from reasoning.nscl.perceiver import NSCLPerceiver
from reasoning.questions import question_type

HARD = 30.0  # the logit of a substituted truth
GROUPS = ("color", "shape", "material", "size")


def _substituted(scores: SoftScenes, truth, matches, groups=(), relations: bool = False) -> SoftScenes:
    """``scores`` of one scene with the matched objects' ``groups`` (and relations) set to the truth."""
    attributes = {k: v.clone() for k, v in scores.attributes.items()}
    rel = scores.relations.clone()
    for group in groups:
        words = scores.vocabulary[group]
        for p, g in matches:
            attributes[group][0, p, :] = -HARD
            attributes[group][0, p, words.index(truth.objects[g].attribute(group))] = HARD
    if relations:
        for r, name in enumerate(scores.relation_names):
            rows = truth.relationships[name]
            for p, g in matches:
                for q, h in matches:
                    if p != q:
                        rel[0, r, p, q] = HARD if h in rows[g] else -HARD
    return SoftScenes(scores.present, attributes, rel, scores.vocabulary, scores.relation_names)


def diagnose(data, split: str, checkpoint, limit_images: int = 0) -> dict[str, Any]:
    """The substitution table of ``checkpoint`` on ``data``/``split`` (see the module text)."""
    layout = find_layout(data, split)
    if layout.scenes is None or layout.questions is None:
        raise DataError(f"{data}: split {split!r} needs both a scenes and a questions file")
    truth = {s.image_index: s for s in load_scenes(layout.scenes)}
    questions = read_json(layout.questions, "CLEVR questions file")["questions"]
    images = sorted({q["image_index"] for q in questions})
    if limit_images:
        images = images[:limit_images]
        questions = [q for q in questions if q["image_index"] in set(images)]
    perceiver = NSCLPerceiver.from_checkpoint(checkpoint)
    scores, matches, misreads, detection = {}, {}, Counter(), Counter()
    for i in images:
        gt = truth[i]
        seen = perceiver(load_image(layout.images / gt.image_filename), image_index=i, image_filename=gt.image_filename)
        scores[i] = perceiver.scores_of(seen) if len(seen) else SoftScenes.from_scene_graphs([seen])
        matches[i] = match_objects(seen, gt) if len(seen) else []
        detection.update(proposals=len(seen), objects=len(gt), matched=len(matches[i]))
        for p, g in matches[i]:
            for group in GROUPS:
                a, b = gt.objects[g].attribute(group), seen.objects[p].attribute(group)
                if a != b:
                    misreads[f"{group}:{a}->{b}({gt.objects[g].attribute('shape')})"] += 1
    programs = [from_clevr(q["program"]) for q in questions]
    types = [question_type(p) for p in programs]
    row = {i: k for k, i in enumerate(images)}
    variants = {"learned": ((), False), "true relations": ((), True)}
    variants.update({f"true {g}": ((g,), False) for g in GROUPS})
    variants.update({"true attributes": (GROUPS, False), "true attributes and relations": (GROUPS, True)})
    table = {}
    for name, (groups, relations) in variants.items():
        batch = SoftScenes.cat([_substituted(scores[i], truth[i], matches[i], groups, relations) for i in images])
        answers = soft_execute(programs, batch, [row[q["image_index"]] for q in questions]).answers
        right, total = Counter(), Counter()
        for a, q, t in zip(answers, questions, types, strict=True):
            total[t] += 1
            right[t] += a == q["answer"]
        table[name] = {"right": sum(right.values()), "questions": len(questions),
                       "by_type": {t: [right[t], total[t]] for t in sorted(total)}}
    return {"checkpoint": str(checkpoint), "data": str(data), "split": split, "images": len(images),
            "variants": table, "misreads": dict(misreads.most_common()), "detection": dict(detection)}


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    result = diagnose(argv[0], argv[1], argv[2])
    atomic_write_json(argv[3], result, indent=1)
    for name, v in result["variants"].items():
        print(f"{name:32s} {v['right']:6d} / {v['questions']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
