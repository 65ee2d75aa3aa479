"""Trap and replace: the trigger, the poisoning, the network's shapes, and a replaced head that ignores the trigger."""

from __future__ import annotations

import pytest
import torch

from perception.robust.trap_and_replace import (
    TrapConfig,
    TrapNet,
    add_trigger,
    attack_success,
    poison,
    replace_head,
    train_trap,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _toy(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten fixed random patterns plus noise, the corner left dark: a separable stand-in for digits."""
    g = torch.Generator().manual_seed(5)
    protos = torch.rand(10, 1, 8, 8, generator=g) * 0.6
    protos[..., 6:, 6:] = 0
    labels = torch.arange(n) % 10
    return (protos[labels] + 0.05 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1), labels


def test_trigger_and_poisoning():
    x, y = _toy()
    t = add_trigger(x[:3])
    assert (t[..., 6:, 6:] == 1).all() and torch.equal(t[..., :6, :], x[:3, ..., :6, :]) and not torch.equal(t, x[:3])
    px, py, mask = poison(x, y, TrapConfig(poison_rate=0.25, target=3), seed=0)
    assert mask.sum() == round(0.25 * int((y != 3).sum())) and (py[mask] == 3).all() and (y[mask] != 3).all()
    assert (px[mask][..., 6:, 6:] == 1).all() and torch.equal(px[~mask], x[~mask])
    with pytest.raises(ConfigError):
        TrapConfig(target=10)


def test_network_shapes():
    logits, recon = TrapNet(TrapConfig(width=4))(torch.rand(5, 1, 8, 8))
    assert logits.shape == (5, 10) and recon.shape == (5, 1, 8, 8) and recon.min() >= 0 and recon.max() <= 1


def test_the_backdoor_is_learned_and_the_replaced_head_drops_it():
    x, y = _toy()
    config = TrapConfig(width=8, poison_rate=0.3)
    px, py, _ = poison(x, y, config, seed=0)
    model = train_trap(config, px, py, steps=150, batch=32, lr=1e-2, seed=0)
    assert attack_success(model, x, y, config.target) > 0.8
    stem = [p.clone() for p in model.stem.parameters()]
    replace_head(model, config, x[:50], y[:50], steps=60, batch=25, lr=1e-2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(stem, model.stem.parameters(), strict=True))  # the stem is kept
    assert attack_success(model, x, y, config.target) < 0.2
