"""Defensive quantization: 16-level quantisers with straight-through gradients, the penalty, FGSM, training."""

from __future__ import annotations

import pytest
import torch

from perception.robust.defensive_quantization import (
    QuantConfig,
    QuantMLP,
    fgsm,
    init_seeds,
    orthogonality_penalty,
    quantize_unit,
    quantize_weight,
    train_quantized,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_four_bit_quantisers_have_sixteen_levels():
    x = torch.linspace(-0.5, 1.5, 10_001)
    levels = quantize_unit(x, 4).unique()
    assert len(levels) == 16 and levels.min() == 0 and levels.max() == 1
    w = torch.linspace(-3.0, 3.0, 10_001)
    wl = quantize_weight(w, 4).unique()
    assert len(wl) == 16 and torch.isclose(wl.max(), torch.tensor(3.0)) and torch.isclose(wl.min(), torch.tensor(-3.0))
    assert torch.allclose(wl.diff(), wl.diff()[0].expand(15))  # evenly spaced


def test_straight_through_gradient_is_the_identity_inside_the_range():
    x = torch.tensor([0.1, 0.52, 0.9, 1.4, -0.2], requires_grad=True)
    quantize_unit(x, 4).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]  # clipped values pass no gradient
    w = torch.tensor([-1.0, 0.3, 0.77], requires_grad=True)
    (quantize_weight(w, 4) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(w.grad, torch.tensor([1.0, 2.0, 3.0]))


def test_penalty_is_zero_for_orthogonal_weights_and_fgsm_stays_in_range():
    model = QuantMLP(QuantConfig(hidden=64))
    with torch.no_grad():
        for layer in model.layers:
            torch.nn.init.orthogonal_(layer.weight)
    with torch.no_grad():
        assert float(orthogonality_penalty(model)) < 1e-8
    x, y = torch.rand(5, 1, 8, 8), torch.arange(5)
    adv = fgsm(model, x, y, 0.1)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= 0.1 + 1e-6
    with pytest.raises(ConfigError):
        QuantConfig(bits=-1)


def test_regularised_training_lowers_the_penalty_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8, generator=g), torch.randint(10, (64,), generator=g)
    plain = train_quantized(QuantConfig(hidden=32), x, y, steps=40, batch=32, lr=1e-2, seed=0)
    dq = train_quantized(QuantConfig(hidden=32, beta=1.0), x, y, steps=40, batch=32, lr=1e-2, seed=0)
    again = train_quantized(QuantConfig(hidden=32, beta=1.0), x, y, steps=40, batch=32, lr=1e-2, seed=0)
    with torch.no_grad():
        assert float(orthogonality_penalty(dq)) < float(orthogonality_penalty(plain))
        assert torch.equal(dq(x), again(x))


def test_init_seeds_are_distinct_within_and_across_benchmark_seeds():
    seeds = [init_seeds(s, 3) for s in range(4)]
    flat = [i for group in seeds for i in group]
    assert all(len(group) == 3 for group in seeds) and len(set(flat)) == len(flat)
