"""Reading a merge output's clips (TS files) for the merge tool: opening them (damaged or
unreadable ones reported and skipped), their packets or frames on the output's clock."""

from __future__ import annotations

import fractions
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av

from tools.merge_plan import Clip, Output

QUICK_PROBE = {"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0"}  # packets only, no parameters
Warn = Callable[[str], None]


def open_clip(clip: Clip, warn: Warn, options: dict[str, str] | None = None) -> Any | None:
    try:
        return av.open(io.BytesIO(clip.path.read_bytes()), "r", format="mpegts", options=options or {})
    except (av.error.FFmpegError, OSError) as exc:
        warn(f"{clip.path.name} cannot be read ({reason(exc)}); skipped")
        return None


def reason(exc: BaseException) -> str:
    """FFmpeg's words for what is wrong, without the file name PyAV puts in front."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__


AAC_PRIMING = 1024  # samples an AAC encoder puts before the first real one


def _wall_of(clip: Clip, container: Any) -> Callable[[int, fractions.Fraction], float]:
    """Wall-clock ms of a timestamp in this clip: the clip starts at its playlist time, which is
    the time of the TS file's earliest sample (container.start_time, over all its streams), or
    of its first real sound after an encoder's priming."""
    origin_s = container.start_time / 1_000_000 if container.start_time is not None else None
    if origin_s is not None and clip.primed and container.streams.audio:
        origin_s += AAC_PRIMING / (container.streams.audio[0].rate or 48000)

    def wall(pts: int, time_base: fractions.Fraction) -> float:
        nonlocal origin_s
        seconds = float(pts * time_base)
        if origin_s is None:
            origin_s = seconds
        if seconds < origin_s - 2 ** 32 / 90000:  # a 33-bit wrap inside the file
            seconds += 2 ** 33 / 90000
        return clip.start_ms + (seconds - origin_s) * 1000

    return wall


def timeline(output: Output, kind: str, warn: Warn, decode: bool = False,
              quick_after_first: bool = False) -> Iterator[tuple[float, Any]]:
    """(output ms, packet — or frame when decoding) of the output's `kind` clips, in order,
    leaving out what falls into a removed gap. Unreadable clips are reported and skipped, a
    damaged one from the damage on. With quick_after_first only the first clip is probed in
    full (it gives the output stream's parameters), the rest are read for their packets."""
    probed = False
    for clip in output.audio if kind == "audio" else output.video:
        source = open_clip(clip, warn, QUICK_PROBE if probed and quick_after_first else None)
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
                warn(f"{clip.path.name} is damaged ({reason(exc)}); the rest of it is skipped")


def probe_size(path: Path) -> tuple[int, int]:
    try:
        with av.open(str(path)) as c:
            v = c.streams.video[0].codec_context
            return int(v.width), int(v.height)
    except (av.error.FFmpegError, IndexError):
        return 640, 360


def timed(packet: Any, order: int) -> tuple[float, int, Any]:
    """(decode time in ms, stream order, packet): what the interleaving merges on."""
    return (float(packet.dts * packet.time_base * 1000) if packet.dts is not None else 0.0, order, packet)


# ---- video, remuxed
