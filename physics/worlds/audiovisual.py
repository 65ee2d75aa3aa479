"""Audio-visual clips: CLEVRER-style videos with the sound their objects make, and every source apart.

A clip is a pure function of its seed (:func:`make_clip`):

1. **Objects.**  ``n_sounding`` *instrument* objects (a class from
   :data:`~physics.worlds.sound.INSTRUMENTS`; the class fixes the look, shape and
   colour, so it can be seen; with ``same_category`` they share one class,
   material and size, i.e. they look identical) and silent objects of other looks,
   placed in view on the CLEVRER floor, sizes and materials drawn per object.
2. **Motion** (pybullet, :class:`~physics.worlds.clevrer_world.ClevrerWorld`,
   simulated at ``oversample`` physics frames per video frame): instruments are
   pushed towards random points in view every ``kick_seconds`` or so (their speed
   rises and falls with friction; with chance ``p_pause`` a gap is longer, and they
   come to rest and fall silent for a while); a silent object is launched at another with
   chance ``p_moving``.  Collisions are recorded as CLEVRER does.
3. **Sound** (:mod:`physics.worlds.sound`): each instrument plays its class's
   harmonic tone at its own pitch, loudness proportional to its speed (interpolated
   between physics frames); each collision rings both objects' modes, amplitude
   proportional to their relative speed just before it, from its onset sample.
   Sources: one row per instrument (in object order), then, with ``impacts``, one
   row holding every impact (``source_object`` -1).  All are scaled by one gain so
   the mixture peaks at ``peak`` at most; ``mixture == sources.sum(0)``.
4. **Frames**: the video frames rendered by the CLEVR renderer with exact
   instance masks (object ``k`` -> ``k``, background -1).

Time alignment: video frame ``f`` spans samples ``[frame_start(f), frame_start(f + 1))``
with ``frame_start(f) = round(f * sample_rate / fps)``; a collision's ``frame`` is the
video frame whose span holds its ``onset`` sample.

:func:`write_clip` stores a clip in a folder (``clip.json``, ``frames.npz`` with the
frames and masks, ``mixture.wav``, ``source_<s>.wav``; WAVs are 32-bit PCM written
with the standard library's ``wave``) and :func:`read_clip` reads it back; a missing
or corrupt file raises :class:`~physics.errors.DataError` naming the file.

>>> clip = make_clip(0, AudioVisualConfig(frames=4, fps=8, width=48, height=32))
>>> clip.frames.shape, clip.masks.shape, clip.sources.shape[1] == clip.mixture.shape[0] == 5512
((4, 32, 48, 3), (4, 32, 48), True)
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from physics.config_types import check_field_types
from physics.errors import ConfigError, DataError
from physics.io import (
    PathLike,
    atomic_write_bytes,
    atomic_write_json,
    ensure_dir,
    npz_failure,
    read_json,
)
from physics.worlds.clevr_layout import ObjectSpec
from physics.worlds.clevr_properties import COLORS, MATERIALS, SHAPES, SIZE_RADIUS
from physics.worlds.clevrer_annotation import (
    Collision,
    FrameStates,
    ObjectProperty,
    ObjectState,
    VideoAnnotation,
)
from physics.worlds.clevrer_world import ClevrerConfig, ClevrerWorld, InitialState, VideoObject
from physics.worlds.sound import (
    INSTRUMENTS,
    impact_modes,
    impact_sound,
    impact_word,
    instrument_tone,
    read_wav,
    speed_envelope,
    write_wav,
)

__all__ = [
    "AudioVisualConfig",
    "AVObject",
    "AVCollision",
    "AudioVisualClip",
    "make_clip",
    "mix",
    "write_clip",
    "read_clip",
    "clip_files",
    "CLIP_FORMAT",
    "SAMPLE_RATES",
    "SOUNDING_LEVEL",
]

CLIP_FORMAT = "nesy-audiovisual-clip/1"
SAMPLE_RATES = (11025, 16000)
# An instrument counts as sounding in a frame when its mean absolute amplitude there is at least
# this (-40 dB of full scale; at the reference speed a tone's mean amplitude is about 0.15).
SOUNDING_LEVEL = 0.01
_GRAVITY = 9.81
_IMPACT_SECONDS = 1.5  # impacts are synthesised this long at most (metal has decayed 60 dB by then)


@dataclass(frozen=True)
class AudioVisualConfig:
    """Everything that shapes an audio-visual clip.

    Args:
        frames: Video frames.
        fps: Video frames per second (the clip lasts ``frames / fps`` seconds).
        height: Frame height in pixels.
        width: Frame width in pixels.
        sample_rate: Audio samples per second (11025 or 16000).
        n_objects: (fewest, most) objects in a clip.
        n_sounding: How many objects are instruments (they sound while they move).
        same_category: The instruments share one class, material and size (they look identical).
        categories: Instrument classes to draw from (names in ``INSTRUMENTS``).
        sizes: Object sizes to draw from (CLEVR size names).
        impacts: Add the collisions' impact sounds (one extra source row, object -1).
        impact_gain: Impact amplitude relative to the modal sound at the reference speed.
        peak: The mixture is scaled down (all sources alike) to peak at most here.
        oversample: Physics frames per video frame (resolution of loudness and onsets).
        substeps: Physics steps per physics frame.
        kick_seconds: Mean time between the pushes that keep instruments moving.
        p_pause: Chance that a gap between pushes is longer by 1-2 ``kick_seconds``, so that
            the instrument comes to rest and falls silent for a while.
        p_moving: Chance that a silent object is launched at another at the start.
        extent: Objects start, and instruments are pushed towards points, in [-extent, extent]^2.
        max_speed: Speed cap of pushes (units/s).
        friction: Lateral friction of objects and floor.
        restitution: Restitution of objects.
        depth: Keep the renderer's depth per pixel in :attr:`AudioVisualClip.depth`: what an RGB-D camera gives
            beside the frames. Off by default; the clip is otherwise the same.
    """

    frames: int = 16
    fps: int = 8
    height: int = 64
    width: int = 96
    sample_rate: int = 11025
    n_objects: tuple[int, int] = (3, 4)
    n_sounding: int = 2
    same_category: bool = False
    categories: tuple[str, ...] = tuple(INSTRUMENTS)
    sizes: tuple[str, ...] = ("small", "large")
    impacts: bool = True
    impact_gain: float = 0.05
    peak: float = 0.9
    oversample: int = 4
    substeps: int = 8
    kick_seconds: float = 0.6
    p_pause: float = 0.3
    p_moving: float = 0.5
    extent: float = 2.5
    max_speed: float = 4.0
    friction: float = 0.5
    restitution: float = 0.7
    depth: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)  # a wrong type from Python: one line naming the field (physics.config_types)
        object.__setattr__(self, "n_objects", tuple(int(n) for n in self.n_objects))
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "sizes", tuple(self.sizes))
        lo, hi = self.n_objects if len(self.n_objects) == 2 else (0, -1)
        checks = {
            "frames": self.frames >= 1,
            "fps": self.fps >= 1,
            "height": self.height >= 8,
            "width": self.width >= 8,
            "n_objects": len(self.n_objects) == 2 and 1 <= lo <= hi <= 8,
            "n_sounding": 0 <= self.n_sounding <= lo,
            "impact_gain": self.impact_gain >= 0.0,
            "peak": 0.0 < self.peak <= 1.0,
            "oversample": self.oversample >= 1,
            "substeps": self.substeps >= 1,
            "kick_seconds": self.kick_seconds > 0.0,
            "p_moving": 0.0 <= self.p_moving <= 1.0,
            "p_pause": 0.0 <= self.p_pause <= 1.0,
            "extent": 0.5 <= self.extent <= 3.0,
            "max_speed": self.max_speed > 0.0,
            "friction": self.friction > 0.0,
            "restitution": 0.0 <= self.restitution <= 1.0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"AudioVisualConfig.{key} = {getattr(self, key)!r} is not allowed "
                                  "(1 <= n_objects[0] <= n_objects[1] <= 8, n_sounding <= n_objects[0])")
        if self.sample_rate not in SAMPLE_RATES:
            raise ConfigError(f"AudioVisualConfig.sample_rate = {self.sample_rate!r}; choose one of {SAMPLE_RATES}")
        unknown = [c for c in self.categories if c not in INSTRUMENTS]
        if unknown or not self.categories:
            raise ConfigError(f"AudioVisualConfig.categories {self.categories!r}: choose from {list(INSTRUMENTS)}")
        if self.same_category and self.n_sounding > 4:
            raise ConfigError(f"n_sounding = {self.n_sounding} instruments of one class: at most 4 fit its "
                              "one-octave range at distinct pitches (two semitones apart at least)")
        if not self.same_category and self.n_sounding > len(self.categories):
            raise ConfigError(f"n_sounding = {self.n_sounding} instruments of different classes need as many "
                              f"categories, got {len(self.categories)}; add categories or set same_category")
        bad = [s for s in self.sizes if s not in SIZE_RADIUS]
        if bad or not self.sizes:
            raise ConfigError(f"AudioVisualConfig.sizes {self.sizes!r}: choose from {sorted(SIZE_RADIUS)}")

    @property
    def seconds(self) -> float:
        """The clip's duration."""
        return self.frames / self.fps

    @property
    def samples(self) -> int:
        """Audio samples in a clip."""
        return self.frame_start(self.frames)

    def frame_start(self, f: int) -> int:
        """First audio sample of video frame ``f`` (``frame_start(frames)`` is the length)."""
        return int(round(f * self.sample_rate / self.fps))

    @property
    def n_sources(self) -> int:
        """Rows of ``sources``: the instruments, plus one impact track with ``impacts``."""
        return self.n_sounding + int(self.impacts)

    def world_config(self) -> ClevrerConfig:
        """The CLEVRER world that simulates and renders the clip (physics frames, not video frames)."""
        return ClevrerConfig(
            width=self.width, height=self.height, frames=self.frames * self.oversample, future_frames=0,
            fps=self.fps * self.oversample, substeps=self.substeps, min_objects=2, max_objects=8,
            size="large", extent=self.extent, friction=self.friction, restitution=self.restitution,
            collision_gap=max(1, self.oversample),
        )

    def to_json(self) -> dict[str, Any]:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if not self.depth:  # the files written before the option existed stay byte for byte the same
            del out["depth"]
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> AudioVisualConfig:
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected an object of options, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"{where}: unknown options {unknown}")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except (TypeError, ConfigError) as exc:
            raise DataError(f"{where}: {exc}") from None


@dataclass(frozen=True, eq=False)
class AVObject:
    """One object of a clip: its look, its sound and its motion per video frame.

    Attributes:
        index: Its index (the value of its pixels in ``masks``).
        shape, color, material, size: Its look (CLEVR attribute names).
        category: Its instrument class, or None for a silent object.
        is_sounding: Whether it makes a tone (an instrument); it sounds while it moves.
        pitch: Its tone's fundamental in Hz (None when silent).
        positions: float32 ``[T, 3]`` centre per video frame (scene units).
        speeds: float32 ``[T]`` mean speed during each video frame (units/s, over its physics frames,
            each counted with the speed it leaves with, so a push at frame 0 counts in frame 0).
        velocities: float32 ``[T, 3]`` mean velocity during each video frame (the same way).
        in_view: bool ``[T]``: its centre projects inside the frame.
        loudness: float32 ``[T]``: mean absolute amplitude of its tone per frame (after the clip gain).
    """

    index: int
    shape: str
    color: str
    material: str
    size: str
    category: str | None
    is_sounding: bool
    pitch: float | None
    positions: np.ndarray
    speeds: np.ndarray
    in_view: np.ndarray
    loudness: np.ndarray
    velocities: np.ndarray

    @property
    def sounding_frames(self) -> np.ndarray:
        """bool ``[T]``: frames in which its tone is audible (loudness >= ``SOUNDING_LEVEL``)."""
        return self.loudness >= SOUNDING_LEVEL

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "shape": self.shape, "color": self.color, "material": self.material,
            "size": self.size, "category": self.category, "is_sounding": self.is_sounding, "pitch": self.pitch,
            "positions": _rounded(self.positions), "speeds": _rounded(self.speeds),
            "in_view": [bool(v) for v in self.in_view], "loudness": _rounded(self.loudness),
            "velocities": _rounded(self.velocities),
        }

    @classmethod
    def from_json(cls, data: Any, frames: int, where: str) -> AVObject:
        try:
            obj = cls(
                index=int(data["index"]), shape=str(data["shape"]), color=str(data["color"]),
                material=str(data["material"]), size=str(data["size"]),
                category=None if data["category"] is None else str(data["category"]),
                is_sounding=bool(data["is_sounding"]),
                pitch=None if data["pitch"] is None else float(data["pitch"]),
                positions=np.asarray(data["positions"], dtype=np.float32),
                speeds=np.asarray(data["speeds"], dtype=np.float32),
                in_view=np.asarray(data["in_view"], dtype=bool),
                loudness=np.asarray(data["loudness"], dtype=np.float32),
                velocities=np.asarray(data["velocities"], dtype=np.float32),
            )
        except KeyError as exc:
            raise DataError(f"{where}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: malformed object ({exc})") from None
        shapes = {"positions": (frames, 3), "speeds": (frames,), "in_view": (frames,), "loudness": (frames,),
                  "velocities": (frames, 3)}
        for name, want in shapes.items():
            if getattr(obj, name).shape != want:
                raise DataError(f"{where}.{name}: shape {getattr(obj, name).shape}, expected {want}")
        return obj


@dataclass(frozen=True)
class AVCollision:
    """Two objects colliding, and the impact sound it makes.

    Attributes:
        frame: Video frame whose sample span holds the onset.
        objects: The two object indices (ascending).
        onset: First audio sample of the impact sound.
        speed: Relative speed of the two just before (units/s); the sound's amplitude follows it.
        location: Mean contact point (scene units).
        sound: What it sounds like (:func:`~physics.worlds.sound.impact_word`: ``ring`` or ``thud``).
    """

    frame: int
    objects: tuple[int, int]
    onset: int
    speed: float
    location: tuple[float, float, float]
    sound: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"frame": self.frame, "objects": list(self.objects), "onset": self.onset,
                "speed": round(self.speed, 6), "location": list(self.location), "sound": self.sound}

    @classmethod
    def from_json(cls, data: Any, where: str) -> AVCollision:
        try:
            a, b = data["objects"]
            x, y, z = data["location"]
            return cls(int(data["frame"]), (int(a), int(b)), int(data["onset"]), float(data["speed"]),
                       (float(x), float(y), float(z)), str(data["sound"]))
        except KeyError as exc:
            raise DataError(f"{where}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: malformed collision ({exc})") from None


@dataclass(frozen=True, eq=False)
class AudioVisualClip:
    """One clip: frames, masks, the sound sources and their mixture, and the truth about them.

    Attributes:
        frames: uint8 ``[T, H, W, 3]``.
        masks: int16 ``[T, H, W]``: -1 background, else the object's index.
        sources: float32 ``[S, L]``: one waveform per source.
        source_object: Object index of each source row (-1: the impact track).
        mixture: float32 ``[L]`` equal to ``sources.sum(0)``.
        sample_rate: Samples per second.
        fps: Video frames per second.
        objects: The objects, by index.
        collisions: The collisions, in onset order.
        seed: The seed it was made from.
        source_kind: ``"instrument"`` or ``"impact"`` per source row.
        config: The options it was made with.
        depth: float32 ``[T, H, W]``, the renderer's depth per pixel (``config.depth``), else None.
    """

    frames: np.ndarray
    masks: np.ndarray
    sources: np.ndarray
    source_object: tuple[int, ...]
    mixture: np.ndarray
    sample_rate: int
    fps: float
    objects: tuple[AVObject, ...]
    collisions: tuple[AVCollision, ...]
    seed: int
    source_kind: tuple[str, ...] = ()
    config: AudioVisualConfig = field(default_factory=AudioVisualConfig)
    depth: np.ndarray | None = None

    @property
    def sounding(self) -> tuple[int, ...]:
        """Indices of the objects that make a tone."""
        return tuple(o.index for o in self.objects if o.is_sounding)

    def frame_start(self, f: int) -> int:
        """First audio sample of video frame ``f``."""
        return int(round(f * self.sample_rate / self.fps))

    def sounding_at(self, f: int) -> tuple[int, ...]:
        """Objects whose tone is audible in video frame ``f``."""
        return tuple(o.index for o in self.objects if o.sounding_frames[f])

    def annotation(self, scene_index: int = 0) -> VideoAnnotation:
        """The clip's video as a CLEVRER annotation (per-frame states, collisions; ids = object indices).

        Orientations and angular velocities are not kept by a clip and read as zero; velocities are
        the objects' mean velocities per frame; the ``video_filename`` is ``clip_<seed>``.
        """
        zero = (0.0, 0.0, 0.0)
        frames = tuple(
            FrameStates(f, tuple(
                ObjectState(o.index, tuple(float(x) for x in o.positions[f]), zero,
                            tuple(float(x) for x in o.velocities[f]), zero, bool(o.in_view[f]))
                for o in self.objects))
            for f in range(self.frames.shape[0])
        )
        return VideoAnnotation(
            scene_index=scene_index, video_filename=f"clip_{self.seed}",
            object_property=tuple(ObjectProperty(o.index, o.color, o.material, o.shape) for o in self.objects),
            motion_trajectory=frames,
            collision=tuple(Collision(c.objects, c.frame, c.location) for c in self.collisions),
        )

    def metadata(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON (what ``clip.json`` holds besides file names)."""
        return {
            "format": CLIP_FORMAT, "seed": self.seed, "sample_rate": self.sample_rate, "fps": self.fps,
            "frames": int(self.frames.shape[0]), "height": int(self.frames.shape[1]),
            "width": int(self.frames.shape[2]), "samples": int(self.mixture.shape[0]),
            "config": self.config.to_json(),
            "objects": [o.to_json() for o in self.objects],
            "collisions": [c.to_json() for c in self.collisions],
            "sources": [{"file": f"source_{s}.wav", "object": o, "kind": k}
                        for s, (o, k) in enumerate(zip(self.source_object, self.source_kind, strict=True))],
        }


# ---------------------------------------------------------------------- making a clip
class _SoundingWorld(ClevrerWorld):
    """A CLEVRER world whose objects have their own sizes (CLEVRER has one size per video)."""

    sizes: tuple[str, ...] = ()

    def _build(self, specs: Sequence[ObjectSpec]) -> None:
        if len(self.sizes) == len(specs):
            specs = [replace(s, size=z) for s, z in zip(specs, self.sizes, strict=True)]
        super()._build(specs)


_WORLD: dict[str, Any] = {}


def _world(config: ClevrerConfig) -> _SoundingWorld:
    """This process's world for ``config`` (pybullet starts once per process; clips do not depend on it)."""
    key = (config, os.getpid())
    if _WORLD.get("key") != key:
        _WORLD.update(key=key, world=_SoundingWorld(config))
    return _WORLD["world"]


@dataclass(frozen=True)
class _Plan:
    """What the seed decides before simulation: looks, sizes, pitches, starts and pushes."""

    initial: InitialState
    sizes: tuple[str, ...]
    categories: tuple[str | None, ...]
    pitches: tuple[float | None, ...]
    kicks: dict[int, list[tuple[int, tuple[float, float], float]]]  # physics frame -> (object, target, margin)


def _plan(seed: int, cfg: AudioVisualConfig, world: _SoundingWorld) -> _Plan:
    rng = np.random.default_rng([seed, 20])
    n = int(rng.integers(cfg.n_objects[0], cfg.n_objects[1] + 1))
    if cfg.same_category:
        cat = cfg.categories[int(rng.integers(len(cfg.categories)))]
        cats = [cat] * cfg.n_sounding
        material = MATERIALS[int(rng.integers(len(MATERIALS)))]
        size = cfg.sizes[int(rng.integers(len(cfg.sizes)))]
        looks = [(material, size)] * cfg.n_sounding
    else:
        cats = [cfg.categories[i] for i in rng.choice(len(cfg.categories), size=cfg.n_sounding, replace=False)]
        looks = [(MATERIALS[int(rng.integers(len(MATERIALS)))], cfg.sizes[int(rng.integers(len(cfg.sizes)))])
                 for _ in cats]
    instrument_looks = {(i.shape, i.color) for i in INSTRUMENTS.values()}
    silent_kinds = [(s, c, m) for s in SHAPES for c in COLORS for m in MATERIALS if (s, c) not in instrument_looks]
    picks = rng.choice(len(silent_kinds), size=n - cfg.n_sounding, replace=False)
    described: list[tuple[str, str, str, str, str | None]] = []  # shape, color, material, size, category
    for cat, (material, size) in zip(cats, looks, strict=True):
        described.append((INSTRUMENTS[cat].shape, INSTRUMENTS[cat].color, material, size, cat))
    for i in picks:
        shape, color, material = silent_kinds[int(i)]
        described.append((shape, color, material, cfg.sizes[int(rng.integers(len(cfg.sizes)))], None))
    described = [described[int(i)] for i in rng.permutation(n)]
    # pitches: per class, distinct semitones of its range (two instruments of one class differ)
    pitches: list[float | None] = []
    used: dict[str, set[int]] = {}
    for _shape, _color, _mat, _size, cat in described:
        if cat is None:
            pitches.append(None)
            continue
        lo, hi = INSTRUMENTS[cat].pitch
        steps = [k for k in range(int(12 * math.log2(hi / lo)) + 1) if k not in used.setdefault(cat, set())]
        k = steps[int(rng.integers(len(steps)))]
        used[cat].update({k - 1, k, k + 1})
        pitches.append(round(lo * 2.0 ** (k / 12.0), 4))
    placed: list[tuple[float, float]] = []
    for _ in range(n):
        placed.append(world._place_in_view(rng, placed))
    objects = []
    physics_fps = cfg.fps * cfg.oversample
    kicks: dict[int, list[tuple[int, tuple[float, float], float]]] = {}
    for k, ((shape, color, material, _size, cat), pos) in enumerate(zip(described, placed, strict=True)):
        yaw = round(float(rng.uniform(0.0, 360.0)), 6)
        vel = (0.0, 0.0)
        if cat is None and rng.random() < cfg.p_moving:
            vel = tuple(round(v, 6) for v in world._aim(rng, pos, [q for q in placed if q != pos]))
        if cat is not None:
            t = 0.0
            while t < cfg.seconds:
                target = (float(rng.uniform(-cfg.extent, cfg.extent)), float(rng.uniform(-cfg.extent, cfg.extent)))
                margin = float(rng.uniform(0.2, 1.0))
                kicks.setdefault(int(round(t * physics_fps)), []).append((k, target, margin))
                t += float(rng.uniform(0.5, 1.5)) * cfg.kick_seconds
                if rng.random() < cfg.p_pause:  # a longer gap: friction stops it and it falls silent
                    t += float(rng.uniform(1.0, 2.0)) * cfg.kick_seconds
        objects.append(VideoObject(k, color, material, shape, (round(pos[0], 6), round(pos[1], 6)), yaw, vel, 0))
    return _Plan(InitialState(tuple(objects)), tuple(d[3] for d in described), tuple(d[4] for d in described),
                 tuple(pitches), kicks)


def _push(world: _SoundingWorld, cfg: AudioVisualConfig, uid: int, target: tuple[float, float], margin: float) -> None:
    """Send body ``uid`` towards ``target`` fast enough to slide past it by ``margin`` (v^2 = 2 mu g d)."""
    c = world._client
    pos, _ = c.getBasePositionAndOrientation(uid)
    d = np.subtract(target, pos[:2])
    dist = float(np.linalg.norm(d))
    if dist < 1e-6:
        return
    speed = min(math.sqrt(2.0 * cfg.friction * _GRAVITY * (dist + margin)), cfg.max_speed)
    c.resetBaseVelocity(uid, [float(d[0] / dist * speed), float(d[1] / dist * speed), 0.0], [0.0, 0.0, 0.0])


def make_clip(seed: int, config: AudioVisualConfig = AudioVisualConfig()) -> AudioVisualClip:
    """Simulate, render and sound clip ``seed`` (a pure function of ``seed`` and ``config``).

    Args:
        seed: The clip's seed (any int >= 0).
        config: Its options.

    Returns:
        The clip.

    Raises:
        ConfigError: a negative seed.
        StateError: the objects could not be placed (too many large objects for ``extent``).
    """
    if int(seed) != seed or seed < 0:
        raise ConfigError(f"clip seed must be an int >= 0, got {seed!r}")
    seed = int(seed)
    cfg = config
    world = _world(cfg.world_config())
    plan = _plan(seed, cfg, world)
    world.sizes = plan.sizes
    os_ = cfg.oversample
    frames: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    depths: list[np.ndarray] = []

    def on_frame(f: int, w: ClevrerWorld) -> None:
        uids = w._run.uids
        for k, target, margin in plan.kicks.get(f, ()):
            _push(world, cfg, uids[k], target, margin)
        if f % os_ == 0:
            if cfg.depth:
                rgb, mask, depth = w.render_frame_with_depth()
                depths.append(depth)
            else:
                rgb, mask = w.render_frame()
            frames.append(rgb)
            masks.append(mask)

    sim = world.simulate(plan.initial, frames=cfg.frames * os_, on_frame=on_frame)
    n = len(plan.initial.objects)
    # velocities per physics frame; a push at frame f shows from frame f + 1, so take the speed the
    # object leaves frame f with: the state of f + 1 (the last frame keeps its own)
    vel = np.array([[s.velocity for s in fs.objects] for fs in sim.trajectory], dtype=np.float64)  # [P, n, 3]
    loc = np.array([[s.location for s in fs.objects] for fs in sim.trajectory], dtype=np.float64)
    view = np.array([[s.inside_camera_view for s in fs.objects] for fs in sim.trajectory], dtype=bool)
    speed = np.linalg.norm(vel, axis=2)
    leaving = np.concatenate([speed[1:], speed[-1:]], axis=0)
    leaving_vel = np.concatenate([vel[1:], vel[-1:]], axis=0)
    times = np.arange(len(sim.trajectory)) / (cfg.fps * os_)
    length, sr = cfg.samples, cfg.sample_rate
    starts = np.array([cfg.frame_start(f) for f in range(cfg.frames + 1)])

    rows: list[np.ndarray] = []
    source_object: list[int] = []
    for k in range(n):
        cat = plan.categories[k]
        if cat is not None:
            env = speed_envelope(leaving[:, k], times, sr, length)
            rows.append(instrument_tone(INSTRUMENTS[cat], plan.pitches[k], env, sr))
            source_object.append(k)
    collisions: list[AVCollision] = []
    impact_track = np.zeros(length, dtype=np.float32)
    for i, col in enumerate(sim.collisions):
        a, b = col.object_ids
        onset = int(round(col.frame_id * sr / (cfg.fps * os_)))
        if onset >= length:
            continue
        before = max(col.frame_id - 1, 0)
        rel = round(float(np.linalg.norm(vel[before, a] - vel[before, b])), 6)
        span = min(length - onset, int(_IMPACT_SECONDS * sr))
        for j, obj in enumerate((a, b)):
            o = plan.initial.objects[obj]
            ring = impact_sound(impact_modes(o.shape, plan.sizes[obj], o.material), rel, sr, span, seed=(seed, i, j))
            impact_track[onset:onset + span] += cfg.impact_gain * ring
        frame = int(np.searchsorted(starts, onset, side="right") - 1)
        word = impact_word([plan.initial.objects[a].material, plan.initial.objects[b].material])
        collisions.append(AVCollision(frame, (a, b), onset, rel, tuple(float(x) for x in col.location), word))
    kinds = ["instrument"] * len(rows)
    if cfg.impacts:
        rows.append(impact_track)
        source_object.append(-1)
        kinds.append("impact")
    sources = np.stack(rows).astype(np.float32) if rows else np.zeros((0, length), dtype=np.float32)
    peak = float(np.abs(sources.sum(0)).max()) if len(rows) else 0.0
    if peak > cfg.peak:
        sources = (sources * (cfg.peak / peak)).astype(np.float32)
    mixture = sources.sum(0).astype(np.float32)

    picks = np.arange(cfg.frames) * os_
    frame_speed = leaving.reshape(cfg.frames, os_, n).mean(axis=1)
    frame_vel = leaving_vel.reshape(cfg.frames, os_, n, 3).mean(axis=1)
    objects = []
    for k, o in enumerate(plan.initial.objects):
        loud = np.zeros(cfg.frames, dtype=np.float32)
        if k in source_object:
            wave = np.abs(sources[source_object.index(k)])
            loud = np.array([wave[starts[f]:starts[f + 1]].mean() for f in range(cfg.frames)], dtype=np.float32)
        objects.append(AVObject(
            index=k, shape=o.shape, color=o.color, material=o.material, size=plan.sizes[k],
            category=plan.categories[k], is_sounding=plan.categories[k] is not None, pitch=plan.pitches[k],
            positions=loc[picks, k].astype(np.float32), speeds=frame_speed[:, k].astype(np.float32),
            in_view=view[picks, k], loudness=loud, velocities=frame_vel[:, k].astype(np.float32),
        ))
    return AudioVisualClip(
        frames=np.stack(frames), masks=np.stack(masks).astype(np.int16), sources=sources,
        source_object=tuple(source_object), mixture=mixture, sample_rate=sr, fps=float(cfg.fps),
        objects=tuple(objects), collisions=tuple(sorted(collisions, key=lambda c: (c.onset, c.objects))),
        seed=seed, source_kind=tuple(kinds), config=cfg, depth=np.stack(depths) if cfg.depth else None,
    )


def mix(*clips: AudioVisualClip) -> np.ndarray:
    """The sum of the clips' mixtures (mix-and-separate training), float32 ``[L]``.

    Raises:
        ConfigError: no clips, or clips of different sample rates or lengths.
    """
    if not clips:
        raise ConfigError("mix needs at least one clip")
    rates = {c.sample_rate for c in clips}
    lengths = {c.mixture.shape[0] for c in clips}
    if len(rates) != 1 or len(lengths) != 1:
        raise ConfigError(f"cannot mix clips of sample rates {sorted(rates)} and lengths {sorted(lengths)}")
    return np.sum([c.mixture for c in clips], axis=0).astype(np.float32)


# ---------------------------------------------------------------------- files
def clip_files(folder: PathLike, n_sources: int) -> dict[str, Path]:
    """The files of a clip folder: ``json``, ``frames``, ``mixture``, ``source_<s>``."""
    folder = Path(folder)
    files = {"json": folder / "clip.json", "frames": folder / "frames.npz", "mixture": folder / "mixture.wav"}
    files.update({f"source_{s}": folder / f"source_{s}.wav" for s in range(n_sources)})
    return files


def write_clip(clip: AudioVisualClip, folder: PathLike) -> Path:
    """Write ``clip`` into ``folder`` (created); ``clip.json`` is written last, so it marks a whole clip.

    Returns:
        The folder.
    """
    folder = ensure_dir(folder, "clip folder")
    files = clip_files(folder, len(clip.source_object))
    buf = io.BytesIO()
    np.savez_compressed(buf, frames=clip.frames, masks=clip.masks)
    atomic_write_bytes(files["frames"], buf.getvalue())
    write_wav(files["mixture"], clip.mixture, clip.sample_rate)
    for s in range(len(clip.source_object)):
        write_wav(files[f"source_{s}"], clip.sources[s], clip.sample_rate)
    atomic_write_json(files["json"], clip.metadata(), indent=1)
    return folder


def read_clip(folder: PathLike) -> AudioVisualClip:
    """Read a clip :func:`write_clip` wrote.

    Raises:
        DataError: a file is missing, corrupt or disagrees with ``clip.json`` (names the file).
    """
    folder = Path(folder)
    path = folder / "clip.json"
    meta = read_json(path, "audio-visual clip file")
    if not isinstance(meta, dict) or meta.get("format") != CLIP_FORMAT:
        raise DataError(f"{path}: not an audio-visual clip file (expected format {CLIP_FORMAT!r})")
    try:
        frames_n, h, w, samples = (int(meta[k]) for k in ("frames", "height", "width", "samples"))
        sr, fps, seed = int(meta["sample_rate"]), float(meta["fps"]), int(meta["seed"])
        config = AudioVisualConfig.from_json(meta["config"], f"{path}: config")
        objects = tuple(AVObject.from_json(o, frames_n, f"{path}: objects[{i}]") for i, o in enumerate(meta["objects"]))
        collisions = tuple(AVCollision.from_json(c, f"{path}: collisions[{i}]") for i, c in enumerate(meta["collisions"]))
        source_object = tuple(int(s["object"]) for s in meta["sources"])
        source_kind = tuple(str(s["kind"]) for s in meta["sources"])
    except DataError:
        raise
    except KeyError as exc:
        raise DataError(f"{path}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{path}: malformed clip record ({exc})") from None
    if not (np.isfinite(fps) and fps > 0 and sr > 0):  # NaN passed float() and was used as the frame rate
        raise DataError(f"{path}: 'fps' and 'sample_rate' must be positive numbers, got {meta['fps']!r} and "
                        f"{meta['sample_rate']!r}")
    files = clip_files(folder, len(source_object))
    arrays = _read_frames(files["frames"])
    if arrays["frames"].shape != (frames_n, h, w, 3) or arrays["masks"].shape != (frames_n, h, w):
        raise DataError(f"{files['frames']}: frames {arrays['frames'].shape} / masks {arrays['masks'].shape} "
                        f"disagree with clip.json ({frames_n} frames of {h}x{w})")
    waves = []
    for name in ["mixture"] + [f"source_{s}" for s in range(len(source_object))]:
        wave, rate = read_wav(files[name])
        if rate != sr or wave.shape != (samples,):
            raise DataError(f"{files[name]}: {wave.shape[0]} samples at {rate} Hz; clip.json says {samples} at {sr} Hz")
        waves.append(wave)
    sources = np.stack(waves[1:]) if len(waves) > 1 else np.zeros((0, samples), dtype=np.float32)
    return AudioVisualClip(
        frames=arrays["frames"], masks=arrays["masks"], sources=sources, source_object=source_object,
        mixture=waves[0], sample_rate=sr, fps=fps, objects=objects, collisions=collisions, seed=seed,
        source_kind=source_kind, config=config,
    )


def _read_frames(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {"frames": np.asarray(data["frames"]), "masks": np.asarray(data["masks"])}
    except FileNotFoundError:
        raise DataError(f"clip frames file not found: {path}") from None
    except KeyError as exc:
        raise DataError(f"{path}: no {exc.args[0]} array") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable frames file ({npz_failure(exc)})") from None
    if out["frames"].dtype != np.uint8 or out["masks"].dtype != np.int16:
        raise DataError(f"{path}: frames must be uint8 and masks int16, got {out['frames'].dtype}, {out['masks'].dtype}")
    return out


def _rounded(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype=np.float64), 5).tolist()

