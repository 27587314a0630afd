"""Writes one planned merge output (merge_plan.Output) with PyAV, streaming clip by clip
(clips read by merge_clips, sound made by merge_audio).

Audio: remuxed into its slots when every clip shares one format, else decoded and laid on
one continuous 48 kHz timeline from the clips' wall-clock starts — silence where nothing was
recorded, overlaps (ha_ resumes) trimmed — and encoded to AAC once. Video: remuxed untouched
when every clip already has the output size (gaps then hold the last picture, as players do
with a pause in the timestamps); otherwise
decoded, fitted into the output size (letterboxed), sampled at the output fps — last frame
or black (-b) in gaps, black before the first picture — and encoded once with x264.
Audio and video packets are interleaved by time as they are made.
"""

from __future__ import annotations

import dataclasses
import fractions
import heapq
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from chalicelib import naming
from chalicelib.remux import open_mp4
from tools.merge_audio import audio_format, encoded_audio, remuxed_audio
from tools.merge_clips import Warn, probe_size, timed, timeline
from tools.merge_plan import Output

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
                probed[stream] = probe_size(clip.path)
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
            w, h = probe_size(output.video[0].path) if output.video else (640, 360)
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
    container = open_mp4(partial, "ipod" if audio_only else "mp4")  # index first, like the output function's
    sources: list[Iterator[tuple[float, int, Any]]] = []
    try:
        if output.video:
            if can_remux(output, size, black_gaps):
                sources.append(_remuxed_video(container, output, warn))
            else:
                sources.append(_encoded_video(container, output, size, fps, black_gaps, warn))
        if output.audio:
            shared = audio_format(output)
            sources.append(remuxed_audio(container, output, shared, warn) if shared else
                           encoded_audio(container, output, warn))
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


def _remuxed_video(container: Any, output: Output, warn: Warn) -> Iterator[tuple[float, int, Any]]:
    stream = None
    last_dts = -1
    for out, packet in timeline(output, "video", warn):
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
    frames = timeline(output, "video", warn, decode=True)
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
            yield timed(packet, 0)
    for packet in stream.encode(None):
        yield timed(packet, 0)


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
