"""HLS → MP4 remux: throughput, CPU and peak RSS of cloudrec's remux (chalicelib.remux, what
the output-job function runs) against `ffmpeg -c copy` on the same HLS of about 1 GB, same run.

The HLS is a recording as the recorder writes it (H.264 + AAC in 6-s TS segments, 90 kHz
timestamps, TRTC playlist tags), made by re-stamping one encoded segment many times, so
building 1 GB takes seconds. With --separate, audio and video are two playlists (a user in
RecordMode 1), which the remux merges by wall clock. Both sides read local files: the engines
are compared, not S3. Each side runs in its own process; CPU is its user + system time, RSS
its peak. Every MP4 is written with its index first ("faststart": a second pass over the file
at close), so the floor is ffmpeg both without it (plain `-c copy`) and with it; --moov-last
also times cloudrec's remux writing the index last (the layout before faststart), to show what
the second pass costs.

    .venv/bin/python bench/remux.py [--size-mb 1024] [--bitrate 2000000] [--fps 30] [--separate] [--moov-last]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

from bench.hls_copies import measure, repeat
from chalicelib.playlist import Segment, parse, render
from tests.support.hls_recording import Written, write_stream
from tests.support.mp4_boxes import index_first

SEGMENT_S = 6
T0 = 1_760_000_000_000
OURS = """
from pathlib import Path
from chalicelib import mp4_parts, playlist, remux

directory = Path({directory!r})
sources = [remux.Source(playlist.parse((directory / (stem + ".m3u8")).read_text()), frozenset(kinds),
                        lambda name: (directory / name).read_bytes())
           for stem, kinds in {tracks!r}]
(part,) = mp4_parts.plan(sources[0].playlist, [s.playlist for s in sources[1:]])
if not {faststart!r}:
    remux.MUXER_OPTIONS = {{}}  # the muxer's default layout: the index after the media
result = remux.remux_part(sources, part, Path({out!r}))
print(result.packets)
"""
TOGETHER = [("rec", ("audio", "video"))]
SEPARATE = [("rec_video", ("video",)), ("rec_audio", ("audio",))]


def build_hls(directory: Path, size_mb: int, bitrate: int, fps: int, separate: bool = False) -> int:
    """A recording of about size_mb: one encoded 6-s segment, repeated segment after segment;
    audio and video in one playlist ("rec"), or in two ("rec_video", "rec_audio")."""
    kinds = [("rec_video", True, False), ("rec_audio", False, True)] if separate else [("rec", True, True)]
    seeds = []
    for stem, video, audio in kinds:
        seed = write_stream(directory / "seed", stem, T0, SEGMENT_S + 0.5, SEGMENT_S, video=video, audio=audio,
                            width=1280, height=720, fps=fps, bitrate=bitrate, noise=True)
        seed.segments[1:] = []  # the first segment only (the seed ran a little longer to close it)
        seed.playlist.write_text(render([_first(seed)], T0, ended=True))
        seeds.append((stem, seed))
    copies = max(1, size_mb * 1024 * 1024 // sum(seed.segments[0].stat().st_size for _, seed in seeds))
    total = sum(repeat(seed, directory, stem, T0, copies, SEGMENT_S * 1000) for stem, seed in seeds)
    shutil.rmtree(directory / "seed")
    return total


def _first(seed: Written) -> Segment:
    (segment, *_) = parse(seed.playlist.read_text()).segments
    return Segment(segment.name, segment.start_ms, segment.duration_ms, segment.size)


def _ffmpeg(hls: Path, out: Path, faststart: bool, tracks: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    inputs = [arg for stem, _ in tracks for arg in ("-i", str(hls / f"{stem}.m3u8"))]
    maps = [arg for n in range(len(tracks)) for arg in ("-map", str(n))]
    return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs, *maps, "-c", "copy",
            *(["-movflags", "+faststart"] if faststart else []), "-f", "mp4", str(out)]


def _ours(hls: Path, out: Path, faststart: bool, tracks: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    return [sys.executable, "-c", OURS.format(directory=str(hls), out=str(out), faststart=faststart, tracks=tracks)]


def _describe(path: Path) -> str:
    """Size, layout and video of an MP4 the bench made (checked once per side)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames, seconds = v.frames, float(v.duration * v.time_base)
    layout = "index first" if index_first(path) else "index last"
    return f"{path.stat().st_size / 1e6:.0f} MB, {layout}, video {frames} frames, {seconds:.0f} s"


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--size-mb", type=int, default=1024)
    args.add_argument("--bitrate", type=int, default=2_000_000)
    args.add_argument("--fps", type=int, default=30)
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--dir", default="/dev/shm", help="work directory (tmpfs: no disk writeback in the figures)")
    args.add_argument("--separate", action="store_true", help="audio and video in two playlists (RecordMode 1)")
    args.add_argument("--moov-last", action="store_true",
                      help="also time cloudrec's remux with the index after the media (before faststart)")
    opts = args.parse_args()
    with tempfile.TemporaryDirectory(dir=opts.dir) as tmp:
        work = Path(tmp)
        hls = work / "hls"
        hls.mkdir()
        started = time.perf_counter()
        total = build_hls(hls, opts.size_mb, opts.bitrate, opts.fps, opts.separate)
        tracks = SEPARATE if opts.separate else TOGETHER
        segments = len(list(hls.glob("*.ts"))) // len(tracks)
        print(f"HLS: {total / 1e6:.0f} MB in {segments} segments of {SEGMENT_S} s "
              f"({segments * SEGMENT_S / 60:.0f} min of 1280x720@{opts.fps} at {opts.bitrate / 1e6:.1f} Mb/s + AAC"
              f"{', audio and video apart' if opts.separate else ''}), built in {time.perf_counter() - started:.0f} s")
        sides = {"ffmpeg -c copy": _ffmpeg(hls, work / "out.mp4", False, tracks),
                 "ffmpeg +faststart": _ffmpeg(hls, work / "out.mp4", True, tracks),
                 "cloudrec remux": _ours(hls, work / "out.mp4", True, tracks)}
        if opts.moov_last:
            sides["cloudrec moov last"] = _ours(hls, work / "out.mp4", False, tracks)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
        made: dict[str, str] = {}
        for _ in range(opts.rounds):  # alternate, so the page cache favours none
            for name, argv in sides.items():
                results[name].append(measure(argv))
                made.setdefault(name, _describe(work / "out.mp4"))
                (work / "out.mp4").unlink()
        print(f"{'':18} {'wall s':>7} {'CPU s':>7} {'MB/s':>7} {'peak RSS MB':>12}")
        best: dict[str, float] = {}
        for name, runs in results.items():
            wall, cpu, rss = min(runs)
            best[name] = total / 1e6 / wall
            print(f"{name:18} {wall:7.1f} {cpu:7.1f} {best[name]:7.0f} {rss:12.0f}")
        for name, description in made.items():
            print(f"  {name}: {description}")
        ours = best["cloudrec remux"]
        print(f"cloudrec / ffmpeg -c copy throughput: {ours / best['ffmpeg -c copy']:.2f}x, "
              f"/ ffmpeg +faststart: {ours / best['ffmpeg +faststart']:.2f}x")
        if opts.moov_last:
            print(f"cloudrec faststart / moov last throughput: {ours / best['cloudrec moov last']:.2f}x")
        # per CPU-second (user + system of the side's process): what a busy or shared machine sees
        print(f"{'':18} {'CPU s min':>9} {'median':>7} {'MB per CPU-s':>13}  (median, {opts.rounds} runs)")
        per_cpu: dict[str, float] = {}
        for name, runs in results.items():
            cpus = [cpu for _, cpu, _ in runs]
            per_cpu[name] = total / 1e6 / statistics.median(cpus)
            print(f"{name:18} {min(cpus):9.2f} {statistics.median(cpus):7.2f} {per_cpu[name]:13.0f}")
        ours = per_cpu["cloudrec remux"]
        print(f"cloudrec / ffmpeg -c copy per CPU-s: {ours / per_cpu['ffmpeg -c copy']:.2f}x, "
              f"/ ffmpeg +faststart: {ours / per_cpu['ffmpeg +faststart']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
