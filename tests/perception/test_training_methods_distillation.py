"""Dataset distillation: the unrolled steps are gradient descent and differentiable; distilled images teach; seeded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from perception.training_methods.distillation import (
    DistillConfig,
    DistilledData,
    accuracy,
    distill,
    fixed_init,
    train_on,
    unrolled,
)
from physics.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _toy_digits(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten fixed blob patterns plus noise: a separable stand-in for digits (no scikit-learn needed)."""
    g = torch.Generator().manual_seed(3)
    protos = torch.rand(10, 1, 8, 8, generator=g)
    labels = torch.arange(n) % 10
    return (protos[labels] + 0.1 * torch.randn(n, 1, 8, 8, generator=g)).clamp(0, 1), labels


def test_distilled_data_shapes_and_labels():
    data = DistilledData(DistillConfig(per_class=2, inner_steps=4, init_lr=0.05))
    assert data.images.shape == (20, 1, 8, 8)
    assert data.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert torch.allclose(data.step_sizes, torch.full((4,), 0.05))
    with pytest.raises(ConfigError):
        DistillConfig(inner_steps=0)


def test_unrolled_steps_are_gradient_descent_and_differentiable_in_images_and_step_sizes():
    net, theta0 = fixed_init(16, seed=0)
    data = DistilledData(DistillConfig(inner_steps=1, hidden=16), torch.Generator().manual_seed(0))
    theta = unrolled(net, theta0, data.images, data.labels, data.step_sizes, create_graph=True)
    # one step by hand
    w = {k: v.clone().requires_grad_(True) for k, v in theta0.items()}
    grads = torch.autograd.grad(F.cross_entropy(functional_call(net, w, (data.images,)), data.labels), list(w.values()))
    for (k, v), g in zip(theta0.items(), grads, strict=True):
        assert torch.allclose(theta[k], v - 0.1 * g, atol=1e-6)
    images, labels = _toy_digits(20)
    outer = F.cross_entropy(functional_call(net, theta, (images,)), labels)
    g_img, g_lr = torch.autograd.grad(outer, [data.images, data.log_lr])
    assert g_img.abs().sum() > 0 and g_lr.abs().sum() > 0
    assert all(not v.requires_grad for v in train_on(net, theta0, data.images, data.labels, data.step_sizes).values())


def test_distilled_images_teach_the_fixed_init_network_and_are_deterministic():
    images, labels = _toy_digits()
    config = DistillConfig(inner_steps=3, hidden=16)

    def run() -> tuple[list[float], torch.Tensor, float]:
        data, history = distill(config, images, labels, init_seed=0, steps=60, batch=64, lr=0.05, seed=0)
        net, theta0 = fixed_init(config.hidden, 0)
        theta = train_on(net, theta0, data.images, data.labels, data.step_sizes)
        return [r["loss"] for r in history], data.images.detach().clone(), accuracy(net, theta, images, labels)

    history_a, images_a, acc = run()
    history_b, images_b, _ = run()
    net, theta0 = fixed_init(config.hidden, 0)
    before = accuracy(net, theta0, images, labels)
    assert acc > before + 0.3  # 10 learned images teach the fixed-init network the ten patterns
    assert history_a == history_b and torch.equal(images_a, images_b)
