"""CLEVR-style static scenes in pybullet: placement, settling and exact renders.

A :class:`ClevrWorld` owns one pybullet client in DIRECT mode (no display, no
GPU).  ``reset(seed)`` builds a scene the way CLEVR's generator does (Johnson et
al., CVPR 2017):

1. jitter the camera and the light (seeded);
2. take the relation directions from that camera (:meth:`Camera.directions`)
   and sample a layout with CLEVR's distance and margin rules along them
   (:func:`physics.worlds.clevr_layout.sample_layout`);
3. create the bodies (cubes with half side ``r / sqrt(2)``, spheres of radius
   ``r``, cylinders of radius ``r`` and height ``2 r``, rotated about z), drop
   them a hair above the ground and step the simulation until they rest;
4. render RGB, metric depth and the instance mask with TinyRenderer; if any
   object shows fewer than ``min_pixels`` pixels (occluded or off screen), place
   a new layout from the same generator (CLEVR's visibility check).

Final positions and rotations are read back from pybullet.  Everything is a
pure function of the seed: ``resetSimulation`` clears every trace of earlier
scenes, so a reused world and a fresh one give the same bytes.

Render outputs (shapes for an ``H x W`` camera):

* ``rgb``   uint8 [H, W, 3]
* ``depth`` float32 [H, W], distance along the viewing axis (floor included); ``camera.far`` for sky
* ``mask``  int16 [H, W]: ``k`` where object ``k`` (scene order) is visible,
  ``-1`` for background (ground and sky)

``state()`` describes the scene as an official CLEVR scene dict (``objects`` with
``3d_coords``, ``rotation``, ``pixel_coords`` ..., and ``directions``); the
perception layer adds ``relationships``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from physics.config_types import check_field_types
from physics.errors import ConfigError, StateError
from physics.worlds._pybullet import BulletClient
from physics.worlds._pybullet import pybullet as p
from physics.worlds.camera import (
    CLEVR_CAMERA,
    CLEVR_LIGHT,
    Camera,
    Light,
    jitter_camera,
    jitter_light,
)
from physics.worlds.clevr_layout import LayoutConfig, ObjectSpec, sample_layout
from physics.worlds.clevr_properties import COLOR_RGB, SIZE_RADIUS
from physics.worlds.clevr_shading import Solid, paint_floor_at, shade

__all__ = [
    "ClevrWorldConfig",
    "ClevrWorld",
    "ClevrRender",
    "render_clevr_scene",
    "process_world",
    "BACKGROUND",
]

BACKGROUND = -1  # mask value of pixels that show no object
GROUND_RGB = (0.62, 0.62, 0.60)  # CLEVR's light grey floor
_SETTLE_CHECK_EVERY = 10  # steps between rest checks while settling


@dataclass(frozen=True)
class ClevrWorldConfig:
    """Everything that shapes a CLEVR-style scene and its render (CLEVR's defaults).

    Args:
        width: Image width in pixels.
        height: Image height in pixels.
        layout: Placement rules (objects, extent, gaps, CoGenT palettes).
        camera: Base camera before jitter (its size is replaced by width x height).
        camera_jitter: Max shift of each eye coordinate (CLEVR: 0.5).
        light: Base light before jitter.
        light_jitter: Max shift of the light direction's x and y (CLEVR: 1.0).
        min_pixels: Fewest visible pixels per object (CLEVR: 200); else resample.
        max_layouts: Layouts tried before giving up with an error.
        settle_steps: Most simulation steps spent letting objects come to rest.
        rest_speed: Objects count as at rest below this linear/angular speed.
        drop_height: Gap above the ground each object starts from.
        timestep: Physics step in seconds.
    """

    width: int = 480
    height: int = 320
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    camera: Camera = CLEVR_CAMERA
    camera_jitter: float = 0.5
    light: Light = CLEVR_LIGHT
    light_jitter: float = 1.0
    min_pixels: int = 200
    max_layouts: int = 200
    settle_steps: int = 300
    rest_speed: float = 1e-3
    drop_height: float = 0.005
    timestep: float = 1.0 / 240.0

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.min_pixels < 0:
            raise ConfigError(f"min_pixels must be >= 0, got {self.min_pixels}")
        if self.max_layouts < 1:
            raise ConfigError(f"max_layouts must be >= 1, got {self.max_layouts}")
        if self.settle_steps < 0:
            raise ConfigError(f"settle_steps must be >= 0, got {self.settle_steps}")
        if self.layout.extent > 4.5:
            raise ConfigError(
                f"layout extent {self.layout.extent} puts objects outside CLEVR's camera view; allowed: <= 4.5"
            )


@contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null for the duration (C-level prints included)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # captured or replaced stdout: nothing to silence
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _unit_sphere_mesh(slices: int = 32, stacks: int = 16) -> dict[str, list]:
    """A smooth UV sphere of radius 1 (pybullet's own GEOM_SPHERE visual is coarse)."""
    vertices, normals, uvs, indices = [], [], [], []
    for i in range(stacks + 1):
        theta = math.pi * i / stacks
        for j in range(slices + 1):
            phi = 2.0 * math.pi * j / slices
            v = [math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)]
            vertices.append(v)
            normals.append(v)
            uvs.append([j / slices, i / stacks])
    for i in range(stacks):
        for j in range(slices):
            a = i * (slices + 1) + j
            b = a + slices + 1
            indices += [a, b, a + 1, a + 1, b, b + 1]
    return {"vertices": vertices, "normals": normals, "uvs": uvs, "indices": indices}


_UNIT_SPHERE_MESH = _unit_sphere_mesh()


class ClevrRender(NamedTuple):
    """One rendered scene: CLEVR scene dict and images (shapes in the module docstring)."""

    scene: dict[str, Any]
    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


@dataclass
class _Body:
    spec: ObjectSpec
    uid: int
    half: float  # cube half side, sphere radius, cylinder radius (= half height)


class ClevrWorld:
    """A pybullet scene of CLEVR objects with ``reset(seed)``, ``step``, ``state`` and ``render``.

    Args:
        config: Scene and render parameters.

    >>> world = ClevrWorld(ClevrWorldConfig(width=120, height=80, min_pixels=10))
    >>> scene = world.reset(0)
    >>> rgb, depth, mask = world.render()
    >>> rgb.shape, int(mask.max()) == len(scene["objects"]) - 1
    ((80, 120, 3), True)
    """

    def __init__(self, config: ClevrWorldConfig = ClevrWorldConfig()) -> None:
        self.config = config
        with _stdout_silenced():  # pybullet prints "argv[0]=" on connect; keep CLI JSON clean
            self._client = BulletClient(connection_mode=p.DIRECT)
        self._bodies: list[_Body] = []
        self._camera = config.camera.with_size(config.width, config.height)
        self._light = config.light
        self._render_cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._seed: Any = None
        # seconds spent per stage since creation (build, settle, tinyrenderer, mask, shade); for profiling
        self.timings: dict[str, float] = dict.fromkeys(("build", "settle", "tinyrenderer", "mask", "shade"), 0.0)
        self.layouts_tried = 0  # layouts sampled since creation (> scenes when visibility forced resampling)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Disconnect the pybullet client (the world cannot be used afterwards)."""
        if self._client is not None:
            self._client.disconnect()
            self._client = None

    def __enter__(self) -> ClevrWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def camera(self) -> Camera:
        """The (jittered) camera of the current scene."""
        return self._camera

    @property
    def light(self) -> Light:
        """The (jittered) light of the current scene."""
        return self._light

    def reset(self, seed: int | Sequence[int]) -> dict[str, Any]:
        """Build, settle and check a new scene; return :meth:`state`.

        Args:
            seed: An int or a sequence of ints (e.g. ``(seed, split, index)``);
                the scene is a pure function of it.

        Raises:
            StateError: no layout passed the visibility check in ``max_layouts`` tries.
        """
        cfg = self.config
        rng = np.random.default_rng(seed)
        self._seed = seed
        self._camera = jitter_camera(cfg.camera, rng, cfg.camera_jitter).with_size(cfg.width, cfg.height)
        self._light = jitter_light(cfg.light, rng, cfg.light_jitter)
        directions = self._camera.directions()
        # CLEVR keeps the object count while it resamples layouts for visibility
        num_objects = int(rng.integers(cfg.layout.min_objects, cfg.layout.max_objects + 1))
        for _ in range(cfg.max_layouts):
            specs = sample_layout(rng, cfg.layout, directions, num_objects)
            self.layouts_tried += 1
            t0 = time.perf_counter()
            self._build(specs)
            t1 = time.perf_counter()
            self._settle()
            self.timings["build"] += t1 - t0
            self.timings["settle"] += time.perf_counter() - t1
            rgb, depth, mask = self._render_raw(self._camera)
            counts = np.bincount(mask.ravel() + 1, minlength=len(specs) + 1)[1:]
            if counts.min() >= cfg.min_pixels:
                self._render_cache = (rgb, depth, mask)
                return self.state()
        raise StateError(
            f"seed {seed!r}: no layout kept every object >= {cfg.min_pixels} visible pixels "
            f"in {cfg.max_layouts} tries; lower min_pixels or the object count, or raise the resolution"
        )

    def step(self, steps: int = 1) -> dict[str, Any]:
        """Advance the simulation ``steps`` steps (a static scene stays put) and return the state."""
        self._require_scene()
        for _ in range(steps):
            self._client.stepSimulation()
        self._render_cache = None
        return self.state()

    # ------------------------------------------------------------------ read-out
    def state(self) -> dict[str, Any]:
        """The scene as a CLEVR scene dict: ``objects`` (read back from pybullet), ``directions``,
        and two keys CLEVR's files lack: ``camera`` (eye, target, up, fov_x_deg, width,
        height) and ``light_direction`` (unit vector towards the light).

        Each object holds ``shape``, ``color``, ``material``, ``size``, ``3d_coords``
        (centre, scene units), ``rotation`` (degrees about z, in [0, 360)) and
        ``pixel_coords`` (``[u, v, depth]``: the centre's projection, u and v
        rounded to whole pixels as CLEVR does).
        """
        self._require_scene()
        objects = []
        for body in self._bodies:
            pos, quat = self._client.getBasePositionAndOrientation(body.uid)
            yaw = math.degrees(self._client.getEulerFromQuaternion(quat)[2]) % 360.0
            u, v, d = self._camera.project(np.asarray(pos))[0]
            s = body.spec
            objects.append(
                {
                    "shape": s.shape,
                    "color": s.color,
                    "material": s.material,
                    "size": s.size,
                    "3d_coords": [round(float(c), 6) + 0.0 for c in pos],
                    "rotation": round(yaw, 6) % 360.0,
                    "pixel_coords": [int(round(u)), int(round(v)), round(float(d), 6)],
                }
            )
        cam = self._camera
        return {
            "objects": objects,
            "directions": {k: list(v) for k, v in cam.directions().items()},
            # not in CLEVR's files: the exact camera and light, for derendering and re-rendering
            "camera": {
                "eye": [round(e, 6) + 0.0 for e in cam.eye],
                "target": list(cam.target),
                "up": list(cam.up),
                "fov_x_deg": round(cam.fov_x_deg, 6),
                "width": cam.width,
                "height": cam.height,
            },
            "light_direction": [round(float(x), 6) + 0.0 for x in self._light.unit_direction()],
        }

    def render(self, camera: Camera | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render the current scene: (rgb uint8 [H,W,3], depth float32 [H,W], mask int16 [H,W]).

        Args:
            camera: Another camera to render from; ``None`` uses the scene's
                (jittered) camera and returns the render made during ``reset``.
        """
        self._require_scene()
        if camera is None:
            if self._render_cache is None:
                self._render_cache = self._render_raw(self._camera)
            rgb, depth, mask = self._render_cache
        else:
            rgb, depth, mask = self._render_raw(camera)
        return rgb.copy(), depth.copy(), mask.copy()

    # ------------------------------------------------------------------ internals
    def _require_scene(self) -> None:
        if self._client is None:
            raise StateError("this ClevrWorld is closed; create a new one")
        if self._seed is None:
            raise StateError("ClevrWorld has no scene yet; call reset(seed) first")

    def _build(self, specs: Sequence[ObjectSpec]) -> None:
        c = self._client
        c.resetSimulation()
        c.setGravity(0.0, 0.0, -9.81)
        c.setTimeStep(self.config.timestep)
        # The floor collides but is not drawn: TinyRenderer spends most of its time filling a floor
        # quad (measured 92 ms vs 14 ms per 480x320 frame), so clevr_shading paints the infinite
        # plane z = 0 analytically (exact depth, constant Lambert shade).  A body without a visual
        # would be drawn from its collision plane, so it gets a speck far beyond the far plane.
        speck = c.createVisualShape(
            p.GEOM_BOX, halfExtents=[1e-3] * 3, visualFramePosition=[0.0, 0.0, -10.0 * self.config.camera.far]
        )
        c.createMultiBody(0.0, c.createCollisionShape(p.GEOM_PLANE), speck)
        self._bodies = []
        for s in specs:
            r = SIZE_RADIUS[s.size]
            rgba = [ch / 255.0 for ch in COLOR_RGB[s.color]] + [1.0]
            if s.shape == "cube":
                half = r / math.sqrt(2.0)  # CLEVR shrinks cubes so a rotated cube keeps its footprint
                col = c.createCollisionShape(p.GEOM_BOX, halfExtents=[half] * 3)
                vis = c.createVisualShape(p.GEOM_BOX, halfExtents=[half] * 3, rgbaColor=rgba)
            elif s.shape == "sphere":
                half = r
                col = c.createCollisionShape(p.GEOM_SPHERE, radius=r)
                vis = c.createVisualShape(
                    p.GEOM_MESH, rgbaColor=rgba, meshScale=[r, r, r], **_UNIT_SPHERE_MESH
                )
            elif s.shape == "cylinder":
                half = r
                col = c.createCollisionShape(p.GEOM_CYLINDER, radius=r, height=2.0 * r)
                vis = c.createVisualShape(p.GEOM_CYLINDER, radius=r, length=2.0 * r, rgbaColor=rgba)
            else:
                raise ConfigError(f"unknown shape {s.shape!r}; allowed: cube, sphere, cylinder")
            uid = c.createMultiBody(
                baseMass=1.0,
                baseCollisionShapeIndex=col,
                baseVisualShapeIndex=vis,
                basePosition=[s.position[0], s.position[1], half + self.config.drop_height],
                baseOrientation=c.getQuaternionFromEuler([0.0, 0.0, math.radians(s.rotation)]),
            )
            # rolling friction keeps spheres and lying cylinders from drifting while settling
            c.changeDynamics(uid, -1, lateralFriction=0.8, rollingFriction=0.01, spinningFriction=0.01)
            self._bodies.append(_Body(s, uid, half))
        self._render_cache = None

    def _settle(self) -> None:
        c = self._client
        cfg = self.config
        for step in range(1, cfg.settle_steps + 1):
            c.stepSimulation()
            if step % _SETTLE_CHECK_EVERY == 0 and self._at_rest():
                return

    def _at_rest(self) -> bool:
        for body in self._bodies:
            lin, ang = self._client.getBaseVelocity(body.uid)
            if max(map(abs, lin)) > self.config.rest_speed or max(map(abs, ang)) > 10 * self.config.rest_speed:
                return False
        return True

    def _solids(self) -> list[Solid]:
        out = []
        pose = self._client.getBasePositionAndOrientation  # one lookup: BulletClient makes a partial per access
        for body in self._bodies:
            pos, quat = pose(body.uid)
            rot = np.asarray(p.getMatrixFromQuaternion(quat), float).reshape(3, 3)
            out.append(
                Solid(
                    shape=body.spec.shape,
                    center=np.asarray(pos, float),
                    rotation=rot,
                    half=body.half,
                    metal=body.spec.material == "metal",
                    base_rgb=COLOR_RGB[body.spec.color],
                )
            )
        return out

    def _render_raw(self, camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        view, proj = camera.pybullet_matrices()
        light = self._light
        t0 = time.perf_counter()
        _, _, rgba, depth_buf, seg = self._client.getCameraImage(
            camera.width,
            camera.height,
            viewMatrix=view,
            projectionMatrix=proj,
            renderer=p.ER_TINY_RENDERER,
            shadow=0,  # TinyRenderer's shadow map does not cover CLEVR's view; clevr_shading casts them
            lightDirection=list(light.unit_direction()),
            lightColor=list(light.color),
            lightAmbientCoeff=light.ambient,
            lightDiffuseCoeff=light.diffuse,
            lightSpecularCoeff=0.0,  # rubber is matte; metal highlights come from clevr_shading
        )
        t1 = time.perf_counter()
        h, w = camera.height, camera.width
        seg = np.asarray(seg).reshape(h, w)
        lut = np.full(max(b.uid for b in self._bodies) + 2, BACKGROUND, dtype=np.int16)
        for k, body in enumerate(self._bodies):
            lut[body.uid + 1] = k
        mask = lut.take(seg + 1, mode="clip")  # uid -> object index; -1 (nothing) and the floor -> background
        # only object pixels keep TinyRenderer's colour and depth: the floor pass overwrites the rest
        objects = np.flatnonzero(mask.ravel() >= 0)
        object_rgb = np.asarray(rgba, dtype=np.uint8).reshape(h * w, 4)[objects, :3]
        object_depth = camera.linear_depth(np.asarray(depth_buf, dtype=np.float32).reshape(h * w)[objects])
        t2 = time.perf_counter()
        rgb, depth = paint_floor_at(objects, object_rgb, object_depth, camera, light, GROUND_RGB)
        rgb = shade(rgb, depth, mask, camera, light, self._solids())
        self.timings["tinyrenderer"] += t1 - t0
        self.timings["mask"] += t2 - t1
        self.timings["shade"] += time.perf_counter() - t2
        return rgb, depth, mask


# ---------------------------------------------------------------------- one call
_PROCESS_WORLD: ClevrWorld | None = None
_PROCESS_WORLD_PID: int | None = None


def process_world(config: ClevrWorldConfig) -> ClevrWorld:
    """This process's world for ``config`` (created on first use, replaced when the config changes).

    The world is kept between calls so a worker process pays pybullet's start-up
    once; results do not depend on what the world rendered before.
    """
    global _PROCESS_WORLD, _PROCESS_WORLD_PID
    forked = _PROCESS_WORLD_PID != os.getpid()  # a forked worker must not share its parent's client
    if _PROCESS_WORLD is None or forked or _PROCESS_WORLD.config != config:
        if _PROCESS_WORLD is not None and not forked:
            _PROCESS_WORLD.close()
        _PROCESS_WORLD = ClevrWorld(config)
        _PROCESS_WORLD_PID = os.getpid()
    return _PROCESS_WORLD


def render_clevr_scene(seed: int | Sequence[int], config: ClevrWorldConfig = ClevrWorldConfig()) -> ClevrRender:
    """Build and render one scene with this process's world (:func:`process_world`)."""
    world = process_world(config)
    scene = world.reset(seed)
    rgb, depth, mask = world.render()
    return ClevrRender(scene, rgb, depth, mask)

