"""Deferred shading pass for TinyRenderer images: ground shadows and metal highlights.

pybullet's TinyRenderer has one global set of lighting coefficients per
``getCameraImage`` call: it ignores the per-object ``specularColor`` that
``changeVisualShape`` sets (only the OpenGL renderer reads it), and its shadow
map covers a fixed frustum around the origin, so with CLEVR's camera the ground
is either all lit or all shadowed.  CLEVR's two materials (matte rubber, shiny
metal) and its cast shadows therefore cannot come from TinyRenderer alone.

This pass runs after TinyRenderer, on its RGB, metric depth and instance mask:

0. **Floor.**  TinyRenderer renders only the objects (filling a floor quad was
   most of its time); :func:`paint_floor` fills the background with the exact
   plane z = 0: its depth from the pixel rays, its constant Lambert shade.

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
from functools import lru_cache

import numpy as np

from physics.worlds.camera import Camera, Light

__all__ = ["Solid", "shade", "paint_floor", "paint_floor_at", "floor_depth", "SKY_RGB"]

SKY_RGB = (200, 200, 200)  # beyond the far plane (not in view for CLEVR's camera)

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
    out = rgb.copy()
    to_light = light.unit_direction()
    eye = np.asarray(camera.eye, float)
    h, w = mask.shape
    floor, gx, gy = _floor_geometry(camera)
    shadowed = np.zeros(mask.shape, dtype=bool)
    rows, cols = [h, 0], [w, 0]  # the pixel box holding every shadow test
    for solid in solids:
        # the shadow of the solid's bounding sphere lies in this disc on the floor; work on its pixel box
        c = solid.center
        foot = c[:2] - c[2] / to_light[2] * to_light[:2]
        reach = solid.bounding_radius / to_light[2]
        box = _pixel_box(camera, foot, reach, w, h)
        if box is None:
            continue
        v0, v1, u0, u1 = box
        rows[:] = min(rows[0], v0), max(rows[1], v1)
        cols[:] = min(cols[0], u0), max(cols[1], u1)
        sx, sy = gx[v0:v1, u0:u1], gy[v0:v1, u0:u1]
        near = (
            (mask[v0:v1, u0:u1] < 0)  # background pixels that show the floor
            & (floor[v0:v1, u0:u1] < camera.far)
            & ~shadowed[v0:v1, u0:u1]
            & (np.hypot(sx - np.float32(foot[0]), sy - np.float32(foot[1])) < reach)
        )
        if near.any():
            origins = np.stack([sx[near], sy[near], np.zeros(int(near.sum()), np.float32)], axis=1)
            shadowed[v0:v1, u0:u1][near] = _ray_hits(solid, origins.astype(np.float64), to_light)
    if rows[0] < rows[1]:  # only pixels inside a tested box can be shadowed
        box_out, box_shadowed = out[rows[0]:rows[1], cols[0]:cols[1]], shadowed[rows[0]:rows[1], cols[0]:cols[1]]
        box_out[box_shadowed] = np.rint(box_out[box_shadowed] * np.float32(light.shadow)).astype(np.uint8)

    metal = [k for k, solid in enumerate(solids) if solid.metal]
    if metal:
        flat = mask.ravel()
        objects = np.flatnonzero(flat >= 0)  # ascending, as np.flatnonzero(flat == k) lists each object's pixels
        owner = flat[objects]
        for k in metal:
            idx = objects[owner == k]
            if len(idx) == 0:
                continue
            solid = solids[k]
            p = eye + depth.ravel()[idx, None].astype(np.float64) * camera.pixel_rays_at(idx // w, idx % w)
            n = _normals(solid, p)
            v = eye[None, :] - p
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            ndotl = n @ to_light
            refl_light = 2.0 * ndotl[:, None] * n - to_light[None, :]
            cos_r = np.clip(np.sum(refl_light * v, axis=1), 0.0, 1.0) * (ndotl > 0.0)
            spec = cos_r**light.metal_shininess
            broad = cos_r**6  # a wide sheen under the sharp highlight
            ndotv = np.clip(np.sum(n * v, axis=1), 0.0, 1.0)
            refl_view = 2.0 * ndotv[:, None] * n - v
            # a studio environment: bright sky above the horizon, the grey floor below it
            env = np.where(refl_view[:, 2] > 0.0, 0.35 + 0.65 * refl_view[:, 2], 0.3)
            fresnel = (1.0 - ndotv) ** 3  # grazing angles mirror more (Schlick's approximation)
            base = np.asarray(solid.base_rgb, np.float32)
            # metal: less diffuse light, more of the environment mirrored in the object's colour
            pix = out.reshape(-1, 3)
            shaded = pix[idx].astype(np.float32) * 0.5 + base[None, :] * (0.05 + 0.55 * env[:, None])
            shaded += 255.0 * (light.metal_specular * (spec + 0.2 * broad) + 0.25 * fresnel * env)[:, None]
            pix[idx] = np.clip(np.rint(shaded), 0, 255).astype(np.uint8)
    return out


def paint_floor(
    rgb: np.ndarray,
    depth: np.ndarray,
    mask: np.ndarray,
    camera: Camera,
    light: Light,
    floor_rgb: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Fill background pixels with the floor plane z = 0 (or sky beyond ``camera.far``).

    The floor's colour is TinyRenderer's Lambert term for a +z normal,
    ``floor_rgb * min(ambient + diffuse * max(L_z, 0), 1) * light.color``, the
    same everywhere for a directional light.

    Args:
        rgb: uint8 [H, W, 3] rendered without a floor.
        depth: float32 [H, W] metric depth (``far`` where nothing was hit).
        mask: int [H, W], ``-1`` where no object is visible.
        floor_rgb: Floor albedo, each in [0, 1].

    Returns:
        (rgb, depth) with the floor filled in (new arrays).
    """
    objects = np.flatnonzero(np.asarray(mask).ravel() >= 0)
    h, w = np.shape(mask)
    return paint_floor_at(
        objects, np.asarray(rgb).reshape(h * w, 3)[objects], np.asarray(depth).reshape(h * w)[objects],
        camera, light, floor_rgb,
    )


def paint_floor_at(
    objects: np.ndarray,
    object_rgb: np.ndarray,
    object_depth: np.ndarray,
    camera: Camera,
    light: Light,
    floor_rgb: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`paint_floor` given only the object pixels: the rest of the image is the floor or sky.

    The background (floor shade, sky, floor depth) depends only on the camera and the
    light, so it is built once per camera and copied; each frame then writes its object
    pixels over it (a few percent of a CLEVRER frame).

    Args:
        objects: Flat pixel indices (row * W + col) that show an object, int [M].
        object_rgb: Their colours, uint8 [M, 3].
        object_depth: Their metric depth, float [M] (stored as float32).

    Returns:
        (rgb uint8 [H, W, 3], depth float32 [H, W]), new arrays.
    """
    floor_image = _floor_image(camera, light, tuple(float(c) for c in floor_rgb))
    rgb = floor_image.copy()
    rgb.reshape(-1, 3)[objects] = object_rgb
    depth = _cached_floor_depth(camera).copy()  # floor depth is `far` where the floor is not seen
    depth.reshape(-1)[objects] = np.asarray(object_depth).astype(np.float32, copy=False)
    return rgb, depth


@lru_cache(maxsize=4)
def _floor_image(camera: Camera, light: Light, floor_rgb: tuple[float, ...]) -> np.ndarray:
    """The image with no object in it: the floor's constant shade where it is seen, sky elsewhere (read-only)."""
    floor = _cached_floor_depth(camera)
    hits_floor = floor < camera.far
    intensity = min(light.ambient + light.diffuse * max(float(light.unit_direction()[2]), 0.0), 1.0)
    shade_rgb = np.rint(np.asarray(floor_rgb) * 255.0 * intensity * np.asarray(light.color)).astype(np.uint8)
    image = np.empty((*floor.shape, 3), np.uint8)
    image[:] = np.asarray(SKY_RGB, np.uint8)
    image[hits_floor] = shade_rgb
    image.setflags(write=False)
    return image


def floor_depth(camera: Camera) -> np.ndarray:
    """Metric depth of the plane z = 0 at every pixel, float32 [H, W] (``far`` where it is not seen)."""
    return _cached_floor_depth(camera).copy()


def _cached_floor_depth(camera: Camera) -> np.ndarray:
    return _floor_geometry(camera)[0]


@lru_cache(maxsize=4)
def _floor_geometry(camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel's ray meets the floor z = 0: (depth, x, y), each float32 [H, W].

    Depth is ``far`` where the floor is not seen.  Built from outer sums of the
    per-column and per-row ray terms, never an [H, W, 3] array.
    """
    right, up, forward = camera.axes()
    xs, _ = camera.image_plane(np.arange(camera.width) + 0.5, 0.0)
    _, ys = camera.image_plane(0.0, np.arange(camera.height) + 0.5)

    def component(i: int) -> np.ndarray:
        return forward[i] + xs[None, :] * right[i] + ys[:, None] * up[i]

    ray_z = component(2)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ray_z < 0.0, -camera.eye[2] / ray_z, np.inf)
    seen = (t > camera.near) & (t < camera.far)
    t = np.where(seen, t, camera.far)
    out = (
        t.astype(np.float32),
        (camera.eye[0] + t * component(0)).astype(np.float32),
        (camera.eye[1] + t * component(1)).astype(np.float32),
    )
    for a in out:
        a.setflags(write=False)
    return out


def _pixel_box(camera: Camera, foot: np.ndarray, reach: float, w: int, h: int) -> tuple[int, int, int, int] | None:
    """Pixel rows/cols (v0, v1, u0, u1) covering a ground disc, or None when off screen."""
    corners = np.array(
        [[foot[0] + sx * reach, foot[1] + sy * reach, 0.0] for sx in (-1, 1) for sy in (-1, 1)]
    )
    uvd = camera.project(corners)
    if (uvd[:, 2] <= camera.near).any():  # the square reaches behind the camera: take the whole image
        return 0, h, 0, w
    u0 = max(0, int(np.floor(uvd[:, 0].min())) - 1)
    u1 = min(w, int(np.ceil(uvd[:, 0].max())) + 1)
    v0 = max(0, int(np.floor(uvd[:, 1].min())) - 1)
    v1 = min(h, int(np.ceil(uvd[:, 1].max())) + 1)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


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
