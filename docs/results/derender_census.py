"""Which part of a perceived CLEVR scene makes each wrong answer: truth swapped in one part at a time.

Run from the repository root on a rendered split (a development split, or a held-out one
already read by its rule: this reads nothing new about the perceiver's choices)::

    PYTHONPATH=$PWD python docs/results/derender_census.py DATA PERCEIVER OUT.json [QDIR ...]

``DATA`` holds the images and the true scenes; every ``QDIR`` (default ``DATA``) holds a
``CLEVR_<split>_questions.json`` about the same images (our templates and the official ones).
Every image is perceived once as ``nesy eval clevr --perceiver PERCEIVER`` does (the perceived
scenes are cached beside ``OUT``), its objects matched to the true ones as the eval's
perception metrics match them (Hungarian on the pixel centre, <= 20 px).  Each question's
ground-truth program then runs on hybrid scenes that take each of four parts from the
perception or from the truth file:

* ``A``: the attributes of the matched objects;
* ``R``: the relations (left/right/front/behind) among the matched objects, which the
  perceived scene derives from its 3-D positions;
* ``X``: the extra detections (kept, or dropped);
* ``M``: the missed objects (absent, or added with their true attributes and relations).

A wrong answer is put down to the smallest set of parts whose truth makes it right (the
first such set in the order A, R, X, M, then pairs, ...).  With no part swapped the
hybrid is the perceived scene (the eval's answers with the true programs); with all four
it is the true scene.  ``OUT`` holds the counts by cause, by question family and the list of
wrong questions with their scene's misread, extra and missed objects.
"""

from __future__ import annotations

import sys
from collections import Counter
from itertools import combinations
from pathlib import Path

import torch

from perception.datasets.clevr import find_layout
from perception.derender.metrics import match_objects
from perception.image_io import load_image
from perception.scene_graph import SceneGraph, SceneObject, load_scenes, save_scenes
from physics.io import atomic_write_json, read_json
from reasoning.dsl import from_clevr
from reasoning.executor import execute_batch
from reasoning.questions import question_type
from reasoning.registry import QAParts, load_qa_model

PARTS = ("A", "R", "X", "M")
ATTRS = ("shape", "color", "material", "size")
SUBSETS = [c for n in range(1, 5) for c in combinations(PARTS, n)]


def hybrid(pred: SceneGraph, gt: SceneGraph, pairs: list[tuple[int, int]], swap: set[str]) -> SceneGraph:
    """``pred`` with the parts named in ``swap`` taken from ``gt`` (see the module text)."""
    matched_p = {p for p, _ in pairs}
    matched_g = {g for _, g in pairs}
    # each entry: (kind, pred index or None, gt index or None)
    entries = [("m", p, g) for p, g in pairs]
    if "X" not in swap:
        entries += [("x", p, None) for p in range(len(pred)) if p not in matched_p]
    if "M" in swap:
        entries += [("g", None, g) for g in range(len(gt)) if g not in matched_g]
    objects = []
    for kind, p, g in entries:
        src = gt.objects[g] if kind == "g" or (kind == "m" and "A" in swap) else pred.objects[p]
        base = pred.objects[p] if p is not None else gt.objects[g]
        objects.append(SceneObject(src.shape, src.color, src.material, src.size, base.position,
                                   pixel_coords=base.pixel_coords))
    rels: dict[str, list[list[int]]] = {}
    for name in gt.relationships:
        rows_g, rows_p = gt.relationships[name], pred.relationships[name]
        table = []
        for i, (ki, pi, gi) in enumerate(entries):
            row = []
            for j, (kj, pj, gj) in enumerate(entries):
                if i == j:
                    continue
                both_matched = ki == kj == "m"
                if (both_matched and "R" in swap) or "g" in (ki, kj):
                    on = gj in rows_g[gi]
                else:
                    on = pj in rows_p[pi]
                if on:
                    row.append(j)
            table.append(row)
        rels[name] = table
    return SceneGraph(tuple(objects), directions=gt.directions, relationships=rels)


def describe(pred: SceneGraph, gt: SceneGraph, pairs: list[tuple[int, int]]) -> dict[str, list[str]]:
    """The scene's misread, extra and missed objects in words."""
    def words(o: SceneObject) -> str:
        return f"{o.size} {o.color} {o.material} {o.shape} at {tuple(round(v) for v in (o.pixel_coords or (0, 0))[:2])}"
    misread = []
    for p, g in pairs:
        wrong = [a for a in ATTRS if pred.objects[p].attribute(a) != gt.objects[g].attribute(a)]
        if wrong:
            misread.append(f"{words(gt.objects[g])} read {'/'.join(pred.objects[p].attribute(a) for a in wrong)}")
    mp, mg = {p for p, _ in pairs}, {g for _, g in pairs}
    return {"misread": misread,
            "extra": [words(pred.objects[p]) for p in range(len(pred)) if p not in mp],
            "missed": [words(gt.objects[g]) for g in range(len(gt)) if g not in mg]}


def main(data: str, perceiver: str, out: str, qdirs: list[str], split: str = "test") -> None:
    torch.set_num_threads(1)
    layout = find_layout(data, split)
    gts = {s.image_index if s.image_index is not None else k: s for k, s in enumerate(load_scenes(layout.scenes))}
    cache = Path(out).with_suffix(".pred.json")
    if cache.exists():
        preds = {s.image_index: s for s in load_scenes(cache)}
    else:
        model = load_qa_model("nsvqa", QAParts(perceiver=perceiver, parser=False))
        preds = {}
        for i, s in sorted(gts.items()):
            name = s.image_filename or f"CLEVR_{split}_{i:06d}.png"
            preds[i] = model.perceive(load_image(layout.images / name), image_index=i, image_filename=name)
        save_scenes(cache, [preds[i] for i in sorted(preds)], info={"perceiver": perceiver})
    pairs = {i: match_objects(preds[i], gts[i]) for i in gts}
    ids = sorted(gts)
    pos = {i: k for k, i in enumerate(ids)}
    result: dict = {"data": data, "perceiver": perceiver, "sets": {}}
    for qdir in qdirs or [data]:
        questions = read_json(find_layout(qdir, split).questions, "CLEVR questions file")["questions"]
        programs = [from_clevr(q["program"]) for q in questions]
        where = [pos[q["image_index"]] for q in questions]

        def answers(swap: set[str], programs=programs, where=where) -> list:
            return execute_batch(programs, [hybrid(preds[i], gts[i], pairs[i], swap) for i in ids], where)

        truth = [q["answer"] for q in questions]
        base = answers(set())
        wrong = [k for k, (a, t) in enumerate(zip(base, truth, strict=True)) if a != t]
        full = answers(set(PARTS))
        cause: dict[int, str] = {}
        for subset in SUBSETS:
            if len(cause) == len(wrong):
                break
            got = answers(set(subset))
            for k in wrong:
                if k not in cause and got[k] == truth[k]:
                    cause[k] = "+".join(subset)
        rows = []
        for k in wrong:
            q = questions[k]
            i = q["image_index"]
            rows.append({"image": i, "family": f"{q.get('template_filename', '')}:{q.get('question_family_index')}",
                         "type": question_type(programs[k]), "question": q["question"], "answer": truth[k],
                         "given": base[k], "cause": cause.get(k, "none"), **describe(preds[i], gts[i], pairs[i])})
        by_cause = Counter(r["cause"] for r in rows)
        by_family = Counter(f"{r['family']} {r['cause']}" for r in rows)
        by_type = Counter(f"{r['type']} {r['cause']}" for r in rows)
        result["sets"][qdir] = {"questions": len(questions), "wrong": len(wrong),
                                "wrong_with_all_parts_true": sum(a != t for a, t in zip(full, truth, strict=True)),
                                "by_cause": dict(by_cause.most_common()), "by_type": dict(sorted(by_type.items())),
                                "by_family": dict(sorted(by_family.items())), "rows": rows}
        print(qdir, len(wrong), "wrong of", len(questions), dict(by_cause.most_common()), flush=True)
    atomic_write_json(out, result, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
