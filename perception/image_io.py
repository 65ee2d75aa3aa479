"""Reading images for perception: one function, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from physics.errors import DataError
from physics.io import PathLike

__all__ = ["load_image", "verify_image"]


def load_image(path: PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 [H, W, 3].

    Raises:
        DataError: naming the file when it is missing, unreadable, or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Image.DecompressionBombError as exc:  # PIL's guard against huge images; not an OSError
        raise DataError(f"image file {path} is too large to read: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image file {path} is corrupt or not an image: {exc}") from None


def verify_image(path: PathLike) -> tuple[int, int]:
    """Check an image file's structure and checksums without decoding its pixels.

    For a PNG every chunk's CRC is checked (pixel data included), so flipped
    bytes and truncation are found even where decoding would silently give
    wrong pixels.  Pair it with :func:`load_image` to also prove it decodes.

    Returns:
        ``(width, height)``.

    Raises:
        DataError: naming the file when it is missing, truncated, damaged, or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()
    except Image.DecompressionBombError as exc:  # PIL's guard against huge images; not an OSError
        raise DataError(f"image file {path} is too large to read: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image file {path} is corrupt or not an image: {exc}") from None
    return size
