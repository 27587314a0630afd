"""Layout images are customers' files: a few KB declaring a huge picture is refused before
it is decoded, and nothing a file holds escapes as anything but an ImageError."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from recorder_container.watermarks import ImageError, decode_rgba, text_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, pixels: bool = True) -> bytes:
    """A valid 1-bit grey PNG of width x height, all black: a few KB however large it says it
    is (without `pixels`, only its header: PIL judges the size when it opens the file)."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    idat = b""
    if pixels:
        deflate, row = zlib.compressobj(9), b"\0" * (1 + (width + 7) // 8)
        idat = _chunk(b"IDAT", b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush())
    return b"\x89PNG\r\n\x1a\n" + header + idat + _chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_png_bomb_is_refused_before_it_is_decoded() -> None:
    bomb = png_declaring(12288, 12288)  # 151 Mpx: 600 MB as RGBA, under PIL's own hard limit
    assert len(bomb) < 64 * 1024
    started = time.monotonic()
    with pytest.raises(ImageError, match="12288x12288"):
        decode_rgba(bomb)
    assert time.monotonic() - started < 0.5


def test_past_pils_own_limit_it_is_an_image_error_not_a_crash() -> None:
    with pytest.raises(ImageError, match="DecompressionBombError"):
        decode_rgba(png_declaring(20000, 20000, pixels=False))


def test_the_side_limit() -> None:
    assert decode_rgba(png_declaring(4096, 2)).shape == (2, 4096, 4)
    with pytest.raises(ImageError):
        decode_rgba(png_declaring(4097, 2))


@pytest.mark.parametrize("data", [b"", b"not an image", png_declaring(64, 36)[:45]])
def test_unreadable_files_are_image_errors(data: bytes) -> None:
    with pytest.raises(ImageError):
        decode_rgba(data)


def test_only_png_and_jpeg_are_decoded() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 200, 0)).save(out, "GIF")
    with pytest.raises(ImageError):
        decode_rgba(out.getvalue())
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (0, 200, 0)).save(out, "JPEG")
    rgba = decode_rgba(out.getvalue())
    assert rgba.shape == (6, 8, 4) and (rgba[..., 3] == 255).all()


@pytest.mark.parametrize("text", ["正在录制", "녹화 중", "録画中です"], ids=["chinese", "korean", "japanese"])
def test_cjk_text_watermarks_render_as_glyphs_not_boxes(text: str) -> None:
    def drawn(chars: str) -> np.ndarray:
        return text_image(chars, 64, 64, 48, "0xFFFFFF", None)[..., 3]

    missing = drawn("\U0010fffd")  # no font has it: what a font draws for a glyph it lacks
    glyphs = [drawn(ch) for ch in text if ch != " "]
    for ch, glyph in zip(text.replace(" ", ""), glyphs, strict=True):
        assert glyph.any(), f"{ch} drew nothing"
        assert not np.array_equal(glyph, missing), f"{ch} drew the missing-glyph box"
    assert len({g.tobytes() for g in glyphs}) == len(set(text.replace(" ", "")))  # each its own shape
