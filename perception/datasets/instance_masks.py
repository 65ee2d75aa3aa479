"""Instance masks as palette PNG files (exact ids, viewable in any image viewer).

On disk a mask is an 8-bit palette PNG whose pixel *index* is ``object id + 1``
(0 = background), so object ``k`` of a scene is stored as index ``k + 1`` and a
plain image viewer shows each object in its own colour.  In memory a mask is an
integer array [H, W] with ``k`` for object ``k`` and ``-1`` for background, the
convention of :mod:`physics.worlds.clevr_world`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from physics.errors import DataError
from physics.io import PathLike

__all__ = ["MASK_PALETTE", "encode_mask_png", "decode_mask_png", "read_mask_png", "colorize_mask"]

MAX_OBJECTS = 254  # index 255 is kept free; CLEVR scenes hold at most 10 objects


def _palette() -> np.ndarray:
    """Index 0 black, then well-separated colours (golden-angle hues), [256, 3] uint8."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    for i in range(1, 256):
        h = ((i - 1) * 0.618033988749895) % 1.0
        k = np.array([5.0, 3.0, 1.0])
        rgb = 1.0 - 0.85 * np.clip(np.minimum(((k + h * 6.0) % 6.0), 4.0 - ((k + h * 6.0) % 6.0)), 0, 1)
        pal[i] = np.rint(rgb * 255.0).astype(np.uint8)
    return pal


MASK_PALETTE = _palette()


def encode_mask_png(mask: np.ndarray) -> bytes:
    """Instance mask int [H, W] (-1 background) -> palette PNG bytes (deterministic)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise DataError(f"instance mask must be 2-D [H, W], got shape {m.shape}")
    if m.size and (m.min() < -1 or m.max() > MAX_OBJECTS - 1):
        raise DataError(f"instance mask ids must be in -1..{MAX_OBJECTS - 1}, got {m.min()}..{m.max()}")
    img = Image.fromarray((m + 1).astype(np.uint8), mode="P")
    img.putpalette(MASK_PALETTE.ravel().tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def decode_mask_png(data: bytes, where: str = "mask") -> np.ndarray:
    """Palette (or 8/16-bit grey) PNG bytes -> instance mask int16 [H, W] (-1 background)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode not in ("P", "L", "I;16", "I"):
                raise DataError(f"{where}: mask PNG must be palette or grey (index = id + 1), got mode {img.mode}")
            arr = np.asarray(img).astype(np.int32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{where}: not a readable PNG mask ({exc})") from None
    return (arr - 1).astype(np.int16)


def read_mask_png(path: PathLike) -> np.ndarray:
    """Read a mask PNG file; a missing or corrupt file raises DataError naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"mask file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read mask file {path}: {exc}") from None
    return decode_mask_png(data, where=str(path))


def colorize_mask(mask: np.ndarray) -> np.ndarray:
    """Instance mask [H, W] -> RGB uint8 [H, W, 3] in the palette's colours (for figures)."""
    return MASK_PALETTE[np.clip(np.asarray(mask).astype(np.int64) + 1, 0, 255)]
