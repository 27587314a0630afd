"""Synthetic media for tests: H.264 access units and Opus-like PCM frames as aiortc hands
them out, made with PyAV (x264) and numpy."""

from __future__ import annotations

import fractions
from collections.abc import Iterator

import av
import numpy as np

from recorder_container.encoded import EncodedVideo


def h264_frames(seconds: float, fps: int = 15, width: int = 320, height: int = 180, keyint: int = 30,
                color: int = 0) -> Iterator[EncodedVideo]:
    """Annex-B access units (SPS/PPS repeated on keyframes) with 90 kHz pts from 0."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, fps)
    enc.framerate = fps
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                   "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:annexb=1:repeat-headers=1"}
    enc.open()
    base = np.random.default_rng(7).integers(0, 255, (height, width, 3), np.uint8)
    base[..., 0] = color
    for i in range(int(seconds * fps)):
        picture = av.VideoFrame.from_ndarray(np.roll(base, 2 * i, axis=1), format="rgb24").reformat(format="yuv420p")
        picture.pts = i
        for packet in enc.encode(picture):
            yield EncodedVideo(bytes(packet), int(packet.pts * 90000 // fps))


def pcm_frames(seconds: float, hz: float = 440.0, skip: tuple[float, float] | None = None) -> Iterator[av.AudioFrame]:
    """20 ms s16 stereo 48 kHz frames (as aiortc's Opus decoder gives), pts in samples; frames
    whose time falls inside `skip` (start, end) are not produced (DTX)."""
    for i in range(int(seconds * 50)):
        t0 = i * 0.02
        if skip and skip[0] <= t0 < skip[1]:
            continue
        t = (np.arange(960) + i * 960) / 48000
        tone = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]).T.reshape(1, -1).copy(), format="s16",
                                           layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        yield frame
