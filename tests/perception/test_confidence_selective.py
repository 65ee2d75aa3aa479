"""Selective prediction: temperature scaling calibrates, the gate keeps the confident, nodes get marked."""

from __future__ import annotations

import pytest
import torch

from perception.confidence.selective import (
    ConfidenceGate,
    SelectiveDerenderer,
    TemperatureScaler,
    calibrated,
    error_at_coverage,
    expected_calibration_error,
    mark_scene,
    uncertain_objects,
)
from perception.registry import PERCEIVERS
from perception.scene_graph import SceneGraph
from perception.synthetic import sample_scene_graph
from physics.errors import CheckpointError, ConfigError
from physics.worlds.clevr_properties import ATTRIBUTES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _overconfident(n: int, seed: int) -> tuple[dict, dict]:
    """Logits 4x too sharp: the right class gets a margin drawn around 1, scaled by 4."""
    g = torch.Generator().manual_seed(seed)
    logits, labels = {}, {}
    for a, values in ATTRIBUTES.items():
        y = torch.randint(len(values), (n,), generator=g)
        z = torch.randn(n, len(values), generator=g)
        z[torch.arange(n), y] += 1.0
        logits[a], labels[a] = 4.0 * z, y
    return logits, labels


def test_temperature_scaling_lowers_the_calibration_error_of_overconfident_logits():
    logits, labels = _overconfident(2000, 0)
    test_logits, test_labels = _overconfident(2000, 1)
    scaler = TemperatureScaler().fit(logits, labels)
    assert all(t > 2.0 for t in scaler.temperatures.values())
    raw_conf, pred = calibrated(test_logits, None)
    cal_conf, _ = calibrated(test_logits, scaler)
    correct = torch.cat([pred[a] == test_labels[a] for a in ATTRIBUTES])
    raw = expected_calibration_error(torch.cat(list(raw_conf.values())), correct)
    cal = expected_calibration_error(torch.cat(list(cal_conf.values())), correct)
    assert cal < 0.05 < raw


def test_error_at_coverage_keeps_the_most_confident_and_the_gate_hits_its_coverage():
    conf = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = torch.tensor([True, True, True, False, False])
    assert error_at_coverage(conf, correct, 1.0) == pytest.approx(0.4)
    assert error_at_coverage(conf, correct, 0.6) == 0.0
    gate = ConfidenceGate.for_coverage(torch.linspace(0, 1, 101), 0.8)
    assert float(gate.accepts(torch.linspace(0, 1, 101)).float().mean()) == pytest.approx(0.8, abs=0.02)
    with pytest.raises(ConfigError):
        error_at_coverage(conf, correct, 0.0)


def test_marked_nodes_carry_confidences_and_survive_the_clevr_json():
    scene = sample_scene_graph(3)
    conf = [{a: 0.99 for a in ATTRIBUTES} for _ in scene.objects]
    conf[1]["material"] = 0.4
    marked = mark_scene(scene, conf, ConfidenceGate(0.9))
    assert uncertain_objects(marked) == [1]
    again = SceneGraph.from_clevr({"objects": [o.to_clevr() for o in marked.objects]})
    assert uncertain_objects(again) == [1] and again.objects[1].extra["confidence"]["material"] == 0.4
    with pytest.raises(ConfigError):
        mark_scene(scene, conf[:1], ConfidenceGate(0.9))


def test_selective_derenderer_is_registered_and_refuses_a_plain_derenderer_checkpoint():
    assert PERCEIVERS.get("derender-selective") is SelectiveDerenderer
    from perception.derender.derenderer import DEFAULT_CHECKPOINT

    with pytest.raises(CheckpointError, match="selective"):
        SelectiveDerenderer.from_checkpoint(DEFAULT_CHECKPOINT)


def test_selective_derenderer_marks_the_nodes_of_a_rendered_scene(tmp_path):
    from perception.confidence.selective import save_selective
    from perception.datasets.clevr_render import generate_scene
    from perception.derender.derenderer import load_default_derenderer
    from physics.worlds.clevr_world import ClevrWorldConfig

    _, rgb, _, _ = generate_scene(5, ClevrWorldConfig())
    save_selective(tmp_path / "sel.pt", load_default_derenderer(), TemperatureScaler(), ConfidenceGate(2.0))
    model = SelectiveDerenderer.from_checkpoint(tmp_path / "sel.pt")
    scene = model(rgb)
    assert len(scene) > 0 and uncertain_objects(scene) == list(range(len(scene)))  # a gate above 1 doubts all
    assert set(scene.objects[0].extra["confidence"]) == set(ATTRIBUTES)
