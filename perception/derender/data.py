"""Reading derendering data: images, instance masks and their CLEVR scenes.

A data folder is what ``nesy data clevr`` writes (the official CLEVR layout plus
masks)::

    DIR/images/CLEVR_<split>_<index:06d>.png     RGB
    DIR/masks/CLEVR_<split>_<index:06d>.png      instance ids (0 = ground,
                                                 k = object k-1 of the scene)
    DIR/CLEVR_<split>_scenes.json                official CLEVR scenes

Shapes: image uint8 [H, W, 3]; mask int64 [H, W].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.image_io import load_image
from perception.scene_graph import SceneGraph, load_scenes
from physics.errors import DataError
from physics.io import PathLike

__all__ = ["load_image", "load_instance_mask", "DerenderSample", "load_derender_folder", "load_derender_folders"]


def load_instance_mask(path: PathLike) -> np.ndarray:
    """Read an instance-id PNG (16-bit grey or palette) as int64 [H, W].

    Raises:
        DataError: naming the file when it is missing or unreadable.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"instance mask not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA"):
                raise DataError(f"instance mask {path} is colour ({im.mode}); expected grey or palette ids")
            mask = np.asarray(im, dtype=np.int64)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read instance mask {path}: {exc}") from None
    return mask


@dataclass(frozen=True)
class DerenderSample:
    """One annotated image: its paths and ground-truth scene."""

    image_path: Path
    mask_path: Path | None
    scene: SceneGraph


def load_derender_folder(root: PathLike, *, split: str | None = None, limit: int | None = None) -> list[DerenderSample]:
    """List the annotated images of a data folder written by ``nesy data clevr``.

    Args:
        root: the folder (holding ``images/``, ``masks/`` and the scenes file).
        split: which ``CLEVR_<split>_scenes.json`` to read; None takes the only one.
        limit: keep the first ``limit`` scenes.

    Raises:
        DataError: no or several scenes files, or a scene whose image is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"derender data folder not found: {root}")
    if split is None:
        files = sorted(root.glob("CLEVR_*_scenes.json")) or sorted(root.glob("scenes/CLEVR_*_scenes.json"))
        if not files:  # "pass split=" meant nothing to a user of the command line, which has no such flag
            raise DataError(f"{root}: no CLEVR_<split>_scenes.json (a folder written by `nesy data clevr`)")
        if len(files) != 1:
            raise DataError(f"{root}: expected one CLEVR_<split>_scenes.json, found {', '.join(f.name for f in files)} "
                            "(load_derender_folder(split=...) picks one; the command line reads a folder of one split)")
        scenes_file = files[0]
    else:
        scenes_file = root / f"CLEVR_{split}_scenes.json"
        if not scenes_file.is_file():
            scenes_file = root / "scenes" / f"CLEVR_{split}_scenes.json"
    scenes = load_scenes(scenes_file)
    if limit is not None:
        scenes = scenes[:limit]
    samples = []
    for k, scene in enumerate(scenes):
        if not scene.image_filename:
            raise DataError(f"{scenes_file.name}: scene {k} has no image_filename")
        image = root / "images" / scene.image_filename
        if not image.is_file() and scene.split:
            image = root / "images" / scene.split / scene.image_filename
        if not image.is_file():
            raise DataError(f"{scenes_file.name}: image of scene {k} not found: {image}")
        mask = root / "masks" / scene.image_filename
        samples.append(DerenderSample(image, mask if mask.is_file() else None, scene))
    return samples


def load_derender_folders(roots: str, *, limit: int | None = None) -> list[DerenderSample]:
    """The samples of one folder, or of several joined by commas, in the order named.

    ``limit`` keeps the first ``limit`` samples of the whole list.  A folder named twice is read twice, on
    purpose: its samples weigh twice (derender.md's round 2, ``--data $B,$B,data/pb_train``), so unlike
    ``--models in,in`` a repeat is not refused.

    Raises:
        DataError: as :func:`load_derender_folder`, naming the folder.
    """
    samples: list[DerenderSample] = []
    for root in (r.strip() for r in roots.split(",")):
        if not root:
            raise DataError(f"--data {roots!r}: an empty folder name between commas")
        if limit is not None and len(samples) >= limit:
            break
        samples += load_derender_folder(root, limit=None if limit is None else limit - len(samples))
    return samples
