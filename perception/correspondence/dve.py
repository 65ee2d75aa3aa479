"""Descriptor Vector Exchange: dense descriptors that match across instances of a class, learnt from warps.

Thewlis, Albanie and Vedaldi, "Unsupervised Learning of Landmarks by Descriptor
Vector Exchange", ICCV 2019 (arXiv 1908.06427); the dense equivariance loss it
builds on is from Thewlis, Bilen and Vedaldi, "Unsupervised object learning from
dense equivariant image labelling", NeurIPS 2017 (arXiv 1706.02932).

A network maps an image to a unit descriptor per location.  Trained only on
pairs ``(x1, x2)`` where ``x2`` is ``x1`` under a random synthetic warp ``T``
(known, since we made it), the *dense matching loss* asks every location ``q``
of ``x2`` to match the location ``T(q)`` of ``x1``:

    p(v | q) = softmax_v <f2(q), f1(v)> / tau,   loss = mean_q sum_v p(v | q) |v - T(q)|

Warps of one image never ask two *different* objects to agree, so with many
descriptor dimensions the network can match each image by its own texture.
DVE routes the match through a third image ``xa`` (another image of the batch,
a different object): the descriptor of ``q`` is replaced by its soft match in
``xa`` before matching ``x1``,

    f2^(q) = sum_w softmax_w <f2(q), fa(w)> / tau * fa(w),   p(v | q) = softmax_v <f2^(q), f1(v)> / tau,

so the loss is low only if descriptors agree *across* objects.  The ablation
(``exchange=False``) is the same network trained with the plain loss on the
same images, warps, steps and seed.

The check (:func:`bench_dve`): descriptors match points between held-out
pairs of *different* critters (:mod:`perception.correspondence.critters`,
rendered with exact dense correspondence; the network never sees that
correspondence) by nearest descriptor; PCK is the fraction of points whose
match lands within 5 pixels of the true one.

Shapes (N images of side S; descriptors on the S/2 grid; P = (S/2)^2)::

    images       float [N, 3, S, S]
    descriptors  float [N, C, S/2, S/2], unit length along C   (DescriptorNet)
    warp grid    float [N, S, S, 2]  source (x, y) in [-1, 1] of each output pixel (random_warps)
    loss         scalar                                      (dense_matching_loss)
    matches      float [K, 2] pixel (x, y) in the second image (match_points)
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
from perception.correspondence.critters import CritterConfig, Critters, correspond, render_critters
from perception.model_stats import count_macs, count_parameters
from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = ["DVEConfig", "WarpRange", "DescriptorNet", "random_warps", "dense_matching_loss", "match_points",
           "pck_between", "train_dve"]


@dataclass(frozen=True)
class DVEConfig:
    """The descriptor network and its loss.

    Args:
        dim: Descriptor dimensions (the paper's gap from the exchange grows with them).
        width: Channels of the first stage (doubled at each of two down-samplings).
        tau: Softmax temperature of the matching, on unit descriptors.
        exchange: Route each match through a third image (DVE); False is the ablation.
        queries: Locations of x2 drawn per step for the loss (random subset; the cost is linear in it).
    """

    dim: int = 32
    width: int = 16
    tau: float = 0.05
    exchange: bool = True
    queries: int = 256

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if min(self.dim, self.width, self.queries) < 1:
            raise ConfigError(f"DVEConfig.dim, width and queries must be >= 1, got {self.dim}, {self.width} "
                              f"and {self.queries}")
        if self.tau <= 0:
            raise ConfigError(f"DVEConfig.tau must be > 0, got {self.tau}")


@dataclass(frozen=True)
class WarpRange:
    """Range of the synthetic warps: similarity plus a smooth random displacement field.

    The warps are large on purpose.  A CNN with zero padding can encode where a
    pixel lies in the frame; with small warps (20 degrees, 10% zoom and shift)
    such a code alone nearly solves both losses, the exchange included, since
    ``T(q)`` stays within a few pixels of ``q``, and the descriptors learnt
    that way match different critters little better than the position prior
    (docs/results/perception.md, DVE, round 2).

    Args:
        rotation: Largest rotation in degrees.
        scale: Range of the zoom.
        shift: Largest translation (fraction of the half side).
        flow: Amplitude of the smooth displacement (fraction of the half side).
        flow_cells: Coarse grid of the displacement (a few cells: smooth).
        colour: Strength of the independent colour change of each view (0: none; see
            :func:`colour_jitter`).  Critters differ in the colours of every part, so
            changing the colours between the two views asks for the layout rather than
            the colours.  Off by default: at 0.5 the tuning critters gain, but on the bench
            the exchange loses while the plain loss gains (docs/results/perception.md, DVE,
            fourth round).
    """

    rotation: float = 60.0
    scale: tuple[float, float] = (0.8, 1.25)
    shift: float = 0.3
    flow: float = 0.08
    flow_cells: int = 4
    colour: float = 0.0


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class DescriptorNet(nn.Module):
    """A small encoder-decoder: image [N, 3, S, S] -> unit descriptors [N, dim, S/2, S/2].

    Two stride-2 stages and dilated convolutions give a receptive field of
    about 60 pixels (the whole critter), so a point's descriptor can say where
    on the object it is; a skip from the S/2 stage keeps it local.
    """

    def __init__(self, config: DVEConfig = DVEConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.stage1 = nn.Sequential(_conv(3, w), _conv(w, w))
        self.stage2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.stage3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w, dilation=2),
                                    _conv(4 * w, 4 * w, dilation=4))
        self.fuse = _conv(6 * w, 2 * w)
        self.head = nn.Conv2d(2 * w, config.dim, 1)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[-1] % 4 or images.shape[-2] % 4:
            raise StateError(f"DescriptorNet expects images [N, 3, S, S] with S a multiple of 4, "
                             f"got {tuple(images.shape)}")
        half = self.stage2(self.stage1(images))
        deep = F.interpolate(self.stage3(half), size=half.shape[-2:], mode="bilinear", align_corners=False)
        return F.normalize(self.head(self.fuse(torch.cat([half, deep], 1))), dim=1)


def _base_grid(n: int, size: int) -> Tensor:
    """Pixel centres [n, size, size, 2] as (x, y) in [-1, 1] (align_corners=False)."""
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x, y], -1).expand(n, size, size, 2)


def random_warps(n: int, size: int, g: torch.Generator, warp: WarpRange = WarpRange()) -> Tensor:
    """``n`` random warps as sampling grids [n, size, size, 2]: output pixel -> source (x, y) in [-1, 1].

    Each is a similarity (rotation, zoom, shift about the centre) plus a smooth
    displacement field (bicubic up-sampling of a coarse random grid).
    """
    ang = (torch.rand(n, generator=g) * 2 - 1) * math.radians(warp.rotation)
    zoom = warp.scale[0] + (warp.scale[1] - warp.scale[0]) * torch.rand(n, generator=g)
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * warp.shift
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    mat = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # [n, 2, 2]
    grid = torch.einsum("nij,nhwj->nhwi", mat, _base_grid(n, size)) + shift[:, None, None, :]
    coarse = (torch.rand(n, 2, warp.flow_cells, warp.flow_cells, generator=g) * 2 - 1) * warp.flow
    flow = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return grid + flow.permute(0, 2, 3, 1)


def colour_jitter(images: Tensor, g: torch.Generator, strength: float) -> Tensor:
    """Independent random colour changes of ``images`` [N, 3, S, S] in [0, 1]; same shape, in [0, 1].

    Each image gets a random permutation of its colour channels, a per-channel
    gain in ``1 +- strength`` and offset in ``+- strength / 4``, and a contrast
    change about its mean in ``1 +- strength / 2``.  Geometry is untouched.
    """
    if strength <= 0:
        return images
    n = len(images)
    perm = torch.argsort(torch.rand(n, 3, generator=g), 1)
    out = torch.gather(images, 1, perm[:, :, None, None].expand_as(images))
    gain = 1 + (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1) * strength
    offset = (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1) * strength / 4
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * strength / 2
    mean = out.mean((1, 2, 3), keepdim=True)
    return ((out * gain + offset - mean) * contrast + mean).clamp(0, 1)


def dense_matching_loss(f1: Tensor, f2: Tensor, target: Tensor, tau: float, aux: Tensor | None = None,
                        queries: Tensor | None = None) -> Tensor:
    """The dense matching loss of ``x2``'s locations against ``x1`` (module docstring), with DVE if ``aux`` is given.

    Args:
        f1: float [B, C, h, w] descriptors of x1.
        f2: float [B, C, h, w] descriptors of x2.
        target: float [B, h, w, 2] where each x2 location lies in x1, (x, y) in [-1, 1].
        tau: Softmax temperature.
        aux: float [B, C, h, w] descriptors of a third image per item (the exchange), or None.
        queries: int64 [Q] flat indices of the x2 locations the loss averages over (None: all h * w);
            a random subset is an unbiased, cheaper estimate of the mean.

    Returns:
        Scalar: mean over x2 locations whose target lies inside x1 of the expected distance (in
        half-sides) between the soft match and the target.
    """
    b, c, h, w = f1.shape
    if f2.shape != f1.shape or target.shape != (b, h, w, 2):
        raise StateError(f"dense_matching_loss: f1 {tuple(f1.shape)}, f2 {tuple(f2.shape)} and target "
                         f"{tuple(target.shape)} do not fit")
    a1 = f1.flatten(2).transpose(1, 2)  # [B, P, C]
    q = f2.flatten(2).transpose(1, 2)
    tgt = target.reshape(b, h * w, 2)
    if queries is not None:
        q, tgt = q[:, queries], tgt[:, queries]
    if aux is not None:
        fa = aux.flatten(2).transpose(1, 2)
        q = torch.softmax(q @ fa.transpose(1, 2) / tau, -1) @ fa  # the exchanged descriptors
    p = torch.softmax(q @ a1.transpose(1, 2) / tau, -1)  # [B, Q (x2), P (x1)]
    where = _base_grid(1, h).reshape(1, h * w, 2)  # x1 location centres (square maps)
    dist = torch.cdist(tgt, where.expand(b, -1, -1))  # [B, Q (x2), P (x1)]
    valid = (tgt.abs() <= 1).all(-1).float()
    return ((p * dist).sum(-1) * valid).sum() / valid.sum().clamp_min(1.0)


@torch.no_grad()
def full_resolution(model: DescriptorNet, images: Tensor) -> Tensor:
    """Descriptors up-sampled to the image grid: [N, C, S, S], unit length (evaluation mode)."""
    model.eval()
    f = model(images)
    return F.normalize(F.interpolate(f, size=images.shape[-2:], mode="bilinear", align_corners=False), dim=1)


def match_points(desc_a: Tensor, points: Tensor, desc_b: Tensor) -> Tensor:
    """Match points of image A into image B by the most similar descriptor.

    Args:
        desc_a: float [C, S, S] descriptors of A.
        points: int64 [K, 2] pixel positions (x, y) in A.
        desc_b: float [C, S, S] descriptors of B.

    Returns:
        float [K, 2] pixel positions (x, y) in B.
    """
    s = desc_b.shape[-1]
    query = desc_a[:, points[:, 1], points[:, 0]].T  # [K, C]
    best = (query @ desc_b.flatten(1)).argmax(1)
    return torch.stack([best % s, best // s], 1).float()


def pck_between(desc: Tensor, critters: Critters, pairs: Tensor, points: int, radius: float,
                g: torch.Generator) -> tuple[float, int]:
    """PCK over pairs of critters: fraction of points of A matched within ``radius`` pixels of the truth in B.

    Points are drawn uniformly from A's critter, at least two pixels inside its
    outline, among those whose canonical point is visible in B.

    Args:
        desc: float [N, C, S, S] full-resolution descriptors of ``critters``.
        critters: The rendered critters with their coordinates and masks.
        pairs: int64 [M, 2] indices (A, B) into ``critters``.
        points: Points drawn per pair.
        radius: PCK radius in pixels.
        g: Generator of the points.

    Returns:
        (PCK, number of points scored).
    """
    inner = -F.max_pool2d(-critters.masks[:, None], 5, 1, 2)[:, 0]  # eroded by two pixels
    hits, total = 0, 0
    for a, b in pairs.tolist():
        ys, xs = torch.nonzero(inner[a] > 0.5, as_tuple=True)
        if len(xs) == 0:
            continue
        pick = torch.randint(len(xs), (points,), generator=g)
        pts = torch.stack([xs[pick], ys[pick]], 1)
        truth, gap = correspond(critters.coords[a], pts, critters.coords[b], critters.masks[b])
        seen = gap < 0.05  # the canonical point lies on B's critter inside the frame
        pred = match_points(desc[a], pts[seen], desc[b])
        hits += int(((pred - truth[seen]).norm(dim=1) <= radius).sum())
        total += int(seen.sum())
    return hits / max(total, 1), total


def train_dve(config: DVEConfig, images: Tensor, size: BenchSize, seed: int,
              warp: WarpRange = WarpRange()) -> tuple[DescriptorNet, list[dict]]:
    """Train a descriptor network on ``images`` [N, 3, S, S] with the shared loop; returns it and its history.

    Each step takes ``size.batch`` images, warps each by a random warp drawn
    from a generator seeded with ``seed`` (the same warps for DVE and the
    ablation), and, with the exchange, uses the next image of the batch as the
    third image.
    """
    torch.manual_seed(seed)
    model = DescriptorNet(config)
    g = torch.Generator().manual_seed(seed + 7)
    s = images.shape[-1]

    def step(idx: Tensor) -> dict[str, Tensor]:
        x1 = images[idx]
        grid = random_warps(len(idx), s, g, warp)
        x2 = F.grid_sample(x1, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x1, x2 = colour_jitter(x1, g, warp.colour), colour_jitter(x2, g, warp.colour)
        target = F.avg_pool2d(grid.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)  # at descriptor centres
        f = model(torch.cat([x1, x2]))
        f1, f2 = f[: len(idx)], f[len(idx):]
        aux = f1.roll(1, 0) if config.exchange else None
        queries = torch.randperm(f1.shape[-1] * f1.shape[-2], generator=g)[:config.queries]
        return {"loss": dense_matching_loss(f1, f2, target, config.tau, aux, queries)}

    history = train_steps(model, step, items=len(images), steps=size.steps, batch=size.batch, lr=size.lr,
                          seed=seed, desc=f"dve exchange={config.exchange}", per_round=50)
    return model.eval(), history


def _pixel_codes(images: Tensor) -> Tensor:
    """Descriptors that only say where a pixel is (one-hot, [N, S*S, S, S]): a match is the same pixel."""
    n, _, h, w = images.shape
    return torch.eye(h * w).reshape(h * w, h, w).expand(n, -1, -1, -1)


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=1500, test=200, steps=2500, batch=8, lr=1e-3)  # at 1000 the exchanged loss has not yet dropped
_QUICK = BenchSize(train=12, test=6, steps=4, batch=4, lr=1e-3)
_RADIUS = 5.0  # PCK radius in pixels (the check), on 64-pixel images
_POINTS = 40  # points per held-out pair


@register_perception_bench(
    "dve",
    paper="Thewlis, Albanie and Vedaldi, descriptor vector exchange, ICCV 2019 (arXiv 1908.06427)",
    check="PCK@5px across different critters >= 0.70 and >= ablation + 10 points",
    ablation="same network and loss without the exchange",
)
def bench_dve(quick: bool, seed: int) -> BenchOutcome:
    """Train DVE and its no-exchange twin on the same critters, warps and steps; PCK on held-out pairs."""
    bench = _QUICK if quick else _FULL
    base = 2_000_000 + seed * 100_000  # critter seeds: training and test disjoint
    train = render_critters(range(base, base + bench.train), CritterConfig())
    test = render_critters(range(base + 50_000, base + 50_000 + bench.test), CritterConfig())
    half = bench.test // 2
    pairs = torch.stack([torch.arange(half), torch.arange(half) + half], 1)  # every pair: two different critters
    ours_cfg, plain_cfg = DVEConfig(), DVEConfig(exchange=False)
    runs = {name: train_dve(cfg, train.images, bench, seed) for name, cfg in (("dve", ours_cfg),
                                                                              ("plain", plain_cfg))}
    torch.manual_seed(seed)
    nets = {"dve": runs["dve"][0], "plain": runs["plain"][0], "untrained": DescriptorNet(ours_cfg)}
    pck, scored = {}, 0
    for name, model in nets.items():
        desc = full_resolution(model, test.images)
        pck[name], scored = pck_between(desc, test, pairs, _POINTS, _RADIUS, torch.Generator().manual_seed(seed))
    # the position prior alone: a point matched to the same pixel of the other image
    pck["same_pixel"], _ = pck_between(_pixel_codes(test.images), test, pairs, _POINTS, _RADIUS,
                                       torch.Generator().manual_seed(seed))
    checks = (
        Check("PCK@5px, different critters", "fraction of held-out points, higher is better", pck["dve"],
              pck["plain"], ">= 0.70 and >= ablation + 0.10",
              pck["dve"] >= 0.70 and pck["dve"] >= pck["plain"] + 0.10),
    )
    probe = test.images[:1]
    figures = {
        "train_critters": bench.train, "test_pairs": half, "points_scored": scored, "steps": bench.steps,
        "batch": bench.batch, "lr": bench.lr, "image_side": CritterConfig().size, "dim": ours_cfg.dim,
        "tau": ours_cfg.tau, "params": count_parameters(runs["dve"][0]),
        "macs_per_image": count_macs(runs["dve"][0], probe),
        "final_loss": {name: h[-1]["loss"] for name, (_, h) in runs.items()},
        "pck_untrained_network": pck["untrained"], "pck_same_pixel": pck["same_pixel"],
        "data": "critters (perception.correspondence.critters), train seeds base.., test seeds base+50000..",
    }
    return BenchOutcome(checks, figures)
