"""Once-for-All: one network trained so that its sub-networks (kernel, depth, width, resolution) work without retraining.

Cai, Gan, Wang, Zhang and Han, "Once-for-All: Train One Network and Specialize
it for Efficient Deployment", ICLR 2020 (arXiv 1908.09791).  A supernet of
inverted-residual blocks (1x1 expand, k x k depthwise, 1x1 project) is trained
by **progressive shrinking**: first the largest network, then, while sampling
a sub-network for every batch, elastic kernel sizes (7 -> 5 -> 3: the smaller
kernel is the centre of the larger one through a learned per-layer transform),
elastic depth (each stage keeps its first ``d`` blocks), elastic width (the
expand ratio; the hidden channels are first sorted by importance, the L1 norm
of their projection weights, so that every width keeps the most important
ones), with the input resolution sampled throughout.  Each sampled sub-network
also learns from the largest one's soft predictions (knowledge distillation,
as in the paper).  A sub-network is then *selected*: the supernet runs with its
settings, after its batch-norm statistics are re-estimated on a few training
batches (no weight changes).

The benchmark classifies CLEVR object crops (shape, colour and material heads,
RGB + mask) and compares the smallest and largest sub-networks with the same
architectures trained alone for as many steps as the whole schedule.

Shapes (K crops)::

    crops   float [K, 4, S, S]  resized to the sub-network's resolution
    logits  float [K, 13]       shape 3, colour 8, material 2 (perception.training_methods.curveball.CROP_HEADS)
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace

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
from perception.training_methods.curveball import CROP_HEADS, attribute_loss
from physics.config_types import check_field_types
from physics.errors import ConfigError

__all__ = ["OFAConfig", "SubNet", "OFANet", "ShrinkSchedule", "progressive_shrinking", "recalibrate_batchnorm", "largest", "smallest"]


@dataclass(frozen=True)
class OFAConfig:
    """The supernet and the choices of each elastic dimension (largest last)."""

    stem: int = 8
    widths: tuple[int, ...] = (16, 24, 32)  # output channels of the three stages (each starts with stride 2)
    kernels: tuple[int, ...] = (3, 5, 7)
    depths: tuple[int, ...] = (1, 2, 3)
    expands: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = (12, 16)

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        for name in ("kernels", "depths", "expands", "resolutions"):
            values = getattr(self, name)
            if not values or list(values) != sorted(set(values)) or min(values) < 1:
                raise ConfigError(f"OFAConfig.{name} must be distinct positive values in increasing order, got {values}")
        if any(k % 2 == 0 for k in self.kernels):
            raise ConfigError(f"OFAConfig.kernels must be odd, got {self.kernels}")


@dataclass(frozen=True)
class SubNet:
    """A sub-network: one kernel and expand ratio per block (stage-major), a depth per stage, the resolution."""

    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    depths: tuple[int, ...]
    resolution: int


def largest(config: OFAConfig) -> SubNet:
    n = len(config.widths) * config.depths[-1]
    return SubNet((config.kernels[-1],) * n, (config.expands[-1],) * n, (config.depths[-1],) * len(config.widths),
                  config.resolutions[-1])


def smallest(config: OFAConfig) -> SubNet:
    n = len(config.widths) * config.depths[-1]
    return SubNet((config.kernels[0],) * n, (config.expands[0],) * n, (config.depths[0],) * len(config.widths),
                  config.resolutions[0])


class _ElasticBlock(nn.Module):
    """Inverted residual block with elastic kernel (centre + transform) and elastic hidden width."""

    def __init__(self, cin: int, cout: int, stride: int, config: OFAConfig) -> None:
        super().__init__()
        hidden = cin * config.expands[-1]
        self.cin, self.stride, self.kernels = cin, stride, config.kernels
        self.expand = nn.Conv2d(cin, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.depthwise = nn.Parameter(torch.randn(hidden, 1, config.kernels[-1], config.kernels[-1]) * 0.1)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        # kernel transforms: from each size to the next smaller one, identity at the start (Sec. 3.2)
        self.transforms = nn.ParameterList(nn.Parameter(torch.eye(k * k)) for k in config.kernels[:-1])

    def kernel(self, k: int, hidden: int) -> Tensor:
        w = self.depthwise[:hidden]
        for i in range(len(self.kernels) - 1, 0, -1):
            if self.kernels[i] == k:
                break
            small = self.kernels[i - 1]
            cut = (w.shape[-1] - small) // 2
            centre = w[..., cut:cut + small, cut:cut + small].reshape(hidden, small * small)
            w = (centre @ self.transforms[i - 1]).view(hidden, 1, small, small)
        return w

    def forward(self, x: Tensor, k: int, expand: int) -> Tensor:
        h = self.cin * expand
        y = F.relu(_bn(self.bn1, F.conv2d(x, self.expand.weight[:h]), h))
        y = F.conv2d(y, self.kernel(k, h), stride=self.stride, padding=k // 2, groups=h)
        y = F.relu(_bn(self.bn2, y, h))
        y = self.bn3(F.conv2d(y, self.project.weight[:, :h]))
        return x + y if self.stride == 1 and x.shape == y.shape else y

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Reorder the hidden channels by importance (L1 norm of their projection weights), largest first."""
        order = self.project.weight.abs().sum((0, 2, 3)).argsort(descending=True)
        self.expand.weight.copy_(self.expand.weight[order])
        self.depthwise.copy_(self.depthwise[order])
        self.project.weight.copy_(self.project.weight[:, order])
        for bn in (self.bn1, self.bn2):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[order])


def _bn(bn: nn.BatchNorm2d, x: Tensor, channels: int) -> Tensor:
    """Batch norm over the first ``channels`` of ``bn`` (the active width)."""
    return F.batch_norm(x, bn.running_mean[:channels], bn.running_var[:channels], bn.weight[:channels],
                        bn.bias[:channels], bn.training, bn.momentum, bn.eps)


class OFANet(nn.Module):
    """The supernet: ``forward(crops [K, 4, S, S], sub) -> logits [K, 13]`` (crops resized to ``sub.resolution``)."""

    def __init__(self, config: OFAConfig = OFAConfig()) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(nn.Conv2d(4, config.stem, 3, padding=1, bias=False), nn.BatchNorm2d(config.stem),
                                  nn.ReLU())
        blocks, cin = [], config.stem
        for width in config.widths:
            for b in range(config.depths[-1]):
                blocks.append(_ElasticBlock(cin, width, 2 if b == 0 else 1, config))
                cin = width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(cin, sum(CROP_HEADS.values()))

    def forward(self, crops: Tensor, sub: SubNet | None = None) -> Tensor:
        sub = sub or largest(self.config)
        x = crops if crops.shape[-1] == sub.resolution else F.interpolate(
            crops, size=(sub.resolution, sub.resolution), mode="bilinear", align_corners=False)
        x = self.stem(x)
        per_stage = self.config.depths[-1]
        for i, block in enumerate(self.blocks):
            if i % per_stage < sub.depths[i // per_stage]:
                x = block(x, sub.kernels[i], sub.expands[i])
        return self.head(x.mean((2, 3)))

    def sample(self, rng: random.Random, kernel: bool, depth: bool, width: bool) -> SubNet:
        """A random sub-network over the dimensions made elastic so far (others at their largest)."""
        c, big = self.config, largest(self.config)
        n = len(self.blocks)
        return SubNet(
            tuple(rng.choice(c.kernels) for _ in range(n)) if kernel else big.kernels,
            tuple(rng.choice(c.expands) for _ in range(n)) if width else big.expands,
            tuple(rng.choice(c.depths) for _ in c.widths) if depth else big.depths,
            rng.choice(c.resolutions),
        )

    def minimum(self, kernel: bool, depth: bool, width: bool) -> SubNet:
        """The smallest sub-network over the dimensions made elastic so far (others at their largest)."""
        small, big = smallest(self.config), largest(self.config)
        return SubNet(small.kernels if kernel else big.kernels, small.expands if width else big.expands,
                      small.depths if depth else big.depths, small.resolution)


@torch.no_grad()
def recalibrate_batchnorm(model: OFANet, sub: SubNet, crops: Tensor, batches: int = 10, batch: int = 64) -> None:
    """Re-estimate the batch-norm statistics for ``sub`` on training crops (cumulative average; no weight changes)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
    model.train()
    g = torch.Generator().manual_seed(0)
    for i in range(batches):
        for m in norms:
            m.momentum = 1.0 / (i + 1)  # the running statistics become the mean over the batches seen
        model(crops[torch.randint(len(crops), (batch,), generator=g)], sub)
    for m in norms:
        m.momentum = 0.1
    model.eval()


@dataclass(frozen=True)
class ShrinkSchedule:
    """Steps of each phase of progressive shrinking."""

    full: int
    kernel: int
    depth: int
    width: int

    @property
    def total(self) -> int:
        return self.full + self.kernel + self.depth + self.width


def progressive_shrinking(model: OFANet, crops: Tensor, labels: dict[str, Tensor], schedule: ShrinkSchedule, *,
                          batch: int, lr: float, seed: int, distill: float = 1.0, sandwich: bool = True) -> OFANet:
    """Train the supernet: largest network, then elastic kernel, depth and width (resolution sampled throughout).

    With ``sandwich`` every step of the elastic phases also trains the smallest sub-network over the
    dimensions made elastic so far (uniform sampling alone almost never draws it).
    """
    rng = random.Random(seed)
    teacher: OFANet | None = None

    def phase(steps: int, kernel: bool, depth: bool, width: bool, tag: str) -> None:
        def step(idx: Tensor) -> dict[str, Tensor]:
            subs = [model.sample(rng, kernel, depth, width)]
            if sandwich and teacher is not None:
                subs.append(model.minimum(kernel, depth, width))
            target = {a: v[idx] for a, v in labels.items()}
            soft = None
            if teacher is not None and distill > 0:
                with torch.no_grad():
                    soft = teacher(crops[idx])
            loss = torch.zeros(())
            for sub in subs:
                logits = model(crops[idx], sub)
                loss = loss + attribute_loss(logits, target)
                if soft is not None:
                    loss = loss + distill * _soft_loss(logits, soft)
            return {"loss": loss}

        if steps:
            train_steps(model, step, items=len(crops), steps=steps, batch=batch, lr=lr, seed=seed,
                        desc=f"once-for-all {tag}")

    phase(schedule.full, False, False, False, "full")
    teacher = _frozen_copy(model)
    phase(schedule.kernel, True, False, False, "kernel")
    phase(schedule.depth, True, True, False, "depth")
    for block in model.blocks:
        block.sort_channels()
    phase(schedule.width, True, True, True, "width")
    return model.eval()


def _frozen_copy(model: OFANet) -> OFANet:
    teacher = OFANet(model.config)
    teacher.load_state_dict(model.state_dict())
    return teacher.eval().requires_grad_(False)


def _soft_loss(logits: Tensor, soft: Tensor) -> Tensor:
    """Cross-entropy against the teacher's probabilities, summed over the three attribute heads."""
    sizes = list(CROP_HEADS.values())
    return sum(-(t.softmax(1) * s.log_softmax(1)).sum(1).mean()
               for s, t in zip(logits.split(sizes, 1), soft.split(sizes, 1), strict=True))


@torch.no_grad()
def _accuracy(model: OFANet, sub: SubNet, crops: Tensor, labels: dict[str, Tensor]) -> float:
    model.eval()
    parts = model(crops, sub).split(list(CROP_HEADS.values()), 1)
    return float(torch.stack([(p.argmax(1) == labels[a]).float().mean()
                              for p, a in zip(parts, CROP_HEADS, strict=True)]).mean())


def _latency_ms(model: OFANet, sub: SubNet, side: int, repeats: int) -> float:
    """Median wall time of one forward pass on one crop, milliseconds (this CPU, the current thread count)."""
    x = torch.rand(1, 4, side, side)
    times = []
    with torch.no_grad():
        model(x, sub)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x, sub)
            times.append(time.perf_counter() - t0)
    return 1000.0 * sorted(times)[len(times) // 2]


def _alone(config: OFAConfig, sub: SubNet) -> OFAConfig:
    """The supernet config whose only (largest) choice is ``sub``: the same architecture, nothing elastic."""
    return replace(config, kernels=(sub.kernels[0],), depths=(sub.depths[0],), expands=(sub.expands[0],),
                   resolutions=(sub.resolution,))


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=200, test=80, steps=0, batch=32, lr=2e-3)
_QUICK = BenchSize(train=4, test=2, steps=0, batch=16, lr=2e-3)
_SCHEDULE = {False: ShrinkSchedule(full=400, kernel=200, depth=300, width=300),
             True: ShrinkSchedule(full=4, kernel=2, depth=2, width=2)}
_SIDE = 16  # crops rendered at the largest resolution (depthwise 7x7 convolutions are slow on a CPU)
_WORLD = dict(width=240, height=160, min_pixels=60)  # CLEVR's 480 x 320 at half size


@register_perception_bench(
    "once-for-all",
    paper="Cai et al., Once-for-All, ICLR 2020, arXiv 1908.09791",
    check="smallest and largest sub-networks within 3 points of the same architectures trained alone",
    ablation="the same architecture trained alone, as many steps as the whole schedule",
)
def bench_once_for_all(quick: bool, seed: int) -> BenchOutcome:
    """Progressive shrinking on CLEVR crops; the extreme sub-networks against standalone training; CPU latency."""
    from perception.datasets.object_crops import render_object_crops
    from perception.derender.attributes import AttributeConfig
    from physics.worlds.clevr_world import ClevrWorldConfig

    size, schedule = (_QUICK if quick else _FULL), _SCHEDULE[quick]
    world, crop = ClevrWorldConfig(**_WORLD), AttributeConfig(crop_size=_SIDE)
    base = 4_500_000 + seed * 10_000
    train = render_object_crops(range(base, base + size.train), world, crop)
    test = render_object_crops(range(base + 5_000, base + 5_000 + size.test), world, crop)
    labels = {a: train.labels[a] for a in CROP_HEADS}
    test_labels = {a: test.labels[a] for a in CROP_HEADS}
    config = OFAConfig()
    torch.manual_seed(seed)
    supernet = progressive_shrinking(OFANet(config), train.crops, labels, schedule, batch=size.batch, lr=size.lr,
                                     seed=seed)
    checks, figures = [], {"schedule": schedule.__dict__, "train_objects": len(train), "test_objects": len(test)}
    for name, sub in (("smallest", smallest(config)), ("largest", largest(config))):
        recalibrate_batchnorm(supernet, sub, train.crops)
        ours = _accuracy(supernet, sub, test.crops, test_labels)
        torch.manual_seed(seed)
        alone = OFANet(_alone(config, sub))

        def step(idx: Tensor, net: OFANet = alone) -> dict[str, Tensor]:
            return {"loss": attribute_loss(net(train.crops[idx]), {a: v[idx] for a, v in labels.items()})}

        train_steps(alone, step, items=len(train), steps=schedule.total, batch=size.batch, lr=size.lr, seed=seed,
                    desc=f"alone {name}")
        theirs = _accuracy(alone.eval(), largest(alone.config), test.crops, test_labels)
        checks.append(Check(f"{name} sub-network accuracy", "mean over shape, color, material (held-out crops)",
                            ours, theirs, ">= ablation - 0.03", ours >= theirs - 0.03))
        figures[name] = {"subnet": sub.__dict__, "parameters": sum(p.numel() for p in alone.parameters()),
                         "latency_ms_per_crop": _latency_ms(supernet, sub, _SIDE, 5 if quick else 50),
                         "latency_ms_alone": _latency_ms(alone, largest(alone.config), _SIDE, 5 if quick else 50),
                         "threads": torch.get_num_threads()}
    return BenchOutcome(tuple(checks), figures)

