"""Heightfield extrapolator: shapes, variances that grow, calibration arithmetic, training that learns."""

from __future__ import annotations

import pytest
import torch

from perception.benchmark import BenchSize
from perception.intuitive_physics.extrapolation import (
    ExtrapolationConfig,
    HeightfieldExtrapolator,
    coverage,
    fit_variance_scale,
    train_extrapolator,
)
from physics.errors import ConfigError, StateError
from physics.worlds.heightfield import HeightfieldConfig, heightfield_videos

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_predictions_have_the_documented_shapes_and_variances_never_shrink():
    torch.manual_seed(0)
    model = HeightfieldExtrapolator(ExtrapolationConfig(horizon=6, width=4, hidden=8)).eval()
    with torch.no_grad():
        mean, var, read = model(torch.rand(2, 4, 3, 16, 16))
    assert mean.shape == var.shape == (2, 6, 2) and read.shape == (2, 4, 2)
    assert (var > 0).all() and (var[:, 1:] >= var[:, :-1]).all()
    with pytest.raises(StateError, match="observed frames"):
        model(torch.rand(2, 3, 3, 16, 16))
    with pytest.raises(ConfigError, match="observed"):
        ExtrapolationConfig(observed=1)


def test_the_variance_scale_makes_gaussian_errors_cover_as_a_gaussian_should():
    g = torch.Generator().manual_seed(0)
    truth = torch.zeros(4000, 3, 2)
    mean = 3.0 * torch.randn(4000, 3, 2, generator=g)  # errors of std 3, claimed std 1
    var = torch.ones_like(mean)
    assert float(coverage(mean, var, truth).mean()) < 0.6
    scale = fit_variance_scale(mean, var, truth)
    assert abs(scale - 3.0) < 0.1
    assert abs(float(coverage(mean, scale**2 * var, truth).mean()) - 0.954) < 0.02


def _tiny(seed: int) -> tuple[list[dict], dict]:
    cfg = ExtrapolationConfig(horizon=3, width=4, hidden=8)
    data = heightfield_videos(8, 7, seed=1, config=HeightfieldConfig(size=16), rendered=4)
    model, history = train_extrapolator(data, cfg, BenchSize(8, 0, steps=40, batch=8, lr=2e-2), seed, per_round=10)
    return history, model.state_dict()


def test_tiny_extrapolator_loss_falls_and_training_is_deterministic_for_a_seed():
    history, weights = _tiny(0)
    again, weights2 = _tiny(0)
    assert history[-1]["loss"] < history[0]["loss"]
    assert [h["loss"] for h in history] == [h["loss"] for h in again]
    assert all(torch.equal(weights[k], weights2[k]) for k in weights)


def test_too_short_videos_are_refused():
    data = heightfield_videos(2, 5, seed=0, config=HeightfieldConfig(size=16), rendered=4)
    with pytest.raises(ConfigError, match="simulated frames"):
        train_extrapolator(data, ExtrapolationConfig(horizon=3), BenchSize(2, 0, 1, 1), 0)
