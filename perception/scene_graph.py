"""SceneGraph: the object-centric scene every model reads and writes.

Shape of the data (one scene)::

    objects          tuple of SceneObject, N >= 0
      .shape/.color/.material/.size   str, from the CLEVR vocabulary
      .position      (x, y, z) float, scene units          (CLEVR `3d_coords`)
      .rotation      float, degrees about z               (CLEVR `rotation`)
      .pixel_coords  (u, v, depth) or None                 (CLEVR `pixel_coords`)
      .mask          run-length mask dict or None          (optional)
      .sound         str or None: the sound it makes, e.g. an instrument class  (optional, `sound`)
      .is_sounding   bool or None: whether it is making it now  (optional, `is_sounding`)
    directions       {relation name: (dx, dy, dz)}         (CLEVR `directions`)
    relationships    {relation: [[j, ...] for each i]}     (CLEVR `relationships`)

``relationships[R][i]`` lists the objects j that are R of object i.  When a file
carries them they are used as given; when absent they are computed from the
coordinates exactly as CLEVR does: j is R of i when
``dot(coords_j - coords_i, directions[R]) > 0.2``.

Validation happens here, at the boundary; code inside the framework trusts a
SceneGraph.

>>> sg = SceneGraph.from_clevr({"objects": [
...     {"shape": "cube", "color": "red", "material": "metal", "size": "large",
...      "3d_coords": [0, 0, 0.7], "rotation": 0},
...     {"shape": "sphere", "color": "blue", "material": "rubber", "size": "small",
...      "3d_coords": [2, 0, 0.35], "rotation": 0}]})
>>> sg.relationships["right"][0]
[1]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perception.errors import SceneError
from physics.errors import DataError, NesyError
from physics.io import PathLike, atomic_write_json, read_json
from physics.worlds.clevr_properties import (
    ATTRIBUTES,
    DEFAULT_DIRECTIONS,
    RELATION_EPS,
    RELATIONS,
)

__all__ = ["SceneObject", "SceneGraph", "load_scenes", "scenes_by_index", "save_scenes", "compute_relationships"]

Vec3 = tuple[float, float, float]

# Keys of a CLEVR object that SceneObject models; anything else is kept in `extra`.
_OBJECT_KEYS = {"shape", "color", "material", "size", "3d_coords", "rotation", "pixel_coords", "mask", "sound",
                "is_sounding"}
_SCENE_KEYS = {"objects", "directions", "relationships", "image_index", "image_filename", "split"}


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene (see the module docstring for field meanings)."""

    shape: str
    color: str
    material: str
    size: str
    position: Vec3
    rotation: float = 0.0
    pixel_coords: Vec3 | None = None
    mask: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    sound: str | None = None
    is_sounding: bool | None = None

    def attribute(self, name: str) -> str:
        """The value of attribute ``name`` (shape, color, material or size)."""
        return getattr(self, name)

    def to_clevr(self) -> dict[str, Any]:
        """This object as a CLEVR scene-JSON object dict."""
        out: dict[str, Any] = {
            "shape": self.shape,
            "color": self.color,
            "material": self.material,
            "size": self.size,
            "3d_coords": list(self.position),
            "rotation": self.rotation,
        }
        if self.pixel_coords is not None:
            out["pixel_coords"] = list(self.pixel_coords)
        if self.mask is not None:
            out["mask"] = dict(self.mask)
        if self.sound is not None:
            out["sound"] = self.sound
        if self.is_sounding is not None:
            out["is_sounding"] = self.is_sounding
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class SceneGraph:
    """A validated scene: objects, camera directions and spatial relationships."""

    objects: tuple[SceneObject, ...]
    directions: Mapping[str, Vec3] = field(default_factory=lambda: dict(DEFAULT_DIRECTIONS))
    relationships: Mapping[str, list[list[int]]] = field(default_factory=dict)
    image_index: int | None = None
    image_filename: str | None = None
    split: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.relationships:
            object.__setattr__(
                self, "relationships", compute_relationships(self.objects, self.directions)
            )

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def name(self) -> str:
        """A human label for messages: the image file, the index, or 'scene'."""
        if self.image_filename:
            return f"scene {self.image_filename}"
        if self.image_index is not None:
            return f"scene {self.image_index}"
        return "scene"

    # ------------------------------------------------------------------ CLEVR JSON
    @classmethod
    def from_clevr(
        cls,
        data: Any,
        *,
        where: str = "scene",
        vocabulary: Mapping[str, Sequence[str]] = ATTRIBUTES,
    ) -> SceneGraph:
        """Parse and validate one scene dict in the official CLEVR scene format.

        Args:
            data: The scene dict (``objects`` required; ``directions``,
                ``relationships``, ``image_index``, ``image_filename`` optional).
            where: Label used in error messages (file and index).
            vocabulary: Allowed values per attribute (CLEVR's by default).

        Raises:
            SceneError: naming the scene, the object and the offending field.
        """
        if not isinstance(data, Mapping):
            raise SceneError(f"{where}: expected a JSON object, got {type(data).__name__}")
        if "objects" not in data:
            raise SceneError(f"{where}: missing field 'objects'")
        raw_objects = data["objects"]
        if not isinstance(raw_objects, list):
            raise SceneError(f"{where}: 'objects' must be a list, got {type(raw_objects).__name__}")
        if "image_index" in data and data["image_index"] is not None:
            where = f"{where} (image_index {data['image_index']})"
        objects = tuple(
            _parse_object(o, f"{where}, object {k}", vocabulary) for k, o in enumerate(raw_objects)
        )
        directions = (
            _parse_directions(data["directions"], where)
            if "directions" in data
            else dict(DEFAULT_DIRECTIONS)
        )
        relationships = (
            _parse_relationships(data["relationships"], len(objects), where)
            if "relationships" in data
            else {}
        )
        image_index = data.get("image_index")
        if image_index is not None and (isinstance(image_index, bool) or not isinstance(image_index, int)):
            raise SceneError(f"{where}: 'image_index' must be an integer, got {image_index!r}")
        image_filename = data.get("image_filename")
        if image_filename is not None and not isinstance(image_filename, str):
            raise SceneError(f"{where}: 'image_filename' must be a string, got {image_filename!r}")
        return cls(
            objects=objects,
            directions=directions,
            relationships=relationships,
            image_index=image_index,
            image_filename=image_filename,
            split=data.get("split"),
            extra={k: v for k, v in data.items() if k not in _SCENE_KEYS},
        )

    def to_clevr(self) -> dict[str, Any]:
        """This scene as an official CLEVR scene dict (JSON-serialisable)."""
        out: dict[str, Any] = {}
        if self.split is not None:
            out["split"] = self.split
        if self.image_index is not None:
            out["image_index"] = self.image_index
        if self.image_filename is not None:
            out["image_filename"] = self.image_filename
        out["objects"] = [o.to_clevr() for o in self.objects]
        out["directions"] = {k: list(v) for k, v in self.directions.items()}
        out["relationships"] = {k: [list(js) for js in v] for k, v in self.relationships.items()}
        out.update(self.extra)
        return out

    # ------------------------------------------------------------------ networkx
    def to_networkx(self):  # -> networkx.MultiDiGraph
        """Objects as nodes (attributes as node data), relations as typed edges.

        An edge ``i -> j`` with ``relation=R`` means object j is R of object i,
        matching ``relationships[R][i]``.
        """
        import networkx as nx

        g = nx.MultiDiGraph(name=self.name)
        for i, o in enumerate(self.objects):
            g.add_node(
                i,
                shape=o.shape,
                color=o.color,
                material=o.material,
                size=o.size,
                position=o.position,
                rotation=o.rotation,
                pixel_coords=o.pixel_coords,
            )
        for rel, rows in self.relationships.items():
            for i, js in enumerate(rows):
                for j in js:
                    g.add_edge(i, j, key=rel, relation=rel)
        return g


def compute_relationships(
    objects: Sequence[SceneObject], directions: Mapping[str, Vec3], eps: float = RELATION_EPS
) -> dict[str, list[list[int]]]:
    """CLEVR's rule: j is R of i iff dot(coords_j - coords_i, dir_R) > eps.

    ``above`` and ``below`` are skipped, as in CLEVR.
    """
    out: dict[str, list[list[int]]] = {}
    for name, d in directions.items():
        if name in ("above", "below"):
            continue
        rows = []
        for i, oi in enumerate(objects):
            xi, yi, zi = oi.position
            row = []
            for j, oj in enumerate(objects):
                if i == j:
                    continue
                xj, yj, zj = oj.position
                if (xj - xi) * d[0] + (yj - yi) * d[1] + (zj - zi) * d[2] > eps:
                    row.append(j)
            rows.append(row)
        out[name] = rows
    return out


def load_scenes(path: PathLike, *, skipped: list[str] | None = None, **kwargs: Any) -> list[SceneGraph]:
    """Read a CLEVR scenes file: ``{"info":..., "scenes": [...]}`` or one scene dict.

    Args:
        path: The file.
        skipped: If a list, a malformed scene of a scenes file is left out and its
            message appended here (a batch reader's "report and skip"); else it raises.
        **kwargs: Passed to :meth:`SceneGraph.from_clevr`.

    Raises:
        DataError / SceneError: unreadable JSON or an invalid scene, with the
            file name and scene index in the message.
    """
    data = read_json(path, "CLEVR scenes file")
    name = Path(path).name
    if isinstance(data, Mapping) and "scenes" in data:
        scenes = data["scenes"]
        if not isinstance(scenes, list):
            raise SceneError(f"{name}: 'scenes' must be a list, got {type(scenes).__name__}")
        out = []
        for k, s in enumerate(scenes):
            try:
                out.append(SceneGraph.from_clevr(s, where=f"{name}: scene {k}", **kwargs))
            except NesyError as err:
                if skipped is None:
                    raise
                skipped.append(str(err))
        return out
    if isinstance(data, Mapping) and "objects" in data:
        return [SceneGraph.from_clevr(data, where=f"{name}", **kwargs)]
    raise SceneError(f"{name}: expected a CLEVR scenes file (keys 'info', 'scenes') or one scene (key 'objects')")


def scenes_by_index(scenes: Sequence[SceneGraph], path: PathLike) -> dict[int, SceneGraph]:
    """Scenes keyed by ``image_index`` (their position in the file when they carry none), in file order.

    Raises:
        DataError: two scenes share an ``image_index`` (questions about it could not tell them apart).
    """
    out: dict[int, SceneGraph] = {}
    for k, scene in enumerate(scenes):
        key = scene.image_index if scene.image_index is not None else k
        if key in out:
            raise DataError(f"{Path(path).name}: scenes {k} and an earlier one share image_index {key}")
        out[key] = scene
    return out


def save_scenes(path: PathLike, scenes: Sequence[SceneGraph], info: Mapping[str, Any] | None = None) -> None:
    """Write scenes as an official CLEVR scenes file, atomically."""
    atomic_write_json(path, {"info": dict(info or {}), "scenes": [s.to_clevr() for s in scenes]})


# ---------------------------------------------------------------------- parsing
def _vec(value: Any, n: int, where: str, field_name: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise SceneError(f"{where}: '{field_name}' must be a list of {n} numbers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SceneError(f"{where}: '{field_name}' must hold finite numbers, got {value!r}")
        out.append(float(v))
    return tuple(out)


def _parse_object(o: Any, where: str, vocabulary: Mapping[str, Sequence[str]]) -> SceneObject:
    if not isinstance(o, Mapping):
        raise SceneError(f"{where}: expected a JSON object, got {type(o).__name__}")
    attrs = {}
    for name, allowed in vocabulary.items():
        if name not in o:
            raise SceneError(f"{where}: missing field '{name}'")
        value = o[name]
        if not isinstance(value, str):
            raise SceneError(f"{where}: '{name}' must be a string, got {value!r}")
        if value not in allowed:
            raise SceneError(f"{where}: unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        attrs[name] = value
    if "3d_coords" not in o:
        raise SceneError(f"{where}: missing field '3d_coords'")
    position = _vec(o["3d_coords"], 3, where, "3d_coords")
    rotation = o.get("rotation", 0.0)
    if isinstance(rotation, bool) or not isinstance(rotation, (int, float)) or not math.isfinite(rotation):
        raise SceneError(f"{where}: 'rotation' must be a finite number, got {rotation!r}")
    pixel = o.get("pixel_coords")
    pixel_coords = _vec(pixel, 3, where, "pixel_coords") if pixel is not None else None
    mask = o.get("mask")
    if mask is not None and not isinstance(mask, Mapping):
        raise SceneError(f"{where}: 'mask' must be a run-length dict, got {type(mask).__name__}")
    sound, sounding = o.get("sound"), o.get("is_sounding")
    if sound is not None and not isinstance(sound, str):
        raise SceneError(f"{where}: 'sound' must be a word, got {sound!r}")
    if sounding is not None and not isinstance(sounding, bool):
        raise SceneError(f"{where}: 'is_sounding' must be true or false, got {sounding!r}")
    return SceneObject(
        sound=sound,
        is_sounding=sounding,
        position=position,  # type: ignore[arg-type]
        rotation=float(rotation),
        pixel_coords=pixel_coords,  # type: ignore[arg-type]
        mask=mask,
        extra={k: v for k, v in o.items() if k not in _OBJECT_KEYS and k not in vocabulary},
        **attrs,
    )


def _parse_directions(d: Any, where: str) -> dict[str, Vec3]:
    if not isinstance(d, Mapping):
        raise SceneError(f"{where}: 'directions' must be an object, got {type(d).__name__}")
    out = {k: _vec(v, 3, where, f"directions.{k}") for k, v in d.items()}
    missing = [r for r in RELATIONS if r not in out]
    if missing:
        raise SceneError(f"{where}: 'directions' lacks {', '.join(missing)}")
    return out  # type: ignore[return-value]


def _parse_relationships(r: Any, n: int, where: str) -> dict[str, list[list[int]]]:
    if not isinstance(r, Mapping):
        raise SceneError(f"{where}: 'relationships' must be an object, got {type(r).__name__}")
    out = {}
    for name, rows in r.items():
        if not isinstance(rows, list) or len(rows) != n:
            raise SceneError(
                f"{where}: relationships.{name} must be a list with one entry per object ({n})"
            )
        parsed = []
        for i, js in enumerate(rows):
            if not isinstance(js, list) or not all(
                isinstance(j, int) and not isinstance(j, bool) and 0 <= j < n and j != i for j in js
            ):
                raise SceneError(
                    f"{where}: relationships.{name}[{i}] must list object indices in 0..{n - 1} other than {i}"
                )
            parsed.append(list(js))
        out[name] = parsed
    missing = [rel for rel in RELATIONS if rel not in out]
    if missing:
        raise SceneError(f"{where}: 'relationships' lacks {', '.join(missing)}")
    return out
