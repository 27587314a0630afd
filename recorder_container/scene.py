"""What the mixed picture shows for a layout (spec §2.2 MixLayoutParams): the windows, the
backdrop (colour and background image), placeholders and watermarks — built when a layout
comes (from the images at hand) and again once its images are downloaded, then drawn by the
compositor frame after frame. A Scene never changes once built: a new one is taken by the
compositor at its next frame."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import av

from chalicelib.fetch import redact
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
    pending: tuple[str, ...] = ()  # images the layout shows once they are downloaded


class SceneBuilder:
    """Builds scenes for one canvas, downloading each image once (`load(url)` → its bytes).
    Blocking (downloads); `on_failed(url)` reports an image that cannot be used, once. Several
    threads may build at once (a scene from the images at hand while another downloads)."""

    def __init__(self, canvas: tuple[int, int], load: Callable[[str], bytes], on_failed: Callable[[str], None]) -> None:
        self._canvas = canvas
        self._load = load
        self._on_failed = on_failed
        self._images: dict[str, Any] = {}  # URL → RGBA array (None: failed)
        self._frames: dict[str, av.VideoFrame] = {}  # URL → the image as a picture (backdrops, placeholders)

    def _image(self, url: str | None, pending: list[str] | None = None) -> Any:
        """A layout image, downloaded now unless `pending` is given: then an image not tried
        yet is left out and its URL noted there."""
        if not url:
            return None
        if url not in self._images:
            if pending is not None:
                pending.append(url)
                return None
            self._images[url] = self._decoded(url)
        return self._images[url]

    def _decoded(self, url: str) -> Any:
        try:
            return decode_rgba(self._load(url))
        except Exception as exc:  # whatever a customer's URL or file trips, the mix goes on without it
            log.warning("image %s could not be used: %s", redact(url), exc)
            self._on_failed(url)
            return None

    def _frame(self, url: str | None, pending: list[str] | None = None) -> av.VideoFrame | None:
        rgba = self._image(url, pending)
        if url is None or rgba is None:
            return None
        if url not in self._frames:  # two builders may both convert it: one picture is kept
            self._frames.setdefault(url, rgba_frame(rgba))
        return self._frames[url]

    def build(self, params: MixLayoutParams | None, people: Sequence[Participant], download: bool = True) -> Scene:
        """The scene of a layout; without `download`, from the images at hand only (the others
        are named in `Scene.pending`)."""
        pending: list[str] | None = None if download else []
        windows = tuple(layout(list(people), params, self._canvas))
        backdrop, overlays, clock = Backdrop(), [], None
        if params is not None:
            backdrop = Backdrop(hex_rgb(params.BackGroundColor), self._frame(params.BackgroundImageUrl, pending),
                                params.BackgroundImageRenderMode)
            for mark in params.WaterMarkList or []:
                if mark.WaterMarkType == 0 and mark.WaterMarkImage is not None:
                    img = mark.WaterMarkImage
                    rgba = self._image(img.WaterMarkUrl, pending)
                    if rgba is not None:
                        overlays.append(image_overlay(rgba, img.Left, img.Top, img.Width, img.Height))
                elif mark.WaterMarkType == 1 and mark.WaterMarkChar is not None:
                    overlays.append(text_overlay(mark.WaterMarkChar))
                elif mark.WaterMarkType == 2:
                    clock = mark.WaterMarkTimestamp
        placeholders = {w.placeholder: frame for w in windows if w.placeholder
                        and (frame := self._frame(w.placeholder, pending)) is not None}
        return Scene(backdrop, windows, tuple(overlays), placeholders, clock, tuple(dict.fromkeys(pending or ())))


class SceneKeeper:
    """The scene the compositor draws now. A new layout shows at once with the images at hand;
    those it lacks are downloaded on a thread of the keeper's own (not the loop's shared
    executor) and the layout shows again, whole, when they are in. A slow image never holds
    the caller: the recorder's control loop, which renews the task's lease. Owned by the loop."""

    def __init__(self, builder: SceneBuilder) -> None:
        self.current = Scene()
        self._builder = builder
        self._downloads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scene-images")
        self._latest = 0  # the newest layout's number
        self._tasks: set[asyncio.Task[None]] = set()

    async def apply(self, params: MixLayoutParams | None, people: Sequence[Participant]) -> None:
        """Show a layout now; `current` is its scene when this returns."""
        self._latest += 1
        number = self._latest
        scene = await asyncio.to_thread(self._builder.build, params, people, False)
        self._show(number, scene)
        if scene.pending:
            task = asyncio.get_running_loop().create_task(self._complete(number, params, people), name="scene images")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _complete(self, number: int, params: MixLayoutParams | None, people: Sequence[Participant]) -> None:
        loop = asyncio.get_running_loop()
        try:
            scene = await loop.run_in_executor(self._downloads, self._build_whole, number, params, people)
        except Exception:
            log.exception("building the layout with its images failed")
            return
        if scene is not None:
            self._show(number, scene)

    def _build_whole(self, number: int, params: MixLayoutParams | None, people: Sequence[Participant]) -> Scene | None:
        if number != self._latest:  # a newer layout came while this one waited: it downloads what it needs
            return None
        return self._builder.build(params, people)

    def _show(self, number: int, scene: Scene) -> None:
        if number == self._latest:
            self.current = scene

    def close(self) -> None:
        """Stop downloading (the recording ends); a download under way ends at its deadline."""
        self._latest += 1
        for task in self._tasks:
            task.cancel()
        self._downloads.shutdown(wait=False, cancel_futures=True)
