"""Look randomisation for derenderer training: photometric jitter that keeps every attribute.

A derenderer trained on one renderer's look (pybullet's TinyRenderer with its
shading pass) fails on another's (Blender's Cycles with area lamps, soft
shadows and mirror-like metal).  Domain randomisation (Tobin et al., "Domain
Randomization for Transferring Deep Neural Networks from Simulation to the Real
World", IROS 2017, arXiv:1703.06907) trains on many looks so that the unseen one
is one more.  :func:`jitter_look` draws, per image of a batch, a global
brightness gain, contrast about the image mean, a gamma, a small per-channel
gain (small enough that CLEVR's eight colours stay apart), a Gaussian blur and
pixel noise.  Geometry is untouched, so masks, boxes and labels stay valid.

Shapes: images float [B, C, H, W] in [0, 1] with C >= 3 (channels past the
third, e.g. an attribute crop's mask channel, pass through); returns the same
shape and range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from physics.errors import ConfigError

__all__ = ["LookJitter", "jitter_look"]


@dataclass(frozen=True)
class LookJitter:
    """Ranges of the photometric jitter (each drawn uniformly per image).

    Args:
        brightness: Most relative change of the global gain (0.25: x0.75..x1.25).
        contrast: Most relative change of the contrast about the image mean.
        gamma: Most change of log2(gamma) (0.3: gamma 0.81..1.23).
        channel: Most relative change of each colour channel's gain.
        blur_p: Chance of a Gaussian blur.
        blur_sigma: Largest blur sigma in pixels.
        noise: Largest standard deviation of the added Gaussian pixel noise.
    """

    brightness: float = 0.25
    contrast: float = 0.2
    gamma: float = 0.3
    channel: float = 0.05
    blur_p: float = 0.5
    blur_sigma: float = 1.0
    noise: float = 0.03

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "channel"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"LookJitter.{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.gamma < 0 or self.blur_sigma < 0 or self.noise < 0 or not 0.0 <= self.blur_p <= 1.0:
            raise ConfigError(f"LookJitter: gamma, blur_sigma, noise must be >= 0 and blur_p in [0, 1], got {self}")


def _uniform(n: int, half: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * 2.0 - 1.0) * half


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of each image by its own sigma (0 leaves it unchanged)."""
    radius = max(1, math.ceil(3.0 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma.clamp_min(1e-3).to(x.dtype)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None] / s) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)  # [B, K]; sigma ~0 -> a delta
    b, c, h, w = x.shape
    flat = x.reshape(1, b * c, h, w)
    k = kernel.repeat_interleave(c, 0)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), k[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), k[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, h, w)


def jitter_look(images: torch.Tensor, gen: torch.Generator, jitter: LookJitter = LookJitter()) -> torch.Tensor:
    """Photometrically jitter a batch (float [B, C, H, W] in [0, 1]); channels 3+ are kept as they are.

    The draws come from ``gen`` only, so a seeded generator gives the same batch every time.
    """
    if images.dim() != 4 or images.shape[1] < 3:
        raise ConfigError(f"jitter_look takes float [B, C>=3, H, W] images, got shape {tuple(images.shape)}")
    b = images.shape[0]
    rgb, rest = images[:, :3], images[:, 3:]
    gain = (1.0 + _uniform(b, jitter.brightness, gen))[:, None, None, None]
    contrast = (1.0 + _uniform(b, jitter.contrast, gen))[:, None, None, None]
    gamma = torch.exp2(_uniform(b, jitter.gamma, gen))[:, None, None, None]
    channel = 1.0 + _uniform(b * 3, jitter.channel, gen).reshape(b, 3, 1, 1)
    blur_on = torch.rand(b, generator=gen) < jitter.blur_p
    sigma = torch.rand(b, generator=gen) * jitter.blur_sigma * blur_on
    noise_sd = (torch.rand(b, generator=gen) * jitter.noise)[:, None, None, None]
    noise = torch.randn(rgb.shape, generator=gen, dtype=rgb.dtype) * noise_sd
    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    out = ((rgb - mean) * contrast + mean).clamp(0.0, 1.0)
    out = (out.clamp_min(1e-6) ** gamma) * gain * channel
    if bool(blur_on.any()) and jitter.blur_sigma > 0:
        out = _blur(out, sigma)
    out = (out + noise).clamp(0.0, 1.0)
    return torch.cat([out, rest], 1) if rest.shape[1] else out
