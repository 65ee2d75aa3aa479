"""A figure of sample renders beside their instance masks (``docs/images/clevr_samples.png``).

Reads a folder written by ``nesy data clevr`` (or the official layout with
masks), so the figure shows exactly the files on disk.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from perception.datasets.clevr import find_layout
from perception.datasets.instance_masks import colorize_mask, read_mask_png
from perception.image_io import load_image
from physics.errors import DataError
from physics.io import PathLike, atomic_write_bytes

__all__ = ["save_sample_grid"]

_GAP = 4  # pixels between tiles


def save_sample_grid(
    root: PathLike, split: str, path: PathLike, *, count: int = 6, columns: int = 2, scale: float = 0.5
) -> dict[str, int]:
    """Write a PNG grid of the first ``count`` images, each followed by its mask.

    Args:
        root: Data set folder.
        split: Split to show.
        path: Output PNG (written atomically).
        count: Images shown.
        columns: (image, mask) pairs per row.
        scale: Tile size relative to the images.

    Returns:
        ``{"width", "height", "bytes"}`` of the written figure.
    """
    layout = find_layout(root, split)
    if layout.masks is None:
        raise DataError(f"{root}: split {split!r} has no masks/ folder to show")
    names = sorted(p.name for p in layout.images.glob(f"CLEVR_{split}_*.png"))[:count]
    if not names:
        raise DataError(f"no CLEVR_{split}_*.png images in {layout.images}")
    tiles = []
    for name in names:
        rgb = load_image(layout.images / name)
        mask = colorize_mask(read_mask_png(layout.masks / name))
        h, w = rgb.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        tiles.append(np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS)))
        tiles.append(np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST)))
    th, tw = tiles[0].shape[:2]
    per_row = 2 * columns
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
