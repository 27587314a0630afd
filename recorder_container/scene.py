"""What the mixed picture shows for a layout (spec §2.2 MixLayoutParams): the windows, the
backdrop (colour and background image), placeholders and watermarks — built once per layout,
then drawn by the compositor frame after frame. A Scene never changes once built: a new
layout is a new Scene, which the compositor takes at its next frame."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import av

from chalicelib.fetch import FetchError
from chalicelib.layouts import Participant, Window, layout
from chalicelib.models import MixLayoutParams, WaterMarkTimestamp
from recorder_container.compositor import hex_rgb
from recorder_container.watermarks import Placed, decode_rgba, image_overlay, rgba_frame, text_overlay

log = logging.getLogger(__name__)

BLACK = (0, 0, 0)


@dataclass(frozen=True)
class Backdrop:
    """What shows where no window covers the canvas."""

    color: tuple[int, int, int] = BLACK
    image: av.VideoFrame | None = None
    render_mode: int = 1


@dataclass(frozen=True)
class Scene:
    """What the compositor draws: the backdrop, windows back to front, overlays on top."""

    backdrop: Backdrop = field(default_factory=Backdrop)
    windows: tuple[Window, ...] = ()
    overlays: tuple[Placed, ...] = ()
    placeholders: dict[str, av.VideoFrame] = field(default_factory=dict)
    clock: WaterMarkTimestamp | None = None  # redrawn each second


class SceneBuilder:
    """Builds scenes for one canvas, downloading each image once (`load(url)` → its bytes).
    Blocking (downloads): runs on a worker thread, one build at a time; `on_failed(url)`
    reports an image that cannot be used."""

    def __init__(self, canvas: tuple[int, int], load: Callable[[str], bytes], on_failed: Callable[[str], None]) -> None:
        self._canvas = canvas
        self._load = load
        self._on_failed = on_failed
        self._images: dict[str, Any] = {}  # URL → RGBA array (None: failed)
        self._frames: dict[str, av.VideoFrame] = {}  # URL → the image as a picture (backdrops, placeholders)

    def _image(self, url: str | None) -> Any:
        """A layout image (downloaded once); a failed download is reported once."""
        if not url:
            return None
        if url not in self._images:
            try:
                self._images[url] = decode_rgba(self._load(url))
            except (FetchError, OSError, ValueError) as exc:
                log.warning("image %s could not be used: %s", url, exc)
                self._images[url] = None
                self._on_failed(url)
        return self._images[url]

    def _frame(self, url: str | None) -> av.VideoFrame | None:
        rgba = self._image(url)
        if url is None or rgba is None:
            return None
        if url not in self._frames:
            self._frames[url] = rgba_frame(rgba)
        return self._frames[url]

    def build(self, params: MixLayoutParams | None, people: Sequence[Participant]) -> Scene:
        windows = tuple(layout(list(people), params, self._canvas))
        backdrop, overlays, clock = Backdrop(), [], None
        if params is not None:
            backdrop = Backdrop(hex_rgb(params.BackGroundColor), self._frame(params.BackgroundImageUrl),
                                params.BackgroundImageRenderMode)
            for mark in params.WaterMarkList or []:
                if mark.WaterMarkType == 0 and mark.WaterMarkImage is not None:
                    img = mark.WaterMarkImage
                    rgba = self._image(img.WaterMarkUrl)
                    if rgba is not None:
                        overlays.append(image_overlay(rgba, img.Left, img.Top, img.Width, img.Height))
                elif mark.WaterMarkType == 1 and mark.WaterMarkChar is not None:
                    overlays.append(text_overlay(mark.WaterMarkChar))
                elif mark.WaterMarkType == 2:
                    clock = mark.WaterMarkTimestamp
        placeholders = {w.placeholder: frame for w in windows if w.placeholder
                        and (frame := self._frame(w.placeholder)) is not None}
        return Scene(backdrop, windows, tuple(overlays), placeholders, clock)
