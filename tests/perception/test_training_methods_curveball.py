"""CurveBall: its curvature-vector products match finite differences; it lowers a loss; it needs its batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from perception.benchmark import train_steps
from perception.training_methods.curveball import (
    CropAttributeNet,
    CurveBall,
    attribute_loss,
    gauss_newton_product,
    steps_to_target,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randint(3, (12,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    return model, x, y


def _flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_gauss_newton_product_matches_finite_differences_of_the_jacobian():
    model, x, y = _problem()
    g = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in model.parameters()]
    out = model(x).detach()
    # J v by central differences of the output along v
    eps = 1e-6
    with torch.no_grad():
        for p, d in zip(model.parameters(), v, strict=True):
            p.add_(d, alpha=eps)
        plus = model(x)
        for p, d in zip(model.parameters(), v, strict=True):
            p.add_(d, alpha=-2 * eps)
        minus = model(x)
        for p, d in zip(model.parameters(), v, strict=True):
            p.add_(d, alpha=eps)
    jv = (plus - minus) / (2 * eps)
    # H_L of the mean cross-entropy at the logits: (diag(p) - p p^T) / N per row
    prob = out.softmax(1)
    h_jv = (prob * jv - prob * (prob * jv).sum(1, keepdim=True)) / len(x)
    expected = torch.autograd.grad(model(x), list(model.parameters()), h_jv)
    got = gauss_newton_product(model, x, lambda o: F.cross_entropy(o, y), v)
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-7, rtol=1e-5)


def test_on_a_linear_least_squares_problem_the_product_is_the_hessian_and_matches_gradient_differences():
    # for a linear model and squared error, J^T H_L J is the true Hessian: compare with differences of gradients
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(20, 4, generator=g, dtype=torch.float64), torch.randn(20, 2, generator=g, dtype=torch.float64)
    model = nn.Linear(4, 2).double()
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in model.parameters()]

    def gradient() -> list[torch.Tensor]:
        return list(torch.autograd.grad(((model(x) - t) ** 2).mean(), list(model.parameters())))

    eps = 1e-5
    with torch.no_grad():
        for p, d in zip(model.parameters(), v, strict=True):
            p.add_(d, alpha=eps)
    plus = gradient()
    with torch.no_grad():
        for p, d in zip(model.parameters(), v, strict=True):
            p.add_(d, alpha=-2 * eps)
    minus = gradient()
    with torch.no_grad():
        for p, d in zip(model.parameters(), v, strict=True):
            p.add_(d, alpha=eps)
    got = gauss_newton_product(model, x, lambda o: ((o - t) ** 2).mean(), v)
    for a, b, c in zip(got, plus, minus, strict=True):
        assert torch.allclose(a, (b - c) / (2 * eps), atol=1e-6)


def _fit(seed: int, steps: int = 30) -> tuple[list[float], torch.Tensor, CurveBall]:
    model, x, y = _problem()
    torch.manual_seed(seed)
    solver = CurveBall(model)

    def step(idx: torch.Tensor) -> dict:
        solver.bind(x[idx], lambda o: F.cross_entropy(o, y[idx]))
        return {"loss": F.cross_entropy(model(x[idx]), y[idx])}

    history = train_steps(model, step, items=len(x), steps=steps, batch=12, lr=1.0, seed=seed, desc="cb",
                          per_round=5, optimizer=lambda m: solver)
    return [r["loss"] for r in history], _flat_params(model), solver


def test_curveball_lowers_the_loss_through_the_shared_loop_and_is_deterministic():
    losses, w, solver = _fit(0)
    again, w2, _ = _fit(0)
    assert losses[-1] < 0.5 * losses[0]
    assert losses == again and torch.equal(w, w2)
    assert solver.count == 30 and solver.last["lambda"] > 0 and solver.last["beta"] != 0


def test_curveball_needs_its_batch_and_sane_settings():
    model = nn.Linear(2, 2)
    solver = CurveBall(model)
    model(torch.zeros(1, 2)).sum().backward()
    with pytest.raises(StateError, match="bind"):
        solver.step()
    with pytest.raises(ConfigError):
        CurveBall(model, lambd=0.0)
    with pytest.raises(ConfigError):
        CurveBall(model, rho=0.9)


def test_crop_attribute_net_shapes_loss_and_steps_to_target():
    net = CropAttributeNet(width=4)
    logits = net(torch.rand(3, 4, 16, 16))
    assert logits.shape == (3, 13)
    labels = {"shape": torch.tensor([0, 1, 2]), "color": torch.tensor([0, 7, 3]), "material": torch.tensor([0, 1, 1])}
    assert attribute_loss(logits, labels).dim() == 0
    history = [{"loss": 2.0, "step": 10}, {"loss": 0.5, "step": 20}, {"loss": 0.1, "step": 30}]
    assert steps_to_target(history, 0.5) == 20 and steps_to_target(history, 0.01) is None
