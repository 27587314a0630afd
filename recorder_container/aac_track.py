"""A recorded stream's sound as AAC on one continuous sample clock: each source's frames are
resampled and placed at their position on the output clock; gaps inside a source (Opus DTX,
loss) become silence and overlaps are dropped, so audio never drifts against video. A new
source (the publisher came back, a timestamp jump) starts a new encoder at its position."""

from __future__ import annotations

import fractions
from typing import Any

import av
import numpy as np

AAC_FRAME = 1024
SLACK = 480  # samples (10 ms) of jitter tolerated before silence is inserted or samples dropped


class AacTrack:
    """Encodes one stream's sound. Owned by the stream's writer thread."""

    def __init__(self, rate: int, channels: int, bitrate: int) -> None:
        self.rate, self.channels, self.bitrate = rate, channels, bitrate
        self.silence_samples = 0
        self._encoder: Any = None
        self._resampler: Any = None
        self._fifo: Any = None
        self._next_sample = 0  # output position (1/rate) of the next sample
        self._fifo_pos = 0

    @property
    def active(self) -> bool:
        """Whether a source is being encoded."""
        return self._encoder is not None

    def start(self, position: int) -> None:
        """A new source whose first sample lands at output sample `position`."""
        enc = av.CodecContext.create("aac", "w")
        enc.sample_rate = self.rate
        enc.layout = "mono" if self.channels == 1 else "stereo"
        enc.format = "fltp"
        enc.bit_rate = self.bitrate
        enc.time_base = fractions.Fraction(1, self.rate)
        enc.options = {"aac_coder": "fast"}  # ~2.5x cheaper than the default two-loop search, fine for speech
        enc.open()
        self._encoder = enc
        self._resampler = av.AudioResampler(format="fltp", layout=enc.layout, rate=self.rate)
        self._fifo = av.AudioFifo()
        self._next_sample = self._fifo_pos = position

    def add(self, frame: Any, position: int) -> list[Any]:
        """A decoded frame whose first sample lands at output sample `position`; the AAC packets
        it completes (pts in output samples, the encoder's priming before the first)."""
        for chunk in self._resampler.resample(frame):
            self._feed(chunk, position)
            position += chunk.samples
        return self._encode(final=False)

    def finish(self) -> list[Any]:
        """The source ended: the rest, its tail padded to a whole AAC frame, and the encoder's."""
        if self._encoder is None:
            return []
        packets = self._encode(final=True)
        self._encoder = None
        return packets

    def _feed(self, chunk: Any, pos: int) -> None:
        gap = pos - self._next_sample
        if gap > SLACK:  # DTX or loss: fill with silence to stay on the clock
            self._push(np.zeros((self.channels, gap), np.float32))
            self.silence_samples += gap
        elif gap < -SLACK:  # overlap: drop what is already written
            keep = chunk.samples + gap
            if keep > 0:
                self._push(chunk.to_ndarray()[:, -keep:])
            return
        chunk.pts = None  # the place is ours to keep (silence put in, overlaps left out): the FIFO must not check it
        self._fifo.write(chunk)
        self._next_sample += chunk.samples

    def _push(self, samples: np.ndarray) -> None:
        self._fifo.write(self._frame(samples))
        self._next_sample += samples.shape[1]

    def _frame(self, samples: np.ndarray) -> av.AudioFrame:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32), format="fltp",
                                           layout=self._encoder.layout.name)
        frame.sample_rate = self.rate
        return frame

    def _encode(self, final: bool) -> list[Any]:
        frames = []
        while self._fifo.samples >= AAC_FRAME:
            frames.append(self._stamped(self._fifo.read(AAC_FRAME)))
        if final and self._fifo.samples:  # pad the tail to a whole AAC frame
            tail = self._fifo.read(self._fifo.samples).to_ndarray()
            padded = np.zeros((tail.shape[0], AAC_FRAME), np.float32)
            padded[:, : tail.shape[1]] = tail
            frames.append(self._stamped(self._frame(padded)))
        packets = [p for f in frames for p in self._encoder.encode(f)]
        if final:
            packets += self._encoder.encode(None)
        return packets

    def _stamped(self, frame: av.AudioFrame) -> av.AudioFrame:
        frame.pts = self._fifo_pos
        frame.time_base = fractions.Fraction(1, self.rate)
        self._fifo_pos += AAC_FRAME
        return frame
