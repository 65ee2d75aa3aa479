"""Pinhole camera and directional light for pybullet's TinyRenderer.

One :class:`Camera` owns every geometric fact a renderer and a data set need:
the OpenGL view and projection matrices handed to ``p.getCameraImage``, the
projection of 3D points to ``(u, v, depth)`` pixel coordinates (CLEVR's
``pixel_coords``), the inverse (pixels back to world points), the conversion of
pybullet's non-linear depth buffer to metric depth, and the ground-plane
directions that define CLEVR's spatial relations.

Conventions:

* World: z up, the ground is the plane z = 0, scene units as in CLEVR.
* Pixels: ``u`` grows to the right, ``v`` downwards, ``(0, 0)`` is the top-left
  corner of the top-left pixel, so pixel ``(col, row)`` has its centre at
  ``(col + 0.5, row + 0.5)``.
* Depth: distance along the camera's viewing axis (eye-space ``-z``), the same
  quantity Blender's ``world_to_camera_view`` gives CLEVR as the third entry of
  ``pixel_coords``.

The default camera is CLEVR's (Johnson et al., CVPR 2017, ``base_scene.blend``):
eye at about (7.36, -6.93, 4.96) looking at the origin with a 35 mm lens on a
32 mm sensor (49.1 degrees horizontal field of view).  CLEVR jitters each eye
coordinate by up to 0.5 units and the lights by up to 1.0; :func:`jitter_camera`
and :func:`jitter_light` do the same from a seeded generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from physics.errors import ConfigError, DataError

__all__ = ["Camera", "Light", "CLEVR_CAMERA", "CLEVR_LIGHT", "jitter_camera", "jitter_light"]

Vec3 = tuple[float, float, float]


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n == 0.0:
        raise ConfigError(f"a direction must not be the zero vector, got {v.tolist()}")
    return v / n


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking from ``eye`` at ``target``.

    Args:
        eye: Camera position (world units).
        target: Point the camera looks at.
        up: World up hint (must not be parallel to the viewing axis).
        fov_x_deg: Horizontal field of view in degrees (CLEVR: 49.13).
        width: Image width in pixels.
        height: Image height in pixels.
        near: Near clipping distance.
        far: Far clipping distance; pixels at ``far`` are background.
    """

    eye: Vec3 = (7.358891487121582, -6.925790786743164, 4.958309173583984)
    target: Vec3 = (0.0, 0.0, 0.0)
    up: Vec3 = (0.0, 0.0, 1.0)
    fov_x_deg: float = 2.0 * math.degrees(math.atan(16.0 / 35.0))  # 35 mm lens, 32 mm sensor
    width: int = 480
    height: int = 320
    near: float = 0.1
    far: float = 100.0

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ConfigError(f"camera image size must be positive, got {self.width}x{self.height}")
        if not 0.0 < self.fov_x_deg < 180.0:
            raise ConfigError(f"camera fov_x_deg must be in (0, 180), got {self.fov_x_deg}")
        if not 0.0 < self.near < self.far:
            raise ConfigError(f"camera needs 0 < near < far, got near={self.near}, far={self.far}")
        forward = np.subtract(self.target, self.eye)
        if np.linalg.norm(np.cross(_unit(forward), _unit(np.asarray(self.up, float)))) < 1e-6:
            raise ConfigError(f"camera up {self.up} is parallel to the viewing axis {forward.tolist()}")

    # ------------------------------------------------------------------ frames
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camera axes in world coordinates: (right, up, forward), unit vectors [3]."""
        right, up, forward = self._frame[:3]
        return right.copy(), up.copy(), forward.copy()

    @cached_property
    def _frame(self) -> tuple[np.ndarray, ...]:
        """(right, up, forward, view [4, 4], projection [4, 4]), read-only, computed once per camera.

        A video projects every object's centre at every frame of every re-simulation (tens of
        thousands of calls); rebuilding the matrices each time was a fifth of its simulation time.
        The camera is frozen, so the cache can never go stale.
        """
        forward = _unit(np.subtract(self.target, self.eye).astype(float))
        right = _unit(np.cross(forward, np.asarray(self.up, float)))
        up = np.cross(right, forward)
        eye = np.asarray(self.eye, float)
        view = np.eye(4)
        view[0, :3], view[1, :3], view[2, :3] = right, up, -forward
        view[:3, 3] = -view[:3, :3] @ eye
        f = 1.0 / math.tan(math.radians(self.fov_y_deg) / 2.0)
        n, fa = self.near, self.far
        proj = np.zeros((4, 4))
        proj[0, 0] = f * self.height / self.width
        proj[1, 1] = f
        proj[2, 2] = (fa + n) / (n - fa)
        proj[2, 3] = 2.0 * fa * n / (n - fa)
        proj[3, 2] = -1.0
        out = (right, up, forward, view, proj)
        for a in out:
            a.setflags(write=False)
        return out

    @property
    def fov_y_deg(self) -> float:
        """Vertical field of view in degrees (pybullet's projection takes this one)."""
        return self._fov_y_deg(self.height, self.width)

    def _fov_y_deg(self, height: int, width: int) -> float:
        half = math.tan(math.radians(self.fov_x_deg) / 2.0) * height / width
        return 2.0 * math.degrees(math.atan(half))

    def half_fov_tangents(self, image_hw: tuple[int, int] | None = None) -> tuple[float, float]:
        """(tan(fov_x / 2), tan(fov_y / 2)): the image plane's half extents at unit depth.

        Args:
            image_hw: (H, W) of an image with this field of view at another resolution
                (the vertical extent follows its aspect); default the camera's own size.
        """
        h, w = image_hw or (self.height, self.width)
        return math.tan(math.radians(self.fov_x_deg) / 2.0), math.tan(math.radians(self._fov_y_deg(h, w)) / 2.0)

    def view_matrix(self) -> np.ndarray:
        """World -> eye transform, [4, 4] (OpenGL look-at; the camera looks along -z)."""
        return self._frame[3].copy()

    def projection_matrix(self) -> np.ndarray:
        """Eye -> clip transform, [4, 4] (OpenGL perspective)."""
        return self._frame[4].copy()

    def pybullet_matrices(self) -> tuple[list[float], list[float]]:
        """(viewMatrix, projectionMatrix) as the column-major 16-lists pybullet expects."""
        return (
            self.view_matrix().flatten(order="F").tolist(),
            self.projection_matrix().flatten(order="F").tolist(),
        )

    # ------------------------------------------------------------------ geometry
    def project(self, points: np.ndarray) -> np.ndarray:
        """World points [N, 3] -> pixel coordinates [N, 3] as (u, v, depth)."""
        pts = np.atleast_2d(np.asarray(points, float))
        homo = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
        view, proj = self._frame[3:]
        eye_pts = homo @ view.T
        clip = eye_pts @ proj.T
        ndc = clip[:, :3] / clip[:, 3:4]
        u = (ndc[:, 0] + 1.0) * 0.5 * self.width
        v = (1.0 - ndc[:, 1]) * 0.5 * self.height
        return np.stack([u, v, -eye_pts[:, 2]], axis=1)

    def pixel_rays(self) -> np.ndarray:
        """World-space ray through each pixel centre, scaled to unit depth, [H, W, 3].

        ``eye + depth[..., None] * pixel_rays()`` is the world point seen at a pixel.
        """
        return self.pixel_rays_at(np.arange(self.height)[:, None], np.arange(self.width)[None, :])

    def pixel_rays_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Rays (as :meth:`pixel_rays`) through the centres of pixels ``(rows, cols)``.

        Args:
            rows, cols: Integer pixel indices, broadcastable to a common shape S.

        Returns:
            float64 [*S, 3].
        """
        return self.rays_through(np.asarray(cols) + 0.5, np.asarray(rows) + 0.5)

    def image_plane(
        self, u: np.ndarray, v: np.ndarray, image_hw: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Continuous pixel positions -> image-plane coordinates (x, y) at unit depth.

        The ray through pixel position ``(u, v)`` is ``forward + x * right + y * up``
        (:meth:`axes`); every ray of the framework is built from this one mapping.

        Args:
            u, v: Pixel coordinates, u to the right and v down, pixel centres at
                i + 0.5 (as :meth:`project` gives them); broadcastable.
            image_hw: (H, W) of an image with this field of view at another
                resolution; default the camera's own size.

        Returns:
            (x, y), float64 arrays of the broadcast shape.
        """
        h, w = image_hw or (self.height, self.width)
        tan_x, tan_y = self.half_fov_tangents((h, w))
        return (np.asarray(u, float) / w * 2.0 - 1.0) * tan_x, (1.0 - np.asarray(v, float) / h * 2.0) * tan_y

    def rays_through(self, u: np.ndarray, v: np.ndarray, image_hw: tuple[int, int] | None = None) -> np.ndarray:
        """World-space rays at unit depth through pixel positions ``(u, v)`` (as :meth:`image_plane`), [*S, 3]."""
        x, y = self.image_plane(u, v, image_hw)
        right, up, forward = self._frame[:3]
        return forward + x[..., None] * right + y[..., None] * up

    def unproject(self, depth: np.ndarray) -> np.ndarray:
        """Metric depth image [H, W] -> world points [H, W, 3]."""
        return np.asarray(self.eye, float)[None, None, :] + depth[..., None] * self.pixel_rays()

    def linear_depth(self, buffer: np.ndarray) -> np.ndarray:
        """pybullet's depth buffer (non-linear, in [0, 1]) -> metric depth [H, W] float32."""
        buf = np.asarray(buffer, np.float64)
        depth = self.far * self.near / (self.far - (self.far - self.near) * buf)
        return depth.astype(np.float32)

    def directions(self) -> dict[str, Vec3]:
        """CLEVR's relation directions for this camera.

        As in CLEVR's ``render_images.py``: ``behind`` is the viewing axis and
        ``left`` the camera's -x axis, both projected onto the ground plane and
        normalised; ``front``/``right`` are their negatives; ``above``/``below``
        are +z / -z.
        """
        right, _, forward = self.axes()
        behind = _unit(np.array([forward[0], forward[1], 0.0]))
        left = _unit(np.array([-right[0], -right[1], 0.0]))
        as_tuple = lambda v: tuple(round(float(x), 6) + 0.0 for x in v)  # noqa: E731 (+0.0: no -0.0)
        return {
            "left": as_tuple(left),
            "right": as_tuple(-left),
            "behind": as_tuple(behind),
            "front": as_tuple(-behind),
            "above": (0.0, 0.0, 1.0),
            "below": (0.0, 0.0, -1.0),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Camera:
        """Rebuild a camera from a scene file's ``camera`` record (see ``ClevrWorld.state``).

        Raises:
            DataError: a field is missing or not a number, naming it.
        """
        try:
            return cls(
                eye=tuple(float(x) for x in data["eye"]),
                target=tuple(float(x) for x in data.get("target", (0.0, 0.0, 0.0))),
                up=tuple(float(x) for x in data.get("up", (0.0, 0.0, 1.0))),
                fov_x_deg=float(data["fov_x_deg"]),
                width=int(data["width"]),
                height=int(data["height"]),
            )
        except KeyError as exc:
            raise DataError(f"camera record lacks field {exc.args[0]!r}; needs eye, fov_x_deg, width, height") from None
        except (TypeError, ValueError) as exc:
            raise DataError(f"camera record {dict(data)!r} is malformed: {exc}") from None

    def with_size(self, width: int, height: int) -> Camera:
        """The same camera rendering ``width`` x ``height`` pixels."""
        return replace(self, width=width, height=height)


@dataclass(frozen=True)
class Light:
    """TinyRenderer's single directional light plus the shading terms we add.

    Args:
        direction: Direction from the scene towards the light (normalised on use).
        color: RGB multiplier of the light, each in [0, 1].
        ambient: TinyRenderer's ambient coefficient.
        diffuse: TinyRenderer's diffuse coefficient.
        shadow: Brightness of the ground in an object's shadow (1 = no shadows).
        metal_specular: Strength of the white highlight on metal objects.
        metal_shininess: Phong exponent of that highlight (higher = tighter).
    """

    direction: Vec3 = (-1.0, -2.0, 3.0)
    color: Vec3 = (1.0, 1.0, 1.0)
    ambient: float = 0.55
    diffuse: float = 0.55
    shadow: float = 0.62
    metal_specular: float = 0.9
    metal_shininess: float = 40.0

    def __post_init__(self) -> None:
        if self.direction[2] <= 0.0:
            raise ConfigError(f"light direction must point upwards (z > 0), got {self.direction}")
        if not 0.0 <= self.shadow <= 1.0:
            raise ConfigError(f"light shadow brightness must be in [0, 1], got {self.shadow}")

    def unit_direction(self) -> np.ndarray:
        """The direction towards the light as a unit vector [3]."""
        return _unit(np.asarray(self.direction, float))


CLEVR_CAMERA = Camera()
CLEVR_LIGHT = Light()


def jitter_camera(camera: Camera, rng: np.random.Generator, amount: float) -> Camera:
    """``camera`` with each eye coordinate moved by U(-amount, amount) (CLEVR: 0.5)."""
    if amount <= 0.0:
        return camera
    delta = rng.uniform(-amount, amount, size=3)
    return replace(camera, eye=tuple(float(e + d) for e, d in zip(camera.eye, delta, strict=True)))


def jitter_light(light: Light, rng: np.random.Generator, amount: float) -> Light:
    """``light`` with its direction's x, y moved by U(-amount, amount) (CLEVR: 1.0)."""
    if amount <= 0.0:
        return light
    dx, dy = rng.uniform(-amount, amount, size=2)
    x, y, z = light.direction
    return replace(light, direction=(float(x + dx), float(y + dy), float(z)))
