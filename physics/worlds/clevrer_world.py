"""CLEVRER-style collision videos in pybullet: sampling, simulation, counterfactuals, renders.

CLEVRER (Yi, Gan et al., ICLR 2020) shows cubes, spheres and cylinders of one
size (8 colours, 2 materials, no two alike) sliding on a floor: some rest, some
slide in from outside the view, and they collide.  Its generator simulates with
Bullet and renders with Blender; here the same kind of video is simulated with
pybullet and rendered with the CLEVR renderer of :mod:`physics.worlds.clevr_world`
(TinyRenderer plus :mod:`~physics.worlds.clevr_shading`), exact instance masks included.

A video is a pure function of its seed:

1. :meth:`ClevrerWorld.sample` draws an :class:`InitialState`: the objects, their
   poses, launch velocities and launch frames.  Objects in view rest or move
   from frame 0; the others start outside the view and are launched, at a
   random frame, towards a point near an object in view (so that they collide);
   with two or more of them the last is launched late, so that a third of the
   videos still have collisions in the future frames (docs/results/clevrer.md, "Videos"
   and "Nineteenth session").
2. :meth:`ClevrerWorld.simulate` rebuilds the scene in a fresh
   ``resetSimulation``, steps it at a fixed physics step (``substeps`` per
   frame) and records every object's state per frame and every collision (the
   first frame two objects touch after ``collision_gap`` frames apart; location
   the mean contact point).  Renders, when asked for, are made frame by frame
   through a callback, so a video never sits in memory.
   :meth:`ClevrerWorld.draw` is the sampler the data builder uses: with
   ``future_share`` set, a share of the videos (drawn per video from its seed) is
   kept only if its future frames hold a collision between two objects seen in
   the observed frames, the others only if they hold none, redrawing from derived
   seeds until one fits (CLEVRER asks 14,298 predictive questions of its 20,000
   videos, 0.715 a video, each about a collision after the observed frames; our
   sampler alone puts one there in about a quarter of the videos).
3. Counterfactual truth is :meth:`InitialState.without` one object, simulated
   again: object ids, poses and launch schedule of the others are unchanged,
   so it is deterministic.

Conventions: frame 0 is the initial state; frame ``f`` follows ``f * substeps``
physics steps.  ``location`` is the centre (scene units, z up), ``orientation``
Euler angles (x, y, z) in radians, ``velocity`` in units/s, ``angular_velocity``
in rad/s.  An object is ``inside_camera_view`` when its centre projects inside
the image (in front of the camera).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError, StateError
from physics.worlds._pybullet import pybullet as p
from physics.worlds.camera import CLEVR_CAMERA, CLEVR_LIGHT, Camera, Light
from physics.worlds.clevr_layout import ObjectSpec
from physics.worlds.clevr_properties import COLORS, MATERIALS, SHAPES, SIZE_RADIUS
from physics.worlds.clevr_world import ClevrWorld, ClevrWorldConfig
from physics.worlds.clevrer_annotation import Collision, FrameStates, ObjectProperty, ObjectState

__all__ = [
    "ClevrerConfig",
    "VideoObject",
    "InitialState",
    "Simulation",
    "ClevrerWorld",
    "MAX_OBJECTS",
    "future_collision_seen",
]

MAX_OBJECTS = len(SHAPES) * len(COLORS) * len(MATERIALS)  # 48: no two identical objects in a video
_GRAVITY = 9.81
# contact points closer than this (scene units) count as touching.  Bullet resolves an impact
# inside one physics step and reports its contact point already a few thousandths apart (0.0013
# and 0.0036 in video 0 of `--seed 500 --split val`): at 1e-3, 6 of 56 impacts of 24 videos
# were missed.  1e-2 is below a pixel at 480x320 and catches them.
_TOUCH = 1e-2
_DIGITS = 5  # decimals kept in annotations (1e-5 units: far below a pixel)
_SHARE_STREAM = 7919  # mixed into a video's seed for its future-collision draw (apart from the sampler's stream)


@dataclass(frozen=True)
class ClevrerConfig:
    """Everything that shapes a CLEVRER-style video (CLEVRER's defaults where it has one).

    Args:
        width: Frame width in pixels (CLEVRER: 480).
        height: Frame height in pixels (CLEVRER: 320).
        frames: Observed (rendered) frames (CLEVRER: 128).
        future_frames: Frames simulated after the observed ones, for predictive truth (about 2 s).
        fps: Frames per second (CLEVRER: 128 frames in about 5 s).
        substeps: Physics steps per frame (the physics step is ``1 / (fps * substeps)`` s).
        min_objects: Fewest objects in a video.
        max_objects: Most objects in a video (at most 48 distinct ones exist).
        size: The one object size (a CLEVR size name).
        extent: Objects in view start with x, y in [-extent, extent].
        min_gap: Least gap between object surfaces at the start.
        p_moving: Chance that an object in view moves from frame 0.
        launch_fraction: Objects from outside are launched at a frame in the first
            ``launch_fraction`` of the observed frames.
        late_fraction: With two or more objects outside, the last is launched no earlier
            than this fraction of the observed frames, so that videos go on into the
            future frames (predictive truth).
        speed_margin: An entering object's speed carries it this much further than its
            target point, drawn from this range (scene units) before friction stops it.
        max_speed: Launch speeds are capped here (units/s).
        friction: Lateral friction of objects and floor.
        restitution: Restitution of objects (Bullet multiplies the two bodies' values).
        collision_gap: Frames two objects must be apart before touching counts as a new collision.
        future_share: Share of videos :meth:`ClevrerWorld.draw` makes with a collision in the
            future frames between two objects seen in the observed frames (``None``: every
            video as :meth:`ClevrerWorld.sample` draws it, no share asked).
        max_draws: Most initial states :meth:`ClevrerWorld.draw` tries for one video before
            it keeps the first.
        camera: The fixed camera (CLEVRER does not jitter its camera).
        light: The light.
    """

    width: int = 480
    height: int = 320
    frames: int = 128
    future_frames: int = 50
    fps: int = 25
    substeps: int = 10
    min_objects: int = 3
    max_objects: int = 6
    size: str = "small"
    extent: float = 2.5
    min_gap: float = 0.3
    p_moving: float = 0.3
    launch_fraction: float = 0.9
    late_fraction: float = 0.6
    speed_margin: tuple[float, float] = (0.5, 3.0)
    max_speed: float = 8.0
    friction: float = 0.5
    restitution: float = 0.7
    collision_gap: int = 5
    future_share: float | None = None
    max_draws: int = 30
    camera: Camera = CLEVR_CAMERA
    light: Light = CLEVR_LIGHT

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        checks = {
            "width": self.width >= 1,
            "height": self.height >= 1,
            "frames": self.frames >= 2,
            "future_frames": self.future_frames >= 0,
            "fps": self.fps >= 1,
            "substeps": self.substeps >= 1,
            "min_objects": 2 <= self.min_objects <= self.max_objects <= MAX_OBJECTS,
            "launch_fraction": 0.0 < self.launch_fraction <= 1.0,
            "late_fraction": 0.0 <= self.late_fraction <= self.launch_fraction,
            "collision_gap": self.collision_gap >= 1,
            "friction": self.friction > 0.0,
            "restitution": 0.0 <= self.restitution <= 1.0,
            "speed_margin": 0.0 <= self.speed_margin[0] <= self.speed_margin[1],
            "future_share": self.future_share is None or 0.0 <= self.future_share <= 1.0,
            "max_draws": self.max_draws >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"ClevrerConfig.{key} = {getattr(self, key)!r} is not allowed "
                                  f"(objects: 2 <= min_objects <= max_objects <= {MAX_OBJECTS})")
        if self.size not in SIZE_RADIUS:
            raise ConfigError(f"unknown size {self.size!r}; choose one of {sorted(SIZE_RADIUS)}")

    @property
    def total_frames(self) -> int:
        """Observed plus future frames."""
        return self.frames + self.future_frames

    @property
    def timestep(self) -> float:
        """The physics step in seconds."""
        return 1.0 / (self.fps * self.substeps)

    def scene_config(self) -> ClevrWorldConfig:
        """The CLEVR world settings used to build bodies and render (no jitter, resting start)."""
        return ClevrWorldConfig(
            width=self.width,
            height=self.height,
            camera=self.camera,
            camera_jitter=0.0,
            light=self.light,
            light_jitter=0.0,
            min_pixels=0,
            settle_steps=0,
            drop_height=0.0,
            timestep=self.timestep,
        )


@dataclass(frozen=True)
class VideoObject:
    """One object's identity and initial conditions.

    Args:
        object_id: Its id in the video (kept in counterfactuals).
        color, material, shape: Its attributes.
        position: (x, y) on the floor at frame 0.
        yaw: Rotation about z in degrees.
        velocity: (vx, vy) given at ``launch_frame`` (zero: it rests).
        launch_frame: Frame at which ``velocity`` is given.
    """

    object_id: int
    color: str
    material: str
    shape: str
    position: tuple[float, float]
    yaw: float
    velocity: tuple[float, float] = (0.0, 0.0)
    launch_frame: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "object_id": self.object_id, "color": self.color, "material": self.material, "shape": self.shape,
            "position": list(self.position), "yaw": self.yaw, "velocity": list(self.velocity),
            "launch_frame": self.launch_frame,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> VideoObject:
        try:
            return cls(
                object_id=int(data["object_id"]), color=str(data["color"]), material=str(data["material"]),
                shape=str(data["shape"]), position=(float(data["position"][0]), float(data["position"][1])),
                yaw=float(data["yaw"]), velocity=(float(data["velocity"][0]), float(data["velocity"][1])),
                launch_frame=int(data["launch_frame"]),
            )
        except KeyError as exc:
            raise DataError(f"{where}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, IndexError) as exc:
            raise DataError(f"{where}: malformed initial object {data!r} ({exc})") from None


@dataclass(frozen=True)
class InitialState:
    """The objects of a video and how they start; simulating it gives the whole video."""

    objects: tuple[VideoObject, ...]

    def without(self, object_id: int) -> InitialState:
        """The same start with object ``object_id`` removed (counterfactual).

        Raises:
            ConfigError: no such object.
        """
        kept = tuple(o for o in self.objects if o.object_id != object_id)
        if len(kept) == len(self.objects):
            raise ConfigError(f"no object {object_id} to remove; ids are {[o.object_id for o in self.objects]}")
        return InitialState(kept)

    def properties(self) -> list[ObjectProperty]:
        return [ObjectProperty(o.object_id, o.color, o.material, o.shape) for o in self.objects]

    def to_json(self) -> list[dict[str, Any]]:
        return [o.to_json() for o in self.objects]

    @classmethod
    def from_json(cls, data: Any, where: str) -> InitialState:
        if not isinstance(data, list):
            raise DataError(f"{where}: expected a list of initial objects, got {type(data).__name__}")
        return cls(tuple(VideoObject.from_json(o, f"{where}[{i}]") for i, o in enumerate(data)))


@dataclass(frozen=True)
class Simulation:
    """A simulated video: per-frame states of the objects present and the collisions."""

    trajectory: tuple[FrameStates, ...]
    collisions: tuple[Collision, ...]

    def split(self, frames: int) -> tuple[Simulation, Simulation]:
        """(observed frames ``< frames``, future frames ``>= frames``), collisions split by frame."""
        return (
            Simulation(self.trajectory[:frames], tuple(c for c in self.collisions if c.frame_id < frames)),
            Simulation(self.trajectory[frames:], tuple(c for c in self.collisions if c.frame_id >= frames)),
        )


FrameCallback = Callable[[int, "ClevrerWorld"], None]


@dataclass
class _Run:
    """The video being simulated: its start, bodies, launch schedule and what happened so far."""

    initial: InitialState
    uids: list[int]
    ids: list[int]
    launches: dict[int, list[int]]
    frame: int = 0
    collisions: list[Collision] = field(default_factory=list)
    last_touch: dict[tuple[int, int], int] = field(default_factory=dict)


class ClevrerWorld(ClevrWorld):
    """A CLEVRER-style video world built on :class:`ClevrWorld`'s bodies and renderer.

    Args:
        config: Video parameters.

    ``reset(seed)`` builds frame 0 of video ``seed`` and ``step()`` advances one
    frame (the world API of the other worlds); :meth:`simulate` records a whole
    video from an :class:`InitialState`, e.g. one with an object removed.

    >>> world = ClevrerWorld(ClevrerConfig(width=96, height=64, frames=4, future_frames=2))
    >>> start = world.sample(0)
    >>> sim = world.simulate(start)
    >>> len(sim.trajectory), len(sim.trajectory[0].objects) == len(start.objects)
    (6, True)
    >>> world.reset(0) == sim.trajectory[0], world.step(5) == sim.trajectory[5]
    (True, True)
    >>> rgb, mask = world.render_frame()
    >>> rgb.shape, mask.shape
    ((64, 96, 3), (64, 96))
    >>> world.close()
    """

    def __init__(self, config: ClevrerConfig = ClevrerConfig()) -> None:
        super().__init__(config.scene_config())
        self.video_config = config
        self._camera = config.camera.with_size(config.width, config.height)
        self._light = config.light
        self._radius = SIZE_RADIUS[config.size]
        self._run: _Run | None = None
        # pybullet calls of the per-step hot path, bound to this client once: BulletClient builds a
        # functools.partial on every attribute access (about a tenth of a video's simulation time)
        cid = self._client._client
        self._step_physics = partial(p.stepSimulation, physicsClientId=cid)
        self._contact_points = partial(p.getContactPoints, physicsClientId=cid)
        self._base_pose = partial(p.getBasePositionAndOrientation, physicsClientId=cid)
        self._base_velocity = partial(p.getBaseVelocity, physicsClientId=cid)

    # ------------------------------------------------------------------ sampling
    def draw(self, seed: int | Sequence[int]) -> tuple[InitialState, tuple[int, ...]]:
        """The initial state of video ``seed`` as the data builder makes it, and the seed it was sampled from.

        Without ``future_share`` it is :meth:`sample` of ``seed``.  With it, the video is
        asked for a collision in its future frames between two objects seen in the observed
        frames (:func:`future_collision_seen`) with chance ``future_share`` (drawn from the
        seed) and for none otherwise; candidates are ``seed`` itself, then ``(*seed, j)`` for
        j = 1, 2, ... (each simulated once, unrendered) until one answers as asked; after
        ``max_draws`` candidates without one, the first is kept.  A pure function of ``seed``.
        """
        cfg = self.video_config
        base = tuple(int(s) for s in np.atleast_1d(np.asarray(seed, dtype=np.int64)))
        first = self.sample(seed)
        if cfg.future_share is None:
            return first, base
        want = bool(np.random.default_rng([*base, _SHARE_STREAM]).random() < cfg.future_share)
        for j in range(cfg.max_draws):
            candidate_seed = base if j == 0 else (*base, j)
            candidate = first if j == 0 else self.sample(candidate_seed)
            if self._future_collision_seen(candidate) == want:
                return candidate, candidate_seed
        return first, base

    def sample(self, seed: int | Sequence[int]) -> InitialState:
        """Draw the initial state of video ``seed`` (a pure function of it).

        Raises:
            StateError: no placement satisfied the rules (only with extreme configs).
        """
        cfg = self.video_config
        rng = np.random.default_rng(seed)
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        kinds = list(itertools.product(SHAPES, COLORS, MATERIALS))
        chosen = [kinds[i] for i in rng.choice(len(kinds), size=n, replace=False)]
        n_enter = int(rng.integers(1, (n + 1) // 2 + 1))
        placed: list[tuple[float, float]] = []
        for _ in range(n - n_enter):
            placed.append(self._place_in_view(rng, placed))
        objects = []
        for k, (shape, color, material) in enumerate(chosen):
            yaw = float(rng.uniform(0.0, 360.0))
            if k < n - n_enter:
                pos, vel = placed[k], (0.0, 0.0)
                if rng.random() < cfg.p_moving:
                    vel = self._aim(rng, pos, [q for q in placed if q != pos])
                obj = VideoObject(k, color, material, shape, pos, yaw, vel, 0)
            else:
                pos, vel = self._entry(rng, placed)
                placed.append(pos)
                late = n_enter >= 2 and k == n - 1
                first = int(cfg.frames * cfg.late_fraction) if late else 0
                launch = int(rng.integers(first, max(first + 1, int(cfg.frames * cfg.launch_fraction))))
                obj = VideoObject(k, color, material, shape, pos, yaw, vel, launch)
            objects.append(_rounded(obj))
        return InitialState(tuple(objects))

    def _visible(self, xy: tuple[float, float]) -> tuple[bool, bool]:
        """(whole object in view, whole object out of view) for an object standing at ``xy``."""
        r = self._radius
        corners = np.array([[xy[0] + sx * r, xy[1] + sy * r, z] for sx in (-1, 1) for sy in (-1, 1) for z in (0.0, 2 * r)])
        u, v, d = self._camera.project(corners).T
        if (d <= self._camera.near).any():
            return False, False
        w, h = self._camera.width, self._camera.height
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        out = (u < 0).all() or (u >= w).all() or (v < 0).all() or (v >= h).all()
        return bool(inside.all()), bool(out)

    def _clear(self, xy: tuple[float, float], others: Sequence[tuple[float, float]]) -> bool:
        need = 2.0 * self._radius * math.sqrt(2.0) + self.video_config.min_gap  # footprints of any shape
        return all(math.dist(xy, q) >= need for q in others)

    def _place_in_view(self, rng: np.random.Generator, others: Sequence[tuple[float, float]]) -> tuple[float, float]:
        e = self.video_config.extent
        for _ in range(1000):
            xy = (float(rng.uniform(-e, e)), float(rng.uniform(-e, e)))
            if self._clear(xy, others) and self._visible(xy)[0]:
                return xy
        raise StateError(f"could not place {len(others) + 1} objects in view within extent {e}; lower max_objects")

    def _speed_for(self, rng: np.random.Generator, distance: float) -> float:
        """A speed that slides ``distance`` plus a random margin before friction stops it (v^2 = 2 mu g d)."""
        cfg = self.video_config
        d = distance + float(rng.uniform(*cfg.speed_margin))
        return min(math.sqrt(2.0 * cfg.friction * _GRAVITY * d), cfg.max_speed)

    def _aim(self, rng: np.random.Generator, pos: tuple[float, float], targets: Sequence[tuple[float, float]]) -> tuple[float, float]:
        """A velocity from ``pos`` towards a random target (or a random direction when none)."""
        if targets:
            t = targets[int(rng.integers(len(targets)))]
            d = np.subtract(t, pos) + rng.normal(0.0, 0.2 * self._radius, size=2)
        else:
            a = rng.uniform(0.0, 2.0 * math.pi)
            d = np.array([math.cos(a), math.sin(a)])
        dist = float(np.linalg.norm(d))
        speed = self._speed_for(rng, dist)
        return float(d[0] / dist * speed), float(d[1] / dist * speed)

    def _entry(self, rng: np.random.Generator, in_view: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], tuple[float, float]]:
        """A start outside the view and a velocity that brings the object in, towards an object in view."""
        e = self.video_config.extent
        for _ in range(1000):
            if in_view:
                target = np.asarray(in_view[int(rng.integers(len(in_view)))]) + rng.normal(0.0, 0.3 * self._radius, size=2)
            else:
                target = rng.uniform(-e, e, size=2)
            a = rng.uniform(0.0, 2.0 * math.pi)
            direction = np.array([math.cos(a), math.sin(a)])
            for back in np.arange(1.0, 9.0, 0.25):  # walk back from the target until out of view
                xy = tuple(float(c) for c in target - back * direction)
                inside, out = self._visible(xy)
                if out:
                    break
            else:
                continue
            if not self._clear(xy, in_view):
                continue
            speed = self._speed_for(rng, float(back))
            return xy, (float(direction[0] * speed), float(direction[1] * speed))
        raise StateError("could not find an entry point outside the view; check the camera and extent")

    # ------------------------------------------------------------------ simulation
    def reset(self, seed: int | Sequence[int]) -> FrameStates:  # type: ignore[override]
        """Sample video ``seed`` and build its frame 0 (a video, not the base class's still scene).

        Returns:
            The objects' states at frame 0.
        """
        return self.begin(self.sample(seed))

    def begin(self, initial: InitialState) -> FrameStates:
        """Build ``initial`` in a fresh ``resetSimulation`` at frame 0 (launches due at 0 applied).

        Returns:
            The objects' states at frame 0.
        """
        cfg = self.video_config
        specs = [
            ObjectSpec(o.shape, o.color, o.material, cfg.size, (o.position[0], o.position[1], 0.0), o.yaw)
            for o in initial.objects
        ]
        self._seed = initial  # marks a scene as built for the base class's checks
        self._build(specs)
        c = self._client
        uids = [b.uid for b in self._bodies]
        for uid in uids:
            c.changeDynamics(uid, -1, lateralFriction=cfg.friction, restitution=cfg.restitution)
        c.changeDynamics(0, -1, lateralFriction=cfg.friction)  # the floor is the first body built
        launches: dict[int, list[int]] = {}
        for k, o in enumerate(initial.objects):
            if o.velocity != (0.0, 0.0):
                launches.setdefault(o.launch_frame, []).append(k)
        self._run = _Run(initial, uids, [o.object_id for o in initial.objects], launches)
        self._launch()
        return self.frame_state()

    def step(self, steps: int = 1) -> FrameStates:  # type: ignore[override]
        """Advance ``steps`` frames (``substeps`` physics steps each), recording collisions.

        Returns:
            The objects' states at the new frame.
        """
        run = self._require_run()
        self._advance(run, steps)
        return self.frame_state()

    def _advance(self, run: _Run, steps: int) -> None:
        """:meth:`step` without reading the states back (what only needs collisions and poses uses)."""
        cfg = self.video_config
        uid_to_id = dict(zip(run.uids, run.ids, strict=True))
        for _ in range(steps):
            run.frame += 1
            touching: dict[tuple[int, int], tuple[float, float, float]] = {}
            for _ in range(cfg.substeps):
                self._step_physics()
                for pair, loc in self._contacts(uid_to_id).items():
                    touching.setdefault(pair, loc)
            for pair in sorted(touching):
                before = run.last_touch.get(pair)
                if before is None or run.frame - before > cfg.collision_gap:
                    loc = tuple(round(x, _DIGITS) + 0.0 for x in touching[pair])
                    run.collisions.append(Collision(pair, run.frame, loc))
                run.last_touch[pair] = run.frame
            self._launch()
        self._render_cache = None

    @property
    def frame(self) -> int:
        """The current frame (0 after :meth:`reset` or :meth:`begin`)."""
        return self._require_run().frame

    @property
    def collisions(self) -> tuple[Collision, ...]:
        """Collisions so far, in frame order."""
        return tuple(self._require_run().collisions)

    def frame_state(self) -> FrameStates:
        """Every object's state at the current frame."""
        run = self._require_run()
        return FrameStates(run.frame, self._object_states(run.uids, run.ids))

    def simulate(self, initial: InitialState, frames: int | None = None, on_frame: FrameCallback | None = None) -> Simulation:
        """Simulate ``initial`` for ``frames`` frames (default: observed + future).

        Args:
            initial: Objects and their launch schedule.
            frames: Frames to record (frame 0 is the initial state).
            on_frame: Called as ``on_frame(f, world)`` once frame ``f`` is reached, e.g.
                to :meth:`render_frame` it.

        Returns:
            The recorded states and collisions (objects in ``initial`` order).
        """
        frames = self.video_config.total_frames if frames is None else frames
        if frames < 1:
            raise ConfigError(f"frames must be >= 1, got {frames}")
        trajectory = [self.begin(initial)]
        if on_frame is not None:
            on_frame(0, self)
        for f in range(1, frames):
            trajectory.append(self.step())
            if on_frame is not None:
                on_frame(f, self)
        return Simulation(tuple(trajectory), self.collisions)

    def _future_collision_seen(self, initial: InitialState) -> bool:
        """``future_collision_seen(self.simulate(initial), frames)``, computed more cheaply.

        The same physics steps and collision rule as :meth:`simulate`, but only the objects'
        visibility is read back (no velocities, orientations or rounding), and the run stops at
        the first collision that answers the question.  :meth:`draw` calls this for every
        candidate start; the answer is what the full simulation gives (tested).
        """
        cfg = self.video_config
        self.begin(initial)
        run = self._run
        seen = self._in_view_ids(run)
        for f in range(1, cfg.total_frames):
            known = len(run.collisions)
            self._advance(run, 1)
            if f < cfg.frames:
                seen |= self._in_view_ids(run)
            elif any(seen.issuperset(c.object_ids) for c in run.collisions[known:]):
                return True
        return False

    def _in_view_ids(self, run: _Run) -> set[int]:
        """Ids of the objects whose centre is ``inside_camera_view`` now (as :meth:`_object_states` decides)."""
        poses = [self._base_pose(uid) for uid in run.uids]
        uvd = self._camera.project(np.array([pos for pos, _ in poses])).tolist()
        return {oid for oid, (u, v, d) in zip(run.ids, uvd, strict=True) if self._inside(u, v, d)}

    def _inside(self, u: float, v: float, d: float) -> bool:
        cam = self._camera
        return d > cam.near and 0.0 <= u < cam.width and 0.0 <= v < cam.height

    def _launch(self) -> None:
        """Give the objects due at the current frame their launch velocity."""
        run = self._run
        for k in run.launches.get(run.frame, ()):
            vx, vy = run.initial.objects[k].velocity
            self._client.resetBaseVelocity(run.uids[k], [vx, vy, 0.0], [0.0, 0.0, 0.0])

    def _require_run(self) -> _Run:
        self._require_scene()
        if self._run is None:
            raise StateError("ClevrerWorld has no video yet; call reset(seed) or begin(initial) first")
        return self._run

    def _contacts(self, uid_to_id: dict[int, int]) -> dict[tuple[int, int], tuple[float, float, float]]:
        """Object pairs touching after the last step -> mean contact point."""
        points: dict[tuple[int, int], list[np.ndarray]] = {}
        for cp in self._contact_points():
            a, b = cp[1], cp[2]
            if a in uid_to_id and b in uid_to_id and cp[8] < _TOUCH:
                pair = tuple(sorted((uid_to_id[a], uid_to_id[b])))
                points.setdefault(pair, []).append((np.asarray(cp[5]) + np.asarray(cp[6])) / 2.0)
        if not points:  # most substeps: objects touch only the floor
            return {}
        return {pair: tuple(float(x) for x in np.mean(pts, axis=0)) for pair, pts in points.items()}

    def _object_states(self, uids: Sequence[int], ids: Sequence[int]) -> tuple[ObjectState, ...]:
        """Every object's state now (one projection for all centres: the camera is fixed)."""
        poses = [self._base_pose(uid) for uid in uids]
        uvd = self._camera.project(np.array([pos for pos, _ in poses])).tolist()
        euler = p.getEulerFromQuaternion
        states = []
        for uid, oid, (pos, quat), (u, v, d) in zip(uids, ids, poses, uvd, strict=True):
            lin, ang = self._base_velocity(uid)
            states.append(ObjectState(oid, _round3(pos), _round3(euler(quat)), _round3(lin), _round3(ang),
                                      self._inside(u, v, d)))
        return tuple(states)

    # ------------------------------------------------------------------ rendering
    def render_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Render the current frame: (rgb uint8 [H, W, 3], mask int16 [H, W], ``k`` = the k-th object, -1 background)."""
        rgb, _depth, mask = self._render_raw(self._camera)
        return rgb, mask

    def render_frame_with_depth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`render_frame` and the renderer's depth per pixel, float32 [H, W] (distance along the camera's
        forward axis: ``camera.eye + depth[..., None] * camera.pixel_rays()`` is the point seen; an RGB-D sensor)."""
        rgb, depth, mask = self._render_raw(self._camera)
        return rgb, mask, np.asarray(depth, dtype=np.float32)


def future_collision_seen(sim: Simulation, frames: int) -> bool:
    """Whether a collision at frame ``frames`` or later joins two objects in view in some frame before it.

    Such a collision is what a predictive question asks about: an object never seen
    in the observed frames cannot be named.
    """
    seen = {o.object_id for fr in sim.trajectory[:frames] for o in fr.objects if o.inside_camera_view}
    return any(c.frame_id >= frames and seen.issuperset(c.object_ids) for c in sim.collisions)


def _round3(xs: Sequence[float]) -> tuple[float, float, float]:
    """A pybullet 3-vector rounded to ``_DIGITS`` decimals (``+ 0.0``: no -0.0 in the files)."""
    x, y, z = xs
    return round(x, _DIGITS) + 0.0, round(y, _DIGITS) + 0.0, round(z, _DIGITS) + 0.0


def _rounded(obj: VideoObject) -> VideoObject:
    """Round the sampled numbers so the JSON record of a start simulates exactly as sampled."""
    r = lambda xs: tuple(round(float(x), 6) + 0.0 for x in xs)  # noqa: E731
    return replace(obj, position=r(obj.position), yaw=round(obj.yaw, 6), velocity=r(obj.velocity))

