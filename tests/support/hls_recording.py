"""Recordings written the way the recorder writes them (TS segments on keyframes, 90 kHz
timestamps from 1 s, TRTC playlists), made with PyAV in the test: the input of the MP4
remux tests and bench."""

from __future__ import annotations

import fractions
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from chalicelib.adts import adts_header
from chalicelib.naming import utc17
from chalicelib.playlist import Segment, render

RATE = 90000
BASE = RATE


@dataclass
class Written:
    playlist: Path
    segments: list[Path] = field(default_factory=list)
    packets: list[bytes] = field(default_factory=list)  # video packet payloads, in order


def _video_encoder(width: int, height: int, fps: int, keyint: int, bitrate: int) -> av.VideoCodecContext:
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, fps)
    enc.framerate = fps
    enc.bit_rate = bitrate
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                   "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:repeat-headers=1"}
    enc.open()
    return enc  # type: ignore[return-value]


def write_stream(directory: Path, stem: str, start_ms: int, seconds: float, segment_s: float, *,
                 video: bool = True, audio: bool = True, width: int = 160, height: int = 90, fps: int = 15,
                 bitrate: int = 200_000, noise: bool = False,
                 picture: Callable[[float], np.ndarray] | None = None,
                 sound: Callable[[np.ndarray], np.ndarray] | None = None) -> Written:
    """One stream (video, audio or both in each TS) as `<stem>.m3u8` and `<stem>_<UTC17>.ts`."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    venc = _video_encoder(width, height, fps, int(segment_s * fps), bitrate) if video else None
    aenc = av.CodecContext.create("aac", "w") if audio else None
    if aenc is not None:
        aenc.sample_rate, aenc.layout, aenc.format = 48000, "mono", "fltp"
        aenc.bit_rate = 64000
        aenc.open()
    events: list[tuple[int, str, bytes, bool]] = []  # (ts, kind, payload, keyframe)
    if venc is not None:
        for i in range(int(seconds * fps)):
            if picture is not None:  # the picture at t seconds into the stream
                image = picture(i / fps)
            elif noise:
                image = rng.integers(0, 255, (height, width, 3), np.uint8)
            else:
                image = np.full((height, width, 3), (i * 7) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for pkt in venc.encode(frame):
                events.append((BASE + round(int(pkt.pts) * RATE / fps), "video", bytes(pkt), pkt.is_keyframe))
        for pkt in venc.encode(None):
            events.append((BASE + round(int(pkt.pts) * RATE / fps), "video", bytes(pkt), pkt.is_keyframe))
    if aenc is not None:
        t = np.arange(int(seconds * 48000)) / 48000
        pcm = (sound(t) if sound is not None else 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for n, i in enumerate(range(0, len(pcm) - 1024 + 1, 1024)):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, n * 1024
            for pkt in aenc.encode(frame):
                events.append((BASE + round(int(pkt.pts) * RATE / 48000), "audio", bytes(pkt), True))
    events.sort(key=lambda e: (e[0], e[1] != "video"))
    lead = "video" if video else "audio"
    written = Written(directory / f"{stem}.m3u8")
    done: list[Segment] = []
    out = None
    seg_start = 0
    streams: dict[str, av.stream.Stream] = {}

    def close() -> None:
        nonlocal out
        if out is None:
            return
        out.close()
        path = written.segments[-1]
        duration = (last_ts - seg_start) / RATE
        done.append(Segment(path.name, start_ms + round((seg_start - BASE) / 90), max(round(duration * 1000), 1),
                            path.stat().st_size, width if video else 0, height if video else 0))
        out = None

    last_ts = BASE
    for ts, kind, payload, key in events:
        if out is None or (kind == lead and key and (ts - seg_start) / RATE >= segment_s - 0.01):
            if out is not None:
                last_ts = ts
                close()
            seg_start = ts
            path = directory / f"{stem}_{utc17(start_ms + round((ts - BASE) / 90))}.ts"
            written.segments.append(path)
            out = av.open(str(path), "w", format="mpegts")
            streams = {}
            if video:
                streams["video"] = out.add_mux_stream("h264")
            if audio:
                streams["audio"] = out.add_mux_stream("aac", rate=48000)
        packet = av.Packet(payload if kind == "video" else _adts(payload))
        packet.pts = packet.dts = ts
        packet.time_base = fractions.Fraction(1, RATE)
        packet.stream = streams[kind]
        out.mux(packet)
        if kind == "video":
            written.packets.append(payload)
        last_ts = ts + (RATE // fps if kind == "video" else round(1024 * RATE / 48000))
    close()
    written.playlist.write_text(render(done, start_ms, ended=True))
    return written


def _adts(payload: bytes) -> bytes:
    return adts_header(len(payload), 48000, 1) + payload
