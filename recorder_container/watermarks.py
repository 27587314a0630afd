"""Watermarks of the mixed picture (spec §2.2 WaterMark): images, text, and a clock —
rendered once (the clock once a second) to overlays the canvas blends."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from chalicelib.layouts import even
from chalicelib.models import WaterMarkChar, WaterMarkTimestamp
from recorder_container.compositor import Overlay, hex_rgb, overlay_from_rgba

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_IMAGE_SIDE = 4096  # px: twice the largest canvas side (1920), 64 MB at most as RGBA
FONT_FILES = (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),)  # Debian's fonts-noto-cjk


@dataclass
class Placed:
    overlay: Overlay
    x: int
    y: int


class ImageError(ValueError):
    """The bytes are no PNG or JPEG picture we take: unreadable, or too large to decode."""


def decode_rgba(data: bytes, max_side: int = MAX_IMAGE_SIDE) -> np.ndarray:
    """A PNG or JPEG file as an (h, w, 4) RGBA array (JPEG is opaque). The size its header
    declares is checked before anything is decoded: a few KB of PNG can declare 150 Mpx (600 MB
    as RGBA). Whatever goes wrong is an ImageError."""
    try:
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as image:
            width, height = image.size
            if width > max_side or height > max_side:
                raise ImageError(f"{width}x{height} px: more than {max_side} px a side")
            return np.asarray(image.convert("RGBA"))
    except ImageError:
        raise
    except Exception as exc:  # a customer's file may trip anything in the decoder (DecompressionBombError, …)
        raise ImageError(f"not a usable PNG or JPEG ({type(exc).__name__})") from exc


def rgba_frame(rgba: np.ndarray) -> av.VideoFrame:
    """An RGBA array (even sides) as a yuv420p picture (for backgrounds and placeholders)."""
    h, w = (rgba.shape[0] // 2) * 2, (rgba.shape[1] // 2) * 2
    rgb = np.ascontiguousarray(rgba[:h, :w, :3])
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def _even_box(width: int, height: int) -> tuple[int, int]:
    return max(2, even(width)), max(2, even(height))


def image_overlay(rgba: np.ndarray, left: int, top: int, width: int, height: int) -> Placed:
    """A decoded RGBA image stretched into its box."""
    w, h = _even_box(width, height)
    scaled = np.asarray(Image.fromarray(rgba, "RGBA").resize((w, h), Image.Resampling.BILINEAR))
    return Placed(overlay_from_rgba(scaled), even(left), even(top))


@functools.lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font with Chinese, Japanese and Korean as well as Latin, where one is installed (the
    image and `make deps` install fonts-noto-cjk); else Pillow's own, whose glyphs are Latin only."""
    for path in FONT_FILES:
        if path.exists():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def text_image(text: str, width: int, height: int, size: int, color: str, background: str | None) -> np.ndarray:
    w, h = _even_box(width, height)
    fill = (*hex_rgb(background), 255) if background else (0, 0, 0, 0)
    image = Image.new("RGBA", (w, h), fill)
    ImageDraw.Draw(image).text((0, 0), text, font=font(size), fill=(*hex_rgb(color), 255))
    return np.asarray(image)


def text_overlay(spec: WaterMarkChar) -> Placed:
    rgba = text_image(spec.Chars, spec.Width, spec.Height, spec.FontSize, spec.FontColor, spec.BackGroundColor or None)
    return Placed(overlay_from_rgba(rgba), even(spec.Left), even(spec.Top))


def timestamp_overlay(spec: WaterMarkTimestamp, now: float, canvas: tuple[int, int]) -> Placed:
    """The time (in the spec's time zone) at one of the seven positions."""
    width, height = canvas
    size = max(12, height // 24)
    text = datetime.fromtimestamp(now, tz=timezone(timedelta(hours=spec.TimeZone))).strftime(TIMESTAMP_FORMAT)
    box_w, box_h = _even_box(int(size * 0.62 * len(text)) + 8, int(size * 1.4))
    rgba = text_image(text, box_w, box_h, size, "0xFFFFFF", None)
    margin = even(height / 60)
    xs = {"left": margin, "right": width - box_w - margin, "center": even((width - box_w) / 2)}
    ys = {"top": margin, "bottom": height - box_h - margin, "middle": even((height - box_h) / 2)}
    where = {0: ("left", "top"), 1: ("right", "top"), 2: ("left", "bottom"), 3: ("right", "bottom"),
             4: ("center", "top"), 5: ("center", "bottom"), 6: ("center", "middle")}[spec.Pos]
    return Placed(overlay_from_rgba(rgba), xs[where[0]], ys[where[1]])
