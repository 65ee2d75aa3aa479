"""Reading images for perception: one function, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from physics.errors import DataError
from physics.io import PathLike, absent_file

__all__ = ["load_image", "verify_image"]


def load_image(path: PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 [H, W, 3].

    Raises:
        DataError: naming the file when it is missing, unreadable, or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(absent_file(path, "image file"))
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I;16") or im.mode == "I":
                im = _eight_bit_grey(im, path)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Image.DecompressionBombError as exc:  # PIL's guard against huge images; not an OSError
        raise DataError(f"image file {path} is too large to read: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image file {path} is corrupt or not an image: {exc}") from None


def _eight_bit_grey(im, path: Path):
    """A 16-bit (or 32-bit integer) greyscale image as 8-bit greyscale, by the top byte of each value.

    PIL's ``convert("RGB")`` clips such values at 255, so a 16-bit PNG of a scene read as a white
    image (in which the derenderer found 16 objects).  A 32-bit image whose values all fit 0..255 is
    taken as 8-bit values; one with values outside 0..65535 is refused.
    """
    from PIL import Image

    values = np.asarray(im)
    if im.mode == "I":
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(f"image file {path} holds 32-bit values outside 0..65535; save it with 8 or 16 bits "
                            "per channel")
        if not values.size or values.max() <= 255:
            return Image.fromarray(values.astype(np.uint8), "L")
    return Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8), "L")


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
        raise DataError(absent_file(path, "image file"))
    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()
    except Image.DecompressionBombError as exc:  # PIL's guard against huge images; not an OSError
        raise DataError(f"image file {path} is too large to read: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image file {path} is corrupt or not an image: {exc}") from None
    return size
