"""Single textured objects with their voxels, seen by an orthographic camera: the data of Visual Object Networks.

Each object is one of CLEVR's three shapes with its own proportions (a box,
an ellipsoid or an elliptic cylinder with half-extents ``a, b, c`` drawn in
[0.45, 0.85]), one of CLEVR's eight colours and a pattern (plain, or dark
bands every :data:`STRIPE_PERIOD` units of height), seen from an azimuth in
[0, 90) degrees at a fixed elevation of :data:`ELEVATION_DEG`.  The truth is
exact: the renderer ray-casts the shape's implicit function
(:data:`TRUTH_SAMPLES` samples per ray) for the depth, the silhouette and the
analytic normal (Lambertian shading, light fixed to the camera), and the
voxels are the occupied fraction of each cell of a ``[-1, 1]^3`` grid
(2 x 2 x 2 samples per cell).

The camera is shared with the differentiable projection of
:mod:`perception.generative.von`: :func:`camera_points` gives the object-frame
point of every (depth sample, row, column) for an azimuth, so that the
projection samples the voxels where the renderer evaluates the shape.

Shapes (N objects, image side S = :data:`IMAGE`, voxel side V = :data:`VOXELS` unless
``voxels`` asks for another grid)::

    images    float [N, 3, S, S]  RGB in [0, 1], background 0
    depth     float [N, S, S]     depth in [0, 1] over the camera's interval (:data:`NEAR`, :data:`FAR`), background 1
    mask      float [N, S, S]     silhouette, 0 or 1
    voxels    float [N, V, V, V]  occupied fraction of each cell, index order [z, y, x]
    azimuth   float [N]           radians in [0, pi/2)
    shape, color, pattern  int64 [N]   indices into SHAPES, COLORS, PATTERNS
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from physics.errors import ConfigError
from physics.worlds.clevr_properties import COLOR_RGB, COLORS, SHAPES

__all__ = ["IMAGE", "VOXELS", "NEAR", "FAR", "ELEVATION_DEG", "PATTERNS", "STRIPE_PERIOD", "TRUTH_SAMPLES",
           "VoxelObjects", "camera_axes", "camera_points", "render_objects", "random_objects", "shade_sketch"]

IMAGE = 32  # pixels per side
VOXELS = 32  # voxel cells per side of [-1, 1]^3
NEAR, FAR = -1.5, 1.5  # the orthographic camera's view box: image plane and depth interval (covers the rotated cube)
ELEVATION_DEG = 30.0  # camera elevation above the ground plane, fixed
PATTERNS = ("plain", "striped")
STRIPE_PERIOD = 0.5  # height of one band of a striped object, object units
STRIPE_DARK = 0.35  # brightness of the dark bands
TRUTH_SAMPLES = 256  # ray samples of the renderer (depth resolution 3/256 units)
_EXTENT = (0.45, 0.85)  # half-extents a, b, c: the largest rotated object stays inside the view box
_LIGHT = (-0.4, 0.6, -0.7)  # light direction in camera coordinates (right, up, forward): upper left, from the camera
_AMBIENT = 0.3


@dataclass(frozen=True)
class VoxelObjects:
    """Rendered objects with their truth (shapes in the module docstring)."""

    images: Tensor
    depth: Tensor
    mask: Tensor
    voxels: Tensor
    azimuth: Tensor
    shape: Tensor
    color: Tensor
    pattern: Tensor
    extents: Tensor  # float [N, 3] half-extents a, b, c

    def __len__(self) -> int:
        return len(self.images)


def camera_axes(azimuth: Tensor) -> Tensor:
    """Columns right, up, forward of the camera for each azimuth: [N] -> [N, 3, 3] (object frame)."""
    el = math.radians(ELEVATION_DEG)
    ca, sa = torch.cos(azimuth), torch.sin(azimuth)
    zero = torch.zeros_like(azimuth)
    right = torch.stack([-sa, ca, zero], -1)
    up = torch.stack([-math.sin(el) * ca, -math.sin(el) * sa, zero + math.cos(el)], -1)
    forward = torch.stack([-math.cos(el) * ca, -math.cos(el) * sa, zero - math.sin(el)], -1)
    return torch.stack([right, up, forward], -1)


def camera_points(azimuth: Tensor, side: int = IMAGE, samples: int = VOXELS) -> Tensor:
    """Object-frame point of every depth sample of every pixel: [N] -> [N, samples, side, side, 3].

    Row 0 is the top of the image; depth sample 0 is the nearest.  The
    points are (x, y, z), the order ``grid_sample`` reads for a voxel array
    indexed [z, y, x].
    """
    step = (FAR - NEAR) / side
    u = NEAR + (torch.arange(side) + 0.5) * step
    v = FAR - (torch.arange(side) + 0.5) * step
    t = NEAR + (torch.arange(samples) + 0.5) * (FAR - NEAR) / samples
    tt, vv, uu = torch.meshgrid(t, v, u, indexing="ij")
    cam = torch.stack([uu, vv, tt], -1)  # [samples, side, side, 3] camera coordinates
    return torch.einsum("nij,dhwj->ndhwi", camera_axes(azimuth), cam)


def _inside(p: Tensor, shape: Tensor, ext: Tensor) -> Tensor:
    """Whether object-frame points are inside: p [N, ..., 3], shape [N], ext [N, 3] -> bool [N, ...]."""
    view = (len(p),) + (1,) * (p.dim() - 1)
    q = p / ext.view(view[:-1] + (3,))
    box = q.abs().amax(-1)
    ellipsoid = (q * q).sum(-1).sqrt()
    cylinder = torch.maximum((q[..., :2] ** 2).sum(-1).sqrt(), q[..., 2].abs())
    s = shape.view(view[:-1])
    level = torch.where(s == SHAPES.index("cube"), box, torch.where(s == SHAPES.index("sphere"), ellipsoid, cylinder))
    return level <= 1.0


def _normals(p: Tensor, shape: Tensor, ext: Tensor) -> Tensor:
    """Outward unit normal at surface points: p [N, H, W, 3] -> [N, H, W, 3]."""
    e = ext.view(len(p), 1, 1, 3)
    q = p / e
    box = torch.nn.functional.one_hot(q.abs().argmax(-1), 3).to(p.dtype) * q.sign()
    ellipsoid = q / e
    side_n = torch.cat([q[..., :2] / e[..., :2], torch.zeros_like(q[..., 2:])], -1)
    cap = torch.cat([torch.zeros_like(q[..., :2]), q[..., 2:].sign()], -1)
    on_cap = (q[..., 2].abs() >= (q[..., :2] ** 2).sum(-1).sqrt()).unsqueeze(-1)
    cylinder = torch.where(on_cap, cap, side_n)
    s = shape.view(-1, 1, 1, 1)
    n = torch.where(s == SHAPES.index("cube"), box, torch.where(s == SHAPES.index("sphere"), ellipsoid, cylinder))
    return torch.nn.functional.normalize(n, dim=-1)


def _voxelize(shape: Tensor, ext: Tensor, side: int = VOXELS) -> Tensor:
    """Occupied fraction of each cell (2 x 2 x 2 samples per cell): -> [N, side, side, side] indexed [z, y, x]."""
    fine = 2 * side
    c = -1 + (torch.arange(fine) + 0.5) * 2 / fine
    zz, yy, xx = torch.meshgrid(c, c, c, indexing="ij")
    p = torch.stack([xx, yy, zz], -1).expand(len(shape), fine, fine, fine, 3)
    occ = _inside(p, shape, ext).float().view(len(shape), 1, fine, fine, fine)
    return torch.nn.functional.avg_pool3d(occ, 2).squeeze(1)


def _shade(p: Tensor, n: Tensor, hit: Tensor, azimuth: Tensor, color: Tensor, pattern: Tensor) -> Tensor:
    """RGB of the hit points: Lambertian under a camera-fixed light, colour, bands -> [N, 3, H, W]."""
    light = torch.nn.functional.normalize(camera_axes(azimuth) @ torch.tensor(_LIGHT), dim=-1)
    lambert = (n * light.view(-1, 1, 1, 3)).sum(-1).clamp(min=0)
    shade = _AMBIENT + (1 - _AMBIENT) * lambert
    band = (torch.floor(p[..., 2] / STRIPE_PERIOD) % 2 == 1) & (pattern.view(-1, 1, 1) == PATTERNS.index("striped"))
    shade = shade * torch.where(band, STRIPE_DARK, 1.0)
    rgb = torch.tensor([COLOR_RGB[c] for c in COLORS], dtype=torch.float32)[color] / 255.0
    return (rgb.view(-1, 3, 1, 1) * shade.unsqueeze(1)) * hit.unsqueeze(1)


@torch.no_grad()
def shade_sketch(silhouette: Tensor, depth: Tensor, normals: Tensor, azimuth: Tensor, color: Tensor,
                 pattern: Tensor) -> Tensor:
    """Paint 2.5-D sketches with the renderer's own shading (light, colour, bands): an image [N, 3, S, S].

    The painter with no network: each pixel's object-frame point comes from
    its depth, its normal from ``normals`` (camera frame, e.g. the
    finite differences of a depth sketch), and the image is weighted by the
    silhouette.  On the exact sketches it nearly reproduces the renders, so
    on other sketches it measures what their geometry alone costs.

    Args:
        silhouette: float [N, S, S] in [0, 1].
        depth: float [N, S, S] in [0, 1] of the camera's interval.
        normals: float [N, 3, S, S] camera-frame (right, up, forward) normals.
        azimuth: float [N]; color, pattern: int64 [N].
    """
    n, side = depth.shape[0], depth.shape[-1]
    if silhouette.shape != depth.shape or normals.shape != (n, 3, side, side) or len(azimuth) != n:
        raise ConfigError(f"shade_sketch expects silhouette and depth [N, S, S], normals [N, 3, S, S] and azimuth [N], "
                          f"got {tuple(silhouette.shape)}, {tuple(depth.shape)}, {tuple(normals.shape)} and "
                          f"{tuple(azimuth.shape)}")
    step = (FAR - NEAR) / side
    u = NEAR + (torch.arange(side) + 0.5) * step
    v = FAR - (torch.arange(side) + 0.5) * step
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    cam = torch.stack([uu.expand_as(depth), vv.expand_as(depth), NEAR + depth * (FAR - NEAR)], -1)
    axes = camera_axes(azimuth)
    p = torch.einsum("nij,nhwj->nhwi", axes, cam)
    normal = torch.einsum("nij,njhw->nhwi", axes, torch.nn.functional.normalize(normals, dim=1))
    return _shade(p, normal, silhouette, azimuth, color, pattern)


@torch.no_grad()
def render_objects(shape: Tensor, extents: Tensor, azimuth: Tensor, color: Tensor, pattern: Tensor,
                   chunk: int = 16, voxels: int = VOXELS) -> VoxelObjects:
    """Render objects and voxelize them (exact truth; see the module docstring).

    Args:
        shape, color, pattern: int64 [N] indices into SHAPES, COLORS, PATTERNS.
        extents: float [N, 3] half-extents, each in (0, 0.85].
        azimuth: float [N] radians.
        chunk: Objects ray-cast at once (bounds memory).
        voxels: Cells per side of the voxel truth (the images do not depend on it).
    """
    _check_side(voxels, "render_objects")
    n = len(shape)
    if not (len(extents) == len(azimuth) == len(color) == len(pattern) == n) or extents.shape[-1:] != (3,):
        raise ConfigError(f"render_objects: every argument needs one row per object, got shape {tuple(shape.shape)},"
                          f" extents {tuple(extents.shape)}, azimuth {tuple(azimuth.shape)}")
    if extents.numel() and (extents.min() <= 0 or extents.max() > _EXTENT[1]):
        raise ConfigError(f"render_objects: half-extents must lie in (0, {_EXTENT[1]}], got "
                          f"[{float(extents.min()):.3f}, {float(extents.max()):.3f}]")
    images, depths, masks = [], [], []
    for sl in (slice(i, i + chunk) for i in range(0, n, chunk)):
        pts = camera_points(azimuth[sl], IMAGE, TRUTH_SAMPLES)  # [n, K, H, W, 3]
        inside = _inside(pts, shape[sl], extents[sl])
        hit = inside.any(1)
        first = inside.float().argmax(1)  # [n, H, W] index of the first inside sample
        p = torch.gather(pts, 1, first.view(len(first), 1, IMAGE, IMAGE, 1).expand(-1, 1, -1, -1, 3)).squeeze(1)
        normals = _normals(p, shape[sl], extents[sl])
        images.append(_shade(p, normals, hit.float(), azimuth[sl], color[sl], pattern[sl]))
        depth = (first.float() + 0.5) / TRUTH_SAMPLES
        depths.append(torch.where(hit, depth, 1.0))
        masks.append(hit.float())
    grid = torch.cat([_voxelize(shape[sl], extents[sl], voxels) for sl in (slice(i, i + chunk) for i in range(0, n, chunk))])
    return VoxelObjects(torch.cat(images), torch.cat(depths), torch.cat(masks), grid, azimuth.float(), shape,
                        color, pattern, extents)


def _check_side(voxels: object, where: str) -> None:
    if isinstance(voxels, bool) or not isinstance(voxels, int) or voxels < 2:
        raise ConfigError(f"{where}: voxels (cells per side) must be an integer >= 2, got {voxels!r}")


def random_objects(count: int, seed: int, voxels: int = VOXELS) -> VoxelObjects:
    """``count`` objects drawn from ``seed``: shape, colour, pattern, half-extents and azimuth uniform.

    ``voxels``: cells per side of their voxel truth; the draws and the images do not depend on it.
    """
    if count < 0:
        raise ConfigError(f"random_objects: count must be >= 0, got {count}")
    g = torch.Generator().manual_seed(seed)
    shape = torch.randint(len(SHAPES), (count,), generator=g)
    color = torch.randint(len(COLORS), (count,), generator=g)
    pattern = torch.randint(len(PATTERNS), (count,), generator=g)
    extents = _EXTENT[0] + (_EXTENT[1] - _EXTENT[0]) * torch.rand(count, 3, generator=g)
    azimuth = torch.rand(count, generator=g) * (math.pi / 2)
    return render_objects(shape, extents, azimuth, color, pattern, voxels=voxels)
