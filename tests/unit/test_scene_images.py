"""A layout's images are downloaded beside the recorder's control loop, never in it: the
layout shows at once, its images join it when they are in, and an image that cannot be used
(unreachable, hostile, a bomb) is reported once while the mix goes on without it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from chalicelib.fetch import FetchError
from chalicelib.layouts import Participant
from chalicelib.models import MixLayoutParams, WaterMark, WaterMarkImage
from recorder_container.scene import Scene, SceneBuilder, SceneKeeper
from tests.unit.test_scene import png
from tests.unit.test_watermarks import png_declaring

SLOW = "https://img.example.com/slow.png"
GOOD = "https://img.example.com/logo.png"
BOMB = "https://img.example.com/bomb.png"
MISSING = "https://img.example.com/missing.png?X-Amz-Signature=secret"
PEOPLE = [Participant("alice"), Participant("bob")]


class Loader:
    """Serves the test's images; SLOW hangs until released."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.release = threading.Event()

    def __call__(self, url: str) -> bytes:
        self.loads.append(url)
        if url == SLOW:
            self.release.wait(5)
        if url == MISSING:
            raise FetchError("HTTP 404")
        if url == BOMB:
            return png_declaring(20000, 20000, pixels=False)
        return png((0, 200, 0))


def watermark(url: str) -> WaterMark:
    return WaterMark(WaterMarkType=0, WaterMarkImage=WaterMarkImage(WaterMarkUrl=url, Top=0, Left=0, Width=64,
                                                                    Height=36))


async def shown(keeper: SceneKeeper) -> Scene:
    """The keeper's scene once it lacks no image (within 2 s)."""
    for _ in range(200):
        if not keeper.current.pending:
            return keeper.current
        await asyncio.sleep(0.01)
    raise AssertionError("the layout's images never came")


def test_a_layout_shows_at_once_while_its_image_downloads() -> None:
    loader, failed = Loader(), []
    keeper = SceneKeeper(SceneBuilder((640, 360), loader, failed.append))
    params = MixLayoutParams(MixLayoutMode=3, BackGroundColor="#336699", BackgroundImageUrl=SLOW)

    async def scenario() -> None:
        started = time.monotonic()
        await asyncio.wait_for(keeper.apply(params, PEOPLE), 1.0)
        assert time.monotonic() - started < 0.5  # the control loop goes on: the lease is renewed
        first = keeper.current
        assert len(first.windows) == 2 and first.backdrop.color == (0x33, 0x66, 0x99)
        assert first.backdrop.image is None and first.pending == (SLOW,)
        await asyncio.wait_for(keeper.apply(params, PEOPLE[:1]), 1.0)  # someone left meanwhile
        assert len(keeper.current.windows) == 1
        loader.release.set()
        whole = await shown(keeper)
        assert whole.backdrop.image is not None and len(whole.windows) == 1  # the newest layout, whole

    try:
        asyncio.run(scenario())
    finally:
        loader.release.set()
        keeper.close()
    assert loader.loads == [SLOW] and failed == []  # downloaded once


def test_images_that_cannot_be_used_are_reported_once_and_left_out(caplog: pytest.LogCaptureFixture) -> None:
    loader, failed = Loader(), []
    keeper = SceneKeeper(SceneBuilder((640, 360), loader, failed.append))
    params = MixLayoutParams(MixLayoutMode=3, PlaceHolderMode=1, DefaultSubBackgroundImage=MISSING,
                             WaterMarkList=[watermark(BOMB), watermark(GOOD)])

    async def scenario() -> Scene:
        await keeper.apply(params, PEOPLE)
        await shown(keeper)
        await keeper.apply(params, PEOPLE)  # the same layout again: nothing is fetched or reported again
        return await shown(keeper)

    with caplog.at_level(logging.WARNING):
        try:
            scene = asyncio.run(scenario())
        finally:
            keeper.close()
    assert len(scene.overlays) == 1 and scene.placeholders == {}  # the logo shows; the bomb and the 404 do not
    assert sorted(failed) == sorted([BOMB, MISSING]) and sorted(loader.loads) == sorted([BOMB, GOOD, MISSING])
    assert "missing.png" in caplog.text and "secret" not in caplog.text  # a presigned URL's query is not logged
