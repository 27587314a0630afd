"""Lip sync, measured the way a viewer notices it: a publisher flashes its picture and beeps at
the same capture instant every `PERIOD_S`; in a recording, each flash is paired with the beep
nearest to it and the offset is beep − flash (positive: the sound comes late).

Both tracks take their capture times from one wall clock (`epoch`), so a flash and its beep
leave the publisher with RTP timestamps of the same instant; whatever separates them in a file
happened on the way (the SFU, the recorder's receive path, the writers).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack

PERIOD_S = 2.0
BEEP_S = 0.1
BEEP_HZ = 1000.0
DARK, BRIGHT = 40, 235
AUDIO_FRAME = 960  # 20 ms at 48 kHz


def _due(epoch: float, index: int, rate: float) -> float:
    return epoch + index / rate


def _first_index(epoch: float, rate: float) -> int:
    return max(0, math.ceil((time.time() - epoch) * rate))


def _flashing(t: float, phase_s: float) -> bool:
    """Whether a picture captured at `t` (seconds after the epoch) is bright: from each instant
    epoch + phase + k·PERIOD_S (k ≥ 1) for as long as the beep lasts."""
    since = t - phase_s
    return since >= PERIOD_S - 1e-6 and (since + 1e-6) % PERIOD_S < BEEP_S


class FlashTrack(MediaStreamTrack):
    """A dark picture that turns bright at epoch + phase + k·PERIOD_S, for BEEP_S."""

    kind = "video"

    def __init__(self, epoch: float, fps: int, phase_s: float = 0.0, width: int = 320, height: int = 180) -> None:
        super().__init__()
        self.epoch, self.fps, self.phase_s = epoch, fps, phase_s
        self.width, self.height = width, height
        self._index: int | None = None

    async def recv(self) -> av.VideoFrame:
        if self._index is None:
            self._index = _first_index(self.epoch, self.fps)
        index = self._index
        self._index += 1
        await asyncio.sleep(max(0.0, _due(self.epoch, index, self.fps) - time.time()))
        level = BRIGHT if _flashing(index / self.fps, self.phase_s) else DARK
        image = np.full((self.height, self.width, 3), level, np.uint8)
        x = (index * 4) % (self.width - 8)  # every picture differs, as a camera's do
        image[:8, x:x + 8] = 128
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = round(index * 90000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


class BeepTrack(MediaStreamTrack):
    """Silence with a 100 ms 1 kHz beep starting exactly at epoch + phase + k·PERIOD_S."""

    kind = "audio"

    def __init__(self, epoch: float, phase_s: float = 0.0) -> None:
        super().__init__()
        self.epoch, self.phase_s = epoch, phase_s
        self._index: int | None = None

    async def recv(self) -> av.AudioFrame:
        rate = 48000 / AUDIO_FRAME
        if self._index is None:
            self._index = _first_index(self.epoch, rate)
        index = self._index
        self._index += 1
        await asyncio.sleep(max(0.0, _due(self.epoch, index, rate) - time.time()))
        t = (np.arange(AUDIO_FRAME) + index * AUDIO_FRAME) / 48000  # seconds after the epoch
        since = np.mod(t - self.phase_s, PERIOD_S)
        on = (since < BEEP_S) & (t - self.phase_s >= PERIOD_S - 1e-9)
        samples = np.where(on, np.sin(2 * np.pi * BEEP_HZ * t) * 16000, 0).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = index * AUDIO_FRAME
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


def flash_times(paths: Iterable[Path]) -> tuple[list[float], float]:
    """Seconds (on the files' own timeline) of each picture that starts a flash: brighter than
    halfway from the files' usual brightness to their brightest (a flash may fill the picture,
    or be one tile of a mix); and the time of the first picture."""
    lumas: list[tuple[float, float]] = []
    for path in paths:
        with av.open(str(path)) as c:
            if not c.streams.video:
                continue
            lumas += [(float(f.pts * f.time_base), float(f.to_ndarray(format="gray").mean()))
                      for f in c.decode(video=0) if f.pts is not None]
    if not lumas:
        return [], 0.0
    usual = float(np.median([luma for _, luma in lumas]))
    threshold = (usual + max(luma for _, luma in lumas)) / 2
    if threshold - usual < 10:  # no flash at all
        return [], lumas[0][0]
    times: list[float] = []
    bright_before = False
    for t, luma in lumas:
        bright = luma > threshold
        if bright and not bright_before:
            times.append(t)
        bright_before = bright
    return times, lumas[0][0]


def beep_times(paths: Iterable[Path]) -> list[float]:
    """Seconds (on the files' own timeline) where each beep starts."""
    starts: list[float] = []
    last = -1e9
    for path in paths:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                continue
            for f in c.decode(audio=0):
                if f.pts is None or f.time_base is None:
                    continue
                samples = f.to_ndarray().astype(np.float64)
                if samples.dtype.kind != "f" or np.abs(samples).max(initial=0) > 2:
                    samples = samples / 32768.0
                loud = np.flatnonzero(np.abs(samples.reshape(-1, f.samples).mean(axis=0)) > 0.2)
                if loud.size:
                    start = float(f.pts * f.time_base) + loud[0] / f.sample_rate
                    if start - last > PERIOD_S / 4:
                        starts.append(start)
                    last = float(f.pts * f.time_base) + loud[-1] / f.sample_rate
    return starts


# the SFU's first sender reports come 1.0-2.2 s after the robot subscribes (Janus: on a 1 s tick);
# until then a recorder can only place media by when it arrived
SETTLED_S = 2.5


@dataclass(frozen=True)
class Sync:
    flashes: list[tuple[float, float]]  # (s into the recording, beep − flash ms), per flash with a beep near

    @property
    def offsets_ms(self) -> list[float]:
        """Of the flashes once the recorder had its first sender reports."""
        return [offset for at, offset in self.flashes if at >= SETTLED_S]

    @property
    def early_ms(self) -> list[float]:
        """Of the flashes before that."""
        return [offset for at, offset in self.flashes if at < SETTLED_S]

    @property
    def median(self) -> float:
        return statistics.median(self.offsets_ms)

    @property
    def worst(self) -> float:
        return max(self.offsets_ms, key=abs)

    def __str__(self) -> str:
        return (f"{len(self.offsets_ms)} flashes: median {self.median:+.0f} ms, worst {self.worst:+.0f} ms "
                f"({', '.join(f'{o:+.0f}' for o in self.offsets_ms)}); in the first {SETTLED_S} s: "
                f"{', '.join(f'{o:+.0f}' for o in self.early_ms) or 'none'}")


def measure(video: Iterable[Path], audio: Iterable[Path] | None = None) -> Sync:
    """Offsets between each flash and the nearest beep, in files whose timelines are one clock
    (the same file, or files a player plays together)."""
    video = list(video)
    flashes, start = flash_times(video)
    beeps = beep_times(video if audio is None else audio)
    found = []
    for flash in flashes:
        near = min(beeps, key=lambda b: abs(b - flash), default=None)
        if near is not None and abs(near - flash) < PERIOD_S / 4:
            found.append((flash - start, (near - flash) * 1000))
    return Sync(found)
