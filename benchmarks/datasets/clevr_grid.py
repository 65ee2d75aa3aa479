"""A figure of sample renders beside their instance masks (``docs/images/clevr_samples.png``).

Reads a folder written by ``nesy data clevr`` (or the official layout with
masks), so the figure shows exactly the files on disk.  With ``beside``, each
image is preceded by the image of the same name in another build of the same
seed and split -- e.g. the pybullet render beside the Blender render of the
same scene graph (``docs/images/clevr_pybullet_vs_blender.png``); the two
builds' scene records must hold the same objects.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from perception.datasets.clevr import find_layout
from perception.datasets.instance_masks import colorize_mask, read_mask_png
from perception.image_io import load_image
from physics.errors import DataError
from physics.io import PathLike, atomic_write_bytes, read_json

__all__ = ["save_sample_grid"]

_GAP = 4  # pixels between tiles


def save_sample_grid(
    root: PathLike,
    split: str,
    path: PathLike,
    *,
    count: int = 6,
    columns: int = 2,
    scale: float = 0.5,
    beside: PathLike | None = None,
) -> dict[str, int]:
    """Write a PNG grid of the first ``count`` images, each followed by its mask.

    Args:
        root: Data set folder.
        split: Split to show.
        path: Output PNG (written atomically).
        count: Images shown.
        columns: (image, mask) pairs (or triples, with ``beside``) per row.
        scale: Tile size relative to the images.
        beside: Another build of the same seed and split whose image of each
            name is shown first.

    Returns:
        ``{"width", "height", "bytes"}`` of the written figure.

    Raises:
        DataError: a folder lacks images or masks, or ``beside`` holds other scene graphs.
    """
    layout = find_layout(root, split)
    if layout.masks is None:
        raise DataError(f"{root}: split {split!r} has no masks/ folder to show")
    names = sorted(p.name for p in layout.images.glob(f"CLEVR_{split}_*.png"))[:count]
    if not names:
        raise DataError(f"no CLEVR_{split}_*.png images in {layout.images}")
    other = None if beside is None else find_layout(beside, split)
    if other is not None:
        _check_same_objects(layout.scenes, other.scenes, names)
    tiles = []
    for name in names:
        rgb = load_image(layout.images / name)
        mask = colorize_mask(read_mask_png(layout.masks / name))
        h, w = rgb.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if other is not None:
            tiles.append(np.asarray(Image.fromarray(load_image(other.images / name)).resize(size, Image.Resampling.LANCZOS)))
        tiles.append(np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS)))
        tiles.append(np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST)))
    th, tw = tiles[0].shape[:2]
    per_row = (2 if other is None else 3) * columns
    rows = -(-len(tiles) // per_row)
    canvas = np.full((rows * th + (rows - 1) * _GAP, per_row * tw + (per_row - 1) * _GAP, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, per_row)
        y, x = r * (th + _GAP), c * (tw + _GAP)
        canvas[y : y + th, x : x + tw] = tile
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())
    return {"width": canvas.shape[1], "height": canvas.shape[0], "bytes": len(buf.getvalue())}


def _check_same_objects(scenes_a: PathLike | None, scenes_b: PathLike | None, names: list[str]) -> None:
    """Both scenes files describe the images ``names`` with the same objects."""
    if scenes_a is None or scenes_b is None:
        raise DataError("a side-by-side figure needs both builds' scenes files, to check they hold the same scenes")
    records = []
    for path in (scenes_a, scenes_b):
        scenes = read_json(path, "CLEVR scenes file").get("scenes", [])
        records.append({s.get("image_filename"): s.get("objects") for s in scenes if isinstance(s, dict)})
    for name in names:
        if records[0].get(name) is None or records[0].get(name) != records[1].get(name):
            raise DataError(f"{scenes_a} and {scenes_b} hold different objects for {name}; build both with the same seed")
