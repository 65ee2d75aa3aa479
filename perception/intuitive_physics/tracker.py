"""Unsupervised tracking from causality and equivariance, and a predictor trained on what it extracts.

Ehrhardt, Monszpart, Mitra and Vedaldi, "Unsupervised Intuitive Physics from
Visual Observations", ACCV 2018 (arXiv 1805.05086).  A position extractor
``Phi`` turns each frame into a probability map over pixels and its expected
position (soft-argmax); no position label is ever used to train it.  Three
losses shape it, on windows of ``W`` frames of a video:

* causality (``L_disc``): with probability 1/2 a window's frames are shuffled
  (a random permutation other than the identity); a small discriminator
  reads the extracted trajectory and says whether it is in causal order.
  ``Phi`` and the discriminator minimise the same cross-entropy, so ``Phi`` is
  pushed towards what *moves* in a lawful way: a point of the static terrain
  gives the same trajectory in any order and cannot help.
* equivariance (``L_siam``): a randomly warped copy of the window (rotation,
  scale, translation) must give the correspondingly warped positions, so the
  output is a point of the image, not an arbitrary code.
* entropy (``L_ent``): the probability maps are kept peaked.

The ablation is the same extractor without the causality term (equivariance and
entropy only).  Tracking is scored after one affine map from the extractor's
coordinates to pixels, fitted by least squares on training videos (the only
labels used, 6 numbers) and applied to held-out videos on new terrains.

The predictor (the paper's second step) is a small MLP trained on the
extracted trajectories alone: the last ``history`` positions -> the next
displacement, rolled out on held-out videos.

Shapes (M frames, S x S pixels, B windows of W frames)::

    frames      float [M, 3, S, S] in [0, 1]
    positions   float [M, 2]  pixel coordinates (x, y), in the extractor's own frame until mapped
    prob        float [M, S, S]  sums to 1 over pixels
    windows     float [B, W, 3, S, S]
"""

from __future__ import annotations

import math
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
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError
from physics.worlds.heightfield import HeightfieldConfig, HeightfieldVideos, heightfield_videos

__all__ = ["TrackerConfig", "PositionExtractor", "CausalityDiscriminator", "random_warps", "warp_points",
           "tracker_losses", "train_tracker", "extract", "fit_affine", "apply_affine", "PositionPredictor",
           "train_predictor", "rollout"]


@dataclass(frozen=True)
class TrackerConfig:
    """The extractor, its losses and the windows it trains on.

    Args:
        width: Channels of the extractor's convolutions.
        window: W, frames per training window (the paper's 5).
        stride: Frames between the window's frames (the ball moves ~0.5 px a frame).
        causality: Weight of the causal/shuffled cross-entropy; 0 is the ablation.
        equivariance: Weight of the warp-consistency loss (positions in units of the image side).
        entropy: Weight of the probability maps' mean entropy (nats).
        entropy_warmup: Fraction of the training steps over which the entropy weight rises linearly from 0,
            so the causality term chooses *what* to track before the maps are made peaked.
        max_rotation: Largest warp rotation (radians).
        max_shift: Largest warp translation (fraction of the image side).
    """

    width: int = 16
    window: int = 5
    stride: int = 3
    causality: float = 10.0
    equivariance: float = 100.0
    entropy: float = 1.0
    entropy_warmup: float = 0.2
    max_rotation: float = 0.35
    max_shift: float = 0.1

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.window < 3 or self.stride < 1 or self.width < 1:
            raise ConfigError(f"TrackerConfig: need window >= 3, stride >= 1, width >= 1, got {self.window}, "
                              f"{self.stride}, {self.width}")
        if min(self.causality, self.equivariance, self.entropy) < 0:
            raise ConfigError("TrackerConfig: loss weights must be >= 0")

    @property
    def span(self) -> int:
        """Frames a window covers."""
        return (self.window - 1) * self.stride + 1


LOGIT_GAIN = 30.0  # initial gain: at 10 the map stayed flat (entropy ~ log S^2, no gradient to sharpen it)


class PositionExtractor(nn.Module):
    """``Phi``: frame -> probability map over pixels -> expected position (soft-argmax).

    ``forward(frames [M, 3, S, S]) -> (positions [M, 2] pixels, prob [M, S, S])``.

    Args:
        width: Channels of the convolutions.
        gain: Initial factor on the logits (learned afterwards); see ``LOGIT_GAIN``.
    """

    def __init__(self, width: int = 16, gain: float = LOGIT_GAIN) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(width, width, 3, 2, 1), nn.ReLU(),  # half resolution keeps it cheap
            nn.Conv2d(width, width, 3, 1, 2, dilation=2), nn.ReLU(),
            nn.Conv2d(width, 1, 1),
        )
        self.log_gain = nn.Parameter(torch.tensor(math.log(gain)))  # how peaked, apart from where

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise StateError(f"PositionExtractor expects frames [M, 3, S, S], got {tuple(frames.shape)}")
        s = frames.shape[-1]
        centred = frames - frames.mean((2, 3), keepdim=True)  # contrast, not the terrain's overall colour
        logits = F.interpolate(self.net(centred), size=(s, s), mode="bilinear", align_corners=False)[:, 0]
        logits = self.log_gain.exp() * logits
        prob = torch.softmax(logits.flatten(1), 1).view_as(logits)
        axis = torch.arange(s, dtype=frames.dtype) + 0.5
        x = (prob.sum(1) * axis).sum(1)
        y = (prob.sum(2) * axis).sum(1)
        return torch.stack([x, y], 1), prob


SCALE_FLOOR = 1e-3  # pixels: trajectories are divided by their spread, never by less than this


class CausalityDiscriminator(nn.Module):
    """Trajectory [B, W, 2] (pixels) -> logit [B] that its frames are in causal order."""

    def __init__(self, window: int, size: int, hidden: int = 64) -> None:
        super().__init__()
        self.size = size
        self.net = nn.Sequential(nn.Linear(2 * window, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, trajectory: Tensor) -> Tensor:
        centred = trajectory - trajectory.mean(1, keepdim=True)
        # scale-free: the shape of the path, however small, so a broad early map's faint pull towards
        # the moving ball already tells the order (and gives Phi a gradient towards it)
        rms = centred.pow(2).sum(-1).mean(1).add(SCALE_FLOOR**2).sqrt()
        return self.net((centred / rms[:, None, None]).flatten(1))[:, 0]


def random_warps(n: int, config: TrackerConfig, generator: torch.Generator) -> Tensor:
    """``n`` random similarity warps as ``grid_sample`` matrices [n, 2, 3] (output -> input, normalised)."""
    angle = (2 * torch.rand(n, generator=generator) - 1) * config.max_rotation
    scale = 1 + 0.1 * (2 * torch.rand(n, generator=generator) - 1)
    shift = (2 * torch.rand(n, 2, generator=generator) - 1) * 2 * config.max_shift  # normalised units span 2
    c, s = torch.cos(angle) * scale, torch.sin(angle) * scale
    return torch.stack([torch.stack([c, -s, shift[:, 0]], 1), torch.stack([s, c, shift[:, 1]], 1)], 1)


def warp_points(points: Tensor, theta: Tensor, size: int) -> Tensor:
    """Where pixels ``points`` [n, ..., 2] of an image land in ``grid_sample(image, theta)`` (same shape)."""
    a, b = theta[:, :, :2], theta[:, :, 2]
    flat = points.reshape(len(points), -1, 2)
    u_in = 2 * flat / size - 1  # normalised input coordinates (align_corners=False)
    u_out = torch.linalg.solve(a, (u_in - b[:, None]).transpose(1, 2)).transpose(1, 2)
    return ((u_out + 1) * size / 2).reshape(points.shape)


def _shuffles(n: int, window: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per window: a frame order [n, W] and whether it is the causal one [n] (half are shuffled)."""
    order = torch.arange(window).repeat(n, 1)
    shuffled = torch.rand(n, generator=generator) < 0.5
    for i in torch.nonzero(shuffled)[:, 0].tolist():
        while True:  # a permutation other than the identity
            perm = torch.randperm(window, generator=generator)
            if not torch.equal(perm, torch.arange(window)):
                break
        order[i] = perm
    return order, ~shuffled


def tracker_losses(phi: PositionExtractor, disc: CausalityDiscriminator, windows: Tensor, config: TrackerConfig,
                   generator: torch.Generator, entropy_weight: float | None = None) -> dict[str, Tensor]:
    """The three losses on ``windows`` [B, W, 3, S, S]; ``loss`` is their weighted sum.

    Args:
        entropy_weight: Overrides ``config.entropy`` (the training loop's warm-up passes it).
    """
    entropy_weight = config.entropy if entropy_weight is None else entropy_weight
    b, w, _, s, _ = windows.shape
    pos, prob = phi(windows.flatten(0, 1))
    pos = pos.view(b, w, 2)
    theta = random_warps(b, config, generator)
    grid = F.affine_grid(theta.repeat_interleave(w, 0), [b * w, 3, s, s], align_corners=False)
    warped = F.grid_sample(windows.flatten(0, 1), grid, padding_mode="border", align_corners=False)
    pos_w, prob_w = phi(warped)
    siam = ((pos_w.view(b, w, 2) - warp_points(pos, theta, s)) / s).pow(2).sum(-1).mean()
    entropy = -(torch.cat([prob, prob_w]).clamp_min(1e-12).log() * torch.cat([prob, prob_w])).flatten(1).sum(1).mean()
    out = {"siam": siam, "entropy": entropy}
    loss = config.equivariance * siam + entropy_weight * entropy
    if config.causality > 0:  # both branches' trajectories, in the same (possibly shuffled) order
        order, causal = _shuffles(b, w, generator)
        index = order[..., None].expand(-1, -1, 2)
        paths = torch.cat([torch.gather(pos, 1, index), torch.gather(pos_w.view(b, w, 2), 1, index)])
        disc_loss = F.binary_cross_entropy_with_logits(disc(paths), causal.float().repeat(2))
        out["disc"] = disc_loss
        loss = loss + config.causality * disc_loss
    out["loss"] = loss
    return out


def _windows(frames: Tensor, items: Tensor, config: TrackerConfig) -> Tensor:
    """Training item ``i`` = (video ``i // starts``, start ``i % starts``) -> windows [B, W, 3, S, S]."""
    starts = frames.shape[1] - config.span + 1
    video, start = items // starts, items % starts
    idx = start[:, None] + config.stride * torch.arange(config.window)
    return frames[video[:, None], idx]


def train_tracker(frames: Tensor, config: TrackerConfig, bench: BenchSize, seed: int, per_round: int = 50
                  ) -> tuple[PositionExtractor, list[dict]]:
    """Train ``Phi`` (and the discriminator) on videos ``frames`` [N, T, 3, S, S] without labels.

    Returns:
        The extractor (eval mode) and the loop's history (one record per ``per_round`` steps).
    """
    if frames.shape[1] < config.span:
        raise ConfigError(f"train_tracker: videos of {frames.shape[1]} frames are shorter than a window "
                          f"({config.span} frames)")
    torch.manual_seed(seed)
    phi = PositionExtractor(config.width)
    disc = CausalityDiscriminator(config.window, frames.shape[-1])
    both = nn.ModuleDict({"phi": phi, "disc": disc})
    g = torch.Generator().manual_seed(seed + 7919)  # shuffles and warps
    starts = frames.shape[1] - config.span + 1

    done = [0]
    warmup = config.entropy_warmup * bench.steps

    def step(idx: Tensor) -> dict[str, Tensor]:
        weight = config.entropy * (min(1.0, done[0] / warmup) if warmup > 0 else 1.0)
        done[0] += 1
        return tracker_losses(phi, disc, _windows(frames, idx, config), config, g, weight)

    history = train_steps(both, step, items=len(frames) * starts, steps=bench.steps, batch=bench.batch,
                          lr=bench.lr, seed=seed, desc=f"tracker causality={config.causality}", per_round=per_round)
    return phi.eval(), history


@torch.no_grad()
def extract(phi: PositionExtractor, frames: Tensor) -> Tensor:
    """Positions of every frame of ``frames`` [N, T, 3, S, S] -> [N, T, 2] (the extractor's coordinates)."""
    flat = frames.flatten(0, 1)
    return torch.cat([phi(chunk)[0] for chunk in flat.split(512)]).view(*frames.shape[:2], 2)


def fit_affine(source: Tensor, target: Tensor) -> Tensor:
    """Least-squares affine map [3, 2] with ``[source, 1] @ A ~ target`` (both [..., 2])."""
    x = torch.cat([source.reshape(-1, 2), torch.ones(source.numel() // 2, 1)], 1).double()
    return torch.linalg.lstsq(x, target.reshape(-1, 2).double()).solution.float()


def apply_affine(points: Tensor, affine: Tensor) -> Tensor:
    """``points`` [..., 2] through the map of :func:`fit_affine`."""
    return points @ affine[:2] + affine[2]


class PositionPredictor(nn.Module):
    """The last ``history`` positions [B, H, 2] (pixels) -> the next displacement [B, 2] (pixels)."""

    def __init__(self, history: int = 4, hidden: int = 64) -> None:
        super().__init__()
        self.history = history
        self.net = nn.Sequential(nn.Linear(2 * history - 2 + 2, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, past: Tensor) -> Tensor:
        vel = past[:, 1:] - past[:, :-1]  # [B, H-1, 2]
        last = vel[:, -1]
        centre = (past[:, -1] - 16.0) / 16.0  # where in the box (walls), roughly in [-1, 1] on a 32 px image
        return last + self.net(torch.cat([vel.flatten(1), centre], 1))


def train_predictor(tracks: Tensor, history: int, bench: BenchSize, seed: int) -> PositionPredictor:
    """Fit :class:`PositionPredictor` to trajectories ``tracks`` [N, T, 2] (extracted, no labels)."""
    torch.manual_seed(seed)
    model = PositionPredictor(history)
    per_video = tracks.shape[1] - history

    def step(idx: Tensor) -> dict[str, Tensor]:
        video, start = idx // per_video, idx % per_video
        span = start[:, None] + torch.arange(history + 1)
        seq = tracks[video[:, None], span]
        pred = model(seq[:, :history])
        return {"loss": (pred - (seq[:, history] - seq[:, history - 1])).pow(2).sum(-1).mean()}

    train_steps(model, step, items=len(tracks) * per_video, steps=bench.steps, batch=bench.batch, lr=bench.lr,
                seed=seed, desc="tracker predictor", per_round=100)
    return model.eval()


@torch.no_grad()
def rollout(model: PositionPredictor, past: Tensor, steps: int) -> Tensor:
    """Roll ``model`` ``steps`` frames on from ``past`` [B, H, 2] -> [B, steps, 2]."""
    seq, out = past.clone(), []
    for _ in range(steps):
        nxt = seq[:, -1] + model(seq)
        out.append(nxt)
        seq = torch.cat([seq[:, 1:], nxt[:, None]], 1)
    return torch.stack(out, 1)


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=300, test=100, steps=800, batch=8, lr=5e-3)
_QUICK = BenchSize(train=6, test=4, steps=3, batch=2, lr=2e-3)
_FRAMES = 24  # frames per video: three windows' spans and the predictor's horizon
_HISTORY, _HORIZON = 4, 10
_WORLD = HeightfieldConfig(size=32)


def _tracking(phi: PositionExtractor, train: HeightfieldVideos, test: HeightfieldVideos, calib: int
              ) -> tuple[float, Tensor, Tensor]:
    """Median held-out error (px) after the affine map fitted on ``calib`` training videos; the map; test tracks."""
    affine = fit_affine(extract(phi, train.frames[:calib]), train.positions[:calib])
    mapped = apply_affine(extract(phi, test.frames), affine)
    return float((mapped - test.positions).norm(dim=-1).median()), affine, mapped


@register_perception_bench(
    "intuitive-physics",
    paper="Ehrhardt et al., Unsupervised intuitive physics from visual observations, ACCV 2018, arXiv 1805.05086",
    check="median tracking error < 3 px (32 px frames, after an affine map fitted on training videos)",
    ablation="the same extractor without the causality term (equivariance and entropy only)",
)
def bench_intuitive_physics(quick: bool, seed: int) -> BenchOutcome:
    """Train the extractor with and without causality on unlabelled videos; track on videos of new terrains."""
    bench = _QUICK if quick else _FULL
    frames = _FRAMES if not quick else TrackerConfig().span
    train = heightfield_videos(bench.train, frames, 2 * seed, _WORLD)
    test = heightfield_videos(bench.test, frames, 2 * seed + 1, _WORLD)
    calib = min(50, bench.train)
    ours_cfg, abl_cfg = TrackerConfig(), TrackerConfig(causality=0.0)
    phi, hist = train_tracker(train.frames, ours_cfg, bench, seed)
    phi_abl, hist_abl = train_tracker(train.frames, abl_cfg, bench, seed)
    err, affine, mapped = _tracking(phi, train, test, calib)
    err_abl, _, _ = _tracking(phi_abl, train, test, calib)
    torch.manual_seed(seed)
    err_untrained, _, _ = _tracking(PositionExtractor(ours_cfg.width).eval(), train, test, calib)

    # the predictor: trained on the extracted (unlabelled) tracks of the training videos
    pred_bench = BenchSize(train=0, test=0, steps=3 if quick else 1500, batch=64, lr=2e-3)
    tracks = apply_affine(extract(phi, train.frames), affine)
    history, horizon = (_HISTORY, min(_HORIZON, frames - _HISTORY)) if not quick else (3, 2)
    predictor = train_predictor(tracks, history, pred_bench, seed)
    past = mapped[:, :history]
    future = test.positions[:, history:history + horizon]
    pred_err = (rollout(predictor, past, horizon) - future).norm(dim=-1)
    cv = past[:, -1:] + (past[:, -1:] - past[:, -2:-1]) * torch.arange(1, horizon + 1).view(1, -1, 1)
    cv_err = (cv - future).norm(dim=-1)

    checks = (
        Check("median tracking error (px)", "pixels on 32 px held-out frames, lower is better", err, err_abl,
              "< 3.0", err < 3.0),
    )
    figures = {
        "untrained_extractor_error_px": err_untrained,
        "affine_map": affine, "calibration_videos": calib,
        "train_videos": bench.train, "test_videos": bench.test, "frames": frames, "steps": bench.steps,
        "batch_windows": bench.batch, "window": ours_cfg.window, "window_stride": ours_cfg.stride,
        "final_losses": {"ours": hist[-1] if hist else None, "ablation": hist_abl[-1] if hist_abl else None},
        "predictor_history": history, "predictor_horizon": horizon,
        "predictor_error_px_at_horizon_median": float(pred_err[:, -1].median()),
        "constant_velocity_error_px_at_horizon_median": float(cv_err[:, -1].median()),
        "predictor_note": "trained on extracted tracks only; both start from the extracted first positions",
        "data": "heightfield videos, 32 px (train seed 2*seed, test seed 2*seed+1, new terrains)",
        "mean_abs_px_per_frame": float((test.positions[:, 1:] - test.positions[:, :-1]).norm(dim=-1).mean()),
    }
    return BenchOutcome(checks, figures)
