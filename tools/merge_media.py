"""Writes one planned merge output (merge_plan.Output) with PyAV, streaming clip by clip.

Audio: decoded and laid on one continuous 48 kHz timeline from the clips' wall-clock
starts — silence where nothing was recorded, overlaps (ha_ resumes) trimmed — and encoded
to AAC once. Video: remuxed untouched when every clip already has the output size (gaps
then hold the last picture, as players do with a pause in the timestamps); otherwise
decoded, fitted into the output size (letterboxed), sampled at the output fps — last frame
or black (-b) in gaps, black before the first picture — and encoded once with x264.
Audio and video packets are interleaved by time as they are made.
"""

from __future__ import annotations

import dataclasses
import fractions
import heapq
import io
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from chalicelib import naming
from chalicelib.adts import SR_INDEX, adts_header
from tools.merge_plan import Clip, Output

AUDIO_RATE = 48000
AAC_FRAME = 1024
QUICK_PROBE = {"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0"}  # packets only, no parameters
SLACK = 480  # samples (10 ms) of timing jitter absorbed before silence is added or samples dropped
Warn = Callable[[str], None]
SCALER = VideoReformatter()  # one swscale context for all frames of a size (the tool is single-threaded)


def with_sizes(output: Output) -> Output:
    """The output with every video clip's size known: playlists without #EXT-X-TRTC-VIDEO-METADATA
    leave 0 x 0; the first TS of each such stream is probed and its size taken for the stream."""
    probed: dict[str, tuple[int, int]] = {}
    clips = []
    for clip in output.video:
        if not clip.width:
            named = naming.parse(clip.path.name)
            stream = named.stem if named is not None else clip.path.name
            if stream not in probed:
                probed[stream] = _probe_size(clip.path)
            clip = dataclasses.replace(clip, width=probed[stream][0], height=probed[stream][1])
        clips.append(clip)
    return dataclasses.replace(output, video=tuple(clips))


def choose_size(output: Output, requested: tuple[int, int] | None) -> tuple[int, int]:
    """-r W H, else the largest picture among the output's clips (even, as H.264 wants)."""
    if requested and requested[0] > 0 and requested[1] > 0:
        w, h = requested
    else:
        w, h = max(((c.width, c.height) for c in output.video), key=lambda s: s[0] * s[1], default=(0, 0))
        if not w:
            w, h = _probe_size(output.video[0].path) if output.video else (640, 360)
    return w - w % 2, h - h % 2


def can_remux(output: Output, size: tuple[int, int], black_gaps: bool) -> bool:
    sizes = {(c.width, c.height) for c in output.video}
    return bool(output.video) and sizes == {size} and not black_gaps


def write(output: Output, folder: Path, size: tuple[int, int], fps: int, black_gaps: bool,
          progress: Callable[[float], None], warn: Warn) -> Path:
    """Write the output into the folder (via a temporary name); returns its path."""
    final = folder / output.name
    partial = folder / f".{output.name}.partial"
    audio_only = not output.video
    container = av.open(str(partial), "w", format="ipod" if audio_only else "mp4")
    sources: list[Iterator[tuple[float, int, Any]]] = []
    try:
        if output.video:
            if can_remux(output, size, black_gaps):
                sources.append(_remuxed_video(container, output, warn))
            else:
                sources.append(_encoded_video(container, output, size, fps, black_gaps, warn))
        if output.audio:
            shared = audio_format(output)
            sources.append(_remuxed_audio(container, output, shared, warn) if shared else
                           _encoded_audio(container, output, warn))
        duration = max(output.duration_ms, 1)
        done = 0.0
        for out_ms, _, packet in heapq.merge(*sources, key=lambda item: (item[0], item[1])):
            container.mux(packet)
            if out_ms - done > duration / 200:
                done = out_ms
                progress(min(1.0, out_ms / duration))
    except BaseException:
        container.close()
        partial.unlink(missing_ok=True)
        raise
    container.close()
    os.replace(partial, final)
    progress(1.0)
    return final


# ---- reading clips

def _open(clip: Clip, warn: Warn, options: dict[str, str] | None = None) -> Any | None:
    try:
        return av.open(io.BytesIO(clip.path.read_bytes()), "r", format="mpegts", options=options or {})
    except (av.error.FFmpegError, OSError) as exc:
        warn(f"{clip.path.name} cannot be read ({_reason(exc)}); skipped")
        return None


def _reason(exc: BaseException) -> str:
    """FFmpeg's words for what is wrong, without the file name PyAV puts in front."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__


def _wall_of(clip: Clip, container: Any) -> Callable[[int, fractions.Fraction], float]:
    """Wall-clock ms of a timestamp in this clip: the clip starts at its playlist time, which is
    the time of the TS file's earliest sample (container.start_time, over all its streams)."""
    origin_s = container.start_time / 1_000_000 if container.start_time is not None else None

    def wall(pts: int, time_base: fractions.Fraction) -> float:
        nonlocal origin_s
        seconds = float(pts * time_base)
        if origin_s is None:
            origin_s = seconds
        if seconds < origin_s - 2 ** 32 / 90000:  # a 33-bit wrap inside the file
            seconds += 2 ** 33 / 90000
        return clip.start_ms + (seconds - origin_s) * 1000

    return wall


def _timeline(output: Output, kind: str, warn: Warn, decode: bool = False,
              quick_after_first: bool = False) -> Iterator[tuple[float, Any]]:
    """(output ms, packet — or frame when decoding) of the output's `kind` clips, in order,
    leaving out what falls into a removed gap. Unreadable clips are reported and skipped, a
    damaged one from the damage on. With quick_after_first only the first clip is probed in
    full (it gives the output stream's parameters), the rest are read for their packets."""
    probed = False
    for clip in output.audio if kind == "audio" else output.video:
        source = _open(clip, warn, QUICK_PROBE if probed and quick_after_first else None)
        if source is None:
            continue
        with source:
            streams = source.streams.audio if kind == "audio" else source.streams.video
            if not streams:
                warn(f"{clip.path.name} has no {kind}; skipped")
                continue
            probed = True
            wall = _wall_of(clip, source)
            try:
                for item in source.decode(streams[0]) if decode else source.demux(streams[0]):
                    at = item.pts if decode else item.dts
                    if at is None or (not decode and item.size == 0):
                        continue
                    out = output.out_ms(wall(at, item.time_base))
                    if out is not None:
                        yield out, item
            except av.error.FFmpegError as exc:
                warn(f"{clip.path.name} is damaged ({_reason(exc)}); the rest of it is skipped")


def _probe_size(path: Path) -> tuple[int, int]:
    try:
        with av.open(str(path)) as c:
            v = c.streams.video[0].codec_context
            return int(v.width), int(v.height)
    except (av.error.FFmpegError, IndexError):
        return 640, 360


# ---- audio

def audio_format(output: Output) -> tuple[int, int] | None:
    """(sample rate, channels) shared by every audio clip, or None: then the audio is re-encoded."""
    seen = set()
    for clip in output.audio:
        container = _open(clip, lambda _: None, QUICK_PROBE)
        if container is None:
            continue
        with container:
            if container.streams.audio:
                cc = container.streams.audio[0].codec_context
                seen.add((int(cc.sample_rate), int(cc.channels)))
    return seen.pop() if len(seen) == 1 and next(iter(seen))[0] in SR_INDEX else None


def _remuxed_audio(container: Any, output: Output, shared: tuple[int, int],
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

    for out, packet in _timeline(output, "audio", warn, quick_after_first=True):
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


def _encoded_audio(container: Any, output: Output, warn: Warn) -> Iterator[tuple[float, int, Any]]:
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
                yield _timed(packet, 1)

    def silence(samples: int) -> Any:
        frame = av.AudioFrame.from_ndarray(np.zeros((channels, samples), np.float32), format="fltp", layout=layout)
        frame.sample_rate = AUDIO_RATE
        return frame

    for out, frame in _timeline(output, "audio", warn, decode=True):
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
        yield from (_timed(p, 1) for p in stream.encode(last))
    yield from (_timed(p, 1) for p in stream.encode(None))


def _layout(clips: tuple[Clip, ...]) -> str:
    for clip in clips[:3]:
        container = _open(clip, lambda _: None)
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


def _timed(packet: Any, order: int) -> tuple[float, int, Any]:
    """(decode time in ms, stream order, packet): what the interleaving merges on."""
    return (float(packet.dts * packet.time_base * 1000) if packet.dts is not None else 0.0, order, packet)


# ---- video, remuxed

def _remuxed_video(container: Any, output: Output, warn: Warn) -> Iterator[tuple[float, int, Any]]:
    stream = None
    last_dts = -1
    for out, packet in _timeline(output, "video", warn):
        if stream is None:
            stream = container.add_stream_from_template(packet.stream)
        dts = max(round(out * 90), last_dts + 1)
        cto = packet.pts - packet.dts if packet.pts is not None else 0
        last_dts = dts
        packet.dts, packet.pts = dts, dts + cto
        packet.time_base = fractions.Fraction(1, 90000)
        packet.stream = stream
        yield (dts / 90, 0, packet)


# ---- video, encoded

def _encoded_video(container: Any, output: Output, size: tuple[int, int], fps: int, black_gaps: bool,
                   warn: Warn) -> Iterator[tuple[float, int, Any]]:
    width, height = size
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = fractions.Fraction(1, fps)
    stream.codec_context.gop_size = 2 * fps
    stream.codec_context.options = {"preset": "veryfast", "crf": "23"}
    covered = _covered(output)
    black = _black(width, height)
    frames = _timeline(output, "video", warn, decode=True)
    pending = next(frames, None)
    shown: Any = None
    for tick in range(math.ceil(output.duration_ms * fps / 1000)):
        at_ms = tick * 1000 / fps
        while pending is not None and pending[0] <= at_ms + 500 / fps:
            shown = _fit(pending[1], width, height)
            pending = next(frames, None)
        frame = shown if shown is not None and (covered(at_ms) or not black_gaps) else black
        frame.pts, frame.time_base = tick, fractions.Fraction(1, fps)
        for packet in stream.encode(frame):
            yield _timed(packet, 0)
    for packet in stream.encode(None):
        yield _timed(packet, 0)


def _covered(output: Output) -> Callable[[float], bool]:
    """Whether an output time lies inside a recorded video clip (else it is a gap)."""
    spans = sorted((output.out_ms(c.start_ms), output.out_ms(c.end_ms)) for c in output.video)
    bounds = [(a, b) for a, b in spans if a is not None and b is not None]

    def covered(at_ms: float) -> bool:
        return any(a - 1 <= at_ms < b + 1 for a, b in bounds)

    return covered


def _fit(frame: Any, width: int, height: int) -> Any:
    """The picture scaled to fit width x height, keeping its shape (black bars where needed)."""
    if (frame.width, frame.height) == (width, height):
        return SCALER.reformat(frame, format="yuv420p")
    scale = min(width / frame.width, height / frame.height)
    fw, fh = max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2)
    fitted = SCALER.reformat(frame, width=fw, height=fh, format="yuv420p").to_ndarray().reshape(-1)
    canvas = _black_planes(width, height)
    flat = canvas.reshape(-1)
    x, y = (width - fw) // 4 * 2, (height - fh) // 4 * 2
    planes_in = _planes(fitted, fw, fh)
    for plane_in, plane_out, div in zip(planes_in, _planes(flat, width, height), (1, 2, 2), strict=True):
        plane_out[y // div:(y + fh) // div, x // div:(x + fw) // div] = plane_in
    return av.VideoFrame.from_ndarray(canvas, format="yuv420p")


def _planes(flat: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    """Y, U and V of an I420 picture as 2-D views of its flat buffer."""
    y_size, c_size = width * height, (width // 2) * (height // 2)
    return [flat[:y_size].reshape(height, width),
            flat[y_size:y_size + c_size].reshape(height // 2, width // 2),
            flat[y_size + c_size:y_size + 2 * c_size].reshape(height // 2, width // 2)]


def _black_planes(width: int, height: int) -> np.ndarray:
    canvas = np.full((height * 3 // 2, width), 128, np.uint8)
    canvas[:height] = 16
    return canvas


def _black(width: int, height: int) -> Any:
    return av.VideoFrame.from_ndarray(_black_planes(width, height), format="yuv420p")
