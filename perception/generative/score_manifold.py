"""Score-based generative models detect manifolds: a score model on a known torus in R^8.

Pidstrigach, "Score-Based Generative Models Detect Manifolds", NeurIPS 2022
(arXiv 2206.01018): when the data lie on a low-dimensional manifold, a
well-trained score model's samples lie on that manifold too (the score blows
up like 1/sigma^2 in the normal directions and pins samples to it); and
trained to optimality on a finite training set, the score is the empirical
one, whose sampler reproduces the training points: memorisation.

:class:`FlatTorus` is the known manifold, the 2-torus ``S^1 x S^1`` in R^4
(radii ``r1, r2``) rotated into R^8 by a random orthonormal map, with the
exact distance of any point to it.  :class:`ScoreNet` is a noise-conditional
score network ``s(x, sigma) = (D(x, sigma) - x) / sigma^2`` (``D`` an MLP predicting the
clean point) trained by denoising
score matching over geometric noise levels (Song and Ermon, "Generative
Modeling by Estimating Gradients of the Data Distribution", NeurIPS 2019,
arXiv 1907.05600), and :func:`annealed_langevin` samples it, finishing with
one denoising (Tweedie) step at the smallest level.

Shapes::

    points   float [N, 8]
    sigma    float [N]  noise level of each point
    score    float [N, 8]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = ["FlatTorus", "ScoreConfig", "ScoreNet", "dsm_loss", "annealed_langevin", "nearest_distance",
           "train_score"]


class FlatTorus:
    """``{Q (r1 cos a, r1 sin a, r2 cos b, r2 sin b)}``: a 2-torus in R^``ambient`` (Q orthonormal, from ``seed``).

    With one radius it is a circle.  ``distance`` is exact: the point's
    component outside Q's span, and in each plane of Q its distance to the
    circle of that radius.
    """

    def __init__(self, radii: tuple[float, ...] = (1.0, 1.0), ambient: int = 8, seed: int = 0) -> None:
        if ambient < 2 * len(radii) or not radii or min(radii) <= 0:
            raise ConfigError(f"FlatTorus needs positive radii and ambient >= 2 * len(radii), got {radii}, {ambient}")
        self.radii = torch.tensor(radii, dtype=torch.float32)
        self.ambient = ambient
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(ambient, 2 * len(radii), generator=g))
        self.basis = q  # [ambient, 2k], orthonormal columns

    @property
    def dim(self) -> int:
        """Intrinsic dimension."""
        return len(self.radii)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points drawn uniformly in the angles: [n, ambient]."""
        angles = 2 * math.pi * torch.rand(n, self.dim, generator=generator)
        y = torch.stack([self.radii * angles.cos(), self.radii * angles.sin()], -1).flatten(1)  # [n, 2k]
        return y @ self.basis.T

    def distance(self, x: Tensor) -> Tensor:
        """Euclidean distance of each point [N, ambient] to the manifold: [N]."""
        if x.dim() != 2 or x.shape[1] != self.ambient:
            raise StateError(f"FlatTorus.distance expects points [N, {self.ambient}], got {tuple(x.shape)}")
        y = x @ self.basis
        outside = (x - y @ self.basis.T).pow(2).sum(1)
        planes = y.view(len(x), self.dim, 2).norm(dim=-1)
        return (outside + (planes - self.radii).pow(2).sum(1)).sqrt()


@dataclass(frozen=True)
class ScoreConfig:
    """The score network and its noise levels.

    Args:
        ambient: Dimension of the data.
        hidden: Width of the MLP's hidden layers.
        layers: Hidden layers.
        sigma_min, sigma_max: Smallest and largest noise level (geometric in between).
        levels: Noise levels of the sampler.
        langevin_steps: Langevin steps per level.
        step_eps: Langevin step size at the smallest level (``eps * sigma_i^2 / sigma_min^2`` at level i).
    """

    ambient: int = 8
    hidden: int = 256
    layers: int = 3
    sigma_min: float = 0.01
    sigma_max: float = 2.0
    levels: int = 40
    langevin_steps: int = 20
    step_eps: float = 2e-5

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"ScoreConfig needs 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")

    def sigmas(self) -> Tensor:
        """The sampler's levels, largest first: [levels]."""
        return torch.logspace(math.log10(self.sigma_max), math.log10(self.sigma_min), self.levels)


class ScoreNet(nn.Module):
    """``forward(x [N, D], sigma [N]) -> score [N, D]`` = (denoise(x, sigma) - x) / sigma^2.

    The MLP predicts the clean point (``denoise``: Tweedie's ``E[x0 | x]``) from
    ``x / sqrt(1 + sigma^2)`` and ``log sigma``.  This parameterisation has the same optimum as
    predicting the score, but near the manifold the clean point is a smooth function
    (the projection onto it) where the score is one of size 1/sigma, which a small MLP
    cannot resolve at sigma = 0.01.
    """

    def __init__(self, config: ScoreConfig = ScoreConfig()) -> None:
        super().__init__()
        self.config = config
        dims = [config.ambient + 1] + [config.hidden] * config.layers
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]  # measured: a SiLU MLP never learned the radial part
        self.mlp = nn.Sequential(*layers, nn.Linear(dims[-1], config.ambient))

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The predicted clean point [N, D]."""
        scale = (1 + sigma[:, None] ** 2).sqrt()
        return x / scale**2 + self.mlp(torch.cat([x / scale, sigma.log()[:, None]], 1))

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return (self.denoise(x, sigma) - x) / sigma[:, None] ** 2


def dsm_loss(model: ScoreNet, x: Tensor, generator: torch.Generator | None = None, floor: float = 0.05) -> Tensor:
    """Denoising score matching: ``E ||sigma s(x + sigma e, sigma) + e||^2``, each level reweighted.

    In the clean-point parameterisation the term is ``||denoise - x||^2 / sigma^2``; the weight
    ``1 / max(sigma, floor)^2`` replaces ``1 / sigma^2`` so that the smallest levels do not drown
    the others (any positive weight per level keeps the same optimum, the conditional mean).
    Each point gets a level drawn log-uniformly in [sigma_min, sigma_max].
    """
    cfg = model.config
    u = torch.rand(len(x), generator=generator)
    sigma = torch.exp(math.log(cfg.sigma_min) + u * (math.log(cfg.sigma_max) - math.log(cfg.sigma_min)))
    e = torch.randn(x.shape, generator=generator)
    err = (model.denoise(x + sigma[:, None] * e, sigma) - x).pow(2).sum(1)
    return (err / sigma.clamp(min=floor) ** 2).mean()


@torch.no_grad()
def annealed_langevin(model: ScoreNet, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Annealed Langevin dynamics from N(0, sigma_max^2 I), then a Tweedie step at sigma_min: [n, D]."""
    cfg = model.config
    model.eval()
    sigmas = cfg.sigmas()
    x = sigmas[0] * torch.randn(n, cfg.ambient, generator=generator)
    for s in sigmas:
        alpha = cfg.step_eps * (s / sigmas[-1]) ** 2
        level = s.expand(n)
        for _ in range(cfg.langevin_steps):
            x = x + alpha * model(x, level) + (2 * alpha).sqrt() * torch.randn(x.shape, generator=generator)
    return model.denoise(x, sigmas[-1].expand(n))


def nearest_distance(x: Tensor, points: Tensor) -> Tensor:
    """Distance of each row of ``x`` [N, D] to the nearest row of ``points`` [M, D]: [N]."""
    return torch.cdist(x, points).min(1).values


def train_score(points: Tensor, config: ScoreConfig, *, steps: int, batch: int, lr: float, seed: int,
                anneal: float = 0.1, ema: float = 0.995) -> ScoreNet:
    """Train a :class:`ScoreNet` on ``points`` [N, D] by denoising score matching (shared loop).

    The first half of the steps runs at ``lr``, the second at ``lr * anneal``, and the
    returned weights are an exponential moving average (decay ``ema`` after a warm-up of
    ``(1 + n) / (10 + n)`` at step n; 0 returns the last weights): the small-noise levels
    need weights steadier than a constant-rate Adam's last iterate.
    """
    torch.manual_seed(seed)
    model = ScoreNet(config)
    average = ScoreNet(config)
    average.load_state_dict(model.state_dict())
    noise = torch.Generator().manual_seed(seed + 17)
    count = [0]

    def step(idx: Tensor) -> dict[str, Tensor]:
        decay = min(ema, (1 + count[0]) / (10 + count[0]))  # warm-up: early weights fade fast
        count[0] += 1
        with torch.no_grad():  # the average of the weights so far (those of the previous step)
            for a, p in zip(average.parameters(), model.parameters(), strict=True):
                a.lerp_(p, 1.0 - decay)
        return {"loss": dsm_loss(model, points[idx], noise)}

    first = steps - steps // 2
    for k, (n, rate) in enumerate(((first, lr), (steps - first, lr * anneal))):
        if n:
            train_steps(model, step, items=len(points), steps=n, batch=batch, lr=rate, seed=seed + k,
                        desc=f"score model ({len(points)} points, phase {k + 1})")
    return (average if ema > 0 else model).eval()


# ---------------------------------------------------------------------- benchmark
@dataclass(frozen=True)
class ScoreSize:
    large: BenchSize  # the generalising model: many training points
    small: BenchSize  # the memorising model: few training points, trained long
    samples: int
    config: ScoreConfig


_FULL = ScoreSize(BenchSize(train=4096, test=0, steps=2000, batch=256, lr=1e-3),
                  BenchSize(train=16, test=0, steps=3000, batch=256, lr=1e-3), 1000, ScoreConfig())
_QUICK = ScoreSize(BenchSize(train=64, test=0, steps=5, batch=32), BenchSize(train=4, test=0, steps=5, batch=32), 16,
                   ScoreConfig(hidden=16, layers=1, levels=3, langevin_steps=2))


@register_perception_bench(
    "score-manifold",
    paper="Pidstrigach, score-based generative models detect manifolds, NeurIPS 2022, arXiv 2206.01018",
    check="samples within 0.05 of the torus in R^8 on average; 16 training points memorised "
          "(samples' distance to the nearest training point <= 0.2 x fresh torus points')",
    ablation="fresh points of the torus (for the nearest-training-point distances)",
)
def bench_score_manifold(quick: bool, seed: int) -> BenchOutcome:
    """Train on many and on few torus points; measure samples against the torus and the training points."""
    size = _QUICK if quick else _FULL
    torus = FlatTorus(seed=seed)
    data = torch.Generator().manual_seed(seed + 1)
    big, few = torus.sample(size.large.train, data), torus.sample(size.small.train, data)
    fresh = torus.sample(size.samples, torch.Generator().manual_seed(seed + 2))
    out = {}
    for name, points, bench in (("large", big, size.large), ("small", few, size.small)):
        model = train_score(points, size.config, steps=bench.steps, batch=bench.batch, lr=bench.lr, seed=seed)
        x = annealed_langevin(model, size.samples, torch.Generator().manual_seed(seed + 3))
        out[name] = {"to_manifold": float(torus.distance(x).mean()),
                     "to_training_point": float(nearest_distance(x, points).mean()),
                     "fresh_to_training_point": float(nearest_distance(fresh, points).mean()),
                     "within_0.05": float((torus.distance(x) < 0.05).float().mean()),
                     "training_points": len(points), "steps": bench.steps}
    large, small = out["large"], out["small"]
    checks = (
        Check("mean distance of samples to the torus", "R^8 distance, lower is better", large["to_manifold"], None,
              "< 0.05", large["to_manifold"] < 0.05),
        Check("memorisation: distance to nearest of few training points", "mean, lower is better",
              small["to_training_point"], small["fresh_to_training_point"], "<= 0.2 x ablation",
              small["to_training_point"] <= 0.2 * small["fresh_to_training_point"]),
    )
    figures = {**out, "manifold": "flat 2-torus, radii 1 and 1, rotated into R^8", "samples": size.samples,
               "sigmas": [size.config.sigma_min, size.config.sigma_max, size.config.levels],
               "langevin_steps": size.config.langevin_steps, "step_eps": size.config.step_eps}
    return BenchOutcome(checks, figures)
