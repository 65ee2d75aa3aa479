"""Deep image prior: the network's shapes, PSNR, the baselines, and fitting that ignores unknown pixels."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from perception.generative.deep_image_prior import (
    DipConfig,
    DipNet,
    fit_dip,
    gaussian_blur,
    noisy_copy,
    normalized_convolution,
    psnr,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = DipConfig(code=4, channels=4, skip=2, levels=2, steps=8, window=3, patience=3)


def test_network_maps_a_code_to_an_image_in_the_unit_range():
    net = DipNet(TINY)
    with torch.no_grad():
        out = net(torch.rand(1, 4, 16, 12))
    assert out.shape == (1, 3, 16, 12) and 0 <= float(out.min()) and float(out.max()) <= 1
    with pytest.raises(StateError):
        net(torch.rand(1, 4, 10, 12))
    with pytest.raises(ConfigError):
        DipConfig(ema=1.0)


def test_psnr_and_the_noise_of_sigma_25():
    image = torch.full((3, 64, 64), 0.5)
    noisy = noisy_copy(image, 25 / 255, seed=0)
    assert torch.equal(noisy, noisy_copy(image, 25 / 255, seed=0))
    assert psnr(noisy, image) == pytest.approx(20 * math.log10(255 / 25), abs=0.2)
    assert psnr(image, image) > 100


def test_baselines_keep_known_pixels_and_fill_a_constant_image_exactly():
    image = torch.full((3, 10, 10), 0.3)
    known = torch.rand(10, 10, generator=torch.Generator().manual_seed(0)) > 0.5
    filled = normalized_convolution(image * known, known)
    assert torch.allclose(filled, image, atol=1e-6)
    assert torch.allclose(gaussian_blur(image, 1.0), image, atol=1e-6)


def test_fit_stops_within_its_steps_and_inpainting_ignores_unknown_pixels():
    clean = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    result = fit_dip(noisy_copy(clean, 0.1, 0), TINY, seed=0, clean=clean, every=2)
    assert 1 <= result.stop_step <= result.steps_run <= TINY.steps
    assert result.image.shape == clean.shape and len(result.psnr_curve) == result.steps_run // 2
    fixed = fit_dip(noisy_copy(clean, 0.1, 0), replace(TINY, patience=0), seed=0)
    assert fixed.steps_run == fixed.stop_step == TINY.steps and 1 <= fixed.wmv_step <= TINY.steps
    assert fixed.wmv_image is not None and fixed.wmv_image.shape == clean.shape
    known = torch.zeros(16, 16, dtype=torch.bool)
    known[:, :8] = True
    one = fit_dip(torch.where(known, clean, torch.zeros(())), TINY, known=known, seed=0)
    two = fit_dip(torch.where(known, clean, torch.ones(())), TINY, known=known, seed=0)
    assert torch.equal(one.image, two.image)
    with pytest.raises(StateError):
        fit_dip(clean[0], TINY)
