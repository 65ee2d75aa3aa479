"""Deferred shading pass for TinyRenderer images: ground shadows and metal highlights.

pybullet's TinyRenderer has one global set of lighting coefficients per
``getCameraImage`` call: it ignores the per-object ``specularColor`` that
``changeVisualShape`` sets (only the OpenGL renderer reads it), and its shadow
map covers a fixed frustum around the origin, so with CLEVR's camera the ground
is either all lit or all shadowed.  CLEVR's two materials (matte rubber, shiny
metal) and its cast shadows therefore cannot come from TinyRenderer alone.

This pass runs after TinyRenderer, on its RGB, metric depth and instance mask:

1. **Cast shadows.**  Every ground pixel is turned back into a world point
   (:meth:`Camera.unproject`) and a ray is cast from it towards the light; if it
   hits an object (exact ray tests against the object's own box, sphere or
   cylinder, in the object's frame) the pixel is darkened to ``light.shadow``.
   Only pixels inside each object's shadow footprint bound are tested.
2. **Metal.**  For metal pixels the exact surface normal is known from the
   object's shape and pose, so a Phong highlight (white, ``light.metal_specular``)
   and a sky/ground reflection term are added; rubber keeps TinyRenderer's
   matte shading.

Masks and depth are untouched: they stay exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from physics.worlds.camera import Camera, Light

__all__ = ["Solid", "shade"]

_EPS = 1e-6
_SHADOW_T_MIN = 1e-3  # ignore hits at the ground point itself (self-intersection)


@dataclass(frozen=True)
class Solid:
    """The exact geometry of one rendered object.

    Args:
        shape: ``cube``, ``sphere`` or ``cylinder``.
        center: Centre in world coordinates, [3].
        rotation: Body-to-world rotation matrix, [3, 3].
        half: Half extent: cube half side, sphere radius, cylinder radius and half height.
        metal: Whether the object is metal (shiny) rather than rubber.
        base_rgb: Its colour, RGB in [0, 255].
    """

    shape: str
    center: np.ndarray
    rotation: np.ndarray
    half: float
    metal: bool
    base_rgb: tuple[int, int, int]

    @property
    def bounding_radius(self) -> float:
        """Radius of a sphere about ``center`` that contains the solid."""
        if self.shape == "cube":
            return self.half * np.sqrt(3.0)
        if self.shape == "cylinder":
            return self.half * np.sqrt(2.0)
        return self.half


def shade(
    rgb: np.ndarray,
    depth: np.ndarray,
    mask: np.ndarray,
    camera: Camera,
    light: Light,
    solids: Sequence[Solid],
) -> np.ndarray:
    """Add cast shadows and metal highlights to a TinyRenderer image.

    Args:
        rgb: TinyRenderer colour image, uint8 [H, W, 3].
        depth: Metric depth, float32 [H, W] (``far`` where nothing was hit).
        mask: Instance ids, int [H, W]: ``k`` for ``solids[k]``, -1 for ground/sky.
        camera: The camera that rendered the image.
        light: The light (direction, shadow and metal terms).
        solids: The objects in mask order.

    Returns:
        The shaded image, uint8 [H, W, 3] (a new array; inputs are not modified).
    """
    out = rgb.astype(np.float32)
    to_light = light.unit_direction()
    points = camera.unproject(depth.astype(np.float64))  # [H, W, 3]
    ground = (mask < 0) & (depth < camera.far * 0.999) & (np.abs(points[..., 2]) < 0.05)
    shadowed = np.zeros(mask.shape, dtype=bool)
    for solid in solids:
        # the shadow of the bounding sphere lies within this circle on the ground
        c = solid.center
        foot = c[:2] - c[2] / to_light[2] * to_light[:2]
        reach = solid.bounding_radius / to_light[2]
        near = ground & ~shadowed & (np.hypot(points[..., 0] - foot[0], points[..., 1] - foot[1]) < reach)
        if not near.any():
            continue
        origins = points[near]
        shadowed[near] = _ray_hits(solid, origins, to_light)
    out[shadowed] *= light.shadow

    eye = np.asarray(camera.eye, float)
    for k, solid in enumerate(solids):
        if not solid.metal:
            continue
        sel = mask == k
        if not sel.any():
            continue
        p = points[sel]
        n = _normals(solid, p)
        v = eye[None, :] - p
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ndotl = n @ to_light
        refl_light = 2.0 * ndotl[:, None] * n - to_light[None, :]
        spec = np.clip(np.sum(refl_light * v, axis=1), 0.0, 1.0) ** light.metal_shininess
        spec *= ndotl > 0.0
        broad = np.clip(np.sum(refl_light * v, axis=1), 0.0, 1.0) ** 6 * (ndotl > 0.0)  # wide sheen
        refl_view = 2.0 * np.sum(n * v, axis=1, keepdims=True) * n - v
        sky = np.clip(refl_view[:, 2], 0.0, 1.0)  # reflections of the bright sky vs. the ground
        base = np.asarray(solid.base_rgb, np.float32)
        # metal: less diffuse light, more of the environment mirrored in the object's colour
        shaded = out[sel] * 0.5 + base[None, :] * (0.05 + 0.55 * sky[:, None])
        shaded += 255.0 * light.metal_specular * spec[:, None]
        shaded += 255.0 * 0.2 * light.metal_specular * broad[:, None]
        out[sel] = shaded
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- geometry
def _local(solid: Solid, points: np.ndarray) -> np.ndarray:
    return (points - solid.center[None, :]) @ solid.rotation


def _slab(o: np.ndarray, d: float, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter interval inside |o + t d| <= half, per origin."""
    if abs(d) < _EPS:
        inside = np.abs(o) <= half
        return np.where(inside, -np.inf, np.inf), np.where(inside, np.inf, -np.inf)
    t1 = (-half - o) / d
    t2 = (half - o) / d
    return np.minimum(t1, t2), np.maximum(t1, t2)


def _ray_hits(solid: Solid, origins: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Whether rays ``origins + t * direction`` (t > 0) hit the solid, [M] bool."""
    o = _local(solid, origins)
    d = direction @ solid.rotation
    h = solid.half
    if solid.shape == "sphere":
        b = o @ d
        c = np.sum(o * o, axis=1) - h * h
        disc = b * b - c
        return (disc >= 0.0) & (-b + np.sqrt(np.maximum(disc, 0.0)) > _SHADOW_T_MIN)
    if solid.shape == "cube":
        lo = np.full(len(o), -np.inf)
        hi = np.full(len(o), np.inf)
        for axis in range(3):
            t0, t1 = _slab(o[:, axis], float(d[axis]), h)
            lo, hi = np.maximum(lo, t0), np.minimum(hi, t1)
        return hi >= np.maximum(lo, _SHADOW_T_MIN)
    # cylinder: radius h about the local z axis, half height h
    a = d[0] ** 2 + d[1] ** 2
    b = 2.0 * (o[:, 0] * d[0] + o[:, 1] * d[1])
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - h * h
    if a < _EPS:
        inside = c <= 0.0
        lo = np.where(inside, -np.inf, np.inf)
        hi = np.where(inside, np.inf, -np.inf)
    else:
        disc = b * b - 4.0 * a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        lo = np.where(disc >= 0.0, (-b - root) / (2.0 * a), np.inf)
        hi = np.where(disc >= 0.0, (-b + root) / (2.0 * a), -np.inf)
    t0, t1 = _slab(o[:, 2], float(d[2]), h)
    lo, hi = np.maximum(lo, t0), np.minimum(hi, t1)
    return hi >= np.maximum(lo, _SHADOW_T_MIN)


def _normals(solid: Solid, points: np.ndarray) -> np.ndarray:
    """Outward unit normals of the solid at surface points [M, 3] (world frame)."""
    p = _local(solid, points)
    if solid.shape == "sphere":
        n = p
    elif solid.shape == "cube":
        k = np.argmax(np.abs(p), axis=1)
        n = np.zeros_like(p)
        n[np.arange(len(p)), k] = np.sign(p[np.arange(len(p)), k])
    else:
        radial = np.hypot(p[:, 0], p[:, 1])
        cap = np.abs(p[:, 2]) >= radial  # nearer the flat cap than the side (radius = half height)
        n = np.where(cap[:, None], np.stack([0 * p[:, 0], 0 * p[:, 1], np.sign(p[:, 2])], 1),
                     np.stack([p[:, 0], p[:, 1], 0 * p[:, 2]], 1))
    n = n @ solid.rotation.T
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), _EPS)
