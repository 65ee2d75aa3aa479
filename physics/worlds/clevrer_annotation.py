"""CLEVRER annotations as typed objects: read and write the official ``annotation_<index>.json``.

The official CLEVRER release (Yi, Gan et al., ICLR 2020) describes each video in
one JSON file::

    {"scene_index": 10000, "video_filename": "video_10000.mp4",
     "object_property": [{"object_id": 0, "color": "red", "material": "metal", "shape": "cube"}, ...],
     "motion_trajectory": [{"frame_id": 0, "objects": [
         {"object_id": 0, "location": [x, y, z], "orientation": [...], "velocity": [vx, vy, vz],
          "angular_velocity": [...], "inside_camera_view": true}, ...]}, ...],
     "collision": [{"object_ids": [0, 2], "frame_id": 57, "location": [x, y, z]}, ...]}

:func:`read_annotation` turns such a file (the official one or ours, which has
the same keys) into a :class:`VideoAnnotation`; :meth:`VideoAnnotation.to_json`
writes it back, keys in the official order, so a file read and written again is
unchanged.  Top-level keys this module does not know are kept in ``extra``.
Every malformed field raises :class:`~physics.errors.DataError` naming the file
and the field path (``motion_trajectory[3].objects[1].velocity``).

``orientation`` and ``angular_velocity`` are kept as they come (3 or 4 numbers):
our generator writes Euler angles (x, y, z, radians) and angular velocity in
rad/s; the official files' conventions are read as given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physics.errors import DataError
from physics.io import PathLike, atomic_write_json, read_json
from physics.worlds.clevr_properties import COLORS, MATERIALS, SHAPES

__all__ = [
    "ObjectProperty",
    "ObjectState",
    "FrameStates",
    "Collision",
    "VideoAnnotation",
    "read_annotation",
    "write_annotation",
    "annotation_files",
    "split_hint",
    "parse_trajectory",
    "parse_collisions",
    "trajectory_json",
    "collisions_json",
]

Vec = tuple[float, ...]


@dataclass(frozen=True)
class ObjectProperty:
    """The static attributes of one object of a video."""

    object_id: int
    color: str
    material: str
    shape: str

    def to_json(self) -> dict[str, Any]:
        return {"object_id": self.object_id, "color": self.color, "material": self.material, "shape": self.shape}


@dataclass(frozen=True)
class ObjectState:
    """One object at one frame: location (scene units), orientation, velocities, visibility."""

    object_id: int
    location: Vec
    orientation: Vec
    velocity: Vec
    angular_velocity: Vec
    inside_camera_view: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "object_id": self.object_id,
            "location": list(self.location),
            "orientation": list(self.orientation),
            "velocity": list(self.velocity),
            "angular_velocity": list(self.angular_velocity),
            "inside_camera_view": self.inside_camera_view,
        }


@dataclass(frozen=True)
class FrameStates:
    """Every object's state at frame ``frame_id`` (objects absent from the scene are left out)."""

    frame_id: int
    objects: tuple[ObjectState, ...]

    def by_id(self) -> dict[int, ObjectState]:
        """``object_id -> state`` at this frame."""
        return {o.object_id: o for o in self.objects}


@dataclass(frozen=True)
class Collision:
    """Two objects starting to touch at ``frame_id``, at ``location`` (mean contact point)."""

    object_ids: tuple[int, int]
    frame_id: int
    location: Vec

    def to_json(self) -> dict[str, Any]:
        return {"object_ids": list(self.object_ids), "frame_id": self.frame_id, "location": list(self.location)}


@dataclass(frozen=True)
class VideoAnnotation:
    """One CLEVRER video's annotation (the official file's content).

    Attributes:
        scene_index: The video's index.
        video_filename: The video file's name (``video_10000.mp4`` officially).
        object_property: Static attributes, one per object.
        motion_trajectory: Per-frame object states, in frame order.
        collision: Collisions in frame order.
        extra: Top-level keys besides the official five (kept for round trips).
    """

    scene_index: int
    video_filename: str
    object_property: tuple[ObjectProperty, ...]
    motion_trajectory: tuple[FrameStates, ...]
    collision: tuple[Collision, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.motion_trajectory)

    def to_json(self) -> dict[str, Any]:
        """The official JSON object (then any ``extra`` keys)."""
        return {
            "scene_index": self.scene_index,
            "video_filename": self.video_filename,
            "object_property": [o.to_json() for o in self.object_property],
            "motion_trajectory": trajectory_json(self.motion_trajectory),
            "collision": collisions_json(self.collision),
            **dict(self.extra),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "annotation") -> VideoAnnotation:
        """Check and convert a loaded annotation object.

        Raises:
            DataError: naming ``where`` and the first malformed field.
        """
        obj = _mapping(data, where)
        known = ("scene_index", "video_filename", "object_property", "motion_trajectory", "collision")
        props = [
            ObjectProperty(
                object_id=_int(_get(p, "object_id", f"{where}: object_property[{i}]"), f"{where}: object_property[{i}].object_id"),
                color=_str(_get(p, "color", f"{where}: object_property[{i}]"), f"{where}: object_property[{i}].color"),
                material=_str(_get(p, "material", f"{where}: object_property[{i}]"), f"{where}: object_property[{i}].material"),
                shape=_str(_get(p, "shape", f"{where}: object_property[{i}]"), f"{where}: object_property[{i}].shape"),
            )
            for i, p in enumerate(_list(_get(obj, "object_property", where), f"{where}: object_property"))
        ]
        for i, p in enumerate(props):  # a value no question names was read as given and its questions answered wrong
            for key, allowed in (("color", COLORS), ("material", MATERIALS), ("shape", SHAPES)):
                if getattr(p, key) not in allowed:
                    raise DataError(f"{where}: object_property[{i}].{key}: unknown {key} {getattr(p, key)!r}; "
                                    f"allowed: {', '.join(allowed)}")
        ids = [p.object_id for p in props]
        if len(set(ids)) != len(ids):
            raise DataError(f"{where}: object_property lists an object_id twice ({sorted(ids)})")
        return cls(
            scene_index=_int(_get(obj, "scene_index", where), f"{where}: scene_index"),
            video_filename=_str(_get(obj, "video_filename", where), f"{where}: video_filename"),
            object_property=tuple(props),
            motion_trajectory=parse_trajectory(_get(obj, "motion_trajectory", where), f"{where}: motion_trajectory", set(ids)),
            collision=parse_collisions(_get(obj, "collision", where), f"{where}: collision", set(ids)),
            extra={k: v for k, v in obj.items() if k not in known},
        )


def read_annotation(path: PathLike) -> VideoAnnotation:
    """Read an official (or our) CLEVRER annotation file.

    Raises:
        DataError: the file is missing, not JSON, or a field is malformed (file and field named).
    """
    return VideoAnnotation.from_json(read_json(path, "CLEVRER annotation"), where=str(path))


def write_annotation(path: PathLike, annotation: VideoAnnotation) -> None:
    """Write ``annotation`` atomically as JSON (compact, keys in the official order)."""
    atomic_write_json(Path(path), annotation.to_json())


def split_hint(folder: PathLike, asked: str) -> str:
    """`` (FOLDER holds split val: --split val)`` when a CLEVRER folder holds other splits than ``asked``.

    A command's default ``--split`` (``train`` or ``val``) is often not the split a user made; the error
    that a file is missing then says which splits are there.  Empty when the folder holds ``asked`` or none.

    >>> split_hint("no/such/folder", "train")
    ''
    """
    folder = Path(folder)
    splits = sorted(p.name.removeprefix("annotation_") for p in folder.glob("annotation_*") if p.is_dir())
    if not splits or asked in splits:
        return ""
    return (f" ({folder} holds split{'s' if len(splits) > 1 else ''} {', '.join(splits)}: "
            f"--split {' or --split '.join(splits)})")


def annotation_files(root: PathLike) -> list[Path]:
    """Every ``annotation_<index>.json`` below ``root``, in video-index order.

    Finds the official release's layout
    (``annotation_train/annotation_00000-01000/annotation_00000.json``) and ours
    (``annotation_train/annotation_00000.json``) alike.

    Raises:
        DataError: ``root`` is not a folder, or holds no annotation file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"CLEVRER annotation folder not found: {root}"
                        f"{split_hint(root.parent, root.name.removeprefix('annotation_'))}")
    found = []
    for path in root.rglob("annotation_*.json"):
        index = path.stem.removeprefix("annotation_")
        if index.isdigit():
            found.append((int(index), str(path), path))
    if not found:
        raise DataError(f"no annotation_<index>.json file below {root}")
    return [path for _, _, path in sorted(found)]


# ---------------------------------------------------------------------- parts shared with the truth files
def trajectory_json(frames: Sequence[FrameStates]) -> list[dict[str, Any]]:
    """Frames -> the official ``motion_trajectory`` list."""
    return [{"frame_id": f.frame_id, "objects": [o.to_json() for o in f.objects]} for f in frames]


def collisions_json(collisions: Sequence[Collision]) -> list[dict[str, Any]]:
    """Collisions -> the official ``collision`` list."""
    return [c.to_json() for c in collisions]


def parse_trajectory(data: Any, where: str, ids: set[int] | None = None) -> tuple[FrameStates, ...]:
    """Check and convert a ``motion_trajectory`` list (frame ids must increase).

    Args:
        data: The loaded list.
        where: File and field for messages.
        ids: The object ids allowed (``None``: any).
    """
    frames = []
    last = None
    for i, fr in enumerate(_list(data, where)):
        at = f"{where}[{i}]"
        fid = _int(_get(fr, "frame_id", at), f"{at}.frame_id")
        if last is not None and fid <= last:
            raise DataError(f"{at}.frame_id: {fid} does not follow frame {last} (frame ids must increase)")
        last = fid
        states = []
        for j, o in enumerate(_list(_get(fr, "objects", at), f"{at}.objects")):
            oat = f"{at}.objects[{j}]"
            oid = _int(_get(o, "object_id", oat), f"{oat}.object_id")
            if ids is not None and oid not in ids:
                raise DataError(f"{oat}.object_id: {oid} is not in object_property (ids {sorted(ids)})")
            inside = _get(o, "inside_camera_view", oat)
            if not isinstance(inside, bool):
                raise DataError(f"{oat}.inside_camera_view: expected true or false, got {inside!r}")
            states.append(
                ObjectState(
                    object_id=oid,
                    location=_vec(_get(o, "location", oat), f"{oat}.location", (3,)),
                    orientation=_vec(_get(o, "orientation", oat), f"{oat}.orientation", (3, 4)),
                    velocity=_vec(_get(o, "velocity", oat), f"{oat}.velocity", (3,)),
                    angular_velocity=_vec(_get(o, "angular_velocity", oat), f"{oat}.angular_velocity", (3, 4)),
                    inside_camera_view=inside,
                )
            )
        frames.append(FrameStates(fid, tuple(states)))
    return tuple(frames)


def parse_collisions(data: Any, where: str, ids: set[int] | None = None) -> tuple[Collision, ...]:
    """Check and convert a ``collision`` list (two distinct known object ids each)."""
    out = []
    for i, c in enumerate(_list(data, where)):
        at = f"{where}[{i}]"
        pair = [_int(x, f"{at}.object_ids") for x in _list(_get(c, "object_ids", at), f"{at}.object_ids")]
        if len(pair) != 2 or pair[0] == pair[1]:
            raise DataError(f"{at}.object_ids: expected two different object ids, got {pair}")
        if ids is not None and not set(pair) <= ids:
            raise DataError(f"{at}.object_ids: {pair} names an object not in object_property (ids {sorted(ids)})")
        out.append(
            Collision(
                object_ids=(pair[0], pair[1]),
                frame_id=_int(_get(c, "frame_id", at), f"{at}.frame_id"),
                location=_vec(_get(c, "location", at), f"{at}.location", (3,)),
            )
        )
    return tuple(out)


# ---------------------------------------------------------------------- field checks
def _mapping(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return data


def _get(data: Any, key: str, where: str) -> Any:
    obj = _mapping(data, where)
    if key not in obj:
        raise DataError(f"{where}: missing field {key!r}")
    return obj[key]


def _list(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise DataError(f"{where}: expected a list, got {type(data).__name__}")
    return data


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: expected an integer, got {value!r}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: expected a string, got {value!r}")
    return value


def _vec(value: Any, where: str, lengths: tuple[int, ...]) -> Vec:
    if not isinstance(value, list) or len(value) not in lengths:
        allowed = " or ".join(map(str, lengths))
        raise DataError(f"{where}: expected a list of {allowed} numbers, got {value!r}")
    for x in value:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise DataError(f"{where}: expected numbers, got {value!r}")
        if not math.isfinite(x):  # Python's json reads NaN and Infinity; our writer never writes them
            raise DataError(f"{where}: must hold finite numbers, got {value!r}")
    return tuple(float(x) for x in value)
