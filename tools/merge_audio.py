"""A merge output's sound: the recorded AAC frames remuxed into their slots when every clip
shares one format, else decoded and laid on one continuous timeline and encoded once."""

from __future__ import annotations

import fractions
import math
from collections.abc import Iterator
from typing import Any

import av
import numpy as np

from chalicelib.adts import SR_INDEX, adts_header
from tools.merge_clips import QUICK_PROBE, Warn, open_clip, timed, timeline
from tools.merge_plan import Clip, Output

AUDIO_RATE = 48000
AAC_FRAME = 1024
SLACK = 480  # samples (10 ms) of timing jitter absorbed before silence is added or samples dropped


def audio_format(output: Output) -> tuple[int, int] | None:
    """(sample rate, channels) shared by every audio clip, or None: then the audio is re-encoded."""
    seen = set()
    for clip in output.audio:
        container = open_clip(clip, lambda _: None, QUICK_PROBE)
        if container is None:
            continue
        with container:
            if container.streams.audio:
                cc = container.streams.audio[0].codec_context
                seen.add((int(cc.sample_rate), int(cc.channels)))
    return seen.pop() if len(seen) == 1 and next(iter(seen))[0] in SR_INDEX else None


def remuxed_audio(container: Any, output: Output, shared: tuple[int, int],
                   warn: Warn) -> Iterator[tuple[float, int, Any]]:
    """The recorded AAC frames, untouched, each in its 1024-sample slot of the output timeline;
    empty slots (nothing recorded) get a silent frame, frames that land on a filled slot (an
    overlap) are dropped. Sync stays within half a frame (11 ms at 48 kHz)."""
    rate, channels = shared
    silent = _silent_frame(rate, channels)
    time_base = fractions.Fraction(1, rate)
    stream: Any = None
    next_slot = 0

    def fill(until: int) -> Iterator[tuple[float, int, Any]]:
        nonlocal next_slot
        while next_slot < until:
            packet = av.Packet(silent)
            packet.pts = packet.dts = next_slot * AAC_FRAME
            packet.time_base, packet.stream = time_base, stream
            yield next_slot * AAC_FRAME * 1000 / rate, 1, packet
            next_slot += 1

    for out, packet in timeline(output, "audio", warn, quick_after_first=True):
        if stream is None:
            stream = container.add_stream_from_template(packet.stream)
        slot = round(out * rate / 1000 / AAC_FRAME)
        if slot < next_slot:
            continue
        yield from fill(slot)
        packet.pts = packet.dts = slot * AAC_FRAME
        packet.time_base, packet.stream = time_base, stream
        yield slot * AAC_FRAME * 1000 / rate, 1, packet
        next_slot = slot + 1
    if stream is not None:
        yield from fill(math.ceil(output.duration_ms * rate / 1000 / AAC_FRAME))


def _silent_frame(rate: int, channels: int) -> bytes:
    """One AAC-LC frame of silence, ADTS-framed like the recorded ones."""
    encoder = av.CodecContext.create("aac", "w")
    encoder.sample_rate, encoder.layout, encoder.format = rate, "stereo" if channels == 2 else "mono", "fltp"
    encoder.open()
    packets = []
    for n in range(4):  # past the encoder's priming: a steady-state frame
        frame = av.AudioFrame.from_ndarray(np.zeros((channels, AAC_FRAME), np.float32), format="fltp",
                                           layout="stereo" if channels == 2 else "mono")
        frame.sample_rate, frame.pts = rate, n * AAC_FRAME
        packets += encoder.encode(frame)
    raw = bytes(packets[-1])
    return adts_header(len(raw), rate, channels) + raw


def encoded_audio(container: Any, output: Output, warn: Warn) -> Iterator[tuple[float, int, Any]]:
    layout = _layout(output.audio)
    stream = container.add_stream("aac", rate=AUDIO_RATE, layout=layout)
    stream.bit_rate = 128000 if layout == "stereo" else 64000
    channels = 2 if layout == "stereo" else 1
    fifo = av.AudioFifo()
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=AUDIO_RATE)
    written = 0  # samples on the output timeline so far
    encoded = 0
    total = math.ceil(output.duration_ms * AUDIO_RATE / 1000)

    def put(frame: Any) -> Iterator[tuple[float, int, Any]]:
        nonlocal written, encoded
        fifo.write(frame)
        written += frame.samples
        while fifo.samples >= AAC_FRAME:
            chunk = fifo.read(AAC_FRAME)
            assert chunk is not None
            chunk.pts, chunk.time_base = encoded, fractions.Fraction(1, AUDIO_RATE)
            encoded += AAC_FRAME
            for packet in stream.encode(chunk):
                yield timed(packet, 1)

    def silence(samples: int) -> Any:
        frame = av.AudioFrame.from_ndarray(np.zeros((channels, samples), np.float32), format="fltp", layout=layout)
        frame.sample_rate = AUDIO_RATE
        return frame

    for out, frame in timeline(output, "audio", warn, decode=True):
        target = round(out * AUDIO_RATE / 1000)
        for piece in resampler.resample(frame):
            piece.pts = None
            if target > written + SLACK:  # nothing was recorded meanwhile
                yield from put(silence(target - written))
            skip = written - target
            if skip > SLACK:  # overlaps what is written (a resumed recording)
                if skip >= piece.samples:
                    target += piece.samples
                    continue
                piece = _tail(piece, skip, layout)
            yield from put(piece)
            target += piece.samples
    if total > written:
        yield from put(silence(total - written))
    if fifo.samples:
        last = fifo.read()
        assert last is not None
        last.pts, last.time_base = encoded, fractions.Fraction(1, AUDIO_RATE)
        yield from (timed(p, 1) for p in stream.encode(last))
    yield from (timed(p, 1) for p in stream.encode(None))


def _layout(clips: tuple[Clip, ...]) -> str:
    for clip in clips[:3]:
        container = open_clip(clip, lambda _: None)
        if container is None:
            continue
        with container:
            if container.streams.audio:
                return "stereo" if container.streams.audio[0].codec_context.channels >= 2 else "mono"
    return "mono"


def _tail(frame: Any, skip: int, layout: str) -> Any:
    data = frame.to_ndarray()[:, skip:]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=layout)
    out.sample_rate = AUDIO_RATE
    return out
