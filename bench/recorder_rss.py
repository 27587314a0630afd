"""Peak memory of a recorder writing a VP8 1080p30 publisher (transcoded to H.264) on one
core, with the writer's queue bounded (MAX_VIDEO_LAG_S) and, as the baseline in the same run,
unbounded (what the recorder did before: the queue grows while x264 falls behind).

Each case runs in a process of its own pinned to one CPU, shaped like the recorder: a decoder
thread (aiortc's VP8 decoder) hands pictures to the event loop at 30 fps as if they had just
arrived, the loop hands them and 50 audio frames a second to a `StreamWriter`, which
transcodes and writes segments (deleted as the uploader would). Prints peak RSS, how far
the queue grew, frames written and dropped, and how late the event loop ran.

`.venv/bin/python bench/recorder_rss.py [--seconds 30]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FPS = 30
SIZE = (1920, 1080)


def encode_clip(directory: Path) -> Path:
    """10 s of moving test pattern with camera-like grain, as VP8 (what a browser publisher
    without H.264 sends). A clean test pattern costs x264 a fraction of what a camera does."""
    path = directory / "vp8_1080p30.ivf"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate={FPS}", "-t", "10", "-vf", "noise=alls=30:allf=t",
                    "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "4M", "-g", str(2 * FPS),
                    str(path)], check=True)
    return path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_case(clip: Path, seconds: float, bounded: bool, cpu: int) -> dict[str, Any]:
    """One recorder-like process's figures (runs in the child)."""
    os.sched_setaffinity(0, {cpu})  # before any thread exists: they all inherit it
    import av
    from aiortc.codecs.vpx import Vp8Decoder
    from aiortc.jitterbuffer import JitterFrame

    from recorder_container import backlog
    from recorder_container.hls_writer import StreamWriter, WriterSpec
    from tests.support.synthetic import pcm_frames

    if not bounded:
        backlog.MAX_VIDEO_LAG_S = float("inf")
    with av.open(str(clip)) as container:
        packets = [bytes(p) for p in container.demux(video=0) if p.size]
    sound = list(pcm_frames(1.0))
    work = Path(tempfile.mkdtemp(prefix="cloudrec-rss-"))
    writer = StreamWriter(WriterSpec("rss", audio=True, video=True, work_dir=work, segment_s=12.0),
                          lambda done: done.path.unlink(), lambda _wall: None, lambda: None)
    deepest = [0]
    late = [0.0]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        t0 = time.time()

        def take(picture: Any, arrival: float) -> None:
            writer.video(picture, arrival, "vp8")
            deepest[0] = max(deepest[0], writer.queued("video"))

        def decode() -> None:  # aiortc's decoder thread: every picture, as its packets arrive
            decoder = Vp8Decoder()
            for i in range(int(seconds * FPS)):
                if stop.is_set():
                    return
                delay = t0 + i / FPS - time.time()
                if delay > 0:
                    time.sleep(delay)
                for picture in decoder.decode(JitterFrame(packets[i % len(packets)], i * 90000 // FPS)):
                    picture.pts = i * 90000 // FPS
                    loop.call_soon_threadsafe(take, picture, time.time())

        async def audio() -> None:
            for i in range(int(seconds * 50)):
                await asyncio.sleep(max(0.0, t0 + i / 50 - time.time()))
                frame = sound[i % len(sound)]
                frame.pts = i * 960
                writer.audio(frame, time.time(), "opus")

        async def heartbeat() -> None:  # how late the loop gets to run what is due
            while True:
                due = time.monotonic() + 0.01
                await asyncio.sleep(0.01)
                late[0] = max(late[0], time.monotonic() - due)

        decoding = asyncio.ensure_future(asyncio.to_thread(decode))
        beat = asyncio.ensure_future(heartbeat())
        await audio()
        stop.set()
        await decoding
        beat.cancel()

    asyncio.run(main())
    shutil.rmtree(work, ignore_errors=True)
    stats = writer.stats
    return {"peak_rss_mb": peak_rss_mb(), "deepest": deepest[0], "queued_at_end": writer.queued("video"),
            "written": stats.video_frames, "dropped": stats.video_dropped, "audio": stats.audio_frames,
            "audio_queued": writer.queued("audio"), "audio_dropped": stats.audio_dropped,
            "loop_late_ms": late[0] * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--case", choices=("bounded", "unbounded"))
    parser.add_argument("--clip", type=Path)
    parser.add_argument("--cpu", type=int)
    args = parser.parse_args()
    if args.case:  # the child: report and leave at once (an unbounded queue would take minutes to drain)
        print(json.dumps(run_case(args.clip, args.seconds, args.case == "bounded", args.cpu)), flush=True)
        os._exit(0)
    media = Path(tempfile.mkdtemp(prefix="cloudrec-rss-clip-"))
    clip = encode_clip(media)
    cpu = max(os.sched_getaffinity(0))
    print(f"recorder RSS, VP8 {SIZE[0]}x{SIZE[1]}@{FPS} transcoded to H.264 + audio, {args.seconds:.0f} s "
          f"on CPU {cpu} alone")
    for case in ("unbounded", "bounded"):
        out = subprocess.run([sys.executable, __file__, "--case", case, "--clip", str(clip), "--cpu", str(cpu),
                              "--seconds", str(args.seconds)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        label = "baseline (unbounded queue)" if case == "unbounded" else "bounded queue"
        print(f"  {label:27}: peak RSS {r['peak_rss_mb']:6.0f} MB, video queue up to {r['deepest']:4d} frames "
              f"({r['queued_at_end']} at the end), {r['written']} of {int(args.seconds * FPS)} pictures written, "
              f"{r['dropped']} dropped; audio {r['audio']} written, {r['audio_queued']} queued, "
              f"{r['audio_dropped']} dropped; event loop at most {r['loop_late_ms']:.0f} ms late")
    shutil.rmtree(media, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
