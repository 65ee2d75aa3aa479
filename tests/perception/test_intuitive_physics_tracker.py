"""Unsupervised tracker: soft-argmax finds a peak, warps move points as images, the losses train, seeds repeat."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perception.benchmark import BenchSize
from perception.intuitive_physics.tracker import (
    CausalityDiscriminator,
    PositionExtractor,
    PositionPredictor,
    TrackerConfig,
    apply_affine,
    fit_affine,
    random_warps,
    rollout,
    train_tracker,
    warp_points,
)
from physics.errors import ConfigError, StateError
from physics.worlds.heightfield import HeightfieldConfig, heightfield_videos

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_extractor_returns_a_normalised_map_and_its_expected_position():
    torch.manual_seed(0)
    phi = PositionExtractor(4)
    pos, prob = phi(torch.rand(3, 3, 16, 16))
    assert pos.shape == (3, 2) and prob.shape == (3, 16, 16)
    assert torch.allclose(prob.flatten(1).sum(1), torch.ones(3), atol=1e-5)
    axis = torch.arange(16) + 0.5
    assert torch.allclose(pos[:, 0], (prob * axis).flatten(1).sum(1), atol=1e-4)
    with pytest.raises(StateError, match="frames"):
        phi(torch.rand(3, 1, 16, 16))


def test_warp_points_follows_the_image_under_grid_sample():
    size = 32
    theta = random_warps(4, TrackerConfig(), torch.Generator().manual_seed(1))
    image = torch.zeros(4, 1, size, size)
    image[:, :, 10, 20] = 1.0  # a dot at pixel centre (20.5, 10.5)
    grid = F.affine_grid(theta, [4, 1, size, size], align_corners=False)
    warped = F.grid_sample(image, grid, align_corners=False)[:, 0]
    axis = torch.arange(size) + 0.5
    mass = warped.flatten(1).sum(1)
    centroid = torch.stack([(warped.sum(1) * axis).sum(1), (warped.sum(2) * axis).sum(1)], 1) / mass[:, None]
    predicted = warp_points(torch.tensor([[20.5, 10.5]]).repeat(4, 1), theta, size)
    assert (centroid - predicted).norm(dim=-1).max() < 0.3


def test_the_discriminator_sees_the_shape_of_a_path_not_its_size():
    disc = CausalityDiscriminator(window=5, size=32)
    path = torch.cumsum(torch.rand(2, 5, 2), 1)
    assert torch.allclose(disc(path), disc(10 * path + 3), atol=1e-4)


def test_affine_map_is_recovered_exactly_from_mapped_points():
    src = torch.rand(50, 2)
    true = torch.tensor([[2.0, 0.5], [-0.3, 1.5], [4.0, -1.0]])
    fitted = fit_affine(src, apply_affine(src, true))
    assert torch.allclose(fitted, true, atol=1e-4)


def test_predictor_rollout_has_the_horizon_shape():
    past = torch.cumsum(torch.ones(3, 4, 2), 1)
    assert rollout(PositionPredictor(4), past, 6).shape == (3, 6, 2)


def _tiny(seed: int) -> tuple[list[dict], dict]:
    cfg = TrackerConfig(width=4, window=3, stride=1, entropy_warmup=0.0)  # fixed weights: a comparable loss
    videos = heightfield_videos(4, 4, seed=2, config=HeightfieldConfig(size=16))
    phi, history = train_tracker(videos.frames, cfg, BenchSize(4, 0, steps=20, batch=4, lr=5e-3), seed, per_round=5)
    return history, phi.state_dict()


def test_tiny_tracker_loss_falls_and_training_is_deterministic_for_a_seed():
    history, weights = _tiny(0)
    again, weights2 = _tiny(0)
    assert history[-1]["loss"] < history[0]["loss"]
    assert [h["loss"] for h in history] == [h["loss"] for h in again]
    assert all(torch.equal(weights[k], weights2[k]) for k in weights)


def test_videos_shorter_than_a_window_are_refused():
    with pytest.raises(ConfigError, match="shorter than a window"):
        train_tracker(torch.zeros(2, 3, 3, 16, 16), TrackerConfig(), BenchSize(2, 0, 1, 1), 0)
