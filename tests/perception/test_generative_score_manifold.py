"""Score model on a torus in R^8: exact distances, the score network, denoising score matching, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from perception.generative.score_manifold import (
    FlatTorus,
    ScoreConfig,
    ScoreNet,
    annealed_langevin,
    dsm_loss,
    nearest_distance,
    train_score,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ScoreConfig(hidden=32, layers=2, levels=4, langevin_steps=3)


def test_torus_points_are_on_it_and_distances_are_exact():
    torus = FlatTorus(seed=3)
    x = torus.sample(50, torch.Generator().manual_seed(0))
    assert x.shape == (50, 8)
    assert torus.distance(x).abs().max() < 1e-5
    # doubling a point moves it radially by 1 in both planes: distance sqrt(2)
    assert torch.allclose(torus.distance(2 * x), torch.full((50,), math.sqrt(2.0)), atol=1e-5)
    normal = torch.linalg.svd(torus.basis.T @ torch.eye(8), full_matrices=True).Vh[4:]  # complement of the span
    off = x + 0.3 * normal[0]
    assert torch.allclose(torus.distance(off), torch.full((50,), 0.3), atol=1e-5)
    with pytest.raises(StateError):
        torus.distance(torch.zeros(3, 4))
    with pytest.raises(ConfigError):
        FlatTorus(radii=(1.0,) * 5)


def test_score_network_and_sampler_shapes_and_determinism():
    model = ScoreNet(TINY)
    assert model(torch.randn(5, 8), torch.full((5,), 0.1)).shape == (5, 8)
    a = annealed_langevin(model, 7, torch.Generator().manual_seed(0))
    assert a.shape == (7, 8) and torch.equal(a, annealed_langevin(model, 7, torch.Generator().manual_seed(0)))
    assert nearest_distance(torch.zeros(1, 8), torch.eye(8)).item() == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        ScoreConfig(sigma_min=1.0, sigma_max=0.5)


def test_denoising_score_matching_loss_falls():
    points = FlatTorus(seed=0).sample(64, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    fresh = ScoreNet(TINY)
    before = float(dsm_loss(fresh, points, torch.Generator().manual_seed(5)).detach())
    trained = train_score(points, TINY, steps=150, batch=64, lr=3e-3, seed=0)
    after = float(dsm_loss(trained, points, torch.Generator().manual_seed(5)).detach())
    assert after < before
