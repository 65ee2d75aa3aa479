"""Temporal Shift Module: a 2-D CNN that sees time by shifting channels between frames.

Lin, Gan and Han, "TSM: Temporal Shift Module for Efficient Video
Understanding", ICCV 2019 (arXiv 1811.08383).  Inside every residual block a
fraction of the channels is shifted one frame back in time and the same
fraction one frame forward (zero-padded at the clip's ends), before the
block's first convolution ("residual shift", Sec. 3.3).  The shift has no
parameters and no multiply-accumulates, so the network with shifts and the one
without have the same parameters and FLOPs; only the former can tell a clip
from the same frames in reverse order, because the TSN consensus (the mean of
the per-frame logits) of the latter is blind to frame order.

The events are CLEVRER-style, drawn as coloured Gaussian blobs in torch
(:func:`event_clips`; rendering CLEVRER videos in pybullet would cost the whole
time budget of the benchmark): an object *entering* the view against one
*exiting* it, and a collision chain *A hits B, then B hits C* against the
reverse chain.  Each odd class is the time reversal of its even class, so the
two have exactly the same distribution of frames.

Shapes (N clips of T frames, C channels, H x W pixels)::

    clips   float [N, T, 3, H, W] in [0, 1]
    labels  int64 [N] in 0..3 (EVENT_CLASSES)
    logits  float [N, 4]
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
from perception.model_stats import count_macs, count_parameters
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = ["EVENT_CLASSES", "TSMConfig", "temporal_shift", "TSMNet", "event_clips"]

EVENT_CLASSES = ("enter", "exit", "chain A->B->C", "chain C->B->A")


@dataclass(frozen=True)
class TSMConfig:
    """Architecture of :class:`TSMNet`.

    Args:
        frames: T, frames per clip.
        width: Channels of the first stage (doubled at each of the two later stages).
        shift_div: 1/shift_div of the channels move back and as many forward (the paper's 8);
            0 turns the shift off (the ablation: the same network, TSN's consensus only).
        classes: Number of output classes.
    """

    frames: int = 8
    width: int = 16
    shift_div: int = 8
    classes: int = len(EVENT_CLASSES)

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.shift_div < 0 or (self.shift_div and self.width < self.shift_div):
            raise ConfigError(f"TSMConfig: shift_div must be 0 or at most width ({self.width}), got {self.shift_div}")


def temporal_shift(x: Tensor, frames: int, shift_div: int) -> Tensor:
    """Shift 1/shift_div of the channels one frame back and as many one frame forward.

    Args:
        x: float [N * T, C, H, W], the frames of N clips in clip-major order.
        frames: T.
        shift_div: 0 returns ``x`` unchanged.

    Returns:
        float [N * T, C, H, W]: channels ``[0, C/d)`` of frame t come from frame t + 1,
        channels ``[C/d, 2C/d)`` from frame t - 1 (zeros past the clip's ends), the rest stay.
    """
    if shift_div == 0:
        return x
    nt, c, h, w = x.shape
    if nt % frames:
        raise StateError(f"temporal_shift: {nt} frames is not a whole number of clips of {frames}")
    fold = c // shift_div
    if fold == 0:  # nothing would move (and empty slices crash torch 2.13's backward)
        raise StateError(f"temporal_shift: {c} channels cannot give 1/{shift_div} of them a shift; use fewer divisions")
    x = x.view(nt // frames, frames, c, h, w)
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # from the future
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]  # from the past
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


class _ShiftBlock(nn.Module):
    """Residual block whose branch starts with the temporal shift."""

    def __init__(self, cin: int, cout: int, stride: int, config: TSMConfig) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        y = temporal_shift(x, self.config.frames, self.config.shift_div)
        y = F.relu(self.bn1(self.conv1(y)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.skip(x))


class TSMNet(nn.Module):
    """A small residual 2-D CNN with temporal shifts, and TSN's average consensus over frames.

    ``forward(clips [N, T, 3, H, W]) -> logits [N, classes]``.
    """

    def __init__(self, config: TSMConfig = TSMConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(
            _ShiftBlock(c, c, 1, config),
            _ShiftBlock(c, 2 * c, 2, config),
            _ShiftBlock(2 * c, 4 * c, 2, config),
        )
        self.head = nn.Linear(4 * c, config.classes)

    def forward(self, clips: Tensor) -> Tensor:
        if clips.dim() != 5 or clips.shape[1] != self.config.frames or clips.shape[2] != 3:
            raise StateError(f"TSMNet expects clips [N, {self.config.frames}, 3, H, W], got {tuple(clips.shape)}")
        n, t = clips.shape[:2]
        x = self.blocks(self.stem(clips.flatten(0, 1)))
        logits = self.head(x.mean((2, 3)))  # [N * T, classes]
        return logits.view(n, t, -1).mean(1)  # TSN consensus


# ---------------------------------------------------------------------- data
def _render_blobs(centres: Tensor, colours: Tensor, size: int, sigma: float) -> Tensor:
    """Blobs at ``centres`` [N, T, K, 2] (pixels, x then y) with ``colours`` [N, K, 3] -> [N, T, 3, S, S]."""
    axis = torch.arange(size, dtype=torch.float32) + 0.5
    dx = axis.view(1, 1, 1, 1, size) - centres[..., 0, None, None]  # [N, T, K, 1, S]
    dy = axis.view(1, 1, 1, size, 1) - centres[..., 1, None, None]  # [N, T, K, S, 1]
    weight = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))  # [N, T, K, S, S]
    image = torch.einsum("ntkyx,nkc->ntcyx", weight, colours)
    return image.clamp(0, 1)


def event_clips(n: int, seed: int, *, frames: int = 8, size: int = 32, noise: float = 0.03) -> tuple[Tensor, Tensor]:
    """``n`` event clips with balanced labels, a pure function of ``seed`` (see the module docstring).

    * enter: one object slides from outside an edge to a point inside the view;
      exit is an enter clip played backwards.
    * chain A->B->C: three objects on a line; A slides into B and stops, then B
      into C, then C slides away (momentum handed on, as in a CLEVRER collision
      chain); chain C->B->A is such a clip played backwards.

    Returns:
        clips float [n, frames, 3, size, size] in [0, 1], labels int64 [n].
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(EVENT_CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    t = torch.linspace(0, 1, frames)
    # object colours: saturated random hues, one set of three per clip
    colours = torch.rand(n, 3, 3, generator=g) * 0.7 + 0.3
    angle = torch.rand(n, generator=g) * 2 * math.pi
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], 1)  # [n, 2]
    centre = size / 2 + (torch.rand(n, 2, generator=g) - 0.5) * size * 0.3
    pos = torch.zeros(n, frames, 3, 2)
    # enter: from outside the view to the inner region, along `direction`
    start = centre - direction * size * 0.8
    enter = start[:, None] + (centre - start)[:, None] * t[None, :, None]  # [n, T, 2]
    # chain: A, B, C spaced `gap` apart on the line; each moves one gap in its third of the clip
    gap = size * 0.12  # about one object diameter: A stops touching B, B stops touching C
    phase = t * 3  # 0..3 over the clip
    offsets = []
    for k in range(3):  # object k starts 2k gaps along the line and moves one gap during phase k..k+1
        moved = (phase - k).clamp(0, 1)
        offsets.append((2 * k - 2.5 + moved) * gap)
    chain = centre[:, None, None] + torch.stack(offsets, 1)[None, :, :, None] * direction[:, None, None]
    is_enter = labels < 2
    pos[:, :, 0] = torch.where(is_enter[:, None, None], enter, chain[:, :, 0])
    pos[:, :, 1:] = torch.where(is_enter[:, None, None, None], torch.full_like(chain[:, :, 1:], -1e3), chain[:, :, 1:])
    reverse = labels % 2 == 1
    pos = torch.where(reverse[:, None, None, None], pos.flip(1), pos)
    clips = _render_blobs(pos, colours, size, sigma=size * 0.07)
    clips = (clips + noise * torch.randn(clips.shape, generator=g)).clamp(0, 1)
    return clips, labels


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=2000, test=1000, steps=600, batch=32)
_QUICK = BenchSize(train=64, test=64, steps=8, batch=8)


def train_tsm(config: TSMConfig, clips: Tensor, labels: Tensor, bench: BenchSize, seed: int) -> TSMNet:
    """Train :class:`TSMNet` on ``clips`` / ``labels`` with the shared loop (batches drawn from ``seed``)."""
    torch.manual_seed(seed)
    model = TSMNet(config)

    def step(idx: Tensor) -> dict[str, Tensor]:
        return {"loss": F.cross_entropy(model(clips[idx]), labels[idx])}

    train_steps(model, step, items=len(labels), steps=bench.steps, batch=bench.batch, lr=bench.lr, seed=seed,
                desc=f"tsm shift_div={config.shift_div}", per_round=50)
    return model.eval()


@torch.no_grad()
def _accuracy(model: TSMNet, clips: Tensor, labels: Tensor) -> float:
    pred = torch.cat([model(c).argmax(1) for c in clips.split(256)])
    return float((pred == labels).float().mean())


@register_perception_bench(
    "tsm",
    paper="Lin et al., TSM, arXiv 1811.08383",
    check="accuracy on order-only event clips >= ablation + 20 points, same params and FLOPs",
    ablation="the same network without temporal shifts",
)
def bench_tsm(quick: bool, seed: int) -> BenchOutcome:
    """Train TSM and its shift-free twin on the same clips, steps and seed; test on clips of another seed."""
    bench = _QUICK if quick else _FULL
    train_x, train_y = event_clips(bench.train, seed=2 * seed)
    test_x, test_y = event_clips(bench.test, seed=2 * seed + 1)
    ours_cfg, plain_cfg = TSMConfig(), TSMConfig(shift_div=0)
    ours = train_tsm(ours_cfg, train_x, train_y, bench, seed)
    plain = train_tsm(plain_cfg, train_x, train_y, bench, seed)
    acc_ours, acc_plain = _accuracy(ours, test_x, test_y), _accuracy(plain, test_x, test_y)
    probe = test_x[:1]
    size = {
        "params": (count_parameters(ours), count_parameters(plain)),
        "macs_per_clip": (count_macs(ours, probe), count_macs(plain, probe)),
    }
    same = size["params"][0] == size["params"][1] and size["macs_per_clip"][0] == size["macs_per_clip"][1]
    checks = (
        Check("clip accuracy", "fraction of held-out clips, higher is better", acc_ours, acc_plain,
              ">= ablation + 0.20", acc_ours >= acc_plain + 0.20),
        Check("same params and MACs", "1 if equal", float(same), None, "== 1", same),
    )
    figures = {
        "params_ours": size["params"][0], "params_ablation": size["params"][1],
        "macs_per_clip_ours": size["macs_per_clip"][0], "macs_per_clip_ablation": size["macs_per_clip"][1],
        "train_clips": bench.train, "test_clips": bench.test, "steps": bench.steps,
        "batch": bench.batch, "frames": ours_cfg.frames, "classes": list(EVENT_CLASSES),
        "data": "synthetic blob clips in torch (train seed 2*seed, test seed 2*seed+1)",
    }
    return BenchOutcome(checks, figures)
