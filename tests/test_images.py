"""load_image: the one door for every image (EXIF, modes, limits, arrays, bytes) and PNG metadata."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceswap_core.errors import BadImageError
from faceswap_core.images import load_image, png_metadata, save_png, to_array


def _bytes(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG that declares ``width`` x ``height`` but carries only a few bytes of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


def test_exif_orientation_turns_a_sideways_photo_upright() -> None:
    stored = Image.new("RGB", (60, 40), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 30, 40))  # left half red
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image = load_image(_bytes(stored, "JPEG", exif=exif, quality=95))
    assert image.size == (40, 60)
    pixels = to_array(image).astype(int)
    assert pixels[5, 20, 0] > 200 and pixels[5, 20, 2] < 60  # the red half is now on top
    assert pixels[55, 20, 2] > 200 and pixels[55, 20, 0] < 60


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (40, 40), 128), (128, 128, 128)),
        (Image.new("LA", (40, 40), (0, 0)), (255, 255, 255)),  # fully transparent reads as white
        (Image.new("RGBA", (40, 40), (10, 20, 30, 255)), (10, 20, 30)),
        (Image.new("RGBA", (40, 40), (10, 20, 30, 0)), (255, 255, 255)),
        (Image.new("RGB", (40, 40), (204, 102, 51)).convert("P"), (204, 102, 51)),  # web palette colour
        (Image.new("I;16", (40, 40), 65535), (255, 255, 255)),
        (Image.new("1", (40, 40), 1), (255, 255, 255)),
    ],
    ids=["L", "LA", "RGBA-opaque", "RGBA-transparent", "P", "I16", "1"],
)
def test_any_mode_becomes_8bit_rgb(image: Image.Image, expected: tuple[int, int, int]) -> None:
    for source in (image, _bytes(image)):
        loaded = load_image(source)
        assert loaded.mode == "RGB" and loaded.size == (40, 40)
        assert np.abs(to_array(loaded)[20, 20].astype(int) - expected).max() <= 3


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("RGB", (40, 40), (250, 10, 10)).convert("CMYK")
    loaded = load_image(_bytes(cmyk, "JPEG", quality=95))
    assert loaded.mode == "RGB"
    red, green, blue = to_array(loaded)[20, 20].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_png_file_keeps_its_range(tmp_path: Path) -> None:
    values = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (48, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    pixels = to_array(load_image(path))
    assert pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 255


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"this is a text file, not a photo\n" * 5, "not an image"),
        (_bytes(Image.new("RGB", (20, 50))), "at least 32"),
    ],
    ids=["empty", "text", "too-small"],
)
def test_unusable_files_are_refused_with_their_name(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(BadImageError, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_file_is_refused() -> None:
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    data = _bytes(Image.fromarray(noise))
    with pytest.raises(BadImageError, match="truncated|corrupt|cannot read"):
        load_image(data[: len(data) // 2])


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BadImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def test_huge_declared_png_is_refused_before_decoding() -> None:
    bomb = _png_header_only(40000, 40000)
    assert len(bomb) < 10_000
    start = time.perf_counter()
    with pytest.raises(BadImageError, match="1600 MP.*limit"):
        load_image(bomb, name="bomb.png")
    assert time.perf_counter() - start < 1.0


def test_pixel_limit_is_configurable() -> None:
    image = Image.new("RGB", (100, 100))
    assert load_image(image, max_pixels=10_000).size == (100, 100)
    with pytest.raises(BadImageError, match="limit"):
        load_image(image, max_pixels=9_999)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((40, 50, 3), 7, np.uint8), 7),
        (np.full((40, 50), 9, np.uint8), 9),
        (np.full((40, 50, 1), 9, np.uint8), 9),
        (np.full((40, 50, 4), 255, np.uint8), 255),
        (np.full((40, 50, 3), 0.5, np.float32), 128),
        (np.ones((40, 50), bool), 255),
        (np.full((40, 50, 3), 65535, np.uint16), 255),
    ],
    ids=["rgb", "gray", "gray1", "rgba", "float", "bool", "uint16"],
)
def test_arrays_become_rgb(array: np.ndarray, expected: int) -> None:
    loaded = load_image(array)
    assert loaded.mode == "RGB" and loaded.size == (50, 40)
    assert int(to_array(loaded)[10, 10, 0]) == expected


def test_bad_array_shape_is_refused() -> None:
    with pytest.raises(BadImageError, match="shape"):
        load_image(np.zeros((40, 40, 2), np.uint8))


def test_save_png_round_trips_metadata(tmp_path: Path) -> None:
    path = save_png(Image.new("RGB", (40, 40)), tmp_path / "sub" / "out.png", {"seed": "42", "prompt": "a face"})
    assert png_metadata(path) == {"seed": "42", "prompt": "a face"}
    assert load_image(path).size == (40, 40)
