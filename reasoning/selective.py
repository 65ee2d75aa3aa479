"""NS-VQA that abstains: answer only when the scene graph has no uncertain node.

The reasoning half of selective prediction (:mod:`perception.confidence.selective`,
after DeepRadiologyNet, arXiv 1711.09313): the perceiver marks the nodes whose
calibrated attribute confidence is below its gate, and the question is answered
only on scenes without such nodes, so a wrong attribute is less likely to reach
the answer.  :func:`answer_or_abstain` is the answer path; the benchmark
``selective`` (``nesy bench perception --model selective``) trains the
derenderer's attribute network from a seed, fits the temperatures and the gate
on calibration scenes and measures, on held-out scenes:

* the expected calibration error of the attribute confidences (< 0.05),
* the attribute error at 80% coverage against full coverage (<= 1/3),
* NS-VQA's accuracy (ground-truth programs, perceived attributes) when it
  answers only confident scenes, against answering every question, at the
  coverage the gate gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from perception.benchmark import BenchOutcome, Check, register_perception_bench, train_steps
from perception.confidence.selective import (
    ConfidenceGate,
    TemperatureScaler,
    calibrated,
    error_at_coverage,
    expected_calibration_error,
    mark_scene,
    uncertain_objects,
)
from perception.scene_graph import SceneGraph, SceneObject
from physics.worlds.clevr_properties import ATTRIBUTES
from reasoning.dsl import Program
from reasoning.dsl.formats import from_clevr
from reasoning.executor import execute

__all__ = ["answer_or_abstain", "ABSTAIN"]

ABSTAIN = None  # what answer_or_abstain returns instead of an answer


def answer_or_abstain(program: Program, scene: SceneGraph) -> str | None:
    """The program's answer on ``scene``, or :data:`ABSTAIN` when the scene has an uncertain node."""
    if uncertain_objects(scene):
        return ABSTAIN
    return execute(program, scene, trace=False).answer


# ---------------------------------------------------------------------- benchmark
@dataclass(frozen=True)
class _BenchConfig:
    train_scenes: int
    calib_scenes: int
    test_scenes: int
    steps: int
    batch: int
    questions_per_scene: int
    lr: float = 2e-3


_FULL = _BenchConfig(train_scenes=150, calib_scenes=100, test_scenes=200, steps=500, batch=64, questions_per_scene=5)
_QUICK = _BenchConfig(train_scenes=4, calib_scenes=3, test_scenes=3, steps=4, batch=8, questions_per_scene=2)
COVERAGE = 0.8  # the coverage at which the attribute error is compared (the check)
_WORLD = dict(width=240, height=160, min_pixels=60)


def _perceived(scene: SceneGraph, predicted: dict[str, torch.Tensor], rows: torch.Tensor) -> SceneGraph:
    """``scene`` with each object's attributes replaced by the predicted ones (positions kept)."""
    names = {a: [ATTRIBUTES[a][int(predicted[a][r])] for r in rows] for a in ATTRIBUTES}
    objects = tuple(
        SceneObject(names["shape"][k], names["color"][k], names["material"][k], names["size"][k], o.position,
                    o.rotation, o.pixel_coords)
        for k, o in enumerate(scene.objects)
    )
    return SceneGraph(objects, scene.directions, image_index=scene.image_index)


def _scene_confidence(confidence: dict[str, torch.Tensor], scene_of: torch.Tensor, n_scenes: int) -> torch.Tensor:
    """Each scene's weakest attribute confidence over its objects: [n_scenes]."""
    weakest = torch.stack([confidence[a] for a in ATTRIBUTES], 1).min(1).values
    return torch.stack([weakest[scene_of == s].min() for s in range(n_scenes)])


@register_perception_bench(
    "selective",
    paper="DeepRadiologyNet's abstention, arXiv 1711.09313; temperature scaling (Guo et al. 2017)",
    check="ECE < 0.05; attribute error at 80% coverage <= 1/3 of full; NS-VQA more accurate when abstaining",
    ablation="uncalibrated softmax; full coverage; answering every question",
)
def bench_selective(quick: bool, seed: int) -> BenchOutcome:
    """Train the attribute network, calibrate on other scenes, test on scenes of other seeds."""
    from perception.datasets.object_crops import render_object_crops
    from perception.derender.attributes import AttributeConfig, AttributeNet
    from physics.worlds.clevr_world import ClevrWorldConfig
    from reasoning.questions import QuestionGenerator

    bench = _QUICK if quick else _FULL
    world, crop = ClevrWorldConfig(**_WORLD), AttributeConfig(crop_size=32, width=16)
    base = 3_000_000 + seed * 10_000
    train = render_object_crops(range(base, base + bench.train_scenes), world, crop)
    calib = render_object_crops(range(base + 3_000, base + 3_000 + bench.calib_scenes), world, crop)
    test = render_object_crops(range(base + 6_000, base + 6_000 + bench.test_scenes), world, crop)

    torch.manual_seed(seed)
    net = AttributeNet(crop)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, _ = net(train.crops[idx], train.boxes[idx])
        return {"loss": sum(F.cross_entropy(logits[a], train.labels[a][idx]) for a in ATTRIBUTES)}

    train_steps(net, step, items=len(train), steps=bench.steps, batch=bench.batch, lr=bench.lr, seed=seed,
                desc="selective attribute net")
    net.eval()
    with torch.no_grad():
        calib_logits, _ = net(calib.crops, calib.boxes)
        test_logits, _ = net(test.crops, test.boxes)
    scaler = TemperatureScaler().fit(calib_logits, calib.labels)

    def pooled(logits, labels, scale):
        conf, pred = calibrated(logits, scaler if scale else None)
        return (torch.cat([conf[a] for a in ATTRIBUTES]), torch.cat([pred[a] == labels[a] for a in ATTRIBUTES]),
                conf, pred)

    conf_t, correct_t, conf_by_attr, pred = pooled(test_logits, test.labels, True)
    conf_raw, _, _, _ = pooled(test_logits, test.labels, False)
    ece = expected_calibration_error(conf_t, correct_t)
    ece_raw = expected_calibration_error(conf_raw, correct_t)
    err_full = 1.0 - float(correct_t.float().mean())
    err_cov = error_at_coverage(conf_t, correct_t, COVERAGE)

    # NS-VQA on the test scenes: ground-truth programs, perceived attributes, a scene gate set on calibration
    calib_conf, _ = calibrated(calib_logits, scaler)
    gate = ConfidenceGate.for_coverage(_scene_confidence(calib_conf, calib.scene, len(calib.scenes)), COVERAGE)
    questions = QuestionGenerator().generate(list(test.scenes), per_scene=bench.questions_per_scene, seed=seed)
    perceived = []
    for s, scene in enumerate(test.scenes):
        rows = torch.nonzero(test.scene == s)[:, 0]
        per_object = [{a: float(conf_by_attr[a][r]) for a in ATTRIBUTES} for r in rows]
        perceived.append(mark_scene(_perceived(scene, pred, rows), per_object, gate))
    right_all, answered, right_answered = 0, 0, 0
    for q in questions:
        program = from_clevr(q["program"])
        scene = perceived[q["image_index"]]  # the generator numbers the scenes 0.. in order
        ok = execute(program, scene, trace=False).answer == q["answer"]
        right_all += ok
        if answer_or_abstain(program, scene) is not ABSTAIN:
            answered += 1
            right_answered += ok
    n_q = max(len(questions), 1)
    acc_all = right_all / n_q
    acc_sel = right_answered / answered if answered else 0.0
    coverage_q = answered / n_q
    checks = (
        Check("ECE of attribute confidences", "lower is better", ece, ece_raw, "< 0.05", ece < 0.05),
        Check(f"attribute error at {COVERAGE:.0%} coverage", "fraction wrong, lower is better (ablation: full coverage)",
              err_cov, err_full, "<= ablation / 3", err_cov <= err_full / 3),
        Check("NS-VQA accuracy when answering", f"fraction right of answered (coverage {coverage_q:.2f}); "
              "ablation answers all", acc_sel, acc_all, "> ablation", answered > 0 and acc_sel > acc_all),
    )
    test_scene_conf = _scene_confidence(conf_by_attr, test.scene, len(test.scenes))
    calib_scene_conf = _scene_confidence(calib_conf, calib.scene, len(calib.scenes))
    figures = {
        "temperatures": scaler.temperatures, "scene_gate_threshold": gate.threshold,
        "scene_coverage_calib": float(gate.accepts(calib_scene_conf).float().mean()),
        "scene_coverage_test": float(gate.accepts(test_scene_conf).float().mean()),
        "question_coverage": coverage_q, "questions": len(questions), "answered": answered,
        "train_objects": len(train), "calib_objects": len(calib), "test_objects": len(test),
        "train_scenes": bench.train_scenes, "calib_scenes": bench.calib_scenes, "test_scenes": bench.test_scenes,
        "steps": bench.steps, "batch": bench.batch, "attribute_net": "AttributeNet(crop_size=32, width=16)",
        "per_attribute_error": {a: 1.0 - float((pred[a] == test.labels[a]).float().mean()) for a in ATTRIBUTES},
    }
    return BenchOutcome(checks, figures)

