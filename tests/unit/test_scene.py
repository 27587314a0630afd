"""Scenes of the mixed picture built from a layout: the backdrop a new layout brings (applied
by the compositor thread, never by the builder), images loaded once, failures reported once."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from chalicelib.fetch import FetchError
from chalicelib.layouts import Participant
from chalicelib.models import MixLayoutParams
from recorder_container.compositor import Canvas, rgb_to_yuv
from recorder_container.scene import BLACK, Backdrop, SceneBuilder

BACKGROUND = "https://img.example.com/bg.png"
MISSING = "https://img.example.com/missing.png"


def png(rgb: tuple[int, int, int], size: tuple[int, int] = (64, 36)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, rgb).save(out, "PNG")
    return out.getvalue()


class Loader:
    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.loads.append(url)
        if url == MISSING:
            raise FetchError("HTTP 404")
        return png((0, 200, 0))


def test_backdrops_images_and_failures() -> None:
    loader, failed = Loader(), []
    builder = SceneBuilder((640, 360), loader, failed.append)
    people = [Participant("alice"), Participant("bob")]
    plain = builder.build(None, people)
    assert plain.backdrop == Backdrop() and len(plain.windows) == 2 and plain.overlays == ()
    colored = builder.build(MixLayoutParams(MixLayoutMode=3, BackGroundColor="#336699"), people)
    assert colored.backdrop == Backdrop((0x33, 0x66, 0x99), None, 1)
    pictured = MixLayoutParams(MixLayoutMode=3, BackgroundImageUrl=BACKGROUND, BackgroundImageRenderMode=0,
                               DefaultSubBackgroundImage=MISSING, PlaceHolderMode=1)
    first, again = builder.build(pictured, people), builder.build(pictured, people)
    assert first.backdrop.image is not None and first.backdrop.render_mode == 0
    assert first.backdrop == again.backdrop  # the same picture: the compositor keeps its canvas
    assert loader.loads == [BACKGROUND, MISSING] and failed == [MISSING]  # each image once, its failure once
    assert first.placeholders == {}  # the placeholder that failed shows nothing


def test_the_canvas_takes_a_backdrop_whole() -> None:
    canvas = Canvas(64, 36, BLACK)
    canvas.set_backdrop((255, 0, 0), None, 1)
    canvas.begin()
    assert canvas.y[0, 0] == rgb_to_yuv(255, 0, 0)[0]
    image = Backdrop((255, 0, 0), SceneBuilder((64, 36), lambda _: png((0, 0, 255)), print)._frame("x"), 1)
    canvas.set_backdrop(image.color, image.image, image.render_mode)
    canvas.begin()
    assert abs(int(canvas.y[18, 32]) - rgb_to_yuv(0, 0, 255)[0]) <= 2
    assert np.all(canvas.buffer == canvas.base)
