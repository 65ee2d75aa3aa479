"""Warped convolutions: a log-polar warp turns rotation about the crop centre into a shift.

Henriques and Vedaldi, "Warped Convolutions: Efficient Invariance to Spatial
Transformations", ICML 2017 (arXiv 1609.04382).  Resampling an image on a
log-polar grid centred on the object makes a rotation about that centre a
circular translation along the angle axis (and a scale change one along the
log-radius axis), so an ordinary convolution on the warped image is
rotation-equivariant.  :class:`WarpedYawNet` regresses a cube's yaw that way:
convolutions with circular padding along the angle axis, a mean over radius, a
one-channel map over angle, and the yaw read from that map's fourth circular
harmonic (a cube looks the same every 90 degrees), through a learned 2 x 2 map
that fixes the offset and handedness.  Rotating the crop by d rotates that
harmonic's phase by 4 d, so the yaw follows exactly.

The ablation, :class:`PlainYawNet`, is a plain CNN of the same size: the same
convolutions on the unwarped crop and a linear head on its global mean.

The crops come from CLEVR scenes seen from straight above (a camera over the
scene's centre, no jitter), where a cube's yaw is a rotation of its image; the
CLEVR camera's oblique view would mix yaw with perspective.  The benchmark
trains on cubes whose yaw (modulo 90 degrees) lies in [0, 45) and tests on
cubes of every yaw from other scenes: equivariance is what carries a model to
rotations it never saw.  (With every yaw in training, both networks reach
about 1.2-1.5 degrees; docs/results/perception.md.)

Shapes (K crops of side S; the warp has R radii and A angles)::

    crops   float [K, 4, S, S]   RGB + mask (perception.datasets.object_crops)
    warped  float [K, 4, R, A]   log_polar(crops)
    yaw     float [K, 2]         (cos 4 yaw, sin 4 yaw), unit length
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
from physics.errors import StateError

__all__ = ["WarpConfig", "log_polar", "WarpedYawNet", "PlainYawNet", "yaw_error_deg", "SYMMETRY"]

SYMMETRY = 4  # a cube maps onto itself every 360 / 4 degrees of yaw
SEEN_YAW = 45.0  # the benchmark trains on yaws (mod 90) below this and tests on all


@dataclass(frozen=True)
class WarpConfig:
    """Architecture of both yaw networks and the log-polar grid.

    Args:
        width: Channels of every convolution.
        layers: Number of 3 x 3 convolutions.
        radii: R, samples along log-radius.
        angles: A, samples along the angle (a multiple of 4).
        r_min: Smallest radius sampled, as a fraction of the crop's half side.
    """

    width: int = 16
    layers: int = 4
    radii: int = 16
    angles: int = 48
    r_min: float = 0.08

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field


def log_polar(crops: Tensor, radii: int, angles: int, r_min: float) -> Tensor:
    """Resample crops on a log-polar grid about their centre: [K, C, S, S] -> [K, C, radii, angles].

    Row i samples radius ``r_min * (1 / r_min) ** (i / (radii - 1))`` of the half side,
    column j the angle ``2 pi j / angles`` (counter-clockwise in the image, from +u).
    """
    if crops.dim() != 4:
        raise StateError(f"log_polar expects crops [K, C, S, S], got {tuple(crops.shape)}")
    r = r_min * (1.0 / r_min) ** (torch.arange(radii, dtype=torch.float32) / max(radii - 1, 1))
    phi = 2 * math.pi * torch.arange(angles, dtype=torch.float32) / angles
    grid = torch.stack([r[:, None] * torch.cos(phi)[None], -r[:, None] * torch.sin(phi)[None]], -1)  # [R, A, 2]
    grid = grid.expand(crops.shape[0], radii, angles, 2)
    return F.grid_sample(crops, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class _Features(nn.Module):
    """``layers`` 3 x 3 convolutions (BatchNorm, ReLU); circular along the last axis when ``circular``."""

    def __init__(self, config: WarpConfig, circular: bool) -> None:
        super().__init__()
        self.circular = circular
        chans = [4] + [config.width] * config.layers
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, bias=False) for a, b in zip(chans, chans[1:], strict=False))
        self.norms = nn.ModuleList(nn.BatchNorm2d(b) for b in chans[1:])

    def forward(self, x: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            if self.circular:  # angle wraps around; radius is zero-padded
                x = F.pad(F.pad(x, (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1))
            else:
                x = F.pad(x, (1, 1, 1, 1))
            x = F.relu(norm(conv(x)))
        return x


class WarpedYawNet(nn.Module):
    """Log-polar warp, circular convolutions, and the yaw from the angle map's 4th harmonic.

    ``forward(crops [K, 4, S, S]) -> [K, 2]`` = (cos 4 yaw, sin 4 yaw).
    """

    def __init__(self, config: WarpConfig = WarpConfig()) -> None:
        super().__init__()
        if config.angles % SYMMETRY:
            raise StateError(f"WarpConfig.angles must be a multiple of {SYMMETRY}, got {config.angles}")
        self.config = config
        self.features = _Features(config, circular=True)
        self.to_map = nn.Conv1d(config.width, 1, 1)
        self.readout = nn.Linear(2, 2, bias=False)  # the phase's offset and handedness
        phi = 2 * math.pi * torch.arange(config.angles) / config.angles
        self.register_buffer("harmonic", torch.stack([torch.cos(SYMMETRY * phi), torch.sin(SYMMETRY * phi)]))

    def forward(self, crops: Tensor) -> Tensor:
        c = self.config
        x = self.features(log_polar(crops, c.radii, c.angles, c.r_min))  # [K, width, R, A]
        signal = self.to_map(x.mean(2))[:, 0]  # [K, A]
        phase = signal @ self.harmonic.T  # [K, 2]: the 4th circular harmonic
        return F.normalize(self.readout(phase), dim=1, eps=1e-6)


class PlainYawNet(nn.Module):
    """The ablation: the same convolutions on the unwarped crop, global mean, a linear head.

    ``forward(crops [K, 4, S, S]) -> [K, 2]`` = (cos 4 yaw, sin 4 yaw).
    """

    def __init__(self, config: WarpConfig = WarpConfig()) -> None:
        super().__init__()
        self.config = config
        self.features = _Features(config, circular=False)
        self.head = nn.Linear(config.width, 2)

    def forward(self, crops: Tensor) -> Tensor:
        return F.normalize(self.head(self.features(crops).mean((2, 3))), dim=1, eps=1e-6)


def yaw_target(rotation_deg: Tensor) -> Tensor:
    """Yaw in degrees [K] -> (cos 4 yaw, sin 4 yaw) [K, 2]."""
    a = torch.deg2rad(rotation_deg) * SYMMETRY
    return torch.stack([torch.cos(a), torch.sin(a)], 1)


def yaw_error_deg(pred: Tensor, rotation_deg: Tensor) -> Tensor:
    """Absolute yaw error in degrees modulo the cube's symmetry (0..45): [K, 2], [K] -> [K]."""
    cos = (pred * yaw_target(rotation_deg)).sum(1).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos)) / SYMMETRY


# ---------------------------------------------------------------------- benchmark
_FULL = BenchSize(train=150, test=100, steps=600, batch=32, lr=3e-3)
_QUICK = BenchSize(train=8, test=4, steps=10, batch=8, lr=3e-3)
_CROP = 32


def top_down_world(width: int = 160, height: int = 160):
    """CLEVR scenes seen from (almost exactly) above the centre, no jitter: yaw is an image rotation.

    The eye sits 0.05 units off the vertical so that the camera still has ground directions.
    """
    from physics.worlds.camera import Camera
    from physics.worlds.clevr_world import ClevrWorldConfig

    camera = Camera(eye=(0.0, -0.05, 16.0), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), fov_x_deg=40.0)
    return ClevrWorldConfig(width=width, height=height, camera=camera, camera_jitter=0.0, min_pixels=40)


def train_yaw(model: nn.Module, crops: Tensor, rotation: Tensor, bench: BenchSize, seed: int) -> nn.Module:
    """Train a yaw network with the loss 1 - cos(4 (yaw - true yaw)) (the shared loop)."""
    target = yaw_target(rotation)

    def step(idx: Tensor) -> dict[str, Tensor]:
        return {"loss": (1 - (model(crops[idx]) * target[idx]).sum(1)).mean()}

    train_steps(model, step, items=len(crops), steps=bench.steps, batch=bench.batch, lr=bench.lr, seed=seed,
                desc=type(model).__name__)
    return model.eval()


@register_perception_bench(
    "warped",
    paper="Henriques and Vedaldi, warped convolutions, arXiv 1609.04382",
    check="cube yaw mean error <= 1/2 of a plain CNN of the same size (trained on yaw mod 90 < 45, tested on all)",
    ablation="plain CNN, same convolutions, no warp",
)
def bench_warped(quick: bool, seed: int) -> BenchOutcome:
    """Train both yaw networks on cube crops of the same top-down scenes; test on scenes of other seeds."""
    from perception.datasets.object_crops import render_object_crops
    from perception.derender.attributes import AttributeConfig
    from physics.worlds.clevr_properties import ATTRIBUTES

    bench = _QUICK if quick else _FULL
    world, crop = top_down_world(), AttributeConfig(crop_size=_CROP, margin=0.15)
    base = 2_000_000 + seed * 10_000
    cube = ATTRIBUTES["shape"].index("cube")

    def cubes(seeds: range):
        data = render_object_crops(seeds, world, crop)
        return data.subset(data.labels["shape"] == cube)

    train = cubes(range(base, base + bench.train))
    train = train.subset(train.rotation % 90 < SEEN_YAW)  # half of the distinct yaws; the test has them all
    test = cubes(range(base + 5_000, base + 5_000 + bench.test))
    config = WarpConfig()
    torch.manual_seed(seed)
    ours = train_yaw(WarpedYawNet(config), train.crops, train.rotation, bench, seed)
    torch.manual_seed(seed)
    plain = train_yaw(PlainYawNet(config), train.crops, train.rotation, bench, seed)
    seen = test.rotation % 90 < SEEN_YAW
    with torch.no_grad():
        errors = {k: yaw_error_deg(m(test.crops), test.rotation) for k, m in (("ours", ours), ("plain", plain))}
    err = {k: float(e.mean()) for k, e in errors.items()}
    probe = test.crops[:1]
    checks = (
        Check("cube yaw mean error", "degrees (modulo 90), lower is better", err["ours"], err["plain"],
              "<= ablation / 2", err["ours"] <= err["plain"] / 2),
    )
    figures = {
        "train_cubes": len(train), "test_cubes": len(test), "train_scenes": bench.train,
        "test_scenes": bench.test, "steps": bench.steps, "batch": bench.batch, "crop": _CROP,
        "params_ours": count_parameters(ours), "params_ablation": count_parameters(plain),
        "macs_ours": count_macs(ours, probe), "macs_ablation": count_macs(plain, probe),
        "chance_error_deg": 22.5, "camera": "top-down, 160x160, no jitter",
        "train_yaw_range_deg": [0.0, SEEN_YAW], "test_cubes_seen_range": int(seen.sum()),
        "error_seen_range": {k: float(e[seen].mean()) for k, e in errors.items()},
        "error_unseen_range": {k: float(e[~seen].mean()) for k, e in errors.items()},
    }
    return BenchOutcome(checks, figures)
