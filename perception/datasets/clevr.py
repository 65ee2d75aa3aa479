"""ClevrDataset: a torch Dataset over CLEVR-format folders (ours or the official release).

Two layouts are recognised, per split (``train``, ``val``, ``test``, CoGenT's
``trainA`` ...):

* **nesy-physics** (what ``nesy data clevr`` writes)::

      ROOT/CLEVR_<split>_scenes.json
      ROOT/CLEVR_<split>_questions.json        (optional)
      ROOT/images/CLEVR_<split>_000000.png
      ROOT/masks/CLEVR_<split>_000000.png       (optional, palette PNG, index = id + 1)

* **official CLEVR v1.0 release** (Johnson et al., CVPR 2017)::

      ROOT/scenes/CLEVR_<split>_scenes.json     (absent for the test split)
      ROOT/questions/CLEVR_<split>_questions.json
      ROOT/images/<split>/CLEVR_<split>_000000.png

Without a scenes file the images in the image folder are listed by name and
items carry ``scene = None``.  Every item is a dict:

* ``image``          float32 tensor [3, H, W] in [0, 1]
* ``mask``           int64 tensor [H, W] (object id, -1 background) or None
* ``scene``          :class:`~perception.SceneGraph` or None
* ``questions``      list of question dicts for this image (official format)
* ``image_index``    int;  ``image_filename`` str

Use :func:`collate_clevr` with a DataLoader (scenes and questions stay lists).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from perception.datasets.instance_masks import read_mask_png
from perception.image_io import load_image
from perception.scene_graph import SceneGraph
from physics.errors import DataError
from physics.io import PathLike, absent_file, read_json

__all__ = ["ClevrDataset", "ClevrLayout", "find_layout", "collate_clevr"]

_INDEX_RE = re.compile(r"_(\d+)\.png$")


class ClevrLayout:
    """Where the files of one split live (see the module docstring)."""

    def __init__(self, name: str, scenes: Path | None, questions: Path | None, images: Path, masks: Path | None):
        self.name = name
        self.scenes = scenes
        self.questions = questions
        self.images = images
        self.masks = masks

    def __repr__(self) -> str:
        return f"ClevrLayout({self.name!r}, images={self.images})"


def find_layout(root: PathLike, split: str) -> ClevrLayout:
    """Detect the folder layout of ``split`` under ``root``.

    Raises:
        DataError: neither layout is present, naming the paths looked for; or a folder stands where
            a scenes or questions file of the split is read.
    """
    root = Path(root)
    ours_scenes = root / f"CLEVR_{split}_scenes.json"
    ours_images = root / "images"
    for kind in ("scenes", "questions"):  # both layouts' file names: a folder there is named, not passed over
        for path in (root / f"CLEVR_{split}_{kind}.json", root / kind / f"CLEVR_{split}_{kind}.json"):
            if path.is_dir():
                raise DataError(absent_file(path, f"CLEVR split {split!r} {kind} file"))
    if ours_scenes.is_file():
        q = root / f"CLEVR_{split}_questions.json"
        m = root / "masks"
        return ClevrLayout("nesy", ours_scenes, q if q.is_file() else None, ours_images, m if m.is_dir() else None)
    official_images = root / "images" / split
    if official_images.is_dir():
        s = root / "scenes" / f"CLEVR_{split}_scenes.json"
        q = root / "questions" / f"CLEVR_{split}_questions.json"
        return ClevrLayout(
            "official", s if s.is_file() else None, q if q.is_file() else None, official_images, None
        )
    raise DataError(
        f"no CLEVR split {split!r} under {root}: looked for {ours_scenes} (nesy-physics layout) "
        f"and {official_images}/ (official CLEVR layout)"
    )


class ClevrDataset(Dataset):
    """CLEVR images with their scene graphs, instance masks and questions.

    Args:
        root: Data set folder (either layout).
        split: Split name (``train``, ``val``, ``test``, ...).
        load_masks: Read instance masks when the folder has them.
        load_questions: Attach each image's questions.
        transform: Applied to each item dict (returns a new dict; never mutate the input).
        vocabulary: Allowed attribute values for scene validation (CLEVR's by default).

    >>> ds = ClevrDataset("data/clevr", "val")            # doctest: +SKIP
    >>> item = ds[0]; item["image"].shape                  # doctest: +SKIP
    torch.Size([3, 320, 480])
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        *,
        load_masks: bool = True,
        load_questions: bool = True,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        vocabulary: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.layout = find_layout(self.root, split)
        self.transform = transform
        self.load_masks = load_masks and self.layout.masks is not None
        kwargs = {"vocabulary": vocabulary} if vocabulary is not None else {}
        if self.layout.scenes is not None:
            from perception.scene_graph import load_scenes, scenes_by_index

            self.scenes: list[SceneGraph | None] = list(load_scenes(self.layout.scenes, **kwargs))
            self.filenames = [self._filename(s, k) for k, s in enumerate(self.scenes)]
            self.indices = list(scenes_by_index(self.scenes, self.layout.scenes))  # type: ignore[arg-type]
        else:
            files = sorted(p.name for p in self.layout.images.glob(f"CLEVR_{split}_*.png"))
            if not files:
                raise DataError(f"no scenes file and no CLEVR_{split}_*.png images in {self.layout.images}")
            self.scenes = [None] * len(files)
            self.filenames = files
            self.indices = [self._index_from_name(f, k) for k, f in enumerate(files)]
        self.questions: dict[int, list[dict[str, Any]]] = {}
        if load_questions and self.layout.questions is not None:
            self.questions = _group_questions(self.layout.questions)

    def _filename(self, scene: SceneGraph, k: int) -> str:
        if scene.image_filename:
            return scene.image_filename
        index = scene.image_index if scene.image_index is not None else k
        return f"CLEVR_{self.split}_{index:06d}.png"

    @staticmethod
    def _index_from_name(name: str, k: int) -> int:
        m = _INDEX_RE.search(name)
        return int(m.group(1)) if m else k

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} {self.split} images")
        i = i % len(self)
        name = self.filenames[i]
        rgb = load_image(self.layout.images / name)
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)
        mask = None
        if self.load_masks:
            m = read_mask_png(self.layout.masks / name)  # type: ignore[operator]
            if m.shape != rgb.shape[:2]:
                raise DataError(
                    f"mask {self.layout.masks / name} is {m.shape[1]}x{m.shape[0]} "
                    f"but its image is {rgb.shape[1]}x{rgb.shape[0]}"
                )
            mask = torch.from_numpy(m.astype(np.int64))
        item = {
            "image": image,
            "mask": mask,
            "scene": self.scenes[i],
            "questions": list(self.questions.get(self.indices[i], [])),
            "image_index": self.indices[i],
            "image_filename": name,
        }
        return self.transform(item) if self.transform is not None else item


def _group_questions(path: Path) -> dict[int, list[dict[str, Any]]]:
    data = read_json(path, "CLEVR questions file")
    if not isinstance(data, Mapping) or not isinstance(data.get("questions"), list):
        raise DataError(f"{path}: expected a CLEVR questions file with a 'questions' list")
    out: dict[int, list[dict[str, Any]]] = {}
    for k, q in enumerate(data["questions"]):
        if not isinstance(q, Mapping) or not isinstance(q.get("image_index"), int):
            raise DataError(f"{path}: question {k} lacks an integer 'image_index'")
        out.setdefault(q["image_index"], []).append(dict(q))
    return out


def collate_clevr(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch items: images [B, 3, H, W] (and masks [B, H, W] when all have one) stacked, the rest as lists."""
    out: dict[str, Any] = {"image": torch.stack([it["image"] for it in items])}
    masks = [it["mask"] for it in items]
    out["mask"] = torch.stack(masks) if all(m is not None for m in masks) else masks
    for key in items[0]:
        if key not in out:
            out[key] = [it[key] for it in items]
    return out
