"""Composing the mixed picture on YUV 4:2:0 planes with numpy.

One contiguous buffer holds the canvas (Y, then U, then V, as yuv420p frames lay them out);
each frame starts from the prepared background (colour or image), windows are scaled by
swscale (PyAV) and pasted, transparent ones blended, overlays (watermarks) blended last.
Sizes and offsets are even, so chroma planes are exactly half.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from chalicelib.layouts import Window, fit


def rgb_to_yuv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """BT.601 limited-range YUV of an RGB colour (what x264 and players assume by default)."""
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def hex_rgb(color: str) -> tuple[int, int, int]:
    """`#RRGGBB` or `0xRRGGBB` → (r, g, b)."""
    digits = color[-6:]
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


@dataclass
class Overlay:
    """A picture with transparency, ready to blend: YUV planes and their alpha (0…1)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    alpha_y: np.ndarray
    alpha_uv: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.y.shape[1], self.y.shape[0]


def planes(arr: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V views of a yuv420p array as PyAV lays it out: the planes one after the other
    (a chroma plane need not start on a row of the array)."""
    flat = arr.reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    return (flat[:luma].reshape(height, width),
            flat[luma:luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma:luma + 2 * chroma].reshape(height // 2, width // 2))


def overlay_from_rgba(rgba: np.ndarray) -> Overlay:
    """An (h, w, 4) uint8 RGBA image (even sides) as an Overlay."""
    h, w = rgba.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba[..., :3]), format="rgb24")
    y, u, v = planes(frame.reformat(format="yuv420p").to_ndarray(), w, h)
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    return Overlay(y=y, u=u, v=v, alpha_y=alpha, alpha_uv=alpha.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)))


@dataclass
class Tile:
    """A picture fitted to a window: its planes and where it sits inside the window."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    x: int
    top: int


_local = threading.local()


def _scaler() -> VideoReformatter:
    """This thread's scaler: one swscale context reused while sizes repeat (frame.reformat would
    set up a new one for every frame, a third of the scaling cost at 720p)."""
    if not hasattr(_local, "scaler"):
        _local.scaler = VideoReformatter()
    scaler: VideoReformatter = _local.scaler
    return scaler


def picture(frame: av.VideoFrame, size: tuple[int, int], render_mode: int) -> Tile:
    """`frame` fitted into a window of `size` (one swscale to the size that makes the
    cropped part fill its place, then a slice)."""
    (cx, cy, cw, ch), (px, py, pw, ph) = fit((frame.width, frame.height), size, render_mode)
    scaled_w = max(2, round(frame.width * pw / cw / 2) * 2)
    scaled_h = max(2, round(frame.height * ph / ch / 2) * 2)
    y, u, v = planes(_scaler().reformat(frame, width=scaled_w, height=scaled_h, format="yuv420p").to_ndarray(),
                     scaled_w, scaled_h)
    ox = min(round(cx * pw / cw / 2) * 2, scaled_w - pw)
    oy = min(round(cy * ph / ch / 2) * 2, scaled_h - ph)
    return Tile(y[oy:oy + ph, ox:ox + pw], u[oy // 2:(oy + ph) // 2, ox // 2:(ox + pw) // 2],
                v[oy // 2:(oy + ph) // 2, ox // 2:(ox + pw) // 2], px, py)


class Canvas:
    """The mixed picture being composed. Owned by the compositor thread: nothing else draws on
    it or changes its backdrop."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int]) -> None:
        self.width, self.height = width, height
        self.buffer = np.empty((height * 3 // 2, width), np.uint8)
        self.y, self.u, self.v = planes(self.buffer, width, height)
        self.base = np.empty_like(self.buffer)
        self.set_background_color(background)
        self._tiles: dict[tuple[int, Window], Tile] = {}

    def set_background_color(self, rgb: tuple[int, int, int]) -> None:
        for plane, value in zip(planes(self.base, self.width, self.height), rgb_to_yuv(*rgb), strict=True):
            plane[:] = value

    def set_backdrop(self, color: tuple[int, int, int], image: av.VideoFrame | None, render_mode: int) -> None:
        """What shows under the windows: a colour, and an image over it where there is one."""
        self.set_background_color(color)
        if image is not None:
            self.set_background_image(image, render_mode)

    def set_background_image(self, frame: av.VideoFrame, render_mode: int) -> None:
        self.buffer[:] = self.base
        self.draw(frame, Window(0, 0, self.width, self.height, render_mode=render_mode))
        self.base[:] = self.buffer

    def begin(self) -> None:
        self.buffer[:] = self.base

    def draw(self, frame: av.VideoFrame, window: Window) -> None:
        """Paste a participant's latest picture into its window (the scaled tile is reused
        while the picture has not changed)."""
        if window.width <= 0 or window.height <= 0:
            return
        key = (id(frame), window)
        tile = self._tiles.get(key)
        if tile is None:
            tile = picture(frame, (window.width, window.height), window.render_mode)
            self._tiles[key] = tile
        self._paste(tile, window.x + tile.x, window.y + tile.top, window.alpha)

    def forget_old_tiles(self, frames: set[int]) -> None:
        self._tiles = {k: v for k, v in self._tiles.items() if k[0] in frames}

    def _paste(self, tile: Tile, x: int, y: int, alpha: int) -> None:
        h, w = tile.y.shape
        w, h = min(w, self.width - x), min(h, self.height - y)
        if w <= 0 or h <= 0:
            return
        keep = alpha / 255.0  # the window's transparency: how much of what is below shows
        for dst, src in ((self.y[y:y + h, x:x + w], tile.y[:h, :w]),
                         (self.u[y // 2:(y + h) // 2, x // 2:(x + w) // 2], tile.u[:h // 2, :w // 2]),
                         (self.v[y // 2:(y + h) // 2, x // 2:(x + w) // 2], tile.v[:h // 2, :w // 2])):
            if alpha == 0:
                dst[:] = src
            else:
                dst[:] = (dst * keep + src * (1 - keep)).astype(np.uint8)

    def blend(self, layer: Overlay, x: int, y: int) -> None:
        """Alpha-blend an overlay (watermark, placeholder) at (x, y)."""
        lw, lh = layer.size
        w, h = min(lw, self.width - x), min(lh, self.height - y)
        if w <= 0 or h <= 0:
            return
        for dst, src, a in ((self.y[y:y + h, x:x + w], layer.y[:h, :w], layer.alpha_y[:h, :w]),
                            (self.u[y // 2:(y + h) // 2, x // 2:(x + w) // 2], layer.u[:h // 2, :w // 2],
                             layer.alpha_uv[:h // 2, :w // 2]),
                            (self.v[y // 2:(y + h) // 2, x // 2:(x + w) // 2], layer.v[:h // 2, :w // 2],
                             layer.alpha_uv[:h // 2, :w // 2])):
            dst[:] = (dst * (1 - a) + src * a).astype(np.uint8)

    def frame(self) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(self.buffer, format="yuv420p")
