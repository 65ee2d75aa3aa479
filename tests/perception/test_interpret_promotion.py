"""Adversarial promotion/suppression: each attack stays in its ball and in [0, 1] and flips a prediction;
concept units are the selective ones; the change is measured per unit group."""

from __future__ import annotations

import pytest
import torch

from perception.derender.attributes import AttributeConfig, AttributeNet
from perception.interpret.promotion import (
    PERTURBATIONS,
    AttackConfig,
    attack,
    concept_units,
    promotion_suppression,
    unit_activations,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _linear_score():
    """A fixed random linear classifier of 3 x 8 x 8 images into 3 classes."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 3 * 8 * 8, generator=g)
    return lambda x: x.flatten(1) @ w.T


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_attack_stays_in_its_ball_and_unit_range_and_reaches_the_target(kind):
    score = _linear_score()
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(6, 3, 8, 8, generator=g) * 0.8 + 0.1
    target = (score(rgb).argmax(1) + 1) % 3
    config = AttackConfig(linf_eps=0.1, l2_eps=1.5, l0_pixels=12, steps=30)
    adv = attack(kind, score, rgb, target, config)
    delta = adv - rgb
    assert adv.shape == rgb.shape and adv.min() >= 0 and adv.max() <= 1
    if kind == "linf":
        assert delta.abs().max() <= config.linf_eps + 1e-6
    elif kind == "l2":
        assert (delta.flatten(1).norm(dim=1) <= config.l2_eps + 1e-5).all()
    else:
        assert ((delta.abs().amax(1) > 0).flatten(1).sum(1) <= config.l0_pixels).all()
    assert (score(adv).argmax(1) == target).float().mean() >= 5 / 6


def test_concept_units_pick_the_planted_selective_units():
    g = torch.Generator().manual_seed(0)
    units = torch.rand(40, 8, generator=g)
    is_a = torch.arange(40) < 20
    units[is_a, 2] += 2.0  # unit 2 fires for class a
    units[~is_a, 5] += 2.0  # unit 5 fires for class b
    a, b, sel = concept_units(units, is_a, ~is_a, 1)
    assert a.tolist() == [2] and b.tolist() == [5] and sel.shape == (8,)
    with pytest.raises(ConfigError):
        concept_units(units, is_a, torch.zeros_like(is_a), 1)


def test_promotion_suppression_is_the_relative_change_of_the_group_mean():
    clean = torch.tensor([[2.0, 1.0], [2.0, 3.0]])
    adv = torch.tensor([[1.0, 2.0], [1.0, 6.0]])
    assert promotion_suppression(clean, adv, torch.tensor([0])) == (2.0, 1.0, -0.5)
    assert promotion_suppression(clean, adv, torch.tensor([1]))[2] == pytest.approx(1.0)


def test_unit_activations_and_errors():
    net = AttributeNet(AttributeConfig(crop_size=32, width=8)).eval()
    assert unit_activations(net, torch.rand(2, 4, 32, 32), 3).shape == (2, 32)
    with pytest.raises(ConfigError):
        unit_activations(net, torch.rand(2, 4, 32, 32), 7)
    with pytest.raises(ConfigError):
        attack("l1", lambda x: x.flatten(1), torch.rand(1, 3, 2, 2), torch.zeros(1, dtype=torch.long), AttackConfig())
