"""Mixing the participants' audio into one sound: each source is resampled to the output
rate and layout and placed on the task's wall clock; a mix sums the sources in int32 and
clips once, so loud voices together do not wrap around."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np

from recorder_container.sender_clock import HOLD_S
from recorder_container.timeline import SourceClock

RECEIVE_LATENCY_S = HOLD_S["audio"]  # how long aiortc's audio jitter buffer holds a frame


def mix(chunks: list[np.ndarray]) -> np.ndarray:
    """Sum int16 (channels, n) chunks in int32 and clip to int16."""
    if not chunks:
        raise ValueError("nothing to mix")
    total = np.zeros(chunks[0].shape, np.int32)
    for chunk in chunks:
        total += chunk
    return np.clip(total, -32768, 32767).astype(np.int16)


@dataclass
class _Source:
    clock: SourceClock
    resampler: Any
    start: int = 0  # output sample index of buffer[:, 0]
    buffer: np.ndarray = field(default_factory=lambda: np.zeros((1, 0), np.int16))


class AudioMixer:
    """Sources push frames (from the event loop); `take` returns the mixed samples of a span (the
    audio thread). A lock guards the sources between the two."""

    def __init__(self, rate: int, channels: int, origin: float) -> None:
        self.rate, self.channels, self.origin = rate, channels, origin
        self._layout = "mono" if channels == 1 else "stereo"
        self._sources: dict[Any, _Source] = {}
        self._lock = threading.Lock()

    def push(self, source: Any, frame: av.AudioFrame, arrival: float, media_time: float | None = None) -> None:
        with self._lock:
            src = self._sources.get(source)
            if src is None:
                src = _Source(SourceClock(frame.sample_rate, RECEIVE_LATENCY_S),
                              av.AudioResampler(format="s16", layout=self._layout, rate=self.rate))
                src.buffer = np.zeros((self.channels, 0), np.int16)
                self._sources[source] = src
            wall, _ = src.clock.wall(int(frame.pts or 0), arrival, media_time)
            samples = np.concatenate([f.to_ndarray().reshape(-1, self.channels).T
                                      for f in src.resampler.resample(frame)], axis=1) \
                if frame.samples else np.zeros((self.channels, 0), np.int16)
            position = round((wall - self.origin) * self.rate)
            end = src.start + src.buffer.shape[1]
            if src.buffer.shape[1] == 0 or abs(position - end) > self.rate // 10:
                # the first frame, a jump, or a source that ran dry: it starts here
                src.start, src.buffer = position, samples
            elif position >= end:  # a gap (DTX, loss): silence up to this frame
                gap = np.zeros((self.channels, position - end), np.int16)
                src.buffer = np.concatenate([src.buffer, gap, samples], axis=1)
            else:  # slightly early, or late for what was already mixed: overwrite / trim
                keep = position - src.start
                if keep < 0:
                    samples, keep = samples[:, -keep:], 0
                src.buffer = np.concatenate([src.buffer[:, :keep], samples], axis=1)

    def remove(self, source: Any) -> None:
        with self._lock:
            self._sources.pop(source, None)

    def take(self, start: int, count: int) -> np.ndarray:
        """The mix of output samples [start, start + count) (silence where nobody speaks);
        what it mixed is dropped from the sources."""
        chunks = [np.zeros((self.channels, count), np.int16)]
        with self._lock:
            for src in self._sources.values():
                lo, hi = start - src.start, start + count - src.start
                length = src.buffer.shape[1]
                if hi > 0 and lo < length:
                    chunk = np.zeros((self.channels, count), np.int16)
                    a, b = max(lo, 0), min(hi, length)
                    chunk[:, a - lo:b - lo] = src.buffer[:, a:b]
                    chunks.append(chunk)
                consumed = min(max(0, hi), length)
                if consumed:
                    src.buffer = src.buffer[:, consumed:]
                    src.start += consumed
        return mix(chunks)

    def frame(self, start: int, count: int) -> av.AudioFrame:
        """The mix of a span as an s16 frame with pts = start (in 1/rate)."""
        samples = self.take(start, count)
        frame = av.AudioFrame.from_ndarray(samples.T.reshape(1, -1).copy(), format="s16", layout=self._layout)
        frame.sample_rate = self.rate
        frame.pts = start
        return frame
