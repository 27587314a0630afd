"""HLS → MP4 remux: throughput and peak RSS of cloudrec's remux (chalicelib.remux, what the
output-job function runs) against `ffmpeg -c copy` on the same HLS of about 1 GB, same run.

The HLS is a recording as the recorder writes it (H.264 + AAC in 6-s TS segments, 90 kHz
timestamps, TRTC playlist tags), made by re-stamping one encoded segment many times, so
building 1 GB takes seconds. Both sides read local files: the engines are compared, not S3.
Each side runs in its own process; RSS is that process's peak.

    .venv/bin/python bench/remux.py [--size-mb 1024] [--bitrate 2000000] [--fps 30]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av

from bench.hls_copies import measure, repeat
from chalicelib.playlist import Segment, parse, render
from tests.support.hls_recording import Written, write_stream

SEGMENT_S = 6
T0 = 1_760_000_000_000
OURS = """
import time
from pathlib import Path
from chalicelib import mp4_parts, playlist
from chalicelib.remux import Source, remux_part

directory = Path({directory!r})
listed = playlist.parse((directory / "rec.m3u8").read_text())
(part,) = mp4_parts.plan(listed, [])
source = Source(listed, frozenset({{"audio", "video"}}), lambda name: (directory / name).read_bytes())
result = remux_part([source], part, Path({out!r}))
print(result.packets)
"""


def build_hls(directory: Path, size_mb: int, bitrate: int, fps: int) -> int:
    """A recording of about size_mb: one encoded 6-s segment, repeated segment after segment."""
    seed = write_stream(directory / "seed", "seed", T0, SEGMENT_S + 0.5, SEGMENT_S, width=1280, height=720,
                        fps=fps, bitrate=bitrate, noise=True)
    seed.segments[1:] = []  # the first segment only (the seed ran a little longer to close it)
    seed.playlist.write_text(render([_first(seed)], T0, ended=True))
    copies = max(1, size_mb * 1024 * 1024 // seed.segments[0].stat().st_size)
    total = repeat(seed, directory, "rec", T0, copies, SEGMENT_S * 1000)
    shutil.rmtree(directory / "seed")
    return total


def _first(seed: Written) -> Segment:
    (segment, *_) = parse(seed.playlist.read_text()).segments
    return Segment(segment.name, segment.start_ms, segment.duration_ms, segment.size)


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--size-mb", type=int, default=1024)
    args.add_argument("--bitrate", type=int, default=2_000_000)
    args.add_argument("--fps", type=int, default=30)
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--dir", default="/dev/shm", help="work directory (tmpfs: no disk writeback in the figures)")
    opts = args.parse_args()
    with tempfile.TemporaryDirectory(dir=opts.dir) as tmp:
        work = Path(tmp)
        hls = work / "hls"
        hls.mkdir()
        started = time.perf_counter()
        total = build_hls(hls, opts.size_mb, opts.bitrate, opts.fps)
        segments = len(list(hls.glob("*.ts")))
        print(f"HLS: {total / 1e6:.0f} MB in {segments} segments of {SEGMENT_S} s "
              f"({segments * SEGMENT_S / 60:.0f} min of 1280x720@{opts.fps} at {opts.bitrate / 1e6:.1f} Mb/s + AAC), "
              f"built in {time.perf_counter() - started:.0f} s")
        ffmpeg = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(hls / "rec.m3u8"),
                  "-c", "copy", "-f", "mp4", str(work / "ffmpeg.mp4")]
        ours = [sys.executable, "-c", OURS.format(directory=str(hls), out=str(work / "ours.mp4"))]
        results: dict[str, list[tuple[float, float, float]]] = {"ffmpeg -c copy": [], "cloudrec remux": []}
        for _ in range(opts.rounds):  # alternate, so the page cache favours neither
            results["ffmpeg -c copy"].append(measure(ffmpeg))
            results["cloudrec remux"].append(measure(ours))
        print(f"{'':16} {'wall s':>7} {'CPU s':>7} {'MB/s':>7} {'peak RSS MB':>12}")
        best: dict[str, float] = {}
        for name, runs in results.items():
            wall, cpu, rss = min(runs)
            best[name] = total / 1e6 / wall
            print(f"{name:16} {wall:7.1f} {cpu:7.1f} {best[name]:7.0f} {rss:12.0f}")
        for name in ("ffmpeg.mp4", "ours.mp4"):
            with av.open(str(work / name)) as c:
                v = c.streams.video[0]
                print(f"  {name}: {(work / name).stat().st_size / 1e6:.0f} MB, video {v.frames} frames, "
                      f"{float(v.duration * v.time_base):.0f} s")
        print(f"cloudrec / ffmpeg throughput: {best['cloudrec remux'] / best['ffmpeg -c copy']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
