"""Long-term extrapolation with uncertainty on heightfields never seen in training.

Ehrhardt, Monszpart, Mitra and Vedaldi, "Taking visual motion prediction to
new heightfields", Computer Vision and Image Understanding, 2019.  The network sees the first ``K`` frames of a ball rolling on a terrain it never
saw and predicts the ball's position for the next ``H`` frames, each as a
Gaussian with a mean and a per-axis variance:

* a position reader (:class:`~perception.intuitive_physics.tracker.PositionExtractor`,
  trained here with position labels) finds the ball in each observed frame;
* a terrain encoder turns the first frame into a feature map (the colours encode
  height, so slopes are readable);
* a GRU first reads the observed positions, then propagates: at each step it
  samples the terrain features at the current mean position (bilinear), updates
  the velocity, and adds a non-negative increment to the variance, so the
  uncertainty can only grow with the horizon.

Training minimises the Gaussian negative log-likelihood of the true positions
along the network's own rollout (no teacher forcing), so the variances describe
the errors the rollout makes.  One scalar ``s`` then rescales every variance,
fitted in closed form on validation videos of new terrains (``s^2`` = mean of
``err^2 / var``), as temperature scaling does for classifiers; the benchmark
reports coverage before and after it.

Shapes (N videos, K observed frames, H predicted steps, S x S pixels)::

    observed   float [N, K, 3, S, S] in [0, 1]
    mean       float [N, H, 2]  pixel coordinates of frames K .. K+H-1
    var        float [N, H, 2]  pixels^2, per axis
    read       float [N, K, 2]  positions read from the observed frames
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.benchmark import (
    BenchOutcome,
    BenchSize,
    Check,
    register_perception_bench,
    train_steps,
)
from perception.intuitive_physics.tracker import PositionExtractor
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError
from physics.worlds.heightfield import HeightfieldConfig, HeightfieldVideos, heightfield_videos

__all__ = ["ExtrapolationConfig", "HeightfieldExtrapolator", "extrapolation_loss", "train_extrapolator",
           "predict", "fit_variance_scale", "coverage"]

READER_GAIN = 10.0  # the reader is trained with labels: its map needs no sharp start (the benchmark ran with 10)
COVERED_SIGMAS = 2.0  # "2-sigma coverage": |error| <= 2 standard deviations, per axis (95.4% if Gaussian)


@dataclass(frozen=True)
class ExtrapolationConfig:
    """Architecture and horizon of :class:`HeightfieldExtrapolator`.

    Args:
        observed: K, frames the network sees.
        horizon: H, future frames it predicts.
        width: Channels of the reader and of the terrain encoder.
        hidden: GRU state size.
        terrain: Whether the propagator reads the terrain features (False: positions only).
    """

    observed: int = 4
    horizon: int = 40
    width: int = 16
    hidden: int = 96
    terrain: bool = True

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.observed < 2 or self.horizon < 1 or self.width < 1 or self.hidden < 1:
            raise ConfigError(f"ExtrapolationConfig: need observed >= 2, horizon >= 1 and positive sizes, got "
                              f"{self.observed}, {self.horizon}, {self.width}, {self.hidden}")


class HeightfieldExtrapolator(nn.Module):
    """``forward(observed [N, K, 3, S, S]) -> (mean [N, H, 2], var [N, H, 2], read [N, K, 2])`` (pixels)."""

    def __init__(self, config: ExtrapolationConfig = ExtrapolationConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.reader = PositionExtractor(w, gain=READER_GAIN)
        self.terrain = nn.Sequential(
            nn.Conv2d(3, w, 3, 1, 1), nn.ReLU(), nn.Conv2d(w, w, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(w, w, 3, 1, 2, dilation=2), nn.ReLU(), nn.Conv2d(w, w, 1),
        )
        feat = w if config.terrain else 0
        self.observe = nn.GRUCell(4, config.hidden)
        self.propagate = nn.GRUCell(feat + 4, config.hidden)
        self.head = nn.Linear(config.hidden, 4)  # velocity change (2), variance increment (2)

    def forward(self, observed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cfg = self.config
        if observed.dim() != 5 or observed.shape[1] != cfg.observed or observed.shape[2] != 3:
            raise StateError(f"HeightfieldExtrapolator expects observed frames [N, {cfg.observed}, 3, S, S], "
                             f"got {tuple(observed.shape)}")
        n, k, _, s, _ = observed.shape
        read = self.reader(observed.flatten(0, 1))[0].view(n, k, 2)
        features = self.terrain(observed[:, 0]) if cfg.terrain else None
        h = observed.new_zeros(n, cfg.hidden)
        vel = torch.zeros_like(read[:, 0])
        for t in range(k):  # read the observed track
            vel = read[:, t] - read[:, t - 1] if t else vel
            h = self.observe(torch.cat([self._where(read[:, t], s), vel], 1), h)
        pos, var = read[:, -1], observed.new_zeros(n, 2)
        means, variances = [], []
        for _ in range(cfg.horizon):
            inputs = [self._where(pos, s), vel]
            if features is not None:
                grid = (2 * pos / s - 1).view(n, 1, 1, 2)  # normalised (x, y), align_corners=False
                inputs.insert(0, F.grid_sample(features, grid, align_corners=False).view(n, -1))
            h = self.propagate(torch.cat(inputs, 1), h)
            out = self.head(h)
            vel = vel + 0.1 * out[:, :2]  # pixels per frame; small steps keep the rollout smooth at the start
            pos = pos + vel
            var = var + F.softplus(out[:, 2:]) + 1e-4
            means.append(pos)
            variances.append(var)
        return torch.stack(means, 1), torch.stack(variances, 1), read

    @staticmethod
    def _where(pos: Tensor, size: int) -> Tensor:
        return 2 * pos / size - 1  # the walls sit at -1 and 1


def extrapolation_loss(model: HeightfieldExtrapolator, observed: Tensor, positions: Tensor) -> dict[str, Tensor]:
    """Gaussian NLL of the true future ``positions`` [N, K+H, 2] plus the reader's squared error (pixels)."""
    k, horizon = model.config.observed, model.config.horizon
    mean, var, read = model(observed)
    future = positions[:, k:k + horizon]
    nll = 0.5 * (torch.log(var) + (mean - future) ** 2 / var).mean()
    read_err = (read - positions[:, :k]).pow(2).sum(-1).mean()
    return {"loss": nll + read_err, "nll": nll, "read_mse": read_err}


def train_extrapolator(data: HeightfieldVideos, config: ExtrapolationConfig, bench: BenchSize, seed: int,
                       per_round: int = 100) -> tuple[HeightfieldExtrapolator, list[dict]]:
    """Train on ``data`` (frames rendered for the first K, positions for K + H frames).

    Returns:
        The model (eval mode) and the loop's history (one record per ``per_round`` steps).
    """
    if data.frames.shape[1] < config.observed or data.positions.shape[1] < config.observed + config.horizon:
        raise ConfigError(f"train_extrapolator: need {config.observed} rendered and {config.observed + config.horizon}"
                          f" simulated frames, got {data.frames.shape[1]} and {data.positions.shape[1]}")
    torch.manual_seed(seed)
    model = HeightfieldExtrapolator(config)

    def step(idx: Tensor) -> dict[str, Tensor]:
        return extrapolation_loss(model, data.frames[idx, :config.observed], data.positions[idx])

    history = train_steps(model, step, items=len(data.positions), steps=bench.steps, batch=bench.batch,
                          lr=bench.lr, seed=seed, desc=f"extrapolator terrain={config.terrain}", per_round=per_round)
    return model.eval(), history


@torch.no_grad()
def predict(model: HeightfieldExtrapolator, observed: Tensor) -> tuple[Tensor, Tensor]:
    """Means and variances [N, H, 2] for many videos, in chunks."""
    out = [model(chunk)[:2] for chunk in observed.split(256)]
    return torch.cat([m for m, _ in out]), torch.cat([v for _, v in out])


def fit_variance_scale(mean: Tensor, var: Tensor, truth: Tensor) -> float:
    """The scalar ``s`` maximising the Gaussian likelihood of ``truth`` under ``(mean, s^2 var)``."""
    return float(((truth - mean) ** 2 / var).mean().sqrt())


def coverage(mean: Tensor, var: Tensor, truth: Tensor) -> Tensor:
    """Fraction of axis-wise errors within ``COVERED_SIGMAS`` standard deviations, per step -> [H]."""
    inside = (truth - mean).abs() <= COVERED_SIGMAS * var.sqrt()
    return inside.float().mean((0, 2))


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=2000, test=500, steps=1500, batch=32, lr=2e-3)
_QUICK = BenchSize(train=8, test=4, steps=2, batch=4, lr=2e-3)
_VAL = 300  # validation videos (new terrains, training seed's stream) for the variance scale
_STEPS_CHECKED = (10, 20, 40)
_WORLD = HeightfieldConfig(size=32)


@register_perception_bench(
    "heightfield-extrapolation",
    paper="Ehrhardt et al., Taking visual motion prediction to new heightfields, CVIU 2019",
    check="2-sigma coverage in [0.85, 0.99] at steps 10, 20, 40; step-40 error < 0.5 x constant velocity",
    ablation="constant velocity from the last two true observed positions",
)
def bench_heightfield_extrapolation(quick: bool, seed: int) -> BenchOutcome:
    """Train on videos of some terrains; calibrate on others; test on a third set from another seed."""
    bench = _QUICK if quick else _FULL
    cfg = ExtrapolationConfig(horizon=3) if quick else ExtrapolationConfig()
    frames = cfg.observed + cfg.horizon
    train = heightfield_videos(bench.train, frames, 3 * seed, _WORLD, rendered=cfg.observed)
    val = heightfield_videos(4 if quick else _VAL, frames, 3 * seed + 1, _WORLD, rendered=cfg.observed)
    test = heightfield_videos(bench.test, frames, 3 * seed + 2, _WORLD, rendered=cfg.observed)
    model, history = train_extrapolator(train, cfg, bench, seed)

    k = cfg.observed
    v_mean, v_var = predict(model, val.frames)
    scale = fit_variance_scale(v_mean, v_var, val.positions[:, k:])
    mean, var = predict(model, test.frames)
    truth = test.positions[:, k:]
    raw_cov, cov = coverage(mean, var, truth), coverage(mean, scale**2 * var, truth)
    err = (mean - truth).norm(dim=-1)  # [N, H]
    last = test.positions[:, k - 1:k]
    cv = last + (last - test.positions[:, k - 2:k - 1]) * torch.arange(1, cfg.horizon + 1).view(1, -1, 1)
    cv_err = (cv - truth).norm(dim=-1)

    steps = [t for t in _STEPS_CHECKED if t <= cfg.horizon] or [cfg.horizon]
    checks = [
        Check(f"2-sigma coverage at step {t}", "fraction of held-out axis errors within 2 sigma",
              float(cov[t - 1]), None, "in [0.85, 0.99]", 0.85 <= float(cov[t - 1]) <= 0.99)
        for t in steps
    ]
    t_last = steps[-1]
    e, e_cv = float(err[:, t_last - 1].mean()), float(cv_err[:, t_last - 1].mean())
    checks.append(Check(f"mean position error at step {t_last} (px)", "pixels on 32 px frames, lower is better",
                        e, e_cv, "< 0.5 x ablation", e < 0.5 * e_cv))
    figures = {
        "coverage_before_scale": {str(t): float(raw_cov[t - 1]) for t in steps},
        "variance_scale": scale,
        "median_error_px": {str(t): float(err[:, t - 1].median()) for t in steps},
        "constant_velocity_median_error_px": {str(t): float(cv_err[:, t - 1].median()) for t in steps},
        "mean_error_px": {str(t): float(err[:, t - 1].mean()) for t in steps},
        "constant_velocity_mean_error_px": {str(t): float(cv_err[:, t - 1].mean()) for t in steps},
        "reader_error_px_median": float((model_read(model, test.frames) - test.positions[:, :k]).norm(dim=-1).median()),
        "final_loss": history[-1] if history else None,
        "train_videos": bench.train, "val_videos": len(val.positions), "test_videos": bench.test,
        "steps": bench.steps, "batch": bench.batch, "observed": k, "horizon": cfg.horizon,
        "data": "heightfield videos, 32 px, every video its own terrain (train 3*seed, val 3*seed+1, test 3*seed+2)",
    }
    return BenchOutcome(tuple(checks), figures)


@torch.no_grad()
def model_read(model: HeightfieldExtrapolator, observed: Tensor) -> Tensor:
    """The reader's positions [N, K, 2] of the observed frames."""
    return torch.cat([model(chunk)[2] for chunk in observed.split(256)])
