"""Feature normalisation whose statistics live in the model's buffers.

GNS (Sanchez-Gonzalez et al. 2020) normalises velocities and the acceleration
target by data-set statistics; storing them as buffers saves them with the
weights, so a checkpoint is self-contained.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Normalizer"]

REL_FLOOR = 1e-3  # a feature that never varies is scaled like the busiest one, not by ~0


class Normalizer(nn.Module):
    """``(x - mean) / std`` per feature, with ``fit`` from a sample ``[S, F]``.

    ``isotropic=True`` (for vectors in space: velocities, accelerations) uses one
    std pooled over the coordinates: a direction that never moves (y in the
    cradle) must not be scaled up a thousandfold, or its rounding noise would
    dominate the loss.  The mean stays per coordinate (gravity).
    """

    def __init__(self, size: int, isotropic: bool = False) -> None:
        super().__init__()
        self.isotropic = isotropic
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, x: Tensor, center: bool = True) -> None:
        if self.mean.numel() == 0 or x.numel() == 0:
            return
        x = x.reshape(-1, self.mean.numel()).double()
        mean = x.mean(0) if center else torch.zeros_like(x[0])
        std = x.std(0, unbiased=False) if x.shape[0] > 1 else torch.ones_like(mean)
        if self.isotropic:
            std = ((x - mean) ** 2).mean().sqrt().expand_as(mean) if x.shape[0] > 1 else std
        if float(std.max()) == 0.0:  # a feature that is always the same (no actions): leave it unscaled
            std = torch.ones_like(std)
        floor = float(std.max()) * REL_FLOOR
        self.mean.copy_(mean.float())
        self.std.copy_(std.clamp(min=floor).float())
        self.fitted.fill_(True)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean
