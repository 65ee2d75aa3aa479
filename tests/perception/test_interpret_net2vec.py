"""Net2Vec: combination weights' shapes, the balanced loss falls, a distributed concept beats every single filter."""

from __future__ import annotations

import pytest
import torch

from perception.derender.attributes import AttributeConfig, AttributeNet
from perception.interpret.net2vec import (
    ConceptVectors,
    Net2VecConfig,
    best_single_filters,
    concepts,
    fit_concept_vectors,
    layer_activations,
    set_iou,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _distributed(seed=0):
    """Concept 0 = filter 0 AND filter 1 (no single filter has it); concept 1 = filter 2 alone."""
    g = torch.Generator().manual_seed(seed)
    acts = torch.rand(40, 6, 8, 8, generator=g)
    targets = torch.stack([(acts[:, 0] + acts[:, 1]) > 1.4, acts[:, 2] > 0.7], 1)
    return acts, targets


def test_combination_shapes_and_probabilities():
    acts, targets = _distributed()
    model, _ = fit_concept_vectors(acts, targets, Net2VecConfig(steps=5, batch=8), seed=0)
    assert model.weight.shape == (2, 6) and model.bias.shape == (2,)
    p = model(acts)
    assert p.shape == (40, 2, 8, 8) and p.min() >= 0 and p.max() <= 1


def test_loss_falls_and_combination_beats_single_filters_on_a_distributed_concept():
    acts, targets = _distributed()
    model, history = fit_concept_vectors(acts, targets, Net2VecConfig(steps=300, batch=16, lr=0.05), seed=0)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    test_acts, test_targets = _distributed(seed=1)
    with torch.no_grad():
        combo = set_iou(model(test_acts) > 0.5, test_targets)
    filt, thr, _ = best_single_filters(acts, targets)
    assert filt[1] == 2  # the single-filter concept is found in its filter
    single = set_iou(test_acts[:, filt] > thr[None, :, None, None], test_targets)
    assert combo[0] > single[0] + 0.1


def test_set_iou_sums_over_the_data_set():
    pred = torch.zeros(2, 1, 2, 2, dtype=torch.bool)
    truth = torch.zeros_like(pred)
    pred[0, 0, 0, :] = True  # 2 pixels, one right
    truth[0, 0, 0, 0] = truth[1, 0, 1, 1] = True
    assert set_iou(pred, truth).tolist() == [pytest.approx(1 / 3)]


def test_layer_activations_are_upsampled_to_the_crop_and_layer_is_checked():
    net = AttributeNet(AttributeConfig(crop_size=32, width=8)).eval()
    a = layer_activations(net, torch.rand(3, 4, 32, 32), 2)
    assert a.shape == (3, 16, 32, 32)
    with pytest.raises(ConfigError):
        layer_activations(net, torch.rand(3, 4, 32, 32), 5)
    assert len(concepts()) == 12 and ConceptVectors(12, torch.zeros(16), torch.ones(16)).weight.shape == (12, 16)
