"""Warped convolutions: rotation becomes a shift of the log-polar image; the yaw nets train, seeded."""

from __future__ import annotations

import pytest
import torch

from perception.geometry.warped import (
    PlainYawNet,
    WarpConfig,
    WarpedYawNet,
    log_polar,
    yaw_error_deg,
    yaw_target,
)
from perception.model_stats import count_parameters

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_quarter_turn_of_the_crop_rolls_the_log_polar_image_by_a_quarter():
    torch.manual_seed(0)
    crops = torch.rand(2, 4, 24, 24)
    warped = log_polar(crops, radii=8, angles=16, r_min=0.1)
    turned = log_polar(torch.rot90(crops, 1, (2, 3)), radii=8, angles=16, r_min=0.1)
    assert warped.shape == (2, 4, 8, 16)
    assert torch.allclose(turned, warped.roll(4, 3), atol=1e-5) or torch.allclose(turned, warped.roll(-4, 3), atol=1e-5)


def test_yaw_error_is_modulo_the_cube_symmetry():
    pred = yaw_target(torch.tensor([10.0, 10.0]))
    err = yaw_error_deg(pred, torch.tensor([100.0, 40.0]))
    assert torch.allclose(err, torch.tensor([0.0, 30.0]), atol=1e-3)


def _train(model_cls, seed: int) -> tuple[list[float], dict]:
    g = torch.Generator().manual_seed(2)
    crops = torch.rand(8, 4, 16, 16, generator=g)
    target = yaw_target(torch.rand(8, generator=g) * 90)
    torch.manual_seed(seed)
    model = model_cls(WarpConfig(width=4, layers=2, radii=6, angles=12))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        out = model(crops)
        assert out.shape == (8, 2)
        loss = (1 - (out * target).sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, model.state_dict()


def test_both_yaw_nets_train_deterministically_and_have_about_the_same_size():
    for cls in (WarpedYawNet, PlainYawNet):
        losses, w = _train(cls, 0)
        again, w2 = _train(cls, 0)
        assert losses[-1] < losses[0], cls.__name__
        assert losses == again and all(torch.equal(w[k], w2[k]) for k in w)
    config = WarpConfig()
    ours, plain = count_parameters(WarpedYawNet(config)), count_parameters(PlainYawNet(config))
    assert abs(ours - plain) <= 0.02 * plain
