"""Image reading: every damaged, huge or missing file is a DataError naming it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from perception.image_io import load_image, verify_image
from physics.errors import DataError


@pytest.fixture()
def png(tmp_path):
    path = tmp_path / "img.png"
    rgb = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path, rgb


def test_a_whole_png_verifies_and_loads(png):
    path, rgb = png
    assert verify_image(path) == (32, 24)
    assert np.array_equal(load_image(path), rgb)


def test_flipped_or_truncated_bytes_fail_verification_naming_the_file(png):
    path, _ = png
    good = path.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # inside the compressed pixels: caught by the chunk CRC
    for damaged in (bytes(flipped), good[: len(good) // 2], b"not a png"):
        path.write_bytes(damaged)
        with pytest.raises(DataError, match="img.png"):
            verify_image(path)
    with pytest.raises(DataError, match="not found"):
        verify_image(path.parent / "missing.png")


def test_an_image_over_pils_size_limit_is_a_data_error_not_a_traceback(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 10000)).save(path)  # 2e8 pixels in 24 kB, over PIL's 1.79e8 limit
    for read in (load_image, verify_image):
        with pytest.raises(DataError, match="bomb.png is too large to read"):
            read(path)


def test_a_16_bit_greyscale_image_loads_as_its_8_bit_twin_not_white(tmp_path):
    # PIL's convert("RGB") clips 16-bit values at 255: `nesy answer --image` read a 16-bit PNG of a scene
    # as a white image and counted 16 objects in it
    grey = np.random.default_rng(0).integers(0, 256, (12, 20), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 0..255 -> 0..65535
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    want = load_image(tmp_path / "g8.png")
    assert np.array_equal(load_image(tmp_path / "g16.png"), want)
    Image.fromarray(grey.astype(np.int32), "I").save(tmp_path / "i8.tiff")  # 32-bit values within 0..255: as they are
    assert np.array_equal(load_image(tmp_path / "i8.tiff"), want)
    Image.fromarray(grey.astype(np.int32) * 257, "I").save(tmp_path / "i16.tiff")  # 16-bit values in a 32-bit image
    assert np.array_equal(load_image(tmp_path / "i16.tiff"), want)
    Image.fromarray(np.full((4, 4), 70000, np.int32), "I").save(tmp_path / "i32.tiff")
    with pytest.raises(DataError, match="i32.tiff holds 32-bit values outside 0..65535"):
        load_image(tmp_path / "i32.tiff")
