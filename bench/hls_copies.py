"""Long recordings for benches, fast: a short stream made once (tests.hls_recording) and
repeated, its TS packets re-stamped copy after copy (no encoding), under TRTC file names.
Also the per-child measurement the file benches share."""

from __future__ import annotations

import fractions
import subprocess
from pathlib import Path

import av

from chalicelib.naming import utc17
from chalicelib.playlist import Segment, parse, render
from tests.support.hls_recording import Written

RATE = 90000


def repeat(seed: Written, directory: Path, stem: str, start_ms: int, copies: int, period_ms: int) -> int:
    """Write `<stem>.m3u8` and `<stem>_<UTC17>.ts` holding the seed `copies` times, each copy
    `period_ms` after the previous, into `directory`; returns the bytes of TS written."""
    playlist = parse(seed.playlist.read_text())
    seeds = []
    for seg, path in zip(playlist.segments, seed.segments, strict=True):
        with av.open(str(path)) as src:
            kinds = {s.index: s.type for s in src.streams}
            rates = {s.type: getattr(s, "sample_rate", 0) for s in src.streams}
            size = next(((s.codec_context.width, s.codec_context.height) for s in src.streams.video), (0, 0))
            packets = [(kinds[p.stream_index], bytes(p), int(p.pts), int(p.dts)) for p in src.demux() if p.size]
        seeds.append((seg, packets, rates, size))
    written, total = [], 0
    for copy in range(copies):
        shift_ms = copy * period_ms
        for seg, packets, rates, (width, height) in seeds:
            start = start_ms + (seg.start_ms - playlist.start_ms) + shift_ms
            path = directory / f"{stem}_{utc17(start)}.ts"
            with av.open(str(path), "w", format="mpegts") as out:
                streams = {}
                if "video" in rates:
                    streams["video"] = out.add_mux_stream("h264")
                if "audio" in rates:
                    streams["audio"] = out.add_mux_stream("aac", rate=rates["audio"])
                for kind, payload, pts, dts in packets:
                    packet = av.Packet(payload)
                    packet.pts, packet.dts = pts + shift_ms * 90, dts + shift_ms * 90
                    packet.time_base = fractions.Fraction(1, RATE)
                    packet.stream = streams[kind]
                    out.mux(packet)
            total += path.stat().st_size
            written.append(Segment(path.name, start, seg.duration_ms, path.stat().st_size, width, height))
    (directory / f"{stem}.m3u8").write_text(render(written, start_ms, ended=True))
    return total


def measure(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child, by GNU time: a child forked from
    a large bench process would report that process's RSS as its own high-water mark."""
    run = subprocess.run(["/usr/bin/time", "-f", "TIME %e %U %S %M", *argv], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, check=True)
    line = next(x for x in run.stderr.splitlines() if x.startswith("TIME "))
    wall, user, system, rss_kb = (float(x) for x in line.split()[1:])
    return wall, user + system, rss_kb / 1024
