"""Composing the mixed picture on YUV 4:2:0 planes with numpy.

One contiguous buffer holds the canvas (Y, then U, then V, as yuv420p frames lay them out);
each frame starts from the prepared background (colour or image), windows are scaled by
swscale (PyAV) and pasted, transparent ones blended, overlays (watermarks) blended last.
Sizes and offsets are even, so chroma planes are exactly half.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

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


def overlay_from_rgba(rgba: np.ndarray) -> Overlay:
    """An (h, w, 4) uint8 RGBA image (even sides) as an Overlay."""
    h, w = rgba.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba[..., :3]), format="rgb24")
    yuv = frame.reformat(format="yuv420p").to_ndarray()
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    return Overlay(
        y=yuv[:h], u=yuv[h:h + h // 4].reshape(h // 2, w // 2), v=yuv[h + h // 4:].reshape(h // 2, w // 2),
        alpha_y=alpha, alpha_uv=alpha.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)),
    )


def picture(frame: av.VideoFrame, size: tuple[int, int], render_mode: int) -> tuple[np.ndarray, tuple[int, int]]:
    """`frame` fitted into a window of `size`: (yuv420p array of the placed part, offset in
    the window). One swscale to the size that makes the cropped part fill its place."""
    (cx, cy, cw, ch), (px, py, pw, ph) = fit((frame.width, frame.height), size, render_mode)
    scaled_w = max(2, round(frame.width * pw / cw / 2) * 2)
    scaled_h = max(2, round(frame.height * ph / ch / 2) * 2)
    arr = frame.reformat(width=scaled_w, height=scaled_h, format="yuv420p").to_ndarray()
    ox, oy = (round(cx * pw / cw / 2) * 2, round(cy * ph / ch / 2) * 2)
    ox, oy = min(ox, scaled_w - pw), min(oy, scaled_h - ph)
    y = arr[:scaled_h]
    u = arr[scaled_h:scaled_h + scaled_h // 4].reshape(scaled_h // 2, scaled_w // 2)
    v = arr[scaled_h + scaled_h // 4:].reshape(scaled_h // 2, scaled_w // 2)
    out = np.empty((ph * 3 // 2, pw), np.uint8)
    out[:ph] = y[oy:oy + ph, ox:ox + pw]
    out[ph:ph + ph // 4] = u[oy // 2:(oy + ph) // 2, ox // 2:(ox + pw) // 2].reshape(ph // 4, pw)
    out[ph + ph // 4:] = v[oy // 2:(oy + ph) // 2, ox // 2:(ox + pw) // 2].reshape(ph // 4, pw)
    return out, (px, py)


class Canvas:
    """The mixed picture being composed."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int]) -> None:
        self.width, self.height = width, height
        self.buffer = np.empty((height * 3 // 2, width), np.uint8)
        self.y = self.buffer[:height]
        self.u = self.buffer[height:height + height // 4].reshape(height // 2, width // 2)
        self.v = self.buffer[height + height // 4:].reshape(height // 2, width // 2)
        self.base = np.empty_like(self.buffer)
        self.set_background_color(background)
        self._tiles: dict[tuple[int, Window], tuple[np.ndarray, tuple[int, int]]] = {}

    def set_background_color(self, rgb: tuple[int, int, int]) -> None:
        y, u, v = rgb_to_yuv(*rgb)
        h = self.height
        self.base[:h] = y
        self.base[h:h + h // 4] = u
        self.base[h + h // 4:] = v

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
        arr, (px, py) = tile
        ph, pw = arr.shape[0] * 2 // 3, arr.shape[1]
        self._paste(arr, window.x + px, window.y + py, pw, ph, window.alpha)

    def forget_old_tiles(self, frames: set[int]) -> None:
        self._tiles = {k: v for k, v in self._tiles.items() if k[0] in frames}

    def _paste(self, arr: np.ndarray, x: int, y: int, w: int, h: int, alpha: int) -> None:
        w, h = min(w, self.width - x), min(h, self.height - y)
        if w <= 0 or h <= 0:
            return
        full_h = arr.shape[0] * 2 // 3
        planes = (
            (self.y[y:y + h, x:x + w], arr[:h, :w]),
            (self.u[y // 2:(y + h) // 2, x // 2:(x + w) // 2],
             arr[full_h:full_h + full_h // 4].reshape(full_h // 2, arr.shape[1] // 2)[:h // 2, :w // 2]),
            (self.v[y // 2:(y + h) // 2, x // 2:(x + w) // 2],
             arr[full_h + full_h // 4:].reshape(full_h // 2, arr.shape[1] // 2)[:h // 2, :w // 2]),
        )
        keep = alpha / 255.0  # the window's transparency: how much of what is below shows
        for dst, src in planes:
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
