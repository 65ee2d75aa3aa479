"""A parametric shape class rendered with dense, exact correspondence: "critters".

Semantic matching needs pairs of *different* objects of one class whose
points correspond by meaning.  Every critter is the same canonical template
(a round head on the unit disc of canonical coordinates ``(u, v)``, two eyes
with pupils, a nose, a mouth and two cheek marks, all at fixed canonical
places) seen through its own smooth deformation (aspect, taper, bend), pose
(scale, rotation, translation) and appearance (colours of skin and parts,
spots at random canonical places, a smooth random background, shading from a
random light).  The renderer maps each pixel back to canonical coordinates
(inverse mapping, so the map is exact per pixel), and two critters correspond
wherever their canonical coordinates agree: :func:`correspond` finds, for
points of one image, the pixel of another that carries the same ``(u, v)``.

What is shared across critters is only the layout of the parts; everything a
single image could be matched on by its own texture (spots, colours,
background) changes from one critter to the next.

Shapes (N images of side S)::

    images  float [N, 3, S, S] in [0, 1]
    coords  float [N, 2, S, S]  canonical (u, v) of each pixel (meaningful where mask > 0.5)
    masks   float [N, S, S]     1 on the critter's head, 0 on the background
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError

__all__ = ["CritterConfig", "Critters", "render_critters", "correspond"]

# canonical layout of the template's parts on the unit disc: (u, v) centre and radii
_EYES = ((-0.38, -0.22), (0.38, -0.22))
_EYE_R = 0.17
_PUPIL_R = 0.07
_NOSE = (0.0, 0.12)  # a triangle pointing down, half-width and height below
_NOSE_W, _NOSE_H = 0.12, 0.16
_MOUTH = (0.0, 0.52)
_MOUTH_R = (0.34, 0.08)
_CHEEKS = ((-0.62, 0.3), (0.62, 0.3))
_CHEEK_R = 0.1
_EDGE = 0.025  # softness of part edges in canonical units (anti-aliasing)


@dataclass(frozen=True)
class CritterConfig:
    """How critters vary.

    Args:
        size: Image side in pixels.
        scale: Range of the head radius as a fraction of the half image side.
        aspect: Range of the per-axis stretch of the head (proportions).
        taper: Range of the taper (the head widens towards its chin or its top).
        bend: Range of the bend (the vertical axis curves sideways).
        rotation: Largest rotation in degrees (either way).
        shift: Largest translation of the centre, fraction of the half side.
        spots: Range of the number of instance-specific spots on the skin.
    """

    size: int = 64
    scale: tuple[float, float] = (0.45, 0.65)
    aspect: tuple[float, float] = (0.8, 1.2)
    taper: tuple[float, float] = (-0.25, 0.25)
    bend: tuple[float, float] = (-0.25, 0.25)
    rotation: float = 35.0
    shift: float = 0.3
    spots: tuple[int, int] = (4, 9)

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.size < 16:
            raise ConfigError(f"CritterConfig.size must be >= 16 pixels, got {self.size}")
        if not 0 < self.scale[0] <= self.scale[1] <= 0.9:
            raise ConfigError(f"CritterConfig.scale must satisfy 0 < low <= high <= 0.9, got {self.scale}")


@dataclass(frozen=True)
class Critters:
    """Rendered critters (shapes in the module docstring) and the seed of each."""

    images: Tensor
    coords: Tensor
    masks: Tensor
    seeds: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.images)


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _disc(u: Tensor, v: Tensor, cu: float, cv: float, ru: float, rv: float) -> Tensor:
    """Soft indicator of an ellipse in canonical coordinates."""
    d = torch.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return torch.sigmoid((1 - d) * min(ru, rv) / _EDGE)


def _smooth_noise(g: torch.Generator, size: int, cells: int) -> Tensor:
    """Smooth random field [3, size, size] in [0, 1]: bicubic up-sampling of a coarse random grid."""
    coarse = torch.rand(1, 3, cells, cells, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)


def _render_one(seed: int, cfg: CritterConfig) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = cfg.size
    # pixel centres in [-1, 1] (align_corners=False convention, x right, y down)
    axis = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2 - 1
    py, px = torch.meshgrid(axis, axis, indexing="ij")
    scale = _uniform(g, *cfg.scale)
    theta = math.radians(_uniform(g, -cfg.rotation, cfg.rotation))
    tx, ty = _uniform(g, -cfg.shift, cfg.shift), _uniform(g, -cfg.shift, cfg.shift)
    ax, ay = _uniform(g, *cfg.aspect), _uniform(g, *cfg.aspect)
    taper, bend = _uniform(g, *cfg.taper), _uniform(g, *cfg.bend)
    # inverse pose: image -> object frame
    qx0, qy0 = (px - tx) / scale, (py - ty) / scale
    c, sn = math.cos(theta), math.sin(theta)
    qx, qy = c * qx0 + sn * qy0, -sn * qx0 + c * qy0
    # inverse deformation: object frame -> canonical (a smooth map close to the identity, hence invertible)
    v = qy / ay
    u = qx / (ax * (1 + taper * v)) - bend * v * v
    head = _disc(u, v, 0.0, 0.0, 1.0, 1.0)

    # appearance: random colours per part, instance-specific spots and background
    skin = torch.rand(3, generator=g) * 0.6 + 0.3
    dark = torch.rand(3, generator=g) * 0.25
    light = torch.rand(3, generator=g) * 0.3 + 0.7
    accent = torch.rand(3, generator=g)
    mouth_col = torch.rand(3, generator=g) * 0.5 + torch.tensor([0.4, 0.0, 0.0])
    skin_tex = skin[:, None, None] + 0.15 * (_smooth_noise(g, s, 6) - 0.5)
    img = skin_tex.clone()
    n_spots = int(torch.randint(cfg.spots[0], cfg.spots[1] + 1, (), generator=g))
    for _ in range(n_spots):
        r = _uniform(g, 0.35, 0.95)
        a = _uniform(g, 0, 2 * math.pi)
        rad = _uniform(g, 0.04, 0.09)
        col = torch.rand(3, generator=g)
        w = _disc(u, v, r * math.cos(a), r * math.sin(a), rad, rad)
        img = img * (1 - w) + col[:, None, None] * w

    def paint(weight: Tensor, colour: Tensor) -> None:
        nonlocal img
        img = img * (1 - weight) + colour[:, None, None] * weight

    for (cu, cv), (pu, pv) in zip(_EYES, ((0.05, 0.03), (0.05, 0.03)), strict=True):
        paint(_disc(u, v, cu, cv, _EYE_R, _EYE_R), light)
        paint(_disc(u, v, cu + pu, cv + pv, _PUPIL_R, _PUPIL_R), dark)
    nose = torch.sigmoid(torch.minimum(
        (v - (_NOSE[1] - _NOSE_H / 2)) / _EDGE,
        ((_NOSE[1] + _NOSE_H / 2 - v) * _NOSE_W / _NOSE_H - (u - _NOSE[0]).abs()) / _EDGE))
    paint(nose, dark * 0.5 + skin * 0.5)
    paint(_disc(u, v, *_MOUTH, *_MOUTH_R), mouth_col)
    for cu, cv in _CHEEKS:
        paint(_disc(u, v, cu, cv, _CHEEK_R, _CHEEK_R), accent)
    # shading of a sphere-like head from a random light direction
    nz = torch.sqrt((1 - u * u - v * v).clamp_min(0.0))
    light_dir = torch.tensor([_uniform(g, -0.6, 0.6), _uniform(g, -0.6, 0.6), 1.0])
    light_dir = light_dir / light_dir.norm()
    shade = 0.55 + 0.45 * (light_dir[0] * u + light_dir[1] * v + light_dir[2] * nz).clamp(0, 1)
    img = img * shade
    background = _smooth_noise(g, s, int(torch.randint(3, 9, (), generator=g)))
    image = (img * head + background * (1 - head)).clamp(0, 1)
    return image, torch.stack([u, v]), head


def render_critters(seeds: range | list[int], config: CritterConfig = CritterConfig()) -> Critters:
    """Render one critter per seed (each deterministic in its seed); shapes in the module docstring."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("render_critters needs at least one seed")
    images, coords, masks = zip(*(_render_one(s, config) for s in seeds), strict=True)
    return Critters(torch.stack(images), torch.stack(coords), (torch.stack(masks) > 0.5).float(), tuple(seeds))


def correspond(coords_a: Tensor, points: Tensor, coords_b: Tensor, mask_b: Tensor) -> tuple[Tensor, Tensor]:
    """Where points of image A lie in image B: the B pixel (of B's critter) whose canonical coordinates are nearest.

    Args:
        coords_a: float [2, S, S] canonical coordinates of image A.
        points: int64 [K, 2] pixel positions (x, y) in A.
        coords_b: float [2, S, S] canonical coordinates of image B.
        mask_b: float [S, S] B's critter mask.

    Returns:
        (float [K, 2] pixel positions (x, y) in B, float [K] canonical distance of each match, small when
        the point exists on B).
    """
    if coords_a.shape != coords_b.shape or coords_a.dim() != 3 or coords_a.shape[0] != 2:
        raise StateError(f"correspond needs two coordinate maps [2, S, S], got {tuple(coords_a.shape)} "
                         f"and {tuple(coords_b.shape)}")
    s = coords_b.shape[-1]
    query = coords_a[:, points[:, 1], points[:, 0]].T  # [K, 2]
    inside = mask_b.flatten() > 0.5
    cand = coords_b.flatten(1).T[inside]  # [M, 2]
    idx = torch.nonzero(inside).squeeze(1)
    dist = torch.cdist(query, cand, compute_mode="donot_use_mm_for_euclid_dist")  # exact, not via matmul
    best, arg = dist.min(1)
    flat = idx[arg]
    return torch.stack([flat % s, flat // s], 1).float(), best
